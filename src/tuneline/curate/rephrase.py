"""Offline rewordings of English questions ("How can I X?" -> "Is there a way to X?"): unseen
phrasings of trained questions, to test whether a tuned model answers the question or only
its trained wording. None when no rule applies; the rules never add domain words."""

from __future__ import annotations

import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement) for pattern, replacement in (
        (r"^how do i (.+)\?$", r"What is the right way to \1?"),
        (r"^how can i (.+)\?$", r"Is there a way to \1?"),
        (r"^how do you (.+)\?$", r"What is the way to \1?"),
        (r"^can i (.+)\?$", r"Is it possible to \1?"),
        (r"^should i (.+)\?$", r"Is it a good idea to \1?"),
        (r"^is there (.+)\?$", r"Do you know if there is \1?"),
        (r"^are there (.+)\?$", r"Do you know if there are \1?"),
        (r"^what is (.+)\?$", r"Could you tell me what \1 is?"),
        (r"^what are (.+)\?$", r"Could you tell me what \1 are?"),
        (r"^where (.+)\?$", r"Do you know where \1?"),
        (r"^which (.+)\?$", r"Could you tell me which \1?"),
    ))


def rephrase_question(question: str) -> str | None:
    """A rewording of a one-sentence question by the first rule that matches it, or None."""
    text = " ".join(question.split())
    if text.count("?") != 1 or "\n" in question:
        return None
    for pattern, replacement in _RULES:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return None
