"""The C export on a Cortex-M4 under QEMU (mps2-an386): bit-exact, RAM from the ELF + painted stack.

Skipped, with the reason, where gcc-arm-none-eabi / libnewlib-arm-none-eabi / qemu-system-arm
are not installed (CI installs them). Budget: well under 3 minutes on 2 cores.
"""
from __future__ import annotations

import subprocess
from importlib import resources

import numpy as np
import pytest
import torch

from rnnpool_lite.m4 import M4_SRAM_BYTES, quantize
from rnnpool_lite.m4.export import export_c, write_input
from rnnpool_lite.m4.target import run_on_m4
from rnnpool_lite.m4.toolchain import (
    ARM_CFLAGS,
    DEBIAN_PACKAGES,
    QEMU_ARGS,
    RamOverflow,
    build_m4,
    m4_toolchain_available,
)
from rnnpool_lite.models import rnnpool_face
from rnnpool_lite.models.small import small_rnnpool_classifier
from test_m4_export import _same, stem_model
from test_m4_quantize import _randomize

pytestmark = pytest.mark.skipif(not m4_toolchain_available(),
                                reason=f"Cortex-M4 toolchain missing: apt-get install {' '.join(DEBIAN_PACKAGES)}")

PAPER_M4_CYCLES = 10.45 * 168e6  # Face-M4: 10.45 s per frame at 168 MHz


def test_icount_timer_counts_40_instructions_per_tick(tmp_path):
    """The instruction clock: a loop of exactly 2 x 10^6 instructions reads 50 000 ticks."""
    src = resources.files("rnnpool_lite.m4") / "c"
    for name in ("rnn_platform.h", "platform_m4.c", "m4.ld"):
        (tmp_path / name).write_text((src / name).read_text())
    (tmp_path / "t.c").write_text(
        '#include "rnn_platform.h"\nint rnn_main(void) {\n  rnn_io_open();\n  uint32_t n = 1000000, t0 = rnn_clock();\n'
        '  __asm__ volatile("1: subs %0, %0, #1\\n bne 1b" : "+r"(n));\n  uint32_t t = rnn_clock() - t0;\n'
        '  rnn_io_emit(0, 0, &t, 4);\n  rnn_io_close();\n  return 0;\n}\n')
    subprocess.run(["arm-none-eabi-gcc", *ARM_CFLAGS, "-T", "m4.ld", "-o", "t.elf", "t.c", "platform_m4.c", "-lgcc"],
                   cwd=tmp_path, check=True)
    subprocess.run(["qemu-system-arm", *QEMU_ARGS, "-kernel", "t.elf"], cwd=tmp_path, check=True, timeout=60)
    ticks = int(np.frombuffer((tmp_path / "output.bin").read_bytes()[12:16], "<u4")[0])
    assert abs(ticks * 40 - 2_000_000) <= 80


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32)
    return quantize(small_rnnpool_classifier().eval(), x[:3]), x[3:]


@pytest.mark.parametrize("kernels", ["reference", "optimized"])
def test_small_classifier_on_qemu_is_bit_exact(small, kernels, tmp_path):
    qm, x = small
    out, run = run_on_m4(qm, x, target="qemu", kernels=kernels, work_dir=tmp_path)
    assert _same(out, qm.run_int8(x))
    # the optimized kernels keep im2col columns, a patch's FastGRNN projections and widened weights on the stack
    assert run.sections[".bss"] >= run.arena_bytes and 0 < run.stack_bytes < (8192 if kernels == "optimized" else 2048)
    stem_parts = run.steps.instructions[run.steps.part_of_stem].sum()
    stem_total = run.steps.set_index("step").instructions["stem (all patches, total)"]
    assert 0 < stem_parts <= stem_total  # the stem's ops are timed inside its loop
    steps = run.steps.instructions[~run.steps.part_of_stem].sum()
    assert 0.99 * run.instructions <= steps <= run.instructions  # the frame's clock covers its steps


@pytest.mark.parametrize("seed", [3, 11])
def test_random_stems_on_qemu_are_bit_exact(seed, tmp_path):
    case = ([(3, 2, 1)], (4 + seed % 3, 2 + seed % 2, 1), (20 + seed, 24), seed, bool(seed % 2))
    qm, x = stem_model(case)
    out, _ = run_on_m4(qm, x, target="qemu", count_input=case[-1], work_dir=tmp_path)
    assert _same(out, qm.run_int8(x))


def test_face_m4_320x240_frame_in_ram(tmp_path):
    """Table 5's deployment: fits 256 KB, bit-exact, measured RAM within 10% of the planner's arena,
    fewer instructions than the paper's 1.76G cycles."""
    torch.manual_seed(0)
    qm = quantize(_randomize(rnnpool_face("M4"), 1), torch.rand(2, 1, 60, 80))
    x = torch.rand(1, 1, 240, 320)
    out, run = run_on_m4(qm, x, target="qemu", count_input=True, work_dir=tmp_path)
    assert _same(out, qm.run_int8(x))
    report = qm.report((1, 240, 320), count_input=True)
    assert run.arena_bytes == report.peak_ram_bytes and run.peak_ram_bytes <= M4_SRAM_BYTES
    assert abs(run.peak_ram_bytes - report.peak_ram_bytes) <= 0.10 * report.peak_ram_bytes
    assert run.instructions < PAPER_M4_CYCLES
    assert run.flash_bytes < 2 * 1024 * 1024 and run.sections[".frame"] == 0


@pytest.fixture(scope="module")
def face_quant():
    torch.manual_seed(0)
    return quantize(_randomize(rnnpool_face("Quant"), 1), torch.rand(2, 3, 72, 96))


def test_face_quant_vga_streamed_from_flash(face_quant, tmp_path):
    qm = face_quant
    x = torch.rand(1, 3, 480, 640)
    out, run = run_on_m4(qm, x, target="qemu", work_dir=tmp_path)
    assert _same(out, qm.run_int8(x))
    report = qm.report((3, 480, 640))
    assert run.peak_ram_bytes <= M4_SRAM_BYTES  # the paper: 225 KB
    assert abs(run.peak_ram_bytes - report.peak_ram_bytes) <= 0.10 * report.peak_ram_bytes
    assert run.sections[".frame"] == 3 * 480 * 640  # the frame is in flash, not RAM


def test_a_model_that_does_not_fit_fails_to_link_clearly(face_quant, tmp_path):
    project = export_c(face_quant, tmp_path, (3, 480, 640), count_input=True)  # a 900 KB frame in SRAM
    write_input(project, np.zeros((1, 3, 480, 640), dtype=np.int8))
    with pytest.raises(RamOverflow, match="256 KB SRAM"):
        build_m4(tmp_path)
