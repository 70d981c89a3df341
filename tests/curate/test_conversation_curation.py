"""Curating conversations: masked, deduplicated, split so no thread or customer spans two
splits, and every evaluated reply either absent from training or set apart as recall."""

from __future__ import annotations

from tuneline.curate.config import CurateConfig
from tuneline.curate.conversation_split import (
    clean_conversations,
    reference_items,
    separate_trained_replies,
    split_conversations,
)
from tuneline.synthesize.conversations import Conversation


def _talk(thread, question, reply, group=None, source="tickets"):
    return Conversation(f"id-{thread}", source, thread,
                        [{"role": "user", "content": question},
                         {"role": "assistant", "content": reply}],
                        group, {"file": "t", "lines": [1]})


def test_pii_is_masked_and_duplicates_dropped():
    talks = [_talk("1", "Mail me at ana@example.com", "Sure."),
             _talk("2", "mail me at  ana@example.com", "Sure."),
             _talk("3", "Something else entirely about the warranty terms", "Two years.")]
    kept, counts = clean_conversations(talks, CurateConfig())
    assert [t.thread for t in kept] == ["1", "3"]
    assert kept[0].messages[0]["content"] == "Mail me at <EMAIL>"
    assert counts["conversations:pii:EMAIL"] == 2
    assert counts["conversations:dropped:exact_duplicate"] == 1


def test_a_customer_never_spans_two_splits():
    talks = [_talk(str(i), f"question {i}", f"answer number {i}", group=f"c{i % 7}")
             for i in range(70)]
    split = split_conversations(talks, 0.2, 0.1, 0.1, seed=3)
    sides = {name: {t.group for t in getattr(split, name)}
             for name in ("train", "val", "heldout", "dev")}
    assert all(sides.values())
    names = list(sides)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not sides[a] & sides[b], (a, b)
    assert sum(len(getattr(split, n)) for n in names) == 70
    again = split_conversations(talks, 0.2, 0.1, 0.1, seed=3)
    assert [t.thread for t in again.heldout] == [t.thread for t in split.heldout]


def test_replies_said_in_training_are_recall_not_heldout():
    canned = "Hold the reset button for fifteen seconds until the light blinks amber."
    split = split_conversations([], 0, 0, 0, seed=0)
    split.train = [_talk("1", "How do I reset?", canned)]
    split.heldout = [_talk("2", "Router frozen, what now?", canned.replace("fifteen", "15")),
                     _talk("3", "Do you ship to Canada?", "Yes, in five to seven days.")]
    split.dev = [_talk("4", "Reset?", canned)]
    moved = separate_trained_replies(split, threshold=0.5)
    assert moved == 2
    assert [t.thread for t in split.heldout] == ["3"]
    assert [t.thread for t in split.heldout_recall] == ["2"]
    assert [t.thread for t in split.dev_recall] == ["4"] and split.dev == []


def test_reference_items_ask_the_history_and_keep_the_last_reply():
    talk = Conversation("abc", "tickets", "9",
                        [{"role": "system", "content": "Be kind."},
                         {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello, how can I help?"},
                         {"role": "user", "content": "Refund?"},
                         {"role": "assistant", "content": "Within 30 days."}],
                        None, {"file": "db", "lines": [4, 5, 6, 7]})
    [item] = reference_items([talk])
    assert item["set"] == "reference" and item["reference"] == "Within 30 days."
    assert item["question"] == "Refund?" and len(item["messages"]) == 4
    assert item["messages"][-1] == {"role": "user", "content": "Refund?"}
    assert item["source"] == {"source": "tickets", "file": "db", "lines": [4, 5, 6, 7]}


def test_trained_questions_reworded_for_recall():
    from tuneline.curate.conversation_split import rephrased_items
    from tuneline.curate.rephrase import rephrase_question

    assert rephrase_question("How can I reset it?") == "Is there a way to reset it?"
    assert rephrase_question("Can I end a raw string with a backslash?") == (
        "Is it possible to end a raw string with a backslash?")
    assert rephrase_question("Why can't I do that?") is None  # no rule: left out
    assert rephrase_question("How do I a? And b?") is None  # two questions
    talks = [_talk(str(i), f"How can I do thing {i}?", f"Like this {i}.") for i in range(8)]
    talks.append(_talk("x", "Why is it so?", "Because."))
    test, dev = rephrased_items(talks, 0.5, seed=0)
    assert len(test) == len(dev) == 2
    for item in test + dev:
        assert item["set"] == "reference_recall" and item["id"].endswith("-reworded")
        number = item["reworded_from"].split()[-1].rstrip("?")
        assert item["question"] == f"Is there a way to do thing {number}?"
        assert item["messages"] == [{"role": "user", "content": item["question"]}]
        assert item["reference"] == f"Like this {number}."
    assert rephrased_items(talks, 0.0, seed=0) == ([], [])
