"""Property tests (hypothesis): the shape formula, batch independence, and error messages."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnpool_lite import RNNPool2d


@st.composite
def geometry(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    height = draw(st.integers(max(1, kh - 2 * ph), 12))
    width = draw(st.integers(max(1, kw - 2 * pw), 12))
    return (kh, kw), (sh, sw), (ph, pw), height, width


@given(geometry(), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))
def test_output_shape_follows_pooling_formula(geo, channels, h1, h2, batch):
    kernel, stride, padding, height, width = geo
    layer = RNNPool2d(channels, h1, kernel, stride, padding, h2)
    out = layer(torch.randn(batch, channels, height, width))
    expected_h = (height + 2 * padding[0] - kernel[0]) // stride[0] + 1
    expected_w = (width + 2 * padding[1] - kernel[1]) // stride[1] + 1
    assert out.shape == (batch, 4 * h2, expected_h, expected_w)
    assert torch.isfinite(out).all()


@given(geometry(), st.sampled_from(["fastgrnn", "gru", "lstm"]))
def test_images_are_pooled_independently(geo, cell):
    kernel, stride, padding, height, width = geo
    layer = RNNPool2d(2, 3, kernel, stride, padding, 2, cell, dtype=torch.float64)
    x = torch.randn(3, 2, height, width, dtype=torch.float64)
    together = layer(x)
    alone = torch.cat([layer(x[i : i + 1]) for i in range(3)])
    assert (together - alone).abs().max() < 1e-12


@settings(max_examples=25, deadline=None)
@given(geometry(), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans(), st.booleans())
def test_fused_layer_equals_autograd_and_reference(geo, channels, h1, h2, learn, channels_last):
    """FastGRNN's hand-written Function against autograd through the same equations, and the
    per-patch reference: outputs, input gradients and every parameter's gradient."""
    from unittest import mock

    from rnnpool_lite.op import layer as layer_module
    from rnnpool_lite.op.cells import FastGRNNCell
    from rnnpool_lite.op.reference import rnnpool_reference

    kernel, stride, padding, height, width = geo
    layer = RNNPool2d(channels, h1, kernel, stride, padding, h2, learn_zeta_nu=learn, dtype=torch.float64)
    x = torch.randn(2, channels, height, width, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    inputs = [x, *layer.parameters()]

    def run():
        out = layer(x)
        return (out, *torch.autograd.grad(out.sin().sum(), inputs, materialize_grads=True))

    fast = run()
    generic = lambda cells, xb, g, fmt: layer_module.pool_with_cells(layer, xb, g)  # noqa: E731
    with mock.patch.object(layer_module, "fused_pool", generic), \
            mock.patch.object(FastGRNNCell, "scan", FastGRNNCell._scan_autograd):
        slow = run()
    for a, b in zip(fast, slow):
        assert (a - b).abs().max() < 1e-10
    assert (fast[0] - rnnpool_reference(layer, x.detach())).abs().max() < 1e-10


@given(st.integers(0, 6).filter(lambda d: d != 4))
def test_non_4d_input_is_rejected(dims):
    layer = RNNPool2d(2, 3, 2)
    with pytest.raises(ValueError, match="4-D"):
        layer(torch.randn([2] * dims))


@given(st.integers(1, 6).filter(lambda c: c != 3))
def test_wrong_channel_count_is_rejected(channels):
    with pytest.raises(ValueError, match="3 input channels, got"):
        RNNPool2d(3, 4, 2)(torch.randn(1, channels, 6, 6))


@given(st.integers(0, 2).flatmap(lambda p: st.tuples(st.integers(2 * p + 2, 9), st.just(p))))
def test_input_smaller_than_kernel_is_rejected(kernel_padding):
    kernel, padding = kernel_padding
    size = kernel - 1 - 2 * padding  # one short of the kernel after padding
    with pytest.raises(ValueError, match="smaller than the"):
        RNNPool2d(1, 2, kernel, padding=padding)(torch.randn(1, 1, size, size + 5))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(in_channels=0), ValueError, "in_channels=0: expected an integer >= 1"),
        (dict(hidden_size=-1), ValueError, "hidden_size=-1: expected an integer >= 1"),
        (dict(hidden_size2=0), ValueError, "hidden_size2=0: expected an integer >= 1"),
        (dict(kernel_size=0), ValueError, "kernel_size=0: expected an integer or a pair"),
        (dict(kernel_size=(3, 0)), ValueError, r"kernel_size=\(3, 0\): expected"),
        (dict(kernel_size=(3, 3, 3)), ValueError, "pair"),
        (dict(stride=0), ValueError, "stride=0: expected"),
        (dict(padding=-1), ValueError, "padding=-1: expected an integer or a pair .* >= 0"),
        (dict(kernel_size=2.5), TypeError, "kernel_size=2.5: expected an integer"),
        (dict(in_channels=3.0), TypeError, "in_channels=3.0: expected an integer"),
        (dict(hidden_size=True), TypeError, "hidden_size=True: expected an integer"),
        (dict(cell="rnn"), ValueError, "unknown cell 'rnn'"),
        (dict(cell=3), TypeError, "cell must be a string"),
    ],
)
def test_bad_configuration_gets_a_clear_error(kwargs, error, match):
    args = dict(in_channels=3, hidden_size=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        RNNPool2d(**args)


def test_non_tensor_and_integer_inputs_are_rejected():
    layer = RNNPool2d(1, 2, 2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer([[[[1.0]]]])
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.ones(1, 1, 4, 4, dtype=torch.int64))
