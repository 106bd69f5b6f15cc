"""``flatten(start_dim)``: a view in numpy, a copy in C."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from torch import fx, nn

from rnnpool_lite.m4.c_source import CContext
from rnnpool_lite.m4.conversion import Conversion, UnsupportedError
from rnnpool_lite.m4.ops.base import Op, Shape, check_flat_input


@dataclass
class FlattenOp(Op):
    """No arithmetic: the same bytes with a shorter shape."""

    start_dim: int = 1
    kind: ClassVar[str] = "flatten"

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        (x,) = xs
        return (x.reshape(*x.shape[: self.start_dim], -1),)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        (shape,) = shapes
        return [(*shape[: self.start_dim], int(np.prod(shape[self.start_dim:])))]

    def cycles(self, in_shape: Shape, macs: float) -> float:
        return 0.0

    def check_c(self, shapes: dict[str, Shape], results: set[str], outputs: set[str]) -> None:
        check_flat_input(self, shapes)

    def emit_c(self, ctx: CContext) -> list[str]:
        src = self.inputs[0]
        return [f"    const int8_t *src = {ctx.whole(src)}; int8_t *dst = {ctx.buf(self.outputs[0])};",
                f"    for (int32_t i = 0; i < {ctx.nbytes(src)}; i++) dst[i] = src[i];"]


def convert_flatten(c: Conversion, node: fx.Node, m: nn.Flatten) -> None:
    if m.end_dim != -1:
        raise UnsupportedError(f"module {node.target!r}: Flatten has an int8 kernel for end_dim=-1 only")
    src, qin = c.input_of(node)
    c.emit(FlattenOp(node.name, [src], [node.name], str(node.target), start_dim=m.start_dim), [node.name], [qin])


__all__ = ["FlattenOp", "convert_flatten"]
