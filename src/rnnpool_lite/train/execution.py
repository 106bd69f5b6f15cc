"""How ``fit`` runs a model's steps on a device: memory layout, autocast precision, RNNPool's kernel.

``channels_last`` (NHWC) lets oneDNN on CPUs and cuDNN on GPUs run convolutions, BatchNorm and
depthwise layers without the layout reorders NCHW costs them; the numbers are the same up to float
rounding (chapter 5's task and chapter 3's probe reach the same accuracy within seed noise). It is
the default for every model with a 2-D convolution. RNNPool layers run on the C++ kernel where it
builds (:mod:`rnnpool_lite.op.compiled`; ``rnnpool_kernel="torch"`` is the off-switch), which NHWC
alone does not speed up. ``benchmarks/bench_train.py`` measures the default against eager NCHW on the
torch path, interleaved: on 2 threads of an AVX-512 EPYC, MobileNetV2-0.35x for VWW trains about 1.6x
faster at 48 and 96 px, its RNNPool variant about 1.9x (48 px) and 1.7x (96 px), chapter 4's small
RNNPool-Face 1.5x and the chapter-3 probe with a convolution 2.7x; the probe without one (its patch,
the whole 32-pixel image, is larger than the kernel covers) gains nothing.

bf16 autocast is opt-in (``precision="bf16"``), not a default. On that CPU (AVX512-BF16, no AMX)
it made the base model's step slower than float32 ``channels_last`` (1.1x against 1.4x over eager
at 96 px, 0.9x against 1.55x at 48 px). The RNNPool operator runs in float32 under autocast (its
hand-written FastGRNN backward is float32), so an RNNPool model gains only in its convolutions. No
GPU was at hand to test CUDA's bf16.

The third lever is process-wide, so it lives in ``TrainConfig.keep_freed_memory``, not here.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnpool_lite.op.compiled import selected_kernel, use_kernel

Layout = Literal["auto", "channels_last", "nchw"]
Precision = Literal["auto", "bf16", "fp32"]
LAYOUTS: tuple[Layout, ...] = ("auto", "channels_last", "nchw")
PRECISIONS: tuple[Precision, ...] = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class Execution:
    """A resolved layout and precision for one model on one device."""

    device: torch.device
    channels_last: bool
    autocast_dtype: torch.dtype | None
    #: SGD updates all parameters with a few multi-tensor ops (``foreach``) instead of a Python
    #: loop of small ops per parameter; the numbers are bitwise the same
    foreach_sgd: bool = False
    #: what RNNPool layers run on inside :meth:`forward_context` (:func:`rnnpool_lite.op.compiled.use_kernel`):
    #: ``"torch"`` (the whole-batch tensor ops of ``op.fused``) or ``"compiled"`` (the C++ kernel)
    rnnpool_kernel: str = "torch"

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device, in the layout its steps run in."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    def release(self, model: nn.Module) -> nn.Module:
        """Give ``model`` back in the default layout, as callers who ``view`` its weights expect."""
        if self.channels_last:
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        return model

    def sgd(self, model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
        """The paper's optimizer for ``model``'s parameters, updated as this execution says."""
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                               foreach=self.foreach_sgd or None)

    def inputs(self, batch: Any) -> Any:
        """Move tensors nested in tuples, lists and dicts to the device; 4-D images in the layout."""
        if isinstance(batch, Tensor):
            batch = batch.to(self.device, non_blocking=True)
            if self.channels_last and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            return batch
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.inputs(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self.inputs(v) for k, v in batch.items()}
        return batch

    def forward_context(self) -> contextlib.ExitStack:
        """The context the forward pass and the loss run in: the RNNPool kernel, and autocast if any."""
        stack = contextlib.ExitStack()
        stack.enter_context(use_kernel(self.rnnpool_kernel))
        if self.autocast_dtype is not None:
            stack.enter_context(torch.autocast(self.device.type, dtype=self.autocast_dtype))
        return stack

    def settings(self) -> dict[str, str]:
        """What a checkpoint records: a run resumed in another layout or precision is not bitwise the same."""
        return {"layout": "channels_last" if self.channels_last else "nchw",
                "precision": "fp32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch."),
                "rnnpool_kernel": self.rnnpool_kernel}


def has_conv2d(model: nn.Module) -> bool:
    """Whether ``model`` works on 4-D images (any 2-D convolution)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def choose_execution(model: nn.Module, device: torch.device, layout: Layout = "auto",
                     precision: Precision = "auto", rnnpool_kernel: str | None = None) -> Execution:
    """Resolve ``"auto"``: ``channels_last`` for models with a 2-D convolution on a CPU or a CUDA
    device, and float32 (bf16 only when asked, see the module docstring); SGD with multi-tensor
    updates whatever the layout and precision (bitwise the same as the per-parameter loop); RNNPool
    layers on ``rnnpool_kernel`` (``None``: ``$RNNPOOL_LITE_KERNEL``, by default ``"auto"``: the C++
    kernel where it builds, see :func:`rnnpool_lite.op.compiled.selected_kernel`)."""
    channels_last = layout == "channels_last" or (
        layout == "auto" and device.type in ("cpu", "cuda") and has_conv2d(model))
    return Execution(device, channels_last, torch.bfloat16 if precision == "bf16" else None, foreach_sgd=True,
                     rnnpool_kernel=selected_kernel(rnnpool_kernel))
