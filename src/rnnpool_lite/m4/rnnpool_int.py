"""RNNPool with FastGRNN cells in integers, vectorized over all patches (and sweeps) at once.

Number formats (EdgeML's fixed-point RNNPool for the M4 uses the same split):

* Weights ``W``, ``U``: int8, symmetric, one scale per row (per hidden unit).
* Pre-activations ``W x + U h + b``: Q15 (``real = q / 2^15``), accumulated in int32 and
  saturated to int16. Saturation is exact here: quantSigmoid ``clamp((x + 1) / 2, 0, 1)`` and
  quantTanh ``clamp(x, -1, 1)`` are constant beyond +-1, so any pre-activation outside the
  int16 range gives the same gate value.
* Gates: ``z = (pre_g + 2^15 + 1) >> 1`` (quantSigmoid, Q15 in [0, 32767]) and
  ``c = pre_u`` (quantTanh, Q15 in [-32768, 32767]); 1.0 is represented as 32767/32768.
* Hidden state: int16 in Q(15 - ib), ``ib`` integer bits chosen from the bound
  ``|h_T| <= zeta + T nu`` (with ``|c| <= 1``, ``0 <= z <= 1``), so it never saturates;
  ``ib = 0`` (Q15) for the paper's fixed ``zeta = 1, nu = 0``.
* Update ``h' = (zeta (1 - z) + nu) c + z h``: ``zeta``, ``nu`` in Q15, products in int32,
  rounded right shifts (``(v + 2^(s-1)) >> s``) back to the state format, saturated to int16.
* Input projections: RNN1 reads int8 activations (minus their zero point), RNN2 reads RNN1's
  int16 summaries; each int32 accumulator is requantized to Q15 with a per-row
  ``multiply_by_quantized_multiplier``. The output (RNN2's states) is requantized to the int8
  grid calibrated for the layer's output.

Padding is the input zero point (a real 0). Every patch is computed from its own pixels (as
on the device, patch by patch); the numpy code stacks all patches, rows and columns into one
batch so the only Python loop is over the (at most ``kernel_size``) time steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rnnpool_lite.m4.fixed_point import (
    INT16_MAX,
    INT16_MIN,
    QParams,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    quantize_weights,
    require_int,
    rounding_right_shift,
    saturate,
)
from rnnpool_lite.m4.kernels import pad, requantize_acc
from rnnpool_lite.op.cells import FastGRNNCell
from rnnpool_lite.op.layer import RNNPool2d

Q15 = 15


@dataclass
class IntFastGRNN:
    """One FastGRNN cell in integers (see the module docstring for the formats)."""

    w: np.ndarray  # int8 (hidden, input)
    w_mult: np.ndarray  # int32 per row: input accumulator -> Q15
    w_shift: np.ndarray
    u: np.ndarray  # int8 (hidden, hidden)
    u_mult: np.ndarray  # int32 per row: U h accumulator -> Q15
    u_shift: np.ndarray
    bias_gate: np.ndarray  # int32 Q15
    bias_update: np.ndarray  # int32 Q15
    zeta: int  # Q15
    nu: int  # Q15
    state_bits: int  # ib: the state is Q(15 - ib)

    @classmethod
    def from_float(cls, cell: FastGRNNCell, input_scale: float, steps: int) -> IntFastGRNN:
        """Quantize ``cell`` whose input has real value ``input_scale * (q - zp)``."""
        zeta, nu = float(cell.zeta.detach()), float(cell.nu.detach())
        bound = zeta + steps * nu
        state_bits = max(0, math.ceil(math.log2(bound))) if bound > 1 else 0
        w, sw = quantize_weights(cell.W.detach().double().numpy())
        u, su = quantize_weights(cell.U.detach().double().numpy())
        w_mult, w_shift = quantize_multiplier(sw * input_scale * 2.0**Q15)
        u_mult, u_shift = quantize_multiplier(su * 2.0**state_bits)
        q15 = lambda v: np.round(np.asarray(v, dtype=np.float64) * 2**Q15).astype(np.int32)  # noqa: E731
        return cls(w, w_mult, w_shift, u, u_mult, u_shift, q15(cell.bias_gate.detach().double().numpy()),
                   q15(cell.bias_update.detach().double().numpy()), int(q15(zeta)), int(q15(nu)), state_bits)

    @property
    def state_scale(self) -> float:
        """Real value of one unit of the int16 state."""
        return 2.0 ** (self.state_bits - Q15)

    def project(self, x: np.ndarray, zp: int = 0) -> np.ndarray:
        """Input projection of ``(input, B)`` integers to Q15 int32 ``(hidden, B)`` (no bias)."""
        require_int("IntFastGRNN.project", x)
        acc = self.w.astype(np.int32) @ (x.astype(np.int32) - np.int32(zp))
        return multiply_by_quantized_multiplier(acc, self.w_mult[:, None], self.w_shift[:, None]).astype(np.int32)

    def scan(self, xs: np.ndarray) -> np.ndarray:
        """Recurrence over Q15 projections ``(T, hidden, B)`` from a zero state: int16 ``(hidden, B)``."""
        require_int("IntFastGRNN.scan", xs)
        h = np.zeros(xs.shape[1:], dtype=np.int16)
        u32 = self.u.astype(np.int32)
        for t in range(xs.shape[0]):
            pre = xs[t].astype(np.int64)
            if t:
                acc = u32 @ h.astype(np.int32)
                pre = pre + multiply_by_quantized_multiplier(acc, self.u_mult[:, None], self.u_shift[:, None])
            z_pre = saturate(pre + self.bias_gate[:, None], INT16_MIN, INT16_MAX, np.int64)
            c = saturate(pre + self.bias_update[:, None], INT16_MIN, INT16_MAX, np.int64)  # quantTanh
            z = (z_pre + (1 << Q15) + 1) >> 1  # quantSigmoid in Q15, [0, 32767]
            coef = rounding_right_shift(self.zeta * ((1 << Q15) - z), Q15) + self.nu  # Q15
            new = rounding_right_shift(coef * c, Q15 + self.state_bits) + rounding_right_shift(z * h, Q15)
            h = saturate(new, INT16_MIN, INT16_MAX, np.int16)
        return h

    @property
    def nbytes(self) -> int:
        """Flash: int8 matrices, int32 per-row multipliers and shifts, int32 biases, zeta and nu."""
        rows = self.w.shape[0]
        return self.w.size + self.u.size + rows * 4 * 4 + 2 * rows * 4 + 2 * 4


def check_rnnpool(layer: RNNPool2d, name: str) -> None:
    """Refuse what the integer RNNPool cannot run, naming the layer."""
    for cell in (layer.rnn1, layer.rnn2):
        if not isinstance(cell, FastGRNNCell):
            raise TypeError(f"RNNPool2d {name!r} uses a {type(cell).__name__}; the int8 emulator runs "
                            "FastGRNN cells only (GRU / LSTM are not supported)")
        if not cell.piecewise_linear:
            raise ValueError(f"RNNPool2d {name!r} uses sigmoid / tanh; build it with piecewise_linear=True "
                             "(quantSigmoid / quantTanh, exact in fixed point) or pass "
                             "quantize(..., convert_activations=True) to swap them (an approximation)")


@dataclass
class IntRNNPool:
    """``RNNPool2d`` on int8 maps: ``(N, C, H, W) -> (N, 4 h2, Ho, Wo)`` int8."""

    rnn1: IntFastGRNN
    rnn2: IntFastGRNN
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    in_zp: int
    out_mult: int
    out_shift: int
    out_zp: int

    @classmethod
    def from_float(cls, layer: RNNPool2d, qin: QParams, qout: QParams, name: str = "rnnpool") -> IntRNNPool:
        check_rnnpool(layer, name)
        cell1, cell2 = layer.rnn1, layer.rnn2
        assert isinstance(cell1, FastGRNNCell) and isinstance(cell2, FastGRNNCell), "check_rnnpool refuses others"
        steps = max(layer.kernel_size)
        rnn1 = IntFastGRNN.from_float(cell1, qin.scale, steps)
        rnn2 = IntFastGRNN.from_float(cell2, rnn1.state_scale, steps)  # reads RNN1's int16 states
        out_mult, out_shift = quantize_multiplier(rnn2.state_scale / qout.scale)
        return cls(rnn1, rnn2, layer.kernel_size, layer.stride, layer.padding, qin.zero_point,
                   int(out_mult), int(out_shift), qout.zero_point)

    @property
    def out_channels(self) -> int:
        return 4 * self.rnn2.w.shape[0]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1

    def __call__(self, x: np.ndarray, padded: bool = True) -> np.ndarray:
        """Run on ``x``; ``padded=False`` means ``x`` is already a crop with its padding in it."""
        require_int("IntRNNPool", x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        if padded:
            x = pad(x, (ph, ph, pw, pw), self.in_zp)
        n, c, hp, wp = x.shape
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        h1 = self.rnn1.w.shape[0]
        # RNN1 input projection once per pixel (a pixel's projection is the same in every patch)
        p1 = self.rnn1.project(x.transpose(1, 0, 2, 3).reshape(c, -1), self.in_zp).reshape(h1, n, hp, wp)
        win = sliding_window_view(p1, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :ho, :wo]
        # (h1, n, ho, wo, kh, kw): rows advance along kw, columns along kh
        rows = np.moveaxis(win, 5, 0).reshape(kw, h1, -1)  # B = (n, ho, wo, row r)
        cols = np.moveaxis(win, 4, 0).reshape(kh, h1, -1)  # B = (n, ho, wo, col)
        row_sum = self.rnn1.scan(rows).reshape(h1, n * ho * wo, kh)
        col_sum = self.rnn1.scan(cols).reshape(h1, n * ho * wo, kw)
        h2 = self.rnn2.w.shape[0]
        p_rows = self.rnn2.project(row_sum.reshape(h1, -1)).reshape(h2, -1, kh)
        p_cols = self.rnn2.project(col_sum.reshape(h1, -1)).reshape(h2, -1, kw)
        sweeps = [self.rnn2.scan(np.moveaxis(p, 2, 0))
                  for p in (p_rows, p_rows[:, :, ::-1], p_cols, p_cols[:, :, ::-1])]
        states = np.stack(sweeps)  # (4, h2, n * ho * wo)
        out = requantize_acc(states.astype(np.int32), self.out_mult, self.out_shift, self.out_zp)
        return out.reshape(4 * h2, n, ho, wo).transpose(1, 0, 2, 3).copy()

    def macs(self, ho: int, wo: int, in_channels: int) -> int:
        """Per-patch MACs (RNN1 over kh rows and kw columns, RNN2's four sweeps)."""
        (kh, kw) = self.kernel
        h1, h2 = self.rnn1.w.shape[0], self.rnn2.w.shape[0]
        per_patch = (kh * kw * 2) * (h1 * in_channels + h1 * h1) + 2 * (kh + kw) * (h2 * h1 + h2 * h2)
        return per_patch * ho * wo

    @property
    def nbytes(self) -> int:
        return self.rnn1.nbytes + self.rnn2.nbytes + 3 * 4


__all__ = ["IntFastGRNN", "IntRNNPool", "check_rnnpool"]
