"""``torch.cat`` of int8 tensors, each requantized to the output's quantization."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import fx

from rnnpool_lite.m4 import kernels
from rnnpool_lite.m4.c_source import CContext, Requant
from rnnpool_lite.m4.conversion import Conversion, UnsupportedError
from rnnpool_lite.m4.cost import ELEMENTWISE_CYCLES, OP_OVERHEAD_CYCLES
from rnnpool_lite.m4.fixed_point import quantize_multiplier
from rnnpool_lite.m4.ops.base import Op, Shape, check_flat_input

CAT_FUNCTIONS = (torch.cat,)


@dataclass
class ConcatOp(Op):
    """In C the parts are sent out one after the other as they are produced: nothing is copied."""

    dim: int = 1
    requant: list[Requant] = field(default_factory=list)  # per input: in_zp, mult, shift, out_zp
    kind: ClassVar[str] = "concat"
    joins_outputs: ClassVar[bool] = True

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        return (np.concatenate([kernels.requantize(x, **p) for x, p in zip(xs, self.requant)], self.dim),)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        out = list(shapes[0])
        out[self.dim] = sum(s[self.dim] for s in shapes)
        return [tuple(out)]

    @property
    def flash_bytes(self) -> int:
        return 12 * len(self.requant)

    def cycles(self, in_shape: Shape, macs: float) -> float:
        return OP_OVERHEAD_CYCLES + int(np.prod(in_shape)) * ELEMENTWISE_CYCLES

    def check_c(self, shapes: dict[str, Shape], results: set[str], outputs: set[str]) -> None:
        if self.outputs[0] not in outputs:
            raise UnsupportedError(f"{self.where}: only a concatenation of model outputs (done as they are sent "
                                   "out) is exported, not one inside the network")
        check_flat_input(self, shapes)
        if any(s != 1 for s in shapes[self.outputs[0]][: self.dim]):
            raise UnsupportedError(f"{self.where}: concatenation along dim {self.dim} of a batch is not exported")

    def emit_c(self, ctx: CContext) -> list[str]:
        """No step: each part was requantized and sent at its place (``output_sources``)."""
        return []

    def output_sources(self, name: str) -> list[tuple[str, Requant | None]]:
        return list(zip(self.inputs, self.requant))


def convert_cat(c: Conversion, node: fx.Node) -> None:
    parts = node.args[0]
    if not isinstance(parts, (list, tuple)):
        raise UnsupportedError(f"node {node.name!r}: torch.cat of a list of tensors only")
    xs = [c.tensor(x) for x in parts]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if not isinstance(dim, int):
        raise UnsupportedError(f"node {node.name!r}: torch.cat along a constant int dim only, got {dim!r}")
    qout = c.qp[node.name]
    requant = []
    for x in xs:
        mult, shift = quantize_multiplier(c.q[x].scale / qout.scale)
        requant.append(dict(in_zp=c.q[x].zero_point, mult=int(mult), shift=int(shift), out_zp=qout.zero_point))
    c.emit(ConcatOp(node.name, xs, [node.name], dim=dim, requant=requant), [node.name], [qout])


__all__ = ["CAT_FUNCTIONS", "ConcatOp", "convert_cat"]
