"""The Cortex-M4 cycle model's constants (each op's ``cycles`` applies them) and the flash total.

Cycle model (an estimate, not a measurement; every constant is named here):

* ``SMLAD`` does two 16 x 16-bit multiply-accumulates in one cycle (Arm Cortex-M4 Technical
  Reference Manual, DSP instructions: single-cycle ``SMLAD``). CMSIS-NN's int8 convolution and
  fully connected kernels widen int8 to int16 (``SXTB16``) and use it in their inner loops
  (Lai, Suda and Chandra, "CMSIS-NN: Efficient Neural Network Kernels for Arm Cortex-M CPUs",
  2018): ``MACS_PER_CYCLE = 2`` for regular / pointwise convs, linear layers and the RNNPool
  matrix-vector products. Depthwise convs cannot pair channels in one ``SMLAD`` the same
  way: ``DEPTHWISE_MACS_PER_CYCLE = 1``.
* Each int8 output value pays ``REQUANT_CYCLES`` for the fixed-point requantization (64-bit
  multiply, rounding shift, zero point, saturate); each element of an add / requantize pays
  ``ELEMENTWISE_CYCLES``; each FastGRNN hidden unit per time step pays ``GATE_CYCLES`` for the
  gate arithmetic and state update; each op pays ``OP_OVERHEAD_CYCLES`` (call, setup, loops).
* Memory stalls, im2col copies and the patch crops' copies are not modelled separately.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # each op's ``cycles`` uses these constants
    from rnnpool_lite.m4.ops.base import Op

MACS_PER_CYCLE = 2
DEPTHWISE_MACS_PER_CYCLE = 1
REQUANT_CYCLES = 10
ELEMENTWISE_CYCLES = 12
GATE_CYCLES = 12
OP_OVERHEAD_CYCLES = 1000


def flash_bytes(ops: list[Op]) -> int:
    """Weights, biases, per-channel multipliers / shifts and RNNPool parameters of all ops."""
    return int(sum(op.flash_bytes for op in ops))


__all__ = ["DEPTHWISE_MACS_PER_CYCLE", "ELEMENTWISE_CYCLES", "GATE_CYCLES", "MACS_PER_CYCLE",
           "OP_OVERHEAD_CYCLES", "REQUANT_CYCLES", "flash_bytes"]
