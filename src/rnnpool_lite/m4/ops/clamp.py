"""A ReLU / ReLU6 that could not be fused into a conv: a clamp in the input's quantization."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from torch import fx, nn

from rnnpool_lite.m4 import kernels
from rnnpool_lite.m4.c_source import CContext
from rnnpool_lite.m4.conversion import Conversion
from rnnpool_lite.m4.cost import OP_OVERHEAD_CYCLES
from rnnpool_lite.m4.fixed_point import INT8_MAX, INT8_MIN
from rnnpool_lite.m4.ops.base import Op, Shape, Window
from rnnpool_lite.m4.ops.conv import ACTIVATIONS

if TYPE_CHECKING:
    from rnnpool_lite.m4.c_stem import StemStep


@dataclass
class ClampOp(Op):
    """``clamp(x, lo, hi)`` elementwise."""

    lo: int = INT8_MIN
    hi: int = INT8_MAX
    kind: ClassVar[str] = "clamp"

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        (x,) = xs
        return (kernels.clamp(x, self.lo, self.hi),)

    def run_window(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.run(x)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        (shape,) = shapes
        return [shape]

    @property
    def window(self) -> Window:
        return 1, 1, 1, 1, 0, 0

    def cycles(self, in_shape: Shape, macs: float) -> float:
        return OP_OVERHEAD_CYCLES + int(np.prod(in_shape))

    def emit_c(self, ctx: CContext) -> list[str]:
        src, out = self.inputs[0], self.outputs[0]
        return [f"    rnn_clamp({ctx.whole(src)}, {ctx.buf(out)}, {ctx.nbytes(out)}, {self.lo}, {self.hi});"]

    def emit_c_stem(self, step: StemStep) -> list[str]:
        return step.map_output(self, lambda out: [
            f"rnn_copy_crop(&in, &{out});",
            f"rnn_clamp({out}.data, {out}.data, {out}.h * {out}.w * {out}.c, {self.lo}, {self.hi});"])


def convert_activation(c: Conversion, node: fx.Node, m: nn.Module) -> None:
    """A standalone ReLU / ReLU6 (not after a conv it could be fused into)."""
    src, qin = c.input_of(node)
    lo, hi = qin.clamp(*ACTIVATIONS[type(m)])
    c.emit(ClampOp(node.name, [src], [node.name], str(node.target), lo=lo, hi=hi), [node.name], [qin])


__all__ = ["ClampOp", "convert_activation"]
