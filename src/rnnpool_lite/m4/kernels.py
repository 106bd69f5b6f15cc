"""Integer-only int8 kernels on ``(N, C, H, W)`` arrays (TFLite Micro reference / CMSIS-NN math).

Every kernel takes integer arrays (checked: floats raise ``TypeError``), accumulates in int32
and requantizes with :func:`~rnnpool_lite.m4.fixed_point.multiply_by_quantized_multiplier`;
parameters (multipliers, shifts, zero points, clamps) are integers prepared at conversion
time. The numpy code is vectorized (im2col + integer matmul, shifted multiply-adds for
depthwise), but each output value is the same integer expression a per-pixel C loop computes.

* ``conv2d``: ``acc = bias + sum w * (x - zp_in)`` over the window, with explicit 4-sided
  padding filled with ``zp_in`` (a real zero), so the same kernel runs on a cropped region of
  a map (the patch schedule passes zero padding and a crop). ``groups`` covers regular,
  depthwise and pointwise convolutions. Output: ``clamp(requant(acc) + zp_out, act_min, act_max)``
  where the clamp also implements a fused ReLU / ReLU6.
* ``add``: TFLite's rescaled add: both inputs minus their zero points, shifted left by 20,
  rescaled to ``2 max(s_a, s_b)``, summed, rescaled to the output.
* ``avg_pool_global``: TFLite AveragePool (input and output share their quantization):
  ``sum(x - zp) / count`` rounded half away from zero, plus ``zp``.
* ``requantize``: int8 tensor from one scale to another (concatenation of differently
  quantized outputs).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rnnpool_lite.m4.fixed_point import INT8_MAX, INT8_MIN, multiply_by_quantized_multiplier, require_int, saturate

Padding = tuple[int, int, int, int]  # top, bottom, left, right


def pad(x: np.ndarray, padding: Padding, value: int) -> np.ndarray:
    """Pad the two spatial axes of ``(N, C, H, W)`` with ``value`` (the zero point)."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def requantize_acc(acc: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int, out_zp: int,
                   act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """int32 accumulators to int8: ``clamp(MBQM(acc, mult, shift) + out_zp, act_min, act_max)``."""
    return saturate(multiply_by_quantized_multiplier(acc, mult, shift) + out_zp, act_min, act_max, np.int8)


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray, *, in_zp: int, out_zp: int,
           mult: np.ndarray, shift: np.ndarray, stride: tuple[int, int] = (1, 1),
           padding: Padding = (0, 0, 0, 0), groups: int = 1, act_min: int = INT8_MIN,
           act_max: int = INT8_MAX) -> np.ndarray:
    """int8 convolution ``(N, C, H, W) -> (N, O, Ho, Wo)``; ``w`` is ``(O, C / groups, kh, kw)``."""
    require_int("conv2d", x, w, bias, np.asarray(mult), np.asarray(shift))
    acc = conv2d_acc(x, w, in_zp=in_zp, stride=stride, padding=padding, groups=groups)
    acc += bias.astype(np.int32)[None, :, None, None]
    return requantize_acc(acc, mult[None, :, None, None], shift[None, :, None, None], out_zp, act_min, act_max)


def conv2d_acc(x: np.ndarray, w: np.ndarray, *, in_zp: int, stride: tuple[int, int] = (1, 1),
               padding: Padding = (0, 0, 0, 0), groups: int = 1) -> np.ndarray:
    """The int32 accumulators ``sum w * (x - zp_in)`` of :func:`conv2d` (no bias)."""
    require_int("conv2d_acc", x, w)
    n, c, _, _ = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    if c != cg * groups or o % groups:
        raise ValueError(f"conv2d: weight {w.shape} does not fit input {x.shape} with groups={groups}")
    xs = pad(x, padding, in_zp).astype(np.int32) - np.int32(in_zp)
    hp, wp = xs.shape[2:]
    if hp < kh or wp < kw:
        raise ValueError(f"conv2d: padded input {hp}x{wp} is smaller than the {kh}x{kw} kernel")
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    w32 = w.astype(np.int32)
    if groups == 1:
        if kh == kw == 1:
            cols = xs[:, :, ::sh, ::sw][:, :, :ho, :wo].transpose(0, 2, 3, 1).reshape(-1, c)
        else:
            win = sliding_window_view(xs, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
            cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)
        acc = cols @ w32.reshape(o, -1).T
        return np.ascontiguousarray(acc.reshape(n, ho, wo, o).transpose(0, 3, 1, 2))
    if cg == 1:  # depthwise (channel multiplier o // c): kh * kw shifted multiply-adds
        m = o // c
        wd = w32.reshape(c, m, kh, kw)
        acc = np.zeros((n, c, m, ho, wo), dtype=np.int32)
        for i in range(kh):
            for j in range(kw):
                tap = xs[:, :, None, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
                acc += tap * wd[None, :, :, i, j, None, None]
        return acc.reshape(n, o, ho, wo)
    win = sliding_window_view(xs, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    xg = win.reshape(n, groups, cg, ho, wo, kh, kw)
    wg = w32.reshape(groups, o // groups, cg, kh, kw)
    return np.einsum("ngchwij,gocij->ngohw", xg, wg).reshape(n, o, ho, wo).astype(np.int32)


def linear(x: np.ndarray, w: np.ndarray, bias: np.ndarray, *, in_zp: int, out_zp: int,
           mult: np.ndarray, shift: np.ndarray, act_min: int = INT8_MIN,
           act_max: int = INT8_MAX) -> np.ndarray:
    """int8 fully connected ``(N, K) -> (N, O)``, per-output-channel requantization."""
    require_int("linear", x, w, bias, np.asarray(mult), np.asarray(shift))
    acc = (x.astype(np.int32) - np.int32(in_zp)) @ w.astype(np.int32).T + bias.astype(np.int32)
    return requantize_acc(acc, mult[None, :], shift[None, :], out_zp, act_min, act_max)


ADD_LEFT_SHIFT = 20


def add(a: np.ndarray, b: np.ndarray, *, a_zp: int, b_zp: int, a_mult: int, a_shift: int,
        b_mult: int, b_shift: int, out_mult: int, out_shift: int, out_zp: int,
        act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """TFLite int8 ``Add``: inputs rescaled to ``2 max(s_a, s_b)`` with a left shift of 20."""
    require_int("add", a, b)
    if a.shape != b.shape:
        raise ValueError(f"add: shapes differ, {a.shape} vs {b.shape}")
    sa = multiply_by_quantized_multiplier((a.astype(np.int64) - a_zp) << ADD_LEFT_SHIFT, a_mult, a_shift)
    sb = multiply_by_quantized_multiplier((b.astype(np.int64) - b_zp) << ADD_LEFT_SHIFT, b_mult, b_shift)
    return saturate(multiply_by_quantized_multiplier(sa + sb, out_mult, out_shift) + out_zp,
                    act_min, act_max, np.int8)


def avg_pool_global(x: np.ndarray, *, zp: int) -> np.ndarray:
    """TFLite AveragePool over the whole map (same quantization in and out): ``(N, C, 1, 1)``."""
    require_int("avg_pool_global", x)
    count = x.shape[2] * x.shape[3]
    acc = (x.astype(np.int32) - np.int32(zp)).sum(axis=(2, 3), keepdims=True, dtype=np.int32)
    # integer division rounded half away from zero, as TFLite's reference kernel does
    q = np.where(acc >= 0, (acc + count // 2) // count, -((-acc + count // 2) // count))
    return saturate(q + zp, INT8_MIN, INT8_MAX, np.int8)


def requantize(x: np.ndarray, *, in_zp: int, mult: int, shift: int, out_zp: int) -> np.ndarray:
    """int8 from one ``(scale, zp)`` to another: ``MBQM(x - zp_in, s_in / s_out) + zp_out``."""
    require_int("requantize", x)
    return requantize_acc(x.astype(np.int32) - np.int32(in_zp), mult, shift, out_zp)


def clamp(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """A standalone ReLU / ReLU6 in the input's quantization: an integer clamp."""
    require_int("clamp", x)
    return np.clip(x, lo, hi).astype(np.int8)


__all__ = ["ADD_LEFT_SHIFT", "Padding", "add", "avg_pool_global", "clamp", "conv2d", "conv2d_acc",
           "linear", "pad", "requantize", "requantize_acc"]
