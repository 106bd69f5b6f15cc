"""RNNPool-Face-M4 (320x240, frame in RAM) in C: numpy emulator vs host C build vs Cortex-M4 on QEMU.

One run, on the same int8 frame and weights: the emulator's ``run_int8`` (patch schedule), the
host ``cc -O2`` build and the Cortex-M4 build under QEMU (plain C and with ``SMLAD``), interleaved
over the repeats; outputs checked bit for bit; prints median wall times, their ratios, and the
Cortex-M4 instruction counts next to the emulator's cycle model and the paper's ~1.76G cycles
(10.45 s at 168 MHz).

Run: ``python benchmarks/bench_m4_qemu.py [--repeats 3]`` (needs gcc-arm-none-eabi,
libnewlib-arm-none-eabi and qemu-system-arm).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rnnpool_lite.m4 import quantize
from rnnpool_lite.m4.export import export_c
from rnnpool_lite.m4.target import run_project
from rnnpool_lite.models import rnnpool_face

PAPER_CYCLES = 10.45 * 168e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    qm = quantize(rnnpool_face("M4").eval(), torch.rand(2, 1, 60, 80))
    xq = qm.quantize_input(torch.rand(1, 1, 240, 320))
    size = (1, 240, 320)
    with tempfile.TemporaryDirectory() as tmp:
        projects = {"host": export_c(qm, Path(tmp) / "host", size, count_input=True),
                    "qemu": export_c(qm, Path(tmp) / "qemu", size, count_input=True),
                    "qemu+smlad": export_c(qm, Path(tmp) / "smlad", size, count_input=True, smlad=True)}
        times: dict[str, list[float]] = {"emulator": [], **{k: [] for k in projects}}
        runs = {}
        for _ in range(args.repeats):
            start = time.perf_counter()
            ref = qm.run_int8(xq)
            times["emulator"].append(time.perf_counter() - start)
            for name, project in projects.items():
                out, runs[name] = run_project(project, xq, name.split("+")[0])
                assert all(np.array_equal(a, b) for a, b in zip(out, ref)), f"{name} differs from the emulator"
                times[name].append(runs[name].wall_s)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("median wall time per frame (s): " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    print(f"ratios: emulator / host C {med['emulator'] / med['host']:.1f}x, "
          f"QEMU / emulator {med['qemu'] / med['emulator']:.1f}x")
    cycles = qm.report(size, count_input=True).cycles
    for name in ("qemu", "qemu+smlad"):
        r = runs[name]
        print(f"{name}: {r.instructions / 1e9:.3f}G instructions; paper cycles / ours {PAPER_CYCLES / r.instructions:.2f}x; "
              f"emulator cycle model / ours {cycles / r.instructions:.2f}x; peak RAM {r.peak_ram_bytes / 1024:.1f} KB")
    print(f"SMLAD saves {1 - runs['qemu+smlad'].instructions / runs['qemu'].instructions:.1%} of the instructions")


if __name__ == "__main__":
    main()
