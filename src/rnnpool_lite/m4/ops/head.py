"""An S3FD detection head: loc and conf 3x3 convs on one map, max-out background, ``(N, P, k)`` outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from torch import Tensor, fx

from rnnpool_lite.m4.c_source import CContext, window
from rnnpool_lite.m4.conversion import Conversion, UnsupportedError
from rnnpool_lite.m4.cost import MACS_PER_CYCLE, OP_OVERHEAD_CYCLES, REQUANT_CYCLES
from rnnpool_lite.m4.ops.base import Op, Shape, Window
from rnnpool_lite.m4.ops.conv import ConvOp, conv_op, fold_bn
from rnnpool_lite.roles import DetectionHeadRole

if TYPE_CHECKING:
    from rnnpool_lite.m4.c_stem import StemStep

MAX_C_CHANNELS = 32  # rnn_head_conv keeps one position's channels on the stack


def _flat(m: np.ndarray) -> np.ndarray:
    """``(N, C, H, W) -> (N, H W, C)``."""
    return np.ascontiguousarray(m.transpose(0, 2, 3, 1).reshape(m.shape[0], -1, m.shape[1]))


@dataclass(kw_only=True)
class HeadOp(Op):
    """The head's two convs share one window, so the patch schedule tiles them together."""

    loc: ConvOp
    conf: ConvOp
    maxout: int = 1
    kind: ClassVar[str] = "head"
    internal_maps: ClassVar[bool] = True

    def maps(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.loc.conv(x), self.conf.conv(x)

    def finish(self, *maps: np.ndarray) -> tuple[np.ndarray, ...]:
        """Max-out background (exact in int8: one scale) and ``(N, C, H, W) -> (N, H W, C)``."""
        loc, conf = maps
        if self.maxout > 1:
            conf = np.concatenate([conf[:, : self.maxout].max(axis=1, keepdims=True), conf[:, self.maxout:]], 1)
        return _flat(loc), _flat(conf)

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        (x,) = xs
        return self.finish(*self.maps(x))

    def run_window(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.loc.conv(x, (0, 0, 0, 0)), self.conf.conv(x, (0, 0, 0, 0))

    def map_shapes(self, shape: Shape) -> list[Shape]:
        return self.loc.out_shapes(shape) + self.conf.out_shapes(shape)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        (n, _, h, w), _ = self.map_shapes(*shapes)
        classes = self.conf.w.shape[0] - self.maxout + 1
        return [(n, h * w, 4), (n, h * w, classes)]

    def macs(self, *shapes: Shape) -> int:
        return self.loc.macs(*shapes) + self.conf.macs(*shapes)

    @property
    def flash_bytes(self) -> int:
        return self.loc.flash_bytes + self.conf.flash_bytes

    @property
    def window(self) -> Window:
        return self.loc.window

    @property
    def in_channels(self) -> int:
        return self.loc.in_channels

    def cycles(self, in_shape: Shape, macs: float) -> float:
        total = self.macs(in_shape) or 1
        (n, c1, h, w), (_, c2, _, _) = self.map_shapes(in_shape)
        return OP_OVERHEAD_CYCLES + macs / MACS_PER_CYCLE + REQUANT_CYCLES * (c1 + c2) * h * w * macs / total

    # --- C -----------------------------------------------------------------------------------
    def check_c(self, shapes: dict[str, Shape], results: set[str], outputs: set[str]) -> None:
        if self.conf.w.shape[0] > MAX_C_CHANNELS:
            raise UnsupportedError(f"{self.where}: more than {MAX_C_CHANNELS} head channels")
        if not set(self.outputs) <= results:
            raise UnsupportedError(f"{self.where}: a detection head's outputs must be model outputs")

    def _convs(self) -> tuple[tuple[ConvOp, str, int], ...]:
        return (self.loc, self.outputs[0], 1), (self.conf, self.outputs[1], self.maxout)

    def _map_hw(self, ctx: CContext) -> tuple[int, int]:
        (_, _, h, w), _ = self.map_shapes(ctx.shapes[self.inputs[0]])
        return h, w

    def emit_c(self, ctx: CContext) -> list[str]:
        hh, hw = self._map_hw(ctx)
        body = [f"    const rnn_view in = {ctx.view(self.inputs[0])};"]
        for conv, t, maxout in self._convs():
            k = ctx.shapes[t][2]
            body += [f"    {{ const rnn_region out = {window(ctx.buf(t), hh, hw, k)};",
                     f"      rnn_head_conv(&{conv.c_params(ctx)}, {maxout}, &in, &out); }}"]
            body += ctx.send(t, ctx.buf(t), str(hh * hw * k))
        return body

    def emit_c_stem(self, step: StemStep) -> list[str]:
        """Each patch computes its tile of both maps and sends it out row by row."""
        ctx = step.ctx
        hh, hw = self._map_hw(ctx)
        lh, lw = step.length
        lines = []
        for conv, t, maxout in self._convs():
            p = conv.c_params(ctx)
            k = ctx.shapes[t][2]
            tile = ctx.buf(f"{t} tile")
            out = window(tile, "rows", "cols", k, row0="y0", col0="x0", map_h=hh, map_w=hw)
            lines += [f"{{ /* {t}: this patch's tile of the {hh} x {hw} head map, sent out row by row */",
                      f"  const int32_t y0 = {step.row0}, x0 = {step.col0};",
                      f"  const int32_t rows = y0 + {lh} <= {hh} ? {lh} : {hh} - y0, "
                      f"cols = x0 + {lw} <= {hw} ? {lw} : {hw} - x0;",
                      "  if (rows > 0 && cols > 0) {",
                      f"    const rnn_region out = {out};",
                      f"    rnn_head_conv(&{p}, {maxout}, &in, &out);",
                      "    for (int32_t r = 0; r < rows; r++) {"]
            lines += ctx.send(t, f"{tile} + r * cols * {k}", f"cols * {k}", f"((y0 + r) * {hw} + x0) * {k}", "      ")
            lines += ["    }", "  }", "}"]
        return lines


def head_maps(m: DetectionHeadRole, x: Tensor) -> dict[str, Tensor]:
    """The head's two conv outputs, calibrated separately (the head is one node of the graph)."""
    return {"loc": m.loc(x), "conf": m.conf(x)}


def convert_head(c: Conversion, node: fx.Node, m: DetectionHeadRole) -> None:
    def geometry(conv: object) -> tuple[object, ...]:
        return tuple(getattr(conv, a) for a in ("kernel_size", "stride", "padding"))

    if geometry(m.loc) != geometry(m.conf):
        raise UnsupportedError(f"DetectionHead {node.target!r}: loc and conf convs must share kernel, stride "
                               "and padding (they are tiled together)")
    src, qin = c.input_of(node)
    outs = [f"{node.name}.{part}" for part in ("loc", "conf")]
    convs = [conv_op(out, f"{node.target}.{out.split('.')[-1]}", conv, *fold_bn(conv, None), qin, c.qp[out],
                     (None, None), [src], [out]) for conv, out in zip((m.loc, m.conf), outs)]
    op = HeadOp(node.name, [src], outs, str(node.target), loc=convs[0], conf=convs[1], maxout=m.maxout_background)
    c.emit(op, [node.name], [c.qp[out] for out in outs])


__all__ = ["HeadOp", "MAX_C_CHANNELS", "convert_head", "head_maps"]
