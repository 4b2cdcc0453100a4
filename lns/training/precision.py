"""``trainer.precision=auto``: bf16-mixed where the device computes in bfloat16 natively, 32-true elsewhere.

A CPU runs bfloat16 natively when it has AVX512-BF16 or AMX; without them torch emulates bf16 and training gets
slower, not faster. A GPU runs it natively when CUDA reports bf16 support without emulation (Ampere and later).
An explicit precision (``32-true``, ``bf16-mixed``, ...) is always used as given.
"""

from __future__ import annotations

from pathlib import Path

import torch

AUTO = "auto"
BF16 = "bf16-mixed"
FLOAT32 = "32-true"
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (``/proc/cpuinfo``); empty where that file does not exist."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_has_native_bf16() -> bool:
    """True where torch reports AMX (or the CPU reports AVX512-BF16 or AMX-BF16) on this CPU."""
    is_amx = getattr(torch._C._cpu, "_is_amx_tile_supported", None)
    is_bf16 = getattr(torch._C._cpu, "_is_avx512_bf16_supported", None)
    if is_amx is not None and is_bf16 is not None:
        return bool(is_amx() or is_bf16())
    init_amx = getattr(torch._C._cpu, "_init_amx", None)
    if init_amx is not None and init_amx():
        return True
    return bool(cpu_flags() & set(CPU_BF16_FLAGS))


def gpu_has_native_bf16() -> bool:
    """True where a CUDA device is present and computes in bfloat16 without emulation."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def uses_gpu(accelerator: str) -> bool:
    """Whether a Lightning ``accelerator`` value trains on a GPU (``auto`` does where CUDA is present)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(requested: str | int, accelerator: str) -> str:
    """The Lightning precision to train with: ``requested`` itself unless it is ``auto``."""
    if str(requested) != AUTO:
        return str(requested)
    native = gpu_has_native_bf16() if uses_gpu(accelerator) else cpu_has_native_bf16()
    return BF16 if native else FLOAT32
