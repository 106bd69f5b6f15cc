"""Global average pool (``AdaptiveAvgPool2d(1)``), same quantization in and out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from torch import fx, nn

from rnnpool_lite.m4 import kernels
from rnnpool_lite.m4.c_source import CContext
from rnnpool_lite.m4.conversion import Conversion, UnsupportedError
from rnnpool_lite.m4.cost import OP_OVERHEAD_CYCLES
from rnnpool_lite.m4.ops.base import Op, Shape


@dataclass
class AvgPoolOp(Op):
    """``sum(x - zp) / (H W)`` rounded half away from zero, plus ``zp``."""

    zp: int = 0
    kind: ClassVar[str] = "avgpool"

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        (x,) = xs
        return (kernels.avg_pool_global(x, zp=self.zp),)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        (shape,) = shapes
        return [(shape[0], shape[1], 1, 1)]

    def macs(self, *shapes: Shape) -> int:
        return int(np.prod(shapes[0]))

    def cycles(self, in_shape: Shape, macs: float) -> float:
        return OP_OVERHEAD_CYCLES + int(np.prod(in_shape))

    def emit_c(self, ctx: CContext) -> list[str]:
        src = self.inputs[0]
        h, w, c = ctx.hwc(src)
        return [f"    rnn_avg_pool_global({ctx.whole(src)}, {ctx.buf(self.outputs[0])}, {h * w}, {c}, {self.zp});"]


def convert_avgpool(c: Conversion, node: fx.Node, m: nn.AdaptiveAvgPool2d) -> None:
    if m.output_size not in (1, (1, 1)):
        raise UnsupportedError(f"module {node.target!r}: AdaptiveAvgPool2d has an int8 kernel for output size 1 "
                               f"only, got {m.output_size}")
    src, qin = c.input_of(node)
    c.emit(AvgPoolOp(node.name, [src], [node.name], str(node.target), zp=qin.zero_point), [node.name], [qin])


__all__ = ["AvgPoolOp", "convert_avgpool"]
