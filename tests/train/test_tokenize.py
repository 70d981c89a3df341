import pytest

from tuneline.errors import DataError
from tuneline.train.tokenize import IGNORE_INDEX, tokenize_chat


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from tuneline.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def test_loss_covers_only_the_answer_and_its_end_of_turn(tokenizer):
    messages = [{"role": "user", "content": "What is the capital of Peru?"},
                {"role": "assistant", "content": "The capital of Peru is Lima."}]
    example = tokenize_chat(tokenizer, messages, max_len=256)
    assert len(example.input_ids) == len(example.labels)
    learned = [t for t in example.labels if t != IGNORE_INDEX]
    n_prompt = example.labels.index(learned[0])
    assert all(t == IGNORE_INDEX for t in example.labels[:n_prompt])
    assert learned[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(learned[:-1]) == "The capital of Peru is Lima."
    assert example.input_ids[n_prompt:] == learned
    assert tokenizer.decode(example.input_ids[:n_prompt]).endswith("<|im_start|>assistant\n")


def test_truncation_and_bad_examples(tokenizer):
    messages = [{"role": "user", "content": "x " * 100},
                {"role": "assistant", "content": "y"}]
    assert len(tokenize_chat(tokenizer, messages, max_len=32).input_ids) == 32
    with pytest.raises(DataError, match="must end with an assistant message"):
        tokenize_chat(tokenizer, messages[:1], max_len=32)


def test_examples_whose_answer_is_cut_short_are_dropped_and_counted(tokenizer, tmp_path,
                                                                     capsys):
    from tuneline.artifacts import write_jsonl
    from tuneline.train.job import _rows_never_trained, tokenized_file

    fits = [{"role": "user", "content": "Capital of Peru?"},
            {"role": "assistant", "content": "Lima."}]
    cut = [{"role": "user", "content": "Capital of Peru?"},
           {"role": "assistant", "content": "The capital city of Peru is Lima, " * 8}]
    no_answer = [{"role": "user", "content": "x " * 100}, {"role": "assistant", "content": "y"}]
    write_jsonl(tmp_path / "train.jsonl", [{"messages": m} for m in (fits, cut, no_answer)])
    n_fits = len(tokenize_chat(tokenizer, fits, max_len=1000).input_ids)
    assert len(tokenize_chat(tokenizer, cut, max_len=1000).input_ids) > n_fits + 10
    kept, dropped = tokenized_file(tokenizer, tmp_path / "train.jsonl", max_len=n_fits + 10)
    assert [tokenizer.decode([t for t in e.labels if t != IGNORE_INDEX]) for e in kept] == \
        ["Lima.<|im_end|>"]
    assert dropped == {"dropped_no_answer_tokens": 1, "dropped_answer_cut": 1}
    assert "1 of 3 examples dropped" in capsys.readouterr().err
    # a dropped row is never trained, as is one the steps never reached
    assert [e.row for e in kept] == [1]
    assert _rows_never_trained(kept, dropped, unreached=[]) == [2, 3]
    assert _rows_never_trained(kept, dropped, unreached=[1]) == [1, 2, 3]


def test_train_stops_when_more_than_a_few_percent_would_be_dropped(tokenizer, tmp_path):
    from tuneline.artifacts import write_jsonl
    from tuneline.train.job import tokenized_file

    short = [{"role": "user", "content": "Capital of Peru?"},
             {"role": "assistant", "content": "Lima."}]
    long = [{"role": "user", "content": "Capital of Peru?"},
            {"role": "assistant", "content": "The capital city of Peru is Lima, " * 8}]
    limit = len(tokenize_chat(tokenizer, short, max_len=1000).input_ids) + 10
    needed = len(tokenize_chat(tokenizer, long, max_len=1000).input_ids)
    write_jsonl(tmp_path / "one.jsonl", [{"messages": long}] + [{"messages": short}] * 59)
    assert len(tokenized_file(tokenizer, tmp_path / "one.jsonl", limit, 0.02)[0]) == 59
    write_jsonl(tmp_path / "two.jsonl", [{"messages": long}] * 2 + [{"messages": short}] * 58)
    with pytest.raises(DataError, match=rf"two.jsonl: 2 of 60 examples dropped.*more than 2%.*"
                                        rf"set train.max_seq_len to {needed}, or remove it"):
        tokenized_file(tokenizer, tmp_path / "two.jsonl", limit, 0.02)


def test_without_max_seq_len_an_example_may_take_the_models_context(tokenizer):
    from tuneline.train.config import TrainConfig
    from tuneline.train.job import LONGEST_CONTEXT, example_limit

    assert example_limit(TrainConfig(max_seq_len=300), tokenizer) == 300
    declared = tokenizer.model_max_length
    assert example_limit(TrainConfig(), tokenizer) == (
        declared if declared <= LONGEST_CONTEXT else LONGEST_CONTEXT)
