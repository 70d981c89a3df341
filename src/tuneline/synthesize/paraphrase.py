"""LLM-written phrasings of a template's question that keep its {placeholders} intact."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tuneline.llm.client import LlmClient
from tuneline.llm.config import LlmEndpointConfig
from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.templates import placeholders
from tuneline.text import normalize

PROMPT = """\
Rewrite the question template below in {count} different ways. Keep every placeholder in curly
braces exactly as written (same names, same braces) and ask for the same thing. Vary the wording
and the sentence structure. Reply with one rewritten template per line, nothing else.

Template: {question}"""

_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def paraphrase_prompt(template: TemplateConfig, count: int) -> list[dict[str, str]]:
    """The request for `count` rewrites of the template's first question."""
    return [{"role": "user", "content": PROMPT.format(count=count,
                                                      question=template.questions[0])}]


def accept_paraphrases(template: TemplateConfig, reply: str, count: int,
                       rejected: Counter[str]) -> list[str]:
    """Reply lines usable as new phrasings: same placeholders, new wording, a real question."""
    wanted = set(placeholders(template.questions[0]))
    seen = {normalize(q) for q in template.questions}
    kept: list[str] = []
    for raw in reply.splitlines():
        line = _LIST_MARKER.sub("", raw).strip().strip('"')
        if not line:
            continue
        reason = _problem(line, wanted, seen)
        if reason:
            rejected[reason] += 1
            continue
        seen.add(normalize(line))
        kept.append(line)
    return kept[:count]


def _problem(line: str, wanted: set[str], seen: set[str]) -> str | None:
    try:
        names = set(placeholders(line))
    except ValueError:
        return "broken_braces"
    if names != wanted:
        return "placeholders_changed"
    if normalize(line) in seen:
        return "duplicate"
    if len(line.split()) < 3 or len(line) > 300:
        return "bad_length"
    return None


def paraphrase_templates(templates: list[TemplateConfig], count: int,
                         endpoint: LlmEndpointConfig, cache_dir: Path | None,
                         keep_last: int) -> tuple[list[TemplateConfig], dict]:
    """Templates with up to `count` new phrasings each, inserted before the last `keep_last`.

    The phrasings curate reserves to probe recall stay the hand-written ones.
    """
    client = LlmClient(endpoint, cache_dir)
    rejected: Counter[str] = Counter()
    try:
        replies = dict(client.chat_many([paraphrase_prompt(t, count) for t in templates]))
    finally:
        client.close()
    out, added = [], {}
    for index, template in enumerate(templates):
        new = accept_paraphrases(template, replies[index].text or "", count, rejected)
        questions = [*template.questions[:-keep_last], *new, *template.questions[-keep_last:]]
        out.append(template.model_copy(update={"questions": questions}))
        added[template.name] = len(new)
    return out, {"added": added, "rejected": dict(rejected), "usage": client.totals.to_json()}
