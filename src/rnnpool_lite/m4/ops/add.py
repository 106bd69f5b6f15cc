"""Residual add (TFLite's rescaled int8 add)."""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import fx

from rnnpool_lite.m4 import kernels
from rnnpool_lite.m4.c_source import CContext
from rnnpool_lite.m4.conversion import Conversion, UnsupportedError
from rnnpool_lite.m4.cost import ELEMENTWISE_CYCLES, OP_OVERHEAD_CYCLES
from rnnpool_lite.m4.fixed_point import INT8_MAX, INT8_MIN, quantize_multiplier
from rnnpool_lite.m4.kernels import ADD_LEFT_SHIFT
from rnnpool_lite.m4.ops.base import Op, Shape

ADD_FUNCTIONS = (operator.add, torch.add, operator.iadd)
C_PARAMS = ("a_zp", "b_zp", "a_mult", "a_shift", "b_mult", "b_shift", "out_mult", "out_shift", "out_zp")


@dataclass
class AddOp(Op):
    """``a + b``: both inputs rescaled to ``2 max(s_a, s_b)``, summed, rescaled to the output."""

    params: dict[str, int] = field(default_factory=dict)
    kind: ClassVar[str] = "add"

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        a, b = xs
        return (kernels.add(a, b, **self.params),)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        return [shapes[0]]

    @property
    def flash_bytes(self) -> int:
        return 3 * 8

    def cycles(self, in_shape: Shape, macs: float) -> float:
        return OP_OVERHEAD_CYCLES + int(np.prod(in_shape)) * ELEMENTWISE_CYCLES

    def c_params(self, ctx: CContext) -> str:
        """The 11 int32 parameters of ``rnn_add`` (``rnn_kernels.h``) as an array; returns its name."""
        p = self.params
        values = [p[k] for k in C_PARAMS] + [p.get("act_min", INT8_MIN), p.get("act_max", INT8_MAX)]
        return ctx.writer.ints(f"{self.name}_q", values)

    def emit_c(self, ctx: CContext) -> list[str]:
        q = self.c_params(ctx)
        a, b = (ctx.whole(t) for t in self.inputs)
        out = self.outputs[0]
        return [f"    rnn_add({a}, {b}, {ctx.buf(out)}, {ctx.nbytes(out)}, {q});"]


def convert_add(c: Conversion, node: fx.Node) -> None:
    if len(node.args) != 2 or node.kwargs:
        raise UnsupportedError(f"node {node.name!r}: only a + b of two tensors is supported")
    a, b = (c.tensor(x) for x in node.args)
    qa, qb, qout = c.q[a], c.q[b], c.qp[node.name]
    twice = 2 * max(qa.scale, qb.scale)
    ma, sa = quantize_multiplier(qa.scale / twice)
    mb, sb = quantize_multiplier(qb.scale / twice)
    mo, so = quantize_multiplier(twice / ((1 << ADD_LEFT_SHIFT) * qout.scale))
    params = dict(a_zp=qa.zero_point, b_zp=qb.zero_point, a_mult=int(ma), a_shift=int(sa), b_mult=int(mb),
                  b_shift=int(sb), out_mult=int(mo), out_shift=int(so), out_zp=qout.zero_point)
    c.emit(AddOp(node.name, [a, b], [node.name], params=params), [node.name], [qout])


__all__ = ["ADD_FUNCTIONS", "AddOp", "convert_add"]
