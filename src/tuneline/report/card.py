"""Dataset card: what curate produced, what it dropped and why, with PNG plots."""

from __future__ import annotations

import importlib
import random
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tuneline.artifacts import load_artifact
from tuneline.text import STOP_WORDS

if TYPE_CHECKING:
    from tuneline.artifacts import Artifact
    from tuneline.synthesize.templates import Fact

CARD = "dataset_card.md"
PLOTS_DIR = "card"
TOP_TERMS = 20
SAMPLES = 3  # per template and kind (train) or per template and set (eval)
_CELL_CHARS = 160
_WORD = re.compile(r"\w\w+")


# Which facts each written file draws on (eval sets added later show "-").
_FACTS_OF = {"train": "train", "val": "val", "test": "heldout", "recall": "train",
             "heldout": "heldout", "unanswerable": "unanswerable"}
_FIGURE_SIZE = {"terms": (6.4, 4.8)}


@dataclass
class Lengths:
    """Length of every chat example per split: tokens as the trainer sees them, else words."""

    unit: str  # "tokens" or "words"
    per_split: dict[str, list[int]]
    cutoff: int | None = None  # train.max_seq_len; None when lengths are in words
    source: str = ""  # the base model that counted tokens, or why tokens were not counted


@dataclass
class CardInputs:
    """Everything the card reports about one curate run.

    `facts['train']` holds every trained fact, abstention facts included; `stages` holds the
    manifest counts of the upstream stages by stage name.
    """

    title: str
    facts: dict[str, list[Fact]]
    rows: dict[str, int]
    counts: dict[str, int]
    config: dict[str, Any]
    data_hash: str
    upstream_hash: str
    upstream_skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    lengths: Lengths | None = None
    eval_sets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    seed: int = 0


def write_card(folder: Path, card: CardInputs) -> list[str]:
    """Write `dataset_card.md` and, when matplotlib is installed, `card/*.png` into `folder`.

    Returns the files written, relative to `folder`.
    """
    plots = draw_plots(folder / PLOTS_DIR, card)
    sections = [
        _header(card), _stages_section(card), _splits_section(card, plots),
        _categories_section(card, plots), _conversations_section(card),
        _drops_section(card, plots),
        _lengths_section(card, plots), _samples_section(card), _terms_section(card, plots),
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
                  if key.startswith(("dropped:", "pii:", "bedrock_warning:",
                                     "conversations:dropped:", "conversations:pii:"))})
    return found


def measure_lengths(
    chats: dict[str, list[dict[str, Any]]], base: str, cache_dir: Path | None,
    cutoff: int | None
) -> Lengths:
    """Tokens of every chat example per split, with the base model's tokenizer and chat template.

    Falls back to word counts, saying why, when transformers is missing or the tokenizer cannot
    be loaded offline: the card reports on the data and must never fail curate.
    """
    try:
        count = token_counter(base, cache_dir)
        tokens = {split: [count(ex["messages"]) for ex in rows] for split, rows in chats.items()}
    except Exception as exc:  # any failure (import, resolution, template) only costs the tokens
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        words = {split: [sum(len(m["content"].split()) for m in ex["messages"]) for ex in rows]
                 for split, rows in chats.items()}
        return Lengths("words", words, None, reason)
    return Lengths("tokens", tokens, cutoff, base)


def token_counter(base: str, cache_dir: Path | None) -> Callable[[list[dict[str, str]]], int]:
    """Tokens one chat example takes in training, before truncation (loads the tokenizer once).

    Counts what `tokenize_chat` feeds the model: the templated prompt, the answer and its
    end-of-turn token.
    """
    from tuneline._optional import require
    from tuneline.models.resolve import resolve_model
    from tuneline.train.tokenize import tokenize_chat

    auto = require("transformers").AutoTokenizer
    tokenizer = auto.from_pretrained(resolve_model(base, cache_dir), local_files_only=True)
    return lambda messages: len(tokenize_chat(tokenizer, messages, sys.maxsize).input_ids)


def over_cutoff(lengths: Lengths) -> tuple[int, int]:
    """(examples longer than the cutoff, all examples); (0, n) when there is no cutoff."""
    values = [v for per in lengths.per_split.values() for v in per]
    cutoff = lengths.cutoff
    return (sum(v > cutoff for v in values) if cutoff is not None else 0), len(values)


def upstream_counts(synthesized: Artifact) -> dict[str, dict[str, int]]:
    """Manifest counts of synthesize and, when found next to it, of the ingest output it read."""
    found = {"synthesize": dict(synthesized.manifest.get("counts", {}))}
    ingested = load_artifact("ingest", synthesized.path.parent / "ingest")
    read = synthesized.manifest.get("inputs", {}).get("ingest")
    if ingested is not None and read and ingested.manifest.get("output_hash") == read:
        found = {"ingest": dict(ingested.manifest.get("counts", {})), **found}
    return found


def stage_counts(card: CardInputs) -> list[list[Any]]:
    """Rows (stage, count, n): upstream manifest counts, then the facts curate kept and dropped."""
    rows = [[stage, key, n] for stage, found in card.stages.items() for key, n in found.items()]
    skipped = sum(n for reasons in card.upstream_skipped.values() for n in reasons.values())
    if skipped:
        rows.append(["synthesize", "rows skipped (all templates)", skipped])
    dropped = sum(n for key, n in card.counts.items() if key.startswith("dropped:"))
    kept = sum(len(group) for group in card.facts.values())
    return [*rows, ["curate", "facts kept", kept], ["curate", "facts dropped", dropped]]


def samples(card: CardInputs, per_group: int = SAMPLES) -> list[list[str]]:
    """Seeded sample rows (group, question, answer or reference).

    Trained phrasings per template and kind, then eval questions per set and template.
    """
    rng = random.Random(card.seed)
    rows = []
    trained = _groups(card.facts.get("train", []), lambda f: f"train / {f.template} / {f.kind}")
    for group, facts in trained.items():
        # The first phrasing is always trained; the last ones probe recall.
        rows += [[group, f.questions[0], f.answer] for f in _pick(rng, facts, per_group)]
    evals = _groups((item for items in card.eval_sets.values() for item in items),
                    lambda i: f"{i.get('set', 'eval')} / {i.get('template', '')}")
    for group, items in evals.items():
        rows += [[group, i["question"], i["reference"]] for i in _pick(rng, items, per_group)]
    return rows


def _groups(items: Iterable[Any], key: Callable[[Any], str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for item in items:
        found.setdefault(key(item), []).append(item)
    return dict(sorted(found.items()))


def _pick(rng: random.Random, items: list[Any], n: int) -> list[Any]:
    return rng.sample(items, min(n, len(items)))


def escape_cell(text: str, limit: int = _CELL_CHARS) -> str:
    """Text safe inside a markdown table cell: shortened, pipes escaped, line breaks kept."""
    text = str(text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    for raw, safe in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), ("\r\n", "<br>"),
                      ("\n", "<br>")):
        text = text.replace(raw, safe)
    return text


def top_terms(facts: list[Fact], limit: int = TOP_TERMS) -> list[tuple[str, int]]:
    """Most common terms: how many facts use each in a question or the answer (no stop words)."""
    frequency: Counter[str] = Counter()
    for fact in facts:
        text = " ".join([*fact.questions, fact.answer]).casefold()
        frequency.update({w for w in _WORD.findall(text) if w not in STOP_WORDS})
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


def _stages_section(card: CardInputs) -> str:
    note = ("" if "ingest" in card.stages or not card.stages else
            "\nThe ingest manifest that synthesize read was not found next to it.\n")
    return ("## Counts per stage\n\n" + _table(["stage", "count", "n"], stage_counts(card))
            + note)


def _fact_count(card: CardInputs, name: str) -> int | str:
    facts = card.facts.get(_FACTS_OF.get(name, ""))
    if facts is None:
        return "-"
    if name == "recall":  # abstention facts are trained, but recall asks answerable ones only
        facts = [f for f in facts if f.kind != "unanswerable"]
    return len(facts)


def _splits_section(card: CardInputs, plots: dict[str, str] | None) -> str:
    rows = [[name, _fact_count(card, name), n] for name, n in card.rows.items()]
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


def _conversations_section(card: CardInputs) -> str:
    """Turns and reply lengths of the conversations per split (synthesize.conversations)."""
    stats = card.details.get("conversations")
    if not stats:
        return ""
    rows = [[side, s["conversations"], s["turns"]["median"], s["turns"]["max"], s["multi_turn"],
             s["with_system_prompt"], s["assistant_words"]["median"], s["assistant_words"]["max"]]
            for side, s in stats.items() if s]
    rag = card.counts.get("conversations:rag")
    avoided = card.counts.get("conversations:rag:distractor_leak_avoided", 0)
    trained = (f" {rag} training conversations are also trained with the passages retrieved "
               f"for their last question ({avoided} passages sharing twelve words with an "
               "evaluated reply left out)." if rag else "")
    header = ["split", "conversations", "turns (median)", "turns (max)", "multi-turn",
              "with system prompt", "reply words (median)", "reply words (max)"]
    return ("## Conversations\n\nSplit by thread (or by group), so no conversation spans two "
            "splits. `heldout` replies are said by no training conversation; `heldout_recall` "
            "replies are (a new question to a known reply); `dev*` are for choosing knobs."
            + trained + "\n\n" + _table(header, rows))


def _drops_section(card: CardInputs, plots: dict[str, str] | None) -> str:
    found = drops(card)
    if not found:
        return "## Dropped and masked\n\nNothing was dropped or masked.\n"
    return ("## Dropped and masked\n\n`synthesize:*` rows were skipped before curate; "
            "`dropped:*` are facts; `pii:*` are masked entities (the fact is kept); "
            "`conversations:*` the same for conversations.\n\n"
            + _table(["reason", "count"], [[k, v] for k, v in found.items()])
            + _image(plots, "drops", "drops per reason"))


def _lengths_section(card: CardInputs, plots: dict[str, str] | None) -> str:
    found = card.lengths
    if found is None:
        return ""
    over, total = over_cutoff(found)
    rows = [[split, len(v), min(v), statistics.median(v), max(v),
             sum(x > found.cutoff for x in v) if found.cutoff is not None else "-"]
            for split, v in found.per_split.items() if v]
    if found.unit == "tokens":
        intro = (f"Tokens per chat example as the trainer sees them: the tokenizer and chat "
                 f"template of `{found.source}`, prompt, answer and end-of-turn token. "
                 f"**{over} of {total} examples ({over / max(total, 1):.1%}) are longer than "
                 f"`train.max_seq_len` = {found.cutoff} tokens**: training truncates them, and "
                 f"drops those whose answer it would cut.")
    else:
        intro = (f"In words (whitespace-separated, question and answer): tokens could not be "
                 f"counted ({escape_cell(found.source, 300)}). `train.max_seq_len` counts "
                 f"tokens, so examples are not compared with it.")
    return ("## Example lengths\n\n" + intro + "\n\n"
            + _table(["split", "examples", "min", "median", "max", "over max_seq_len"], rows)
            + _image(plots, "lengths", "example length histogram"))


def _samples_section(card: CardInputs) -> str:
    rows = [[escape_cell(cell) for cell in row] for row in samples(card)]
    if not rows:
        return ""
    return (f"## Samples\n\nUp to {SAMPLES} per group, drawn with the run seed; train rows "
            "show a trained phrasing and its answer, eval rows a question and its reference.\n\n"
            + _table(["group", "question", "answer"], rows))


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
    found = card.lengths
    per_split = {split: v for split, v in (found.per_split if found else {}).items() if v}
    if found is None or not per_split:
        return False
    axes = figure.subplots(gridspec_kw=_margins(figure, []))
    values = list(per_split.values())
    axes.hist(values, label=list(per_split), bins=_bins(values, found.cutoff), stacked=True)
    if found.cutoff is not None:
        axes.axvline(found.cutoff, color="#C44E52", linestyle="--",
                     label=f"train.max_seq_len = {found.cutoff}")
    figure.suptitle(f"Chat example lengths ({found.unit})")
    axes.set(xlabel=found.unit, ylabel="examples")
    axes.legend(fontsize=8)
    return True


def _bins(values: list[list[int]], cutoff: int | None) -> Any:
    """One bin per length while that stays readable, else 40 bins; the cutoff inside the range."""
    ends = [*(x for v in values for x in (min(v), max(v))), *([cutoff] if cutoff else [])]
    low, high = min(ends), max(ends) + 1
    return range(low, high + 1) if high - low < 60 else [low + i * (high - low) / 40
                                                         for i in range(41)]


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
