"""Run a trained detector over a dataset and score it: the glue used by the face chapter."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .evaluate import average_precision
from .postprocess import Detections, detect
from .task import collate_detection


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, priors: Tensor, batch_size: int = 16,
            device: str | torch.device = "cpu", **detect_kwargs: Any) -> tuple[list[Detections], list[Tensor]]:
    """Detections (in pixels) and ground-truth boxes (in pixels) for every image of ``dataset``."""
    model.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_detection)
    detections, truths = [], []
    for images, boxes in loader:
        height, width = images.shape[-2:]
        loc, conf = model(images.to(device))
        for det, gt in zip(detect(loc, conf, priors, **detect_kwargs), boxes):
            detections.append(det.scaled(width, height).to_cpu())
            truths.append(gt * torch.tensor([width, height, width, height]))
    return detections, truths


def evaluate_detector(model: nn.Module, dataset: Dataset, priors: Tensor, **kwargs: Any) -> float:
    """AP at IoU 0.5 (pycocotools) of ``model`` on ``dataset``."""
    detections, truths = predict(model, dataset, priors, **kwargs)
    return average_precision(detections, truths)
