"""The training loss: next-token loss at answer positions only, with the prompt prefix that
every row of a batch shares computed once."""

from __future__ import annotations

from typing import Any

from tuneline._optional import require
from tuneline.models.prefix import cache_kwarg, repeated_prefix_cache
from tuneline.train.tokenize import IGNORE_INDEX

torch = require("torch")

__all__ = ["AnswerLossModule", "answer_loss", "answer_loss_sum"]


class AnswerLossModule(torch.nn.Module):
    """A causal LM whose forward returns (summed answer-token loss, answer-token count).

    Data-parallel wrappers (DDP, FSDP) must see the whole forward, so the loss lives inside it.
    With `share_prefix`, the prompt prefix that every row of a batch starts with runs once
    (answer_loss_sum).
    """

    def __init__(self, lm: Any, share_prefix: bool = False) -> None:
        super().__init__()
        self.lm = lm
        self.share_prefix = share_prefix

    def forward(self, input_ids: Any, labels: Any, attention_mask: Any = None,
                position_ids: Any = None, shared_prefix: int = 0) -> tuple[Any, Any]:
        return answer_loss_sum(self.lm, input_ids, labels, attention_mask, position_ids,
                               shared_prefix if self.share_prefix else 0)


def answer_loss_sum(model: Any, input_ids: Any, labels: Any, attention_mask: Any = None,
                    position_ids: Any = None, shared_prefix: int = 0) -> tuple[Any, Any]:
    """Summed next-token loss over labelled positions, projecting only those onto the vocabulary.

    Computing the LM head over every position costs as much as the rest of a 135M model
    (49k vocabulary) while prompts carry no loss; gathering the labelled hidden states first
    skips that work. Falls back to the model's own loss for models without a split head.

    `shared_prefix` (tokenize.shared_prompt_prefix: leading tokens common to every row, before
    any label) runs once as a one-row forward whose keys and values every row then attends to:
    the same loss and gradients, to float rounding, without recomputing the system prompt and
    the RAG instruction for each example (a third of the demo's training tokens).
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
    logits = head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum"), count


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
