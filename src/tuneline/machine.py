"""The machine a stage or bench ran on: CPU class, cores, memory, GPU. Figures from different
classes are not comparable (bf16 is ~4x fp32 where the CPU has it natively, emulated and slow
where it does not), so every manifest and bench output names the class."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class Machine:
    cpu: str  # the CPU's model name
    cpu_class: str  # bf16-native | avx512 (no bf16) | avx2 | other: what fp32/bf16 cost
    cores: int  # usable by this process
    memory_gib: float
    gpu: str | None  # the CUDA device's name, when torch is loaded and sees one

    @property
    def native_bf16(self) -> bool:
        return self.cpu_class == "bf16-native"

    def summary(self) -> str:
        """One line for terminals and bench output."""
        fast = "bf16 and fp32" if self.native_bf16 else "fp32 (bf16 emulated)"
        gpu = f", GPU {self.gpu}" if self.gpu else ", no GPU"
        return (f"machine: {self.cpu_class} CPU ({self.cpu}), {self.cores} cores, "
                f"{self.memory_gib:.0f} GiB, fast path {fast}{gpu}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_class(flags: set[str]) -> str:
    """The class of a CPU from its /proc/cpuinfo flags."""
    if flags & {"avx512_bf16", "amx_bf16"}:
        return "bf16-native"
    if "avx512f" in flags:
        return "avx512 (no bf16)"
    if "avx2" in flags:
        return "avx2"
    return "other"


def this_machine() -> Machine:
    cpu, klass, cores, memory = _host()
    return Machine(cpu=cpu, cpu_class=klass, cores=cores, memory_gib=memory, gpu=_gpu_name())


@lru_cache(maxsize=1)
def _host() -> tuple[str, str, int, float]:
    flags, model = _cpu_flags_and_model()
    return model, cpu_class(flags), _usable_cores(), round(_memory_gib(), 1)


def _cpu_flags_and_model() -> tuple[set[str], str]:
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return set(), platform.processor() or platform.machine()
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "model name":
            model = value.strip()
    return flags, model


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _memory_gib() -> float:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 ** 2
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _gpu_name() -> str | None:
    """Asked only when torch is already imported: a stage that never loads torch stays light."""
    torch = sys.modules.get("torch")
    try:
        return str(torch.cuda.get_device_name(0)) if torch and torch.cuda.is_available() else None
    except Exception:  # a broken CUDA setup must not fail a manifest
        return None
