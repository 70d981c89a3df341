"""`tuneline registry list|show|promote|rollback`: model versions, aliases and lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from tuneline.cli.shared import console, load_cli_config

if TYPE_CHECKING:
    from tuneline.registry import Registry


@click.group()
def registry() -> None:
    """List, inspect, promote and roll back registered model versions."""


def _open_registry(args: tuple[str, ...]) -> Registry:
    from tuneline.registry import open_registry

    return open_registry(load_cli_config(args).register)


@registry.command("list")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--name", default=None, help="Only this model (default: every registered one).")
def registry_list(args: tuple[str, ...], name: str | None) -> None:
    """Every version with its aliases, gate, run, data hash and code version."""
    store = _open_registry(args)
    table = Table(title=f"Registered models ({store.location})")
    for column in ("version", "aliases", "gate", "run", "data", "code"):
        table.add_column(column, no_wrap=column == "version")
    for model in [name] if name else store.names():
        for version in store.versions(model):
            gate = version.meta.get("gate")
            passed = gate.get("passed") if isinstance(gate, dict) else None
            table.add_row(version.reference, ", ".join(f"@{a}" for a in version.aliases),
                          {True: "passed", False: "failed", None: "-"}[passed],
                          str(version.meta.get("run", "-")),
                          str(version.meta.get("data_hash", "-"))[:8],
                          str(version.meta.get("code_version", "-")))
    console.print(table)


@registry.command("show")
@click.argument("reference", metavar="NAME[/VERSION|@ALIAS]")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
def registry_show(reference: str, args: tuple[str, ...]) -> None:
    """A version's lineage, gate checks, aliases and where its files are."""
    from tuneline.registry.backend import iter_meta_lines

    store = _open_registry(args)
    version = store.get(reference)
    console.print(f"[bold]{version.reference}[/bold]  "
                  f"{' '.join('@' + a for a in version.aliases) or '(no aliases)'}")
    for key, value in iter_meta_lines(version):
        console.print(f"  {key:<13} {escape(value)}")
    console.print(f"  {'files':<13} {version.meta.get('source') or version.path}")
    gate = version.meta.get("gate")
    for check in gate.get("checks", []) if isinstance(gate, dict) else []:
        console.print(f"    {'✓' if check['passed'] else '✗'} {escape(check['message'])}")
    history = store.history(version.name)
    if history:
        console.print("  champion history (oldest first): "
                      + " → ".join(f"{version.name}/{v}" for v, _ in history))


@registry.command("promote")
@click.argument("reference", metavar="NAME/VERSION|NAME@ALIAS")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
def registry_promote(reference: str, args: tuple[str, ...]) -> None:
    """Make a version the champion (it must have passed its quality gate)."""
    champion = _open_registry(args).promote(reference)
    console.print(f"{champion.reference} is now @champion")


@registry.command("rollback")
@click.argument("name")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
def registry_rollback(name: str, args: tuple[str, ...]) -> None:
    """Move @champion back to the version promoted before the current one."""
    champion = _open_registry(args).rollback(name)
    console.print(f"{champion.reference} is @champion again")
