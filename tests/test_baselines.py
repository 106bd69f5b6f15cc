"""The LBP cascade baseline finds real faces and gives scored x1, y1, x2, y2 boxes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from rnnpool_lite.data import FaceSceneDataset
from rnnpool_lite.detection.cascade import lbp_cascade_detect, lbp_cascade_predictions


def test_astronaut_face_found_with_top_score() -> None:
    boxes, scores = lbp_cascade_detect(data.astronaut(), min_size=60, max_size=123, scale_factor=1.2)
    assert boxes.shape == (3, 4) and scores.dtype == np.float32
    # Eileen Collins' face (x 176-269, y 69-162) is backed by 10 raw windows, the two
    # other boxes (elsewhere in the picture) by one each: the score ranks the true face first.
    assert boxes[0].tolist() == [176.0, 69.0, 269.0, 162.0]
    assert scores.tolist() == [10.0, 1.0, 1.0]


def test_predictions_on_face_scenes_hit_the_ground_truth() -> None:
    scenes = FaceSceneDataset("val", size=3, image_size=96, faces_per_image=(1, 1), face_sizes=(32, 40), seed=2)
    preds = lbp_cascade_predictions(scenes, min_size=20)
    assert len(preds) == 3 and set(preds[0]) == {"boxes", "scores", "labels"}
    hits = 0
    for (_, target), pred in zip(scenes, preds):
        gt = target["boxes"][0]
        for b in pred["boxes"]:
            iw = (torch.minimum(b[2], gt[2]) - torch.maximum(b[0], gt[0])).clamp(min=0)
            ih = (torch.minimum(b[3], gt[3]) - torch.maximum(b[1], gt[1])).clamp(min=0)
            union = (b[2] - b[0]) * (b[3] - b[1]) + (gt[2] - gt[0]) * (gt[3] - gt[1]) - iw * ih
            hits += bool(iw * ih / union > 0.5)
    assert hits >= 2


def test_empty_image_and_bad_input() -> None:
    boxes, scores = lbp_cascade_detect(np.zeros((64, 64)))
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    with pytest.raises(ValueError, match="scale_factor"):
        lbp_cascade_detect(np.zeros((64, 64)), scale_factor=1.0)
    with pytest.raises(ValueError, match="1 or 3"):
        lbp_cascade_detect(torch.zeros(2, 8, 8))
