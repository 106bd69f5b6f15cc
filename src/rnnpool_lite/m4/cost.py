"""Flash bytes, MACs and a Cortex-M4 cycle model for the integer ops.

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

import numpy as np

from rnnpool_lite.m4.ops import (
    AddOp,
    AvgPoolOp,
    ClampOp,
    ConcatOp,
    ConvOp,
    FlattenOp,
    HeadOp,
    LinearOp,
    Op,
    RNNPoolOp,
    Shape,
)

MACS_PER_CYCLE = 2
DEPTHWISE_MACS_PER_CYCLE = 1
REQUANT_CYCLES = 10
ELEMENTWISE_CYCLES = 12
GATE_CYCLES = 12
OP_OVERHEAD_CYCLES = 1000


def _conv_cycles(op: ConvOp, macs: int, outputs: int) -> float:
    rate = DEPTHWISE_MACS_PER_CYCLE if op.subkind == "depthwise" else MACS_PER_CYCLE
    return macs / rate + outputs * REQUANT_CYCLES


def op_cycles(op: Op, in_shape: Shape, macs: int) -> float:
    """Estimated cycles of ``op`` on an input of ``in_shape`` doing ``macs`` MACs."""
    if isinstance(op, HeadOp):
        total = op.macs(in_shape) or 1
        (n, c1, h, w), (_, c2, _, _) = op.map_shapes(in_shape)
        return OP_OVERHEAD_CYCLES + macs / MACS_PER_CYCLE + REQUANT_CYCLES * (c1 + c2) * h * w * macs / total
    if isinstance(op, ConvOp):  # outputs computed scale with the MACs (the patch stem recomputes)
        (n, o, h, w), = op.out_shapes(in_shape)
        return OP_OVERHEAD_CYCLES + _conv_cycles(op, macs, n * o * h * w * macs / max(op.macs(in_shape), 1))
    if isinstance(op, LinearOp):
        return OP_OVERHEAD_CYCLES + macs / MACS_PER_CYCLE + in_shape[0] * op.w.shape[0] * REQUANT_CYCLES
    if isinstance(op, RNNPoolOp):
        (n, _, ho, wo), = op.out_shapes(in_shape)
        (kh, kw), h1, h2 = op.pool.kernel, op.pool.rnn1.w.shape[0], op.pool.rnn2.w.shape[0]
        gates = (2 * kh * kw * h1 + 2 * (kh + kw) * h2) * n * ho * wo
        outputs = n * ho * wo * op.pool.out_channels
        return OP_OVERHEAD_CYCLES + macs / MACS_PER_CYCLE + gates * GATE_CYCLES + outputs * REQUANT_CYCLES
    if isinstance(op, (AddOp, ConcatOp)):
        return OP_OVERHEAD_CYCLES + int(np.prod(in_shape)) * ELEMENTWISE_CYCLES
    if isinstance(op, (AvgPoolOp, ClampOp)):
        return OP_OVERHEAD_CYCLES + int(np.prod(in_shape))
    if isinstance(op, FlattenOp):
        return 0.0
    raise TypeError(f"no cycle model for {type(op).__name__}")


def flash_bytes(ops: list[Op]) -> int:
    """Weights, biases, per-channel multipliers / shifts and RNNPool parameters of all ops."""
    return int(sum(op.flash_bytes for op in ops))


__all__ = ["DEPTHWISE_MACS_PER_CYCLE", "ELEMENTWISE_CYCLES", "GATE_CYCLES", "MACS_PER_CYCLE",
           "OP_OVERHEAD_CYCLES", "REQUANT_CYCLES", "flash_bytes", "op_cycles"]
