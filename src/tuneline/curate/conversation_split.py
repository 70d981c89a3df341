"""Curate conversations: normalise and mask every message, drop duplicate conversations, split
by thread (or by group), keep every evaluated reply out of training, and write eval items."""

from __future__ import annotations

import dataclasses
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tuneline.curate.clean import normalize_text
from tuneline.curate.config import CurateConfig
from tuneline.curate.split import _share
from tuneline.synthesize.conversations import Conversation

# Held-out conversations, graded on their last assistant turn (the reference): `reference`
# when no training conversation says that reply, `reference_recall` when one does (a canned
# answer, or one FAQ answer to another phrasing: a new question to a known reply).
REFERENCE_SET = "reference"
REFERENCE_RECALL_SET = "reference_recall"
# Held-out questions asked with every passage that quotes their reply withheld: the reply
# expected is the decline (evaluated on the +rag variants alone).
WITHHELD_SET = "withheld"


@dataclass
class ConversationSplit:
    train: list[Conversation] = field(default_factory=list)
    val: list[Conversation] = field(default_factory=list)
    heldout: list[Conversation] = field(default_factory=list)
    dev: list[Conversation] = field(default_factory=list)
    # held-out (test, dev) conversations whose reply a training conversation also says
    heldout_recall: list[Conversation] = field(default_factory=list)
    dev_recall: list[Conversation] = field(default_factory=list)


def clean_conversations(conversations: list[Conversation], cfg: CurateConfig
                        ) -> tuple[list[Conversation], dict[str, int]]:
    """Normalise and PII-mask every message, then drop exact and near duplicate conversations
    (compared whole: every message, roles included). Counts are prefixed 'conversations:'."""
    from tuneline.curate.dedup import exact_duplicates, near_duplicates
    from tuneline.curate.pii import make_redactor

    redactor = make_redactor(tuple(cfg.pii.entities), cfg.pii.default_region, cfg.pii.engine) \
        if cfg.pii.enabled else None

    def clean(text: str) -> str:
        text = normalize_text(text) if cfg.normalize else text
        return redactor.redact(text) if redactor is not None else text

    cleaned = [dataclasses.replace(c, messages=[{"role": m["role"],
                                                 "content": clean(m["content"])}
                                                for m in c.messages])
               for c in conversations]
    counts = {f"conversations:pii:{entity}": n
              for entity, n in sorted((redactor.counts if redactor else {}).items())}
    texts = [conversation_text(c) for c in cleaned]
    drop: set[int] = set()
    if cfg.dedup.exact:
        exact = exact_duplicates(texts)
        drop.update(exact)
        counts["conversations:dropped:exact_duplicate"] = len(exact)
    if cfg.dedup.near:
        remaining = [i for i in range(len(texts)) if i not in drop]
        near = near_duplicates([texts[i] for i in remaining], cfg.dedup.threshold)
        drop.update(remaining[j] for j in near)
        counts["conversations:dropped:near_duplicate"] = len(near)
    return [c for i, c in enumerate(cleaned) if i not in drop], counts


def conversation_text(conversation: Conversation) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in conversation.messages)


def split_conversations(conversations: list[Conversation], heldout_fraction: float,
                        val_fraction: float, dev_fraction: float, seed: int
                        ) -> ConversationSplit:
    """Seeded split per source; a thread (or, with a group column, a whole group such as one
    customer's tickets) never spans two splits."""
    units: dict[str, dict[str, list[Conversation]]] = defaultdict(lambda: defaultdict(list))
    for conversation in conversations:
        unit = (f"group:{conversation.group}" if conversation.group is not None
                else f"thread:{conversation.thread}")
        units[conversation.source][unit].append(conversation)
    split = ConversationSplit()
    rng = random.Random(seed)
    for source in sorted(units):
        names = sorted(units[source])
        rng.shuffle(names)
        n_heldout = _share(len(names), heldout_fraction)
        n_val = _share(len(names), val_fraction)
        n_dev = _share(len(names), dev_fraction)
        sides = ((split.heldout, names[:n_heldout]),
                 (split.val, names[n_heldout:n_heldout + n_val]),
                 (split.dev, names[n_heldout + n_val:n_heldout + n_val + n_dev]),
                 (split.train, names[n_heldout + n_val + n_dev:]))
        for side, chosen in sides:
            side += [c for name in chosen for c in units[source][name]]
    return split


def separate_trained_replies(split: ConversationSplit, threshold: float) -> int:
    """Move held-out and dev conversations whose reference reply (the last assistant turn) a
    training conversation also says, exactly or nearly, to `heldout_recall` / `dev_recall`:
    `reference` then holds only replies absent from training. Returns how many moved."""
    from tuneline.curate.dedup import NearDuplicateIndex, exact_key

    trained = [m["content"] for c in split.train for m in c.messages if m["role"] == "assistant"]
    exact = {exact_key(text) for text in trained}
    index = NearDuplicateIndex(threshold)
    for signature in index.signatures(trained) if trained else []:
        index.add("", signature)
    moved = 0
    for side in ("heldout", "dev"):
        kept, seen = [], getattr(split, f"{side}_recall")
        for conversation in getattr(split, side):
            reply = reference_reply(conversation)
            if exact_key(reply) in exact or (trained and index.query(reply)):
                seen.append(conversation)
                moved += 1
            else:
                kept.append(conversation)
        setattr(split, side, kept)
    return moved


def reference_reply(conversation: Conversation) -> str:
    return conversation.messages[-1]["content"]


# A passage sharing this many consecutive words with a reply quotes it; shorter runs are
# often boilerplate that many answers share ("then release it and wait while the").
LEAK_SHINGLE_WORDS = 12
# Hits searched per passage shown where the passages quoting a reply are left out (the
# withheld set, its training copies), so that top_k remain.
SEARCHED_PER_SHOWN = 3


def rag_conversations(conversations: list[Conversation], fraction: float,
                      retriever: Any, top_k: int, max_chars: int, evaluated: list[str],
                      seed: int, withheld: float = 0.0, decline: str = ""
                      ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """RAG-format copies of a seeded share of the training conversations: the last user turn
    carries the passages retrieved for it, the reply is unchanged. A passage sharing a run of
    LEAK_SHINGLE_WORDS words with an `evaluated` reply is never shown (counted).

    A seeded `withheld` share of the copies is shaped as the evaluated `withheld` set is:
    every passage quoting the reply (`quotes`) is left out and the reply is `decline`, so the
    model learns to say when the passages do not hold the answer; a copy left with no passage
    keeps its reply. The copies show what retrieval finds below index.retrieval.min_similarity
    too: a floor declines before the model reads anything."""
    from tuneline.curate.dedup import shingles
    from tuneline.rag.prompt import rag_messages

    if withheld > 0 and not decline:
        raise ValueError("rag_conversations: a withheld share needs the decline to answer")
    if not conversations or fraction <= 0:
        return [], {}
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(conversations)),
                               max(1, round(len(conversations) * fraction))))
    declining = random.Random(f"{seed}:withheld")  # the copies above stay as they were
    guarded = {s for reply in evaluated
               for s in shingles(reply, LEAK_SHINGLE_WORDS)
               if s.count(b" ") >= LEAK_SHINGLE_WORDS - 1}
    def shown(hits: list[Any]) -> list[Any]:
        return [h.passage for h in hits
                if not shingles(h.passage.text, LEAK_SHINGLE_WORDS) & guarded]

    questions = [conversations[i].messages[-2]["content"] for i in chosen]
    examples, avoided, declined = [], 0, 0
    drawn = [withheld > 0 and declining.random() < withheld for _ in chosen]
    wider = iter(retriever.search([q for q, d in zip(questions, drawn, strict=True) if d],
                                  SEARCHED_PER_SHOWN * top_k, floor=False))
    for i, hits, draw in zip(chosen, retriever.search(questions, 2 * top_k, floor=False),
                             drawn, strict=True):
        messages = conversations[i].messages
        reply = messages[-1]
        safe = shown(hits)
        if draw:  # searched wider, as the evaluated withheld set is
            unquoting = [h for h in next(wider) if not quotes(h.passage.text, reply["content"])]
            if remaining := shown(unquoting):  # else nothing is left to show: the reply stays
                hits, safe, reply = unquoting, remaining, {**reply, "content": decline}
                declined += 1
        avoided += len(hits) - len(safe)
        examples.append({"messages": [*rag_messages(messages[:-1], safe[:top_k], max_chars),
                                      reply]})
    counts = {"conversations:rag": len(examples),
              "conversations:rag:distractor_leak_avoided": avoided}
    if withheld > 0:
        counts["conversations:rag:withheld"] = declined
    return examples, counts


def rephrased_items(trained: list[Conversation], fraction: float, seed: int
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Unseen phrasings of trained questions, as `reference_recall` items (test, dev): a
    seeded share of the trained one-question conversations whose question a rule rewords
    (tuneline.curate.rephrase), halved between the test and dev sets; the reference is the
    trained reply."""
    from tuneline.curate.rephrase import rephrase_question

    if fraction <= 0:
        return [], []
    rng = random.Random(seed)
    single = [c for c in trained if [m["role"] for m in c.messages if m["role"] != "system"]
              == ["user", "assistant"]]
    reworded = [(c, q) for c in single
                if (q := rephrase_question(c.messages[-2]["content"])) is not None]
    chosen = rng.sample(reworded, round(len(reworded) * fraction)) if reworded else []
    items = []
    for conversation, question in chosen:
        asked = dataclasses.replace(conversation, messages=[
            *conversation.messages[:-2], {"role": "user", "content": question},
            conversation.messages[-1]])
        [item] = reference_items([asked], REFERENCE_RECALL_SET)
        items.append({**item, "id": f"{item['id']}-reworded", "reworded_from":
                      conversation.messages[-2]["content"]})
    half = len(items) // 2
    return items[half:], items[:half]


def conversation_chats(conversations: list[Conversation]) -> list[dict[str, Any]]:
    return [{"messages": c.messages} for c in conversations]


def reference_items(conversations: list[Conversation], set_name: str = REFERENCE_SET
                    ) -> list[dict[str, Any]]:
    """Eval items: the conversation up to its last user turn is the prompt, its last assistant
    turn the reference."""
    items = []
    for c in conversations:
        prompt = c.messages[:-1]
        items.append({
            "id": f"{set_name}-{c.conversation_id}",
            "set": set_name,
            "question": prompt[-1]["content"],
            "messages": prompt,
            "reference": reference_reply(c),
            "fact": reference_reply(c),
            "template": c.source,
            "entity": [c.thread],
            "group": None,
            "conversation_id": c.conversation_id,
            "source": {"source": c.source, **c.provenance},
        })
    return items


def withheld_items(references: list[dict[str, Any]], decline: str) -> list[dict[str, Any]]:
    """`reference` items asked again where the documents hold no answer: retrieval withholds
    every passage quoting the reply (`quotes`), and the reply expected is `decline`."""
    return [{**item, "id": f"{WITHHELD_SET}-{item['conversation_id']}", "set": WITHHELD_SET,
             "reference": decline, "fact": "", "expect": "abstain",
             "withhold": item["reference"]} for item in references]


def quotes(passage: str, reply: str) -> bool:
    """Whether `passage` quotes `reply`: shares a run of LEAK_SHINGLE_WORDS words with it, or
    holds the whole of a shorter reply."""
    from tuneline.curate.dedup import shingles, words

    size = min(LEAK_SHINGLE_WORDS, len(words(reply)))
    return size > 0 and bool(shingles(reply, size) & shingles(passage, size))


def conversation_stats(conversations: list[Conversation]) -> dict[str, Any]:
    """Turn and length statistics for the dataset card: per split and in all."""
    if not conversations:
        return {}
    turns = [sum(m["role"] != "system" for m in c.messages) for c in conversations]
    words = [len(m["content"].split()) for c in conversations for m in c.messages
             if m["role"] == "assistant"]
    return {"conversations": len(conversations),
            "turns": {"median": statistics.median(turns), "max": max(turns)},
            "multi_turn": sum(t > 2 for t in turns),
            "with_system_prompt": sum(c.messages[0]["role"] == "system" for c in conversations),
            "assistant_words": {"median": statistics.median(words), "max": max(words)}}
