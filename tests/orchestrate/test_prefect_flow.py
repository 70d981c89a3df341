"""`tuneline run --prefect`: every stage is a Prefect task cached under its fingerprint, on a
temporary local Prefect server (no server configured), with the real tiny pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("prefect")

from conftest import tiny_pipeline_config, write_config  # noqa: E402

STAGES = ("ingest", "synthesize", "curate", "train", "evaluate", "register")


def _run_with_prefect(tmp_path, config, *overrides: str) -> tuple[dict[str, str], str]:
    """The task state of each stage, as `tuneline run --prefect` prints it, and the output."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([sys.executable, "-m", "tuneline.cli.main", "run", str(config),
                           *overrides, "--prefect"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    states = dict(line.split()[:2] for line in proc.stdout.splitlines()
                  if line.split()[:1] and line.split()[0] in STAGES)
    assert set(states) == set(STAGES), proc.stdout
    return states, " ".join(proc.stdout.split())


@pytest.mark.slow
def test_stages_are_prefect_tasks_cached_under_their_fingerprints(tmp_path, tiny_model_dir):
    config = write_config(tmp_path / "cfg.yaml", tiny_pipeline_config(tmp_path, tiny_model_dir))
    first, said = _run_with_prefect(tmp_path, config)
    assert set(first.values()) == {"Completed"}
    assert "registered: capitals/1" in said

    cached, said = _run_with_prefect(tmp_path, config)
    assert set(cached.values()) == {"Cached"}
    assert "registered: capitals/1" in said  # the same version, not a second one

    # A changed evaluate setting: everything before evaluate is still cached.
    changed, said = _run_with_prefect(tmp_path, config, "evaluate.max_new_tokens=10")
    assert {changed[s] for s in ("ingest", "synthesize", "curate", "train")} == {"Cached"}
    assert changed["evaluate"] == changed["register"] == "Completed"
    assert "registered: capitals/2" in said

    # Prefect's record is not trusted once the folder it names is gone: train runs again.
    shutil.rmtree(tmp_path / "runs" / "tiny" / "train")
    again, _ = _run_with_prefect(tmp_path, config, "evaluate.max_new_tokens=10")
    assert again["curate"] == "Cached" and again["train"] == "Completed"
    assert (tmp_path / "runs" / "tiny" / "train" / "manifest.json").is_file()
