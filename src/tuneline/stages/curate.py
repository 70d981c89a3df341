"""Stage 3, curate: normalise, redact PII, dedup, split by fact; export chat JSONL and eval sets."""

from __future__ import annotations

from pathlib import Path

from tuneline.artifacts import Artifact, StageResult, read_jsonl, run_stage, write_jsonl
from tuneline.config import PipelineConfig
from tuneline.data.clean import clean_facts
from tuneline.data.export import chat_examples, eval_items
from tuneline.data.split import drop_leaks, split_by_fact
from tuneline.data.validate import validate_file
from tuneline.errors import ConfigError, DataError
from tuneline.stages.synthesize import load_facts

TRAIN, VAL, TEST = "train.jsonl", "val.jsonl", "test.jsonl"
EVAL_DIR = "eval"
EVAL_SETS = ("recall", "heldout")


def run(cfg: PipelineConfig, synthesized: Artifact, out_dir: Path, force: bool = False) -> Artifact:
    """Write train/val/test chat JSONL and `eval/{recall,heldout}.jsonl` into `out_dir`."""
    config_hash = cfg.section_hash("curate", "run")

    def work(tmp: Path) -> StageResult:
        facts, cleaning = clean_facts(load_facts(synthesized), cfg.curate)
        n_recall = cfg.curate.recall_phrasings
        too_few = sorted({f.template for f in facts if len(f.questions) <= n_recall})
        if too_few:
            raise ConfigError([
                f"synthesize.templates ({name}): needs more than curate.recall_phrasings="
                f"{n_recall} questions so some are left to train on" for name in too_few
            ])
        split = split_by_fact(facts, cfg.curate.heldout_fraction, cfg.curate.val_fraction,
                              cfg.run.seed)
        leaks = drop_leaks(split, cfg.curate.dedup.threshold) if cfg.curate.dedup.near else 0
        trained, recall_only = slice(None, -n_recall), slice(-n_recall, None)
        (tmp / EVAL_DIR).mkdir()
        counts = {
            **cleaning,
            "dropped:near_duplicate_of_train": leaks,
            "facts_train": len(split.train),
            "facts_val": len(split.val),
            "facts_heldout": len(split.heldout),
            "train": write_jsonl(tmp / TRAIN, chat_examples(split.train, trained)),
            "val": write_jsonl(tmp / VAL, chat_examples(split.val, trained)),
            "test": write_jsonl(tmp / TEST, chat_examples(split.heldout, slice(None))),
            "recall": write_jsonl(tmp / EVAL_DIR / "recall.jsonl",
                                  eval_items(split.train, recall_only, "recall")),
            "heldout": write_jsonl(tmp / EVAL_DIR / "heldout.jsonl",
                                   eval_items(split.heldout, recall_only, "heldout")),
        }
        for name in (TRAIN, VAL, TEST):
            _check_format(tmp / name)
        return StageResult(counts=counts)

    return run_stage("curate", out_dir, config_hash, {"synthesize": synthesized.output_hash},
                     work, force)


def load_eval_set(curated: Artifact, name: str) -> list[dict]:
    """One evaluation set written by curate."""
    return read_jsonl(curated.path / EVAL_DIR / f"{name}.jsonl")


def load_chat(curated: Artifact, split: str) -> list[dict]:
    """Chat examples of one split ('train', 'val' or 'test')."""
    return read_jsonl(curated.path / f"{split}.jsonl")


def _check_format(path: Path) -> None:
    """Refuse to hand the trainer a file that OpenAI's format rules reject."""
    report = validate_file(path)
    report.problems = [p for p in report.problems if p.rule != "empty_file"]
    if not report.ok:
        shown = "\n".join(p.render(path.name) for p in report.problems[:5])
        raise DataError(f"curate wrote {len(report.bad_lines)} invalid chat example(s); check "
                        f"the synthesize templates:\n{shown}")
