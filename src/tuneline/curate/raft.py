"""Retrieval-aware training examples (RAFT-style): a question with the passages retrieval would
give it, the gold passage among distractors, or taken out so that the answer is to say the
information is not available."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tuneline.config import PipelineConfig
from tuneline.curate.formats import chat_example
from tuneline.evaluate.claims import Vocabulary
from tuneline.leakage import LeakGuard
from tuneline.rag.passages import Passage
from tuneline.rag.prompt import rag_user_message, shown_text
from tuneline.rag.record_passages import answering_provenances, gold_provenance, provenance
from tuneline.rag.retrieve import Retriever
from tuneline.synthesize.out_of_data import ABSENT_ATTRIBUTE, UNANSWERABLE_KINDS
from tuneline.synthesize.templates import Fact
from tuneline.text import contains_fact


def raft_examples(cfg: PipelineConfig, facts: list[Fact], phrasings: slice,
                  retriever: Retriever, reading: list[Fact] | None = None,
                  guard: LeakGuard | None = None, vocabulary: Vocabulary | None = None
                  ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """RAG-format chats for a share of the trained (fact, question) pairs (curate.rag.fraction,
    and unanswerable_fraction for the unanswerable ones), one with its gold passage for each
    reading fact and, for reading_gold_removed of them, a twin without it.

    Returns the chats by route (`rag`: trained facts; `rag_unanswerable`: invented ones;
    `reading`: reading facts) and counts by kind: `rag:gold` (answer from the gold passage),
    `rag:gold_removed` and `rag:no_gold` (unanswerable questions; both answer with the
    abstention sentence), `rag:distractor_leak_avoided`: retrieved passages left out because
    they state an evaluated fact (`guard`), and `rag:gold_leak_avoided`: trained facts whose
    gold passage states one (their row holds an evaluated fact of another column), each
    replaced by a pair not yet chosen whose row is safe, as far as there are such pairs: left
    to the leak check, they went, and small tables with two asked columns a row lost half of
    their passage answers (docs/log.md, 2026-12-05 (midday))."""
    raft = cfg.curate.rag
    rng = random.Random(cfg.run.seed)
    vocabulary = vocabulary or Vocabulary()
    sampled, spare = _chosen_pairs(cfg, facts, phrasings, rng,
                                   raft.min_gold - len(reading or []))
    chosen = [(fact, question, shape, "rag" if fact.kind == "qa" else "rag_unanswerable")
              for fact, question, shape in sampled]
    for fact in reading or []:
        question = rng.choice(fact.questions[phrasings])
        chosen.append((fact, question, _GOLD, "reading"))
        if rng.random() < raft.reading_gold_removed:
            # The same question without its answer in the context: only reading tells them apart.
            chosen.append((fact, question, _REMOVED, "reading"))
    examples: dict[str, list[dict[str, Any]]] = {}
    kinds: Counter[str] = Counter()
    # A separate generator: with no replacement, the examples are those of the plain draw.
    random.Random(cfg.run.seed + 1).shuffle(spare)
    unsafe: set[str] = set()
    quoted: list[_Quote] = []
    while chosen:
        leaked = _build(cfg, chosen, retriever, rng, guard, vocabulary, examples, kinds, quoted)
        kinds["rag:gold_leak_avoided"] += len(leaked)
        unsafe |= {fact.fact_id for fact in leaked}
        spare = [pair for pair in spare if pair[0].fact_id not in unsafe]
        chosen = [(fact, question, _GOLD, "rag") for fact, question in spare[:len(leaked)]]
        spare = spare[len(leaked):]
    kinds["rag:field_quoted_for_its_template"] = _one_form_per_template(quoted)
    return examples, {name: n for name, n in kinds.items() if n}


@dataclass
class _Quote:
    """A passage answer as built: its chat, the passage shown, the fact and its template,
    and whether the answer quotes the asked field alone (the row names two values of it)."""

    chat: dict[str, Any]
    shown: str
    fact: str
    template: str
    field_alone: bool


def _one_form_per_template(quoted: list[_Quote]) -> int:
    """Where any passage answer of a template quotes the asked field alone (its row names two
    values of that column), every answer of that template does, reading facts' included, so
    the model sees one form per question kind; returns how many answers changed form (counted
    before the leak check). Mixed, presidential's model copied whole rows that name two
    candidate dates (docs/log.md, 2026-12-05 (midday) and (afternoon))."""
    templates = {q.template for q in quoted if q.field_alone}
    changed = 0
    for q in quoted:
        if q.template in templates and not q.field_alone:
            answer = extractive_answer(q.shown, q.fact, candidates=2)
            if answer != q.chat["messages"][-1]["content"]:
                q.chat["messages"][-1]["content"] = answer
                changed += 1
    return changed


def _build(cfg: PipelineConfig, chosen: list[tuple[Fact, str, str, str]], retriever: Retriever,
           rng: random.Random, guard: LeakGuard | None, vocabulary: Vocabulary,
           examples: dict[str, list[dict[str, Any]]], kinds: Counter[str],
           quoted: list[_Quote]) -> list[Fact]:
    """The chats of the `chosen` pairs, added to `examples` by route and counted in `kinds`,
    the passage answers also to `quoted`; returns the trained facts whose gold passage states
    a guarded fact (not added)."""
    raft = cfg.curate.rag
    k, max_chars = cfg.index.retrieval.top_k, cfg.index.retrieval.max_passage_chars
    questions = [question for _, question, _, _ in chosen]
    vectors = retriever.embedder.embed(questions, progress=True)
    # Twice the context, and deeper when passages stating evaluated facts are left out.
    depth = 2 * k + min(len(guard) if guard is not None else 0, 10 * k)
    found = retriever.search_embedded(questions, vectors, depth, floor=False)
    leaked: list[Fact] = []
    for (fact, question, shape, route), hits, vector in zip(chosen, found, vectors, strict=True):
        item = {"source": fact.source}
        quoting: str | None = None  # the gold passage, as shown, that the answer quotes
        answering = answering_provenances(item)  # empty for unanswerable facts (no row)
        # Passages stating an evaluated fact are never shown (checked once per hit).
        safe = [guard is None or guard.stated(h.passage.text) is None for h in hits]
        candidates = [(h.passage, ok) for h, ok in zip(hits, safe, strict=True)
                      if provenance(h.passage) not in answering]
        kinds["rag:distractor_leak_avoided"] += sum(not ok for _, ok in candidates[:k])
        others = [p for p, ok in candidates if ok][:k]
        if fact.kind in UNANSWERABLE_KINDS:
            # A real entity's rows, which do not state what was asked: decline after reading.
            shown = [h.passage for h, ok in zip(hits, safe, strict=True) if ok][:k]
            kind, passages, answer = "not_stated", shown, fact.answer
        elif not answering:
            kind, passages, answer = "no_gold", others, fact.answer
        elif shape == _REMOVED or (shape == _SAMPLED and rng.random() < raft.gold_removed):
            kind, passages, answer = "gold_removed", others, cfg.synthesize.unanswerable.answer
        else:
            gold = _gold_passage(retriever, vector, gold_provenance(item), hits)
            if gold is None:
                # Matching dropped it: at eval and serve time this context would lack it too.
                kinds["skipped:gold_not_matched" if retriever.settings.match_question
                      else "skipped:gold_not_indexed"] += 1
                continue
            if route == "rag" and guard is not None and guard.stated(gold.text) is not None:
                leaked.append(fact)
                continue
            answer = fact.answer
            if raft.answer == "passage":
                quoting = shown_text(gold, max_chars)
                answer = extractive_answer(quoting, fact.fact,
                                           len(vocabulary.claims(quoting, fact.template)))
            kind, passages = "gold", _insert(others[: k - 1], gold, rng)
        content = rag_user_message(question, passages, max_chars)
        chat = chat_example(content, answer)
        examples.setdefault(route, []).append(chat)
        if quoting is not None:
            quoted.append(_Quote(chat, quoting, fact.fact, fact.template, answer != quoting))
        kinds[f"rag:{kind}"] += 1
    return leaked


# How a chosen pair is shaped: by the gold_removed draw, with its gold passage, or without it.
_SAMPLED, _GOLD, _REMOVED = "sampled", "gold", "removed"


def extractive_answer(passage: str, fact: str, candidates: int = 1) -> str:
    """The passage as the prompt shows it, word for word. When it names more than one value the
    asked column takes (`candidates`: a term's start and end dates, both of them dates some term
    ended on) and lists a row's fields ('entity: label value; label value.'), only the entity and
    the fields that state the fact: a copy of the row would read as a list of candidates.
    Quoting one field always was tried and made the model pick the wrong field (docs/log.md,
    2026-12-05)."""
    if candidates <= 1:
        return passage
    entity, colon, listed = passage.partition(": ")
    fields = listed.removesuffix(".").split("; ")
    stating = [field for field in fields if contains_fact(field, fact)]
    if not colon or not stating or len(stating) == len(fields):
        return passage
    return f"{entity}: {'; '.join(stating)}."


def _chosen_pairs(cfg: PipelineConfig, facts: list[Fact], phrasings: slice,
                  rng: random.Random, min_answerable: int
                  ) -> tuple[list[tuple[Fact, str, str]], list[tuple[Fact, str]]]:
    """The sampled (fact, question) pairs: `fraction` of the answerable ones, raised to keep
    `min_answerable` with their gold passage after the gold_removed draw (as far as
    there are pairs), and `unanswerable_fraction` (default: `fraction`) of the invented ones;
    and the answerable pairs not sampled."""
    raft = cfg.curate.rag
    pairs = [(fact, question) for fact in facts
             for question in fact.questions[slice(None) if fact.kind == ABSENT_ATTRIBUTE
                                            else phrasings]]
    answerable = [p for p in pairs if p[0].kind == "qa"]
    invented = [p for p in pairs if p[0].kind != "qa"]
    fraction = raft.fraction
    if fraction > 0 and answerable:
        wanted = min_answerable / (1 - raft.gold_removed) if raft.gold_removed < 1 else 0
        fraction = min(1.0, max(fraction, wanted / len(answerable)))
    invented_fraction = (raft.fraction if raft.unanswerable_fraction is None
                         else raft.unanswerable_fraction)
    answering = rng.sample(answerable, round(fraction * len(answerable)))
    chosen = answering + rng.sample(invented, round(invented_fraction * len(invented)))
    taken = set(map(id, answering))
    return ([(fact, question, _SAMPLED) for fact, question in chosen],
            [pair for pair in answerable if id(pair) not in taken])


def _gold_passage(retriever: Retriever, vector: Any, gold_at: tuple[str, str, str],
                  hits: list[Any]) -> Passage | None:
    for hit in hits:
        if provenance(hit.passage) == gold_at:
            return hit.passage
    if retriever.settings.match_question:
        return None
    source, file, line = gold_at
    return retriever.find(vector, {"source": source, "file": file, "line": line})


def _insert(passages: list[Passage], gold: Passage, rng: random.Random) -> list[Passage]:
    """The gold passage at a random position, so the model cannot learn 'always the first'."""
    placed = list(passages)
    placed.insert(rng.randrange(len(placed) + 1), gold)
    return placed
