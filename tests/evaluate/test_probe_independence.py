"""The forgetting probe and the replay prompts share no question template."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

import pytest

from tuneline.config import PipelineConfig
from tuneline.evaluate.stage import general_probe
from tuneline.train.replay import replay_prompts

# Replay trains on the base model's answers to its prompts. A probe question that differs from
# a replay prompt only in its filler ("the capital of Canada" / "of France") measures replay,
# not retained ability, so the two are compared as templates, never as strings.
SLOT = "<slot>"
ARTICLES = {"a", "an", "the"}  # they follow the filler ("a day", "an hour")
NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "hundred", "thousand", "million"}
QUOTED = re.compile(r"(?<!\w)(?:'[^']+'|\"[^\"]+\")(?!\w)")
TOKEN = re.compile(rf"{SLOT}|[\w']+|[.?!:]")
MAX_SLOTS = 2  # spans in which two questions of one template may differ
MAX_SPAN = 2  # words one slot's filler may take on either side
MIN_FRAME = 4  # shared words around the slots, so "what is the _ of _" alone is no match


def question_template(text: str) -> tuple[str, ...]:
    """The question's frame: lowercased, articles dropped, and each quoted span, number and
    proper noun (a capitalised word not opening a sentence) made one slot."""
    words: list[str] = []
    opening = True
    for token in TOKEN.findall(QUOTED.sub(f" {SLOT} ", text)):
        if token in ".?!:":
            opening = True
            continue
        lower = token.lower()
        is_slot = (token == SLOT or token[0].isdigit() or lower in NUMBER_WORDS
                   or (token[0].isupper() and not opening and token != "I"))
        opening = False
        if lower in ARTICLES or (is_slot and words and words[-1] == SLOT):
            continue
        words.append(SLOT if is_slot else lower)
    return tuple(words)


def share_template(first: str, second: str) -> bool:
    """Whether two questions are one template: the same frame, or frames that differ in at most
    MAX_SLOTS spans of at most MAX_SPAN words each, around at least MIN_FRAME shared words."""
    a, b = question_template(first), question_template(second)
    if a == b:
        return True
    ops = SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    differing = [op for op in ops if op[0] != "equal"]
    shared = [word for tag, i1, i2, _, _ in ops if tag == "equal" for word in a[i1:i2]]
    return (len(differing) <= MAX_SLOTS
            and all(max(i2 - i1, j2 - j1) <= MAX_SPAN for _, i1, i2, j1, j2 in differing)
            and sum(word != SLOT for word in shared) >= MIN_FRAME)


def shared_templates(questions: list[str], prompts: list[str]) -> list[tuple[str, str]]:
    """Every (probe question, replay prompt) pair that shares a template."""
    return [(q, p) for q in questions for p in prompts if share_template(q, p)]


@pytest.fixture(scope="module")
def probe() -> list[dict]:
    return general_probe(PipelineConfig())


@pytest.fixture(scope="module")
def replay() -> list[dict]:
    return replay_prompts(PipelineConfig())


def test_replay_prompts_share_no_template_with_the_general_probe(probe, replay):
    questions = [item["question"] for item in probe]
    prompts = [row["prompt"] for row in replay]
    assert len(questions) == 40 and len(prompts) >= 100
    assert shared_templates(questions, prompts) == []


def test_probe_templates_and_replay_categories_are_disjoint(probe, replay):
    templates = {item.get("template") for item in probe}
    categories = {row.get("category") for row in replay}
    assert None not in templates and None not in categories
    assert len(categories) >= 5, "replay should cover several kinds of question"
    assert not templates & categories


@pytest.mark.parametrize(("probe_question", "replay_prompt"), [
    # Pairs from the replay set before 2026-12-03, one or two slots apart.
    ("What is the capital of France?", "What is the capital of Canada?"),
    ("What is 2 plus 2?", "What is 7 plus 8?"),
    ("What is the opposite of 'hot'?", "What is the opposite of 'fast'?"),
    ("What is the plural of 'child'?", "What is the plural of 'mouse'?"),
    ("Translate 'bonjour' from French to English.", "Translate 'gracias' from Spanish to English."),
    ("What is the chemical symbol for water?", "What is the chemical symbol for gold?"),
    ("What language is mainly spoken in Brazil?", "What language is spoken in Mexico?"),
    ("Which planet is known as the Red Planet?", "Which city is known as the Big Apple?"),
    ("How many minutes are in an hour?", "How many seconds are in a minute?"),
    ("How many legs does a spider have?", "How many hearts does an octopus have?"),
])
def test_a_one_slot_variant_shares_the_template(probe_question, replay_prompt):
    assert share_template(probe_question, replay_prompt)
    assert share_template(replay_prompt, probe_question)


@pytest.mark.parametrize(("probe_question", "replay_prompt"), [
    ("What is the capital of France?", "What is the opposite of 'hot'?"),
    ("What is 2 plus 2?", "What is an atom?"),
    ("What is the capital of France?", "What is the difference between weather and climate?"),
    ("How many legs does a spider have?", "How do I boil an egg?"),
])
def test_different_kinds_of_question_do_not(probe_question, replay_prompt):
    assert not share_template(probe_question, replay_prompt)
