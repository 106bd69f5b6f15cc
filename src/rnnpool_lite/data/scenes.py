"""Synthetic scenes made of real pixels: LFW faces pasted onto crops of real photographs.

Two datasets build on the same paste step:
- ``FaceSceneDataset``: face detection. Each image holds ``faces_per_image`` faces at several scales
  (random flips and brightness/contrast jitter) with ground-truth boxes (x1, y1, x2, y2) in pixels.
- ``FaceVsBackgroundDataset``: person / no-person classification in the spirit of Visual Wake Words.
  Negatives get a pasted *non-face* crop of the same size, so "is something pasted here" is no clue.

Faces are pasted through a feathered elliptical mask (so the square border of the crop is no clue
either); the box is the whole pasted square, as in WIDER FACE where boxes include hair and chin.
Everything is grey because the face crops are grey (colour would give faces away); ``channels=3``
repeats the grey plane for RGB models, ``channels=1`` gives the monochrome input of the M4 model.

Train/val separation: lfw_subset has no identity labels, so faces are split by *face image index*
(a face crop is in one split only; the same person could in principle appear in both). Background
photographs are split by *source photograph*. Both splits use the same seed, so they are disjoint.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rnnpool_lite import validate
from rnnpool_lite.data.shipped import BACKGROUND_NAMES, background_photograph, lfw_faces, lfw_non_faces, split_indices


def _resize_grey(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of a grey (H, W) array (torch's, several times faster than
    scikit-image's Gaussian-then-warp on the large background crops)."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].double().numpy()


def _elliptical_alpha(side: int, feather: float = 0.15) -> np.ndarray:
    """1 inside the inscribed ellipse, ramping to 0 over ``feather`` of the radius at its edge."""
    coords = (np.arange(side) + 0.5) / side * 2 - 1
    r = np.hypot(*np.meshgrid(coords, coords, indexing="ij"))
    return np.clip((1.0 - r) / feather, 0.0, 1.0)


def _background_crop(rng: np.random.Generator, names: list[str], h: int, w: int) -> np.ndarray:
    """A random crop (10-100% of the shorter side, the scene's aspect) of a random photograph."""
    photo = background_photograph(names[int(rng.integers(len(names)))])
    ph, pw = photo.shape
    scale = rng.uniform(0.3, 1.0)
    ch = max(8, int(min(ph, pw * h / w) * scale))
    cw = max(8, int(ch * w / h))
    y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return _resize_grey(crop, (h, w))


def _paste(canvas: np.ndarray, patch: np.ndarray, y: int, x: int, side: int,
           rng: np.random.Generator) -> None:
    """Resize ``patch`` to side x side, jitter it, flip it, blend it in at (y, x)."""
    p = _resize_grey(patch, (side, side))
    if rng.random() < 0.5:
        p = p[:, ::-1]
    p = np.clip((p - p.mean()) * rng.uniform(0.7, 1.3) + p.mean() + rng.uniform(-0.15, 0.15), 0, 1)
    alpha = _elliptical_alpha(side)
    region = canvas[y:y + side, x:x + side]
    canvas[y:y + side, x:x + side] = alpha * p + (1 - alpha) * region


def place_square(rng: np.random.Generator, h: int, w: int, side: int,
           boxes: list[tuple[int, int, int, int]], max_iou: float) -> tuple[int, int] | None:
    """Top-left corner for a side x side square overlapping earlier ``(x1, y1, x2, y2)`` boxes by IoU <= max_iou
    (``None`` after 50 tries); ``max_iou=0`` allows no overlap at all."""
    for _ in range(50):
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        ok = True
        for x1, y1, x2, y2 in boxes:
            iw = max(0, min(x + side, x2) - max(x, x1))
            ih = max(0, min(y + side, y2) - max(y, y1))
            inter = iw * ih
            if inter / (side * side + (x2 - x1) * (y2 - y1) - inter) > max_iou:
                ok = False
                break
        if ok:
            return y, x
    return None


def _split_backgrounds(split: str, seed: int, val_fraction: float) -> list[str]:
    return [BACKGROUND_NAMES[i] for i in split_indices(len(BACKGROUND_NAMES), split, val_fraction, seed)]


class FaceSceneDataset(Dataset):
    """Face-detection scenes: real LFW faces on crops of real photographs, with boxes.

    Args:
        split: "train" or "val" (faces split by face image index, backgrounds by photograph).
        size: number of scenes (generated once at construction, stored as uint8).
        image_size: int or (H, W) of every scene.
        faces_per_image: (min, max) faces per scene, inclusive; 0 allowed (pure background).
        face_sizes: (min, max) side of a pasted face in pixels (drawn log-uniformly: several scales).
        channels: 1 (monochrome, M4 model) or 3 (grey repeated, RGB models).
        max_iou: largest IoU allowed between two faces of one scene.
        val_fraction: share of faces and of photographs kept for validation.
        seed: everything is a function of (seed, split, index).

    Items: ``(image, target)`` with image a (channels, H, W) float tensor in [0, 1] and target a dict
    ``{"boxes": float32 (n, 4) x1, y1, x2, y2 in pixels (x2, y2 exclusive), "labels": int64 (n,) of 1}``.
    Batch them with :func:`detection_collate`. ``classes`` = ["background", "face"].
    """

    classes = ["background", "face"]

    def __init__(self, split: str = "train", size: int = 200, image_size: int | tuple[int, int] = 128,
                 faces_per_image: tuple[int, int] = (1, 3), face_sizes: tuple[int, int] = (16, 48),
                 channels: int = 3, max_iou: float = 0.0, val_fraction: float = 0.2,
                 seed: int = 0) -> None:
        h, w = validate.pair("image_size", image_size, minimum=8)
        lo, hi = faces_per_image
        if not 0 <= lo <= hi:
            raise ValueError(f"faces_per_image must be (min, max) with 0 <= min <= max, got {faces_per_image}")
        smin, smax = face_sizes
        if not 4 <= smin <= smax <= min(h, w):
            raise ValueError(f"face_sizes must satisfy 4 <= min <= max <= {min(h, w)}, got {face_sizes}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.channels = channels
        self.face_indices = split_indices(100, split, val_fraction, seed)
        self.backgrounds = _split_backgrounds(split, seed, val_fraction)
        faces = lfw_faces()
        split_id = 0 if split == "train" else 1
        images, self.boxes = [], []
        for i in range(size):
            rng = np.random.default_rng([seed, 10 + split_id, i])
            canvas = _background_crop(rng, self.backgrounds, h, w)
            boxes: list[tuple[int, int, int, int]] = []
            for _ in range(int(rng.integers(lo, hi + 1))):
                side = int(round(np.exp(rng.uniform(np.log(smin), np.log(smax)))))
                spot = place_square(rng, h, w, side, boxes, max_iou)
                if spot is None:
                    continue
                y, x = spot
                _paste(canvas, faces[self.face_indices[int(rng.integers(len(self.face_indices)))]],
                       y, x, side, rng)
                boxes.append((x, y, x + side, y + side))
            images.append(np.round(canvas * 255).astype(np.uint8))
            self.boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        self.images = torch.from_numpy(np.stack(images))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = self.images[index][None].float().div(255.0).expand(self.channels, -1, -1).contiguous()
        boxes = self.boxes[index].clone()
        return image, {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}


def detection_collate(batch: list[tuple[torch.Tensor, dict[str, torch.Tensor]]]
                      ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """DataLoader ``collate_fn`` for detection: stack the images, keep the targets as a list
    (every image has its own number of boxes)."""
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)


class FaceVsBackgroundDataset(Dataset):
    """Person / no-person classification in the spirit of Visual Wake Words, from shipped pixels.

    Each image is a background crop; positives (class 1, "person") carry one LFW face whose side is
    a fraction ``face_fraction`` = (lo, hi) of the image side; negatives (class 0, "no-person")
    carry a pasted lfw_subset non-face crop of the same size distribution. Classes alternate by index (balanced).
    Faces, non-faces and photographs are split between train and val as in ``FaceSceneDataset``.
    Items: ((channels, S, S) float tensor in [0, 1], class index).
    """

    classes = ["no-person", "person"]

    def __init__(self, split: str = "train", size: int = 1000, image_size: int = 64,
                 face_fraction: tuple[float, float] = (0.25, 0.6), channels: int = 3,
                 val_fraction: float = 0.2, seed: int = 0) -> None:
        s, _ = validate.pair("image_size", image_size, minimum=8)
        if not 0.0 < face_fraction[0] <= face_fraction[1] <= 1.0:
            raise ValueError(f"face_fraction must be (lo, hi) with 0 < lo <= hi <= 1, got {face_fraction}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.channels = channels
        face_idx = split_indices(100, split, val_fraction, seed)
        other_idx = split_indices(100, split, val_fraction, seed + 1)
        backgrounds = _split_backgrounds(split, seed, val_fraction)
        faces, others = lfw_faces(), lfw_non_faces()
        split_id = 0 if split == "train" else 1
        images, targets = [], []
        for i in range(size):
            rng = np.random.default_rng([seed, 20 + split_id, i])
            label = i % 2
            canvas = _background_crop(rng, backgrounds, s, s)
            side = max(4, int(round(rng.uniform(*face_fraction) * s)))
            y, x = int(rng.integers(0, s - side + 1)), int(rng.integers(0, s - side + 1))
            patch = faces[face_idx[int(rng.integers(len(face_idx)))]] if label else \
                others[other_idx[int(rng.integers(len(other_idx)))]]
            _paste(canvas, patch, y, x, side, rng)
            images.append(np.round(canvas * 255).astype(np.uint8))
            targets.append(label)
        self.images = torch.from_numpy(np.stack(images))
        self.targets = torch.tensor(targets, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index][None].float().div(255.0).expand(self.channels, -1, -1).contiguous()
        return image, self.targets[index]
