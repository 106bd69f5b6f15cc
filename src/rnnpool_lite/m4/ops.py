"""The integer operations a quantized model is made of (one list, in execution order).

Each op names its input and output tensors, runs on int8 arrays (``run``), knows its output
shapes, MACs and flash bytes (for the report), and - when it is a sliding window - its
``window`` ``(kh, kw, sh, sw, pad_top, pad_left)`` so the patch schedule can run it on a crop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from rnnpool_lite.m4 import kernels
from rnnpool_lite.m4.fixed_point import INT8_MAX, INT8_MIN
from rnnpool_lite.m4.rnnpool_int import IntRNNPool

Shape = tuple[int, ...]
Window = tuple[int, int, int, int, int, int]


def _conv_out(size: int, k: int, s: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - k) // s + 1


@dataclass
class Op:
    """Base: ``name``, input and output tensor names, and the module it came from."""

    name: str
    inputs: list[str]
    outputs: list[str]
    module: str = ""
    kind: ClassVar[str] = "op"

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def out_shapes(self, *shapes: Shape) -> list[Shape]:  # pragma: no cover - abstract
        raise NotImplementedError

    def macs(self, *shapes: Shape) -> int:
        return 0

    @property
    def flash_bytes(self) -> int:
        return 0

    @property
    def window(self) -> Window | None:
        """Sliding-window geometry, or ``None`` if the op cannot run on a spatial crop."""
        return None


@dataclass(kw_only=True)
class ConvOp(Op):
    """Conv2d with folded BatchNorm and fused ReLU/ReLU6 clamp."""

    w: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    in_zp: int = 0
    out_zp: int = 0
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX
    kind: ClassVar[str] = "conv"

    @property
    def subkind(self) -> str:
        o, cg, kh, kw = self.w.shape
        if cg == 1 and self.groups > 1:
            return "depthwise"
        return "pointwise" if kh == kw == 1 else "conv"

    def run(self, x: np.ndarray, padding: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray]:
        return (kernels.conv2d(x, self.w, self.bias, in_zp=self.in_zp, out_zp=self.out_zp, mult=self.mult,
                               shift=self.shift, stride=self.stride,
                               padding=self.padding if padding is None else padding, groups=self.groups,
                               act_min=self.act_min, act_max=self.act_max),)

    def out_shapes(self, shape: Shape) -> list[Shape]:
        n, _, h, w = shape
        o, _, kh, kw = self.w.shape
        t, b, l, r = self.padding
        return [(n, o, _conv_out(h, kh, self.stride[0], t, b), _conv_out(w, kw, self.stride[1], l, r))]

    def macs(self, shape: Shape) -> int:
        (n, o, ho, wo), = self.out_shapes(shape)
        return n * o * ho * wo * int(np.prod(self.w.shape[1:]))

    @property
    def flash_bytes(self) -> int:
        o = self.w.shape[0]
        return self.w.size + o * 4 * 3  # int8 weights; int32 bias, multiplier, shift per channel

    @property
    def window(self) -> Window:
        _, _, kh, kw = self.w.shape
        return kh, kw, self.stride[0], self.stride[1], self.padding[0], self.padding[2]


@dataclass(kw_only=True)
class HeadOp(Op):
    """An S3FD detection head: loc and conf 3x3 convs, max-out background, ``(N, P, k)`` outputs."""

    loc: ConvOp
    conf: ConvOp
    maxout: int = 1
    kind: ClassVar[str] = "head"

    def maps(self, x: np.ndarray, padding: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.loc.run(x, padding)[0], self.conf.run(x, padding)[0]

    def post(self, loc: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Max-out background (exact in int8: one scale) and ``(N, C, H, W) -> (N, H W, C)``."""
        if self.maxout > 1:
            conf = np.concatenate([conf[:, : self.maxout].max(axis=1, keepdims=True), conf[:, self.maxout:]], 1)
        flat = lambda m: np.ascontiguousarray(m.transpose(0, 2, 3, 1).reshape(m.shape[0], -1, m.shape[1]))  # noqa: E731
        return flat(loc), flat(conf)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.post(*self.maps(x))

    def map_shapes(self, shape: Shape) -> list[Shape]:
        return self.loc.out_shapes(shape) + self.conf.out_shapes(shape)

    def out_shapes(self, shape: Shape) -> list[Shape]:
        (n, _, h, w), _ = self.map_shapes(shape)
        classes = self.conf.w.shape[0] - self.maxout + 1
        return [(n, h * w, 4), (n, h * w, classes)]

    def macs(self, shape: Shape) -> int:
        return self.loc.macs(shape) + self.conf.macs(shape)

    @property
    def flash_bytes(self) -> int:
        return self.loc.flash_bytes + self.conf.flash_bytes

    @property
    def window(self) -> Window:
        return self.loc.window


@dataclass(kw_only=True)
class RNNPoolOp(Op):
    """The integer RNNPool (:class:`~rnnpool_lite.m4.rnnpool_int.IntRNNPool`)."""

    pool: IntRNNPool
    kind: ClassVar[str] = "rnnpool"

    def run(self, x: np.ndarray, padded: bool = True) -> tuple[np.ndarray]:
        return (self.pool(x, padded),)

    def out_shapes(self, shape: Shape) -> list[Shape]:
        n, _, h, w = shape
        return [(n, self.pool.out_channels, *self.pool.output_size(h, w))]

    def macs(self, shape: Shape) -> int:
        (n, _, ho, wo), = self.out_shapes(shape)
        return n * self.pool.macs(ho, wo, shape[1])

    def scratch_bytes(self, in_channels: int) -> int:
        """Per patch: RNN1's kh + kw int16 summaries, RNN2's state, Q15 pre-activations."""
        (kh, kw), h1, h2 = self.pool.kernel, self.pool.rnn1.w.shape[0], self.pool.rnn2.w.shape[0]
        return 2 * ((kh + kw) * h1 + 4 * h2 + 2 * 2 * max(h1, h2))

    @property
    def flash_bytes(self) -> int:
        return self.pool.nbytes

    @property
    def window(self) -> Window:
        (kh, kw), (sh, sw), (ph, pw) = self.pool.kernel, self.pool.stride, self.pool.padding
        return kh, kw, sh, sw, ph, pw


@dataclass
class AddOp(Op):
    """Residual add (TFLite's rescaled int8 add)."""

    params: dict = field(default_factory=dict)
    kind: ClassVar[str] = "add"

    def run(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
        return (kernels.add(a, b, **self.params),)

    def out_shapes(self, a: Shape, b: Shape) -> list[Shape]:
        return [a]

    @property
    def flash_bytes(self) -> int:
        return 3 * 8


@dataclass
class ClampOp(Op):
    """A ReLU / ReLU6 that could not be fused: a clamp in the input's quantization."""

    lo: int = INT8_MIN
    hi: int = INT8_MAX
    kind: ClassVar[str] = "clamp"

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        return (kernels.clamp(x, self.lo, self.hi),)

    def out_shapes(self, shape: Shape) -> list[Shape]:
        return [shape]

    @property
    def window(self) -> Window:
        return 1, 1, 1, 1, 0, 0


@dataclass
class AvgPoolOp(Op):
    """Global average pool (``AdaptiveAvgPool2d(1)``), same quantization in and out."""

    zp: int = 0
    kind: ClassVar[str] = "avgpool"

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        return (kernels.avg_pool_global(x, zp=self.zp),)

    def out_shapes(self, shape: Shape) -> list[Shape]:
        return [(shape[0], shape[1], 1, 1)]

    def macs(self, shape: Shape) -> int:
        return int(np.prod(shape))


@dataclass
class FlattenOp(Op):
    """``flatten(start_dim)``: a view, no arithmetic."""

    start_dim: int = 1
    kind: ClassVar[str] = "flatten"

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        return (x.reshape(*x.shape[: self.start_dim], -1),)

    def out_shapes(self, shape: Shape) -> list[Shape]:
        return [(*shape[: self.start_dim], int(np.prod(shape[self.start_dim:])))]


@dataclass(kw_only=True)
class LinearOp(Op):
    """Fully connected layer, per-output-channel int8 weights."""

    w: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    in_zp: int = 0
    out_zp: int = 0
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX
    kind: ClassVar[str] = "linear"

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        if x.ndim != 2:
            raise ValueError(f"{self.name}: linear expects (N, K), got {x.shape}")
        return (kernels.linear(x, self.w, self.bias, in_zp=self.in_zp, out_zp=self.out_zp, mult=self.mult,
                               shift=self.shift, act_min=self.act_min, act_max=self.act_max),)

    def out_shapes(self, shape: Shape) -> list[Shape]:
        return [(shape[0], self.w.shape[0])]

    def macs(self, shape: Shape) -> int:
        return shape[0] * self.w.size

    @property
    def flash_bytes(self) -> int:
        return self.w.size + self.w.shape[0] * 4 * 3


@dataclass
class ConcatOp(Op):
    """``torch.cat`` of int8 tensors, each requantized to the output's quantization."""

    dim: int = 1
    requant: list[dict] = field(default_factory=list)  # per input: in_zp, mult, shift, out_zp
    kind: ClassVar[str] = "concat"

    def run(self, *xs: np.ndarray) -> tuple[np.ndarray]:
        return (np.concatenate([kernels.requantize(x, **p) for x, p in zip(xs, self.requant)], self.dim),)

    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        out = list(shapes[0])
        out[self.dim] = sum(s[self.dim] for s in shapes)
        return [tuple(out)]

    @property
    def flash_bytes(self) -> int:
        return 12 * len(self.requant)


__all__ = ["AddOp", "AvgPoolOp", "ClampOp", "ConcatOp", "ConvOp", "FlattenOp", "HeadOp", "LinearOp",
           "Op", "RNNPoolOp", "Shape", "Window"]
