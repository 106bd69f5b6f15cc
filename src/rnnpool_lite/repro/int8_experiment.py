"""Chapter 6's float-vs-int8 experiment: train the small RNNPool classifier, quantize it, score both.

One seed trains ``small_rnnpool_classifier`` with ``fit`` on a wake-word task ("is a Bag in this
scene?", :func:`int8_scenes`), quantizes it after training with each calibration method of
``rnnpool_lite.m4``, and scores the float and the int8 model on the same test scenes. The chapter's
quick run and the evidence run notebook (``notebooks/runs/int8_classifier.ipynb``) both call
:func:`float_and_int8`, so they train and quantize the same way. It lives in ``repro`` because it
joins two layers that do not import each other: ``train`` (fit) and ``m4`` (quantize).

The paper gives no float-vs-int8 accuracy figure: Appendix G says its VWW models use the
piecewise-linear quantSigmoid / quantTanh "so we can quantize it without loss of information", and
Section 5.2 quantizes the trained float model per channel to 8 bits without reporting a loss. A
margin of 0 cannot be tested with an interval, so the equivalence margin is the paper's own
tolerance for "the same accuracy", about 1 point (Tables 1-3: RNNPool models within about a point
of their base models), the margin chapter 5 uses too: :data:`PAPER_INT8_MARGIN`.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from rnnpool_lite.data import FashionWakeWords
from rnnpool_lite.m4 import QuantizedModel, quantize
from rnnpool_lite.models.small import small_rnnpool_classifier
from rnnpool_lite.train import TrainConfig, fit

#: points of accuracy within which int8 counts as "no loss" (module docstring: where it comes from)
PAPER_INT8_MARGIN = 1.0
#: the claim text of the verdict; the summary page's row "int8 vs float" finds it by "int8"
INT8_CLAIM = "int8 vs float32: accuracy kept by post-training quantization (Appendix G)"
#: calibration methods of ``rnnpool_lite.m4.quantize``, the first decides the verdict
CALIBRATIONS: tuple[str, ...] = ("minmax", "percentile")
#: columns of :meth:`Int8Run.row` and :func:`evidence_rows` holding a list per seed in the sweep's table
PER_SEED_RECORDS = ("float_accuracy", "int8_accuracy", "int8_percentile_accuracy", "agreement", "float_curve",
                    "cpu_seconds")


def int8_scenes(split: str, size: int, image_size: int, *, distractors: Sequence[str] = ("Trouser",),
                seed: int = 0) -> FashionWakeWords:
    """The experiment's task: one object per monochrome scene, a Bag (positive) or a distractor,
    3/8 to 1/2 of the scene's side, on a photograph.

    One object per scene and few distractor classes keep the task learnable by a 5-epoch run of the
    small classifier, yet far from 100% (FashionWakeWords' default, a Bag among all nine other
    classes, stays near chance at that budget).
    """
    return FashionWakeWords(split, size, image_size, distractors=tuple(distractors), objects=(1, 1),
                            object_sizes=(3 * image_size // 8, image_size // 2), channels=1, seed=seed)


@dataclass(frozen=True)
class Int8Run:
    """One seed: the float model, its int8 versions by calibration method, and their test scores.

    Accuracies are fractions of the test scenes; ``agreement`` is the fraction on which the int8
    model (first calibration method) predicts what the float model predicts.
    """

    seed: int
    model: nn.Module
    quantized: dict[str, QuantizedModel]
    history: pd.DataFrame
    float_accuracy: float
    int8_accuracy: dict[str, float]
    agreement: float
    cpu_seconds: float
    step_losses: list[float]  # every SGD step's training loss (the replay test compares a prefix)

    def row(self) -> dict[str, Any]:
        """The seed's numbers, named as the run notebook records them."""
        first, *rest = self.int8_accuracy
        return {"seed": self.seed, "float_accuracy": self.float_accuracy,
                "int8_accuracy": self.int8_accuracy[first],
                **{f"int8_{m}_accuracy": self.int8_accuracy[m] for m in rest},
                "agreement": self.agreement,
                "float_curve": [float(v) for v in self.history["val_accuracy"]],
                "cpu_seconds": self.cpu_seconds}


def _accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of matches, exactly (a float32 mean would round it)."""
    return int((predicted == labels).sum()) / len(labels)


def float_and_int8(seed: int, train: FashionWakeWords, test: FashionWakeWords, config: TrainConfig, *,
                   width: int = 8, hidden: int = 8, calibration_size: int = 256,
                   methods: Sequence[str] = CALIBRATIONS) -> Int8Run:
    """Train the small classifier with ``fit`` (``config`` with ``seed``; the last epoch's weights,
    since no epoch may be picked on the test scenes), quantize it calibrated on the first
    ``calibration_size`` training scenes with each of ``methods``, and score float and int8 models
    on ``test`` (int8 with the patch schedule, bit-identical to the layer schedule)."""
    tic = time.process_time()
    torch.manual_seed(seed)
    x_train, x_test = train.images.contiguous(), test.images.contiguous()
    model = small_rnnpool_classifier(x_train.shape[1], len(train.classes), width=width, hidden=hidden)
    config = replace(config, seed=seed, restore_best=False)
    result = fit(model, TensorDataset(x_train, train.targets), TensorDataset(x_test, test.targets), config)
    history = result.history
    model.eval()
    with torch.no_grad():
        float_pred = model(x_test).argmax(1)
    quantized = {m: quantize(model, x_train[:calibration_size], m) for m in methods}  # type: ignore[arg-type]
    int8_pred = {m: q.run(x_test, "patch").argmax(1) for m, q in quantized.items()}
    return Int8Run(seed=seed, model=model, quantized=quantized, history=history,
                   float_accuracy=_accuracy(float_pred, test.targets),
                   int8_accuracy={m: _accuracy(p, test.targets) for m, p in int8_pred.items()},
                   agreement=_accuracy(int8_pred[methods[0]], float_pred),
                   cpu_seconds=round(time.process_time() - tic, 2), step_losses=result.step_losses)


def evidence_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per seed from the sweep's table of run notebooks, whose records hold one list entry
    per seed of the run (``results.csv`` stores them as JSON text), with the columns of
    :meth:`Int8Run.row`."""
    rows = []
    for _, run in runs.iterrows():
        seeds = _list(run["seeds"])
        values = {k: _list(run[k]) for k in PER_SEED_RECORDS if k in run}
        for i, seed in enumerate(seeds):
            rows.append({"seed": int(seed), **{k: v[i] for k, v in values.items()}})
    return pd.DataFrame(rows).sort_values("seed").reset_index(drop=True)


def _list(value: Any) -> list[Any]:
    return list(json.loads(value)) if isinstance(value, str) else list(value)


__all__ = ["CALIBRATIONS", "INT8_CLAIM", "Int8Run", "PAPER_INT8_MARGIN", "PER_SEED_RECORDS", "evidence_rows",
           "float_and_int8", "int8_scenes"]
