"""The integer RNNPool (:class:`~rnnpool_lite.m4.rnnpool_int.IntRNNPool`): one output position per patch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from torch import fx, nn

from rnnpool_lite.m4.c_source import CContext, CValue, ident
from rnnpool_lite.m4.conversion import Conversion, UnsupportedError
from rnnpool_lite.m4.cost import GATE_CYCLES, MACS_PER_CYCLE, OP_OVERHEAD_CYCLES, REQUANT_CYCLES
from rnnpool_lite.m4.ops.base import Op, Shape, Window
from rnnpool_lite.m4.rnnpool_int import IntRNNPool, check_rnnpool
from rnnpool_lite.op.cells import FastGRNNCell, quant_sigmoid, quant_tanh
from rnnpool_lite.op.layer import RNNPool2d

if TYPE_CHECKING:
    from rnnpool_lite.m4.c_stem import StemStep


@dataclass(kw_only=True)
class RNNPoolOp(Op):
    """RNN1 over the rows and columns of each patch, RNN2 over the summaries, both directions."""

    pool: IntRNNPool
    kind: ClassVar[str] = "rnnpool"
    ends_stem: ClassVar[bool] = True

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        (x,) = xs
        return (self.pool(x, True),)

    def run_window(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return (self.pool(x, False),)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        ((n, _, h, w),) = shapes
        return [(n, self.pool.out_channels, *self.pool.output_size(h, w))]

    def macs(self, *shapes: Shape) -> int:
        ((n, _, ho, wo),) = self.out_shapes(*shapes)
        return n * self.pool.macs(ho, wo, shapes[0][1])

    def _sizes(self) -> tuple[int, int, int, int]:
        (kh, kw), h1, h2 = self.pool.kernel, self.pool.rnn1.w.shape[0], self.pool.rnn2.w.shape[0]
        return kh, kw, h1, h2

    def scratch_bytes(self, in_channels: int) -> int:
        """Per patch: RNN1's kh + kw int16 summaries, RNN2's state, Q15 pre-activations."""
        kh, kw, h1, h2 = self._sizes()
        return 2 * ((kh + kw) * h1 + 4 * h2 + 2 * 2 * max(h1, h2))

    def c_scratch_bytes(self) -> int:
        """What ``rnn_rnnpool_patch`` uses (``rnn_rnnpool_scratch_bytes``): int16 summaries and
        states, 4-byte aligned, then one int32 vector."""
        kh, kw, h1, h2 = self._sizes()
        return ((2 * ((kh + kw) * h1 + 4 * h2) + 3) & ~3) + 4 * max(h1, h2)

    @property
    def flash_bytes(self) -> int:
        return self.pool.nbytes

    @property
    def window(self) -> Window:
        (kh, kw), (sh, sw), (ph, pw) = self.pool.kernel, self.pool.stride, self.pool.padding
        return kh, kw, sh, sw, ph, pw

    @property
    def in_channels(self) -> int:
        return int(self.pool.rnn1.w.shape[1])

    def cycles(self, in_shape: Shape, macs: float) -> float:
        """MACs at the SMLAD rate, the gate arithmetic per hidden unit and step, a requantization per output."""
        ((n, _, ho, wo),) = self.out_shapes(in_shape)
        kh, kw, h1, h2 = self._sizes()
        gates = (2 * kh * kw * h1 + 2 * (kh + kw) * h2) * n * ho * wo
        outputs = n * ho * wo * self.pool.out_channels
        return OP_OVERHEAD_CYCLES + macs / MACS_PER_CYCLE + gates * GATE_CYCLES + outputs * REQUANT_CYCLES

    # --- C -----------------------------------------------------------------------------------
    def c_params(self, ctx: CContext) -> str:
        """A ``static const rnn_rnnpool_params`` with its two ``rnn_fastgrnn`` cells; returns its name."""
        pool, p, w = self.pool, ident(self.name), ctx.writer
        cells: dict[str, CValue] = {}
        for k, cell in ((1, pool.rnn1), (2, pool.rnn2)):
            q = f"{p}_rnn{k}"
            cells[f"rnn{k}"] = dict(
                w=w.array("int8_t", f"{q}_w", cell.w, f"{self.module or self.name}: RNN{k} (FastGRNN) W, "
                          f"{cell.w.shape[0]} x {cell.w.shape[1]}"),
                u=w.array("int8_t", f"{q}_u", cell.u),
                w_mult=w.array("int32_t", f"{q}_w_mult", cell.w_mult),
                w_shift=w.array("int32_t", f"{q}_w_shift", cell.w_shift),
                u_mult=w.array("int32_t", f"{q}_u_mult", cell.u_mult),
                u_shift=w.array("int32_t", f"{q}_u_shift", cell.u_shift),
                bias_gate=w.array("int32_t", f"{q}_bias_gate", cell.bias_gate),
                bias_update=w.array("int32_t", f"{q}_bias_update", cell.bias_update),
                hidden=cell.w.shape[0], input=cell.w.shape[1], zeta=cell.zeta, nu=cell.nu, state_bits=cell.state_bits)
        kh, kw, sh, sw, ph, pw = self.window
        return w.struct("rnn_rnnpool_params", f"{p}_p", dict(
            **cells, kh=kh, kw=kw, sh=sh, sw=sw, pad_top=ph, pad_left=pw, in_zp=pool.in_zp, out_mult=pool.out_mult,
            out_shift=pool.out_shift, out_zp=pool.out_zp))

    def emit_c(self, ctx: CContext) -> list[str]:
        p = self.c_params(ctx)
        out = self.outputs[0]
        ho, wo, co = ctx.hwc(out)
        return [f"    const rnn_view in = {ctx.view(self.inputs[0])};",
                f"    uint32_t scratch[{(self.c_scratch_bytes() + 3) // 4}]; /* on the stack: the planner has no "
                "scratch here */",
                f"    for (int32_t i = 0; i < {ho}; i++)",
                f"      for (int32_t j = 0; j < {wo}; j++)",
                f"        rnn_rnnpool_patch(&{p}, &in, i, j, j > 0, scratch, {ctx.buf(out)} + (i * {wo} + j) * {co});"]

    def emit_c_stem(self, step: StemStep) -> list[str]:
        """Patch ``(pi, pj)`` of the grid is output position ``(pi, pj)`` (the grid may be larger)."""
        ctx = step.ctx
        p = self.c_params(ctx)
        out = self.outputs[0]
        ho, wo, co = ctx.hwc(out)
        scratch = f"{self.name} scratch"
        if self.c_scratch_bytes() > ctx.buffers[scratch][1]:
            raise AssertionError(f"{self.where}: the planner's scratch is smaller than the C kernel's")
        # the previous patch (pi, pj - 1) left its column summaries in the scratch unless a buffer of
        # the patch loop shares the scratch's bytes (the planner reuses freed space)
        reuse = "pj > 0" if _scratch_persists(ctx.buffers, scratch) else "0"
        lines = []
        if step.terminal:
            lines += [f"if (pi < {ho} && pj < {wo})",
                      f"  rnn_rnnpool_patch(&{p}, &in, pi, pj, {reuse}, {ctx.buf(scratch)}, "
                      f"{ctx.buf(out)} + (pi * {wo} + pj) * {co});"]
        if f"{out} crop" in ctx.buffers:
            raise UnsupportedError(f"layer {self.module!r}: an RNNPool read by later stem ops is not exported")
        return lines


def _scratch_persists(buffers: dict[str, tuple[int, int]], scratch: str) -> bool:
    """True when no other per-patch buffer of the stem (crops, tiles, scratches) overlaps ``scratch``:
    then nothing writes its bytes between one patch's RNNPool and the next's."""
    start, size = buffers[scratch]
    return not any(name != scratch and name.endswith((" crop", " tile", " scratch")) and off < start + size
                   and start < off + length for name, (off, length) in buffers.items())


def prepare_rnnpools(model: nn.Module, convert_activations: bool) -> None:
    """Check every RNNPool; with ``convert_activations``, swap sigmoid/tanh for quantSigmoid/quantTanh."""
    for name, m in model.named_modules():
        if not isinstance(m, RNNPool2d):
            continue
        for cell in (m.rnn1, m.rnn2):
            if isinstance(cell, FastGRNNCell) and not cell.piecewise_linear and convert_activations:
                cell.piecewise_linear = True
                cell._sigmoid, cell._tanh = quant_sigmoid, quant_tanh
        check_rnnpool(m, name)


def convert_rnnpool(c: Conversion, node: fx.Node, m: RNNPool2d) -> None:
    src, qin = c.input_of(node)
    qout = c.qp[node.name]
    pool = IntRNNPool.from_float(m, qin, qout, str(node.target))
    c.emit(RNNPoolOp(node.name, [src], [node.name], str(node.target), pool=pool), [node.name], [qout])


__all__ = ["RNNPoolOp", "convert_rnnpool", "prepare_rnnpools"]
