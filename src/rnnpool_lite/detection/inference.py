"""Run a trained detector over a dataset and score it: the glue used by the face chapter."""
from __future__ import annotations

from collections.abc import Sized
from typing import Any, cast

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from rnnpool_lite.detection.evaluate import average_precision
from rnnpool_lite.detection.postprocess import Detections, detect
from rnnpool_lite.detection.task import collate_detection


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


@torch.no_grad()
def evaluate_subsets(model: nn.Module, subsets: dict[str, Dataset], priors: Tensor, image_size: int,
                     device: str | torch.device = "cpu", max_images: int | None = None,
                     **detect_kwargs: Any) -> pd.DataFrame:
    """AP@0.5 per subset for datasets of any image size (WIDER FACE easy / medium / hard).

    Each image is resized to ``image_size`` x ``image_size`` (the size ``priors`` were made for),
    detections are scaled back to the original pixels. Targets are dicts with ``"boxes"`` (faces
    that count) and optionally ``"ignore"`` (faces of other subsets: neither misses nor false
    positives), the format of :class:`rnnpool_lite.data.WiderFace`.
    """
    import torch.nn.functional as F

    model.eval().to(device)
    rows = []
    for name, dataset in subsets.items():
        detections, truths, ignore = [], [], []
        size = len(cast(Sized, dataset))  # map-style datasets: torch's Dataset type does not declare __len__
        count = size if max_images is None else min(max_images, size)
        for i in range(count):
            image, target = dataset[i]
            height, width = image.shape[-2:]
            resized = F.interpolate(image[None].to(device), size=(image_size, image_size), mode="bilinear",
                                    antialias=True, align_corners=False)
            loc, conf = model(resized)
            detections.append(detect(loc, conf, priors, **detect_kwargs)[0].scaled(width, height).to_cpu())
            counted = target["boxes"].reshape(-1, 4)
            ignored = target.get("ignore", torch.zeros(0, 4)).reshape(-1, 4)
            truths.append(torch.cat([counted, ignored]))
            ignore.append(torch.cat([torch.zeros(len(counted), dtype=torch.bool),
                                     torch.ones(len(ignored), dtype=torch.bool)]))
        rows.append({"subset": name, "ap": average_precision(detections, truths, ignore=ignore),
                     "images": count, "faces": int(sum((~m).sum() for m in ignore))})
    return pd.DataFrame(rows).set_index("subset")
