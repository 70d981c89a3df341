import sys

import pytest

from tuneline.data.card import CardInputs, drops, lengths, top_terms, write_card
from tuneline.data.templates import Fact

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
    )


def test_card_helpers():
    card = _card()
    assert drops(card) == {"synthesize:capital:empty_field": 5, "dropped:exact_duplicate": 4,
                           "dropped:near_duplicate": 0, "pii:EMAIL": 7, "dropped:select": 11}
    questions, answers = lengths(card.facts["train"])
    assert questions == [6, 8, 6, 8, 6, 8] and answers == [6, 6, 6]
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
    assert "| capital | 2 | 1 | 1 |" in text and "| region | 1 | 0 | 0 |" in text
    assert "| qa | 2 | 1 | 1 |" in text and "| unanswerable | 1 | 0 | 0 |" in text
    for row in ("| dropped:exact_duplicate | 4 |", "| pii:EMAIL | 7 |",
                "| dropped:select | 11 |", "| synthesize:capital:empty_field | 5 |"):
        assert row in text
    assert "`abc123`" in text and "`def456`" in text
    assert "| capitals | `/data/capitals.csv` | 4 |" in text
    assert "| regions | `/data/regions.csv` | 1 |" in text
    assert "In words" in text and "| train | question | 6 | 6 | 7.0 | 8 |" in text
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
