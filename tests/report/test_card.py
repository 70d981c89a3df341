import sys

import pytest

from tuneline.artifacts import Artifact, write_json_atomic
from tuneline.curate.formats import chat_example
from tuneline.report.card import (
    CardInputs,
    Lengths,
    drops,
    escape_cell,
    measure_lengths,
    over_cutoff,
    samples,
    stage_counts,
    top_terms,
    upstream_counts,
    write_card,
)
from tuneline.synthesize.templates import Fact

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fact(i, country, capital, template="capital", source="capitals"):
    return Fact(fact_id=f"f{i}", template=template, key=country, fact=capital,
                answer=f"The capital of {country} is {capital}.",
                questions=[f"What is the capital of {country}?",
                           f"Which city is the capital of {country} today?"],
                source={"source": source, "file": f"/data/{source}.csv", "line": i + 2})


def _card():
    train = [_fact(0, "France", "Paris"), _fact(1, "Spain", "Madrid"),
             _fact(2, "Peru", "Lima", template="region", source="regions")]
    train[1].kind = "unanswerable"
    return CardInputs(
        title="capitals",
        facts={"train": train, "val": [_fact(3, "Chile", "Santiago")],
               "heldout": [_fact(4, "Kenya", "Nairobi")]},
        rows={"train": 3, "val": 1, "test": 2, "recall": 3, "heldout": 1},
        counts={"dropped:exact_duplicate": 4, "dropped:near_duplicate": 0, "pii:EMAIL": 7,
                "dropped:select": 11, "facts_train": 3, "train": 3},
        config={"curate": {"heldout_fraction": 0.1}, "run": {"seed": 0}},
        data_hash="abc123",
        upstream_hash="def456",
        upstream_skipped={"capital": {"empty_field": 5, "ambiguous_key": 0}},
        details={"balance": {"by": "template", "before": {"capital": 9}, "after": {"capital": 2}}},
        lengths=Lengths("tokens", {"train": [10, 20, 30], "val": [15], "test": [40, 50]},
                        cutoff=25, source="tiny"),
        eval_sets={"heldout": [{"set": "heldout", "template": "capital",
                                "question": "Capital | of\nKenya?", "reference": "Nairobi."}]},
        stages={"ingest": {"rows:capitals": 5, "records": 5},
                "synthesize": {"facts:capital": 9, "questions": 18}},
        seed=0,
    )


def test_card_helpers():
    card = _card()
    assert drops(card) == {"synthesize:capital:empty_field": 5, "dropped:exact_duplicate": 4,
                           "dropped:near_duplicate": 0, "pii:EMAIL": 7, "dropped:select": 11}
    assert over_cutoff(card.lengths) == (3, 6)
    assert stage_counts(card) == [
        ["ingest", "rows:capitals", 5], ["ingest", "records", 5],
        ["synthesize", "facts:capital", 9], ["synthesize", "questions", 18],
        ["synthesize", "rows skipped (all templates)", 5],
        ["curate", "facts kept", 5], ["curate", "facts dropped", 15]]
    assert escape_cell("a|b\nc\\d <x>") == "a\\|b<br>c\\\\d &lt;x>"
    assert escape_cell("x" * 500).endswith("…") and len(escape_cell("x" * 500)) == 160
    terms = dict(top_terms(card.facts["train"]))
    assert terms["capital"] == 3 and terms["paris"] == 1 and "the" not in terms


def _assert_real_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    colours = pixels.reshape(-1, pixels.shape[-1])
    background = (colours == colours[0]).all(axis=1).mean()
    assert len({tuple(c) for c in colours[::7]}) > 5
    assert background < 0.97, f"{path.name} is almost blank"


def test_card_reports_the_numbers_and_draws_plots(tmp_path):
    pytest.importorskip("matplotlib")
    files = write_card(tmp_path, _card())
    text = (tmp_path / "dataset_card.md").read_text(encoding="utf-8")
    assert files[0] == "dataset_card.md" and len(files) == 6
    assert "| train | 3 | 3 |" in text and "| test | 1 | 2 |" in text
    assert "| recall | 2 | 3 |" in text  # the trained abstention fact is not asked for recall
    assert "| capital | 2 | 1 | 1 |" in text and "| region | 1 | 0 | 0 |" in text
    assert "| qa | 2 | 1 | 1 |" in text and "| unanswerable | 1 | 0 | 0 |" in text
    for row in ("| dropped:exact_duplicate | 4 |", "| pii:EMAIL | 7 |",
                "| dropped:select | 11 |", "| synthesize:capital:empty_field | 5 |"):
        assert row in text
    assert "`abc123`" in text and "`def456`" in text
    assert "| capitals | `/data/capitals.csv` | 4 |" in text
    assert "| regions | `/data/regions.csv` | 1 |" in text
    assert "**3 of 6 examples (50.0%) are longer than `train.max_seq_len` = 25" in text
    assert "| train | 3 | 10 | 20 | 30 | 1 |" in text
    assert "| test | 2 | 40 | 45.0 | 50 | 2 |" in text
    assert "| ingest | rows:capitals | 5 |" in text and "| curate | facts kept | 5 |" in text
    assert "| heldout / capital | Capital \\| of<br>Kenya? | Nairobi. |" in text
    assert "| train / capital / unanswerable | What is the capital of Spain? |" in text
    assert "| capital | 3 |" in text  # top terms
    assert "heldout_fraction: 0.1" in text and "balance:" in text
    for name in files[1:]:
        assert f"]({name})" in text
        _assert_real_png(tmp_path / name)


def test_card_without_matplotlib_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert write_card(tmp_path, _card()) == ["dataset_card.md"]
    text = (tmp_path / "dataset_card.md").read_text(encoding="utf-8")
    assert "matplotlib is not installed" in text and ".png" not in text
    assert not (tmp_path / "card").exists()


def test_card_is_deterministic(tmp_path):
    pytest.importorskip("matplotlib")
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        write_card(tmp_path / run, _card())
    for name in ("dataset_card.md", "card/splits.png", "card/lengths.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_samples_are_seeded_and_cover_every_group():
    card = _card()
    card.facts["train"] += [_fact(i, f"Land{i}", f"City{i}") for i in range(10, 20)]
    rows = samples(card)
    assert rows == samples(card)
    groups = [row[0] for row in rows]
    assert groups.count("train / capital / qa") == 3 and groups.count("train / region / qa") == 1
    assert groups.count("heldout / capital") == 1
    card.seed = 1
    assert samples(card) != rows


def _chats():
    short, long = ("What is the capital of Peru?", "Lima."), (
        "Which city is the capital of France today, and why?", "The capital of France is Paris.")
    return {"train": [chat_example(*short), chat_example(*long)],
            "val": [chat_example(*long)], "test": []}


def test_token_lengths_are_what_the_trainer_sees(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    chats = _chats()
    ids = [tokenizer.apply_chat_template(ex["messages"], tokenize=True, return_dict=False)
           for ex in chats["train"]]
    # Training stops at the end-of-turn token: the template's newline after it is not fed.
    expected = [len(i) - 1 for i in ids]
    found = measure_lengths(chats, str(tiny_model_dir), None, cutoff=expected[0])
    assert found.unit == "tokens" and found.cutoff == expected[0]
    assert found.per_split == {"train": expected, "val": expected[1:], "test": []}
    assert expected[1] > expected[0] and over_cutoff(found) == (2, 3)
    card = _card()
    card.lengths = found
    write_card(tmp_path, card)
    text = (tmp_path / "dataset_card.md").read_text(encoding="utf-8")
    assert f"**2 of 3 examples (66.7%) are longer than `train.max_seq_len` = {expected[0]}" in text


def test_lengths_fall_back_to_words_and_say_why(tmp_path, monkeypatch):
    chats = _chats()
    found = measure_lengths(chats, str(tmp_path), None, cutoff=16)  # no config.json there
    assert found.unit == "words" and found.cutoff is None and "no config.json" in found.source
    assert found.per_split == {"train": [7, 16], "val": [16], "test": []}
    monkeypatch.setitem(sys.modules, "transformers", None)
    found = measure_lengths(chats, str(tmp_path), None, cutoff=16)
    assert found.unit == "words" and "pip install 'tuneline[train]'" in found.source
    card = _card()
    card.lengths = found
    write_card(tmp_path, card)
    text = (tmp_path / "dataset_card.md").read_text(encoding="utf-8")
    assert "In words" in text and "tokens could not be counted (MissingDependencyError" in text
    assert "| train | 2 | 7 | 11.5 | 16 | - |" in text


def test_upstream_counts_read_the_ingest_manifest_synthesize_used(tmp_path):
    write_json_atomic(tmp_path / "ingest" / "manifest.json",
                      {"output_hash": "h1", "counts": {"rows:a": 3, "records": 3}})
    manifest = {"inputs": {"ingest": "h1"}, "counts": {"facts": 2}}
    synthesized = Artifact("synthesize", tmp_path / "synthesize", manifest)
    assert upstream_counts(synthesized) == {"ingest": {"rows:a": 3, "records": 3},
                                            "synthesize": {"facts": 2}}
    manifest["inputs"]["ingest"] = "h2"  # ingest ran again since: its counts would mislead
    assert upstream_counts(synthesized) == {"synthesize": {"facts": 2}}
    card = _card()
    card.stages = upstream_counts(synthesized)
    write_card(tmp_path, card)
    assert "ingest manifest that synthesize read was not found" in (
        tmp_path / "dataset_card.md").read_text(encoding="utf-8")


def test_curate_card_counts_tokens_and_follows_the_cutoff(tiny_model_dir, tmp_path):
    from conftest import tiny_pipeline_config
    from tuneline.config import PipelineConfig
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)

    def curate(max_seq_len):
        data["train"]["max_seq_len"] = max_seq_len
        cfg = PipelineConfig.model_validate(data)
        return run_pipeline(cfg, until="curate").artifacts["curate"]

    first = curate(4096)
    assert first.manifest["details"]["card"]["lengths"] == "tokens"
    text = (first.path / "dataset_card.md").read_text(encoding="utf-8")
    assert "| ingest | rows:capitals | 20 |" in text and "**0 of " in text
    assert curate(4096).skipped
    again = curate(16)  # every example is longer than 16 tokens
    assert not again.skipped
    total = sum(again.manifest["counts"][s] for s in ("train", "val", "test"))
    text = (again.path / "dataset_card.md").read_text(encoding="utf-8")
    assert f"**{total} of {total} examples (100.0%)" in text
