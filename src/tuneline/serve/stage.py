"""Stage 9, serve: the OpenAI-compatible server over registered models (or a base model).

Unlike the pipeline's stages, serve writes no artifact folder: it runs until stopped. Its `run`
follows the same order of arguments (config first, then what it serves) and never prints; the
CLI passes `announce` for the lines a person should see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuneline._optional import require
from tuneline.config import PipelineConfig


def run(cfg: PipelineConfig, model_ref: str | None = None, *, host: str | None = None,
        port: int | None = None, base_model: str | None = None,
        announce: Callable[[str], None] = lambda _line: None) -> None:
    """Serve `model_ref` (or `base_model` untuned) until the process is stopped."""
    uvicorn = require("uvicorn")
    app, bind, port = build(cfg, model_ref, host=host, port=port, base_model=base_model,
                            announce=announce)
    server = _draining_server(uvicorn)(uvicorn.Config(
        app, host=bind, port=port, log_level="info",
        timeout_graceful_shutdown=int(cfg.serve.drain_timeout_s) or None))
    announce(f"serving {', '.join(sorted(app.state.tuneline.routes))} on http://{bind}:{port}/v1")
    server.run()


def build(cfg: PipelineConfig, model_ref: str | None = None, *, host: str | None = None,
          port: int | None = None, base_model: str | None = None,
          announce: Callable[[str], None] = lambda _line: None) -> tuple[Any, str, int]:
    """The ASGI app with its models loaded, the interface to bind and the port."""
    from tuneline.monitor.traffic import recorder_for
    from tuneline.serve.app import build_app
    from tuneline.serve.feedback import feedback_db_path
    from tuneline.serve.guards import ApiKeyStore, resolve_bind_host
    from tuneline.serve.logs import configure_json_logging

    settings = cfg.serve
    bind, warning = resolve_bind_host(host or settings.host, ApiKeyStore.from_config(settings.auth))
    if warning:
        announce(f"warning: {warning}")
    routes, canary_name = _routes(cfg, model_ref, base_model, announce)
    retriever = None
    if cfg.index.enabled:
        from tuneline.rag.retrieve import Retriever

        retriever = Retriever.for_run(cfg)
        try:  # 'auto' derives the floor now, from this run's training data, not on a request
            retriever.similarity_floor()
        except Exception:
            retriever.close()
            raise
        if retriever.derived_floor is not None:
            announce(retriever.derived_floor.describe())
    configure_json_logging()
    if settings.tracing:
        from tuneline.serve.tracing import configure_tracing

        configure_tracing()
    traffic = recorder_for(cfg)
    baseline = (_drift_baseline(cfg, model_ref, base_model, announce)
                if traffic is not None else None)
    follow = None
    if settings.canary.follow_s > 0 and base_model is None:
        from tuneline.serve.follow import CandidateFollower

        def follow(state: Any) -> CandidateFollower:
            return CandidateFollower(state, cfg, settings.canary.follow_s)

    app = build_app(routes, settings, retriever, feedback_db_path(cfg), canary_name,
                    traffic=traffic, drift_baseline=baseline, follow_candidate=follow)
    return app, bind, port or settings.port


def _drift_baseline(cfg: PipelineConfig, model_ref: str | None, base_model: str | None,
                    announce: Callable[[str], None]) -> Any:
    """The drift baseline registered with the main served version, or None (a bare base
    model has none) with a line saying that traffic is recorded but not checked."""
    from tuneline.monitor.baseline import registered_baseline_dir
    from tuneline.monitor.drift import DriftBaseline

    folder = None
    if base_model is None:
        reference = model_ref or cfg.serve.model or cfg.register.name
        folder = registered_baseline_dir(cfg, reference)
    if folder is None or not folder.is_dir():
        announce(f"recording traffic; no drift baseline{f' at {folder}' if folder else ''}, "
                 "so /metrics carries no tuneline_drift_* values (tuneline monitor --traffic "
                 "still works)")
        return None
    return DriftBaseline.load(folder)


def _routes(cfg: PipelineConfig, model_ref: str | None, base_model: str | None,
            announce: Callable[[str], None]) -> tuple[dict[str, Any], str | None]:
    """The served names and their engines; a base model is served under the name given."""
    from tuneline.serve.state import Route

    if base_model is None:
        from tuneline.serve.served_models import load_routes, plan_models

        plans, canary_name = plan_models(cfg, model_ref)
        return load_routes(plans, cfg, announce=announce), canary_name
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    announce(f"loading base model {base_model} ...")
    engine = TransformersEngine.load(base_model, None, cfg.model.cache_dir,
                                     cfg.train.precision, cfg.serve.batching)
    return {base_model: Route(engine, root=base_model)}, None


def _draining_server(uvicorn: Any) -> Any:
    """uvicorn's server class, marking the app as draining (GET /ready → 503) on SIGTERM."""

    class DrainingServer(uvicorn.Server):  # type: ignore[misc]
        def handle_exit(self, sig: int, frame: Any) -> None:
            self.config.app.state.tuneline.draining = True
            super().handle_exit(sig, frame)

    return DrainingServer
