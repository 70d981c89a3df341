"""The machine class every manifest and bench output names."""

from __future__ import annotations

import json

import pytest

from tuneline.machine import Machine, cpu_class, this_machine


@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx2", "avx512f", "avx512_bf16"}, "bf16-native"),  # Zen 4/5, Cooper Lake
    ({"avx2", "avx512f", "amx_bf16"}, "bf16-native"),  # Sapphire Rapids
    ({"avx2", "avx512f", "avx512_vnni"}, "avx512 (no bf16)"),  # Ice Lake: bf16 emulated
    ({"avx", "avx2", "fma"}, "avx2"),  # Zen 2/3 EPYC
    ({"neon"}, "other"),
])
def test_cpu_class_from_flags(flags, expected):
    assert cpu_class(flags) == expected


def test_summary_names_the_fast_path():
    native = Machine("Zen 5", "bf16-native", 2, 24.0, None)
    emulated = Machine("EPYC", "avx2", 2, 24.0, None)
    assert native.native_bf16 and "fast path bf16 and fp32" in native.summary()
    assert not emulated.native_bf16 and "bf16 emulated" in emulated.summary()
    assert "2 cores" in emulated.summary() and "no GPU" in emulated.summary()


def test_every_stage_manifest_records_the_machine(tmp_path):
    from tuneline.artifacts import StageResult, run_stage

    artifact = run_stage("ingest", tmp_path / "ingest", "cfg", {},
                         lambda tmp: StageResult(counts={}, details={}))
    recorded = json.loads((artifact.path / "manifest.json").read_text())["machine"]
    assert recorded == this_machine().as_dict()
    assert recorded["cores"] >= 1 and recorded["cpu_class"] in (
        "bf16-native", "avx512 (no bf16)", "avx2", "other")
