"""How the book trains a face detector: one recipe for chapter 04's quick run and its evidence run.

The chapter page and the run notebook the evidence sweep executes (``notebooks/runs/face_detector``)
must train the same detector the same way, or the evidence would answer another question than the
page asks; so the recipe lives here once. It is book tooling (``repro``): it joins ``detection``'s task
and ``train``'s config, two packages of one layer that do not import each other.
"""
from __future__ import annotations

from torch import Tensor

from rnnpool_lite.detection.task import DetectionTask
from rnnpool_lite.train.config import TrainConfig

MIN_NEGATIVES = 8   # hard negatives per image at least, also where an image has few faces
GRAD_CLIP = 5.0     # gradient norm: at lr 0.1 the first epochs diverged without it


def face_train_config(priors: Tensor, *, epochs: int, batch_size: int, lr: float, warmup_epochs: int, seed: int,
                      device: str | None = None, max_steps: int | None = None) -> TrainConfig:
    """Chapter 04's recipe: SGD with ``warmup_epochs`` of linear warm-up and cosine decay (``fit``'s
    schedule), the S3FD multibox loss over ``priors`` with at least ``MIN_NEGATIVES`` hard negatives
    per image, the gradient norm clipped at ``GRAD_CLIP``, and the last epoch's weights kept (no
    epoch is chosen on the validation scenes that score it)."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, warmup_epochs=warmup_epochs,
                       task=DetectionTask(priors, min_negatives=MIN_NEGATIVES), device=device, seed=seed,
                       progress=False, restore_best=False, grad_clip=GRAD_CLIP, max_steps=max_steps)
