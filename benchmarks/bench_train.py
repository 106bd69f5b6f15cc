"""Training throughput of the book's models: eager float32 NCHW against ``fit``'s default execution.

"eager" is how ``fit`` trained before it chose an execution (``TrainConfig(layout="nchw",
precision="fp32", rnnpool_kernel="torch")``); "default" is what ``choose_execution`` picks for the
model on this device (``channels_last`` for models with a 2-D convolution, RNNPool layers on the C++
kernel where it builds). Both run :func:`rnnpool_lite.train.train_step`
(forward, loss, backward, SGD with momentum 0.9 and weight decay 4e-5: a per-parameter loop
for eager, ``Execution.sgd``'s multi-tensor update for the default) from the same initial weights
on the same batches of chapter data, interleaved: after one warm-up step each, every repeat
times ``--steps`` steps of eager, then of default, so machine noise hits both alike. It prints the
median images per second of each (wall clock, and per CPU-second of the process, which a
machine shared with other jobs disturbs less), their ratios, and the training loss of both after
the last step (warm-up + repeats x steps steps) and averaged over all steps. The paths differ by
float rounding only, but a few SGD steps on two fixed batches amplify rounding (float32's
early-layer gradients of these models are ~0.5% off float64's either way), so the last losses
drift apart while the means stay close; the
chapters' seed-to-seed spread is the yardstick for accuracy.

Models: MobileNetV2-0.35x for Visual Wake Words (base and RNNPool, chapter 5) at 48 and 96 pixels
(batch 32), chapter 4's small RNNPool-Face on 128-pixel scenes (batch 16), chapter 3's probes on
the 32-pixel one-line images (batch 32): RNNPool over the whole image (h1=16, h2=32; no convolution,
so its default path is NCHW) and after a 3x3 stride-2 convolution (h1=4, h2=16).

Run: ``python benchmarks/bench_train.py [--threads 2] [--repeats 7] [--steps 2] [--models NAME ...]``.
``--profile NAME`` prints torch.profiler's top operators for default-path steps of that model;
``--precision bf16`` runs the second contender under bf16 autocast; ``--keep-freed-memory``
applies ``rnnpool_lite.train.runtime.keep_freed_memory`` first (process-wide, so it cannot be
interleaved: compare two runs).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from rnnpool_lite.data import FaceSceneDataset, FaceVsBackgroundDataset, OneLineDataset
from rnnpool_lite.detection import DetectionTask
from rnnpool_lite.models import mobilenetv2_rnnpool_vww, mobilenetv2_vww, small_rnnpool_face
from rnnpool_lite.train import ClassificationTask, Execution, RNNPoolProbe, Task, choose_execution, train_step
from rnnpool_lite.train.execution import PRECISIONS, Precision
from rnnpool_lite.train.runtime import keep_freed_memory


@dataclass
class Case:
    """One model to train: how to build it, its data, its task and its batch size."""

    build: Callable[[], nn.Module]
    data: Callable[[], Dataset]
    task: Callable[[nn.Module], Task]
    batch_size: int


def _vww(build: Callable[..., nn.Module], size: int) -> Case:
    return Case(lambda: build(2, image_size=size),
                lambda: FaceVsBackgroundDataset("train", size=64, image_size=size, seed=0),
                lambda model: ClassificationTask(), 32)


def _face_task(model: nn.Module) -> Task:
    priors = model.eval().priors(128)  # type: ignore[operator]
    return DetectionTask(priors, min_negatives=8)  # type: ignore[return-value]  # collate_fn's narrower signature


CASES: dict[str, Case] = {
    "vww-base-48": _vww(mobilenetv2_vww, 48),
    "vww-base-96": _vww(mobilenetv2_vww, 96),
    "vww-rnnpool-48": _vww(mobilenetv2_rnnpool_vww, 48),
    "vww-rnnpool-96": _vww(mobilenetv2_rnnpool_vww, 96),
    "face-small-128": Case(small_rnnpool_face, lambda: FaceSceneDataset("train", size=32, image_size=128, seed=0),
                           _face_task, 16),
    "probe-32": Case(lambda: RNNPoolProbe(32, num_classes=9, hidden_size=16, hidden_size2=32),
                     lambda: OneLineDataset(64, 32, seed=0), lambda model: ClassificationTask(), 32),
    "probe-conv-32": Case(lambda: RNNPoolProbe(32, num_classes=9, hidden_size=4, hidden_size2=16, with_conv=True),
                          lambda: OneLineDataset(64, 32, seed=0), lambda model: ClassificationTask(), 32),
}


def _batches(data: Dataset, task: Task, batch_size: int) -> list[Any]:
    items = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
    return [task.collate_fn(items[i:i + batch_size]) for i in range(0, len(items) - batch_size + 1, batch_size)]


class Trainer:
    """A model, its optimizer and an execution, stepping through a fixed cycle of batches."""

    def __init__(self, model: nn.Module, task: Task, execution: Execution, batches: list[Any]) -> None:
        self.model, self.task, self.execution = execution.prepare(model).train(), task, execution
        self.optimizer = execution.sgd(model, lr=0.05, momentum=0.9, weight_decay=4e-5)
        self.batches = batches
        self.step_index, self.loss = 0, float("nan")
        self.losses: list[float] = []

    def steps(self, count: int) -> tuple[float, float]:
        """Train ``count`` steps; returns the wall and the CPU seconds (all threads) they took."""
        tic, cpu_tic = time.perf_counter(), time.process_time()
        for _ in range(count):
            inputs, targets = self.execution.inputs(self.batches[self.step_index % len(self.batches)])
            torch.manual_seed(self.step_index)  # the same dropout masks for both paths
            _, loss = train_step(self.model, inputs, targets, self.task, self.execution, self.optimizer)
            self.losses.append(float(loss.detach()))
            self.step_index += 1
        self.loss = float(loss.detach())
        return time.perf_counter() - tic, time.process_time() - cpu_tic


def run_case(name: str, case: Case, repeats: int, steps: int, precision: Precision = "auto") -> dict[str, Any]:
    torch.manual_seed(0)
    model = case.build()
    task = case.task(model)
    batches = _batches(case.data(), task, case.batch_size)
    cpu = torch.device("cpu")
    default = choose_execution(model, cpu, precision=precision)
    eager_path = Execution(cpu, False, None, rnnpool_kernel="torch")
    trainers = {"eager": Trainer(copy.deepcopy(model), task, eager_path, batches),
                "default": Trainer(copy.deepcopy(model), task, default, batches)}
    for trainer in trainers.values():
        trainer.steps(1)  # warm-up: first-call allocations and oneDNN primitive creation
    wall: dict[str, list[float]] = {k: [] for k in trainers}
    per_cpu: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(repeats):
        for key, trainer in trainers.items():
            seconds, cpu_seconds = trainer.steps(steps)
            wall[key].append(steps * case.batch_size / seconds)
            per_cpu[key].append(steps * case.batch_size / cpu_seconds)
    eager, fast = statistics.median(wall["eager"]), statistics.median(wall["default"])
    eager_cpu, fast_cpu = statistics.median(per_cpu["eager"]), statistics.median(per_cpu["default"])
    return {"model": name, "batch": case.batch_size, "default path": ", ".join(
                f"{k}={v}" for k, v in default.settings().items()),
            "eager img/s": round(eager, 1), "default img/s": round(fast, 1), "ratio": round(fast / eager, 2),
            "eager img/cpu-s": round(eager_cpu, 1), "default img/cpu-s": round(fast_cpu, 1),
            "cpu ratio": round(fast_cpu / eager_cpu, 2),
            "steps": trainers["eager"].step_index, "eager loss": round(trainers["eager"].loss, 5),
            "default loss": round(trainers["default"].loss, 5),
            "eager mean loss": round(statistics.fmean(trainers["eager"].losses), 4),
            "default mean loss": round(statistics.fmean(trainers["default"].losses), 4)}


def profile_case(case: Case) -> None:
    torch.manual_seed(0)
    model = case.build()
    task = case.task(model)
    batches = _batches(case.data(), task, case.batch_size)
    trainer = Trainer(model, task, choose_execution(model, torch.device("cpu")), batches)
    trainer.steps(2)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        trainer.steps(3)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per repeat and path")
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--profile", choices=list(CASES))
    parser.add_argument("--keep-freed-memory", action="store_true")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="the default contender's precision (bf16: try autocast against eager float32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        print(f"keep_freed_memory: {keep_freed_memory()}")
    if args.profile:
        profile_case(CASES[args.profile])
        return
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, load average at start {os.getloadavg()[0]:.1f}")
    rows = []
    for name in args.models:
        rows.append(run_case(name, CASES[name], args.repeats, args.steps, args.precision))
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"load average at end {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
