"""Conv2d with folded BatchNorm and a fused ReLU / ReLU6 clamp (regular, depthwise, pointwise)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from torch import fx, nn

from rnnpool_lite.m4 import kernels
from rnnpool_lite.m4.c_source import CContext, ident, window
from rnnpool_lite.m4.conversion import Conversion, UnsupportedError
from rnnpool_lite.m4.cost import DEPTHWISE_MACS_PER_CYCLE, MACS_PER_CYCLE, OP_OVERHEAD_CYCLES, REQUANT_CYCLES
from rnnpool_lite.m4.fixed_point import (
    INT8_MAX,
    INT8_MIN,
    QParams,
    quantize_bias,
    quantize_multiplier,
    quantize_weights,
)
from rnnpool_lite.m4.ops.base import Op, Shape, Window, conv_out

if TYPE_CHECKING:
    from rnnpool_lite.m4.c_stem import StemStep

ConvKind = Literal["conv", "depthwise", "pointwise"]
Padding = tuple[int, int, int, int]


@dataclass(kw_only=True)
class ConvOp(Op):
    """Conv2d with folded BatchNorm and fused ReLU/ReLU6 clamp."""

    w: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: Padding = (0, 0, 0, 0)
    groups: int = 1
    in_zp: int = 0
    out_zp: int = 0
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX
    kind: ClassVar[str] = "conv"

    @property
    def subkind(self) -> ConvKind:
        o, cg, kh, kw = self.w.shape
        if cg == 1 and self.groups > 1:
            return "depthwise"
        return "pointwise" if kh == kw == 1 else "conv"

    def conv(self, x: np.ndarray, padding: Padding | None = None) -> np.ndarray:
        """The convolution of ``x`` with this op's padding, or with ``padding``."""
        return kernels.conv2d(x, self.w, self.bias, in_zp=self.in_zp, out_zp=self.out_zp, mult=self.mult,
                              shift=self.shift, stride=self.stride,
                              padding=self.padding if padding is None else padding, groups=self.groups,
                              act_min=self.act_min, act_max=self.act_max)

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        (x,) = xs
        return (self.conv(x),)

    def run_window(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return (self.conv(x, (0, 0, 0, 0)),)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        ((n, _, h, w),) = shapes
        o, _, kh, kw = self.w.shape
        t, b, left, r = self.padding
        return [(n, o, conv_out(h, kh, self.stride[0], t, b), conv_out(w, kw, self.stride[1], left, r))]

    def macs(self, *shapes: Shape) -> int:
        ((n, o, ho, wo),) = self.out_shapes(*shapes)
        return n * o * ho * wo * int(np.prod(self.w.shape[1:]))

    @property
    def flash_bytes(self) -> int:
        o = self.w.shape[0]
        return self.w.size + o * 4 * 3  # int8 weights; int32 bias, multiplier, shift per channel

    @property
    def window(self) -> Window:
        _, _, kh, kw = self.w.shape
        return kh, kw, self.stride[0], self.stride[1], self.padding[0], self.padding[2]

    @property
    def in_channels(self) -> int:
        return int(self.w.shape[1] * self.groups)

    def cycles(self, in_shape: Shape, macs: float) -> float:
        """MACs at the SMLAD rate (half for depthwise) plus a requantization per output computed;
        the outputs computed scale with the MACs (the patch stem recomputes overlaps)."""
        ((n, o, h, w),) = self.out_shapes(in_shape)
        outputs = n * o * h * w * macs / max(self.macs(in_shape), 1)
        rate = DEPTHWISE_MACS_PER_CYCLE if self.subkind == "depthwise" else MACS_PER_CYCLE
        return OP_OVERHEAD_CYCLES + (macs / rate + outputs * REQUANT_CYCLES)

    # --- C -----------------------------------------------------------------------------------
    def c_params(self, ctx: CContext) -> str:
        """A ``static const rnn_conv_params`` (weights reordered for HWC maps); returns its name."""
        o, _, kh, kw = self.w.shape
        sub = self.subkind
        if self.groups > 1 and sub != "depthwise":
            raise UnsupportedError(f"layer {self.module or self.name!r}: grouped convolution (groups={self.groups}) "
                                   "has no C kernel (regular, depthwise and pointwise convs are exported)")
        w = self.w[:, 0].transpose(1, 2, 0) if sub == "depthwise" else self.w.transpose(0, 2, 3, 1)
        p = ident(self.name)
        desc = (f"{self.module or self.name}: {sub} conv {kh}x{kw}, stride {self.stride[0]}, "
                f"{self.groups and self.w.shape[1] * self.groups} -> {o} channels")
        arrays = dict(w=ctx.writer.array("int8_t", f"{p}_w", w, desc),
                      bias=ctx.writer.array("int32_t", f"{p}_bias", self.bias),
                      mult=ctx.writer.array("int32_t", f"{p}_mult", self.mult),
                      shift=ctx.writer.array("int32_t", f"{p}_shift", self.shift))
        return ctx.writer.struct("rnn_conv_params", f"{p}_p", dict(
            **arrays, out_c=o, kh=kh, kw=kw, sh=self.stride[0], sw=self.stride[1], pad_top=self.padding[0],
            pad_left=self.padding[2], depthwise=int(sub == "depthwise"), in_zp=self.in_zp, out_zp=self.out_zp,
            act_min=self.act_min, act_max=self.act_max))

    def emit_c(self, ctx: CContext) -> list[str]:
        out, src = self.outputs[0], self.inputs[0]
        oh, ow, oc = ctx.hwc(out)
        p = self.c_params(ctx)
        if self.subkind == "pointwise" and self.stride == (1, 1) and not any(self.padding):
            ih, iw, ic = ctx.hwc(src)
            return [f"    rnn_pointwise(&{p}, {ctx.whole(src)}, {ic}, {ih * iw}, {ctx.buf(out)});"]
        return [f"    const rnn_view in = {ctx.view(src)};",
                f"    const rnn_region out = {window(ctx.buf(out), oh, ow, oc, zp=ctx.zp[out])};",
                f"    rnn_conv(&{p}, &in, &out);"]

    def emit_c_stem(self, step: StemStep) -> list[str]:
        p = self.c_params(step.ctx)
        return step.map_output(self, lambda out: [f"rnn_conv(&{p}, &in, &{out});"])


# --- conversion from PyTorch -------------------------------------------------------------------
Activation = tuple[float | None, float | None]
ACTIVATIONS: dict[type[nn.Module], Activation] = {nn.ReLU: (0.0, None), nn.ReLU6: (0.0, 6.0)}


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    """The conv's weights and bias with ``bn`` folded in (float64)."""
    w = conv.weight.detach().double().numpy()
    b = np.zeros(w.shape[0]) if conv.bias is None else conv.bias.detach().double().numpy()
    if bn is None:
        return w, b
    assert bn.running_mean is not None and bn.running_var is not None, "eval-mode BatchNorm keeps running stats"
    gamma = bn.weight.detach().double().numpy() if bn.affine else np.ones(w.shape[0])
    beta = bn.bias.detach().double().numpy() if bn.affine else np.zeros(w.shape[0])
    scale = gamma / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
    return w * scale[:, None, None, None], (b - bn.running_mean.detach().double().numpy()) * scale + beta


def conv_op(name: str, module: str, conv: nn.Conv2d, w: np.ndarray, b: np.ndarray, qin: QParams,
            qout: QParams, act: Activation, inputs: list[str], outputs: list[str]) -> ConvOp:
    """The int8 op of a float conv with weights ``w`` and bias ``b`` (BN already folded)."""
    if conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise UnsupportedError(f"Conv2d {module!r}: only dilation 1 and numeric zero padding are supported")
    wq, sw = quantize_weights(w)
    mult, shift = quantize_multiplier(qin.scale * sw / qout.scale)
    lo, hi = qout.clamp(*act)
    ph, pw = conv.padding
    sh, sv = conv.stride
    return ConvOp(name, inputs, outputs, module, w=wq, bias=quantize_bias(b, qin.scale * sw), mult=mult,
                  shift=shift, stride=(sh, sv), padding=(ph, ph, pw, pw), groups=conv.groups,
                  in_zp=qin.zero_point, out_zp=qout.zero_point, act_min=lo, act_max=hi)


def convert_conv(c: Conversion, node: fx.Node, m: nn.Conv2d) -> None:
    """``Conv2d -> BatchNorm2d -> ReLU/ReLU6`` (each following one the sole user) as one op."""
    src, qin = c.input_of(node)
    chain, bn = [node], None
    act: Activation = (None, None)
    nxt = c.sole_user(node, (nn.BatchNorm2d,))
    if nxt is not None:
        found = c.module(nxt)
        assert isinstance(found, nn.BatchNorm2d)
        bn = found
        chain.append(nxt)
    nxt = c.sole_user(chain[-1], tuple(ACTIVATIONS))
    if nxt is not None:
        act = ACTIVATIONS[type(c.module(nxt))]
        chain.append(nxt)
    c.skip.update(n.name for n in chain[1:])
    last = chain[-1].name
    w, b = fold_bn(m, bn)
    op = conv_op(last, str(node.target), m, w, b, qin, c.qp[last], act, [src], [last])
    c.emit(op, [n.name for n in chain], [c.qp[last]])


__all__ = ["ACTIVATIONS", "ConvKind", "ConvOp", "conv_op", "convert_conv", "fold_bn"]
