"""Evaluation generation: tuneline's batched greedy decoding vs `model.generate`.

Same model (the embedded SmolLM2-135M-Instruct, or --model), same questions (the packaged
`general` probe, repeated to --questions; with --rag, each asked in the RAG format with three
passages, its own reference sentence and two others'), same greedy decoding, answer budget
and end tokens. Ours is the evaluate stage's `generate_all`: batches of up to --batch-size
rows in order of prompt length, their prompts run in parts of few padded tokens
(models.generation.PREFILL_TOKENS) after the prefix they share, run once, then decoded as one
batch with keys and values written in place, each row leaving the batch when it ends.
Beside it, transformers' own `model.generate` on the same length-ordered batches left-padded by
the tokenizer (every row decodes until the batch's longest answer ends), and the baseline most
eval scripts write: one `model.generate` call per question. Timings exclude model loading;
each path first answers one warm-up batch. Tokens are the answers' real tokens (up to the end
token), so padding and the tokens a finished row idles through are not counted. Also reported:
how many answers are identical to the baseline's, and peak RSS.

    .venv/bin/python bench/eval.py                         # 64 questions, batch 16 and 64
    .venv/bin/python bench/eval.py --batch-size 64 --questions 162 --max-new-tokens 48
    .venv/bin/python bench/eval.py --rag --batch-size 64    # prompts of ~150 tokens
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


def hf_generate_all(model: Any, tokenizer: Any, conversations: list, max_new_tokens: int,
                    batch_size: int) -> list[Any]:
    """`model.generate` on left-padded batches in order of prompt length: the library's path."""
    import torch

    from tuneline.models.generation import _decode, _pad_after_prefix, end_token_ids, prompt_ids

    ends = end_token_ids(model, tokenizer)
    rows = [prompt_ids(tokenizer, c) for c in conversations]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    answers: list[Any] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        ids, mask = _pad_after_prefix([rows[i] for i in batch], 0, tokenizer.pad_token_id)
        with torch.inference_mode():
            output = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                    max_new_tokens=max_new_tokens, eos_token_id=sorted(ends),
                                    pad_token_id=tokenizer.pad_token_id)
        for i, new in zip(batch, output[:, ids.shape[1]:].tolist(), strict=True):
            ended = next((k for k, token in enumerate(new) if token in ends), len(new) - 1)
            answers[i] = _decode(tokenizer, new[:ended + 1], len(rows[i]), ends)  # pads cut
    return answers


def timed(generate: Any, model: Any, tokenizer: Any, conversations: list, max_new_tokens: int,
          batch_size: int) -> tuple[list[Any], float]:
    generate(model, tokenizer, conversations[:batch_size], max_new_tokens, batch_size)
    started = time.perf_counter()
    answers = generate(model, tokenizer, conversations, max_new_tokens, batch_size)
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
    batch_sizes = args.batch_size or [16, 64]

    import torch

    from tuneline.models.generation import generate_all
    from tuneline.models.loading import load_for_inference

    log(f"torch threads {torch.get_num_threads()}; loading {args.model}")
    model, tokenizer = load_for_inference(args.model, None, precision=args.precision)
    conversations = questions(args.questions, args.rag)

    log(f"baseline: model.generate, one question at a time, {len(conversations)} questions")
    one_by_one, baseline_s = timed(hf_generate_all, model, tokenizer, conversations,
                                   args.max_new_tokens, 1)
    tokens = sum(g.completion_tokens for g in one_by_one)
    rows = [("model.generate one-by-one (baseline)", 1, tokens, baseline_s, len(conversations))]
    for batch_size in batch_sizes:
        for generate, name in ((hf_generate_all, "model.generate"), (generate_all, "tuneline")):
            log(f"{name}: batches of {batch_size}")
            batched, seconds = timed(generate, model, tokenizer, conversations,
                                     args.max_new_tokens, batch_size)
            same = sum(a.text == b.text for a, b in zip(batched, one_by_one, strict=True))
            rows.append((f"{name} (batch {batch_size})", batch_size,
                         sum(g.completion_tokens for g in batched), seconds, same))

    prompt = sum(g.prompt_tokens for g in one_by_one) / len(one_by_one)
    print(f"\nmodel {args.model}, {len(conversations)} questions ({prompt:.0f} prompt tokens "
          f"on average{', RAG format' if args.rag else ''}), greedy, max_new_tokens "
          f"{args.max_new_tokens}, torch threads {torch.get_num_threads()}, "
          f"{next(model.parameters()).dtype}")
    print(f"{'path':<36} {'answer tok':>10} {'seconds':>8} {'tok/s':>8} {'q/s':>6} "
          f"{'speed-up':>8} {'same answer':>11}")
    for name, _, n_tokens, seconds, same in rows:
        print(f"{name:<36} {n_tokens:>10} {seconds:>8.1f} {n_tokens / seconds:>8.1f} "
              f"{len(conversations) / seconds:>6.2f} {baseline_s / seconds:>7.2f}x "
              f"{same:>5}/{len(conversations)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS {peak:.2f} GiB (whole process)")


if __name__ == "__main__":
    main()
