"""Fixed-point primitives against a scalar transcription of TFLite's C code and exact rationals."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnpool_lite.m4.fixed_point import (
    INT32_MAX,
    INT32_MIN,
    QParams,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    quantize_weights,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _srdhm(a: int, b: int) -> int:  # gemmlowp, line by line
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _c_div(ab + nudge, 1 << 31)


def _rdbp(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def _mbqm(x: int, m: int, s: int) -> int:
    left, right = max(s, 0), max(-s, 0)
    return _rdbp(_srdhm(x * (1 << left), m), right)


int32 = st.integers(INT32_MIN, INT32_MAX)


@given(int32, int32)
def test_srdhm_matches_gemmlowp(a, b):
    assert int(saturating_rounding_doubling_high_mul(np.int64(a), np.int64(b))) == _srdhm(a, b)


@given(int32, st.integers(0, 31))
def test_rounding_divide_by_pot_matches_gemmlowp(x, e):
    assert int(rounding_divide_by_pot(np.int64(x), e)) == _rdbp(x, e)


@given(st.floats(1e-6, 0.999))
def test_quantize_multiplier_represents_the_real_value(real):
    m, s = quantize_multiplier(real)
    assert (1 << 30) <= int(m) < (1 << 31)
    assert abs(float(Fraction(int(m)) * Fraction(2) ** (int(s) - 31)) - real) <= real * 2.0**-30


@given(st.integers(-(2**24), 2**24), st.floats(1e-5, 4.0))
def test_multiply_by_quantized_multiplier_matches_c_and_rounds_within_one(x, real):
    m, s = quantize_multiplier(real)
    got = int(multiply_by_quantized_multiplier(np.int64(x), m, s))
    assert got == _mbqm(x, int(m), int(s))
    assert abs(got - x * real) <= 1.0


def test_multiply_by_quantized_multiplier_is_vectorized_per_channel():
    x = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    m, s = quantize_multiplier(np.array([0.5, 0.25, 2.0]))
    out = multiply_by_quantized_multiplier(x, m[:, None], s[:, None])
    expected = [[_mbqm(int(v), int(m[i]), int(s[i])) for v in row] for i, row in enumerate(x)]
    np.testing.assert_array_equal(out, expected)


def test_multiply_by_quantized_multiplier_refuses_floats():
    with pytest.raises(TypeError, match="integer"):
        multiply_by_quantized_multiplier(np.ones(3), 1 << 30, 0)


def test_qparams_contain_zero_and_clamp_relu6():
    q = QParams.from_range(0.0, 6.0)
    assert q.zero_point == -128
    assert q.clamp(0.0, 6.0) == (-128, 127)
    q = QParams.from_range(-1.0, 3.0)
    assert q.quantize(np.array([0.0]))[0] == q.zero_point
    assert abs(q.dequantize(q.quantize(np.array([2.0])))[0] - 2.0) <= q.scale / 2


def test_weights_are_symmetric_per_channel():
    w = np.array([[0.5, -1.0], [0.01, 0.02]])
    q, s = quantize_weights(w)
    assert q.dtype == np.int8 and q.max() <= 127 and q.min() >= -127
    np.testing.assert_allclose(s, [1.0 / 127, 0.02 / 127])
    assert q[0, 1] == -127 and q[1, 1] == 127
