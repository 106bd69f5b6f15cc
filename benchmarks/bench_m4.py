"""Emulating RNNPool-Face-Quant in int8 on one 640x480 frame: time of both schedules + the report.

Quantizes a randomly initialised Face-Quant (the RNNPool's activations swapped for the
piecewise-linear ones; speed and memory do not depend on the weights' values) on a few random
frames, then runs one frame with the ``"layer"`` and the ``"patch"`` schedule, interleaved over
the repeats, checks that the integer outputs agree bit for bit, and prints the median times
(target: < 20 s per frame on 2 cores) and the report table of both schedules next to the paper.

Run: ``python benchmarks/bench_m4.py [--threads 2] [--repeats 3] [--clock-mhz 80]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
import torch

from rnnpool_lite.m4 import quantize
from rnnpool_lite.models import rnnpool_face

PAPER_PEAK_KB = 225  # RNNPool-Face-Quant, VGA, patch by patch (paper, Section 5.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock-mhz", type=float, default=80.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = rnnpool_face("Quant").eval()
    frames = torch.rand(3, 3, 480, 640)
    start = time.perf_counter()
    qmodel = quantize(model, frames[:2], convert_activations=True)
    print(f"quantize (calibration on 2 frames): {time.perf_counter() - start:.1f} s")
    times: dict[str, list[float]] = {"layer": [], "patch": []}
    outputs = {}
    for _ in range(args.repeats):
        for schedule in times:
            start = time.perf_counter()
            outputs[schedule] = qmodel.run_int8(frames[2:], schedule)
            times[schedule].append(time.perf_counter() - start)
    same = all(np.array_equal(a, b) for a, b in zip(outputs["layer"], outputs["patch"]))
    for schedule, ts in times.items():
        print(f"{schedule:>5} schedule, one 640x480 frame: median {statistics.median(ts):.2f} s "
              f"(target < 20 s)")
    print(f"integer outputs identical in both schedules: {same}")
    clock = args.clock_mhz * 1e6
    rows = [qmodel.report((3, 480, 640), s).summary(clock) for s in ("layer", "patch")]
    table = pd.DataFrame(rows).set_index("schedule")
    table["paper peak RAM (KB)"] = ["-", PAPER_PEAK_KB]
    print(table.to_string())


if __name__ == "__main__":
    main()
