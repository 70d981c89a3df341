"""Export time, size and fidelity per format and GGUF quant, for a run's tuned model.

Ours: `tuneline export` in each format (the PEFT adapter, the merged HF folder in float32, GGUF
f16 / q8_0 / q4_0). The baseline every export is compared with is the merged HF model in
float32 (what `from_pretrained` of the base plus the adapter computes): for each export, the
share of the eval set's questions answered with the same greedy tokens (closed book, up to
--max-new tokens, until the end token) and the share of answer positions where it predicts the
same next token as the baseline along the baseline's own answer. GGUF files are read back with
transformers (`gguf_file=`, dequantized to float32): this measures what the quantization loses.
Where `make llamacpp` has installed llama.cpp (bench/llamacpp), each GGUF is also run there, with
llama.cpp's own tokenizer and kernels: the share of the same greedy answers, and of prompts it
tokenizes as the baseline does. Then the export's wall time, its size on disk, and peak RSS.

It needs a trained run (`tuneline train CONFIG`). The questions come from the dev split by
default (`--split test` for the test sets; nothing here picks a knob).

    .venv/bin/python bench/export.py examples/paris2024/tuneline.yaml
    .venv/bin/python bench/export.py CONFIG --set recall,heldout --max-new 48 run.runs_dir=/tmp/runs
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

EXPORTS = (("adapter", None), ("hf", None), ("gguf", "f16"), ("gguf", "q8_0"), ("gguf", "q4_0"))
LLAMACPP = Path(__file__).parent / "llamacpp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, as for `tuneline run`")
    parser.add_argument("--set", default="recall",
                        help="eval sets whose questions are asked, comma-separated")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--max-new", type=int, default=48, help="answer tokens at most")
    args = parser.parse_args()
    from tuneline.machine import this_machine

    print(this_machine().summary())  # figures compare within one machine class only

    from tuneline.artifacts import read_jsonl
    from tuneline.config import load_config

    cfg = load_config(args.config, args.overrides)
    run_dir = Path(cfg.run.runs_dir) / cfg.run.name
    adapter = run_dir / "train" / "adapter"
    eval_dir = run_dir / "curate" / "eval" / ("dev" if args.split == "dev" else "")
    questions = [item["question"] for name in args.set.split(",")
                 for item in read_jsonl(eval_dir / f"{name}.jsonl")]
    print(f"run {run_dir}, {len(questions)} questions of {args.split}/{args.set}, "
          f"greedy up to {args.max_new} tokens; baseline: the merged HF model (float32)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        written = {quant or fmt: _export(cfg, adapter, root / (quant or fmt), fmt, quant)
                   for fmt, quant in EXPORTS}
        baseline = _Model.load(written["hf"][0], None)
        expected = [baseline.greedy(q, args.max_new) for q in questions]
        llamacpp = _has_llamacpp()
        print(f"{'export':<9}{'seconds':>9}{'MiB':>9}{'same answer':>13}{'same next token':>17}"
              + (f"{'llama.cpp: same answer':>24}{'same prompt':>13}" if llamacpp else ""))
        for label, (folder, seconds) in written.items():
            same_answer = same_token = "-"
            in_llamacpp = ""
            if label != "adapter":
                model = (baseline if label == "hf" else
                         _Model.load(folder, f"{folder.name}.gguf"))
                answers = [model.greedy(q, args.max_new) for q in questions]
                same = sum(a == e for a, e in zip(answers, expected, strict=True))
                same_answer = f"{same / len(expected):.1%}"
                same_token = f"{model.next_token_agreement(baseline, questions, expected):.1%}"
            if llamacpp and label not in ("adapter", "hf"):
                in_llamacpp = _llamacpp_agreement(baseline, folder / f"{folder.name}.gguf",
                                                  questions, expected, args.max_new)
            print(f"{label:<9}{seconds:>9.1f}{_mib(folder):>9.1f}{same_answer:>13}"
                  f"{same_token:>17}{in_llamacpp}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"peak RSS {peak:.2f} GiB")


def _export(cfg, adapter: Path, output: Path, fmt: str, quant: str | None
            ) -> tuple[Path, float]:
    from tuneline.models.export import adapter_base, export_adapter, export_gguf, export_merged

    start = time.perf_counter()
    if fmt == "adapter":
        export_adapter(adapter, output)
    elif fmt == "hf":
        export_merged(adapter, adapter_base(adapter), output, "float32", cfg.model.cache_dir)
    else:
        export_gguf(adapter, adapter_base(adapter), output, output.name, quant,
                    cfg.model.cache_dir)
    return output, time.perf_counter() - start


class _Model:
    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    @classmethod
    def load(cls, folder: Path, gguf_file: str | None) -> _Model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        extra = {"gguf_file": gguf_file} if gguf_file else {}
        return cls(AutoModelForCausalLM.from_pretrained(folder, **extra).eval(),
                   AutoTokenizer.from_pretrained(folder, **extra))

    def prompt(self, question: str) -> list[int]:
        return list(self.tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True,
            return_dict=True)["input_ids"])

    def greedy(self, question: str, max_new: int) -> list[int]:
        import torch

        ids = self.prompt(question)
        with torch.no_grad():
            out = self.model.generate(torch.tensor([ids]), max_new_tokens=max_new,
                                      do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        return out[0, len(ids):].tolist()

    def next_token_agreement(self, baseline: _Model, questions: list[str],
                             answers: list[list[int]]) -> float:
        """Share of positions along the baseline's answers where both pick the same token."""
        import torch

        same = total = 0
        with torch.no_grad():
            for question, answer in zip(questions, answers, strict=True):
                prompt = baseline.prompt(question)
                ids = torch.tensor([prompt + answer])
                at = slice(len(prompt) - 1, -1)
                mine = self.model(ids).logits[0, at].argmax(-1)
                theirs = baseline.model(ids).logits[0, at].argmax(-1)
                same += int((mine == theirs).sum())
                total += len(answer)
        return same / max(total, 1)


def _has_llamacpp() -> bool:
    return shutil.which("node") is not None and (LLAMACPP / "node_modules").is_dir()


def _llamacpp_agreement(baseline: _Model, gguf: Path, questions: list[str],
                        expected: list[list[int]], max_new: int) -> str:
    """Same greedy answers and same prompt tokens in llama.cpp (bench/llamacpp/generate.mjs)."""
    texts = [baseline.tokenizer.apply_chat_template([{"role": "user", "content": q}],
                                                    tokenize=False, add_generation_prompt=True)
             for q in questions]
    request = {"model": str(gguf), "prompts": texts, "max_tokens": max_new}
    done = subprocess.run(["node", "generate.mjs"], cwd=LLAMACPP, input=json.dumps(request),
                          capture_output=True, text=True, check=True)
    got = json.loads(done.stdout)
    same = sum(a == e for a, e in zip(got["answers"], expected, strict=True))
    prompts = sum(t == baseline.prompt(q) for t, q in zip(got["prompt_tokens"], questions,
                                                          strict=True))
    return f"{same / len(expected):>24.1%}{prompts / len(questions):>13.1%}"


def _mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1024 ** 2


if __name__ == "__main__":
    main()
