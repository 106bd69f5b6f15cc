"""Fully connected layer, per-output-channel int8 weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from torch import fx, nn

from rnnpool_lite.m4 import kernels
from rnnpool_lite.m4.c_source import CContext, ident
from rnnpool_lite.m4.conversion import Conversion
from rnnpool_lite.m4.cost import MACS_PER_CYCLE, OP_OVERHEAD_CYCLES, REQUANT_CYCLES
from rnnpool_lite.m4.fixed_point import INT8_MAX, INT8_MIN, quantize_bias, quantize_multiplier, quantize_weights
from rnnpool_lite.m4.ops.base import Op, Shape


@dataclass(kw_only=True)
class LinearOp(Op):
    """``(N, K) -> (N, O)``: int32 accumulators requantized per output channel."""

    w: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    in_zp: int = 0
    out_zp: int = 0
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX
    kind: ClassVar[str] = "linear"

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        (x,) = xs
        if x.ndim != 2:
            raise ValueError(f"{self.name}: linear expects (N, K), got {x.shape}")
        return (kernels.linear(x, self.w, self.bias, in_zp=self.in_zp, out_zp=self.out_zp, mult=self.mult,
                               shift=self.shift, act_min=self.act_min, act_max=self.act_max),)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        return [(shapes[0][0], self.w.shape[0])]

    def macs(self, *shapes: Shape) -> int:
        return shapes[0][0] * self.w.size

    @property
    def flash_bytes(self) -> int:
        return self.w.size + self.w.shape[0] * 4 * 3

    def cycles(self, in_shape: Shape, macs: float) -> float:
        return OP_OVERHEAD_CYCLES + macs / MACS_PER_CYCLE + in_shape[0] * self.w.shape[0] * REQUANT_CYCLES

    def emit_c(self, ctx: CContext) -> list[str]:
        p, (o, k) = ident(self.name), self.w.shape
        wn = ctx.writer.array("int8_t", f"{p}_w", self.w, f"{self.module or self.name}: linear {k} -> {o}")
        bn = ctx.writer.array("int32_t", f"{p}_bias", self.bias)
        mn = ctx.writer.array("int32_t", f"{p}_mult", self.mult)
        sn = ctx.writer.array("int32_t", f"{p}_shift", self.shift)
        return [f"    rnn_linear({ctx.whole(self.inputs[0])}, {k}, {wn}, {bn}, {mn}, {sn}, {o}, {self.in_zp}, "
                f"{self.out_zp}, {self.act_min}, {self.act_max}, {ctx.buf(self.outputs[0])});"]


def convert_linear(c: Conversion, node: fx.Node, m: nn.Linear) -> None:
    src, qin = c.input_of(node)
    wq, sw = quantize_weights(m.weight.detach().double().numpy())
    b = np.zeros(m.out_features) if m.bias is None else m.bias.detach().double().numpy()
    qout = c.qp[node.name]
    mult, shift = quantize_multiplier(qin.scale * sw / qout.scale)
    op = LinearOp(node.name, [src], [node.name], str(node.target), w=wq, bias=quantize_bias(b, qin.scale * sw),
                  mult=mult, shift=shift, in_zp=qin.zero_point, out_zp=qout.zero_point)
    c.emit(op, [node.name], [qout])


__all__ = ["LinearOp", "convert_linear"]
