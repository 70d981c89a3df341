"""`tuneline serve` and `tuneline serve-key`: the OpenAI-compatible server and its API keys."""

from __future__ import annotations

from typing import Any

import click

from tuneline._optional import require
from tuneline.cli_common import console, errors, load_cli_config


@click.command()
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--model", "model_ref", default=None,
              help="Registered 'name' (latest), 'name/version' or 'name@alias' (e.g. "
              "name@champion; default: serve.model or register.name).")
@click.option("--host", default=None, help="Interface to bind (default: serve.host).")
@click.option("--port", type=int, default=None, help="Port (default: serve.port).")
@click.option("--base", "base_model", default=None,
              help="Serve this base model untuned instead of a registered one (e.g. "
              "embedded:smollm2-135m-instruct, a model folder); its name is the reference given.")
def serve(args: tuple[str, ...], model_ref: str | None, host: str | None,
          port: int | None, base_model: str | None) -> None:
    """Serve registered models over an OpenAI-compatible HTTP API."""
    from tuneline.serve.app import build_app
    from tuneline.serve.feedback import feedback_db_path
    from tuneline.serve.guards import ApiKeyStore, resolve_bind_host
    from tuneline.serve.logs import configure_json_logging
    from tuneline.serve.state import Route

    uvicorn = require("uvicorn")
    cfg = load_cli_config(args)
    settings = cfg.serve
    bind, warning = resolve_bind_host(host or settings.host, ApiKeyStore.from_config(settings.auth))
    if warning:
        errors.print(f"[yellow]{warning}[/yellow]")
    canary_name = None
    if base_model is not None:
        from tuneline.serve.engines.transformers_engine import TransformersEngine

        errors.print(f"loading base model {base_model} ...")
        engine = TransformersEngine.load(base_model, None, cfg.model.cache_dir,
                                         cfg.train.precision, settings.batching)
        routes = {base_model: Route(engine, root=base_model)}
    else:
        from tuneline.serve.loading import load_routes, plan_models

        plans, canary_name = plan_models(cfg, model_ref)
        routes = load_routes(plans, cfg, announce=errors.print)
    retriever = None
    if cfg.index.enabled:
        from tuneline.rag.retrieve import Retriever

        retriever = Retriever.for_run(cfg)
    configure_json_logging()
    if settings.tracing:
        from tuneline.serve.tracing import configure_tracing

        configure_tracing()
    app = build_app(routes, settings, retriever, feedback_db_path(cfg), canary_name)
    server = _draining_server(uvicorn)(uvicorn.Config(
        app, host=bind, port=port or settings.port, log_level="info",
        timeout_graceful_shutdown=int(settings.drain_timeout_s) or None))
    errors.print(f"serving {', '.join(sorted(app.state.tuneline.routes))} on "
                 f"http://{bind}:{port or settings.port}/v1")
    server.run()


def _draining_server(uvicorn: Any) -> Any:
    """uvicorn's server class, marking the app as draining (GET /ready → 503) on SIGTERM."""

    class DrainingServer(uvicorn.Server):  # type: ignore[misc]
        def handle_exit(self, sig: int, frame: Any) -> None:
            self.config.app.state.tuneline.draining = True
            super().handle_exit(sig, frame)

    return DrainingServer


@click.command("serve-key")
@click.argument("name")
def serve_key(name: str) -> None:
    """Make an API key: prints the key once, and the hashed line for serve.auth.api_keys_file."""
    from tuneline.serve.guards import make_key_line

    key, line = make_key_line(name)
    errors.print("Give this key to the client (it is not stored anywhere):")
    console.print(key)
    errors.print("Append this line to the file named by serve.auth.api_keys_file:")
    console.print(line)
