"""Box arithmetic for single-shot detectors: IoU, SSD offset encoding, greedy NMS (pure torch).

Conventions: ground truth and detections are corner boxes ``(x1, y1, x2, y2)``; anchors ("priors")
are centre boxes ``(cx, cy, w, h)``, both in the same units (the detection code uses coordinates
normalised by the image width and height, as S3FD does). NMS is written here because torchvision,
which has a compiled one, is not a dependency of this project.
"""
from __future__ import annotations

import torch
from torch import Tensor

VARIANCES = (0.1, 0.2)  # S3FD / SSD box variances: centre offsets, log sizes


def _check_boxes(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (n, 4), got {tuple(boxes.shape)}")


def corners(priors: Tensor) -> Tensor:
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``."""
    return torch.cat([priors[..., :2] - priors[..., 2:] / 2, priors[..., :2] + priors[..., 2:] / 2], dim=-1)


def centres(boxes: Tensor) -> Tensor:
    """``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)``."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise intersection over union of corner boxes: ``(n, 4), (m, 4) -> (n, m)``."""
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def encode(matched: Tensor, priors: Tensor, variances: tuple[float, float] = VARIANCES) -> Tensor:
    """Regression targets of corner boxes ``matched`` relative to their ``priors`` (SSD encoding).

    ``((c_box - c_prior) / (w_prior * v0), log(w_box / w_prior) / v1)``: the variances scale the
    targets to roughly unit size so smooth L1 weighs centre and size errors alike.
    """
    boxes = centres(matched)
    offset = (boxes[..., :2] - priors[..., :2]) / (priors[..., 2:] * variances[0])
    scale = torch.log(boxes[..., 2:].clamp(min=1e-12) / priors[..., 2:]) / variances[1]
    return torch.cat([offset, scale], dim=-1)


def decode(loc: Tensor, priors: Tensor, variances: tuple[float, float] = VARIANCES) -> Tensor:
    """Inverse of :func:`encode`: predicted offsets -> corner boxes."""
    centre = priors[..., :2] + loc[..., :2] * variances[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * variances[1])
    return corners(torch.cat([centre, size], dim=-1))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.3) -> Tensor:
    """Greedy non-maximum suppression; indices of kept boxes, highest score first.

    A box is dropped when its IoU with a higher-scoring kept box exceeds ``iou_threshold``
    (strictly, as torchvision.ops.nms). The IoU matrix is computed once; the loop only walks the
    sorted list, so the cost is one ``(n, n)`` matrix - fine for the few hundred candidates left
    after score thresholding and top-k.
    """
    _check_boxes(boxes, "boxes")
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    order = torch.argsort(scores, descending=True, stable=True)
    overlap = box_iou(boxes[order], boxes[order]) > iou_threshold
    removed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= overlap[i]
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]
