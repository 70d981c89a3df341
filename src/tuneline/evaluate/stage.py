"""Stage 6, evaluate: base, tuned (and the registry's champion) answer the recall, heldout,
unanswerable and general sets; metrics per variant and set; optionally an LLM judge."""

from __future__ import annotations

import functools
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tuneline.artifacts import (
    Artifact,
    StageResult,
    hash_tree,
    read_user_jsonl,
    run_stage,
    write_json_atomic,
    write_jsonl,
)
from tuneline.config import PipelineConfig
from tuneline.curate.conversation_split import REFERENCE_RECALL_SET, REFERENCE_SET
from tuneline.curate.stage import EVAL_DIR, EVAL_SETS, TRAIN, VALUES_FILE, load_eval_set
from tuneline.errors import MissingDependencyError
from tuneline.evaluate.claims import Vocabulary
from tuneline.evaluate.free_text import (
    REFERENCE_METRICS,
    SimilarityFn,
    score_references,
    summarize_scores,
)
from tuneline.evaluate.gains import add_gains
from tuneline.evaluate.lookup import NEAREST_TRAINED, last_question, lookup_replies
from tuneline.evaluate.metrics import judge_answer, summarize_items
from tuneline.evaluate.provider_answers import answer_with_provider
from tuneline.evaluate.untrained import describe_left_out, split_untrained
from tuneline.evaluate.withheld import closed_book_positions, placed, withhold_answers
from tuneline.rag.prompt import ANSWER_STOPS
from tuneline.report.markdown import partial_report, render_report
from tuneline.report.results import METRICS_FILE
from tuneline.train.job import rows_never_trained
from tuneline.train.managed.common import REMOTE_MODEL
from tuneline.train.stage import weights_dir

METRICS = METRICS_FILE  # read back through tuneline.report.results
PREDICTIONS = "predictions.jsonl"
REPORT = "report.md"
JUDGMENTS = "judgments.jsonl"
VARIANTS = ("base", "tuned")
CHAMPION = "champion"
RAG_VARIANTS = ("base+rag", "tuned+rag")
RETRIEVAL = "retrieval"  # the top-level metrics.json key with recall@k and MRR, not a variant
GENERAL = "general"
PACKAGED_PROBE = "probes/general.jsonl"
FREE_TEXT_SETS = (REFERENCE_SET, REFERENCE_RECALL_SET)  # graded against a reference reply
REPLY_JUDGMENTS = "reply_judgments.jsonl"  # the judge's correctness and groundedness verdicts
JUDGE_CORRECTNESS, GROUNDEDNESS = "judge_correctness", "groundedness"
SIMILARITY_FLOOR = "similarity_floor"  # what index.retrieval.min_similarity 'auto' derived


@dataclass(frozen=True)
class Champion:
    """The registry's current champion, answered as a third variant."""

    reference: str
    base_model: str
    weights: Path
    weights_hash: str


def run(cfg: PipelineConfig, indexed: Artifact | None, curated: Artifact, trained: Artifact,
        out_dir: Path, force: bool = False) -> Artifact:
    """Write `metrics.json`, predictions and a report.

    metrics.json is {variant: {set: {accuracy, exact_match, token_f1, hallucination_rate,
    abstention_rate, mean_answer_words, n, ci95: {metric: [lo, hi]}, by_category: {template:
    {...same fields}}, by_group: {group: {...}}}}}; see `tuneline.evaluate.metrics.summarize_items`.
    """
    config_hash = cfg.section_hash("evaluate", "model")
    inputs = {"curate": curated.output_hash, "train": trained.output_hash}
    with_rag = (cfg.evaluate.rag and indexed is not None
                and not (trained.path / REMOTE_MODEL).is_file())
    if with_rag:  # +rag answers made under other stops are not reused
        config_hash += ":" + cfg.section_hash("index") + ":" + "|".join(ANSWER_STOPS)
        inputs["index"] = indexed.output_hash
    champion = find_champion(cfg) if cfg.evaluate.compare_champion else None
    if champion is not None:
        inputs["champion"] = f"{champion.reference}:{champion.weights_hash}"

    def work(tmp: Path) -> StageResult:
        return _evaluate(cfg, curated, trained, champion, with_rag, tmp)

    return run_stage("evaluate", out_dir, config_hash, inputs, work, force)


def find_champion(cfg: PipelineConfig) -> Champion | None:
    """The champion of `register.name` when it holds local weights; None when there is none."""
    from tuneline.registry import open_registry

    registry = open_registry(cfg.register)
    version = registry.champion(cfg.register.name)
    if version is None or version.remote_model is not None:
        return None
    version = registry.materialize(version)
    weights_hash = version.meta.get("adapter_hash") or hash_tree(version.weights_dir)
    return Champion(version.reference, str(version.meta["base_model"]), version.weights_dir,
                    str(weights_hash)[:16])


def evaluation_items(cfg: PipelineConfig, curated: Artifact) -> list[dict[str, Any]]:
    """The curated sets, then the general probe, each cut to evaluate.max_examples."""
    limit = cfg.evaluate.max_examples
    split = cfg.evaluate.split
    items = [item for name in EVAL_SETS
             for item in load_eval_set(curated, name, split)[:limit]]
    if cfg.evaluate.general_probe:
        items += [{**item, "set": GENERAL} for item in general_probe(cfg)[:limit]]
    return items


def general_probe(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The forgetting probe: the packaged set, or evaluate.general_probe_file."""
    path = cfg.evaluate.general_probe_file
    if path is None:
        text = resources.files("tuneline.evaluate").joinpath(PACKAGED_PROBE).read_text("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = read_user_jsonl(path, ("question", "fact"), "evaluate.general_probe_file",
                           "a general probe item")
    return [{"id": f"general-{number}", "reference": row["fact"], **row}
            for number, row in rows]


def _evaluate(cfg: PipelineConfig, curated: Artifact, trained: Artifact,
              champion: Champion | None, with_rag: bool, tmp: Path) -> StageResult:
    untrained_rows = rows_never_trained(trained.path)
    items, left_out = split_untrained(evaluation_items(cfg, curated), curated.path / TRAIN,
                                      untrained_rows)
    left_out_note = describe_left_out(left_out, len(untrained_rows)) if left_out else None
    if left_out_note:
        print(f"evaluate: {left_out_note}")
    answers: dict[str, list[str | None]] = {}
    details: dict[str, Any]
    retrieval: dict[str, Any] = {}
    if (trained.path / REMOTE_MODEL).is_file():
        answers, details = answer_with_provider(cfg, trained, items, VARIANTS)
    else:
        closed = closed_book_positions(items)
        questions = [prompt_messages(items[i]) for i in closed]
        budgets = [answer_budget(cfg, items[i]) for i in closed]
        speed: dict[str, float] = {}
        sources = {"base": (cfg.model.base, None), "tuned": (cfg.model.base, weights_dir(trained))}
        if champion is not None:
            sources[CHAMPION] = (champion.base_model, champion.weights)
        cached: dict[str, int] = {}
        cut: dict[str, int] = {}
        for variant, (base, weights) in sources.items():
            texts, speed[variant] = _answer_all(cfg, base, weights, variant, questions, budgets,
                                                cached, cut)
            answers[variant] = placed(texts, closed, len(items))
        if with_rag:
            rag_answers, retrieval = _answer_with_retrieval(cfg, sources, items, speed, cached,
                                                            cut)
            answers.update(rag_answers)
        details = {"generation_tokens_per_second": speed, "cached_answers": cached,
                   "answers_cut": cut}
        if SIMILARITY_FLOOR in retrieval:
            details[SIMILARITY_FLOOR] = retrieval[SIMILARITY_FLOOR]
        _warn_of_cut_answers(cut)
        if champion is not None:
            details["champion"] = champion.reference
    if left_out:
        details["never_trained_left_out"] = dict(left_out)
    lookup = lookup_replies([last_question(prompt_messages(item))
                             if item["set"] in FREE_TEXT_SETS else None for item in items],
                            curated.path / TRAIN, cfg.index.embedder, details)
    if lookup is not None:
        answers[NEAREST_TRAINED] = lookup
    variants = [v for v in (*VARIANTS, CHAMPION, *RAG_VARIANTS, NEAREST_TRAINED) if v in answers]
    vocabulary = Vocabulary.read(curated.path / EVAL_DIR / VALUES_FILE)
    predictions = [_prediction(item, {v: answers[v][i] for v in variants},
                               retrieval.get("items", {}).get(i, {}), vocabulary)
                   for i, item in enumerate(items)]
    metrics = _metrics(predictions, variants, vocabulary,
                       functools.partial(_similarity, cfg, details),
                       cfg.synthesize.unanswerable.answer)
    add_gains(metrics, predictions)
    if retrieval:
        metrics[RETRIEVAL] = retrieval["metrics"]
    if cfg.evaluate.judge.endpoint is not None and {"base", "tuned"} <= set(variants):
        opponent = CHAMPION if CHAMPION in variants else "base"
        metrics["judge"], details["judge_usage"] = _judge(cfg, predictions, opponent, tmp)
    if cfg.evaluate.judge.endpoint is not None:
        usage = _grade_replies(cfg, predictions, [v for v in variants if v != NEAREST_TRAINED],
                               metrics, tmp)
        if usage:
            details["reply_judge_usage"] = usage
    write_json_atomic(tmp / METRICS, metrics)
    write_jsonl(tmp / PREDICTIONS, predictions)
    if cfg.evaluate.drift_baseline:
        from tuneline.monitor.baseline import BASELINE_DIR, write_baseline

        write_baseline(curated.path / "train.jsonl", predictions, with_rag, cfg.index.embedder,
                       tmp / BASELINE_DIR, cfg.run.seed)
    variant_metrics = {v: metrics[v] for v in variants}
    notes = tuple(note for note in (left_out_note, _floor_note(details)) if note)
    report = (render_report(variant_metrics, predictions, notes)
              if set(VARIANTS) <= set(variants)
              else partial_report(variant_metrics, details.get("skipped", {})))
    (tmp / REPORT).write_text(report, encoding="utf-8")
    return StageResult(counts={"questions": len(items)}, details=details)


def _floor_note(details: dict[str, Any]) -> str | None:
    """The report's line on the similarity floor min_similarity 'auto' derived, if any."""
    from tuneline.rag.floor import DerivedFloor

    derived = details.get(SIMILARITY_FLOOR)
    if not derived:
        return None
    described = DerivedFloor(**derived).describe()
    return described[:1].upper() + described[1:] + "."


def prompt_messages(item: dict[str, Any]) -> list[dict[str, str]]:
    """What the model is asked: a held-out conversation's history, or the item's question."""
    return list(item.get("messages") or [{"role": "user", "content": item["question"]}])


def answer_budget(cfg: PipelineConfig, item: dict[str, Any]) -> int:
    """New tokens an answer may take: free-text replies (the reference set) get more."""
    return (cfg.evaluate.reference_max_new_tokens if item["set"] in FREE_TEXT_SETS
            else cfg.evaluate.max_new_tokens)


def _prediction(item: dict[str, Any], answers: dict[str, str | None],
                retrieved: dict[str, Any], vocabulary: Vocabulary) -> dict[str, Any]:
    """One predictions.jsonl row: the item, what was retrieved, and each variant's answer with
    its strict verdict, containment and the values it claims (a variant that did not answer
    this item, e.g. +rag on `general`, is absent)."""
    row = {**item, **retrieved}
    if item["set"] in FREE_TEXT_SETS:  # free text: graded against the reference in _metrics
        row.update({f"{variant}_answer": answer for variant, answer in answers.items()
                    if answer is not None})
        return row
    for variant, answer in answers.items():
        if answer is not None:
            verdict = judge_answer(answer, item, vocabulary)
            row.update({f"{variant}_answer": answer,
                        f"{variant}_correct": verdict.correct,
                        f"{variant}_contains": verdict.contains,
                        f"{variant}_abstained": verdict.abstained,
                        f"{variant}_claims": list(verdict.claims)})
    return row


def _judge(cfg: PipelineConfig, predictions: list[dict[str, Any]], opponent: str,
           tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tuned vs `opponent` through the judge endpoint; writes judgments.jsonl.

    Pairs are shuffled (seeded) so that judge.max_pairs samples every set."""
    from tuneline.evaluate.judge import JudgePair, judge_pairs
    from tuneline.models.resolve import cache_root

    pairs = [JudgePair(p["question"], p.get("reference") or p["fact"], p["tuned_answer"],
                       p[f"{opponent}_answer"],
                       {"set": p["set"], "id": p.get("id"), "template": p.get("template")})
             for p in predictions if "tuned_answer" in p and f"{opponent}_answer" in p]
    random.Random(cfg.run.seed).shuffle(pairs)
    outcome = judge_pairs(cfg.evaluate.judge, pairs, "tuned", opponent,
                          cache_root(cfg.model.cache_dir) / "llm-responses")
    write_jsonl(tmp / JUDGMENTS, outcome.judgments)
    return outcome.summary, outcome.usage


def _grade_replies(cfg: PipelineConfig, predictions: list[dict[str, Any]], variants: list[str],
                   metrics: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """The judge's correctness of every variant's free-text replies against the reference,
    and the groundedness of the +rag variants' replies in their passages (judge.max_pairs
    replies per variant and set): `judge_correctness` and `groundedness` in metrics.json,
    every verdict in reply_judgments.jsonl. Returns the request usage per kind."""
    from tuneline.evaluate.reply_judge import GradeItem, grade, summarize_grades
    from tuneline.models.resolve import cache_root

    limit = cfg.evaluate.judge.max_pairs
    usage: dict[str, Any] = {}
    written: list[dict[str, Any]] = []
    kinds = (("correctness", JUDGE_CORRECTNESS, variants),
             ("groundedness", GROUNDEDNESS, [v for v in variants if v in RAG_VARIANTS]))
    for kind, key, graded in kinds:
        items = []
        for variant in graded:
            for set_name in FREE_TEXT_SETS:
                rows = [p for p in predictions
                        if p["set"] == set_name and f"{variant}_answer" in p][:limit]
                items += [GradeItem(p["question"], p["reference"] if kind == "correctness"
                                    else "\n\n".join(p.get("passages") or ["(no passage)"]),
                                    p[f"{variant}_answer"],
                                    {"kind": kind, "variant": variant, "set": set_name,
                                     "id": p["id"]}) for p in rows]
        if not items:
            continue
        records, usage[kind] = grade(cfg.evaluate.judge, kind, items,
                                     cache_root(cfg.model.cache_dir) / "llm-responses")
        written += records
        for variant in graded:
            for set_name in FREE_TEXT_SETS:
                group = [r for r in records if r["variant"] == variant and r["set"] == set_name]
                if not group:
                    continue
                summary = summarize_grades(group, kind, cfg.run.seed)
                scores = metrics[variant][set_name]
                scores[key] = summary["score"]
                if summary["ci95"] is not None:
                    scores.setdefault("ci95", {})[key] = summary["ci95"]
                scores[f"{key}_verdicts"] = {k: v for k, v in summary.items()
                                             if k not in ("score", "ci95")}
    if written:
        write_jsonl(tmp / REPLY_JUDGMENTS, written)
    return usage


def _metrics(predictions: list[dict[str, Any]], variants: list[str], vocabulary: Vocabulary,
             load_similarity: Callable[[], SimilarityFn | None] = lambda: None,
             abstention: str | None = None) -> dict[str, Any]:
    """Scores per variant and set: strict scoring for facts, and for the free-text sets
    ROUGE-L, token F1 and (when `load_similarity` gives a function) embedding similarity,
    also written into each prediction row as `<variant>_<score>`."""
    metrics: dict[str, Any] = {}
    similarity: SimilarityFn | None = None
    loaded = False
    for variant in variants:
        metrics[variant] = {}
        for name in (*EVAL_SETS, GENERAL):
            rows = [p for p in predictions if p["set"] == name and f"{variant}_answer" in p]
            if not rows:
                continue
            answers = [p[f"{variant}_answer"] for p in rows]
            if name in FREE_TEXT_SETS:
                if not loaded:
                    similarity, loaded = load_similarity(), True
                scores = score_references(answers, rows, similarity, abstention)
                for row, row_scores in zip(rows, scores, strict=True):
                    row.update({f"{variant}_{k}": v for k, v in row_scores.items()
                                if k in REFERENCE_METRICS})
                metrics[variant][name] = summarize_scores(scores, rows)
            else:
                metrics[variant][name] = summarize_items(answers, rows, vocabulary=vocabulary)
    return metrics


def _similarity(cfg: PipelineConfig, details: dict[str, Any]) -> SimilarityFn | None:
    """Embedding similarity with the index's embedding model (the bundled MiniLM by default);
    None, with the reason in details, when the rag extra is not installed."""
    from tuneline.evaluate.free_text import embedding_similarity

    try:
        return embedding_similarity(cfg.index.embedder)
    except MissingDependencyError as exc:
        details["skipped_metrics"] = {"similarity": str(exc)}
        return None


def _answer_all(
    cfg: PipelineConfig, base: str, weights: Path | None, variant: str,
    conversations: list[list[dict[str, str]]], budgets: list[int],
    cached: dict[str, int] | None = None, cut: dict[str, int] | None = None,
) -> tuple[list[str], float]:
    """Every conversation answered, those of one token budget generated together; returns the
    answers and the tokens/s of what was generated (0.0 when every answer was cached).

    The base model's answers (no `weights`) come from the answer cache when it has them
    (evaluate.cache_base_answers); `cached[variant]` counts them, and `cut[variant]` the
    answers that reached their token budget before the model ended them. Answers over
    passages (`+rag`) end at the prompt's markup, as the server's do."""
    from tuneline.models.answer_cache import AnswerCache
    from tuneline.models.generation import Generation, generate_with_progress
    from tuneline.models.loading import load_for_inference

    loaded: list[Any] = []
    seconds = tokens = 0.0
    stops = ANSWER_STOPS if variant.endswith("+rag") else ()

    def generate(asked: list[Any], budget: int) -> list[Generation]:
        nonlocal seconds, tokens
        if not loaded:  # only when something is not cached
            loaded.extend(load_for_inference(base, weights, cfg.model.cache_dir,
                                             cfg.train.precision))
        started = time.perf_counter()
        generations, tokens_per_second = generate_with_progress(
            loaded[0], loaded[1], asked, budget, cfg.evaluate.batch_size, f"evaluate {variant}",
            stops)
        elapsed = time.perf_counter() - started
        seconds, tokens = seconds + elapsed, tokens + tokens_per_second * elapsed
        return generations

    cache = (AnswerCache.for_base(base, cfg.model.cache_dir, cfg.train.precision)
             if weights is None and cfg.evaluate.cache_base_answers else None)
    texts: list[str] = [""] * len(conversations)
    for budget in sorted(set(budgets)):
        chosen = [i for i, b in enumerate(budgets) if b == budget]
        asked = [conversations[i] for i in chosen]
        if cache is None:
            generations = generate(asked, budget)
        else:
            generations, hits = cache.answer(asked, budget,
                                             functools.partial(generate, budget=budget), stops)
            if cached is not None:
                cached[variant] = cached.get(variant, 0) + hits
        for i, generation in zip(chosen, generations, strict=True):
            texts[i] = generation.text
        if cut is not None:
            cut[variant] = cut.get(variant, 0) + sum(g.finish_reason == "length"
                                                     for g in generations)
    return texts, tokens / seconds if seconds else 0.0


def _warn_of_cut_answers(cut: dict[str, int]) -> None:
    """A tuned model stops by itself when it answers as trained: answers cut at their budget
    are scored as they stand (a country after the cut is missing), so say so. The base model
    rambling to its budget is expected and not reported."""
    for variant, count in cut.items():
        if count and not variant.startswith("base"):
            print(f"evaluate: {count} {variant} answers reached their token budget before the "
                  "model ended them and are scored cut short; raise evaluate.max_new_tokens "
                  "if answers this long are expected.", file=sys.stderr, flush=True)


def retrieval_conversations(cfg: PipelineConfig, items: list[dict[str, Any]],
                            details: dict[str, Any] | None = None,
                            ) -> tuple[list[int], list[list[Any]], list[list[dict[str, str]]]]:
    """What the +rag variants are asked: the indices of the curated items (not the general
    probe), their retrieval hits, and each one's question with its passages. The floor that
    min_similarity 'auto' derived goes to `details`."""
    from tuneline.rag.prompt import rag_messages
    from tuneline.rag.retrieve import Retriever

    chosen = [i for i, item in enumerate(items) if item["set"] in EVAL_SETS]
    retriever = Retriever.for_run(cfg)
    try:
        hits = retriever.search([items[i]["question"] for i in chosen])
        withhold_answers(retriever, items, chosen, hits, cfg.index.retrieval.top_k)
    finally:
        retriever.close()
    if retriever.derived_floor is not None and details is not None:
        details[SIMILARITY_FLOOR] = retriever.derived_floor.as_dict()
    max_chars = cfg.index.retrieval.max_passage_chars
    conversations = [rag_messages(prompt_messages(items[i]), [h.passage for h in found],
                                  max_chars)
                     for i, found in zip(chosen, hits, strict=True)]
    return chosen, hits, conversations


def _answer_with_retrieval(
    cfg: PipelineConfig, sources: dict[str, tuple[str, Path | None]],
    items: list[dict[str, Any]], speed: dict[str, float], cached: dict[str, int],
    cut: dict[str, int],
) -> tuple[dict[str, list[str | None]], dict[str, Any]]:
    """base+rag and tuned+rag on the curated sets (not the general probe), and retrieval
    metrics: recall@k and MRR of each item's gold record."""
    from tuneline.evaluate.retrieval import retrieval_metrics
    from tuneline.rag.retrieve import no_passage_reply

    notes: dict[str, Any] = {}
    chosen, hits, conversations = retrieval_conversations(cfg, items, notes)
    if SIMILARITY_FLOOR in notes:
        print(f"evaluate: {_floor_note(notes)}")
    max_chars = cfg.index.retrieval.max_passage_chars
    reply = no_passage_reply(cfg)
    asked = [n for n, found in enumerate(hits) if found or reply is None]
    budgets = [answer_budget(cfg, items[chosen[n]]) for n in asked]
    answers: dict[str, list[str | None]] = {}
    for variant in RAG_VARIANTS:
        base, weights = sources[variant.removesuffix("+rag")]
        texts, speed[variant] = _answer_all(cfg, base, weights, variant,
                                            [conversations[n] for n in asked], budgets, cached,
                                            cut)
        answers[variant] = [None] * len(items)
        for i in chosen:  # retrieval kept no passage: the reply, as the server gives it
            answers[variant][i] = reply
        for n, text in zip(asked, texts, strict=True):
            answers[variant][chosen[n]] = text
    found = retrieval_metrics([items[i] for i in chosen], hits, chosen,
                              cfg.index.retrieval.top_k)
    for i, passages in zip(chosen, hits, strict=True):  # what groundedness is judged against
        if items[i]["set"] in FREE_TEXT_SETS:
            found["items"][i]["passages"] = [h.passage.text[:max_chars] for h in passages]
    return answers, found | notes
