"""Dataset card: what curate produced, what it dropped and why, with PNG plots."""

from __future__ import annotations

import importlib
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from tuneline.data.templates import Fact

CARD = "dataset_card.md"
PLOTS_DIR = "card"
TOP_TERMS = 20
_WORD = re.compile(r"\w\w+")
# Function words that would top every term list and say nothing about the data.
_STOP_TEXT = (
    "a about after all also an and any are as at be been but by can could did do does for from "
    "had has have he her his how i if in into is it its may more most no not of on or our she "
    "so than that the their them then there these they this to was we were what when where "
    "which who whom whose why will with would you your"
)
_STOP_WORDS = frozenset(_STOP_TEXT.split())


# Which facts each written file draws on (eval sets added later show "-").
_FACTS_OF = {"train": "train", "val": "val", "test": "heldout", "recall": "train",
             "heldout": "heldout", "unanswerable": "unanswerable"}
_FIGURE_SIZE = {"terms": (6.4, 4.8)}


@dataclass
class CardInputs:
    """Everything the card reports about one curate run."""

    title: str
    facts: dict[str, list[Fact]]
    rows: dict[str, int]
    counts: dict[str, int]
    config: dict[str, Any]
    data_hash: str
    upstream_hash: str
    upstream_skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def write_card(folder: Path, card: CardInputs) -> list[str]:
    """Write `dataset_card.md` and, when matplotlib is installed, `card/*.png` into `folder`.

    Returns the files written, relative to `folder`.
    """
    plots = draw_plots(folder / PLOTS_DIR, card)
    sections = [
        _header(card), _splits_section(card, plots), _categories_section(card, plots),
        _drops_section(card, plots), _lengths_section(card, plots), _terms_section(card, plots),
        _shaping_section(card), _provenance_section(card), _config_section(card),
    ]
    if plots is None:
        sections.insert(1, "> Plots were not drawn: matplotlib is not installed "
                           "(`pip install 'tuneline[report]'`).\n")
    (folder / CARD).write_text("\n".join(s for s in sections if s), encoding="utf-8")
    return [CARD, *(f"{PLOTS_DIR}/{name}" for name in (plots or {}).values())]


def drops(card: CardInputs) -> dict[str, int]:
    """Facts dropped (and PII entities masked) per reason, upstream synthesize skips included."""
    found = {f"synthesize:{template}:{reason}": n
             for template, reasons in sorted(card.upstream_skipped.items())
             for reason, n in sorted(reasons.items()) if n}
    found.update({key: n for key, n in card.counts.items()
                  if key.startswith(("dropped:", "pii:", "bedrock_warning:"))})
    return found


def lengths(facts: list[Fact]) -> tuple[list[int], list[int]]:
    """Word counts of every question phrasing and of every answer (words stand in for tokens)."""
    questions = [len(q.split()) for f in facts for q in f.questions]
    return questions, [len(f.answer.split()) for f in facts]


def top_terms(facts: list[Fact], limit: int = TOP_TERMS) -> list[tuple[str, int]]:
    """Most common terms: how many facts use each in a question or the answer (no stop words)."""
    frequency: Counter[str] = Counter()
    for fact in facts:
        text = " ".join([*fact.questions, fact.answer]).casefold()
        frequency.update({w for w in _WORD.findall(text) if w not in _STOP_WORDS})
    return sorted(frequency.items(), key=lambda item: (-item[1], item[0]))[:limit]


def categories(
    facts: dict[str, list[Fact]], attribute: str = "template"
) -> dict[str, dict[str, int]]:
    """Facts per value of `attribute` ('template' or 'kind'), per split."""

    def value(fact: Fact) -> str:
        return str(getattr(fact, attribute, "qa"))

    names = sorted({value(f) for group in facts.values() for f in group})
    return {name: {split: sum(value(f) == name for f in group)
                   for split, group in facts.items()} for name in names}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _image(plots: dict[str, str] | None, key: str, alt: str) -> str:
    return f"\n![{alt}]({PLOTS_DIR}/{plots[key]})\n" if plots and key in plots else ""


def _header(card: CardInputs) -> str:
    total = sum(len(group) for group in card.facts.values())
    return (f"# Dataset card: {card.title}\n\n"
            f"{total} facts curated into chat examples for fine-tuning and questions for "
            f"evaluation.\n\n"
            f"- Content hash: `{card.data_hash}` (sha256 over every data file in this folder; "
            f"the card and manifest.json are not included)\n"
            f"- Built from the synthesize output `{card.upstream_hash}`\n")


def _splits_section(card: CardInputs, plots: dict[str, str] | None) -> str:
    rows = [[name, len(card.facts[_FACTS_OF[name]]) if _FACTS_OF.get(name) in card.facts
             else "-", n] for name, n in card.rows.items()]
    return ("## Splits\n\nEvery phrasing of a fact stays on one side. `recall` asks the trained "
            "facts with phrasings never trained on; `heldout` asks facts never trained on.\n\n"
            + _table(["split", "facts", "examples"], rows) + _image(plots, "splits", "splits"))


def _categories_section(card: CardInputs, plots: dict[str, str] | None) -> str:
    table = categories(card.facts)
    splits = list(card.facts)
    rows = [[name, *(per[s] for s in splits)] for name, per in table.items()]
    text = "## Facts per template\n\n" + _table(["template", *splits], rows)
    kinds = categories(card.facts, "kind")
    if len(kinds) > 1:  # answerable and unanswerable facts side by side
        rows = [[name, *(per[s] for s in splits)] for name, per in kinds.items()]
        text += "\n" + _table(["kind", *splits], rows)
    return text + _image(plots, "categories", "facts per template")


def _drops_section(card: CardInputs, plots: dict[str, str] | None) -> str:
    found = drops(card)
    if not found:
        return "## Dropped and masked\n\nNothing was dropped or masked.\n"
    return ("## Dropped and masked\n\n`synthesize:*` rows were skipped before curate; "
            "`dropped:*` are facts; `pii:*` are masked entities (the fact is kept).\n\n"
            + _table(["reason", "count"], [[k, v] for k, v in found.items()])
            + _image(plots, "drops", "drops per reason"))


def _lengths_section(card: CardInputs, plots: dict[str, str] | None) -> str:
    rows = []
    for split, facts in card.facts.items():
        for kind, values in zip(("question", "answer"), lengths(facts), strict=True):
            if values:
                rows.append([split, kind, len(values), min(values),
                             statistics.median(values), max(values)])
    return ("## Lengths\n\nIn words (whitespace-separated), a rough stand-in for tokens; "
            "questions count every phrasing.\n\n"
            + _table(["split", "text", "n", "min", "median", "max"], rows)
            + _image(plots, "lengths", "length histograms"))


def _terms_section(card: CardInputs, plots: dict[str, str] | None) -> str:
    terms = top_terms(card.facts.get("train", []))
    return ("## Top terms (train)\n\nFacts whose questions or answer use the term, stop words "
            "left out.\n\n" + _table(["term", "facts"], [list(t) for t in terms])
            + _image(plots, "terms", "top terms"))


def _shaping_section(card: CardInputs) -> str:
    shaped = {k: v for k, v in card.details.items() if k in ("select", "balance", "bedrock")}
    if not shaped:
        return ""
    return ("## Selection, balancing and export checks\n\n```yaml\n"
            + yaml.safe_dump(shaped, sort_keys=False) + "```\n")


def _provenance_section(card: CardInputs) -> str:
    found: Counter[tuple[str, str]] = Counter()
    for group in card.facts.values():
        found.update((str(f.source.get("source", "")), str(f.source.get("file", "")))
                     for f in group)
    rows = [[source, f"`{file}`", n] for (source, file), n in sorted(found.items())]
    return "## Provenance\n\n" + _table(["source", "file", "facts"], rows)


def _config_section(card: CardInputs) -> str:
    return ("## Configuration\n\n```yaml\n" + yaml.safe_dump(card.config, sort_keys=False)
            + "```\n")


def draw_plots(folder: Path, card: CardInputs) -> dict[str, str] | None:
    """Draw the card's PNG plots into `folder`; None when matplotlib is not installed.

    Returns file names by plot key.
    """
    try:
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    drawers = {"splits": _plot_splits, "categories": _plot_categories, "drops": _plot_drops,
               "lengths": _plot_lengths, "terms": _plot_terms}
    files = {}
    for key, draw in drawers.items():
        size = _FIGURE_SIZE.get(key, (6.4, 3.2))
        # Margins are set by hand: a layout engine draws every figure twice (2x the time).
        figure = figure_module.Figure(figsize=size, dpi=100)
        if draw(figure, card):
            # No Software/date metadata: the same data gives byte-identical files.
            figure.savefig(folder / f"{key}.png", metadata={"Software": None})
            files[key] = f"{key}.png"
    return files


def _margins(figure: Any, labels: list[str], font: float = 10) -> dict[str, float]:
    """Subplot margins leaving room for y tick labels about `font` points high."""
    width, height = figure.get_size_inches()
    label_inches = max((len(label) for label in labels), default=3) * font * 0.6 / 72
    return {"left": min(0.6, (label_inches + 0.45) / width), "right": 0.97,
            "bottom": 0.5 / height, "top": 1 - 0.45 / height}


def _plot_splits(figure: Any, card: CardInputs) -> bool:
    axes = figure.subplots(gridspec_kw=_margins(figure, []))
    bars = axes.bar(list(card.rows), list(card.rows.values()), color="#4C72B0")
    axes.bar_label(bars)
    axes.margins(y=0.12)  # room for the bar labels
    figure.suptitle("Examples per split")
    axes.set(ylabel="examples")
    return True


def _plot_categories(figure: Any, card: CardInputs) -> bool:
    table = categories(card.facts)
    if not table:
        return False
    axes = figure.subplots(gridspec_kw=_margins(figure, list(table)))
    names, left = list(table), [0] * len(table)
    for split in card.facts:
        values = [table[name][split] for name in names]
        axes.barh(names, values, left=left, label=split)
        left = [a + b for a, b in zip(left, values, strict=True)]
    figure.suptitle("Facts per template")
    axes.set(xlabel="facts")
    axes.legend()
    return True


def _plot_drops(figure: Any, card: CardInputs) -> bool:
    found = {reason: n for reason, n in drops(card).items() if n}
    if not found:
        return False
    axes = figure.subplots(gridspec_kw=_margins(figure, list(found)))
    axes.margins(x=0.12)  # room for the bar labels
    bars = axes.barh(list(found), list(found.values()), color="#C44E52")
    axes.bar_label(bars)
    axes.invert_yaxis()
    figure.suptitle("Dropped facts and masked entities")
    axes.set(xlabel="count")
    return True


def _plot_lengths(figure: Any, card: CardInputs) -> bool:
    per_split = {split: lengths(facts) for split, facts in card.facts.items() if facts}
    if not per_split:
        return False
    grid = figure.subplots(1, 2, gridspec_kw={**_margins(figure, []), "wspace": 0.3})
    for axes, index, label in zip(grid, (0, 1), ("questions", "answers"),
                                  strict=True):
        values = [v[index] for v in per_split.values()]
        axes.hist(values, label=list(per_split), bins=_word_bins(values))
        axes.set(title=f"{label} (words)", xlabel="words", ylabel="count")
    figure.axes[1].legend(loc="upper center", fontsize=8)
    return True


def _word_bins(values: list[list[int]]) -> Any:
    """One bin per word count while that stays readable, else 30 bins."""
    low = min(min(v) for v in values if v)
    high = max(max(v) for v in values if v)
    return range(low, high + 2) if high - low < 40 else 30


def _plot_terms(figure: Any, card: CardInputs) -> bool:
    terms = top_terms(card.facts.get("train", []))
    if not terms:
        return False
    axes = figure.subplots(gridspec_kw=_margins(figure, [t for t, _ in terms], font=7))
    axes.barh([t for t, _ in terms], [n for _, n in terms], color="#55A868")
    axes.invert_yaxis()
    axes.tick_params(axis="y", labelsize=7)
    figure.suptitle("Top terms in training facts")
    axes.set(xlabel="facts")
    return True
