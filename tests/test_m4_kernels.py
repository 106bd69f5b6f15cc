"""Integer kernels vs a float64 reference of the same quantized math (within one LSB)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from rnnpool_lite.m4 import kernels
from rnnpool_lite.m4.fixed_point import QParams, quantize_multiplier


def _real(m, s):
    return np.asarray(m, dtype=np.float64) * 2.0 ** (np.asarray(s, dtype=np.float64) - 31)


def _ref_conv(x, w, bias, in_zp, out_zp, m, s, stride, padding, groups, lo=-128, hi=127):
    top, bottom, left, right = padding
    xf = torch.from_numpy(x.astype(np.float64) - in_zp)
    xf = F.pad(xf, (left, right, top, bottom))  # zero after subtracting the zero point: padding with zp
    acc = F.conv2d(xf, torch.from_numpy(w.astype(np.float64)), torch.from_numpy(bias.astype(np.float64)),
                   stride=stride, groups=groups).numpy()
    return np.clip(np.round(acc * _real(m, s)[None, :, None, None]) + out_zp, lo, hi)


@st.composite
def conv_cases(draw):
    kind = draw(st.sampled_from(["regular", "depthwise", "pointwise", "grouped"]))
    c = draw(st.integers(1, 6)) * (2 if kind == "grouped" else 1)
    if kind == "depthwise":
        groups, o, k = c, c * draw(st.integers(1, 2)), draw(st.sampled_from([3, 5]))
    elif kind == "grouped":
        groups, o, k = 2, 2 * draw(st.integers(1, 3)), 3
    else:
        groups, o, k = 1, draw(st.integers(1, 8)), 1 if kind == "pointwise" else draw(st.sampled_from([1, 2, 3]))
    kh, kw = k, k
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, kh - padding[0] - padding[1]), 9))
    w = draw(st.integers(max(1, kw - padding[2] - padding[3]), 9))
    seed = draw(st.integers(0, 2**16))
    return c, o, kh, kw, groups, stride, padding, h, w, seed


@given(conv_cases())
def test_conv2d_within_one_lsb_of_float_reference(case):
    c, o, kh, kw, groups, stride, padding, h, w, seed = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (2, c, h, w)).astype(np.int8)
    wq = rng.integers(-127, 128, (o, c // groups, kh, kw)).astype(np.int8)
    bias = rng.integers(-5000, 5000, o).astype(np.int32)
    m, s = quantize_multiplier(rng.uniform(1e-4, 5e-3, o))
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    got = kernels.conv2d(x, wq, bias, in_zp=in_zp, out_zp=out_zp, mult=m, shift=s, stride=stride,
                         padding=padding, groups=groups)
    ref = _ref_conv(x, wq, bias, in_zp, out_zp, m, s, stride, padding, groups)
    assert got.dtype == np.int8 and got.shape == ref.shape
    assert np.abs(got.astype(np.int64) - ref).max() <= 1


def test_conv2d_on_a_crop_equals_the_whole_map():
    """Explicit per-side padding lets a conv run on a region: the crop's result is a slice of the whole."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 3, 12, 12)).astype(np.int8)
    wq = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    m, s = quantize_multiplier(np.full(4, 2e-3))
    kw = dict(in_zp=5, out_zp=-3, mult=m, shift=s, bias=np.zeros(4, np.int32))
    whole = kernels.conv2d(x, wq, padding=(1, 1, 1, 1), **kw)
    crop = kernels.conv2d(x[:, :, :7, 4:10], wq, padding=(1, 0, 0, 0), **kw)  # top border only
    np.testing.assert_array_equal(crop, whole[:, :, :6, 5:9])


@given(st.integers(0, 2**16), st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.floats(0.01, 2.0))
def test_add_within_one_lsb(seed, sa, sb, so):
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-128, 128, (2, 3, 4, 4)).astype(np.int8) for _ in range(2))
    za, zb, zo = (int(v) for v in rng.integers(-50, 50, 3))
    twice = 2 * max(sa, sb)
    (ma, ea), (mb, eb), (mo, eo) = (quantize_multiplier(v) for v in (sa / twice, sb / twice, twice / (2**20 * so)))
    got = kernels.add(a, b, a_zp=za, b_zp=zb, a_mult=int(ma), a_shift=int(ea), b_mult=int(mb), b_shift=int(eb),
                      out_mult=int(mo), out_shift=int(eo), out_zp=zo)
    ref = np.clip(np.round(((a.astype(float) - za) * sa + (b.astype(float) - zb) * sb) / so) + zo, -128, 127)
    assert np.abs(got.astype(np.int64) - ref).max() <= 1


def test_linear_and_global_average_pool_within_one_lsb():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (5, 20)).astype(np.int8)
    w = rng.integers(-127, 128, (3, 20)).astype(np.int8)
    bias = rng.integers(-100, 100, 3).astype(np.int32)
    m, s = quantize_multiplier(np.array([1e-3, 2e-3, 3e-3]))
    got = kernels.linear(x, w, bias, in_zp=-7, out_zp=4, mult=m, shift=s)
    ref = np.clip(np.round(((x.astype(float) + 7) @ w.T + bias) * _real(m, s)) + 4, -128, 127)
    assert np.abs(got - ref).max() <= 1
    maps = rng.integers(-128, 128, (2, 4, 5, 3)).astype(np.int8)
    pooled = kernels.avg_pool_global(maps, zp=10)
    ref = np.round((maps.astype(float) - 10).mean(axis=(2, 3), keepdims=True)) + 10
    assert np.abs(pooled - ref).max() <= 1


def test_requantize_changes_scale():
    q_in, q_out = QParams(0.1, 3), QParams(0.05, -10)
    x = np.arange(-128, 128, dtype=np.int8)
    m, s = quantize_multiplier(q_in.scale / q_out.scale)
    got = kernels.requantize(x, in_zp=3, mult=int(m), shift=int(s), out_zp=-10)
    ref = np.clip(np.round((x.astype(float) - 3) * 2) - 10, -128, 127)
    assert np.abs(got - ref).max() <= 1


@pytest.mark.parametrize("call", [
    lambda x: kernels.conv2d(x, np.ones((1, 1, 1, 1), np.int8), np.zeros(1, np.int32), in_zp=0, out_zp=0,
                             mult=np.ones(1, np.int32), shift=np.zeros(1, np.int32)),
    lambda x: kernels.avg_pool_global(x, zp=0),
    lambda x: kernels.clamp(x, 0, 10),
])
def test_kernels_refuse_float_inputs(call):
    with pytest.raises(TypeError, match="integer"):
        call(np.zeros((1, 1, 2, 2), dtype=np.float32))


def test_conv2d_rejects_mismatched_groups():
    with pytest.raises(ValueError, match="groups"):
        kernels.conv2d_acc(np.zeros((1, 3, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), in_zp=0, groups=1)
