"""Average precision of face detections, computed by pycocotools.

pycocotools' ``COCOeval`` is the maintained reference implementation of detection AP (greedy
matching by score, 101-point interpolated precision); we use it rather than a hand-written PR
curve. Two additions for faces:

* ``max_detections`` (COCO stops at 100 per image; crowded WIDER images have more faces);
* *ignored* ground truth, the WIDER FACE protocol: for the easy / medium / hard subsets every face
  outside the subset is kept in the image but ignored - a detection that matches it is neither a
  true nor a false positive. ``COCOeval`` can only ignore "crowd" boxes (which it also matches with
  a looser IoU), so :class:`_IgnoreAwareEval` sets the ignore flag directly after pycocotools'
  own preparation, keeping the ordinary IoU.

The WIDER FACE numbers of the paper come from the dataset's MATLAB script, which draws its PR
curve at 1000 score thresholds; AP here is pycocotools' interpolation, so they are comparable in
kind, not to the last digit.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from rnnpool_lite.detection.postprocess import Detections


class _IgnoreAwareEval(COCOeval):
    def _prepare(self) -> None:
        super()._prepare()
        for image_annotations in self._gts.values():
            for ann in image_annotations:
                ann["ignore"] = int(ann.get("subset_ignore", 0) or ann.get("iscrowd", 0))


def _as_boxes(boxes: Tensor | np.ndarray | Sequence, name: str) -> np.ndarray:
    array = boxes.detach().cpu().numpy() if isinstance(boxes, Tensor) else np.asarray(boxes, dtype=float)
    array = array.reshape(-1, 4) if array.size == 0 else array
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name} must be (n, 4) boxes (x1, y1, x2, y2), got shape {array.shape}")
    return array.astype(float)


# COCO's AP@[.5:.95]: the mean over these ten IoU thresholds (pass as ``iou_thresholds``)
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def average_precision(
    detections: Sequence[Detections],
    truths: Sequence[Tensor | np.ndarray],
    ignore: Sequence[Tensor | np.ndarray] | None = None,
    iou_thresholds: Sequence[float] = (0.5,),
    max_detections: int = 1000,
) -> float:
    """AP of face ``detections`` against ground-truth boxes, both in pixels, per image.

    Args:
        detections: one :class:`Detections` per image.
        truths: one ``(n_i, 4)`` array of face boxes per image.
        ignore: optional boolean ``(n_i,)`` per image: faces that neither count as misses nor
            make their detections false positives (WIDER subsets).
        iou_thresholds: AP is averaged over these (``(0.5,)``: AP50; COCO's mAP uses 0.5:0.95).

    Returns:
        AP in [0, 1]; ``nan`` when no image has a face to find.
    """
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection lists for {len(truths)} images")
    if ignore is not None and len(ignore) != len(truths):
        raise ValueError(f"{len(ignore)} ignore masks for {len(truths)} images")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id, (det, gt) in enumerate(zip(detections, truths), start=1):
        images.append({"id": image_id})
        gt = _as_boxes(gt, "truths")
        mask = None if ignore is None else ignore[image_id - 1]
        flags = np.zeros(len(gt), bool) if mask is None else np.asarray(
            mask.cpu() if isinstance(mask, Tensor) else mask, bool)
        if flags.shape != (len(gt),):
            raise ValueError(f"image {image_id - 1}: ignore mask of shape {flags.shape} for {len(gt)} faces")
        for (x1, y1, x2, y2), flag in zip(gt, flags):
            w, h = x2 - x1, y2 - y1
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0,
                                "subset_ignore": int(flag)})
        boxes = _as_boxes(det.boxes, "detections")
        for (x1, y1, x2, y2), score in zip(boxes, det.scores.detach().cpu().numpy().tolist()):
            results.append({"image_id": image_id, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": float(score)})
    if not any(a["subset_ignore"] == 0 for a in annotations):
        return float("nan")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        ground = COCO()
        ground.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "face"}]}
        ground.createIndex()
        predicted = ground.loadRes(results) if results else COCO()
        if not results:
            predicted.dataset = {"images": images, "annotations": [], "categories": ground.dataset["categories"]}
            predicted.createIndex()
        evaluator = _IgnoreAwareEval(ground, predicted, iouType="bbox")
        evaluator.params.iouThrs = np.asarray(iou_thresholds, dtype=float)
        evaluator.params.maxDets = [max_detections]
        evaluator.params.areaRng = [[0.0, 1e12]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, 0, 0, 0]   # (iou thresholds, recall points)
    return float(np.mean(np.where(precision < 0, 0.0, precision)))


def wider_subset_ap(
    detections: Sequence[Detections],
    truths: Sequence[Tensor | np.ndarray],
    subsets: dict[str, Sequence[Tensor | np.ndarray]],
    **kwargs,
) -> pd.DataFrame:
    """WIDER-FACE-style AP per subset (easy / medium / hard).

    ``subsets[name][i]`` is a boolean mask over image ``i``'s faces: True for the faces that belong
    to the subset; all other faces are ignored, as in the WIDER FACE evaluation protocol.
    Returns a DataFrame indexed by subset with ``ap`` and the number of ``faces`` counted.
    """
    rows = []
    for name, masks in subsets.items():
        if len(masks) != len(truths):
            raise ValueError(f"subset {name!r}: {len(masks)} masks for {len(truths)} images")
        inside = [np.asarray(m.cpu() if isinstance(m, Tensor) else m, bool) for m in masks]
        ap = average_precision(detections, truths, ignore=[~m for m in inside], **kwargs)
        rows.append({"subset": name, "ap": ap, "faces": int(sum(m.sum() for m in inside))})
    return pd.DataFrame(rows).set_index("subset")
