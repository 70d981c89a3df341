import pytest

from conftest import CAPITALS
from tuneline.config import PipelineConfig, load_config
from tuneline.curate.config import BalanceConfig, SelectConfig
from tuneline.curate.select import balance_categories, select_informative, target_size
from tuneline.errors import ConfigError
from tuneline.synthesize.templates import Fact

pytest.importorskip("sklearn")


def _fact(i, question, answer, template="t", source="s"):
    return Fact(fact_id=f"f{i:03d}", template=template, key=str(i), fact=answer.split()[0],
                answer=answer, questions=[question, question + " Again?"],
                source={"source": source, "file": f"{source}.csv", "line": i + 2})


def _select(facts, **cfg):
    return select_informative(facts, SelectConfig(enabled=True, **cfg), seed=0)


BOILERPLATE = ("Who won the race at the games?", "The runner won the race at the games.")


def test_target_size_takes_the_smaller_of_count_and_fraction():
    assert target_size(100, None, None) == 100
    assert target_size(100, 30, None) == 30
    assert target_size(100, None, 0.25) == 25
    assert target_size(100, 30, 0.1) == 10
    assert target_size(10, 50, None) == 10
    assert target_size(3, None, 0.01) == 1


def test_informative_facts_beat_copies_of_common_words():
    common = [_fact(i, *BOILERPLATE) for i in range(8)]
    distinct = [
        _fact(8, "Which river flows through Paris?", "The Seine flows through Paris."),
        _fact(9, "Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
        _fact(10, "What is the capital of Peru?", "Lima is the capital of Peru."),
    ]
    facts = common[:4] + distinct + common[4:]
    kept, details = _select(facts, max_facts=3, rare_term_share=0.0)
    assert [f.fact_id for f in kept] == ["f008", "f009", "f010"]
    assert details["kept"] == 3 and details["by_score"] == 3


def test_rare_term_share_covers_terms_the_top_scores_repeat():
    filler = "Which event at the Paris games did the athlete from the team win today"
    facts = [
        _fact(0, "Zebra yak?", "Zebra yak."),
        _fact(1, "Zebra yak ok?", "Zebra yak ok."),
        _fact(2, f"Quokka {filler}?", f"Quokka {filler}."),
        *(_fact(3 + i, f"{filler}?", f"{filler} {i % 2}.") for i in range(6)),
    ]
    by_score, score_details = _select(facts, max_facts=2, rare_term_share=0.0, rare_max_df=2)
    assert {f.fact_id for f in by_score} == {"f000", "f001"}
    assert score_details["rare_terms_covered"] == 3  # zebra, yak, ok

    by_cover, cover_details = _select(facts, max_facts=2, rare_term_share=1.0, rare_max_df=2)
    ids = {f.fact_id for f in by_cover}
    assert "f002" in ids and len(ids & {"f000", "f001"}) == 1
    assert cover_details["by_rare_terms"] == 2
    assert cover_details["rare_terms_covered"] > 2


def test_selection_is_seeded_and_keeps_input_order():
    facts = [_fact(i, *BOILERPLATE) for i in range(30)]  # all tie
    cfg = SelectConfig(enabled=True, max_facts=10)
    first, _ = select_informative(facts, cfg, seed=1)
    again, _ = select_informative(list(reversed(facts)), cfg, seed=1)
    other, _ = select_informative(facts, cfg, seed=2)
    assert len(first) == 10
    assert {f.fact_id for f in first} == {f.fact_id for f in again}
    assert {f.fact_id for f in first} != {f.fact_id for f in other}
    assert first == sorted(first, key=facts.index)


def _by_template(sizes):
    facts, i = [], 0
    for name, n in sizes.items():
        for _ in range(n):
            facts.append(_fact(i, f"Question {i}?", f"Answer {i}.", template=name,
                               source="src1" if name == "a" else "src2"))
            i += 1
    return facts


def test_balance_caps_each_category_exactly():
    facts = _by_template({"a": 10, "b": 5, "c": 2})
    kept, details = balance_categories(facts, BalanceConfig(enabled=True, max_per_category=4),
                                       seed=0)
    assert details["before"] == {"a": 10, "b": 5, "c": 2}
    assert details["after"] == {"a": 4, "b": 4, "c": 2}
    assert len(kept) == 10 and kept == sorted(kept, key=facts.index)
    again, _ = balance_categories(facts, BalanceConfig(enabled=True, max_per_category=4), 0)
    assert again == kept


def test_balance_equal_and_by_source():
    facts = _by_template({"a": 10, "b": 5, "c": 2})
    _, equal = balance_categories(facts, BalanceConfig(enabled=True, strategy="equal"), 0)
    assert equal["after"] == {"a": 2, "b": 2, "c": 2}
    _, capped = balance_categories(
        facts, BalanceConfig(enabled=True, strategy="equal", max_per_category=1), 0)
    assert capped["after"] == {"a": 1, "b": 1, "c": 1}
    _, sources = balance_categories(
        facts, BalanceConfig(enabled=True, by="source", max_per_category=6), 0)
    assert sources["before"] == {"src1": 10, "src2": 7}
    assert sources["after"] == {"src1": 6, "src2": 6}


def test_balance_by_kind():
    facts = _by_template({"a": 6})
    for fact in facts[:2]:
        fact.kind = "unanswerable"
    cfg = BalanceConfig(enabled=True, by="kind", strategy="equal")
    kept, details = balance_categories(facts, cfg, 0)
    assert details["before"] == {"qa": 4, "unanswerable": 2}
    assert details["after"] == {"qa": 2, "unanswerable": 2}
    assert facts[0] in kept and facts[1] in kept


def test_config_needs_sizes_when_enabled():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["curate.select.enabled=true", "curate.balance.enabled=true"])
    problems = "\n".join(caught.value.problems)
    assert "curate.select" in problems and "max_facts or fraction" in problems
    assert "curate.balance" in problems and "max_per_category" in problems
    ok = load_config(None, ["curate.balance.enabled=true", "curate.balance.strategy=equal"])
    assert ok.curate.balance.strategy == "equal"


def _synthesized(tmp_path, facts):
    from tuneline.artifacts import Artifact, write_jsonl

    folder = tmp_path / "synthesize"
    folder.mkdir()
    write_jsonl(folder / "facts.jsonl", (f.to_json() for f in facts))
    return Artifact("synthesize", folder, {"output_hash": "0" * 64, "details": {}})


def _capital_facts():
    facts = []
    for i, (country, capital, region) in enumerate(CAPITALS * 2):
        template = "capital" if i < len(CAPITALS) else "region"
        answer = (f"The capital of {country} is {capital}." if template == "capital"
                  else f"{country} lies in {region}, with {capital} as its capital.")
        facts.append(_fact(i, f"Tell me the {template} of {country}?", answer, template))
    return facts


def test_curate_shapes_only_the_training_facts(tmp_path):
    pytest.importorskip("datasketch")
    from tuneline.curate import stage as curate

    synthesized = _synthesized(tmp_path, _capital_facts())
    base_cfg = {"heldout_fraction": 0.2, "val_fraction": 0.1, "dev_fraction": 0.0,
                "recall_dev_fraction": 0.0, "card": False}
    plain = curate.run(PipelineConfig.model_validate({"curate": base_cfg}), synthesized, None,
                       tmp_path / "plain")
    shaped_cfg = PipelineConfig.model_validate({"curate": {
        **base_cfg, "select": {"enabled": True, "fraction": 0.8},
        "balance": {"enabled": True, "max_per_category": 8}}})
    shaped = curate.run(shaped_cfg, synthesized, None, tmp_path / "shaped")
    before, after = plain.manifest["counts"], shaped.manifest["counts"]
    assert after["dropped:select"] == before["facts_train"] - round(before["facts_train"] * 0.8)
    assert shaped.manifest["details"]["balance"]["after"] == {"capital": 8, "region": 8}
    assert after["facts_train"] == 16 == after["recall"]
    assert after["train"] == 16  # one trained phrasing each; the last probes recall
    for name in ("val.jsonl", "test.jsonl", "eval/heldout.jsonl"):
        assert (plain.path / name).read_bytes() == (shaped.path / name).read_bytes()
