import pytest

from tuneline.curate.clean import normalize_text
from tuneline.curate.dedup import NearDuplicateIndex, exact_duplicates, near_duplicates

pytest.importorskip("datasketch")


def test_normalize_text():
    raw = "\ufeffＰaris\u00a0 2024\u200b\r\n\r\n\r\n\r\n  gold\tmedal \x07"
    assert normalize_text(raw) == "Paris 2024\n\ngold medal"


def test_exact_duplicates_ignore_case_spacing_and_punctuation():
    texts = ["Who won gold?", "who  won GOLD", "Who won silver?", "Who won gold ?!"]
    assert exact_duplicates(texts) == [1, 3]


def test_near_duplicates_catch_small_edits_but_not_different_facts():
    base = ("My order 5512 arrived damaged and the box was open, the screen is cracked and "
            "I would like a replacement or a refund as soon as possible please")
    texts = [
        base,
        base.replace("as soon as possible please", "as soon as possible, please!"),
        base.replace("cracked", "scratched"),
        "Which country did LEDECKY Katie represent at the Paris 2024 Olympics?",
        "Which country did MARCHAND Leon represent at the Paris 2024 Olympics?",
    ]
    assert near_duplicates(texts, threshold=0.8) == [1]


def test_index_query_finds_the_source_of_a_leak():
    index = NearDuplicateIndex(threshold=0.7)
    train = ["the printer on floor three jams every morning when printing double sided pages",
             "password reset emails never arrive for users on the finance team mailbox"]
    for text in train:
        index.add(text)
    leak = "password reset emails never arrive for users on the finance team mailbox today"
    assert index.query(leak) == [1]
    assert index.query("the cafeteria menu changed on monday") == []


def _fact(i, question, answer, template="t"):
    from tuneline.synthesize.templates import Fact

    return Fact(fact_id=f"f{i}", template=template, key=str(i), fact=answer.split()[-1],
                answer=answer, questions=[question, question + " (again)"], source={})


def test_clean_facts_redacts_normalises_and_dedups():
    from tuneline.curate.clean import clean_facts
    from tuneline.curate.config import CurateConfig

    long_q = ("Customer says the router at the branch office keeps dropping the VPN tunnel "
              "every evening after the backup job starts, what should they check first")
    facts = [
        _fact(0, "How do I reach  support?", "Write to help@acme.io or call +1 415 555 2671."),
        _fact(1, "how do I reach support", "Write to HELP@acme.io or call +1 415 555 2671!"),
        _fact(2, long_q + "?", "Check the MTU setting on the tunnel."),
        _fact(3, long_q + " please?", "Check the MTU setting on the tunnel."),
        _fact(4, "Who won the 100m?", "Noah LYLES won."),
    ]
    kept, counts = clean_facts(facts, CurateConfig())
    assert [f.fact_id for f in kept] == ["f0", "f2", "f4"]
    assert kept[0].questions[0] == "How do I reach support?"
    assert kept[0].answer == "Write to <EMAIL> or call <PHONE>."
    assert counts["pii:EMAIL"] == 2 and counts["pii:PHONE"] == 2
    assert counts["dropped:exact_duplicate"] == 1
    assert counts["dropped:near_duplicate"] == 1
    off = CurateConfig.model_validate({"pii": {"enabled": False},
                                       "dedup": {"exact": False, "near": False}})
    kept, counts = clean_facts(facts, off)
    assert len(kept) == 5 and "help@acme.io" in kept[0].answer and "pii:EMAIL" not in counts


def test_drop_leaks_removes_heldout_near_copies_of_train():
    from tuneline.curate.split import FactSplit, drop_leaks

    text = "the badge reader at gate four rejects every contractor badge issued this month"
    split = FactSplit(train=[_fact(0, text, "Reissue the badges.")],
                      heldout=[_fact(1, text + " again", "Reissue the badges."),
                               _fact(2, "Who won the 100m?", "Noah LYLES won.")])
    assert drop_leaks(split, 0.7) == 1
    assert [f.fact_id for f in split.heldout] == ["f2"]


def test_the_ascii_fast_path_agrees_with_full_normalisation():
    import random

    from tuneline.curate.clean import _normalize_full

    rng = random.Random(1)
    alphabet = "ab \n\t\r.\x07-"
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
               for _ in range(3000)]
    for text in samples:
        assert normalize_text(text) == _normalize_full(text), repr(text)


def test_the_ascii_exact_key_agrees_with_the_unicode_path():
    import hashlib
    import random

    from tuneline.curate.dedup import _NON_WORD, exact_key

    rng = random.Random(2)
    alphabet = "aZ9_ -.,!\t\n'"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        words = _NON_WORD.sub(" ", text.casefold()).strip().encode()
        assert exact_key(text) == hashlib.blake2b(words, digest_size=16).digest(), repr(text)
    assert exact_key("Crème BRÛLÉE!") == exact_key("crème brûlée")
