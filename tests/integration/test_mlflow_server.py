"""The registry against a real `mlflow server`: the pipeline logs and registers over HTTP,
the artifacts go through the server's artifact proxy, and `tuneline serve name@champion`
downloads the promoted version and answers."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import (
    free_port,
    tiny_pipeline_config,
    tuneline_serve,
    wait_until_up,
    write_config,
)

pytestmark = pytest.mark.integration
pytest.importorskip("torch")
pytest.importorskip("alembic")


@contextlib.contextmanager
def mlflow_server(root: Path, timeout_s: float = 120) -> Iterator[str]:
    mlflow_cli = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    assert mlflow_cli, "the mlflow CLI comes with the registry extra"
    port = free_port()
    server = subprocess.Popen(
        [mlflow_cli, "server", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "server-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{url}/health", timeout_s)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def test_pipeline_registers_on_a_remote_mlflow_server(tiny_model_dir, tmp_path, monkeypatch):
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline
    from tuneline.registry import open_registry

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the download cache lives under it
    with mlflow_server(tmp_path) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        config_path = write_config(tmp_path / "tuneline.yaml",
                                   tiny_pipeline_config(tmp_path, tiny_model_dir))
        cfg = load_config(config_path)
        result = run_pipeline(cfg)
        assert not (tmp_path / "registry").exists()  # nothing went to the local default

        registry = open_registry(cfg.register)
        assert registry.location == url
        version = registry.get("capitals@candidate")
        assert version.meta["source"].startswith("mlflow-artifacts:")
        assert version.meta["data_hash"] == result.artifacts["curate"].output_hash
        assert registry.promote("capitals/1").version == 1

        with tuneline_serve(str(config_path), "--model", "capitals@champion",
                            timeout_s=180) as base_url:
            reply = httpx.post(f"{base_url}/chat/completions", timeout=60, json={
                "model": "capitals@champion", "max_tokens": 4,
                "messages": [{"role": "user", "content": "What is the capital of Peru?"}]})
        assert reply.status_code == 200, reply.text
        downloaded = registry.materialize(registry.get("capitals@champion"))
        assert (downloaded.adapter_dir / "adapter_config.json").is_file()
        assert str(downloaded.path).startswith(str(tmp_path / "home"))
        runs = registry.client.search_runs([registry.experiment_id()])
        assert [r.data.tags["gate"] for r in runs] == ["passed"]
        assert os.environ["MLFLOW_TRACKING_URI"] == url
