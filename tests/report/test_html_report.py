"""The HTML run report: content, self-containment, and a real render in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import escape
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tuneline.report import html as html_report
from tuneline.report.html import render_html_report, write_html_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
GATE_MESSAGE = "min_accuracy.recall: tuned recall accuracy 0.537, required >= 0.500 (ok)"
SHOWN_GATE_MESSAGE = escape(GATE_MESSAGE, quote=False)  # as HTML text, and as a DOM dump
# Anything the browser would fetch: tags that load a URL, and CSS url()/@import.
REMOTE = re.compile(r"<(?:img|script|link|iframe|source|video|audio|embed|object)\b[^>]*"
                    r"(?:src|href|data)\s*=\s*[\"']?\s*(?:https?:)?//|url\(\s*[\"']?\s*"
                    r"(?:https?:)?//|@import", re.IGNORECASE)


def _summary(accuracy: float, n: int, categories: dict[str, float] | None = None) -> dict:
    rates = {"accuracy": accuracy, "exact_match": accuracy / 2, "token_f1": 0.41,
             "hallucination_rate": 0.123, "abstention_rate": 0.05, "mean_answer_words": 9.5}
    summary = {**rates, "n": n,
               "ci95": {k: [round(v * 0.8, 3), round(v * 1.15, 3)] for k, v in rates.items()}}
    if categories:
        summary["by_category"] = {name: _summary(acc, n // 2) for name, acc in categories.items()}
    return summary


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def _write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _metrics() -> dict:
    categories = {"base": {"athlete_country": 0.1, "event_champion": 0.3},
                  "tuned": {"athlete_country": 0.6, "event_champion": 0.4}}
    return {
        "base": {"recall": _summary(0.2, 54, categories["base"]), "heldout": _summary(0.05, 20)},
        "tuned": {"recall": _summary(0.537, 54, categories["tuned"]),
                  "heldout": _summary(0.15, 20)},
        "judge": {"win_rate": 0.62, "ci95": [0.5, 0.74], "wins": 31, "losses": 15, "ties": 4,
                  "invalid": 1, "n": 51, "challenger": "tuned", "champion": "base",
                  "judge_model": "qwen2.5-7b-instruct", "base_url": "http://127.0.0.1:8000/v1"},
    }


def _predictions() -> list[dict]:
    rows = []
    for i in range(6):
        rows.append({"set": "recall", "question": f"Which country does athlete {i} represent?",
                     "reference": f"Athlete {i} represented France.", "fact": "France",
                     "template": "athlete_country", "base_answer": "Italy, I believe.",
                     "tuned_answer": f"Athlete {i} represented France.", "base_correct": False,
                     "tuned_correct": True, "base_abstained": False, "tuned_abstained": False})
    rows.append({"set": "heldout", "question": "Who won the <b>marathon</b>? <script>x</script>",
                 "reference": "Tamirat Tola", "fact": "Tamirat Tola", "template": "event",
                 "base_answer": "I don't know.", "tuned_answer": "Kipchoge",
                 "base_correct": False, "tuned_correct": False, "base_abstained": True,
                 "tuned_abstained": False})
    return rows


def _judgments() -> list[dict]:
    verdicts = ["win", "loss", "tie", "invalid", "win"]
    return [{"question": f"Which country does athlete {i} represent?",
             "reference": f"Athlete {i} represented France.",
             "challenger_answer": f"Athlete {i} represented France.",
             "champion_answer": "Italy, I believe.", "meta": {"set": "recall"},
             "verdict": verdict,
             "reasons": [f"Answer A names the right country ({i}).", "Swapped order agrees."]}
            for i, verdict in enumerate(verdicts)]


def _card_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (60, 30), "#2f6fde")
    image.paste((224, 123, 57), (30, 0, 60, 30))
    image.save(path)


def make_run(root: Path) -> Path:
    """A run folder with every input the report reads."""
    run = root / "demo-run"
    (run / "train").mkdir(parents=True)
    log = [{"step": s, "loss": 2.6 / s, "lr": 1e-4, "grad_norm": 1.0, "tokens": 512 * s}
           for s in range(1, 41)]
    for row in log[9::10]:
        row["val_loss"] = row["loss"] * 1.2
    _write_rows(run / "train" / "train_log.jsonl", log)
    _write_json(run / "evaluate" / "metrics.json", _metrics())
    _write_rows(run / "evaluate" / "predictions.jsonl", _predictions())
    _write_rows(run / "evaluate" / "judgments.jsonl", _judgments())
    _write_json(run / "gate.json", {"passed": True, "checks": [
        {"name": "min_accuracy.recall", "threshold": 0.5, "value": 0.537, "passed": True,
         "message": GATE_MESSAGE}]})
    _card_png(run / "curate" / "card" / "splits.png")
    (run / "curate" / "dataset_card.md").write_text(
        "# Dataset card: demo-run\n\n| split | facts |\n|---|---|\n| train | 64 |\n\n"
        "![splits](card/splits.png)\n\n![remote](https://example.com/x.png)\n\n"
        "<div onclick=\"x\">raw html</div>\n", encoding="utf-8")
    (run / "config.yaml").write_text("run:\n  name: demo-run\nmodel:\n  base: tiny-model\n",
                                     encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_html_report(make_run(tmp_path_factory.mktemp("html")))


def test_report_holds_every_section_and_key_number(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert report.name == "report.html"
    for expected in ("Run report: demo-run", "PASSED", SHOWN_GATE_MESSAGE, "53.7%", "62.0%",
                     "[50.0%, 74.0%]", "qwen2.5-7b-instruct", "12.3%", "tuned wins",
                     "Answer A names the right country (0).", "Dataset card: demo-run",
                     "last validation loss", "athlete_country", "tiny-model"):
        assert expected in text, expected
    # loss plot + one category plot (recall) + the inlined card image
    assert text.count('src="data:image/png;base64,') == 3


def test_report_is_self_contained_and_escaped(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert not REMOTE.search(text)
    assert "<script" not in text.lower()
    assert "&lt;b&gt;marathon&lt;/b&gt;" in text
    assert "&lt;div onclick" in text  # raw HTML in the card is shown, not run
    assert "[image not embedded: remote]" in text


def test_samples_mark_answers_and_show_the_judge_verdict(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert '<td class="bad">Italy, I believe.</td>' in text
    assert '<td class="ok">Athlete 0 represented France.</td>' in text
    assert "base wins" in text  # athlete 1: verdict "loss" for the challenger


def test_without_matplotlib_tables_replace_plots(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html_report.html_plots, "figure_module", lambda: None)
    text = render_html_report(make_run(tmp_path))
    assert text.count("data:image/png;base64,") == 1  # only the card's own image
    assert "<th>category</th>" in text and "60.0%" in text
    assert "<summary>numbers</summary>" not in text  # the table stands in for the plot


def test_results_per_group_are_listed_with_their_sizes(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    metrics = _metrics()
    metrics["tuned"]["recall"]["by_group"] = {"Rowing": _summary(0.25, 4),
                                              "Athletics": _summary(0.875, 8)}
    _write_json(run / "evaluate" / "metrics.json", metrics)
    text = render_html_report(run)
    row = r"<tr><td>(Rowing|Athletics)</td><td class=\"num\">(\d+)</td>(.*?)</tr>"
    rows = re.findall(row, text)
    assert {(g, n) for g, n, _ in rows} == {("Rowing", "4"), ("Athletics", "8")}
    assert "25.0%" in dict((g, cells) for g, _, cells in rows)["Rowing"]


def test_metrics_only_run_renders_not_available_notes(tmp_path: Path) -> None:
    run = tmp_path / "bare"
    _write_json(run / "evaluate" / "metrics.json", {"tuned": {"recall": {"accuracy": 0.5,
                                                                         "n": 4}}})
    text = render_html_report(run)
    assert "Run report: bare" in text and "50.0%" in text
    for note in ("Training log not available", "Judge results not available",
                 "Dataset card not available", "gate.json not available",
                 "Predictions not available", "No per-category metrics"):
        assert note in text, note


def test_retrieval_table_shows_questions_left_without_a_passage(tmp_path: Path) -> None:
    run = tmp_path / "rag"
    retrieval = {"heldout": {"k": 5, "n": 12, "no_passage": 0.0, "recall_at_k": 0.917,
                             "mrr": 0.875, "ci95": {"recall_at_k": [0.75, 1.0]}},
                 "unanswerable": {"k": 5, "n": 17, "no_passage": 1.0}}
    _write_json(run / "evaluate" / "metrics.json",
                {"tuned": {"recall": {"accuracy": 0.5, "n": 4}}, "retrieval": retrieval})
    table = render_html_report(run).split("<h3>Retrieval")[1].split("</table>")[0]
    rows = [re.sub(r"<[^>]+>", " ", row).split() for row in table.split("<tr>")[2:]]
    assert rows[0][:6] == ["heldout", "5", "91.7%", "[75.0%,", "100.0%]", "0.875"]
    assert rows[0][6:] == ["0.0%", "12"]
    # No gold record: no recall or MRR to show, only how many got no passage at all.
    assert rows[1] == ["unanswerable", "5", "–", "–", "100.0%", "17"]


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={cwd / 'profile'}", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=True)


@needs_chromium
def test_chromium_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "out.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri(), cwd=tmp_path)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 24) or []
    assert len(colours) > 200  # text antialiasing, badges, the loss plot
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 10
    non_white = sum(n for n, rgb in colours if min(rgb) < 235)
    assert non_white > 0.02 * image.size[0] * image.size[1]


@needs_chromium
def test_chromium_dom_shows_key_numbers(report: Path, tmp_path: Path) -> None:
    dom = _chromium("--dump-dom", report.as_uri(), cwd=tmp_path).stdout
    for expected in ("53.7%", "62.0%", SHOWN_GATE_MESSAGE, "Sample answers", "tuned wins"):
        assert expected in dom, expected


def test_every_text_from_the_run_is_escaped(tmp_path: Path) -> None:
    bad = "<i>x</i>"
    shown = "&lt;i&gt;x&lt;/i&gt;"
    run = tmp_path / "hostile"
    summary = {**_summary(0.5, 4), "by_category": {bad: _summary(0.5, 2)}}
    _write_json(run / "evaluate" / "metrics.json", {
        bad: {bad: summary}, "retrieval": {bad: {"k": 5, "n": 4, "no_passage": 0.0}},
        "judge": {"win_rate": 0.5, "challenger": bad, "champion": bad, "judge_model": bad,
                  "base_url": bad}})
    _write_rows(run / "evaluate" / "predictions.jsonl", [
        {"set": bad, "question": bad, "reference": bad, "fact": bad, f"{bad}_answer": bad,
         f"{bad}_correct": True}])
    _write_rows(run / "evaluate" / "judgments.jsonl", [
        {"question": bad, "challenger_answer": bad, "champion_answer": bad, "verdict": bad,
         "reasons": [bad, bad]}])
    _write_json(run / "gate.json", {"passed": False, "checks": [{"passed": False,
                                                                 "message": bad}]})
    (run / "curate").mkdir()
    (run / "curate" / "dataset_card.md").write_text(bad, encoding="utf-8")
    (run / "config.yaml").write_text(f"run:\n  name: '{bad}'\nmodel:\n  base: '{bad}'\n",
                                     encoding="utf-8")
    text = render_html_report(run)
    assert "<i>" not in text
    # title, heading, base model, gate, metrics (set, variant), category, retrieval, judge
    # (challenger, champion twice, model, URL), samples, verdicts, reasons, card, config
    assert text.count(shown) >= 30


def test_the_packaged_style_is_inlined(report: Path) -> None:
    from importlib import resources

    css = resources.files("tuneline.report").joinpath("report.css").read_text("utf-8")
    assert f"<style>{css}</style>" in report.read_text(encoding="utf-8")


def test_malformed_metrics_name_the_field(tmp_path: Path) -> None:
    from tuneline.errors import DataError

    run = tmp_path / "bad"
    _write_json(run / "evaluate" / "metrics.json", {"tuned": {"recall": {"accuracy": "high"}}})
    with pytest.raises(DataError, match=r"metrics\.json: 1 malformed field\(s\):\n"
                                        r"  - tuned\.recall\.accuracy: "):
        render_html_report(run)


def test_gains_over_base_are_listed_with_their_paired_intervals(tmp_path: Path) -> None:
    run = tmp_path / "gains"
    gain = {"vs": "base", "n": 12, "accuracy": 0.25, "ci95": {"accuracy": [0.083, 0.417]}}
    _write_json(run / "evaluate" / "metrics.json",
                {"base": {"recall": {"accuracy": 0.25, "n": 12}},
                 "tuned": {"recall": {"accuracy": 0.5, "n": 12, "gain": gain}}})
    table = render_html_report(run).split("<h3>Gains over the base model")[1].split("</table>")[0]
    rows = [re.sub(r"<[^>]+>", " ", row).split() for row in table.split("<tr>")[2:]]
    assert rows == [["recall", "tuned", "base", "+25.0", "pts", "[+8.3,", "+41.7]",
                     "–", "–", "–", "12"]]
