"""Stage 4, curate: normalise, redact PII, dedup, split by fact; export chat JSONL and eval sets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tuneline.artifacts import (
    Artifact,
    StageResult,
    hash_tree,
    read_jsonl,
    run_stage,
    write_json_atomic,
    write_jsonl,
)
from tuneline.config import PipelineConfig
from tuneline.curate.clean import clean_facts
from tuneline.curate.config import CurateConfig
from tuneline.curate.conversation_split import (
    REFERENCE_RECALL_SET,
    REFERENCE_SET,
    WITHHELD_SET,
    ConversationSplit,
    clean_conversations,
    conversation_chats,
    conversation_stats,
    reference_items,
    rephrased_items,
    separate_trained_replies,
    split_conversations,
)
from tuneline.curate.declines import within_decline_budget
from tuneline.curate.formats import (
    bedrock_problems,
    bedrock_record,
    chat_examples,
    eval_items,
    write_hf_dataset,
)
from tuneline.curate.leaks import drop_leaking
from tuneline.curate.out_of_data_split import probe_chats, probe_eval_sets, split_probes
from tuneline.curate.split import FactSplit, drop_leaks, split_by_fact, split_recall
from tuneline.curate.validate import validate_file
from tuneline.errors import ConfigError, DataError
from tuneline.index.config import SEARCH_TIME_ONLY
from tuneline.leakage import LeakGuard
from tuneline.synthesize.out_of_data import ABSENT_ATTRIBUTE
from tuneline.synthesize.out_of_data import KINDS as PROBE_KINDS
from tuneline.synthesize.stage import load_conversations, load_facts, load_values
from tuneline.synthesize.templates import Fact

TRAIN, VAL, TEST = "train.jsonl", "val.jsonl", "test.jsonl"
EVAL_DIR = "eval"
DEV_DIR = "dev"  # eval/dev/: the same sets on disjoint facts, for choosing knobs
VALUES_FILE = "values.json"  # eval/values.json: synthesize's answer values, for strict scoring
# recall, heldout and invented entities; then real entities asked what the data cannot answer
# (an absent attribute, another year) and named by a variant (answerable); then held-out
# conversations, their last assistant turn the reference (graded as free text): replies no
# training conversation says, and replies one does (curate.conversations)
EVAL_SETS = ("recall", "heldout", "unanswerable", *PROBE_KINDS, REFERENCE_SET,
             REFERENCE_RECALL_SET, WITHHELD_SET)
BEDROCK_DIR, HF_DIR = "bedrock", "hf"
CONVERSATION_SIDES = ("train", "val", "heldout", "heldout_recall", "dev", "dev_recall")


def run(cfg: PipelineConfig, synthesized: Artifact, indexed: Artifact | None, out_dir: Path,
        force: bool = False) -> Artifact:
    """Write train/val/test chat JSONL, `eval/*.jsonl`, the configured exports and the card.

    With curate.rag.fraction > 0, training also gets RAG-format examples retrieved from the
    index stage's store (`indexed`)."""
    # The card counts tokens with the base model's tokenizer against train.max_seq_len.
    config_hash = (f"{cfg.section_hash('curate', 'run', 'model')}:{cfg.train.max_seq_len}"
                   if cfg.curate.card else cfg.section_hash("curate", "run"))
    inputs = {"synthesize": synthesized.output_hash}
    uses_rag = cfg.curate.rag.enabled
    if uses_rag:
        if indexed is None:
            raise ConfigError(["curate.rag: RAG training examples need the index; "
                               "set index.enabled: true"])
        config_hash += ":" + cfg.section_hash("index", "synthesize", exclude=SEARCH_TIME_ONLY)
        inputs["index"] = indexed.output_hash
    elif cfg.index.enabled:  # the withheld set: its questions and the decline they expect
        config_hash += ":" + cfg.section_hash("index", "synthesize", exclude=SEARCH_TIME_ONLY)

    def work(tmp: Path) -> StageResult:
        facts, cleaning = clean_facts(load_facts(synthesized), cfg.curate)
        n_recall = cfg.curate.recall_phrasings
        too_few = sorted({f.template for f in facts if len(f.questions) <= n_recall
                          and f.kind != ABSENT_ATTRIBUTE})
        if too_few:
            raise ConfigError([
                f"synthesize.templates ({name}): needs more than curate.recall_phrasings="
                f"{n_recall} questions so some are left to train on" for name in too_few
            ])
        invented = [f for f in facts if f.kind == "unanswerable" and not f.reserved]
        reserved = [f for f in facts if f.reserved == "dev"]
        reading = [f for f in facts if f.kind == "reading"]
        if reading and not uses_rag:
            raise ConfigError(["synthesize.reading_facts_per_template: reading facts are only "
                               "trained in RAG format; set curate.rag.fraction > 0"])
        dev = cfg.curate.dev_fraction
        split = split_by_fact([f for f in facts if f.kind == "qa" and not f.reserved],
                              cfg.curate.heldout_fraction, cfg.curate.val_fraction, cfg.run.seed,
                              dev)
        split.dev += [f for f in reserved if f.kind == "qa"]
        abstain = split_by_fact(invented, 1 - cfg.curate.unanswerable_train_fraction, 0.0,
                                cfg.run.seed, dev)
        abstain.dev += [f for f in reserved if f.kind == "unanswerable"]
        leaks = drop_leaks(split, cfg.curate.dedup.threshold) if cfg.curate.dedup.near else 0
        shaped, details = _shape_training(split, cfg.curate, cfg.run.seed)
        trained, recall_only = slice(None, -n_recall), slice(-n_recall, None)
        values = load_values(synthesized)
        guard = LeakGuard.from_facts(split.heldout + split.dev, values)
        recall_test, recall_dev = split_recall(split.train, cfg.curate.recall_dev_fraction,
                                               cfg.run.seed)
        probes = split_probes([f for f in facts if f.kind in PROBE_KINDS], split.train,
                              split.heldout, recall_test, recall_dev, split.dev, cfg.run.seed)
        routes = {"qa": chat_examples(split.train, trained),
                  "unanswerable": chat_examples(abstain.train, trained),
                  **probe_chats(probes, trained)}
        if uses_rag:
            probe_facts = [f for group in probes.train.values() for f in group]
            rag_routes, shaped_rag = _raft(cfg, split.train + abstain.train + probe_facts,
                                           trained, reading, guard, values)
            routes.update(rag_routes)
            shaped.update(shaped_rag)
        shares = dict.fromkeys(("plain", "rag"), cfg.curate.max_decline_share)
        routes, budget = within_decline_budget(routes, shares,
                                               cfg.synthesize.unanswerable.answer, cfg.run.seed,
                                               cfg.curate.no_passage_declines_per_answer)
        shaped.update(budget)
        talks, talk_counts = _conversations(cfg, synthesized)
        routes["conversation"] = conversation_chats(talks.train)
        reworded = rephrased_items(talks.train, cfg.curate.reworded_fraction, cfg.run.seed)
        if reworded[0] or reworded[1]:
            talk_counts["conversations:reworded"] = len(reworded[0]) + len(reworded[1])
        if uses_rag and talks.train:
            routes["conversation_rag"], rag_counts = _rag_conversations(cfg, talks)
            talk_counts.update(rag_counts)
        train_chats, details["leak_check"] = drop_leaking(routes, guard)
        chats = {"train": train_chats,
                 "val": chat_examples(split.val, trained) + conversation_chats(talks.val),
                 "test": (chat_examples(split.heldout, slice(None))
                          + conversation_chats(talks.heldout + talks.heldout_recall))}
        references, dev_references = (reference_items(talks.heldout),
                                      reference_items(talks.dev))
        eval_sets = {**_eval_sets(recall_test, split.heldout, abstain.heldout, recall_only),
                     **probe_eval_sets(probes.test, recall_only),
                     REFERENCE_SET: references,
                     REFERENCE_RECALL_SET: reference_items(talks.heldout_recall,
                                                           REFERENCE_RECALL_SET) + reworded[0],
                     WITHHELD_SET: _withheld(cfg, references)}
        dev_sets = {**_eval_sets(recall_dev, split.dev, abstain.dev, recall_only),
                    **probe_eval_sets(probes.dev, recall_only),
                    REFERENCE_SET: dev_references,
                    REFERENCE_RECALL_SET: reference_items(talks.dev_recall,
                                                          REFERENCE_RECALL_SET) + reworded[1],
                    WITHHELD_SET: _withheld(cfg, dev_references)}
        if talk_counts:
            details["conversations"] = {side: conversation_stats(getattr(talks, side))
                                        for side in CONVERSATION_SIDES}
        counts = {
            **cleaning,
            **talk_counts,
            "dropped:near_duplicate_of_train": leaks,
            **details["leak_check"].counts(),
            **shaped,
            "facts_train": len(split.train),
            "facts_val": len(split.val),
            "facts_heldout": len(split.heldout),
            "facts_dev": len(split.dev),
            "facts_unanswerable_train": len(abstain.train),
            "facts_unanswerable_eval": len(abstain.heldout),
            "facts_unanswerable_dev": len(abstain.dev),
            **{f"facts_{kind}_train": len(group) for kind, group in probes.train.items()},
            **_write_openai(tmp, chats, eval_sets, dev_sets, values),
        }
        details["leak_check"] = details["leak_check"].to_json()
        counts.update(_write_exports(tmp, chats, eval_sets, cfg.curate, details))
        if cfg.curate.card:
            details["card"] = _write_card(tmp, cfg, synthesized, split, abstain, chats,
                                          eval_sets, counts, details)
        return StageResult(counts=counts, details=details)

    return run_stage("curate", out_dir, config_hash, inputs, work, force)


def _conversations(cfg: PipelineConfig, synthesized: Artifact
                   ) -> tuple[ConversationSplit, dict[str, int]]:
    """Synthesize's conversations cleaned, split by thread (or group), and the held-out ones
    whose reply training also says removed; with their counts (none without conversations)."""
    conversations = load_conversations(synthesized)
    if not conversations:
        return ConversationSplit(), {}
    kept, counts = clean_conversations(conversations, cfg.curate)
    talks = split_conversations(kept, cfg.curate.heldout_fraction, cfg.curate.val_fraction,
                                cfg.curate.dev_fraction, cfg.run.seed)
    separate_trained_replies(talks, cfg.curate.dedup.threshold)
    counts.update({f"conversations_{side}": len(getattr(talks, side))
                   for side in CONVERSATION_SIDES})
    return talks, counts


def _withheld(cfg: PipelineConfig, references: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The held-out questions asked again with their answers' passages withheld (with an
    index: only the +rag variants answer them)."""
    from tuneline.curate.conversation_split import withheld_items

    if not cfg.index.enabled:
        return []
    return withheld_items(references, cfg.synthesize.unanswerable.answer)


def _rag_conversations(cfg: PipelineConfig, talks: ConversationSplit
                       ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from tuneline.curate.conversation_split import rag_conversations, reference_reply
    from tuneline.rag.retrieve import Retriever

    evaluated = [reference_reply(c) for side in ("heldout", "heldout_recall", "dev",
                                                 "dev_recall") for c in getattr(talks, side)]
    retriever = Retriever.for_run(cfg)
    try:
        return rag_conversations(talks.train, cfg.curate.rag.conversation_fraction, retriever,
                                 cfg.index.retrieval.top_k,
                                 cfg.index.retrieval.max_passage_chars, evaluated, cfg.run.seed,
                                 cfg.curate.rag.conversation_withheld,
                                 cfg.synthesize.unanswerable.answer)
    finally:
        retriever.close()


def _raft(cfg: PipelineConfig, facts: list[Any], phrasings: slice, reading: list[Any],
          guard: LeakGuard, values: dict[str, dict[str, int]]
          ) -> tuple[dict[str, list[dict]], dict[str, int]]:
    from tuneline.curate.raft import raft_examples
    from tuneline.evaluate.claims import Vocabulary
    from tuneline.rag.retrieve import Retriever

    retriever = Retriever.for_run(cfg)
    try:
        return raft_examples(cfg, facts, phrasings, retriever, reading, guard,
                             Vocabulary.from_values(values))
    finally:
        retriever.close()


def _eval_sets(recall: list[Fact], heldout: list[Fact], invented: list[Fact],
               recall_only: slice) -> dict[str, list[dict[str, Any]]]:
    return {"recall": eval_items(recall, recall_only, "recall"),
            "heldout": eval_items(heldout, recall_only, "heldout"),
            "unanswerable": [{**item, "expect": "abstain"} for item in
                             eval_items(invented, recall_only, "unanswerable")]}


def load_eval_set(curated: Artifact, name: str, split: str = "test") -> list[dict]:
    """One evaluation set written by curate: the test sets, or the dev sets (`split="dev"`)."""
    folder = curated.path / EVAL_DIR / (DEV_DIR if split == "dev" else "")
    path = folder / f"{name}.jsonl"
    if name == WITHHELD_SET and not path.is_file():  # older curates did not write it
        return []
    return read_jsonl(path)


def evaluated_guard(curated: Artifact) -> LeakGuard:
    """The leak guard of the facts curate evaluates (heldout, test and dev): what no training
    example may state (the train stage checks its replay examples with it)."""
    items = [item for split in ("test", "dev")
             if (curated.path / EVAL_DIR / (DEV_DIR if split == "dev" else "")
                 / "heldout.jsonl").is_file()
             for item in load_eval_set(curated, "heldout", split)]
    path = curated.path / EVAL_DIR / VALUES_FILE
    values = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return LeakGuard.from_items(items, values)


def load_chat(curated: Artifact, split: str) -> list[dict]:
    """Chat examples of one split ('train', 'val' or 'test')."""
    return read_jsonl(curated.path / f"{split}.jsonl")


def _shape_training(
    split: FactSplit, cfg: CurateConfig, seed: int
) -> tuple[dict[str, int], dict[str, Any]]:
    """Select, then balance, the training facts in place; eval and val sets stay as they are.

    Balancing runs last so its per-category cap holds on the facts actually trained on.
    """
    from tuneline.curate.select import balance_categories, select_informative

    counts: dict[str, int] = {}
    details: dict[str, Any] = {}
    if cfg.select.enabled:
        before = len(split.train)
        split.train, details["select"] = select_informative(split.train, cfg.select, seed)
        counts["dropped:select"] = before - len(split.train)
    if cfg.balance.enabled:
        before = len(split.train)
        split.train, details["balance"] = balance_categories(split.train, cfg.balance, seed)
        counts["dropped:balance"] = before - len(split.train)
    return counts, details


def _write_openai(
    tmp: Path, chats: dict[str, list[dict]], eval_sets: dict[str, list[dict]],
    dev_sets: dict[str, list[dict]], values: dict[str, dict[str, int]],
) -> dict[str, int]:
    """The files the trainer and evaluator read: OpenAI chat JSONL per split, the test and dev
    eval sets, and the table values that strict scoring and the leak check read."""
    counts = {name: write_jsonl(tmp / f"{name}.jsonl", rows) for name, rows in chats.items()}
    (tmp / EVAL_DIR / DEV_DIR).mkdir(parents=True)
    for name, rows in eval_sets.items():
        counts[name] = write_jsonl(tmp / EVAL_DIR / f"{name}.jsonl", rows)
    for name, rows in dev_sets.items():
        counts[f"dev:{name}"] = write_jsonl(tmp / EVAL_DIR / DEV_DIR / f"{name}.jsonl", rows)
    write_json_atomic(tmp / EVAL_DIR / VALUES_FILE, values)
    for name in (TRAIN, VAL, TEST):
        _check_format(tmp / name)
    return counts


def _write_exports(
    tmp: Path, chats: dict[str, list[dict]], eval_sets: dict[str, list[dict]],
    cfg: CurateConfig, details: dict[str, Any],
) -> dict[str, int]:
    counts: dict[str, int] = {}
    if "bedrock" in cfg.exports:
        counts.update(_write_bedrock(tmp / BEDROCK_DIR, chats, cfg, details))
    if "hf" in cfg.exports:
        (tmp / HF_DIR).mkdir()
        rows = write_hf_dataset(tmp / HF_DIR, chats, eval_sets)
        counts.update({f"hf:{name}": n for name, n in rows.items()})
    return counts


def _write_bedrock(
    folder: Path, chats: dict[str, list[dict]], cfg: CurateConfig, details: dict[str, Any]
) -> dict[str, int]:
    """Bedrock fine-tuning files (train, and validation when there is any), limits checked."""
    folder.mkdir()
    fmt = cfg.bedrock_format
    counts: dict[str, int] = {}
    problems: list[tuple[str, str]] = []
    for name, split in (("train", "train"), ("validation", "val")):
        records = [bedrock_record(example, fmt) for example in chats[split]]
        if name == "validation" and not records:
            continue  # the validation file is optional, and Bedrock rejects an empty one
        counts[f"bedrock:{name}"] = write_jsonl(folder / f"{name}.jsonl", records)
        problems += bedrock_problems(records, fmt, name)
    if problems and cfg.bedrock_strict:
        shown = "\n".join(message for _, message in problems[:5])
        raise DataError(f"the Bedrock export breaks {len(problems)} documented Bedrock "
                        f"limit(s) (curate.bedrock_strict is on):\n{shown}")
    for rule, _ in problems:
        counts[f"bedrock_warning:{rule}"] = counts.get(f"bedrock_warning:{rule}", 0) + 1
    details["bedrock"] = {"format": fmt, "problems": [m for _, m in problems[:20]]}
    return counts


def _write_card(
    tmp: Path, cfg: PipelineConfig, synthesized: Artifact, split: FactSplit, abstain: FactSplit,
    chats: dict[str, list[dict]], eval_sets: dict[str, list[dict]], counts: dict[str, int],
    details: dict[str, Any],
) -> dict[str, Any]:
    from tuneline.report.card import CardInputs, measure_lengths, upstream_counts, write_card

    started = time.perf_counter()
    written = ["train", "val", "test", *EVAL_SETS]
    lengths = measure_lengths(chats, cfg.model.base, cfg.model.cache_dir, cfg.train.max_seq_len)
    card = CardInputs(
        title=cfg.run.name,
        facts={"train": split.train + abstain.train, "val": split.val, "heldout": split.heldout,
               "unanswerable": abstain.heldout},
        rows={name: counts[name] for name in written},
        counts=counts,
        config={"curate": cfg.curate.model_dump(mode="json"), "run": {"seed": cfg.run.seed},
                "model": {"base": cfg.model.base},
                "train": {"max_seq_len": cfg.train.max_seq_len}},
        data_hash=hash_tree(tmp),
        upstream_hash=synthesized.output_hash,
        upstream_skipped=synthesized.manifest.get("details", {}).get("skipped", {}),
        details=dict(details),
        lengths=lengths,
        eval_sets=eval_sets,
        stages=upstream_counts(synthesized),
        seed=cfg.run.seed,
    )
    files = write_card(tmp, card)
    return {"files": files, "lengths": lengths.unit,
            "seconds": round(time.perf_counter() - started, 3)}


def _check_format(path: Path) -> None:
    """Refuse to hand the trainer a file that OpenAI's format rules reject."""
    report = validate_file(path)
    report.problems = [p for p in report.problems if p.rule != "empty_file"]
    if not report.ok:
        shown = "\n".join(p.render(path.name) for p in report.problems[:5])
        raise DataError(f"curate wrote {len(report.bad_lines)} invalid chat example(s); check "
                        f"the synthesize templates:\n{shown}")
