"""What ``fit`` optimises and reports, as small pluggable objects.

A task knows three things the training loop should not: the loss, the per-batch statistics that
become the epoch's metrics, and how to collate samples into a batch. Statistics are *sums* (with a
``count``), never means, so that epochs, uneven last batches and ranks of a distributed run combine
by plain addition (one ``all_reduce``) into exact epoch means.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import default_collate


@runtime_checkable
class Task(Protocol):
    """Interface ``fit`` relies on.

    ``monitor`` names the history column (without the ``val_`` / ``train_`` prefix) that decides
    the best epoch, ``mode`` says whether larger (``"max"``) or smaller (``"min"``) is better.
    """

    monitor: str
    mode: str

    @property
    def collate_fn(self) -> Callable[[list[Any]], Any]:
        """Batches a list of samples (read-only: a task's own collate may take a narrower sample type)."""
        ...

    def loss(self, output: Any, target: Any) -> Tensor: ...

    def stats(self, output: Any, target: Any) -> dict[str, float]: ...


def _logits(output: Tensor) -> Tensor:
    """Accept ``(N, K)`` or ``(N, K, 1, 1)`` (a final 1x1 conv) classifier outputs."""
    if not isinstance(output, Tensor):
        raise TypeError(f"a classifier must return a tensor, got {type(output).__name__}")
    if output.dim() == 4 and output.shape[-2:] == (1, 1):
        output = output.flatten(1)
    if output.dim() != 2:
        raise ValueError(f"classifier output must be (N, K) or (N, K, 1, 1), got {tuple(output.shape)}")
    return output


class ClassificationTask:
    """Single-label classification: cross-entropy loss, top-1 accuracy (``accuracy``)."""

    monitor = "accuracy"
    mode = "max"
    collate_fn = staticmethod(default_collate)

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(_logits(output), target, label_smoothing=self.label_smoothing)

    def stats(self, output: Tensor, target: Tensor) -> dict[str, float]:
        predicted = _logits(output).argmax(dim=1)
        return {"count": float(target.numel()), "accuracy": float((predicted == target).sum())}


class MultiLabelTask:
    """Multi-label classification (several lines / shapes per image): one sigmoid per label.

    ``accuracy`` is the exact-match rate (every label of the image right), the strict reading of
    the paper's "100% accuracy" for the multi-label probing sets; ``label_accuracy`` is the rate
    over individual (image, label) decisions.
    """

    monitor = "accuracy"
    mode = "max"
    collate_fn = staticmethod(default_collate)

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(_logits(output), target.float())

    def stats(self, output: Tensor, target: Tensor) -> dict[str, float]:
        predicted = torch.sigmoid(_logits(output)) > self.threshold
        right = predicted == target.bool()
        return {
            "count": float(target.shape[0]),
            "accuracy": float(right.all(dim=1).sum()),
            "label_accuracy": float(right.float().mean(dim=1).sum()),
        }
