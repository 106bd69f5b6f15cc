"""Multibox loss of S3FD / SSD: cross-entropy with 3:1 hard negative mining plus smooth L1.

Almost every anchor is background; training on all of them would teach the detector to say
"background" everywhere. Hard negative mining keeps, per image, only the background anchors with
the highest classification loss, at most ``neg_pos_ratio`` of them per positive. Both terms are
divided by the number of positive anchors in the batch (SSD's normalisation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnpool_lite.detection.boxes import VARIANCES
from rnnpool_lite.detection.matching import match_priors


def maxout_background(conf: Tensor, num_background: int = 3) -> Tensor:
    """S3FD's max-out background label: ``(..., num_background + 1)`` -> ``(..., 2)``.

    The smallest-anchor layer sees far more background than faces; predicting several background
    scores and keeping their maximum makes background harder to win by chance, cutting small
    false positives. Channel order of the input: the background scores, then the face score.
    """
    if conf.shape[-1] != num_background + 1:
        raise ValueError(f"expected {num_background + 1} scores in the last dim, got {conf.shape[-1]}")
    return torch.stack([conf[..., :num_background].amax(dim=-1), conf[..., num_background]], dim=-1)


class MultiBoxLoss(nn.Module):
    """``loss(loc (B, P, 4), conf (B, P, 2), truths list of (n_i, 4)) -> (loc_loss, conf_loss)``.

    ``min_negatives`` keeps that many hardest negatives even in an image without faces (SSD keeps
    none there); 0 gives the original behaviour.
    """

    def __init__(self, priors: Tensor, neg_pos_ratio: int = 3, threshold: float = 0.35,
                 variances: tuple[float, float] = VARIANCES, min_negatives: int = 0) -> None:
        super().__init__()
        if priors.dim() != 2 or priors.shape[1] != 4:
            raise ValueError(f"priors must have shape (P, 4), got {tuple(priors.shape)}")
        if neg_pos_ratio < 1 or min_negatives < 0:
            raise ValueError(f"need neg_pos_ratio >= 1 and min_negatives >= 0, got {neg_pos_ratio}, {min_negatives}")
        self.priors: Tensor
        self.register_buffer("priors", priors.detach().clone(), persistent=False)
        self.neg_pos_ratio = neg_pos_ratio
        self.threshold = threshold
        self.variances = variances
        self.min_negatives = min_negatives

    def targets(self, truths: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Matched ``(B, P, 4)`` offsets and ``(B, P)`` labels for a batch of face lists."""
        priors = self.priors
        pairs = [match_priors(t.to(priors), priors, self.threshold, variances=self.variances) for t in truths]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def forward(self, loc: Tensor, conf: Tensor, truths: list[Tensor]) -> tuple[Tensor, Tensor]:
        batch, num_priors = conf.shape[:2]
        if loc.shape != (batch, num_priors, 4) or conf.shape[-1] != 2 or num_priors != self.priors.shape[0]:
            raise ValueError(f"expected loc (B, {self.priors.shape[0]}, 4) and conf (B, {self.priors.shape[0]}, 2), "
                             f"got {tuple(loc.shape)} and {tuple(conf.shape)}")
        if len(truths) != batch:
            raise ValueError(f"got {len(truths)} target lists for a batch of {batch}")
        self.priors = self.priors.to(loc)
        loc_t, labels = self.targets(truths)
        positive = labels > 0
        num_pos = positive.sum(dim=1, keepdim=True)
        loc_loss = F.smooth_l1_loss(loc[positive], loc_t[positive], reduction="sum")

        per_anchor = F.cross_entropy(conf.reshape(-1, 2), labels.reshape(-1), reduction="none").view(batch, -1)
        mining = per_anchor.detach().masked_fill(positive, 0.0)
        rank = mining.argsort(dim=1, descending=True).argsort(dim=1)
        num_neg = (self.neg_pos_ratio * num_pos).clamp(min=self.min_negatives, max=num_priors - 1)
        negative = (rank < num_neg) & ~positive
        conf_loss = per_anchor[positive | negative].sum()
        total_pos = num_pos.sum().clamp(min=1).to(loc.dtype)
        return loc_loss / total_pos, conf_loss / total_pos
