"""The simulated arena, the report, and the paper's RAM claims measured at full resolution."""
from __future__ import annotations

import matplotlib
import pytest
import torch

from rnnpool_lite.m4 import KIB, M4_SRAM_BYTES, Arena, plot_arena, quantize
from rnnpool_lite.m4.arena import TIMELINE_COLUMNS
from rnnpool_lite.m4.report import buffer_lifetimes
from rnnpool_lite.models import mobilenetv2_rnnpool_vww, mobilenetv2_vww, rnnpool_face

matplotlib.use("Agg")


def test_arena_first_fit_reuses_gaps_and_records_the_peak():
    arena = Arena(align=4)
    assert arena.allocate("a", 100) == 0
    assert arena.allocate("b", 50) == 100
    arena.free("a")
    assert arena.allocate("c", 30) == 0  # first gap that fits
    assert arena.allocate("d", 80) == 152  # does not fit in the 68-byte hole left at 32
    assert arena.peak == 232
    assert list(arena.timeline.columns) == TIMELINE_COLUMNS
    with pytest.raises(ValueError, match="already"):
        arena.allocate("b", 1)
    with pytest.raises(KeyError, match="not allocated"):
        arena.free("a")


def _quantized(model, calibration_shape):
    # the report depends on shapes and weights only: calibrate on a small image, measure at full size
    return quantize(model.eval(), torch.rand(*calibration_shape), convert_activations=True)


@pytest.fixture(scope="module")
def face_quant():
    torch.manual_seed(0)
    return _quantized(rnnpool_face("Quant"), (1, 3, 64, 96))


def test_face_quant_vga_patch_schedule_fits_256kb(face_quant):
    patch = face_quant.report((3, 480, 640), "patch")
    layer = face_quant.report((3, 480, 640), "layer")
    assert patch.peak_ram_bytes <= M4_SRAM_BYTES  # paper: 225 KB
    assert layer.peak_ram_bytes > 2.5 * patch.peak_ram_bytes
    # RNNPool output (60 x 80 x 32) and the next block's output (60 x 80 x 16) are live together
    assert patch.peak_ram_bytes >= 60 * 80 * (32 + 16)
    assert patch.network_macs == layer.network_macs and patch.macs > layer.macs  # overlaps recomputed
    assert patch.flash_bytes == layer.flash_bytes > 0
    assert patch.latency_ms(80e6) == pytest.approx(patch.cycles / 80e3)


def test_counting_the_input_adds_the_frame_to_the_layer_schedule(face_quant):
    off = face_quant.report((3, 96, 128), "layer")
    on = face_quant.report((3, 96, 128), "layer", count_input=True)
    assert on.peak_ram_bytes >= off.peak_ram_bytes
    assert on.timeline.buffer.iloc[0] == face_quant.input_name and on.timeline.bytes.iloc[0] == 3 * 96 * 128


def test_counting_the_outputs_keeps_every_head_output(face_quant):
    streamed = face_quant.report((3, 96, 128), "patch")
    kept = face_quant.report((3, 96, 128), "patch", count_output=True, clock_hz=48e6)
    priors = 24 * 32 + 12 * 16 + 6 * 8 + 3 * 4 + 2 * 2 + 1
    assert kept.peak_ram_bytes >= streamed.peak_ram_bytes
    assert kept.peak_ram_bytes >= priors * 6  # loc (4) and conf (2) of every prior, int8
    assert kept.latency_ms() == pytest.approx(kept.cycles / 48e3)


def test_face_m4_with_its_frame_fits_256kb():
    torch.manual_seed(0)
    qm = _quantized(rnnpool_face("M4"), (1, 1, 64, 80))
    report = qm.report((1, 240, 320), "patch", count_input=True)
    assert 320 * 240 <= report.peak_ram_bytes <= M4_SRAM_BYTES  # paper: 188 KB


def test_vww_rnnpool_needs_several_times_less_ram():
    torch.manual_seed(0)
    base = _quantized(mobilenetv2_vww(), (1, 3, 64, 64)).report((3, 224, 224), "patch")
    pooled = _quantized(mobilenetv2_rnnpool_vww(), (1, 3, 64, 64)).report((3, 224, 224), "patch")
    assert base.peak_ram_bytes > 3 * pooled.peak_ram_bytes  # paper: ~250 KB vs ~34 KB


def test_timeline_and_plot(face_quant):
    report = face_quant.report((3, 96, 128), "patch")
    spans = buffer_lifetimes(report.timeline)
    assert (spans.end > spans.start).all()
    assert (spans.offset + spans.bytes).max() <= report.peak_ram_bytes
    ax = plot_arena(report)
    assert len(ax.patches) == len(spans)
    assert report.summary()["peak RAM (KB)"] == round(report.peak_ram_bytes / KIB, 1)
    with pytest.raises(ValueError, match="clock_hz"):
        report.latency_ms(0)
    with pytest.raises(ValueError, match="input_size"):
        face_quant.report((480, 640))
