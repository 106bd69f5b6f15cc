"""From network outputs to a list of scored face boxes per image: softmax, decode, top-k, NMS."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnpool_lite.detection.boxes import VARIANCES, decode, nms


@dataclass
class Detections:
    """Boxes ``(n, 4)`` as ``(x1, y1, x2, y2)`` and ``scores`` ``(n,)``, best first."""

    boxes: Tensor
    scores: Tensor

    def scaled(self, width: float, height: float) -> Detections:
        """Normalised coordinates -> pixels."""
        factor = torch.tensor([width, height, width, height], dtype=self.boxes.dtype, device=self.boxes.device)
        return Detections(self.boxes * factor, self.scores)

    def to_cpu(self) -> Detections:
        return Detections(self.boxes.cpu(), self.scores.cpu())


@torch.no_grad()
def detect(loc: Tensor, conf: Tensor, priors: Tensor, score_threshold: float = 0.05,
           nms_threshold: float = 0.3, top_k: int = 750, keep_top_k: int = 200,
           variances: tuple[float, float] = VARIANCES) -> list[Detections]:
    """Decode a batch: ``loc (B, P, 4)``, ``conf (B, P, 2)`` logits -> one :class:`Detections` each.

    The paper's NMS threshold is 0.3. ``top_k`` candidates (by score, above ``score_threshold``)
    enter NMS and ``keep_top_k`` survivors are returned; boxes are clipped to the image.
    """
    if loc.dim() != 3 or loc.shape[-1] != 4 or conf.shape[:2] != loc.shape[:2] or conf.shape[-1] != 2:
        raise ValueError(f"expected loc (B, P, 4) and conf (B, P, 2), got {tuple(loc.shape)}, {tuple(conf.shape)}")
    priors = priors.to(loc)
    scores_all = conf.softmax(dim=-1)[..., 1]
    out = []
    for b in range(loc.shape[0]):
        scores = scores_all[b]
        keep = torch.nonzero(scores > score_threshold).flatten()
        keep = keep[scores[keep].argsort(descending=True, stable=True)[:top_k]]
        boxes = decode(loc[b, keep], priors[keep], variances).clamp(0.0, 1.0)
        chosen = nms(boxes, scores[keep], nms_threshold)[:keep_top_k]
        out.append(Detections(boxes[chosen], scores[keep][chosen]))
    return out
