"""`tuneline serve` and `tuneline serve-key`: the OpenAI-compatible server and its API keys."""

from __future__ import annotations

import click

from tuneline.cli.shared import console, errors, load_cli_config


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
    from tuneline.serve.stage import run

    def announce(line: str) -> None:
        errors.print(f"[yellow]{line}[/yellow]" if line.startswith("warning: ") else line)

    run(load_cli_config(args), model_ref, host=host, port=port, base_model=base_model,
        announce=announce)


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
