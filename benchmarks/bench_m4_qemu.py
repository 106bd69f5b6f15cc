"""RNNPool-Face-M4 (320x240, frame in RAM) in C: the kernels side by side on the emulated Cortex-M4.

One run, on the same int8 frame and weights, outputs checked bit for bit against the emulator's
``run_int8``:

* ``plain C``: the reference loops (``export_c(..., kernels="reference")``, ``-DRNN_KERNELS_REFERENCE``);
* ``old SMLAD``: the kernels before the CMSIS-NN-style rewrite (``SMLAD`` in the pointwise convs and
  FastGRNN's ``U h`` only), built from ``git show OLD_KERNELS_COMMIT:...rnn_kernels.c``;
* ``optimized``: today's kernels (``kernels="optimized"``, the default): im2col and 2 x 2 / 4-pixel
  blocked ``SMLAD`` dot products, depthwise 4 channels per step, FastGRNN on ``SMLAD`` with shared projections.

Prints, per build, the instructions per frame and per layer type, instructions per MAC (divided by
the MACs the patch schedule executes, and by the paper's count of the network), the peak RAM and
the QEMU wall time; then the instructions per kernel (stem conv, pointwise expand / project,
depthwise, residual add, RNNPool, heads, requantization) from an instrumented copy of each build
(the clock read around every kernel call: 40-instruction ticks, a few instructions per call added);
then the emulator / host C / QEMU wall times (interleaved repeats).

All builds use today's compiler flags (``toolchain.ARM_CFLAGS``), so the ``old SMLAD`` column is the
old kernel source measured today, not the figure recorded when it was current (1072.5M instructions).

Run: ``python benchmarks/bench_m4_qemu.py [--repeats 3]`` (needs gcc-arm-none-eabi,
libnewlib-arm-none-eabi and qemu-system-arm; the ``old SMLAD`` column needs git and this
repository's history).
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnpool_lite.accounting.comparison import model_profile
from rnnpool_lite.m4 import quantize, toolchain
from rnnpool_lite.m4.export import STEM_TOTAL, CProject, export_c
from rnnpool_lite.m4.model import QuantizedModel
from rnnpool_lite.m4.target import M4Run, run_project
from rnnpool_lite.models import rnnpool_face

PAPER_CYCLES = 10.45 * 168e6
OLD_KERNELS_COMMIT = "b12e224"  # the last commit with the SMLAD-in-two-places kernels
KERNELS = "src/rnnpool_lite/m4/c/rnn_kernels.c"
LAYER_TYPES = ("stem conv", "RNNPool", "MBConv", "heads")


KERNEL_KINDS = ("stem conv", "pointwise expand", "depthwise", "pointwise project", "residual add", "RNNPool",
                "heads", "requantize")
PROFILE_ID = 0xFFFFFFF1  # the instrumented build's record of ticks per kernel kind


def old_smlad_project(qm: QuantizedModel, out_dir: Path, size: tuple[int, ...]) -> CProject | None:
    """The export with the old kernel source and header (its ``RNN_USE_SMLAD`` path switched on), or None.
    The old ``rnn_rnnpool_patch`` has no ``reuse_left`` argument: it is taken out of model.c's call."""
    root = Path(__file__).resolve().parents[1]
    sources = {}
    for name in ("rnn_kernels.c", "rnn_kernels.h"):
        path = str(Path(KERNELS).with_name(name))
        res = subprocess.run(["git", "show", f"{OLD_KERNELS_COMMIT}:{path}"], cwd=root, capture_output=True, text=True)
        if res.returncode:
            print(f"old SMLAD kernels skipped: git show {OLD_KERNELS_COMMIT} failed ({res.stderr.strip()[:200]})")
            return None
        sources[name] = res.stdout
    project = export_c(qm, out_dir, size, count_input=True, kernels="optimized")
    (out_dir / "rnn_kernels.c").write_text("#define RNN_USE_SMLAD\n" + sources["rnn_kernels.c"])
    (out_dir / "rnn_kernels.h").write_text(sources["rnn_kernels.h"])
    model = (out_dir / "model.c").read_text()
    (out_dir / "model.c").write_text(re.sub(r"(rnn_rnnpool_patch\(&\w+, &in, \w+, \w+), [^,]+,", r"\1,", model))
    return project


def _wrap(source: str, pattern: str, kind: int, found: set[int]) -> str:
    """Every call statement matching ``pattern`` timed into kernel kind ``kind`` (added to ``found`` if any)."""
    out, n = re.subn(pattern, lambda m: f"RNN_PROFILE({kind}, {m.group(0)[:-1]});", source, flags=re.S)
    if n:
        found.add(kind)
    return out


def kernel_profile(project: CProject, work: Path) -> pd.Series:
    """Instructions per kernel kind (KERNEL_KINDS, and the rest of the frame) of an instrumented copy.

    The clock is read around each kernel call: in model.c around the stem conv, RNNPool, head and
    requantize calls, in ``rnn_mbconv_rows`` around its expansion, depthwise, projection and add
    (a depth counter keeps nested calls from counting twice). A kind with no call to time (the old
    kernels' depthwise loop is written inside ``rnn_mbconv_rows``) is NaN, its work in the rest."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(project.out_dir, work)
    n = len(KERNEL_KINDS)
    timer = (f"extern uint32_t rnn_clock(void);\nuint32_t rnn_profile[{n}]; static int rnn_profile_depth;\n"
             "#define RNN_PROFILE(k, call) do { if (rnn_profile_depth++) { call; } else { uint32_t t0_ = rnn_clock(); "
             "call; rnn_profile[k] += rnn_clock() - t0_; } rnn_profile_depth--; } while (0)\n")
    kernels = (work / "rnn_kernels.c").read_text().replace('#include "rnn_kernels.h"\n',
                                                            '#include "rnn_kernels.h"\n' + timer, 1)
    start = kernels.index("void rnn_mbconv_rows(")
    rows, found = kernels[start:], set()
    for kind, pattern in ((1, r"rnn_pointwise\(p->expand,[^;]*;"), (2, r"depthwise_row\(dw, rows[^;]*;"),
                          (3, r"rnn_pointwise\(p->project,[^;]*;"), (4, r"rnn_add\((xr|dst)[^;]*;")):
        rows = _wrap(rows, pattern, kind, found)
    (work / "rnn_kernels.c").write_text(kernels[:start] + rows)
    model = (work / "model.c").read_text().replace(
        '#include "rnn_platform.h"\n', '#include "rnn_platform.h"\n' + timer.replace("uint32_t rnn_profile", "extern "
        "uint32_t rnn_profile").replace(" static int rnn_profile_depth;", "\nstatic int rnn_profile_depth;"), 1)
    for kind, pattern in ((0, r"rnn_conv\(&\w+, &in, &out\);"), (5, r"rnn_rnnpool_patch\([^;]*;"),
                          (6, r"rnn_head_conv\([^;]*;"), (7, r"rnn_requantize\([^;]*;")):
        model = _wrap(model, pattern, kind, found)
    model = model.replace("    rnn_io_close();\n    return 0;",
                          f"    rnn_io_emit(0x{PROFILE_ID:08X}u, 0, rnn_profile, sizeof rnn_profile);\n"
                          "    rnn_io_close();\n    return 0;")
    (work / "model.c").write_text(model)
    toolchain.build_m4(work, project.kernels)
    data, _ = toolchain.run_qemu(work)
    records, pos = {}, 0
    while pos < len(data):
        ident, _, size = np.frombuffer(data, dtype="<u4", count=3, offset=pos)
        records[int(ident)] = np.frombuffer(data, dtype="<u4", count=int(size) // 4, offset=pos + 12)
        pos += 12 + int(size)
    ticks = records[PROFILE_ID].astype(np.int64) * 40
    total = int(records[0xFFFFFFF0][-2]) * 40
    per_kind = [float(t) if k in found else float("nan") for k, t in enumerate(ticks)]
    return pd.Series([*per_kind, total - ticks.sum()], index=[*KERNEL_KINDS, "rest (loops, crops, glue)"])


def layer_type(step: str) -> str:
    """The layer type of a timed step label of the C program."""
    if "rnnpool" in step:
        return "RNNPool"
    if "(conv, stem)" in step:
        return "stem conv"
    return "heads" if "(head)" in step else "MBConv"


def executed_macs(qm: QuantizedModel, size: tuple[int, ...], steps: list[str]) -> pd.Series:
    """MACs the patch schedule executes per layer type (the emulator's report, stem recomputation included)."""
    ops = qm.report(size, count_input=True).ops
    stem_ops = {s.split(" ")[0] for s in steps if "stem)" in s}
    kinds = ops.apply(lambda r: "RNNPool" if r.kind == "rnnpool" else "heads" if r.kind == "head"
                      else "stem conv" if r.op in stem_ops else "MBConv", axis=1)
    return ops.executed_macs.groupby(kinds).sum().reindex(LAYER_TYPES, fill_value=0)


def per_type(run: M4Run) -> pd.Series:
    steps = run.steps[run.steps.step != STEM_TOTAL]
    return steps.instructions.groupby(steps.step.map(layer_type)).sum().reindex(LAYER_TYPES, fill_value=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    qm = quantize(rnnpool_face("M4").eval(), torch.rand(2, 1, 60, 80))
    xq = qm.quantize_input(torch.rand(1, 1, 240, 320))
    size = (1, 240, 320)
    with tempfile.TemporaryDirectory() as tmp:
        projects = {"host": export_c(qm, Path(tmp) / "host", size, count_input=True, kernels="optimized"),
                    "plain C": export_c(qm, Path(tmp) / "plain", size, count_input=True, kernels="reference"),
                    "optimized": export_c(qm, Path(tmp) / "optimized", size, count_input=True, kernels="optimized")}
        old = old_smlad_project(qm, Path(tmp) / "old", size)
        if old is not None:
            projects = {**projects, "old SMLAD": old}
        times: dict[str, list[float]] = {"emulator": [], **{k: [] for k in projects}}
        runs: dict[str, M4Run] = {}
        for _ in range(args.repeats):
            start = time.perf_counter()
            ref = qm.run_int8(xq)
            times["emulator"].append(time.perf_counter() - start)
            for name, project in projects.items():
                out, runs[name] = run_project(project, xq, "host" if name == "host" else "qemu")
                assert all(np.array_equal(a, b) for a, b in zip(out, ref)), f"{name} differs from the emulator"
                times[name].append(runs[name].wall_s)
        builds = [b for b in ("plain C", "old SMLAD", "optimized") if b in runs]
        profiles = {b: kernel_profile(projects[b], Path(tmp) / f"profile_{b.replace(' ', '_')}") for b in builds}
    macs = executed_macs(qm, size, list(runs["optimized"].steps.step))
    paper_macs = model_profile("RNNPool-Face-M4").madds
    table = pd.DataFrame({b: per_type(runs[b]) / 1e6 for b in builds}).rename_axis("layer type")
    table.loc["total"] = [runs[b].instructions / 1e6 for b in builds]
    table["executed MACs (M)"] = [*(macs / 1e6), macs.sum() / 1e6]
    for b in builds:
        table[f"{b} / MAC"] = table[b] / table["executed MACs (M)"]
    pd.set_option("display.width", 200)
    print("Face-M4, 320x240, one frame on QEMU: instructions (M) per layer type and per executed MAC")
    print(table.round(2).to_string())
    print(f"executed MACs {macs.sum() / 1e6:.1f}M (patch schedule: the stem conv recomputed on overlapping "
          f"crops, FastGRNN per patch); the paper's count of the network: {paper_macs / 1e6:.1f}M")
    for b in builds:
        r = runs[b]
        print(f"{b}: {r.instructions / 1e6:.1f}M instructions, {r.instructions / macs.sum():.2f} per executed MAC, "
              f"{r.instructions / paper_macs:.2f} per paper MAC; "
              f"paper cycles / ours {PAPER_CYCLES / r.instructions:.2f}x; "
              f"peak RAM {r.peak_ram_bytes / 1024:.1f} KB (stack {r.stack_bytes / 1024:.2f} KB)")
    kernel_table = pd.DataFrame({b: prof / 1e6 for b, prof in profiles.items()}).rename_axis("kernel")
    kernel_table.loc["total (instrumented)"] = kernel_table.sum()  # the frame's total, the timers' cost included
    for b in builds:
        kernel_table[f"{b} / paper MAC"] = kernel_table[b] * 1e6 / paper_macs
    print("\ninstructions (M) per kernel, instrumented builds (each kernel call timed; per paper MAC: its share of "
          "the frame's instructions per paper MAC)")
    print(kernel_table.round(2).to_string())
    if "old SMLAD" in runs:
        print(f"optimized vs old SMLAD: {runs['old SMLAD'].instructions / runs['optimized'].instructions:.2f}x fewer "
              f"instructions; vs plain C: {runs['plain C'].instructions / runs['optimized'].instructions:.2f}x")
    med = {k: statistics.median(v) for k, v in times.items()}
    print("median wall time per frame (s): " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    print(f"ratios: emulator / host C {med['emulator'] / med['host']:.1f}x, "
          f"QEMU plain C / emulator {med['plain C'] / med['emulator']:.1f}x")


if __name__ == "__main__":
    main()
