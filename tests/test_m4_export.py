"""C export (host build): bit-exact with the emulator on every model kind, random stems, bad input."""
from __future__ import annotations

import re
import shutil
from importlib import resources

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from rnnpool_lite.m4 import UnsupportedError, quantize
from rnnpool_lite.m4.export import export_c
from rnnpool_lite.m4.target import run_on_m4
from rnnpool_lite.m4.toolchain import DEBIAN_PACKAGES, ToolchainMissing
from rnnpool_lite.models import mobilenetv2_rnnpool_vww, mobilenetv2_vww, rnnpool_face
from rnnpool_lite.models.small import small_rnnpool_classifier
from test_m4_quantize import _randomize, random_stem, stems

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")


def _same(a, b) -> bool:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32)
    return quantize(small_rnnpool_classifier().eval(), x[:3]), x[3:]


@pytest.mark.parametrize("schedule", ["patch", "layer"])
@pytest.mark.parametrize("count_input", [False, True])
def test_small_classifier_host_build_is_bit_exact(small, schedule, count_input, tmp_path):
    qm, x = small
    out, run = run_on_m4(qm, x, schedule, target="host", count_input=count_input, work_dir=tmp_path)
    assert _same(out, qm.run_int8(x, schedule))
    assert run.arena_bytes == qm.report((1, 32, 32), schedule, count_input=count_input).peak_ram_bytes
    src = (tmp_path / "model.c").read_text()
    assert "static const int8_t" in src and f"static uint8_t arena_bytes[{run.arena_bytes}]" in src
    assert ("rnn_io_read(" in src) == count_input and (tmp_path / "frame.S").exists() != count_input


@pytest.mark.parametrize("name", ["Face-Quant", "Face-M4", "VWW", "VWW-RNNPool"])
def test_paper_models_host_build_is_bit_exact(name, tmp_path):
    build, cal, size = {"Face-Quant": (lambda: rnnpool_face("Quant"), (2, 3, 72, 96), (3, 96, 128)),
                        "Face-M4": (lambda: rnnpool_face("M4"), (2, 1, 60, 80), (1, 240, 320)),
                        "VWW": (mobilenetv2_vww, (2, 3, 64, 64), (3, 96, 96)),
                        "VWW-RNNPool": (mobilenetv2_rnnpool_vww, (2, 3, 64, 64), (3, 112, 112))}[name]
    torch.manual_seed(1)
    # Face-Quant and Face-M4 are built piecewise-linear (no conversion); the VWW RNNPool is converted
    qm = quantize(_randomize(build(), 1), torch.rand(*cal), convert_activations=name == "VWW-RNNPool")
    x = torch.rand(1, *size)
    out, _ = run_on_m4(qm, x, target="host", count_input=name == "Face-M4", work_dir=tmp_path)
    assert _same(out, qm.run_int8(x))


@st.composite
def stems_and_frame(draw):
    """test_m4_quantize's random stems, plus whether the frame is counted in RAM (or streamed)."""
    return (*draw(stems()), draw(st.booleans()))


def stem_model(case):
    """The quantized random stem of ``case`` and one image, or (None, None) for an invalid stem."""
    convs, pool, size, seed, _ = case
    model, x = random_stem(convs, pool, size, seed)
    return (None, None) if model is None else (quantize(model, x), x[:1])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stems_and_frame())
def test_random_stems_host_build_is_bit_exact(tmp_path, case):
    """Random conv stems + RNNPool (kernel, stride, padding, crops at the borders, a 4-D output in
    HWC order), frame streamed or in RAM: the C build equals run_int8 bit for bit."""
    qm, x = stem_model(case)
    assume(qm is not None)
    out, _ = run_on_m4(qm, x, target="host", count_input=case[-1], work_dir=tmp_path)
    assert _same(out, qm.run_int8(x))


def _header_structs() -> dict[str, set[str]]:
    """Field names of every ``typedef struct {...} name;`` in rnn_kernels.h."""
    header = (resources.files("rnnpool_lite.m4") / "c" / "rnn_kernels.h").read_text()
    header = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    structs = {}
    for body, name in re.findall(r"typedef struct \{(.*?)\}\s*(\w+);", header, flags=re.S):
        fields = set()
        for decl in body.split(";"):
            decl = re.sub(r"\[.*?\]", "", decl).strip()
            if decl:
                fields.update(re.sub(r"^.*?\b(?:int\d+_t|rnn_\w+)\s*\**", "", decl).replace("*", "").split(","))
        structs[name] = {f.strip() for f in fields}
    return structs


def _initializer(text: str, start: int) -> str:
    """The braces-balanced initializer that opens at ``text[start]``."""
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start:end + 1]
    raise AssertionError("unbalanced braces")


def _fields(init: str) -> set[str]:
    """The top-level designated fields of an initializer ``{.a = 1, .b = {.c = 2}}``."""
    depth, top = 0, []
    for ch in init[1:-1]:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        top.append(ch if depth == 0 else " ")
    return set(re.findall(r"(?:^|,)\s*\.(\w+)\s*=", "".join(top)))


@pytest.mark.parametrize("schedule", ["patch", "layer"])
def test_every_struct_is_filled_by_field_name(schedule, tmp_path):
    """Designated initializers for every struct of rnn_kernels.h, naming each of its fields once:
    a field reordered, added or renamed in the header cannot be silently misassigned."""
    torch.manual_seed(1)
    qm = quantize(_randomize(rnnpool_face("Quant"), 1), torch.rand(2, 3, 72, 96))
    export_c(qm, tmp_path, (3, 96, 128), schedule)
    src = (tmp_path / "model.c").read_text()
    structs = _header_structs()
    assert {"rnn_view", "rnn_region", "rnn_conv_params", "rnn_mbconv_params", "rnn_fastgrnn",
            "rnn_rnnpool_params"} <= set(structs)
    seen = set()
    for m in re.finditer(r"\b(rnn_\w+)\s+\w+\s*=\s*\{", src):
        ctype, init = m.group(1), _initializer(src, m.end() - 1)
        assert _fields(init) == structs[ctype], (ctype, init[:200])
        seen.add(ctype)
        if ctype == "rnn_rnnpool_params":
            for cell in re.findall(r"\.rnn[12] = (\{.*?\})", init):
                assert _fields(cell) == structs["rnn_fastgrnn"]
    assert seen == {"rnn_view", "rnn_region", "rnn_conv_params", "rnn_mbconv_params", "rnn_rnnpool_params"} \
        if schedule == "patch" else seen >= {"rnn_view", "rnn_region", "rnn_conv_params", "rnn_rnnpool_params"}


def test_unsupported_layer_is_named_at_export(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=2), nn.ReLU()).eval()
    qm = quantize(model, torch.rand(2, 1, 12, 12))
    with pytest.raises(UnsupportedError, match=r"layer '1'.*grouped convolution"):
        export_c(qm, tmp_path, (1, 12, 12))

    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(1, 2, 1), nn.Conv2d(1, 2, 1), nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.c(torch.cat([self.a(x), self.b(x)], 1))

    qm = quantize(Cat().eval(), torch.rand(2, 1, 8, 8))
    with pytest.raises(UnsupportedError, match="concatenation"):
        export_c(qm, tmp_path, (1, 8, 8))


def test_bad_frames_are_refused(small, tmp_path):
    qm, x = small
    with pytest.raises(ValueError, match=r"one frame \(1, C, H, W\)"):
        run_on_m4(qm, torch.rand(2, 1, 32, 32), target="host", work_dir=tmp_path)
    with pytest.raises(TypeError, match="int8"):
        run_on_m4(qm, np.zeros((1, 1, 32, 32), dtype=np.int32), target="host", work_dir=tmp_path)
    with pytest.raises(TypeError, match="float"):
        run_on_m4(qm, np.zeros((1, 1, 32, 32), dtype=bool), target="host", work_dir=tmp_path)
    with pytest.raises(ValueError, match="channels"):
        run_on_m4(qm, torch.rand(1, 3, 32, 32), target="host", work_dir=tmp_path)
    with pytest.raises(ValueError, match="target"):
        run_on_m4(qm, x, target="stm32", work_dir=tmp_path)
    with pytest.raises(TypeError, match="QuantizedModel"):
        export_c(small_rnnpool_classifier(), tmp_path, (1, 32, 32))


def test_missing_toolchain_names_the_debian_packages(small, tmp_path, monkeypatch):
    qm, x = small
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if "arm" in name else real(name, *a, **k))
    with pytest.raises(ToolchainMissing, match=" ".join(DEBIAN_PACKAGES)):
        run_on_m4(qm, x, target="qemu", work_dir=tmp_path)
