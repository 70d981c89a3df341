"""The training loss: next-token loss at answer positions only, with the prompt prefix that
every row of a batch shares computed once."""

from __future__ import annotations

from typing import Any

from tuneline._optional import require
from tuneline.models.prefix import cache_kwarg, repeated_prefix_cache
from tuneline.train.tokenize import IGNORE_INDEX

torch = require("torch")

__all__ = ["AnswerLossModule", "answer_loss", "answer_loss_sum", "head_cross_entropy_sum"]

# Labelled positions projected onto the vocabulary at a time: 128 x 49,152 float32 logits are
# 25 MB, below glibc's largest mmap threshold (32 MB), so the allocator reuses one chunk's
# memory for the next instead of taking fresh pages from the kernel for each.
HEAD_CHUNK_ROWS = 128


class AnswerLossModule(torch.nn.Module):
    """A causal LM whose forward returns (summed answer-token loss, answer-token count).

    Data-parallel wrappers (DDP, FSDP) must see the whole forward, so the loss lives inside it.
    With `share_prefix`, the prompt prefix that every row of a batch starts with runs once
    (answer_loss_sum).
    """

    def __init__(self, lm: Any, share_prefix: bool = False, chunk_head: bool = True) -> None:
        super().__init__()
        self.lm = lm
        self.share_prefix = share_prefix
        self.chunk_head = chunk_head

    def forward(self, input_ids: Any, labels: Any, attention_mask: Any = None,
                position_ids: Any = None, shared_prefix: int = 0) -> tuple[Any, Any]:
        return answer_loss_sum(self.lm, input_ids, labels, attention_mask, position_ids,
                               shared_prefix if self.share_prefix else 0, self.chunk_head)


def answer_loss_sum(model: Any, input_ids: Any, labels: Any, attention_mask: Any = None,
                    position_ids: Any = None, shared_prefix: int = 0,
                    chunk_head: bool = True) -> tuple[Any, Any]:
    """Summed next-token loss over labelled positions, projecting only those onto the vocabulary.

    Computing the LM head over every position costs as much as the rest of a 135M model
    (49k vocabulary) while prompts carry no loss; gathering the labelled hidden states first
    skips that work. Falls back to the model's own loss for models without a split head.

    `shared_prefix` (tokenize.shared_prompt_prefix: leading tokens common to every row, before
    any label) runs once as a one-row forward whose keys and values every row then attends to:
    the same loss and gradients, to float rounding, without recomputing the system prompt and
    the RAG instruction for each example (a third of the demo's training tokens).

    `chunk_head`: project onto the vocabulary in chunks (head_cross_entropy_sum) where the head
    is a plain, frozen linear layer on a CPU (where it was measured). Off where a sharding
    wrapper (FSDP, ZeRO-3) owns the head's weight: it is only whole inside its own forward.
    """
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    count = keep.sum()
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(causal_lm, "model", None)
    head = causal_lm.get_output_embeddings()
    if decoder is None or head is None:
        out = model(input_ids=input_ids, attention_mask=attention_mask,
                    position_ids=position_ids, labels=labels, use_cache=False)
        return out.loss * count, count
    hidden = None
    if shared_prefix and attention_mask is not None and position_ids is None:
        hidden = _hidden_after_shared_prefix(decoder, input_ids, attention_mask, shared_prefix)
    if hidden is None:
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=position_ids, use_cache=False).last_hidden_state
    else:  # hidden starts at the first unshared position
        targets = labels[:, shared_prefix + 1:]
        keep = targets != IGNORE_INDEX
    hidden = hidden[:, :-1][keep]
    if (chunk_head and hidden.device.type == "cpu" and type(head) is torch.nn.Linear
            and head.bias is None and not head.weight.requires_grad):
        return head_cross_entropy_sum(hidden, head.weight, targets[keep]), count
    logits = head(hidden)
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum"), count


def head_cross_entropy_sum(hidden: Any, weight: Any, targets: Any) -> Any:
    """Summed cross-entropy of the logits `hidden @ weight.T` against `targets` (class indices,
    none ignored), as `cross_entropy(linear(hidden, weight).float(), targets, reduction="sum")`
    computes it (logits in the autocast's dtype when one is on, softmax in float32),
    HEAD_CHUNK_ROWS rows at a time, with the hidden states' gradient computed in the same pass:
    the [rows, vocabulary] logits never exist whole. The Python FAQ's long answers put 1,250
    labelled positions in a micro-batch: a 246 MB float32 tensor that the unchunked loss writes
    four times (cast, log-softmax, a zeroed gradient, its softmax gradient). The head's `weight`
    must be frozen (LoRA's is): for a trained one, a weight-sized gradient a chunk cost more
    than the chunks saved (full fine-tuning projects whole)."""
    if weight.requires_grad and torch.is_grad_enabled():
        raise ValueError("head_cross_entropy_sum: the head's weight must be frozen")
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
    else:
        dtype = torch.promote_types(hidden.dtype, weight.dtype)
    # Inside an autograd Function's forward grad mode is off: ask here whether to compute it.
    gradient = torch.is_grad_enabled() and hidden.requires_grad
    return _ChunkedHeadCrossEntropy.apply(hidden, weight, targets, dtype, gradient)


class _ChunkedHeadCrossEntropy(torch.autograd.Function):
    """head_cross_entropy_sum: the forward pass keeps the hidden states' gradient (where
    autograd needs it); backward scales it."""

    @staticmethod
    def forward(ctx: Any, hidden: Any, weight: Any, targets: Any, dtype: Any,
                gradient: bool) -> Any:
        grad_hidden = (torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
                       if gradient else None)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            head = weight.to(dtype)
            for start in range(0, hidden.shape[0], HEAD_CHUNK_ROWS):
                rows = slice(start, start + HEAD_CHUNK_ROWS)
                wanted = targets[rows]
                logits = (hidden[rows].to(dtype) @ head.T).float()
                normaliser = torch.logsumexp(logits, dim=-1)
                total += (normaliser - logits.gather(1, wanted[:, None]).squeeze(1)).sum()
                if grad_hidden is None:
                    continue
                # d loss / d logits = softmax - one-hot of the target
                grad_logits = logits.sub_(normaliser[:, None]).exp_()
                grad_logits[torch.arange(len(wanted), device=wanted.device), wanted] -= 1
                grad_hidden[rows] = grad_logits.to(dtype) @ head
        ctx.save_for_backward(grad_hidden)
        ctx.hidden_dtype = hidden.dtype
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_total: Any) -> tuple[Any, None, None, None, None]:
        (grad_hidden,) = ctx.saved_tensors
        if grad_hidden is None:
            return None, None, None, None, None
        return (grad_hidden * grad_total).to(ctx.hidden_dtype), None, None, None, None


def _hidden_after_shared_prefix(decoder: Any, input_ids: Any, attention_mask: Any,
                                shared: int) -> Any:
    """The decoder's last hidden states from position `shared` on, the first `shared` tokens
    (the same in every row) computed once; None where the decoder keeps no cache, so the
    caller runs the whole batch instead."""
    cache = repeated_prefix_cache(decoder, input_ids[:1, :shared], input_ids.shape[0])
    if cache is None:
        return None
    return decoder(input_ids=input_ids[:, shared:], attention_mask=attention_mask,
                   use_cache=True, **{cache_kwarg(type(decoder)): cache}).last_hidden_state


def answer_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean next-token loss over the labelled positions of a collated batch."""
    total, count = answer_loss_sum(model, batch["input_ids"], batch["labels"],
                                   batch.get("attention_mask"), batch.get("position_ids"),
                                   batch.get("shared_prefix", 0))
    return total / count.clamp(min=1)
