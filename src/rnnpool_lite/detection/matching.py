"""S3FD anchor matching with scale compensation (Zhang et al., S3FD, ICCV 2017, Sec. 3.3).

RNNPool-Face trains with S3FD's matching (paper, Appendix F). Plain SSD matching (IoU >= 0.5)
leaves tiny faces and faces between anchor scales with few or no anchors. S3FD's two stages:

1. Stage one: an anchor is positive for the face it overlaps most if that IoU is >= 0.35 (lower
   than SSD's 0.5); every face also keeps its single best anchor.
2. Stage two (scale compensation): N is the average number of anchors a face got in stage one.
   Each face with fewer than N takes further anchors whose IoU with it exceeds 0.1 - the highest
   IoU first, only anchors still negative - until it has N (or the candidates run out).

The S3FD paper gives N as "the average number from stage one" without saying over which set; we
average over the faces of the image being matched (rounded to the nearest integer).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnpool_lite.detection.boxes import VARIANCES, box_iou, corners, encode


def match_priors(
    truths: Tensor,
    priors: Tensor,
    threshold: float = 0.35,
    compensation_threshold: float = 0.1,
    variances: tuple[float, float] = VARIANCES,
) -> tuple[Tensor, Tensor]:
    """Match the faces of one image to the anchors.

    Args:
        truths: ``(n, 4)`` face boxes ``(x1, y1, x2, y2)`` (normalised units, like ``priors``).
        priors: ``(P, 4)`` anchors ``(cx, cy, w, h)``.

    Returns:
        ``loc_targets`` ``(P, 4)`` (encoded offsets; zeros where negative) and ``labels`` ``(P,)``
        (1 face, 0 background).
    """
    if not 0.0 < compensation_threshold < threshold <= 1.0:
        raise ValueError("need 0 < compensation_threshold < threshold <= 1, got "
                         f"{compensation_threshold}, {threshold}")
    num_priors = priors.shape[0]
    labels = torch.zeros(num_priors, dtype=torch.long, device=priors.device)
    loc = torch.zeros(num_priors, 4, dtype=priors.dtype, device=priors.device)
    if truths.numel() == 0:
        return loc, labels
    overlaps = box_iou(truths, corners(priors))            # (n, P)
    best_truth_iou, best_truth = overlaps.max(dim=0)       # per anchor: its best face
    best_prior = overlaps.argmax(dim=1)                    # per face: its best anchor
    # every face keeps its best anchor, whatever the IoU (faces are processed in order so a later
    # face wins a shared anchor, as in SSD's implementation)
    best_truth[best_prior] = torch.arange(truths.shape[0], device=priors.device)
    best_truth_iou[best_prior] = 2.0
    positive = best_truth_iou >= threshold
    counts = torch.bincount(best_truth[positive], minlength=truths.shape[0])
    wanted = int(torch.round(counts.float().mean()).item())
    for face in range(truths.shape[0]):
        missing = wanted - int(counts[face])
        if missing <= 0:
            continue
        candidate_iou = torch.where(positive, torch.zeros_like(overlaps[face]), overlaps[face])
        candidate_iou = torch.where(candidate_iou > compensation_threshold, candidate_iou,
                                    torch.zeros_like(candidate_iou))
        top_iou, top = candidate_iou.topk(min(missing, num_priors))
        chosen = top[top_iou > 0]
        positive[chosen] = True
        best_truth[chosen] = face
    labels[positive] = 1
    loc[positive] = encode(truths[best_truth[positive]], priors[positive], variances)
    return loc, labels
