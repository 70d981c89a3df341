"""The drift baseline a version carries: embeddings of its training questions (a sample, their
clusters and coverage) and the rates its served variant showed at evaluation, which live
traffic is held to. Evaluate writes it; track and register store it with the version; `tuneline
monitor --version` reads it back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneline.curate.conversation_split import WITHHELD_SET
from tuneline.monitor.drift import DriftBaseline, build_baseline
from tuneline.monitor.prompts import training_questions
from tuneline.synthesize.out_of_data import UNANSWERABLE_KINDS

if TYPE_CHECKING:
    from tuneline.config import PipelineConfig

BASELINE_DIR = "drift-baseline"
# The forgetting probe is not traffic the version serves, and the unanswerable sets are there
# by design (half the demo's questions): the rates describe answerable questions, so a rise
# in declines or missing passages means users ask what the version cannot answer.
EXCLUDED_SETS = {"general", "unanswerable", WITHHELD_SET, *UNANSWERABLE_KINDS}


def served_variant(rag: bool) -> str:
    """The variant a server answers with: the tuned model, over retrieval when there is an index."""
    return "tuned+rag" if rag else "tuned"


def evaluation_rates(predictions: Sequence[dict[str, Any]], variant: str) -> dict[str, float]:
    """Share of declined answers, share of questions retrieval left without a passage (with
    RAG) and mean answer length in words, over the answerable evaluated questions of
    `variant`."""
    rows = [p for p in predictions if p.get("set") not in EXCLUDED_SETS
            and p.get(f"{variant}_answer") is not None]
    if not rows:
        return {}
    rates = {
        "abstention": sum(bool(p.get(f"{variant}_abstained")) for p in rows) / len(rows),
        "answer_words": sum(len(str(p[f"{variant}_answer"]).split()) for p in rows) / len(rows),
    }
    if variant.endswith("+rag"):
        rates["no_passage"] = sum(not p.get("retrieved") for p in rows) / len(rows)
    return rates


def write_baseline(train_jsonl: Path, predictions: Sequence[dict[str, Any]], rag: bool,
                   embedder_name: str, folder: Path, seed: int = 0) -> DriftBaseline:
    """Embed the training questions, cluster them and save the baseline into `folder`."""
    from tuneline.rag.embed import Embedder

    questions = training_questions(train_jsonl)
    baseline = build_baseline(Embedder(embedder_name).embed(questions),
                              rates=evaluation_rates(predictions, served_variant(rag)),
                              seed=seed)
    baseline.save(folder)
    return baseline


def registered_baseline_dir(cfg: PipelineConfig, reference: str) -> Path:
    """Where the registered version `reference` keeps its baseline (it may not exist: versions
    registered before evaluate.drift_baseline have none)."""
    from tuneline.registry import open_registry

    registry = open_registry(cfg.register)
    return registry.materialize(registry.get(reference)).path / BASELINE_DIR
