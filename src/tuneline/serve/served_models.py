"""Which models a server answers and the engines behind them: registry versions, adapters, base."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneline.config import PipelineConfig
from tuneline.errors import ConfigError, ModelError
from tuneline.serve.state import Route


@dataclass(frozen=True)
class ServedWeights:
    """One served model before loading: its names, its base and its weights folder."""

    names: tuple[str, ...]
    base: str
    weights: Path | None  # None: the base itself
    label: str


def plan_models(cfg: PipelineConfig, model_ref: str | None) -> tuple[list[ServedWeights], str]:
    """Everything to serve for this config, and the name the canary splits (register.name).

    The main model (`--model`, serve.model or register.name), the canary's champion and
    candidate when serve.canary.percent > 0, every serve.adapters entry, and the bare base.
    """
    from tuneline.registry import open_registry

    settings = cfg.serve
    registry = open_registry(cfg.register)
    reference = model_ref or settings.model or cfg.register.name
    plans = [served_weights(registry, reference, extra=(reference,))]
    canary_name = registry.get(reference).name
    if settings.canary.percent > 0:
        for ref in (settings.canary.champion or f"{canary_name}@champion",
                    settings.canary.candidate or f"{canary_name}@candidate"):
            plans.append(served_weights(registry, ref, extra=(ref,)))
    for name, target in settings.adapters.items():
        if Path(target).is_dir():
            plans.append(ServedWeights((name,), _adapter_base(Path(target)), Path(target),
                                       str(target)))
        else:
            plans.append(served_weights(registry, target, extra=(name,)))
    if settings.expose_base:
        plans.append(ServedWeights(("base",), plans[0].base, None, plans[0].base))
    return _merge_same_weights(plans), canary_name


def served_weights(registry: Any, reference: str, extra: tuple[str, ...]) -> ServedWeights:
    """A registered version as served weights, under its reference, aliases and `extra`."""
    version = registry.materialize(registry.get(reference))
    if version.remote_model is not None:
        remote = version.remote_model
        raise ModelError(f"{version.reference} is hosted by {remote['provider']} as "
                         f"'{remote['model_id']}'; call it through the provider's API, "
                         "tuneline serves local models only")
    names = (*extra, version.reference, *(f"{version.name}@{a}" for a in version.aliases))
    return ServedWeights(tuple(dict.fromkeys(names)), version.meta["base_model"],
                         version.weights_dir, version.reference)


def _adapter_base(folder: Path) -> str:
    import json

    config = folder / "adapter_config.json"
    if not config.is_file():
        raise ConfigError([f"serve.adapters: {folder} holds no adapter_config.json"])
    return str(json.loads(config.read_text())["base_model_name_or_path"])


def _merge_same_weights(plans: list[ServedWeights]) -> list[ServedWeights]:
    """One entry per weights folder (the same version may be reached by several names)."""
    merged: dict[tuple[str, Path | None], ServedWeights] = {}
    for plan in plans:
        key = (plan.base, plan.weights.resolve() if plan.weights else None)
        if key in merged:
            old = merged[key]
            plan = ServedWeights(tuple(dict.fromkeys(old.names + plan.names)), plan.base,
                                 old.weights, old.label)
        merged[key] = plan
    return list(merged.values())


def load_routes(plans: list[ServedWeights], cfg: PipelineConfig,
                announce: Any = print) -> dict[str, Route]:
    """Load engines: every LoRA adapter on one base shares one engine (selected per request);
    a lone adapter with no bare base is merged; a fully fine-tuned model gets its own."""
    from tuneline.models.loading import is_full_model

    by_base: dict[str, list[ServedWeights]] = defaultdict(list)
    routes: dict[str, Route] = {}
    for plan in plans:
        if plan.weights is not None and is_full_model(plan.weights):
            announce(f"loading {plan.label} (fully fine-tuned) ...")
            engine = _engine(cfg, plan.weights, None)
            routes |= {n: Route(engine, None, root=plan.base) for n in plan.names}
        else:
            by_base[plan.base].append(plan)
    for base, group in by_base.items():
        adapters = [p for p in group if p.weights is not None]
        if len(group) == 1 and adapters:
            announce(f"loading {adapters[0].label} on {base} (merged) ...")
            engine = _engine(cfg, base, adapters[0].weights)
            routes |= {n: Route(engine, None, root=base) for n in adapters[0].names}
            continue
        announce(f"loading {base} with {len(adapters)} adapter(s): "
                 f"{', '.join(p.label for p in adapters) or '-'} ...")
        engine = _multi_engine(cfg, base, {p.label: p.weights for p in adapters})
        for plan in group:
            adapter = plan.label if plan.weights is not None else None
            routes |= {n: Route(engine, adapter, root=base, parent=plan.label)
                       for n in plan.names}
    return routes


def _engine(cfg: PipelineConfig, base: str | Path, adapter: Path | None) -> Any:
    if cfg.serve.engine == "vllm":
        from tuneline.serve.engines.vllm_engine import VllmEngine

        return VllmEngine.load(str(base), {"default": adapter} if adapter else {}, cfg.serve,
                               merged_name="default" if adapter else None)
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    return TransformersEngine.load(str(base), adapter, cfg.model.cache_dir, cfg.train.precision,
                                   cfg.serve.batching)


def _multi_engine(cfg: PipelineConfig, base: str, adapters: dict[str, Path]) -> Any:
    if cfg.serve.engine == "vllm":
        from tuneline.serve.engines.vllm_engine import VllmEngine

        return VllmEngine.load(base, adapters, cfg.serve)
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    return TransformersEngine.load_adapters(base, adapters, cfg.model.cache_dir,
                                            cfg.train.precision, cfg.serve.batching)
