"""The integer RNNPool vs the float layer run on the same quantized weights and input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rnnpool_lite.m4.fixed_point import QParams
from rnnpool_lite.m4.rnnpool_int import IntRNNPool
from rnnpool_lite.op.layer import RNNPool2d


def _layer(c, h1, h2, k, s, p, learn, seed):
    torch.manual_seed(seed)
    layer = RNNPool2d(c, h1, k, s, p, hidden_size2=h2, piecewise_linear=True, learn_zeta_nu=learn).double()
    with torch.no_grad():
        for cell in (layer.rnn1, layer.rnn2):
            cell.bias_gate.uniform_(-0.5, 0.5)
            cell.bias_update.uniform_(-0.5, 0.5)
    return layer


def _same_math_reference(layer: RNNPool2d, q: IntRNNPool, x: np.ndarray, qin: QParams, qout: QParams) -> np.ndarray:
    """The float layer with the integer model's weights, biases, zeta and nu; quantized output."""
    ref = RNNPool2d(layer.in_channels, layer.hidden_size, layer.kernel_size, layer.stride, layer.padding,
                    hidden_size2=layer.hidden_size2, piecewise_linear=True).double()
    with torch.no_grad():
        for src, dst in ((q.rnn1, ref.rnn1), (q.rnn2, ref.rnn2)):
            w_scale = src.w_mult * 2.0 ** (src.w_shift.astype(float) - 31)
            u_scale = src.u_mult * 2.0 ** (src.u_shift.astype(float) - 31)
            in_scale = qin.scale if src is q.rnn1 else q.rnn1.state_scale
            dst.W.copy_(torch.from_numpy(src.w * (w_scale / in_scale / 2**15)[:, None]))
            dst.U.copy_(torch.from_numpy(src.u * (u_scale / 2.0**src.state_bits)[:, None]))
            dst.bias_gate.copy_(torch.from_numpy(src.bias_gate / 2**15))
            dst.bias_update.copy_(torch.from_numpy(src.bias_update / 2**15))
            dst.set_zeta_nu(src.zeta / 2**15, src.nu / 2**15)
        out = ref(torch.from_numpy(qin.dequantize(x))).numpy()
    return np.clip(np.round(out / qout.scale) + qout.zero_point, -128, 127)


@given(st.integers(1, 4), st.integers(2, 8), st.integers(2, 8), st.sampled_from([(4, 4, 0), (4, 2, 1), (3, 3, 1)]),
       st.booleans(), st.integers(0, 1000))
def test_int_rnnpool_within_one_lsb_of_the_same_math_in_float(c, h1, h2, geometry, learn, seed):
    k, s, p = geometry
    layer = _layer(c, h1, h2, k, s, p, learn, seed)
    x = torch.rand(2, c, 9, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 2 - 0.5
    with torch.no_grad():
        y = layer(x)
    qin, qout = QParams.from_range(float(x.min()), float(x.max())), QParams.from_range(float(y.min()), float(y.max()))
    q = IntRNNPool.from_float(layer, qin, qout)
    xq = qin.quantize(x.numpy())
    got = q(xq)
    ref = _same_math_reference(layer, q, xq, qin, qout)
    assert got.dtype == np.int8 and got.shape == y.shape
    diff = np.abs(got.astype(np.int64) - ref)
    assert diff.max() <= 1
    # and close to the float layer itself (input and weight quantization only)
    assert np.abs(qout.dequantize(got) - y.numpy()).max() <= 8 * qout.scale + 0.05


def test_state_format_follows_the_bound_zeta_plus_t_nu():
    layer = _layer(2, 4, 4, 8, 4, 0, True, 0)
    layer.rnn1.set_zeta_nu(0.9, 0.05)  # bound 0.9 + 8 * 0.05 = 1.3 -> one integer bit
    layer.rnn2.set_zeta_nu(1.0 - 1e-9, 0.0)
    q = IntRNNPool.from_float(layer, QParams(0.01, 0), QParams(0.01, 0))
    assert q.rnn1.state_bits == 1 and q.rnn2.state_bits == 0
    fixed = IntRNNPool.from_float(_layer(2, 4, 4, 8, 4, 0, False, 0), QParams(0.01, 0), QParams(0.01, 0))
    assert fixed.rnn1.state_bits == 0 and fixed.rnn1.zeta == 2**15 and fixed.rnn1.nu == 0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gru_and_lstm_are_refused(cell):
    layer = RNNPool2d(2, 4, 4, cell=cell, piecewise_linear=True)
    with pytest.raises(TypeError, match="FastGRNN"):
        IntRNNPool.from_float(layer, QParams(0.01, 0), QParams(0.01, 0), "pool")


def test_smooth_activations_are_refused():
    with pytest.raises(ValueError, match="piecewise_linear"):
        IntRNNPool.from_float(RNNPool2d(2, 4, 4), QParams(0.01, 0), QParams(0.01, 0), "pool")


def test_int_rnnpool_refuses_float_input():
    q = IntRNNPool.from_float(_layer(1, 2, 2, 2, 2, 0, True, 0), QParams(0.01, 0), QParams(0.01, 0))
    with pytest.raises(TypeError, match="integer"):
        q(np.zeros((1, 1, 4, 4)))
