"""Both registry backends: versions, references, aliases, promote/rollback, concurrency."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tuneline.errors import RegistryError
from tuneline.register.config import RegisterConfig
from tuneline.registry import open_registry

PASSED = {"passed": True, "checks": []}


@pytest.fixture(params=["local", "mlflow"])
def registry_cfg(request, tmp_path, monkeypatch) -> RegisterConfig:
    if request.param == "mlflow":
        pytest.importorskip("alembic")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return RegisterConfig(backend=request.param, registry_dir=tmp_path / "reg")


def _adapter(tmp_path: Path, content: bytes) -> Path:
    folder = tmp_path / f"adapter-{content.decode()}"
    folder.mkdir()
    (folder / "w.bin").write_bytes(content)
    return folder


def _register(registry, tmp_path, content: bytes, gate=PASSED):
    return registry.register("m", files={"adapter": _adapter(tmp_path, content)},
                             meta={"base_model": "b", "gate": gate, "data_hash": "d" * 8})


def test_versions_are_numbered_and_hold_their_files(registry_cfg, tmp_path):
    registry = open_registry(registry_cfg)
    v1 = _register(registry, tmp_path, b"1")
    v2 = _register(registry, tmp_path, b"2")
    assert (v1.version, v2.version) == (1, 2)
    assert (v1.adapter_dir / "w.bin").read_bytes() == b"1"
    assert registry.get("m").version == 2
    assert registry.get("m/1").meta["base_model"] == "b"
    assert registry.get("m@candidate").version == 2  # the newest registered
    assert registry.names() == ["m"]
    assert [v.version for v in registry.versions("m")] == [1, 2]


def test_unknown_references_say_what_exists(registry_cfg, tmp_path):
    registry = open_registry(registry_cfg)
    with pytest.raises(RegistryError, match="none"):
        registry.get("nothing")
    _register(registry, tmp_path, b"1")
    with pytest.raises(RegistryError, match="registered: m"):
        registry.get("other")
    with pytest.raises(RegistryError, match=r"has no version 7 \(has \[1\]\)"):
        registry.get("m/7")
    with pytest.raises(RegistryError, match="no alias 'champion'.*promote"):
        registry.get("m@champion")
    with pytest.raises(RegistryError, match="bad model reference"):
        registry.get("m/x")
    with pytest.raises(RegistryError, match="bad model name"):
        registry.register("a/b", files={}, meta={})


def test_promote_needs_a_passing_gate_and_rollback_walks_back(registry_cfg, tmp_path):
    registry = open_registry(registry_cfg)
    for content in (b"1", b"2", b"3"):
        _register(registry, tmp_path, content)
    _register(registry, tmp_path, b"4", gate={"passed": False, "checks": []})
    with pytest.raises(RegistryError, match="cannot promote m/4.*failed"):
        registry.promote("m/4")
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback("m")
    assert registry.champion("m") is None
    for number in (1, 2, 3):
        assert registry.promote(f"m/{number}").version == number
    assert registry.get("m@champion").aliases == ("champion",)
    assert registry.rollback("m").version == 2
    assert registry.get("m@champion").version == 2
    assert registry.rollback("m").version == 1
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback("m")
    # Promoting a rolled-back version again makes it the champion again.
    assert registry.promote("m/3").version == 3
    assert [v for v, _ in registry.history("m")] == [1, 3]
    assert registry.rollback("m").version == 1


def _promote_many(cfg: RegisterConfig, versions: list[int], barrier) -> None:
    registry = open_registry(cfg)
    barrier.wait()
    for number in versions:
        registry.promote(f"m/{number}")


def test_concurrent_promotes_from_two_processes_stay_consistent(registry_cfg, tmp_path):
    registry = open_registry(registry_cfg)
    for content in (b"1", b"2", b"3", b"4"):
        _register(registry, tmp_path, content)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_promote_many, args=(registry_cfg, order * 3, barrier))
               for order in ([1, 2], [3, 4])]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    history = registry.history("m")
    # Every promotion stands (none rolled back) and the alias names the newest one.
    assert sorted(v for v, _ in history) == [1, 2, 3, 4]
    assert registry.get("m@champion").version == history[-1][0]
    assert registry.rollback("m").version == history[-2][0]
