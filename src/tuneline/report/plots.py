"""Plots for the HTML run report, as inline PNG data URIs (matplotlib is optional: without it
the report keeps its tables)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tuneline._optional import require
from tuneline.errors import MissingDependencyError

COLORS = ("#8c96a6", "#2f6fde", "#e07b39", "#3a9d5d", "#9b59b6")


def figure_module() -> ModuleType | None:
    """matplotlib.figure, or None when matplotlib is not installed."""
    try:
        return require("matplotlib.figure")
    except MissingDependencyError:
        return None


def plot(figures: ModuleType | None, size: tuple[float, float], draw: Callable[..., None],
         *args: Any) -> str | None:
    """What `draw` puts on a new figure, as a PNG data URI; None without matplotlib."""
    if figures is None:
        return None
    figure = figures.Figure(figsize=size, dpi=100, layout="constrained")
    draw(figure, *args)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return data_uri(buffer.getvalue(), "image/png")


def data_uri(data: bytes, mime: str) -> str:
    """`data` inline, as a data: URI."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def draw_loss(figure: Any, train: list[tuple[int, float]], val: list[tuple[int, float]]) -> None:
    axes = figure.subplots()
    if train:
        axes.plot(*zip(*train, strict=True), color=COLORS[1], label="train")
    if val:
        axes.plot(*zip(*val, strict=True), color=COLORS[2], marker="o", label="validation")
    axes.set(xlabel="step", ylabel="loss")
    axes.grid(alpha=0.3)
    axes.legend()


def draw_categories(figure: Any, table: dict[str, dict[str, float]], set_name: str) -> None:
    """Grouped horizontal bars: one group per category, one bar per variant."""
    axes = figure.subplots()
    variants = list(dict.fromkeys(v for per in table.values() for v in per))
    height = 0.8 / len(variants)
    categories = list(table)
    for i, variant in enumerate(variants):
        positions = [c + (i - (len(variants) - 1) / 2) * height for c in range(len(categories))]
        values = [table[c].get(variant, 0.0) for c in categories]
        bars = axes.barh(positions, values, height=height, label=variant,
                         color=COLORS[i % len(COLORS)])
        axes.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=3, fontsize=8)
    axes.set_yticks(range(len(categories)), categories)
    axes.invert_yaxis()
    axes.set(xlim=(0, 1.1), xlabel="accuracy", title=f"Accuracy per category: {set_name}")
    axes.legend(loc="lower right")
