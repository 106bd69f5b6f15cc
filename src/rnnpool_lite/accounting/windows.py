"""Sliding windows along one axis and how they compose: the one home of kernel / stride propagation.

A conv, a local pool or an RNNPool maps output position ``u`` to the input positions
``lo + u * jump ... hi + u * jump`` (a :class:`Span`). A stack of such layers is again a span, and
composing spans is associative, so a receptive field can be built from the input forward
(:mod:`rnnpool_lite.accounting.receptive_field`) or from the output backward (the rows an output row
needs on each map, :func:`rnnpool_lite.accounting.bounds.row_schedule_ram`) with the same rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from rnnpool_lite.op.layer import RNNPool2d

#: Layers that slide a window over the map (their kernel, stride, padding and dilation set the span).
WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, RNNPool2d)


@dataclass(frozen=True)
class Span:
    """One axis of a window: output unit ``u`` sees input positions ``lo + u*jump .. hi + u*jump``.

    ``lo`` / ``hi`` are inclusive and may be negative (padding) or infinite (a global layer).
    """

    lo: float
    hi: float
    jump: int

    @property
    def size(self) -> float:
        """Pixels spanned (``inf`` for a global layer)."""
        return self.hi - self.lo + 1

    def then(self, later: Span) -> Span:
        """This span followed by ``later`` (a layer, or a stack of them, nearer the output)."""
        return Span(self.lo + later.lo * self.jump, self.hi + later.hi * self.jump, self.jump * later.jump)

    def union(self, other: Span) -> Span:
        """Both spans at once (two branches that are added or concatenated)."""
        if self.jump != other.jump:
            raise ValueError(f"cannot join receptive fields with strides {self.jump} and {other.jump}")
        return Span(min(self.lo, other.lo), max(self.hi, other.hi), self.jump)

    def everything(self) -> Span:
        """A layer that mixes all positions (global pooling, ReNet, a linear layer)."""
        return Span(-math.inf, math.inf, self.jump)


#: The span of a pointwise layer (and of no layer at all).
IDENTITY = Span(0, 0, 1)


def _pair(value: Any) -> tuple[Any, Any]:
    return (value, value) if not isinstance(value, tuple) else (value[0], value[1])


def layer_spans(module: nn.Module) -> tuple[Span, Span] | None:
    """The row and column spans of one :data:`WINDOWED` layer, ``None`` for any other module."""
    if not isinstance(module, WINDOWED):
        return None
    kernel, padding = _pair(module.kernel_size), _pair(module.padding)
    stride, dilation = _pair(module.stride or module.kernel_size), _pair(getattr(module, "dilation", 1))
    if isinstance(padding[0], str):
        raise ValueError(f"{type(module).__name__}: string padding ({padding[0]!r}) is not supported")
    rows, cols = (Span(-int(p), (int(k) - 1) * int(d) - int(p), int(s))
                  for k, s, p, d in zip(kernel, stride, padding, dilation))
    return rows, cols


__all__ = ["IDENTITY", "WINDOWED", "Span", "layer_spans"]
