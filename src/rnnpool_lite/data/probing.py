"""The probing sets of the paper's Appendix C.1: synthetic 8-bit monochrome images with noise.

Three datasets ask whether one RNNPool operator "sees" geometry: the orientation of one line
(9 classes), the orientations present among several lines (multi-label over the same 9), and which
of 5 filled shapes are present (multi-label). Images are drawn with scikit-image's rasterisers
(`skimage.draw.line_aa` anti-aliased lines, `skimage.draw.polygon`, `skimage.draw.disk`) rather
than hand-written ones. Every image is a function of ``(seed, index)`` only, so a dataset is the
same on every machine and any item can be regenerated alone.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from skimage.draw import disk, line_aa, polygon
from torch.utils.data import Dataset

ORIENTATIONS_DEG: tuple[int, ...] = tuple(range(0, 180, 20))  # 0, 20, ..., 160: 9 classes
ORIENTATION_CLASSES: list[str] = [f"{a} deg" for a in ORIENTATIONS_DEG]
SHAPE_CLASSES: list[str] = ["circle", "triangle", "square", "pentagon", "hexagon"]
_SHAPE_SIDES = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}


def _check(image_size: int, size: int, noise: int) -> None:
    if image_size not in (32, 64):
        raise ValueError(f"image_size must be 32 or 64 (the paper's sizes), got {image_size}")
    if size < 1:
        raise ValueError(f"size must be a positive number of images, got {size}")
    if not 0 <= noise <= 255:
        raise ValueError(f"noise must be a maximum 8-bit noise level in [0, 255], got {noise}")


def _noisy_canvas(rng: np.random.Generator, image_size: int, noise: int) -> np.ndarray:
    """Uniform background noise in [0, noise]: the 'background noise' of Appendix C.1."""
    return rng.integers(0, noise + 1, size=(image_size, image_size)).astype(np.float64)


def _draw_line(canvas: np.ndarray, rng: np.random.Generator, angle_deg: float) -> None:
    """One anti-aliased segment of the given orientation through a random centre, clipped."""
    n = canvas.shape[0]
    length = rng.uniform(0.45, 0.8) * n
    cy, cx = rng.uniform(0.3 * n, 0.7 * n, size=2)
    dy, dx = -math.sin(math.radians(angle_deg)), math.cos(math.radians(angle_deg))
    r0, c0 = cy - dy * length / 2, cx - dx * length / 2
    r1, c1 = cy + dy * length / 2, cx + dx * length / 2
    clip = lambda v: int(round(min(max(v, 0), n - 1)))  # noqa: E731
    rr, cc, val = line_aa(clip(r0), clip(c0), clip(r1), clip(c1))
    intensity = rng.uniform(180, 255)
    canvas[rr, cc] = np.maximum(canvas[rr, cc], val * intensity)


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


class _ProbingDataset(Dataset):
    """Common storage: a (size, 1, H, W) uint8 tensor, returned as float in [0, 1]."""

    classes: list[str]
    images: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float() / 255.0, self.targets[index]


class OneLineDataset(_ProbingDataset):
    """Appendix C.1 (1): one line segment per image, class = its orientation (9 classes).

    ``size`` images of 1 x image_size x image_size; target: class index (int64) into
    ``classes`` = ["0 deg", "20 deg", ..., "160 deg"]. Classes are balanced (index % 9).
    """

    def __init__(self, size: int = 900, image_size: int = 32, noise: int = 40, seed: int = 0) -> None:
        _check(image_size, size, noise)
        self.classes = list(ORIENTATION_CLASSES)
        images, targets = [], []
        for i in range(size):
            rng = np.random.default_rng([seed, 1, i])
            label = i % len(ORIENTATIONS_DEG)
            canvas = _noisy_canvas(rng, image_size, noise)
            _draw_line(canvas, rng, ORIENTATIONS_DEG[label])
            images.append(_to_uint8(canvas))
            targets.append(label)
        self.images = torch.from_numpy(np.stack(images)[:, None])
        self.targets = torch.tensor(targets, dtype=torch.int64)


class MultiLineDataset(_ProbingDataset):
    """Appendix C.1 (2): 1..max_lines segments per image; multi-hot target over the 9 orientations.

    Target: float32 vector of length 9 (1 where at least one line has that orientation), ready for
    ``BCEWithLogitsLoss``.
    """

    def __init__(self, size: int = 900, image_size: int = 32, max_lines: int = 3, noise: int = 40,
                 seed: int = 0) -> None:
        _check(image_size, size, noise)
        if max_lines < 1:
            raise ValueError(f"max_lines must be >= 1, got {max_lines}")
        self.classes = list(ORIENTATION_CLASSES)
        images, targets = [], []
        for i in range(size):
            rng = np.random.default_rng([seed, 2, i])
            canvas = _noisy_canvas(rng, image_size, noise)
            target = np.zeros(len(ORIENTATIONS_DEG), dtype=np.float32)
            for label in rng.integers(0, len(ORIENTATIONS_DEG), size=rng.integers(1, max_lines + 1)):
                _draw_line(canvas, rng, ORIENTATIONS_DEG[label])
                target[label] = 1.0
            images.append(_to_uint8(canvas))
            targets.append(target)
        self.images = torch.from_numpy(np.stack(images)[:, None])
        self.targets = torch.from_numpy(np.stack(targets))


def _draw_shape(canvas: np.ndarray, name: str, cy: float, cx: float, radius: float,
                rotation: float, intensity: float) -> None:
    shape = canvas.shape
    if name == "circle":
        rr, cc = disk((cy, cx), radius, shape=shape)
    else:
        k = _SHAPE_SIDES[name]
        angles = rotation + 2 * np.pi * np.arange(k) / k
        rr, cc = polygon(cy - radius * np.sin(angles), cx + radius * np.cos(angles), shape=shape)
    canvas[rr, cc] = intensity


class ShapesDataset(_ProbingDataset):
    """Appendix C.1 (3): a random non-empty subset of the 5 shapes, filled, not overlapping.

    Target: float32 multi-hot vector over ``classes`` = circle, triangle, square, pentagon, hexagon.
    Shapes are placed by rejection sampling so that their circumscribed circles do not touch.
    """

    def __init__(self, size: int = 1000, image_size: int = 64, max_shapes: int = 3, noise: int = 40,
                 seed: int = 0) -> None:
        _check(image_size, size, noise)
        if not 1 <= max_shapes <= len(SHAPE_CLASSES):
            raise ValueError(f"max_shapes must be in [1, 5], got {max_shapes}")
        self.classes = list(SHAPE_CLASSES)
        n = image_size
        images, targets = [], []
        for i in range(size):
            rng = np.random.default_rng([seed, 3, i])
            canvas = _noisy_canvas(rng, n, noise)
            count = int(rng.integers(1, max_shapes + 1))
            chosen = rng.choice(len(SHAPE_CLASSES), size=count, replace=False)
            placed: list[tuple[float, float, float]] = []
            target = np.zeros(len(SHAPE_CLASSES), dtype=np.float32)
            for label in chosen:
                for _ in range(200):
                    radius = rng.uniform(0.1, 0.17) * n
                    cy, cx = rng.uniform(radius + 1, n - radius - 1, size=2)
                    if all(math.hypot(cy - y, cx - x) > radius + r + 1 for y, x, r in placed):
                        break
                else:  # no room left: keep the labels honest by not drawing this shape
                    continue
                placed.append((cy, cx, radius))
                _draw_shape(canvas, SHAPE_CLASSES[label], cy, cx, radius,
                            rng.uniform(0, 2 * np.pi), rng.uniform(180, 255))
                target[label] = 1.0
            images.append(_to_uint8(canvas))
            targets.append(target)
        self.images = torch.from_numpy(np.stack(images)[:, None])
        self.targets = torch.from_numpy(np.stack(targets))


#: Table 7's multi-label probing sets (rows 2-3) by name: the dataset class and the image size
MULTI_LABEL_SETS: dict[str, tuple[type[MultiLineDataset] | type[ShapesDataset], int]] = {
    "lines32": (MultiLineDataset, 32),
    "lines64": (MultiLineDataset, 64),
    "shapes64": (ShapesDataset, 64),
}


def multi_label_set(name: str, size: int, seed: int) -> MultiLineDataset | ShapesDataset:
    """``size`` images of the multi-label probing set ``name`` (a key of :data:`MULTI_LABEL_SETS`),
    drawn from ``seed``: the search of Table 7 trains on one seed's set and validates on another's."""
    if name not in MULTI_LABEL_SETS:
        raise ValueError(f"name must be one of {tuple(MULTI_LABEL_SETS)}, got {name!r}")
    cls, image_size = MULTI_LABEL_SETS[name]
    return cls(size=size, image_size=image_size, seed=seed)


def permute_rows_and_columns(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The paper's Figure 4 control: shuffle the rows and the columns of every image (same permutation).

    Pixel values stay, and so does each row's and each column's content up to order: a line's
    number of rows and columns (its extents) survives, and a line and its mirror image (θ and
    180° - θ) become the same kind of pattern. It does not remove the geometry that RNNPool's row
    and column sweeps can read; :func:`shuffle_pixels` does. Works on (..., H, W) tensors.
    """
    if images.dim() < 2:
        raise ValueError(f"images must have at least 2 dims (..., H, W), got shape {tuple(images.shape)}")
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(images.shape[-2], generator=g)
    cols = torch.randperm(images.shape[-1], generator=g)
    return images[..., rows, :][..., cols]


def shuffle_pixels(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Move every pixel of every image to a random place, with a new permutation per image.

    The control for "RNNPool reads geometry, not gross aggregations": each image keeps its
    histogram (mean, amount of ink, brightest value), all spatial structure goes, and nothing is
    shared between images that a model could learn to undo. Works on (N, ..., H, W) tensors; the
    leading axes other than the first (channels) move with their pixel.
    """
    if images.dim() < 3:
        raise ValueError(f"images must have at least 3 dims (N, ..., H, W), got shape {tuple(images.shape)}")
    g = torch.Generator().manual_seed(seed)
    n, *middle, h, w = images.shape
    order = torch.rand(n, h * w, generator=g).argsort(dim=1)
    flat = images.reshape(n, -1, h * w)
    return flat.gather(2, order[:, None].expand_as(flat)).reshape(images.shape)
