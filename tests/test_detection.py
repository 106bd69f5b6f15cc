"""Face-detection pieces: boxes, NMS, S3FD matching, multibox loss, pycocotools AP, fit on a toy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import Dataset

from rnnpool_lite.detection import (
    Detections,
    DetectionTask,
    MultiBoxLoss,
    average_precision,
    box_iou,
    centres,
    corners,
    decode,
    detect,
    encode,
    match_priors,
    maxout_background,
    nms,
    predict,
    wider_subset_ap,
)
from rnnpool_lite.train import TrainConfig, fit


def box_strategy(n_min=1, n_max=6):
    corner = st.tuples(st.floats(0, 0.8), st.floats(0, 0.8), st.floats(0.02, 0.2), st.floats(0.02, 0.2))
    return st.lists(corner, min_size=n_min, max_size=n_max).map(
        lambda rows: torch.tensor([[x, y, x + w, y + h] for x, y, w, h in rows], dtype=torch.float64))


def test_box_iou_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 1.0, 2.0]])
    assert box_iou(a, b).tolist() == [[pytest.approx(1 / 7), 1.0, 0.0, 0.5]]
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        box_iou(torch.zeros(3), b)


@given(box_strategy(), box_strategy())
def test_iou_properties(a, b):
    iou = box_iou(a, b)
    assert torch.allclose(iou, box_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1 + 1e-12)).all()
    assert torch.allclose(box_iou(a, a).diagonal(), torch.ones(len(a), dtype=a.dtype))


@given(box_strategy(), box_strategy())
def test_encode_decode_roundtrip(boxes, anchors):
    priors = centres(anchors[:1].expand(len(boxes), 4))
    assert torch.allclose(decode(encode(boxes, priors), priors), boxes, atol=1e-9)
    assert torch.allclose(corners(centres(boxes)), boxes)


def test_encode_uses_variances():
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    box = torch.tensor([[0.42, 0.42, 0.62, 0.62]])  # centre +0.02, same size
    assert encode(box, prior)[0].tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0], abs=1e-5)


def test_nms_example():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 6.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 wins first; box 0 overlaps it by 0.6 > 0.3: removed
    assert nms(boxes, scores, 0.3).tolist() == [3, 2]  # box 1 overlaps box 3 by 45/115 too
    assert nms(boxes, scores, 0.7).tolist() == [3, 0, 1, 2]
    assert nms(boxes[:0], scores[:0]).tolist() == []
    with pytest.raises(ValueError, match="scores"):
        nms(boxes, scores[:2])


@given(box_strategy(1, 12), st.floats(0.05, 0.9))
def test_nms_properties(boxes, threshold):
    scores = torch.linspace(1, 0.1, len(boxes), dtype=boxes.dtype)[torch.randperm(len(boxes))]
    kept = nms(boxes, scores, threshold)
    iou = box_iou(boxes, boxes)
    assert scores[kept].tolist() == sorted(scores[kept].tolist(), reverse=True)
    for i, a in enumerate(kept.tolist()):
        for b in kept.tolist()[i + 1:]:
            assert iou[a, b] <= threshold
    for r in set(range(len(boxes))) - set(kept.tolist()):
        assert any(iou[r, k] > threshold and scores[k] >= scores[r] for k in kept.tolist())


def grid_priors(size: int = 8, anchor: float = 0.25) -> torch.Tensor:
    """Anchors of one size at every cell of a size x size grid on the unit square."""
    c = (torch.arange(size) + 0.5) / size
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([cx.flatten(), cy.flatten(), torch.full((size * size,), anchor),
                        torch.full((size * size,), anchor)], dim=1)


def test_match_exact_face_and_background():
    priors = grid_priors()
    face = corners(priors[[27]])  # exactly anchor 27
    loc, labels = match_priors(face, priors)
    assert labels[27] == 1 and torch.allclose(loc[27], torch.zeros(4), atol=1e-6)
    iou = box_iou(face, corners(priors))[0]
    assert torch.equal(labels.bool(), iou >= 0.35)  # one face: stage one only
    loc, labels = match_priors(torch.zeros(0, 4), priors)
    assert labels.sum() == 0 and loc.abs().sum() == 0


def test_tiny_face_keeps_its_best_anchor():
    priors = grid_priors()
    face = torch.tensor([[0.30, 0.30, 0.34, 0.34]])  # IoU with any anchor < 0.05
    _, labels = match_priors(face, priors)
    assert labels.sum() == 1
    assert labels.nonzero().item() == box_iou(face, corners(priors)).argmax().item()


def test_scale_compensation_tops_up_poorly_matched_faces():
    priors = grid_priors(16, 0.125)
    big = torch.tensor([[0.25, 0.25, 0.40, 0.40]])    # 3 anchors at IoU >= 0.35
    small = torch.tensor([[0.70, 0.70, 0.76, 0.76]])  # 0.06 wide, anchors are 0.125: IoU <= 0.23
    iou = box_iou(torch.cat([big, small]), corners(priors))
    stage_one_big = int((iou[0] >= 0.35).sum())
    _, labels_big = match_priors(big, priors)
    assert labels_big.sum() == stage_one_big
    _, labels = match_priors(torch.cat([big, small]), priors)
    assert stage_one_big == 3
    wanted = 2  # mean of (3, 1) anchors per face after stage one
    candidates = int((iou[1] > 0.1).sum())
    small_count = int(((iou[1] > 0.1) & (labels == 1) & (iou[0] < 0.35)).sum())
    assert small_count == min(wanted, candidates) and small_count > 1
    assert labels.sum() == stage_one_big + small_count
    with pytest.raises(ValueError, match="threshold"):
        match_priors(big, priors, threshold=0.05)


def test_multibox_hard_negative_mining_ratio():
    priors = grid_priors()
    face = corners(priors[[9]])
    loss = MultiBoxLoss(priors)
    _, labels = loss.targets([face])
    pos = int(labels.sum())
    # every anchor predicts (face 0, background 0) except 5 confidently right backgrounds
    conf = torch.zeros(1, 64, 2)
    loc = torch.zeros(1, 64, 4)
    easy = [60, 61, 62, 63, 59]
    conf[0, easy, 0] = 10.0
    loc_loss, conf_loss = loss(loc, conf, [face])
    assert loc_loss.item() == pytest.approx(0.0, abs=1e-6)
    # positives and 3 * pos hardest negatives each cost log 2; easy negatives are never mined
    assert conf_loss.item() == pytest.approx(4 * pos * math.log(2) / pos)
    # an image without faces contributes nothing (SSD) unless min_negatives asks for some
    _, conf_empty = loss(loc, conf, [torch.zeros(0, 4)])
    assert conf_empty.item() == 0.0
    _, conf_min = MultiBoxLoss(priors, min_negatives=10)(loc, conf, [torch.zeros(0, 4)])
    assert conf_min.item() == pytest.approx(10 * math.log(2))
    with pytest.raises(ValueError, match="target lists"):
        loss(loc, conf, [face, face])


def test_maxout_background():
    conf = torch.tensor([[1.0, 3.0, 2.0, 0.5]])
    assert maxout_background(conf).tolist() == [[3.0, 0.5]]
    with pytest.raises(ValueError, match="scores"):
        maxout_background(conf, num_background=2)


def test_average_precision_cases():
    gt = [torch.tensor([[10.0, 10, 50, 50]]), torch.tensor([[0.0, 0, 20, 20], [60, 60, 90, 90]])]
    perfect = [Detections(g.clone(), torch.linspace(0.9, 0.8, len(g))) for g in gt]
    assert average_precision(perfect, gt) == pytest.approx(1.0)
    nothing = [Detections(torch.zeros(0, 4), torch.zeros(0)) for _ in gt]
    assert average_precision(nothing, gt) == 0.0
    # one false positive scored above the only true positive: precision 1/2 at every recall
    single = [Detections(torch.tensor([[100.0, 100, 120, 120], [10, 10, 50, 50]]), torch.tensor([0.9, 0.5]))]
    assert average_precision(single, gt[:1]) == pytest.approx(0.5)
    # ...unless that box is an ignored face: then AP is 1
    with_ignored = [torch.tensor([[10.0, 10, 50, 50], [100, 100, 120, 120]])]
    assert average_precision(single, with_ignored, ignore=[torch.tensor([False, True])]) == pytest.approx(1.0)
    # a box at IoU 0.6 counts at 0.5, not at 0.75
    shifted = [Detections(torch.tensor([[10.0, 10, 50, 35]]), torch.tensor([0.9]))]
    assert average_precision(shifted, gt[:1]) == pytest.approx(1.0)
    assert average_precision(shifted, gt[:1], iou_thresholds=(0.75,)) == 0.0
    with pytest.raises(ValueError, match="images"):
        average_precision(perfect, gt[:1])


def test_wider_subsets_ignore_other_faces():
    gt = [torch.tensor([[0.0, 0, 40, 40], [50, 50, 56, 56]])]   # a big and a tiny face
    found_big = [Detections(torch.tensor([[0.0, 0, 40, 40]]), torch.tensor([0.9]))]
    table = wider_subset_ap(found_big, gt, {"easy": [np.array([True, False])],
                                            "hard": [np.array([True, True])]})
    assert table.loc["easy", "ap"] == pytest.approx(1.0) and table.loc["easy", "faces"] == 1
    assert table.loc["hard", "ap"] == pytest.approx(0.5, abs=0.01)  # recall stops at 1/2


class Squares(Dataset):
    """24x24 images, one bright square of side 6-10 px at a random place."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            side = int(torch.randint(6, 11, (1,), generator=g))
            x, y = (int(v) for v in torch.randint(0, 24 - side, (2,), generator=g))
            image = 0.1 * torch.randn(1, 24, 24, generator=g)
            image[:, y:y + side, x:x + side] += 1.0
            self.items.append((image, torch.tensor([[x, y, x + side, y + side]], dtype=torch.float32)))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class TinyDetector(nn.Module):
    """Stride-4 feature map (6x6), one anchor per cell: loc and conf heads as in S3FD."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU())
        self.loc, self.conf = nn.Conv2d(16, 4, 3, padding=1), nn.Conv2d(16, 2, 3, padding=1)

    def forward(self, x):
        f = self.body(x)
        return (self.loc(f).permute(0, 2, 3, 1).flatten(1, 2), self.conf(f).permute(0, 2, 3, 1).flatten(1, 2))


def test_fit_trains_a_toy_detector():
    torch.manual_seed(0)
    priors = grid_priors(6, 8 / 24)
    model = TinyDetector()
    val = Squares(32, 1)
    before = average_precision(*predict(model, val, priors))
    result = fit(model, Squares(128, 0), val, TrainConfig(epochs=8, batch_size=16, lr=0.05, warmup_epochs=1,
                                                          task=DetectionTask(priors), progress=False))
    h = result.history
    assert {"train_loss", "train_loc_loss", "train_conf_loss", "val_loss"} <= set(h.columns)
    assert h["val_loss"].iloc[-1] < 0.5 * h["val_loss"].iloc[0]
    detections, truths = predict(result.model, val, priors)
    assert len(detections) == 32 and truths[0].shape == (1, 4)
    after = average_precision(detections, truths)
    assert after > 0.8 > before
    loc, conf = result.model(torch.stack([val[0][0]]))
    assert len(detect(loc, conf, priors)[0].boxes) >= 1


def test_evaluate_subsets_resizes_and_ignores():
    class Fixed(nn.Module):
        """Predicts anchor 0 as a face with its exact box, everything else background."""
        def forward(self, x):
            conf = torch.zeros(x.shape[0], 4, 2)
            conf[:, :, 0] = 5.0
            conf[:, 0] = torch.tensor([0.0, 5.0])
            return torch.zeros(x.shape[0], 4, 4), conf

    from rnnpool_lite.detection import evaluate_subsets
    priors = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.25, 0.5, 0.5], [0.25, 0.75, 0.5, 0.5],
                           [0.75, 0.75, 0.5, 0.5]])
    image = torch.zeros(3, 40, 80)                         # not square: resized to 16x16 and back
    hit = {"boxes": torch.tensor([[0.0, 0, 40, 20]]), "ignore": torch.zeros(0, 4)}
    ignored = {"boxes": torch.tensor([[40.0, 20, 80, 40]]), "ignore": torch.tensor([[0.0, 0, 40, 20]])}
    table = evaluate_subsets(Fixed(), {"a": [(image, hit)], "b": [(image, ignored)]}, priors, image_size=16)
    assert table.loc["a", "ap"] == pytest.approx(1.0)
    assert table.loc["b", "ap"] == 0.0 and table.loc["b", "faces"] == 1


def test_face_recipe_is_the_chapters() -> None:
    """Chapter 04's page and its evidence run train through one recipe: hard negatives, clipping,
    the last epoch's weights, and max_steps passed through for the replay."""
    from rnnpool_lite.repro.face_recipe import GRAD_CLIP, MIN_NEGATIVES, face_train_config

    priors = torch.rand(10, 4)
    config = face_train_config(priors, epochs=3, batch_size=4, lr=0.05, warmup_epochs=1, seed=7, max_steps=2)
    assert (config.epochs, config.batch_size, config.lr, config.warmup_epochs, config.seed) == (3, 4, 0.05, 1, 7)
    assert config.grad_clip == GRAD_CLIP == 5.0 and not config.restore_best and config.max_steps == 2
    assert config.task.criterion.min_negatives == MIN_NEGATIVES == 8
    assert torch.equal(config.task.criterion.priors, priors)
