"""The classic face detector the book compares RNNPool-Face against: scikit-image's LBP cascade.

``skimage.feature.Cascade`` with the frontal-face LBP cascade that ships inside scikit-image
(``skimage.data.lbp_frontal_face_cascade_filename()``, trained by OpenCV). Its
``detect_multi_scale`` returns grouped boxes without a confidence, but mAP needs a ranking, so each
grouped box is scored by how many raw (ungrouped) window detections support it, the same
"neighbours" count that the cascade's own ``min_neighbor_number`` thresholds: a second pass with
grouping switched off (``intersection_score_threshold`` above 1) gives the raw windows, and a raw
window supports a box when their intersection covers more than ``intersection_score_threshold``
of the smaller of the two (scikit-image's own merge criterion).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from skimage import data
from skimage.feature import Cascade


@lru_cache(maxsize=1)
def _cascade() -> Cascade:
    return Cascade(data.lbp_frontal_face_cascade_filename())


def _as_grey(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """(H, W), (H, W, 3) numpy or (1|3, H, W) tensor -> float (H, W) grey in [0, 1]."""
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"tensor images must be (1 or 3, H, W), got {tuple(image.shape)}")
        image = image.detach().cpu().float().mean(0).numpy()
    array = np.asarray(image)
    if array.ndim == 3:
        if array.shape[-1] not in (3, 4):
            raise ValueError(f"numpy images must be (H, W) or (H, W, 3), got {array.shape}")
        array = array[..., :3].mean(-1)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D or colour image, got shape {array.shape}")
    return array / 255.0 if array.max() > 1.0 else array.astype(np.float64)


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area, (len(a), len(b)), boxes x1, y1, x2, y2."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return iw * ih / np.minimum(area(a)[:, None], area(b)[None, :])


def _to_xyxy(detections: list[dict]) -> np.ndarray:
    return np.array([[d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]] for d in detections],
                    dtype=np.float32).reshape(-1, 4)


def lbp_cascade_detect(image: np.ndarray | torch.Tensor, min_size: int = 16, max_size: int | None = None,
                       scale_factor: float = 1.1, step_ratio: float = 1.0, min_neighbor_number: int = 1,
                       intersection_score_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Detect frontal faces in one image with scikit-image's LBP cascade.

    Returns ``(boxes, scores)``: float32 (n, 4) x1, y1, x2, y2 pixels (x2, y2 exclusive) and float32
    (n,) neighbour counts (higher = more windows agree), sorted by decreasing score.
    ``min_size`` / ``max_size`` bound the square search window in pixels (max: the image's shorter
    side). The cascade's window is 24 px, so faces much smaller than that are never found.
    """
    grey = _as_grey(image)
    if min_size < 1 or scale_factor <= 1.0 or step_ratio <= 0:
        raise ValueError(f"need min_size >= 1, scale_factor > 1, step_ratio > 0; got "
                         f"{min_size}, {scale_factor}, {step_ratio}")
    side = min(grey.shape) if max_size is None else min(max_size, min(grey.shape))
    kwargs = dict(img=grey, scale_factor=scale_factor, step_ratio=step_ratio,
                  min_size=(min_size, min_size), max_size=(side, side))
    cascade = _cascade()
    grouped = _to_xyxy(cascade.detect_multi_scale(**kwargs, min_neighbor_number=min_neighbor_number,
                                                  intersection_score_threshold=intersection_score_threshold))
    if len(grouped) == 0:
        return grouped, np.zeros(0, dtype=np.float32)
    raw = _to_xyxy(cascade.detect_multi_scale(**kwargs, min_neighbor_number=0,
                                              intersection_score_threshold=1.01))
    scores = (_overlap(grouped, raw) > intersection_score_threshold).sum(1).astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    return grouped[order], scores[order]


def lbp_cascade_predictions(dataset, **kwargs) -> list[dict[str, torch.Tensor]]:  # noqa: ANN001
    """Run :func:`lbp_cascade_detect` on every image of a detection dataset (items ``(image, target)``).

    Returns one dict per image, ``{"boxes": (n, 4) float32, "scores": (n,), "labels": (n,) ones}``,
    the prediction format of torchmetrics' mean average precision, ready for the same mAP code as the
    neural detector.
    """
    out = []
    for i in range(len(dataset)):
        image = dataset[i][0]
        boxes, scores = lbp_cascade_detect(image, **kwargs)
        out.append({"boxes": torch.from_numpy(boxes), "scores": torch.from_numpy(scores),
                    "labels": torch.ones(len(boxes), dtype=torch.int64)})
    return out
