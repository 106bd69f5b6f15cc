"""``run_on_m4``: export a quantized model to C, build it, run it (host or QEMU Cortex-M4), measure.

What is measured, and how (see :class:`M4Run`):

* static RAM (``.data + .bss``: the arena and a few words) and flash (``.text + .rodata``; the
  streamed frame's ``.frame`` section apart), read from the linked ELF with ``arm-none-eabi-size``;
* the stack high-water mark: the startup code paints the free SRAM below the stack with a
  pattern, and after the frame the program finds the deepest word that changed;
* executed instructions: QEMU runs with ``-icount shift=0``, which makes the virtual clock
  advance exactly 1 ns per executed guest instruction; the board's CMSDK timer counts that
  clock at 25 MHz, so one tick is 40 instructions (checked by a calibration loop in the tests).
  QEMU counts instructions, not cycles: a Cortex-M4 takes one or more cycles per instruction
  (loads 2, multiplies 1, taken branches 2-4), so cycles are at least the instruction count;
* wall time: the QEMU process (or host binary), start to exit.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import torch

from rnnpool_lite.m4 import toolchain
from rnnpool_lite.m4.export import STEM_TOTAL, CProject, export_c, read_outputs, write_input
from rnnpool_lite.m4.model import QuantizedModel
from rnnpool_lite.m4.plan import Schedule
from rnnpool_lite.m4.toolchain import Kernels

Target = Literal["qemu", "host"]
TARGETS: tuple[Target, ...] = get_args(Target)


@dataclass
class M4Run:
    """What one frame measured on the target (``"qemu"``: Cortex-M4 under QEMU; ``"host"``: cc build)."""

    target: Target
    arena_bytes: int  # the emulator planner's arena, as exported
    sections: dict[str, int]  # ELF section sizes (qemu only)
    stack_bytes: int  # painted-stack high-water mark (qemu only)
    instructions: int  # executed instructions for the frame (qemu only)
    steps: pd.DataFrame  # step, instructions (qemu only; stem ops are parts of the stem's total)
    wall_s: float
    weight_bytes: int

    @property
    def static_ram_bytes(self) -> int:
        return self.sections.get(".data", 0) + self.sections.get(".bss", 0)

    @property
    def peak_ram_bytes(self) -> int:
        """Static RAM + the stack's high-water mark: the SRAM the frame needed."""
        return self.static_ram_bytes + self.stack_bytes

    @property
    def flash_bytes(self) -> int:
        """Code and constants (.text + .rodata); a streamed frame (.frame) is not counted."""
        return self.sections.get(".text", 0) + self.sections.get(".rodata", 0)

    def summary(self) -> dict[str, float]:
        kib = 1024
        return {"static RAM (KB)": round(self.static_ram_bytes / kib, 1),
                "stack (KB)": round(self.stack_bytes / kib, 2),
                "peak RAM (KB)": round(self.peak_ram_bytes / kib, 1), "arena (KB)": round(self.arena_bytes / kib, 1),
                "flash (KB)": round(self.flash_bytes / kib, 1), "instructions (M)": round(self.instructions / 1e6, 2)}


def _as_int8(qmodel: QuantizedModel, x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one frame (1, C, H, W), got shape {tuple(x.shape)}")
    if np.issubdtype(x.dtype, np.integer):
        if x.dtype != np.int8:
            raise TypeError(f"an integer frame must be int8 (already quantized), got {x.dtype}")
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be float (quantized here) or int8, got {x.dtype}")
    return qmodel.quantize_input(x)


def run_on_m4(qmodel: QuantizedModel, x: Any, schedule: Schedule = "patch", *, target: Target = "qemu",
              count_input: bool = False, kernels: Kernels = "optimized", work_dir: str | Path | None = None,
              timeout: float = 600) -> tuple[Any, M4Run]:
    """Run one frame ``x`` ``(1, C, H, W)`` (float, or int8 already quantized) through the C export.

    Returns the int8 outputs, structured like :meth:`QuantizedModel.run_int8`, and an
    :class:`M4Run`. ``target="qemu"`` builds for the Cortex-M4 and runs under QEMU;
    ``"host"`` builds with ``cc`` (outputs only). ``count_input`` keeps the frame in SRAM
    (the emulator's ``report(count_input=True)``), else it streams from flash. ``kernels``: see
    :func:`rnnpool_lite.m4.export.export_c`. ``work_dir``
    keeps the project (a temporary directory otherwise).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "qemu":
        for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"):
            toolchain.find_tool(tool)
    xq = _as_int8(qmodel, x)
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="rnnpool_m4_") as tmp:
            return _run(qmodel, xq, schedule, target, count_input, kernels, Path(tmp), timeout)
    return _run(qmodel, xq, schedule, target, count_input, kernels, Path(work_dir), timeout)


def _run(qmodel: QuantizedModel, xq: np.ndarray, schedule: Schedule, target: Target, count_input: bool,
         kernels: Kernels, out_dir: Path, timeout: float) -> tuple[Any, M4Run]:
    project = export_c(qmodel, out_dir, tuple(int(v) for v in xq.shape), schedule, count_input=count_input,
                       kernels=kernels)
    return run_project(project, xq, target, timeout)


def run_project(project: CProject, xq: np.ndarray, target: Target = "qemu",
                timeout: float = 600) -> tuple[Any, M4Run]:
    """Build and run an exported project on one int8 frame (see :func:`run_on_m4`)."""
    write_input(project, xq)
    out_dir = project.out_dir
    if target == "host":
        toolchain.build_host(out_dir, project.kernels)
        data, wall = toolchain.run_host(out_dir, timeout)
        sections: dict[str, int] = {}
    else:
        elf = toolchain.build_m4(out_dir, project.kernels)
        sections = toolchain.elf_sections(elf)
        data, wall = toolchain.run_qemu(out_dir, timeout)
    outputs, stats = read_outputs(project, data)
    n = len(project.steps)
    per_tick = 40 if target == "qemu" else 0
    insns = stats[:n].astype(np.int64) * per_tick
    steps = pd.DataFrame({"step": project.steps, "instructions": insns,
                          "part_of_stem": [False] * n})
    if STEM_TOTAL in project.steps:
        k = project.steps.index(STEM_TOTAL)
        steps.loc[: k - 1, "part_of_stem"] = True
    run = M4Run(target, project.arena_bytes, sections, int(stats[n + 1]) if target == "qemu" else 0,
                int(stats[n]) * per_tick, steps, wall, project.weight_bytes)
    return outputs, run


__all__ = ["M4Run", "TARGETS", "Target", "run_on_m4", "run_project"]
