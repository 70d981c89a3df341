"""Out-of-data questions land on their origin fact's side; what is asked is never trained."""

from __future__ import annotations

from tuneline.curate.out_of_data_split import probe_chats, probe_eval_sets, split_probes
from tuneline.synthesize.out_of_data import ABSENT_ATTRIBUTE, OTHER_QUALIFIER, VARIANT_NAME
from tuneline.synthesize.templates import Fact


def _fact(i: int, kind: str = "qa", origin: str | None = None, probe: str = "") -> Fact:
    source = {"source": "t", "file": "t.csv", "line": i}
    if origin is not None:
        source |= {"origin": origin, "probe": probe}
    return Fact(f"{kind}-{i}", "tpl", f"key{i}", "" if kind != VARIANT_NAME else f"v{i}",
                "answer", [f"q{i} a", f"q{i} b"], source, kind, [f"key{i}"])


def test_probes_follow_their_origin_and_asked_attributes_are_never_trained():
    facts = [_fact(i) for i in range(40)]
    train, heldout, dev, val = facts[:24], facts[24:32], facts[32:36], facts[36:]
    recall_test, recall_dev = train[:20], train[20:]
    attributes = [f"attr{i}" for i in range(5)]
    probes = [_fact(100 + i, kind, f.fact_id, attributes[i % 5])
              for i, f in enumerate(facts)
              for kind in (ABSENT_ATTRIBUTE, OTHER_QUALIFIER, VARIANT_NAME)]
    split = split_probes(probes, train, heldout, recall_test, recall_dev, dev, seed=0)
    origin = lambda group: {p.source["origin"] for p in group}  # noqa: E731
    trained_origins = origin(split.train[ABSENT_ATTRIBUTE] + split.train[OTHER_QUALIFIER])
    assert trained_origins <= {f.fact_id for f in train}
    for side in (split.test, split.dev):
        for kind in (ABSENT_ATTRIBUTE, OTHER_QUALIFIER):
            assert side[kind] and not origin(side[kind]) & trained_origins
    assert not origin(split.test[OTHER_QUALIFIER]) & origin(split.dev[OTHER_QUALIFIER])
    asked = {p.source["probe"] for p in split.test[ABSENT_ATTRIBUTE] + split.dev[ABSENT_ATTRIBUTE]}
    trained = {p.source["probe"] for p in split.train[ABSENT_ATTRIBUTE]}
    assert asked and trained and not asked & trained
    assert VARIANT_NAME not in split.train
    assert origin(split.test[VARIANT_NAME]) == {f.fact_id for f in heldout + recall_test}
    assert not origin(split.test[VARIANT_NAME] + split.dev[VARIANT_NAME]) & {
        f.fact_id for f in val}


def test_probe_chats_and_eval_items():
    probes = [_fact(1, ABSENT_ATTRIBUTE, "qa-1", "coach"), _fact(2, OTHER_QUALIFIER, "qa-2"),
              _fact(3, VARIANT_NAME, "qa-3")]
    split = split_probes(probes, [_fact(1), _fact(2)], [_fact(3)], [], [], [], seed=0)
    chats = probe_chats(split, slice(None, -1))
    assert sum(len(c) for c in chats.values()) <= 3
    sets = probe_eval_sets({k: [p for p in probes if p.kind == k]
                            for k in (ABSENT_ATTRIBUTE, OTHER_QUALIFIER, VARIANT_NAME)},
                           slice(-1, None))
    assert [i["question"] for i in sets[ABSENT_ATTRIBUTE]] == ["q1 a", "q1 b"]
    assert [i["question"] for i in sets[OTHER_QUALIFIER]] == ["q2 b"]
    assert all(i["expect"] == "abstain" for i in sets[ABSENT_ATTRIBUTE] + sets[OTHER_QUALIFIER])
    assert "expect" not in sets[VARIANT_NAME][0] and sets[VARIANT_NAME][0]["fact"] == "v3"
