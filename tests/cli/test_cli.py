import json
import re
import subprocess
import sys


def _tuneline(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tuneline.cli.main", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_bad_config_exits_2_with_one_message_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 0, batchsize: 3}\nrun: {seed: x}\n", encoding="utf-8")
    proc = _tuneline("run", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "3 problem(s)" in proc.stderr
    for field in ("train.epochs", "train.batchsize", "run.seed"):
        assert field in proc.stderr


def test_a_piped_error_names_a_long_path_on_one_line(tmp_path):
    # Read by a program (CI log, a parent process), the location must survive whole: Rich
    # wrapped at 80 columns and cut the path in two.
    deep = tmp_path / ("a_directory_name_long_enough_" * 3) / "bad.yaml"
    deep.parent.mkdir()
    deep.write_text("train: {epochs: 0}\n", encoding="utf-8")
    proc = _tuneline("run", str(deep))
    assert proc.returncode == 2
    assert f"1 problem(s) in {deep}:" in proc.stderr.splitlines()[0]


def test_config_schema_is_json():
    proc = _tuneline("config", "schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["title"] == "PipelineConfig"


def test_core_imports_without_torch():
    code = ("import sys, tuneline.cli.main, tuneline.config, tuneline.pipeline; "
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_data_validate_exit_codes_and_lines(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"messages": [{"role": "user", "content": "a"},
                                             {"role": "assistant", "content": "b"}]}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "a"}]}\n')
    assert _tuneline("data", "validate", str(good)).returncode == 0
    proc = _tuneline("data", "validate", str(good), str(bad))
    assert proc.returncode == 1
    assert proc.stdout.strip() == (f"{bad}:1: example_missing_assistant_message: "
                                   "no message has role 'assistant'")


def test_the_root_group_registers_every_command():
    from tuneline.cli.main import cli

    assert sorted(cli.commands) == [
        "config", "curate", "data", "evaluate", "export", "feedback", "index", "ingest", "init",
        "models", "monitor", "register", "registry", "run", "serve", "serve-key", "synthesize",
        "train", "watch"]


def test_metrics_print_reads_metrics_json(tmp_path, monkeypatch):
    from rich.console import Console

    from tuneline.artifacts import Artifact
    from tuneline.cli import output

    metrics = {
        "base": {"recall": {"accuracy": 0.2, "n": 50, "ci95": {"accuracy": [0.1, 0.3]}}},
        "tuned": {"recall": {"accuracy": 0.6, "n": 50, "ci95": {"accuracy": [0.5, 0.7]}},
                  "unanswerable": {"accuracy": 0.75, "n": 4}},
        "judge": {"win_rate": 0.625, "ci95": [0.5, 0.75], "wins": 5, "losses": 2, "ties": 1,
                  "invalid": 0, "n": 8, "challenger": "tuned", "champion": "base",
                  "judge_model": "judge-7b"},
        "retrieval": {"recall": {"k": 5, "n": 50, "no_passage": 0.1, "recall_at_k": 0.9,
                                 "mrr": 0.75},
                      "unanswerable": {"k": 5, "n": 4, "no_passage": 1.0}},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    console = Console(record=True, width=120)
    monkeypatch.setattr(output, "console", console)
    output.print_metrics(Artifact("evaluate", tmp_path, {}), tmp_path / "report.html")
    text = console.export_text()
    assert "20.0% [10%, 30%] n=50" in text and "60.0% [50%, 70%] n=50" in text
    assert "75.0% n=4" in text
    assert re.search(r"│ base +│ +20\.0% \[10%, 30%\] n=50 │ +- │", text)  # no unanswerable
    assert ("LLM judge (judge-7b): tuned vs base win rate 62.5% [50.0%, 75.0%] (5 wins, "
            "2 losses, 1 ties, 0 invalid)") in text
    assert ("retrieval on recall: gold record in the top 5 for 90.0% of 50 questions, "
            "MRR 0.750, 10.0% left without a passage") in text
    assert "retrieval on unanswerable: 4 questions, 100.0% left without a passage" in text
    assert f"report: {tmp_path / 'report.html'}" in text
