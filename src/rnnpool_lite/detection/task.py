"""``DetectionTask``: plugs the multibox loss into :func:`rnnpool_lite.train.fit`.

Samples are ``(image (C, H, W), boxes)`` with ``boxes`` an ``(n, 4)`` tensor of face corners in
pixels (or a dict holding it under ``"boxes"``); the collate function stacks the images and
normalises each image's boxes by its width and height, the units of the anchors.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rnnpool_lite.detection.boxes import VARIANCES
from rnnpool_lite.detection.loss import MultiBoxLoss


def _boxes_of(target: Any) -> Tensor:
    boxes = target["boxes"] if isinstance(target, dict) else target
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.numel() == 0:
        return boxes.reshape(0, 4)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"face boxes must be (n, 4) (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    return boxes


def collate_detection(samples: Sequence[tuple[Tensor, Any]]) -> tuple[Tensor, list[Tensor]]:
    """Stack images; boxes in pixels -> a list of ``(n_i, 4)`` boxes in [0, 1] units."""
    images = torch.stack([torch.as_tensor(s[0]) for s in samples])
    height, width = images.shape[-2:]
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return images, [_boxes_of(s[1]) / scale for s in samples]


class DetectionTask:
    """Face detection for ``fit``: the model returns ``(loc (B, P, 4), conf (B, P, 2))``.

    Reports ``loss`` (monitored, lower is better), ``loc_loss`` and ``conf_loss``. mAP is not a
    per-batch statistic, so it is computed after training with
    :func:`rnnpool_lite.detection.evaluate_detector`.
    """

    monitor = "loss"
    mode = "min"
    collate_fn = staticmethod(collate_detection)

    def __init__(self, priors: Tensor, neg_pos_ratio: int = 3, threshold: float = 0.35,
                 variances: tuple[float, float] = VARIANCES, min_negatives: int = 0) -> None:
        self.criterion = MultiBoxLoss(priors, neg_pos_ratio, threshold, variances, min_negatives)

    def _parts(self, output: tuple[Tensor, Tensor], target: list[Tensor]) -> tuple[Tensor, Tensor]:
        if not (isinstance(output, (tuple, list)) and len(output) == 2):
            raise TypeError("a detector must return (loc, conf)")
        loc, conf = output
        return self.criterion(loc, conf, target)

    def loss(self, output: tuple[Tensor, Tensor], target: list[Tensor]) -> Tensor:
        loc_loss, conf_loss = self._parts(output, target)
        return loc_loss + conf_loss

    def stats(self, output: tuple[Tensor, Tensor], target: list[Tensor]) -> dict[str, float]:
        loc_loss, conf_loss = self._parts(output, target)
        n = float(len(target))
        return {"count": n, "loc_loss": float(loc_loss) * n, "conf_loss": float(conf_loss) * n}
