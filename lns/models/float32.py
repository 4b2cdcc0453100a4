"""IEEE float32 arithmetic on every backend: the switches that let float32 convolutions and matrix products round.

On Ampere and later GPUs PyTorch runs float32 convolutions in TF32 by default (10 mantissa bits, a relative rounding
of about 5e-4), and a user may have allowed TF32 (or bfloat16) matrix products too. Latent noise of sigma = 1e-3
moves a decoding by less than that, so segmentation features need the full float32 mantissa: :func:`ieee_float32`
turns every such shortcut off for a block of code and gives the caller's settings back afterwards. Training calls
:func:`set_tf32` once, for the whole run. Torch releases with the ``fp32_precision`` settings are set through them
alone (reading a legacy flag after a new-style setting is an error there); older releases through the legacy flags.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import Tensor, nn

IEEE = "ieee"
TF32 = "tf32"
_TF32_HALF_STEP = 1 << 12
_TF32_KEPT_BITS = ~((1 << 13) - 1)
_TF32_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def _backend_leaves() -> dict[str, object]:
    """The ``fp32_precision`` settings of this torch (empty before torch had them), by name."""
    backends = torch.backends
    candidates = {
        "cuda.matmul": getattr(getattr(backends, "cuda", None), "matmul", None),
        "cudnn.conv": getattr(getattr(backends, "cudnn", None), "conv", None),
        "cudnn.rnn": getattr(getattr(backends, "cudnn", None), "rnn", None),
        "mkldnn.matmul": getattr(getattr(backends, "mkldnn", None), "matmul", None),
        "mkldnn.conv": getattr(getattr(backends, "mkldnn", None), "conv", None),
        "mkldnn.rnn": getattr(getattr(backends, "mkldnn", None), "rnn", None),
    }
    return {name: leaf for name, leaf in candidates.items() if leaf is not None and hasattr(leaf, "fp32_precision")}


def float32_settings() -> dict[str, str]:
    """Every setting that decides how float32 convolutions and matrix products round, by name, as strings."""
    leaves = _backend_leaves()
    if leaves:
        return {name: str(leaf.fp32_precision) for name, leaf in leaves.items()}
    return {
        "cuda.matmul.allow_tf32": str(torch.backends.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": str(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def apply_float32_settings(settings: dict[str, str]) -> None:
    """Set what :func:`float32_settings` returned (the caller's settings back, say)."""
    leaves = _backend_leaves()
    if leaves:
        for name, value in settings.items():
            leaves[name].fp32_precision = value
        return
    torch.backends.cuda.matmul.allow_tf32 = settings["cuda.matmul.allow_tf32"] == "True"
    torch.backends.cudnn.allow_tf32 = settings["cudnn.allow_tf32"] == "True"
    torch.set_float32_matmul_precision(settings["float32_matmul_precision"])


def _uniform(tf32: bool) -> dict[str, str]:
    """Settings that make every backend's float32 IEEE (or, with ``tf32``, let cuBLAS and cuDNN use TF32)."""
    leaves = _backend_leaves()
    if leaves:
        return {name: TF32 if tf32 and name.startswith("cu") else IEEE for name in leaves}
    return {
        "cuda.matmul.allow_tf32": str(tf32),
        "cudnn.allow_tf32": str(tf32),
        "float32_matmul_precision": "high" if tf32 else "highest",
    }


def is_ieee_float32() -> bool:
    """True when no backend may round float32 convolutions or matrix products below float32."""
    return float32_settings() == _uniform(tf32=False)


def set_tf32(enabled: bool) -> None:
    """For the rest of the process: TF32 convolutions and matrix products on CUDA (``enabled``), or IEEE float32
    on every backend."""
    apply_float32_settings(_uniform(tf32=enabled))


def _autocast_devices() -> list[str]:
    """The device types whose autocast this process may have switched on."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


@contextmanager
def ieee_float32() -> Iterator[None]:
    """Inside: IEEE float32 convolutions and matrix products on every backend, no autocast. After: the caller's
    settings, whatever they were."""
    saved = float32_settings()
    apply_float32_settings(_uniform(tf32=False))
    try:
        with ExitStack() as stack:
            for device in _autocast_devices():
                stack.enter_context(torch.autocast(device, enabled=False))
            yield
    finally:
        apply_float32_settings(saved)


def round_to_tf32(values: Tensor) -> Tensor:
    """float32 ``values`` rounded (to nearest) to TF32's 10 explicit mantissa bits, still stored as float32."""
    bits = values.float().contiguous().view(torch.int32)
    return ((bits + _TF32_HALF_STEP) & _TF32_KEPT_BITS).view(torch.float32)


@contextmanager
def tf32_rounding(model: nn.Module) -> Iterator[None]:
    """Inside: every convolution and linear layer of ``model`` reads its input and weights rounded to TF32, as
    cuDNN and cuBLAS do with TF32 on, on any device (a CPU too). After: the model's own weights, no hooks."""
    layers = [module for module in model.modules() if isinstance(module, _TF32_LAYERS)]
    saved = [module.weight.detach().clone() for module in layers]
    handles = [module.register_forward_pre_hook(_round_inputs) for module in layers]
    try:
        with torch.no_grad():
            for module in layers:
                module.weight.copy_(round_to_tf32(module.weight))
        yield
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for module, weight in zip(layers, saved, strict=True):
                module.weight.copy_(weight)


def _round_inputs(module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return tuple(round_to_tf32(value) if value.dtype == torch.float32 else value for value in inputs)
