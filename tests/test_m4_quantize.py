"""quantize(): graph conversion, schedules that agree bit for bit, fidelity of random models, errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from rnnpool_lite.m4 import UnsupportedError, quantize
from rnnpool_lite.m4.ops.head import HeadOp
from rnnpool_lite.m4.quantize import SUPPORTED
from rnnpool_lite.models import ReNet2d, mobilenetv2_rnnpool_vww, mobilenetv2_vww, rnnpool_face
from rnnpool_lite.models.small import small_rnnpool_classifier
from rnnpool_lite.op.layer import RNNPool2d
from rnnpool_lite.roles import DetectionHeadRole


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and biases, as in a trained model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


@pytest.fixture(scope="module")
def face_quant():
    torch.manual_seed(0)
    model = _randomize(rnnpool_face("Quant"))
    x = torch.rand(3, 3, 72, 96)
    return model, quantize(model, x[:2], convert_activations=True), x[2:]


def test_face_quant_schedules_agree_bit_for_bit_and_follow_float(face_quant):
    model, qm, x = face_quant
    layer, patch = qm.run_int8(x, "layer"), qm.run_int8(x, "patch")
    assert isinstance(patch, tuple) and len(patch) == 2
    for a, b in zip(layer, patch):
        assert a.dtype == np.int8
        np.testing.assert_array_equal(a, b)
    with torch.no_grad():
        ref = qm.float_model(x)
    out = qm.run(x)
    for f, q in zip(ref, out):
        assert q.shape == f.shape and q.dtype == torch.float32
        assert _cosine(f, q) >= 0.99


@pytest.mark.parametrize("size", [(80, 100), (61, 77)])
def test_patch_tiles_that_do_not_divide_the_map_still_agree(face_quant, size):
    """Odd sizes: head tiles overhang the map, border crops are partly padding."""
    _, qm, _ = face_quant
    x = torch.rand(1, 3, *size)
    for a, b in zip(qm.run_int8(x, "layer"), qm.run_int8(x, "patch")):
        np.testing.assert_array_equal(a, b)


def test_face_m4_schedules_agree_bit_for_bit():
    model = _randomize(rnnpool_face("M4"), 1)
    x = torch.rand(2, 1, 64, 80)
    qm = quantize(model, x, convert_activations=True)
    for a, b in zip(qm.run_int8(x, "layer"), qm.run_int8(x, "patch")):
        np.testing.assert_array_equal(a, b)


def test_vww_rnnpool_schedules_agree_and_logits_follow_float():
    torch.manual_seed(2)
    model = _randomize(mobilenetv2_rnnpool_vww(image_size=64), 2)
    x = torch.rand(6, 3, 64, 64)
    qm = quantize(model, x[:4], convert_activations=True)
    np.testing.assert_array_equal(qm.run_int8(x[4:], "layer"), qm.run_int8(x[4:], "patch"))
    with torch.no_grad():
        ref = qm.float_model(x[4:])
    assert _cosine(ref, qm.run(x[4:])) >= 0.99


def test_mobilenetv2_rows_streamed_blocks_agree_bit_for_bit():
    """No RNNPool: the patch schedule streams every MBConv (t = 1 and t = 6, residual or not) row by row."""
    model = _randomize(mobilenetv2_vww(), 3)
    x = torch.rand(3, 3, 64, 64)
    qm = quantize(model, x[:2])
    np.testing.assert_array_equal(qm.run_int8(x[2:], "layer"), qm.run_int8(x[2:], "patch"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_small_classifier_logits_cosine(seed):
    torch.manual_seed(seed)
    model = _randomize(small_rnnpool_classifier(num_classes=10), seed)
    x = torch.rand(40, 1, 32, 32)
    qm = quantize(model, x[:24])
    with torch.no_grad():
        ref = model(x[24:])
    assert _cosine(ref, qm.run(x[24:], "layer")) >= 0.99
    np.testing.assert_array_equal(qm.run_int8(x[24:], "layer"), qm.run_int8(x[24:], "patch"))


def test_every_intermediate_is_integer(face_quant):
    _, qm, x = face_quant
    for schedule in ("layer", "patch"):
        env = qm.intermediates(x, schedule)
        assert len(env) > 5
        for name, value in env.items():
            assert value.dtype == np.int8, (schedule, name, value.dtype)


def test_percentile_calibration_clips_outliers():
    torch.manual_seed(0)
    model = _randomize(small_rnnpool_classifier())
    x = torch.rand(16, 1, 32, 32)
    x[0, 0, 0, 0] = 50.0  # one outlier pixel
    minmax, pct = quantize(model, x, "minmax"), quantize(model, x, "percentile", percentile=99.9)
    assert pct.input_qparams.scale < minmax.input_qparams.scale / 10
    with pytest.raises(ValueError, match="method"):
        quantize(model, x, "kl")


def test_sigmoid_rnnpool_needs_conversion():
    model = nn.Sequential(RNNPool2d(1, 4, 4, 4), nn.Flatten(1))
    with pytest.raises(ValueError, match="piecewise_linear"):
        quantize(model, torch.rand(2, 1, 8, 8))
    qm = quantize(model, torch.rand(2, 1, 8, 8), convert_activations=True)
    assert qm.run(torch.rand(1, 1, 8, 8)).shape == (1, 64)  # 2 x 2 patches x 16 channels


def test_gru_rnnpool_is_refused():
    model = nn.Sequential(RNNPool2d(1, 4, 4, 4, cell="gru", piecewise_linear=True))
    with pytest.raises(TypeError, match="FastGRNN"):
        quantize(model, torch.rand(2, 1, 8, 8))


class _ViewNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=1)


@pytest.mark.parametrize("model, match", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), "MaxPool2d"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid()), "Sigmoid"),
    (_ViewNet(), "mean"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), ReNet2d(2, 4, 2)), r"module '1' \(ReNet2d\) cannot be traced"),
])
def test_unsupported_modules_and_functions_are_named(model, match):
    with pytest.raises(UnsupportedError, match=match):
        quantize(model, torch.rand(2, 1, 8, 8))


class _Head(DetectionHeadRole):
    """A detection head written outside the model zoo: it declares the role, nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.loc, self.conf, self.maxout_background = nn.Conv2d(3, 4, 3, 1, 1), nn.Conv2d(3, 4, 3, 1, 1), 3

    def forward(self, x):
        conf = self.conf(x)
        conf = torch.cat([conf[:, :3].amax(1, keepdim=True), conf[:, 3:]], 1)
        return self.loc(x).permute(0, 2, 3, 1).flatten(1, 2), conf.permute(0, 2, 3, 1).flatten(1, 2)


def test_blocks_are_recognised_by_their_role_not_their_class():
    """The converter table looks modules up by type, most derived first: any module declaring
    DetectionHeadRole is one head op, calibrated per conv, equal to the float head's output."""
    torch.manual_seed(0)
    class Detector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.relu, self.head = nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), _Head()

        def forward(self, x):
            loc, conf = self.head(self.relu(self.conv(x)))
            return loc, conf

    model = Detector().eval()
    x = torch.rand(4, 1, 12, 12)
    qm = quantize(model, x)
    assert [op.kind for op in qm.ops] == ["conv", "head"] and isinstance(qm.ops[1], HeadOp)
    assert {"head.loc", "head.conf"} <= set(qm.qparams)
    with torch.no_grad():
        ref = model(x)
    for f, q in zip(ref, qm.run(x, "layer")):
        assert _cosine(f, q) >= 0.99
    assert "DetectionHead" in SUPPORTED


def test_the_emulator_does_not_import_the_model_zoo():
    code = ("import importlib, pkgutil, sys, rnnpool_lite.m4 as m4; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(m4.__path__, 'rnnpool_lite.m4.')]; "
            "print(sorted(m for m in sys.modules if m.startswith('rnnpool_lite.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_batchnorm_that_cannot_be_folded_is_refused():
    with pytest.raises(UnsupportedError, match="BatchNorm2d"):
        quantize(nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 2, 3)).eval(), torch.rand(2, 1, 8, 8))


def test_bad_schedule_and_input_are_refused(face_quant):
    _, qm, x = face_quant
    with pytest.raises(ValueError, match=r"schedule must be one of \('layer', 'patch'\), got 'row'"):
        qm.run(x, "row")
    with pytest.raises(ValueError, match=r"one of \('layer', 'patch'\)"):
        qm.report((3, 72, 96), "Patch")
    with pytest.raises(ValueError, match="N, C, H, W"):
        qm.run(x[0])
    with pytest.raises(TypeError, match="nn.Module"):
        quantize("model", x)
    with pytest.raises(TypeError, match="int8"):
        qm.run_int8(np.zeros((1, 3, 72, 96), dtype=np.int32))
    xq = qm.quantize_input(x)  # an int8 batch runs as is
    for a, b in zip(qm.run_int8(xq, "layer"), qm.run_int8(x, "layer")):
        np.testing.assert_array_equal(a, b)


def random_stem(convs, pool, size, seed):
    """A conv stem (kernel, stride, padding per conv) + RNNPool + 1x1 conv and a 2-image batch, or
    (None, None) where the maps shrink below a kernel (not a valid model). Shared with test_m4_export."""
    k, s, p = pool
    torch.manual_seed(seed)
    layers, c = [], 1
    for kc, sc, pc in convs:
        layers += [nn.Conv2d(c, 3, kc, sc, pc), nn.BatchNorm2d(3), nn.ReLU()]
        c = 3
    model = nn.Sequential(*layers, RNNPool2d(c, 4, k, s, min(p, k - 1), piecewise_linear=True), nn.Conv2d(16, 2, 1))
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        try:
            model(x)
        except (RuntimeError, ValueError):
            return None, None
    return _randomize(model, seed), x


@st.composite
def stems(draw):
    convs = [(draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(0, 2)))
             for _ in range(draw(st.integers(1, 2)))]
    convs = [(k, s, min(p, k - 1)) for k, s, p in convs]
    pool = (draw(st.integers(2, 6)), draw(st.integers(1, 4)), draw(st.integers(0, 2)))
    size = (draw(st.integers(12, 40)), draw(st.integers(12, 40)))
    return convs, pool, size, draw(st.integers(0, 100))


@settings(max_examples=12)
@given(stems())
def test_any_tileable_stem_agrees_bit_for_bit(case):
    """Random conv stems (kernel, stride, padding) before an RNNPool: the patch schedule's crops,
    border masks and regions reproduce the whole-map computation exactly."""
    convs, pool, size, seed = case
    model, x = random_stem(convs, pool, size, seed)
    assume(model is not None)
    qm = quantize(model, x)
    np.testing.assert_array_equal(qm.run_int8(x, "layer"), qm.run_int8(x, "patch"))
