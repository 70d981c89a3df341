"""Fit training into a time limit (run.budget_minutes).

The loop trains its first steps as planned, measures seconds per computed token on them, projects
the rest of the plan step by step (steps differ in length: batches are grouped by length) and,
when the plan would not fit, cuts it to the most steps that do. The learning-rate schedule is
rebuilt for the cut plan, so warm-up and decay still span the whole of what is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tuneline.train.tokenize import TokenizedExample, shared_prompt_prefix

CALIBRATION_STEPS = 5  # the first is excluded from the speed: it includes kernel warm-up
MIN_SHARE = 0.25  # a cut never trains less than this share of the plan


@dataclass
class BudgetCut:
    """How a time limit shaped training, for the manifest and the printed line."""

    limit_seconds: float
    planned_steps: int
    steps: int
    seconds_per_1k_tokens: float
    projected_seconds: float  # of the whole plan, at the measured speed
    # training examples, and those the (cut) plan's steps reach: a plan cut below one epoch
    # never shows the rest, whose facts the recall sets still ask about (None: not counted)
    examples: int | None = None
    examples_trained: int | None = None

    @property
    def cut(self) -> bool:
        return self.steps < self.planned_steps

    @property
    def examples_never_trained(self) -> int:
        if self.examples is None or self.examples_trained is None:
            return 0
        return self.examples - self.examples_trained

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cut": self.cut,
                "examples_never_trained": self.examples_never_trained}

    def describe(self, steps_per_epoch: int) -> str:
        plan = (f"the plan ({self.planned_steps} steps, "
                f"{self.planned_steps / steps_per_epoch:.2f} epochs) needs "
                f"~{self.projected_seconds:,.0f} s at {self.seconds_per_1k_tokens:.2f} s per "
                f"1k tokens; the limit is {self.limit_seconds:,.0f} s")
        if not self.cut:
            return f"train budget: {plan}: it fits"
        cut = (f"train budget: {plan}: training {self.steps} steps "
               f"({self.steps / steps_per_epoch:.2f} epochs) instead")
        if self.examples_never_trained:
            cut += (f"; {self.examples_never_trained} of {self.examples} examples are never "
                    "trained (evaluate leaves out the recall questions only they teach): raise "
                    "run.budget_minutes to train them all")
        return cut


def step_tokens(batch: Sequence[TokenizedExample], share_prefix: bool,
                max_tokens: int | None = None) -> int:
    """What a step costs: in each micro-batch (token_bounded), rows times the longest row
    (padding is computed too), less the shared prompt prefix that all but one row skip when
    the loop shares it."""
    cost = 0
    for part in token_bounded(batch, max_tokens):
        shared = shared_prompt_prefix(part) if share_prefix else 0
        cost += len(part) * max(len(e.input_ids) for e in part) - (len(part) - 1) * shared
    return cost


def token_bounded(rows: Sequence[TokenizedExample], max_tokens: int | None
                  ) -> list[list[TokenizedExample]]:
    """`rows` in consecutive micro-batches of at most `max_tokens` padded tokens (rows times
    the longest); a row longer than that on its own. None: one micro-batch."""
    parts: list[list[TokenizedExample]] = []
    part: list[TokenizedExample] = []
    longest = 0
    for row in rows:
        length = len(row.input_ids)
        if part and max_tokens is not None and (len(part) + 1) * max(longest, length) > max_tokens:
            parts.append(part)
            part, longest = [], 0
        part.append(row)
        longest = max(longest, length)
    return [*parts, part] if part else parts


def calibration_step(total_steps: int) -> int:
    """The step after which the plan is projected; 0 when the plan is too short to measure."""
    step = min(CALIBRATION_STEPS, total_steps - 1)
    return step if step >= 2 else 0


def fit_plan(step_costs: Sequence[int], done: int, elapsed_seconds: float,
             seconds_per_token: float, limit_seconds: float) -> BudgetCut:
    """The most steps whose projected time, after `done` steps took `elapsed_seconds`, fits
    `limit_seconds`; never fewer than MIN_SHARE of the plan nor than `done` + 1."""
    planned = len(step_costs)
    remaining = [cost * seconds_per_token for cost in step_costs[done:]]
    projected = elapsed_seconds + sum(remaining)
    steps, spent = done, elapsed_seconds
    for seconds in remaining:
        if spent + seconds > limit_seconds:
            break
        spent, steps = spent + seconds, steps + 1
    floor = min(planned, max(done + 1, round(planned * MIN_SHARE)))
    return BudgetCut(limit_seconds=limit_seconds, planned_steps=planned,
                     steps=max(steps, floor), seconds_per_1k_tokens=seconds_per_token * 1000,
                     projected_seconds=projected)
