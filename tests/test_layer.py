"""RNNPool2d against the authors' trace, the per-patch reference, and autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnpool_lite import RNNPool2d
from rnnpool_lite.op.cells import FastGRNNCell
from rnnpool_lite.op.reference import rnnpool_reference

F64 = torch.float64


def _trace_input(trace: dict, dtype: torch.dtype) -> torch.Tensor:
    # the trace stores the patch as [rows][cols][channels]
    return torch.tensor(trace["input"], dtype=dtype).permute(2, 0, 1)[None]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_matches_edgeml_trace(edgeml_trace, dtype):
    layer = RNNPool2d.from_edgeml(edgeml_trace["params"], edgeml_trace["kernel_size"], dtype=dtype)
    out = layer(_trace_input(edgeml_trace, dtype)).flatten()
    expected = torch.tensor(edgeml_trace["expected_output"], dtype=dtype)
    assert out.shape == (4 * edgeml_trace["hidden2"],)
    assert (out - expected).abs().max().item() < 1e-5


def test_edgeml_round_trip(edgeml_trace):
    params = edgeml_trace["params"]
    layer = RNNPool2d.from_edgeml({k: np.asarray(v) for k, v in params.items()}, 6, dtype=F64)
    back = layer.to_edgeml()
    for key, value in params.items():
        np.testing.assert_allclose(back[key], np.asarray(value), rtol=0, atol=1e-12, err_msg=key)
    assert layer.in_channels == 8 and layer.hidden_size == 8 and layer.hidden_size2 == 8


def test_edgeml_accepts_row_biases_and_rejects_bad_shapes(edgeml_trace):
    params = dict(edgeml_trace["params"])
    params["Bg1"] = [params["Bg1"]]  # (1, hidden), as the C headers store it
    RNNPool2d.from_edgeml(params, 6)
    with pytest.raises(KeyError, match="U2"):
        RNNPool2d.from_edgeml({k: v for k, v in params.items() if k != "U2"}, 6)
    bad = dict(params, W2=np.zeros((8, 5)))
    with pytest.raises(ValueError, match="W2"):
        RNNPool2d.from_edgeml(bad, 6)
    with pytest.raises(TypeError, match="fastgrnn"):
        RNNPool2d(3, 4, 2, cell="gru").to_edgeml()


CONFIGS = [
    # C, h1, h2, kernel, stride, padding, H, W
    (3, 4, 4, 3, None, 0, 9, 9),
    (2, 3, 5, 4, 2, 1, 9, 10),  # stride < kernel, padding, h1 != h2
    (3, 2, 3, (2, 4), (1, 3), (1, 0), 7, 11),  # non-square everything
    (1, 5, 2, (5, 3), 2, 2, 6, 5),
]


@pytest.mark.parametrize("cell", ["fastgrnn", "gru", "lstm"])
@pytest.mark.parametrize("config", CONFIGS)
def test_agrees_with_per_patch_reference_float64(cell, config):
    c, h1, h2, k, s, p, height, width = config
    layer = RNNPool2d(c, h1, k, s, p, h2, cell, dtype=F64)
    assert all(param.dtype == F64 for param in layer.parameters())
    x = torch.randn(2, c, height, width, dtype=F64)
    out = layer(x)
    assert out.dtype == F64
    assert (out - rnnpool_reference(layer, x)).abs().max().item() < 1e-9


@pytest.mark.parametrize("options", [dict(learn_zeta_nu=False), dict(piecewise_linear=True)])
def test_fastgrnn_variants_agree_with_reference(options):
    layer = RNNPool2d(2, 3, 3, 2, 1, 4, **options, dtype=F64)
    x = 2 * torch.randn(2, 2, 7, 6, dtype=F64)  # large enough to reach the clamps
    assert (layer(x) - rnnpool_reference(layer, x)).abs().max().item() < 1e-9


@pytest.mark.parametrize("learn", [True, False])
@pytest.mark.parametrize("kernel,stride", [(3, 2), ((2, 3), (1, 2))])
def test_gradcheck_fastgrnn(learn, kernel, stride):
    layer = RNNPool2d(2, 3, kernel, stride, 1, 2, learn_zeta_nu=learn, dtype=F64)
    x = torch.randn(2, 2, 5, 6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *p: layer(x), (x, *layer.parameters()), atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gradcheck_gru_lstm(cell):
    layer = RNNPool2d(2, 2, 3, 2, 0, 3, cell, dtype=F64)
    x = torch.randn(1, 2, 5, 5, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *p: layer(x), (x, *layer.parameters()), atol=1e-6)


def _autograd_path(layer: RNNPool2d):
    """Patches under which the layer runs through ``pool_with_cells`` and autograd's FastGRNN."""
    from unittest import mock

    from rnnpool_lite.op import layer as layer_module

    def generic(cells, x, geo, memory_format):
        return layer_module.pool_with_cells(layer, x, geo).contiguous(memory_format=memory_format)

    return (mock.patch.object(layer_module, "fused_pool", generic),
            mock.patch.object(FastGRNNCell, "scan", FastGRNNCell._scan_autograd))


def _grads(layer: RNNPool2d, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    out = layer(x)
    return (out, *torch.autograd.grad(out.sin().sum(), [x, *layer.parameters()]))


@pytest.mark.parametrize("learn", [True, False])
@pytest.mark.parametrize("kernel,stride,padding", [(4, 2, 1), ((3, 5), (2, 3), (0, 2))])
def test_hand_written_backward_equals_autograd(learn, kernel, stride, padding):
    layer = RNNPool2d(3, 4, kernel, stride, padding, 3, learn_zeta_nu=learn, dtype=F64)
    x = torch.randn(3, 3, 9, 11, dtype=F64, requires_grad=True)
    fast = _grads(layer, x)
    patch_pool, patch_scan = _autograd_path(layer)
    with patch_pool, patch_scan:
        slow = _grads(layer, x)
    for a, b in zip(fast, slow):
        assert (a - b).abs().max().item() < 1e-12


def test_chunks_of_images_give_the_batch_result(monkeypatch):
    """On CPU the fused layer runs a few images at a time; one image per chunk changes nothing."""
    from rnnpool_lite.op import fused

    layer = RNNPool2d(2, 3, 4, 3, 1, 2, dtype=F64)
    x = torch.randn(5, 2, 10, 8, dtype=F64, requires_grad=True)
    whole = _grads(layer, x)
    monkeypatch.setattr(fused, "CHUNK_SEQUENCES", 1)
    assert fused.chunk_size(x, fused.PoolGeometry.of((4, 4), (3, 3), (4, 3))) == 1
    for a, b in zip(whole, _grads(layer, x)):
        assert (a - b).abs().max().item() < 1e-13


@pytest.mark.parametrize("cell", ["fastgrnn", "gru"])
def test_channels_last_input(cell):
    """A channels_last input gives the same values and gradients, and a channels_last output."""
    layer = RNNPool2d(4, 3, 3, 2, 1, 2, cell, dtype=F64)
    x = torch.randn(2, 4, 9, 8, dtype=F64)
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    dense, last = _grads(layer, x), _grads(layer, x_cl)
    assert last[0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(dense, last):
        assert (a - b).abs().max().item() < 1e-13


@pytest.mark.parametrize("learn", [True, False])
def test_gradcheck_fastgrnn_cell_scan(learn):
    """The cell's own Function (``FastGRNNCell.forward`` on batch-first sequences)."""
    cell = FastGRNNCell(3, 4, learn_zeta_nu=learn, dtype=F64)
    seq = torch.randn(5, 4, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, *p: cell(s), (seq, *cell.parameters()), atol=1e-6)


def test_pooling_defaults_configuration_and_parameters():
    layer = RNNPool2d(8, 16, 6, hidden_size2=12)
    assert layer.stride == (6, 6) and layer.padding == (0, 0) and layer.out_channels == 48
    text = repr(layer)
    for part in ("8, hidden_size=16", "kernel_size=(6, 6)", "stride=(6, 6)", "hidden_size2=12", "'fastgrnn'"):
        assert part in text
    names = dict(layer.named_parameters())
    assert names["rnn1.W"].shape == (16, 8) and names["rnn2.U"].shape == (12, 12)
    assert {"rnn1.bias_gate", "rnn1.bias_update", "rnn1.zeta_raw", "rnn1.nu_raw"} <= set(names)
    frozen = RNNPool2d(8, 16, 6, learn_zeta_nu=False)
    assert "rnn1.zeta_raw" not in dict(frozen.named_parameters())
    assert "learn_zeta_nu=False" in repr(frozen)
    assert float(frozen.rnn1.zeta) == 1.0 and float(frozen.rnn1.nu) == 0.0


def test_train_eval_empty_batch_and_output_size():
    layer = RNNPool2d(3, 4, (3, 5), (2, 3), (1, 2))
    x = torch.randn(2, 3, 10, 13)
    layer.train()
    y_train = layer(x)
    layer.eval()
    assert torch.equal(y_train, layer(x))
    assert y_train.shape[2:] == layer.output_size(10, 13)
    assert layer(x[:0]).shape == (0, 16, *layer.output_size(10, 13))


def test_backward_reaches_every_parameter():
    layer = RNNPool2d(3, 4, 4, 2)
    layer(torch.randn(2, 3, 8, 8)).square().mean().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_benchmark_baselines_match_layer():
    """The benchmark's comparators must compute the same thing, or its ratios mean nothing."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_rnnpool.py"
    spec = importlib.util.spec_from_file_location("bench_rnnpool", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    layer = RNNPool2d(3, 4, (4, 3), 2, 1, 5, dtype=F64)
    x = torch.randn(2, 3, 10, 9, dtype=F64, requires_grad=True)
    ours = _grads(layer, x)
    for baseline in (bench.edgeml_rnnpool, bench.plain_rnnpool):
        out = baseline(layer, x)
        theirs = (out, *torch.autograd.grad(out.sin().sum(), [x, *layer.parameters()]))
        for a, b in zip(ours, theirs):
            assert (a - b).abs().max().item() < 1e-12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cell", ["fastgrnn", "gru", "lstm"])
def test_cuda_matches_cpu(cell):
    layer = RNNPool2d(3, 4, 4, 2, 1, 5, cell, dtype=F64)
    x = torch.randn(2, 3, 11, 9, dtype=F64, requires_grad=True)
    y_cpu = layer(x)
    g_cpu = torch.autograd.grad(y_cpu.sum(), [x, *layer.parameters()])
    layer_gpu = layer.cuda()
    x_gpu = x.detach().cuda().requires_grad_()
    y_gpu = layer_gpu(x_gpu)
    g_gpu = torch.autograd.grad(y_gpu.sum(), [x_gpu, *layer_gpu.parameters()])
    assert (y_gpu.cpu() - y_cpu).abs().max() < 1e-10
    for a, b in zip(g_cpu, g_gpu):
        assert (a - b.cpu()).abs().max() < 1e-10


@pytest.mark.parametrize("options", [{}, dict(learn_zeta_nu=False), dict(piecewise_linear=True)])
@pytest.mark.parametrize("kernel,stride", [(4, 2), ((3, 4), (2, 1))])
def test_inference_path_equals_training_path_and_reference(options, kernel, stride):
    """Without gradients FastGRNN streams steps through one buffer; results must not change."""
    layer = RNNPool2d(3, 4, kernel, stride, 1, 5, **options, dtype=F64)
    x = torch.randn(2, 3, 10, 9, dtype=F64)
    training = layer(x)
    assert training.requires_grad
    with torch.no_grad():
        inference = layer(x)
    assert (inference - training).abs().max().item() < 1e-14
    assert (inference - rnnpool_reference(layer, x)).abs().max().item() < 1e-9


def test_runs_in_float32_under_bf16_autocast():
    """fit(precision="bf16") autocasts the model: RNNPool's hand-written backward needs float32 throughout."""
    layer = RNNPool2d(4, 8, 6, 4)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 26, 26)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        y = layer(h)
    assert h.dtype == torch.bfloat16 and y.dtype == torch.float32
    assert torch.allclose(y, layer(h.float()), atol=1e-6)
    y.sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in layer.parameters())
