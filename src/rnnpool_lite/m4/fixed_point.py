"""Fixed-point arithmetic of the TFLite int8 spec / CMSIS-NN, vectorized with numpy int64.

Rules (what a Cortex-M4 kernel does, bit for bit):

* Activations: asymmetric per-tensor int8, ``real = scale * (q - zero_point)``, ``q`` in
  [-128, 127]; the range is widened to contain 0 so that zero padding is exact (``q = zp``).
* Weights: symmetric per-output-channel int8, ``zero_point = 0``, ``q`` in [-127, 127]
  (``scale = max|w| / 127``). Biases: int32 with ``scale = s_in * s_w`` and zero point 0.
* A real multiplier ``M`` (e.g. ``s_in * s_w / s_out``) is stored as an int32 ``m`` in
  [2^30, 2^31) and a shift ``e`` with ``M ~= m * 2^(e - 31)`` (:func:`quantize_multiplier`,
  TFLite ``QuantizeMultiplier``).
* ``x * M`` is :func:`multiply_by_quantized_multiplier`: ``x << max(e, 0)``, then
  ``SaturatingRoundingDoublingHighMul(x, m)`` (``(x * m + nudge) / 2^31`` with the nudge
  ``2^30`` or ``1 - 2^30`` by sign and C division truncating toward zero; the single overflow
  case ``INT32_MIN * INT32_MIN`` saturates to ``INT32_MAX``), then
  ``RoundingDivideByPOT(., max(-e, 0))`` (arithmetic shift rounding half away from zero).
  This is gemmlowp's arithmetic, used by TFLite Micro reference kernels and CMSIS-NN's
  ``arm_nn_requantize``.
* Requantized outputs add the output zero point and saturate to [-128, 127] (or to the fused
  activation's clamp).

Only :func:`quantize_multiplier` and the helpers that compute quantization parameters use
floats; they run once, at conversion time. Everything applied to tensors is integer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def require_int(name: str, *arrays: np.ndarray) -> None:
    """Kernels accept integer arrays only: the guard that keeps floats out of them."""
    for a in arrays:
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.integer):
            kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"{name} expects integer numpy arrays, got {kind}")


def quantize_multiplier(real: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``QuantizeMultiplier``: ``real ~= m * 2^(shift - 31)``, ``m`` int32 in [2^30, 2^31).

    Vectorized; ``real == 0`` gives ``(0, 0)``. Negative multipliers are refused (never needed).
    """
    real = np.asarray(real, dtype=np.float64)
    if np.any(real < 0) or not np.all(np.isfinite(real)):
        raise ValueError(f"multipliers must be finite and non-negative, got {real}")
    q, shift = np.frexp(real)
    m = np.round(q * (1 << 31)).astype(np.int64)
    over = m == (1 << 31)
    m = np.where(over, m // 2, m)
    shift = np.where(over, shift + 1, shift).astype(np.int64)
    tiny = shift < -31
    m = np.where(tiny | (real == 0), 0, m)
    shift = np.where(tiny | (real == 0), 0, shift)
    return m.astype(np.int32), shift.astype(np.int32)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values (returned as int64).

    Branch-free: ``sign = ab >> 63`` (0 or -1) picks the nudge ``2^30`` or ``1 - 2^30`` and
    turns the flooring shift into C's truncating division (``+ 2^31 - 1`` when negative).
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    low = np.int64((1 << 31) - 1)
    ab = a * b
    sign_fix = (ab >> 63) & low  # 2^31 - 1 where ab < 0, else 0
    ab += (1 << 30) - sign_fix  # the nudge
    ab += (ab >> 63) & low  # truncate toward zero
    ab >>= 31
    if np.any(b == INT32_MIN):
        ab = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, ab)
    return ab


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2^exponent`` rounded half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray | int,
                                     shift: np.ndarray | int) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(x, m, e)`` on int32 accumulators (int64 result).

    ``multiplier`` / ``shift`` broadcast against ``x`` (per-channel requantization). The left
    shift saturates to int32, as the 32-bit register of the M4 would after ``SSAT``.
    """
    require_int("multiply_by_quantized_multiplier", np.asarray(x))
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(x << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def rounding_right_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """``x / 2^shift`` rounded half up (``(x + 2^(shift-1)) >> shift``), the Q15 ``__SSAT``-free
    rounding used by fixed-point RNN code (EdgeML's ``q15`` helpers); int64 result."""
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return x << -shift
    return (x + (np.int64(1) << (shift - 1))) >> shift


def saturate(x: np.ndarray, lo: int, hi: int, dtype: type) -> np.ndarray:
    """Clamp to ``[lo, hi]`` and store as ``dtype`` (the ``SSAT`` instruction)."""
    return np.clip(x, lo, hi).astype(dtype)


@dataclass(frozen=True)
class QParams:
    """Per-tensor affine quantization of an int8 activation: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    @classmethod
    def from_range(cls, lo: float, hi: float) -> QParams:
        """Asymmetric int8 parameters covering ``[min(lo, 0), max(hi, 0)]`` (TFLite's rule)."""
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if hi - lo < 1e-8:
            hi = lo + 1e-8
        scale = (hi - lo) / (INT8_MAX - INT8_MIN)
        zero_point = int(np.clip(np.round(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
        return cls(scale, zero_point)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float to int8 (at the model's input boundary only)."""
        q = np.round(np.asarray(x, dtype=np.float64) / self.scale) + self.zero_point
        return saturate(q, INT8_MIN, INT8_MAX, np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """int8 to float (at the model's output boundary only)."""
        return (np.asarray(q, dtype=np.float64) - self.zero_point) * self.scale

    def clamp(self, lo: float | None, hi: float | None) -> tuple[int, int]:
        """int8 bounds of a fused activation clamp ``[lo, hi]`` (``None``: unbounded)."""
        qlo = INT8_MIN if lo is None else max(INT8_MIN, int(np.round(lo / self.scale)) + self.zero_point)
        qhi = INT8_MAX if hi is None else min(INT8_MAX, int(np.round(hi / self.scale)) + self.zero_point)
        return qlo, qhi


def quantize_weights(w: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 (``[-127, 127]``) along ``axis``: ``(q, scales)``."""
    w = np.asarray(w, dtype=np.float64)
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=reduce) if reduce else np.abs(w)
    scales = np.where(amax > 0, amax / 127.0, 1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


def quantize_bias(b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """int32 bias with scale ``s_in * s_w`` (per channel), zero point 0."""
    return saturate(np.round(np.asarray(b, dtype=np.float64) / scale), INT32_MIN, INT32_MAX, np.int32)
