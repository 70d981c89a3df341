"""Evaluation generation: tuneline's batched greedy decoding vs answering one question at a time.

Same model (the embedded SmolLM2-135M-Instruct, or --model), same questions (the packaged
`general` probe, repeated to --questions; with --rag, each asked in the RAG format with three
passages, its own reference sentence and two others'), same greedy decoding and answer budget.
Ours is the evaluate stage's `generate_all` (length-sorted batches of --batch-size, the prompt
prefix a batch shares run once); beside it the same batches left-padded with nothing shared
(what `model.generate` on a tokenizer's padded batch does), and the baseline is the loop most
eval scripts write: one `model.generate` call per question (`generate_all` with batch size 1,
so prompts, decoding and stopping are identical). Timings exclude model loading;
each path first answers one warm-up batch. Tokens are the answers' real tokens (up to EOS), so
padding and the tokens a finished row idles through in a batch are not counted. Also reported:
how many answers are identical in both paths, and peak RSS.

    .venv/bin/python bench/eval.py                         # 64 questions, batch 16 and 32
    .venv/bin/python bench/eval.py --batch-size 16 --questions 128 --max-new-tokens 48
    .venv/bin/python bench/eval.py --rag --batch-size 32    # prompts of ~150 tokens
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from importlib import resources
from typing import Any


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def questions(n: int, rag: bool) -> list[list[dict[str, str]]]:
    from tuneline.rag.passages import Passage
    from tuneline.rag.prompt import rag_messages

    text = resources.files("tuneline.evaluate").joinpath("probes/general.jsonl").read_text()
    probe = [json.loads(line) for line in text.splitlines() if line.strip()]
    chats = []
    for i in range(n):
        chat = [{"role": "user", "content": probe[i % len(probe)]["question"]}]
        if rag:
            passages = [Passage(f"probe:{j}", probe[j % len(probe)]["reference"], "probe")
                        for j in (i, i + 7, i + 19)]
            chat = rag_messages(chat, passages)
        chats.append(chat)
    return chats


def timed(model: Any, tokenizer: Any, conversations: list, max_new_tokens: int,
          batch_size: int, share_prefix: bool = True) -> tuple[list[Any], float]:
    from tuneline.models.generation import generate_all

    generate_all(model, tokenizer, conversations[:batch_size], max_new_tokens, batch_size,
                 share_prefix=share_prefix)
    started = time.perf_counter()
    answers = generate_all(model, tokenizer, conversations, max_new_tokens, batch_size,
                           share_prefix=share_prefix)
    return answers, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, action="append", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--rag", action="store_true",
                        help="ask in the RAG format, with three passages per question")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="as train.precision (auto: fp32 on a CPU, bf16 on a GPU that has it)")
    args = parser.parse_args()
    from tuneline.machine import this_machine

    print(this_machine().summary())  # figures compare within one machine class only
    batch_sizes = args.batch_size or [16, 32]

    import torch

    from tuneline.models.loading import load_for_inference

    log(f"torch threads {torch.get_num_threads()}; loading {args.model}")
    model, tokenizer = load_for_inference(args.model, None, precision=args.precision)
    conversations = questions(args.questions, args.rag)

    log(f"baseline: one question at a time, {len(conversations)} questions")
    one_by_one, baseline_s = timed(model, tokenizer, conversations, args.max_new_tokens, 1)
    tokens = sum(g.completion_tokens for g in one_by_one)
    rows = [("one-by-one (baseline)", 1, tokens, baseline_s, len(conversations))]
    for batch_size in batch_sizes:
        for share, name in ((False, "left-padded"), (True, "tuneline")):
            log(f"{name}: batches of {batch_size}")
            batched, seconds = timed(model, tokenizer, conversations, args.max_new_tokens,
                                     batch_size, share)
            same = sum(a.text == b.text for a, b in zip(batched, one_by_one, strict=True))
            rows.append((f"{name} (batch {batch_size})", batch_size,
                         sum(g.completion_tokens for g in batched), seconds, same))

    prompt = sum(g.prompt_tokens for g in one_by_one) / len(one_by_one)
    print(f"\nmodel {args.model}, {len(conversations)} questions ({prompt:.0f} prompt tokens "
          f"on average{', RAG format' if args.rag else ''}), greedy, max_new_tokens "
          f"{args.max_new_tokens}, torch threads {torch.get_num_threads()}, "
          f"{next(model.parameters()).dtype}")
    print(f"{'path':<30} {'answer tok':>10} {'seconds':>8} {'tok/s':>8} {'q/s':>6} "
          f"{'speed-up':>8} {'same answer':>11}")
    for name, _, n_tokens, seconds, same in rows:
        print(f"{name:<30} {n_tokens:>10} {seconds:>8.1f} {n_tokens / seconds:>8.1f} "
              f"{len(conversations) / seconds:>6.2f} {baseline_s / seconds:>7.2f}x "
              f"{same:>5}/{len(conversations)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS {peak:.2f} GiB (whole process)")


if __name__ == "__main__":
    main()
