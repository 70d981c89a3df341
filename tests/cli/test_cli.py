import json
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
