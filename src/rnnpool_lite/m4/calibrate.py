"""Activation-range calibration: run the float model and observe every tensor it produces.

The observers are attached per node of the ``torch.fx`` graph (an ``fx.Interpreter`` that records
each node's output) rather than with module forward hooks, because the tensors that need a
range include the outputs of functions (the residual ``+``, ``torch.cat``) that no module owns.
Tensors computed inside a leaf module that need their own range (a detection head's two
convolutions) come from the ``inner`` function :func:`calibrate` is given.

* ``"minmax"``: the running min and max (TFLite's default post-training calibration).
* ``"percentile"``: the ``p``-th and ``(100 - p)``-th percentiles of a uniform random subsample
  of the values (at most ``max_samples`` per tensor), which ignores rare outliers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol, get_args

import numpy as np
import torch
from torch import Tensor, fx, nn

from rnnpool_lite.m4.fixed_point import QParams

Method = Literal["minmax", "percentile"]
METHODS: tuple[Method, ...] = get_args(Method)
InnerTensors = Callable[[nn.Module, Tensor], dict[str, Tensor]]


class Observer(Protocol):
    def update(self, x: Tensor) -> None: ...

    def qparams(self) -> QParams: ...


class MinMaxObserver:
    """Running minimum and maximum."""

    def __init__(self) -> None:
        self.lo, self.hi = float("inf"), float("-inf")

    def update(self, x: Tensor) -> None:
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))

    def qparams(self) -> QParams:
        return QParams.from_range(self.lo, self.hi)


class PercentileObserver:
    """Percentiles of a random subsample of all observed values."""

    def __init__(self, percentile: float = 99.99, max_samples: int = 200_000, seed: int = 0) -> None:
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile, self.max_samples = percentile, max_samples
        self.samples: list[np.ndarray] = []
        self.rng = np.random.default_rng(seed)

    def update(self, x: Tensor) -> None:
        flat = x.detach().reshape(-1).double().numpy()
        if flat.size > self.max_samples:
            flat = flat[self.rng.integers(0, flat.size, self.max_samples)]  # uniform, with replacement
        self.samples.append(flat)

    def qparams(self) -> QParams:
        values = np.concatenate(self.samples)
        lo, hi = np.percentile(values, [100.0 - self.percentile, self.percentile])
        return QParams.from_range(lo, hi)


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, make: Callable[[], Observer], inner: InnerTensors) -> None:
        super().__init__(gm)
        self.make, self.inner = make, inner
        self.observers: dict[str, Observer] = {}

    def _observe(self, name: str, value: Any) -> None:
        if isinstance(value, Tensor) and value.is_floating_point():
            self.observers.setdefault(name, self.make()).update(value)

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        self._observe(n.name, out)
        if n.op == "call_module" and isinstance(n.args[0], fx.Node):
            x = self.env[n.args[0]]
            for suffix, value in self.inner(self.module.get_submodule(str(n.target)), x).items():
                self._observe(f"{n.name}.{suffix}", value)
        return out


def _batches(calibration: Any) -> Iterator[Tensor]:
    if isinstance(calibration, Tensor):
        yield from calibration.split(32)
        return
    for item in calibration:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, Tensor):
            raise TypeError(f"calibration must yield tensors or (tensor, ...) tuples, got {type(x).__name__}")
        yield x


@torch.no_grad()
def calibrate(gm: fx.GraphModule, calibration: Any, method: Method = "minmax", percentile: float = 99.99,
              inner: InnerTensors | None = None) -> dict[str, QParams]:
    """int8 quantization parameters of every node's output (and of the ``inner`` tensors of leaves)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    make: Callable[[], Observer] = MinMaxObserver if method == "minmax" else (lambda: PercentileObserver(percentile))
    recorder = _Recorder(gm, make, inner or (lambda m, x: {}))
    seen = 0
    for x in _batches(calibration):
        recorder.run(x.float())
        seen += len(x)
    if not seen:
        raise ValueError("calibration is empty: pass a batch of inputs or an iterable of batches")
    return {name: obs.qparams() for name, obs in recorder.observers.items()}


__all__ = ["METHODS", "InnerTensors", "Method", "MinMaxObserver", "Observer", "PercentileObserver", "calibrate"]
