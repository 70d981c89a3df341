"""Retrieval through the pipeline on the tiny model and the real MiniLM embedder: the index
stage (incremental), RAFT curation, the +rag evaluation variants, and serving with citations."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("lancedb")
pytest.importorskip("torch")

from conftest import CAPITALS, serve_in_thread, tiny_pipeline_config  # noqa: E402
from tuneline.artifacts import read_jsonl  # noqa: E402
from tuneline.config import PipelineConfig  # noqa: E402
from tuneline.errors import ConfigError  # noqa: E402
from tuneline.pipeline import run_pipeline  # noqa: E402
from tuneline.synthesize.config import READING_FACTS_PER_TEMPLATE  # noqa: E402

FACT = "The capital of {country} is {capital}."


def _config(root: Path, model_dir: Path, **curate_rag) -> PipelineConfig:
    data = tiny_pipeline_config(root, model_dir)
    data["index"] = {"enabled": True, "templates": {"capitals": FACT},
                     "retrieval": {"top_k": 3}}
    data["curate"]["rag"] = {"fraction": 0.5, "gold_removed": 0.25, **curate_rag}
    # these tests count what RAFT builds; the decline budget (tests/curate/test_declines.py)
    # would thin the declines they look at
    data["curate"]["max_decline_share"] = 1.0
    data["train"]["epochs"] = 1
    data["gate"] = {}
    return PipelineConfig.model_validate(data)


@pytest.fixture(scope="module")
def rag_run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("rag")
    cfg = _config(root, tiny_model_dir)
    return cfg, run_pipeline(cfg, until="evaluate")


def test_index_holds_one_fact_sentence_per_record(rag_run):
    cfg, result = rag_run
    manifest = result.artifacts["index"].manifest
    assert manifest["counts"] == {"passages": 20, "embedded": 20, "deleted": 0, "unchanged": 0}
    assert manifest["details"]["store"] == "lancedb"
    assert Path(manifest["details"]["uri"]).is_dir()  # outside the stage folder
    assert not Path(manifest["details"]["uri"]).is_relative_to(result.artifacts["index"].path)


def test_raft_examples_put_the_gold_passage_among_distractors(rag_run):
    cfg, result = rag_run
    counts = result.artifacts["curate"].manifest["counts"]
    train = read_jsonl(result.artifacts["curate"].path / "train.jsonl")
    rag_rows = [r for r in train if r["messages"][0]["content"].startswith("Answer the question")]
    assert counts["rag:gold"] + counts["rag:gold_removed"] == len(rag_rows) > 0
    assert counts["rag:gold"] > counts["rag:gold_removed"] > 0
    facts = read_jsonl(result.artifacts["synthesize"].path / "facts.jsonl")
    capitals = dict((country, capital) for country, capital, _ in CAPITALS)
    abstain = cfg.synthesize.unanswerable.answer
    removed = 0
    for row in rag_rows:
        prompt, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        assert prompt.count("</passage>") == 3
        (fact,) = [f for f in facts if prompt.rsplit("Question: ", 1)[1] in f["questions"]]
        # The passage the index holds for this fact's row, as a block of the prompt shows it.
        gold = f"\n{FACT.format(country=fact['key'], capital=capitals[fact['key']])}\n</passage>"
        if answer == abstain:  # gold removed: the context must not hold the answer
            removed += 1
            assert gold not in prompt and capitals[fact["key"]] not in prompt
        else:  # the answer is the fact's, and its gold passage is one of the three
            assert answer == fact["answer"] and gold in prompt
    assert removed == counts["rag:gold_removed"]


def test_rag_variants_and_retrieval_metrics(rag_run):
    cfg, result = rag_run
    metrics = json.loads((result.artifacts["evaluate"].path / "metrics.json").read_text())
    for variant in ("base", "tuned", "base+rag", "tuned+rag"):
        assert {"recall", "heldout"} <= set(metrics[variant])
    assert "general" in metrics["tuned"] and "general" not in metrics["tuned+rag"]
    retrieval = metrics["retrieval"]
    assert retrieval["heldout"]["k"] == 3
    # "What is the capital of Spain?" must find "The capital of Spain is Madrid." first.
    assert retrieval["recall"]["recall_at_k"] == 1.0 and retrieval["recall"]["mrr"] == 1.0
    predictions = read_jsonl(result.artifacts["evaluate"].path / "predictions.jsonl")
    heldout = [p for p in predictions if p["set"] == "heldout"]
    assert all(p["gold_rank"] == 1 and len(p["retrieved"]) == 3 for p in heldout)
    assert all("tuned+rag_answer" in p for p in heldout)


def test_reindexing_embeds_only_what_changed(rag_run, tmp_path):
    cfg, result = rag_run
    csv_path = Path(cfg.ingest.sources[0].path)
    rows = list(csv.reader(csv_path.open(encoding="utf-8")))
    rows[2][1] = "Madrid Centro"  # one capital changes
    del rows[-1]  # one record goes away
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    again = run_pipeline(cfg, until="index").artifacts["index"]
    assert again.manifest["counts"] == {"passages": 19, "embedded": 1, "deleted": 1,
                                        "unchanged": 18}
    from tuneline.rag.retrieve import Retriever

    retriever = Retriever.for_run(cfg)
    try:
        hit = retriever.search([f"What is the capital of {rows[2][0]}?"])[0][0]
    finally:
        retriever.close()
    assert hit.passage.text == f"The capital of {rows[2][0]} is Madrid Centro."


def test_server_retrieves_and_cites(rag_run, tiny_model_dir):
    from openai import BadRequestError, OpenAI

    from tuneline.rag.retrieve import Retriever
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    cfg, _ = rag_run
    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
    settings = ServeConfig(max_tokens_default=8)
    app = build_app({"tiny": engine}, settings, Retriever.for_run(cfg))
    plain = build_app({"tiny": engine}, settings)
    question = [{"role": "user", "content": "What is the capital of Peru?"}]
    with serve_in_thread(app) as url, serve_in_thread(plain) as plain_url:
        client = OpenAI(base_url=url, api_key="none", max_retries=0)
        assert {m.id for m in client.models.list()} == {"tiny", "tiny+rag"}
        by_alias = client.chat.completions.create(model="tiny+rag", messages=question)
        by_field = client.chat.completions.create(model="tiny", messages=question,
                                                  extra_body={"rag": True})
        without = client.chat.completions.create(model="tiny", messages=question)
        for response in (by_alias, by_field):
            cited = response.model_extra["citations"]
            assert len(cited) == 3 and cited[0]["text"] == "The capital of Peru is Lima."
            assert cited[0]["id"] == "capitals:L20" and cited[0]["line"] == "20"
            # The passages are in the prompt: it is far longer than the bare question.
            assert response.usage.prompt_tokens > without.usage.prompt_tokens + 30
        assert without.model_extra.get("citations") is None
        plain_client = OpenAI(base_url=plain_url, api_key="none", max_retries=0)
        with pytest.raises(BadRequestError) as err:
            plain_client.chat.completions.create(model="tiny", messages=question,
                                                 extra_body={"rag": True})
        assert err.value.body["param"] == "rag"


def test_a_served_answer_over_passages_ends_before_the_prompts_markup(rag_run, tiny_model_dir,
                                                                     monkeypatch):
    """rag.prompt.ANSWER_STOPS end an answer over passages (a model running on into the next
    `<passage` block); here a stop the tiny model's answer is known to write stands in."""
    import torch
    from openai import OpenAI

    from tuneline.rag.retrieve import Retriever
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    cfg, _ = rag_run
    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # larger random weights, and an end token that never wins: answers
        for param in engine.model.parameters():  # of 12 tokens
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        engine.model.get_input_embeddings().weight[engine.tokenizer.all_special_ids] = 0.0
    app = build_app({"tiny": engine}, ServeConfig(max_tokens_default=12),
                    Retriever.for_run(cfg))
    question = [{"role": "user", "content": "What is the capital of Peru?"}]
    with serve_in_thread(app) as url:
        client = OpenAI(base_url=url, api_key="none", max_retries=0)

        def ask(model):
            return client.chat.completions.create(model=model, messages=question,
                                                  temperature=0).choices[0]

        ask("tiny+rag"), ask("tiny")  # the first answers run before the prefix is cached
        free, plain = ask("tiny+rag"), ask("tiny")
        text = free.message.content
        # a character both answers write, after the first two of the one over passages
        stop = next(c for c in text[2:] if not c.isspace() and c in plain.message.content)
        monkeypatch.setattr("tuneline.rag.prompt.ANSWER_STOPS", (stop,))
        stopped, plain_again = ask("tiny+rag"), ask("tiny")
    assert stopped.message.content == text[:text.index(stop)].rstrip() != text
    assert stopped.finish_reason == "stop"
    assert plain_again.message.content == plain.message.content  # no passages: no stop


def test_a_server_with_retrieval_always_retrieves_for_every_name_and_refuses_without(
        rag_run, tiny_model_dir):
    from openai import BadRequestError, OpenAI

    from tuneline.rag.retrieve import Retriever
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    cfg, _ = rag_run
    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
    app = build_app({"tiny": engine}, ServeConfig(max_tokens_default=8, retrieval="always"),
                    Retriever.for_run(cfg))
    question = [{"role": "user", "content": "What is the capital of Peru?"}]
    with serve_in_thread(app) as url:
        client = OpenAI(base_url=url, api_key="none", max_retries=0)
        for name in ("tiny", "tiny+rag"):
            cited = client.chat.completions.create(model=name, messages=question) \
                .model_extra["citations"]
            assert cited[0]["text"] == "The capital of Peru is Lima."
        with pytest.raises(BadRequestError) as closed_book:
            client.chat.completions.create(model="tiny", messages=question,
                                           extra_body={"rag": False})
        assert closed_book.value.body["param"] == "rag"
        with pytest.raises(BadRequestError) as raw:
            client.completions.create(model="tiny", prompt="The capital of Peru is")
        assert "serve.retrieval: always" in raw.value.body["message"]


def test_rag_curation_needs_the_index(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir)
    cfg.index.enabled = False
    with pytest.raises(ConfigError, match="index.enabled"):
        run_pipeline(cfg, until="curate")


def test_reading_facts_come_from_unused_rows_and_are_trained_only_with_passages(tmp_path,
                                                                              tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, fraction=0.25, gold_removed=0.0)
    cfg.synthesize.max_facts_per_template = 12
    cfg.synthesize.dev_facts_per_template = 0  # the 8 rows left are reading practice
    cfg.synthesize.reading_facts_per_template = 5
    result = run_pipeline(cfg, until="curate")
    facts = read_jsonl(result.artifacts["synthesize"].path / "facts.jsonl")
    reading = [f for f in facts if f["kind"] == "reading"]
    assert len(reading) == 5
    rows = lambda group: {f["source"]["line"] for f in group}  # noqa: E731
    sampled = [f for f in facts if f["kind"] == "qa"]
    assert not rows(reading) & rows(sampled)
    for fact in reading:  # no sampled entity named either way
        assert not any(f["key"] in fact["answer"] or fact["key"] in f["answer"] for f in sampled)
    curated = result.artifacts["curate"].path
    evaluated = [item for name in ("recall", "heldout", "unanswerable")
                 for item in read_jsonl(curated / "eval" / f"{name}.jsonl")]
    train = read_jsonl(curated / "train.jsonl")
    for fact in reading:
        assert not any(fact["answer"] in json.dumps(item) for item in evaluated)
        trained = [row for row in train if row["messages"][-1]["content"] == fact["answer"]]
        assert len(trained) == 1  # once, and with its passage in the prompt
        assert f"The capital of {fact['key']} is" in trained[0]["messages"][0]["content"]
    assert result.artifacts["synthesize"].manifest["counts"]["reading:capital"] == 5


def test_reading_facts_need_rag_curation(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, fraction=0.0)
    cfg.synthesize.max_facts_per_template = 12
    cfg.synthesize.dev_facts_per_template = 0  # the 8 rows left are reading practice
    cfg.synthesize.reading_facts_per_template = 2
    with pytest.raises(ConfigError, match="reading_facts_per_template"):
        run_pipeline(cfg, until="curate")


def test_reading_twins_and_unanswerable_questions_with_passages(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, fraction=0.25, gold_removed=0.0,
                  unanswerable_fraction=1.0, reading_gold_removed=1.0)
    cfg.synthesize.max_facts_per_template = 12
    cfg.synthesize.dev_facts_per_template = 0  # the 8 rows left are reading practice
    cfg.synthesize.reading_facts_per_template = 4
    cfg.synthesize.unanswerable.per_template = 6
    result = run_pipeline(cfg, until="curate")
    counts = result.artifacts["curate"].manifest["counts"]
    facts = read_jsonl(result.artifacts["synthesize"].path / "facts.jsonl")
    train = read_jsonl(result.artifacts["curate"].path / "train.jsonl")
    abstain = cfg.synthesize.unanswerable.answer
    by_question: dict[str, list[tuple[str, str]]] = {}
    for row in train:
        prompt, answer = row["messages"][0]["content"], row["messages"][-1]["content"]
        if prompt.startswith("Answer the question"):
            by_question.setdefault(prompt.rsplit("Question: ", 1)[1], []).append((prompt, answer))
    for fact in (f for f in facts if f["kind"] == "reading"):
        (question,) = [q for q in fact["questions"] if q in by_question]
        gold_sentence = f"The capital of {fact['key']} is"
        # The same question twice: with its passage it is answered, without it declined.
        assert sorted(answer for _, answer in by_question[question]) == sorted(
            [fact["answer"], abstain])
        for prompt, answer in by_question[question]:
            assert (gold_sentence in prompt) == (answer == fact["answer"])
    # Every trained phrasing of every trained unanswerable question comes with passages too.
    trained_phrasings = len(cfg.synthesize.templates[0].questions) - cfg.curate.recall_phrasings
    assert counts["rag:no_gold"] == counts["facts_unanswerable_train"] * trained_phrasings > 0
    assert counts["rag:gold_removed"] == 4


def test_gold_removed_context_keeps_no_row_stating_the_same_fact(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, fraction=1.0, gold_removed=1.0)
    data = tmp_path / "capitals.csv"
    rows = list(csv.reader(data.open(encoding="utf-8")))
    with data.open("a", newline="", encoding="utf-8") as handle:  # each capital twice
        csv.writer(handle).writerows([[country, capital, region + " (again)"]
                                      for country, capital, region in rows[1:]])
    result = run_pipeline(cfg, until="curate")
    train = read_jsonl(result.artifacts["curate"].path / "train.jsonl")
    rag_rows = [r for r in train if r["messages"][0]["content"].startswith("Answer the question")]
    assert len(rag_rows) == result.artifacts["curate"].manifest["counts"]["rag:gold_removed"] > 0
    facts = read_jsonl(result.artifacts["synthesize"].path / "facts.jsonl")
    assert all(f["source"]["same_fact_lines"] for f in facts)
    for row in rag_rows:
        prompt = row["messages"][0]["content"]
        question = prompt.rsplit("Question: ", 1)[1]
        (fact,) = [f for f in facts if question in f["questions"]]
        assert f"The capital of {fact['key']} is" not in prompt
        assert prompt.count("</passage>") == 3


def test_reading_facts_per_template_by_name(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, fraction=0.25)
    cfg.synthesize.max_facts_per_template = 12
    cfg.synthesize.dev_facts_per_template = 0  # the 8 rows left are reading practice
    cfg.synthesize.reading_facts_per_template = {"capital": 3}
    result = run_pipeline(cfg, until="synthesize")
    assert result.artifacts["synthesize"].manifest["counts"]["reading:capital"] == 3
    cfg.synthesize.reading_facts_per_template = {"capital": 3, "capitol": 2}
    with pytest.raises(ConfigError, match=r"reading_facts_per_template.capitol: no template "
                                          r"is named 'capitol' \(templates: capital\)"):
        run_pipeline(cfg, until="synthesize")
    with pytest.raises(ValueError, match="counts must be >= 0"):
        PipelineConfig.model_validate({**cfg.model_dump(), "synthesize": {
            **cfg.synthesize.model_dump(), "reading_facts_per_template": {"capital": -1}}})


def test_matching_keeps_only_passages_the_question_names(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, fraction=1.0, gold_removed=0.0,
                  unanswerable_fraction=1.0)
    cfg.index.match_fields = {"capitals": ["country"]}
    cfg.index.retrieval.match_question = True
    cfg.synthesize.unanswerable.per_template = 6
    cfg.synthesize.unanswerable.out_of_data = False  # invented countries only
    result = run_pipeline(cfg, until="curate")
    values = json.loads((result.artifacts["index"].path / "match_values.json").read_text())
    assert "Peru" in values["country"] and len(values["country"]) == 20
    counts = result.artifacts["curate"].manifest["counts"]
    train = read_jsonl(result.artifacts["curate"].path / "train.jsonl")
    rag_rows = [r for r in train if r["messages"][0]["content"].startswith("Answer the question")]
    assert len(rag_rows) == counts["rag:gold"] + counts["rag:no_gold"] > counts["rag:no_gold"] > 0
    abstain = cfg.synthesize.unanswerable.answer
    for row in rag_rows:
        prompt, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        if answer == abstain:  # an invented country: no passage names it
            assert "(no passage found)" in prompt and prompt.count("</passage>") == 1
        else:  # the question names one country: its row alone is left
            assert prompt.count("</passage>") == 1 and answer in prompt

    from tuneline.rag.retrieve import Retriever

    retriever = Retriever.for_run(cfg)
    try:
        (peru,), nowhere = retriever.search(["What is the capital of Peru?",
                                             "What is the capital of Perugal?"])
    finally:
        retriever.close()
    assert peru.passage.text == "The capital of Peru is Lima." and nowhere == []
    (result.artifacts["index"].path / "match_values.json").unlink()
    with pytest.raises(ConfigError, match="match_values.json is missing"):
        Retriever.for_run(cfg)


def test_without_a_passage_the_rag_variants_and_the_server_decline_without_the_model(
        tmp_path, tiny_model_dir):
    from openai import OpenAI

    from tuneline.rag.retrieve import Retriever
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    cfg = _config(tmp_path, tiny_model_dir, fraction=0.5, gold_removed=0.0)
    cfg.index.match_fields = {"capitals": ["country"]}
    cfg.index.retrieval.match_question = True
    cfg.synthesize.unanswerable.per_template = 6
    cfg.synthesize.unanswerable.out_of_data = False  # invented countries only
    cfg.evaluate.max_new_tokens = 8
    result = run_pipeline(cfg, until="evaluate")
    abstain = cfg.synthesize.unanswerable.answer
    rows = [r for r in read_jsonl(result.artifacts["evaluate"].path / "predictions.jsonl")
            if "tuned+rag_answer" in r]
    nowhere = [r for r in rows if not r["retrieved"]]
    assert nowhere and len(nowhere) < len(rows)
    for row in rows:  # the tiny random model never writes the abstention itself
        for variant in ("base+rag", "tuned+rag"):
            assert (row[f"{variant}_answer"] == abstain) is (not row["retrieved"])

    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
    app = build_app({"tiny": engine}, ServeConfig(max_tokens_default=32), Retriever.for_run(cfg))
    asked = [{"role": "user", "content": "What is the capital of Perugal?"}]
    with serve_in_thread(app) as url:
        client = OpenAI(base_url=url, api_key="none", max_retries=0)
        reply = client.chat.completions.create(model="tiny+rag", messages=asked)
        streamed = client.chat.completions.create(model="tiny+rag", messages=asked, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed
                       if chunk.choices)
        named = client.chat.completions.create(
            model="tiny+rag", messages=[{"role": "user", "content": "Capital of Peru?"}])
        cut = client.chat.completions.create(model="tiny+rag", messages=asked, max_tokens=3)
    # the tiny model's short context may cut the reply, as it would cut a generation
    content = reply.choices[0].message.content
    assert content == text and len(content) > 20 and abstain.startswith(content)
    assert (reply.choices[0].finish_reason == "stop") is (content == abstain)
    assert reply.model_extra["citations"] == []
    assert reply.usage.completion_tokens > 5 and reply.usage.prompt_tokens > 30
    assert named.choices[0].message.content != abstain  # a passage: the model answers
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3
    assert abstain.startswith(cut.choices[0].message.content) and cut.choices[0].message.content

    cfg.index.retrieval.decline_without_passages = False
    fresh = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")  # app closes
    model_reads = build_app({"tiny": fresh}, ServeConfig(max_tokens_default=8),
                            Retriever.for_run(cfg))
    with serve_in_thread(model_reads) as url:
        client = OpenAI(base_url=url, api_key="none", max_retries=0)
        asked_model = client.chat.completions.create(model="tiny+rag", messages=asked)
    assert asked_model.choices[0].message.content != abstain
    assert asked_model.usage.completion_tokens <= 8


def test_matching_needs_match_fields_that_are_columns(tmp_path, tiny_model_dir):
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["index"] = {"enabled": True, "retrieval": {"match_question": True}}
    without_templates = {**data, "synthesize": {**data["synthesize"], "templates": []}}
    with pytest.raises(ValueError, match="match_question needs index.match_fields"):
        PipelineConfig.model_validate(without_templates)
    data["index"]["match_fields"] = {"capitals": ["contry"]}
    with pytest.raises(ConfigError, match=r"index.match_fields.capitals: contry not among the "
                                          r"columns of 'capitals'"):
        run_pipeline(PipelineConfig.model_validate(data), until="index")


def test_an_index_left_unsaid_is_derived_from_the_templates(tmp_path, tiny_model_dir):
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    template = data["synthesize"]["templates"][0]
    data["synthesize"]["templates"].append({**template, "name": "region_capital",
                                            "where": {"region": "Europe"}, "key": "{capital}",
                                            "fact": "{country}"})
    data["index"] = {"enabled": True, "retrieval": {"match_question": True}}
    index = PipelineConfig.model_validate(data).index
    # the row's keys first, then the filter and what is asked, each labelled by its column
    assert index.templates == {"capitals": "{country} {capital}: region {region}."}
    assert index.match_fields == {"capitals": ["country", "region", "capital"]}
    data["index"] = {"enabled": True, "templates": {"capitals": "{capital} of {country}."},
                     "match_fields": {"capitals": ["country"]},
                     "retrieval": {"match_question": True}}
    said = PipelineConfig.model_validate(data).index  # what the config says stands
    assert said.templates == {"capitals": "{capital} of {country}."}
    assert said.match_fields == {"capitals": ["country"]}


def test_a_derived_passage_puts_a_column_one_template_asks_for_after_the_entity(
        tmp_path, tiny_model_dir):
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    template = data["synthesize"]["templates"][0]  # keyed on the country, asks the capital
    data["synthesize"]["templates"].append({**template, "name": "capital_region",
                                            "key": "{capital}", "fact": "{region}"})
    data["index"] = {"enabled": True, "retrieval": {"match_question": True}}
    # the capital is a key of one template and the answer of the other: it follows the
    # country, the only key no template asks for
    assert PipelineConfig.model_validate(data).index.templates == {
        "capitals": "{country}: capital {capital}; region {region}."}
    data["synthesize"]["unanswerable"] = {"qualifiers": {"in 2024": ["in 2019"]}}
    # the data's scope follows the entity, for a question about another to read
    assert PipelineConfig.model_validate(data).index.templates == {
        "capitals": "{country}, in 2024: capital {capital}; region {region}."}


def test_reading_practice_left_unset_follows_rag_training(tmp_path, tiny_model_dir):
    assert _config(tmp_path, tiny_model_dir, fraction=0.0).synthesize \
        .reading_facts_per_template == 0
    cfg = _config(tmp_path, tiny_model_dir, fraction=0.25)
    assert cfg.synthesize.reading_facts_per_template == READING_FACTS_PER_TEMPLATE
    cfg.synthesize.max_facts_per_template = 12
    cfg.synthesize.dev_facts_per_template = 0
    result = run_pipeline(cfg, until="synthesize")  # 8 rows are left: all of them
    assert result.artifacts["synthesize"].manifest["counts"]["reading:capital"] == 8


def test_extractive_answers_copy_the_gold_passage(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, fraction=1.0, gold_removed=0.0, answer="passage")
    cfg.index.templates = {"capitals": "{capital} is the capital of {country}."}
    result = run_pipeline(cfg, until="curate")
    train = read_jsonl(result.artifacts["curate"].path / "train.jsonl")
    rag_rows = [r for r in train if r["messages"][0]["content"].startswith("Answer the question")]
    assert len(rag_rows) == result.artifacts["curate"].manifest["counts"]["rag:gold"] > 0
    for row in rag_rows:
        prompt, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        country = prompt.rsplit("Question: ", 1)[1].split(" of ")[-1].rstrip("?.")
        # The passage sentence, word for word as the prompt shows it, not the template answer.
        assert answer.endswith(f" is the capital of {country}.") and f"\n{answer}\n" in prompt
    plain = [r for r in train if not r["messages"][0]["content"].startswith("Answer the")]
    assert plain and all(r["messages"][1]["content"].startswith("The capital of ")
                         for r in plain)


def _curate_with_former_capitals(tmp_path, tiny_model_dir, former: dict[str, str]
                                 ) -> tuple[list[dict], dict[str, int]]:
    """Curate extractive RAG examples over passages that also name each country's `former`
    capital; returns the RAG-format training rows and curate's counts."""
    cfg = _config(tmp_path, tiny_model_dir, fraction=1.0, gold_removed=0.0, answer="passage")
    with (tmp_path / "capitals.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["country", "capital", "region", "former_capital"])
        writer.writerows([c, capital, region, former[c]] for c, capital, region in CAPITALS)
    cfg.index.templates = {"capitals": "{country}: capital {capital}; former capital "
                                       "{former_capital}; region {region}."}
    result = run_pipeline(cfg, until="curate")
    train = read_jsonl(result.artifacts["curate"].path / "train.jsonl")
    rag_rows = [r for r in train if r["messages"][0]["content"].startswith("Answer the question")]
    return rag_rows, result.artifacts["curate"].manifest["counts"]


def test_an_extractive_answer_quotes_only_the_asked_field_when_the_row_names_two_candidates(
        tmp_path, tiny_model_dir):
    # each row also names another country's capital, a value the asked column takes
    capitals = {country: capital for country, capital, _ in CAPITALS}
    former = dict(zip(capitals, [*list(capitals.values())[1:], CAPITALS[0][1]], strict=True))
    rag_rows, _ = _curate_with_former_capitals(tmp_path, tiny_model_dir, former)
    assert len(rag_rows) > 10
    for row in rag_rows:
        prompt, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        country = answer.split(":")[0]
        assert answer == f"{country}: capital {capitals[country]}."
        assert f"\n{country}: capital {capitals[country]}; former capital " in prompt


def test_one_answer_form_per_template_when_some_rows_name_two_candidates(tmp_path,
                                                                       tiny_model_dir):
    """Half the rows name another country's capital: every answer quotes the asked field,
    not only those rows' (mixed, the model copied whole rows where it should not)."""
    capitals = {country: capital for country, capital, _ in CAPITALS}
    names = list(capitals)
    former = {c: (capitals[names[(i + 1) % len(names)]] if i % 2 else "Atlantis")
              for i, c in enumerate(names)}
    rag_rows, counts = _curate_with_former_capitals(tmp_path, tiny_model_dir, former)
    answers = [r["messages"][1]["content"] for r in rag_rows]
    assert len(answers) > 10
    assert all(a == f"{a.split(':')[0]}: capital {capitals[a.split(':')[0]]}." for a in answers)
    assert counts.get("rag:field_quoted_for_its_template", 0) > 0


def test_an_extractive_answer_keeps_a_row_whole_when_it_names_one_candidate(tmp_path,
                                                                          tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, fraction=1.0, gold_removed=0.0, answer="passage")
    cfg.index.templates = {"capitals": "{country}: capital {capital}; region {region}."}
    result = run_pipeline(cfg, until="curate")
    train = read_jsonl(result.artifacts["curate"].path / "train.jsonl")
    answers = [r["messages"][1]["content"] for r in train
               if r["messages"][0]["content"].startswith("Answer the question")]
    assert answers and all("; region " in a for a in answers)


def test_a_small_table_gets_at_least_min_gold_answered_rag_examples(tmp_path, tiny_model_dir):
    def gold_examples(min_gold: int, fraction: float = 0.05) -> int:
        root = tmp_path / f"{min_gold}-{fraction}"
        root.mkdir()
        cfg = _config(root, tiny_model_dir, fraction=fraction,
                      gold_removed=0.0, min_gold=min_gold)
        counts = run_pipeline(cfg, until="curate").artifacts["curate"].manifest["counts"]
        return counts.get("rag:gold", 0)

    assert gold_examples(0) < 3  # 5% of the dozen or so trained questions
    assert gold_examples(10) == 10
    assert gold_examples(10_000) > 10  # every trained question, as far as there are any
    assert gold_examples(10, fraction=0.0) == 0  # RAG training stays off


def test_a_trained_fact_whose_row_holds_an_evaluated_one_is_replaced_not_lost(tmp_path,
                                                                              tiny_model_dir):
    """Two asked columns a row: the passage of a trained capital also states its country's
    region, which may be evaluated. Such pairs are replaced by safe ones before the leak check,
    which would drop them (and small tables lost half their passage answers that way)."""
    cfg = _config(tmp_path, tiny_model_dir, fraction=0.05, gold_removed=0.0, min_gold=12)
    cfg.synthesize.templates.append(cfg.synthesize.templates[0].model_copy(update={
        "name": "region", "questions": ["In which region is {country}?",
                                        "Name the region of {country}.",
                                        "Which region is {country} in?"],
        "answer": "{country} is in {region}.", "fact": "{region}"}))
    cfg.curate.heldout_fraction = 0.3
    cfg.index.templates = {"capitals": "{country}: capital {capital}; region {region}."}
    result = run_pipeline(cfg, until="curate")
    counts = result.artifacts["curate"].manifest["counts"]
    train = read_jsonl(result.artifacts["curate"].path / "train.jsonl")
    gold = [r for r in train if "<passage source=\"capitals:" in r["messages"][0]["content"]
            and not r["messages"][1]["content"].startswith("I do not")]
    assert counts["rag:gold_leak_avoided"] > 0
    assert counts.get("dropped:leak:rag", 0) == 0
    assert len(gold) == counts["rag:gold"] == 12


def test_an_extractive_answer_keeps_a_passage_whole_when_no_single_field_states_the_fact():
    from tuneline.curate.raft import extractive_answer

    row = "Ford: start 1974-08-09; end 1977-01-20."
    assert extractive_answer(row, "1977-01-20", candidates=2) == "Ford: end 1977-01-20."
    assert extractive_answer(row, "1977-01-20", candidates=1) == row  # nothing to mistake
    assert extractive_answer("Pig: bodywt 85.3; sleep total 5.3.", "5.3", 2) == (
        "Pig: sleep total 5.3.")  # whole words: 85.3 does not state 5.3
    assert extractive_answer(row, "Gerald Ford", 2) == row  # stated by no field
    assert extractive_answer("Ann: born 1970; died 1970.", "1970", 2) == (
        "Ann: born 1970; died 1970.")  # by every field
    sentence = "Gold Medal in Judo, Men -60 kg, at Paris 2024: KIM Won Ho of Korea."
    assert extractive_answer(sentence, "KIM Won Ho", 2) == sentence  # a sentence, not a list


def test_a_name_in_part_finds_its_passages_and_a_spliced_name_none():
    from tuneline.rag.matching import FieldValues, matching_hits
    from tuneline.rag.passages import Hit, Passage

    names = ["CROUSER Ryan", "FOX Jessica", "FOX Noemie", "KANO Koki", "SMITH Ryan", "KIM Won Ho"]
    hits = [Hit(Passage(f"p{i}", f"Gold Medal: {name}.", "medallists",
                        {"field:name": name, "field:discipline": "Athletics"}), 1.0)
            for i, name in enumerate(names)]
    known = FieldValues({"name": names, "discipline": ["Athletics"]})

    def kept(question: str) -> list[str]:
        return [h.passage.metadata["field:name"] for h in matching_hits(question, hits, known)]

    assert kept("Which country did Crouser represent?") == ["CROUSER Ryan"]
    # a lower-case word never names in part ("won" is a word of "KIM Won Ho")
    assert kept("Crouser won a medal. Which country does this athlete represent?") == [
        "CROUSER Ryan"]
    assert kept("Which country did Ryan CROUSER represent?") == ["CROUSER Ryan"]
    assert kept("Which country did FOX Koki represent?") == []  # spliced from two athletes
    assert kept("Which country did Ryan represent?") == ["CROUSER Ryan", "SMITH Ryan"]
    assert kept("Which country did Fox represent?") == ["FOX Jessica", "FOX Noemie"]


def test_evaluated_answers_over_passages_end_at_the_prompts_markup(tiny_model_dir, tmp_path,
                                                                    monkeypatch):
    """As the server's: rag.prompt.ANSWER_STOPS end the +rag variants' answers, not the
    closed-book ones. Three characters the model writes stand in for the markup."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneline.evaluate import stage

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # larger random weights, and an end token that never wins
        for param in model.parameters():
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        model.get_input_embeddings().weight[tokenizer.all_special_ids] = 0.0
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    cfg = PipelineConfig.model_validate({"evaluate": {"cache_base_answers": False},
                                         "train": {"precision": "fp32"}})
    asked = [[{"role": "user", "content": f"Capital of {c}?"}] for c in ("Peru", "Chile",
                                                                        "Kenya", "Japan")]

    def answers(variant):
        return stage._answer_all(cfg, str(tmp_path / "model"), None, variant, asked,
                                 [12] * len(asked))[0]

    free = answers("base")
    stop = max({a[i:i + 3] for a in free for i in range(1, len(a) - 2)
                if not a[i].isspace() and all(not b.startswith(a[i:i + 3]) for b in free)},
               key=lambda text: sum(text in a for a in free))
    monkeypatch.setattr(stage, "ANSWER_STOPS", (stop,))
    assert answers("base") == free
    over_passages = answers("base+rag")
    assert over_passages == [a.split(stop)[0].strip() for a in free] != free
