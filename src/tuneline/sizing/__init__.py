"""Size a run to run.budget_minutes on this machine.

A run with a budget measures the machine before it trains: two LoRA steps and batched
generation at a short and a long context with the base model (sizing.speed; about 20 s on the
2-core AVX2 class). With the data curated at
the configured size it projects train, replay and evaluate. Train's own time limit (what is
left less evaluate's projection) cuts its steps when they would not fit; when even half the
steps and the full evaluated sets would not fit, the counts that make the data (facts, reading
facts and invented entities per template, the fewest RAG answers) are scaled down by one factor
and synthesize and curate run again at that size, which shrinks training and the evaluated sets
together. Fewer steps come first because they leave the scored sets whole (STEP_SHARE_FIRST).

The scale, the speeds and the projection are printed and written to <run>/sizing.json; a rerun
of the same config on the same machine reuses them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tuneline.artifacts import Artifact, hash_strings, write_json_atomic
from tuneline.config import PipelineConfig
from tuneline.sizing.speed import MachineSpeed
from tuneline.sizing.speed import machine_speed as machine_speed  # the pipeline's probe
from tuneline.sizing.workload import (
    REPLAY_TOKENS,
    GenerationBatch,
    Workload,
    measure_workload,
)

SIZING_FILE = "sizing.json"
# Of the budget, what the projected stages may take: model loads, validation, checkpoints,
# the report and the registry are not projected.
PROJECTED_SHARE = 0.9
MIN_SCALE = 0.25  # below it the sets get too small to say anything; train's cut takes over
NO_RESIZE_ABOVE = 0.95  # a scale this close to 1 is not worth a second curate
# Fewer steps over all the data before fewer data: cutting steps leaves the scored sets whole,
# shrinking the data shrinks them (the demo's dev recall fell to n=4 at 0.46). On the demo's
# dev sets (AVX2 class, one seed each) the two read about as well, within their noise
# (docs/log.md, 2026-12-05 evening).
STEP_SHARE_FIRST = 0.5


@dataclass
class Projection:
    budget_seconds: float
    spent_seconds: float  # before train: the stages so far and the probe
    train_seconds: float  # at the configured size, replay generation included
    evaluate_seconds: float  # the curated sets at the configured size
    general_seconds: float  # the general probe: it does not shrink with the data
    recurate_seconds: float  # synthesize and curate again, when the data is scaled
    replay_seconds: float = 0.0  # replay's generation, before train's clock starts
    scale: float = 1.0
    knobs: dict[str, Any] = field(default_factory=dict)  # the scaled knobs, before -> after
    # evaluate (and replay) projected again from the scaled curate: the data rarely shrinks by
    # exactly `scale` (templates below the cap, reading facts, unscaled conversations)
    evaluate_scaled_seconds: float | None = None
    replay_scaled_seconds: float | None = None

    @property
    def evaluate_seconds_at_scale(self) -> float:
        if self.evaluate_scaled_seconds is not None:
            return self.evaluate_scaled_seconds
        return self.evaluate_seconds * self.scale + self.general_seconds

    @property
    def replay_seconds_at_scale(self) -> float:
        if self.replay_scaled_seconds is not None:
            return self.replay_scaled_seconds
        return self.replay_seconds * self.scale

    def describe(self) -> str:
        plan = (f"run budget: {self.budget_seconds:,.0f} s; {self.spent_seconds:,.0f} s spent "
                f"before training; at the configured size train would take "
                f"~{self.train_seconds:,.0f} s and evaluate "
                f"~{self.evaluate_seconds + self.general_seconds:,.0f} s")
        if self.scale >= 1:
            return f"{plan}: the data is kept whole (train cuts its steps if it must)"
        knobs = ", ".join(f"{name} {before} -> {after}"
                          for name, (before, after) in self.knobs.items())
        return (f"{plan}: the data is scaled to {self.scale:.2f} of its size ({knobs}); "
                f"raise run.budget_minutes to keep it all")


def scale_for(budget_seconds: float, spent_seconds: float, scalable_seconds: float,
              fixed_seconds: float) -> float:
    """The share of the data whose projected work fits what is left of the budget; 1 when it
    all fits, never below MIN_SCALE."""
    room = budget_seconds * PROJECTED_SHARE - spent_seconds - fixed_seconds
    if scalable_seconds <= 0 or room >= scalable_seconds:
        return 1.0
    return max(MIN_SCALE, room / scalable_seconds)


def data_scale(projection: Projection) -> float:
    """The data's scale for a projection made at the configured size: 1 while train's own cut
    (down to STEP_SHARE_FIRST of its steps) can make the run fit, or nearly so."""
    scale = scale_for(projection.budget_seconds, projection.spent_seconds,
                      projection.train_seconds * STEP_SHARE_FIRST + projection.evaluate_seconds,
                      projection.general_seconds + projection.recurate_seconds)
    return 1.0 if scale >= NO_RESIZE_ABOVE else scale


def project_seconds(work: Workload, speed: MachineSpeed, replay_batch: int,
                    replay_new_tokens: int) -> tuple[float, float, float, float]:
    """(train with replay generation, replay generation alone, evaluate of the scalable sets,
    evaluate of the fixed ones), in seconds. A replay batch is counted at the full new-token
    budget (the base model's everyday answers are long)."""
    replay_batches = math.ceil(work.replay_prompts / replay_batch)
    prompt = REPLAY_TOKENS / 2
    replay = (speed.decode_seconds(replay_batches * replay_new_tokens,
                                   prompt + replay_new_tokens / 2)
              + speed.prefill_seconds(work.replay_prompts * prompt, prompt))
    train = work.train_tokens * speed.train_seconds_per_token + replay
    return (train, replay, generation_seconds(work.eval_batches, speed),
            generation_seconds(work.fixed_batches, speed))


def generation_seconds(batches: list[GenerationBatch], speed: MachineSpeed) -> float:
    """Each batch's prompt at its padded width, then its new tokens, for its rows, attending
    to the prompt and to half of themselves on average."""
    return sum(speed.prefill_seconds(batch.prompt_tokens, batch.width)
               + speed.decode_seconds(batch.new_tokens, batch.width + batch.new_tokens / 2,
                                      batch.rows)
               for batch in batches)


def scaled_config(cfg: PipelineConfig, scale: float, facts_per_template: dict[str, int]
                  ) -> tuple[PipelineConfig, dict[str, Any]]:
    """cfg with the counts that make the data multiplied by `scale`, and those counts as
    {knob: (before, after)}. `facts_per_template` is what synthesize sampled at full size
    (it stands for max_facts_per_template when that is not set)."""
    synth, knobs = cfg.synthesize, {}

    def shrink(name: str, value: int) -> int:
        after = max(1, round(value * scale))
        knobs[name] = (value, after)
        return after

    sampled = max(facts_per_template.values(), default=0)
    limit = min(synth.max_facts_per_template or sampled, sampled)
    update: dict[str, Any] = {}
    if limit:
        update["max_facts_per_template"] = shrink("synthesize.max_facts_per_template", limit)
    reading = synth.reading_facts_per_template
    if isinstance(reading, dict) and reading:
        update["reading_facts_per_template"] = {
            name: shrink(f"synthesize.reading_facts_per_template.{name}", count)
            for name, count in reading.items()}
    elif isinstance(reading, int) and reading:
        update["reading_facts_per_template"] = shrink(
            "synthesize.reading_facts_per_template", reading)
    unanswerable = synth.unanswerable.model_copy()
    if unanswerable.per_template:
        unanswerable.per_template = shrink("synthesize.unanswerable.per_template",
                                           unanswerable.per_template)
    update["unanswerable"] = unanswerable
    rag = cfg.curate.rag.model_copy()
    if rag.min_gold and limit:  # a floor on answers from facts: none without facts
        rag.min_gold = shrink("curate.rag.min_gold", rag.min_gold)
    return cfg.model_copy(update={
        "synthesize": synth.model_copy(update=update),
        "curate": cfg.curate.model_copy(update={"rag": rag})}), knobs


def facts_per_template(cfg: PipelineConfig, synthesized: Artifact) -> dict[str, int]:
    """Facts sampled per template, from synthesize's manifest counts ('facts:<template>')."""
    counts = synthesized.manifest["counts"]
    templates = {template.name for template in cfg.synthesize.templates}
    return {key.split(":", 1)[1]: int(value) for key, value in counts.items()
            if key.startswith("facts:") and key.split(":", 1)[1] in templates}


def sizes(cfg: PipelineConfig) -> bool:
    """Whether run.budget_minutes sizes this run here: local LoRA training on a CPU, what the
    probe measures. A provider's job, QLoRA, full fine-tuning or a GPU keep train's own cut."""
    from tuneline.models.loading import pick_device

    return (cfg.run.budget_minutes is not None and cfg.train.backend == "local"
            and cfg.train.method == "lora" and pick_device() == "cpu")


def plan(cfg: PipelineConfig, synthesized: Artifact, curated: Artifact, spent_seconds: float,
         speed: MachineSpeed, sampled: dict[str, int]) -> tuple[PipelineConfig, Projection]:
    """The config to run (scaled when the configured size would not fit run.budget_minutes)
    and the projection behind it; `spent_seconds` counts the probe, `sampled` is
    facts_per_template of `synthesized`."""
    assert cfg.run.budget_minutes is not None
    train, replay, evaluate, fixed_eval = _projected(cfg, curated, speed)
    projection = Projection(
        budget_seconds=cfg.run.budget_minutes * 60, spent_seconds=spent_seconds,
        train_seconds=train, evaluate_seconds=evaluate, general_seconds=fixed_eval,
        recurate_seconds=synthesized.seconds + curated.seconds,
        replay_seconds=replay)
    scale = data_scale(projection)
    if scale == 1.0:
        return cfg, projection
    scaled, knobs = scaled_config(cfg, scale, sampled)
    if all(before == after for before, after in knobs.values()):
        return cfg, projection  # nothing the counts make would change
    projection.scale, projection.knobs = scale, knobs
    return scaled, projection


def reproject(projection: Projection, cfg: PipelineConfig, curated: Artifact,
              speed: MachineSpeed) -> None:
    """Evaluate and replay projected again from the curate of the scaled config."""
    _, replay, evaluate, fixed_eval = _projected(cfg, curated, speed)
    projection.evaluate_scaled_seconds = evaluate + fixed_eval
    projection.replay_scaled_seconds = replay


def _projected(cfg: PipelineConfig, curated: Artifact, speed: MachineSpeed
               ) -> tuple[float, float, float, float]:
    return project_seconds(measure_workload(cfg, curated), speed, cfg.evaluate.batch_size,
                           cfg.train.replay.max_new_tokens)


SIZED_SECTIONS = ("model", "ingest", "synthesize", "index", "curate", "train", "evaluate")


def config_key(cfg: PipelineConfig) -> str:
    """What a sizing depends on besides the machine: the configured (unscaled) sections that
    make and score the data, the seed and the budget (not the gate, registry or server)."""
    return hash_strings(*(getattr(cfg, name).model_dump_json() for name in SIZED_SECTIONS),
                        str(cfg.run.seed), str(cfg.run.budget_minutes))


def _machine_key() -> dict[str, Any]:
    """The machine as sizing.json compares it: the CPU, not a GPU (seen only once torch is
    imported, and sizing runs on CPUs only)."""
    from tuneline.machine import this_machine

    machine = this_machine().as_dict()
    machine.pop("gpu", None)
    return machine


def write_sizing(run_dir: Path, cfg: PipelineConfig, projection: Projection,
                 speed: MachineSpeed, sampled: dict[str, int]) -> Path:
    """<run>/sizing.json: what was measured and decided, and what a rerun needs to reuse it."""
    path = run_dir / SIZING_FILE
    write_json_atomic(path, {"machine": _machine_key(), "speed": asdict(speed),
                             **asdict(projection), "facts_per_template": sampled,
                             "config_key": config_key(cfg)})
    return path


def earlier_plan(run_dir: Path, cfg: PipelineConfig) -> dict[str, Any] | None:
    """The sizing a run of this same config made on this same machine, if any: a rerun then
    reuses its stages instead of curating at full size and measuring again."""
    path = run_dir / SIZING_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text("utf-8"))
    if (saved.get("config_key") != config_key(cfg)
            or saved.get("machine") != _machine_key()):
        return None
    return saved


def replan(cfg: PipelineConfig, saved: dict[str, Any]) -> tuple[PipelineConfig, Projection]:
    """cfg sized as `saved` (from earlier_plan) decided."""
    names = {f.name for f in fields(Projection)} - {"knobs"}
    projection = Projection(**{name: saved[name] for name in names if name in saved})
    if projection.scale < 1:
        cfg, projection.knobs = scaled_config(cfg, projection.scale,
                                              saved["facts_per_template"])
    return cfg, projection
