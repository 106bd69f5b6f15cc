"""A visual wake-word task from Fashion-MNIST: "is a <target> in this scene?", at 96-128 px.

Each scene is a random crop of one of the shipped background photographs with one or two
Fashion-MNIST objects pasted at random sizes (a quarter to a half of the image side by default) and
positions, without overlap, each with its own contrast and brightness. Positives hold one object of
the target class (Bag by default), beside another class or alone; negatives hold only other classes,
and the same number of objects, so neither "is something pasted" nor "how many" tells the classes
apart: the model has to recognise the object, on clutter, which is where early downsampling loses what
it needs. Classes alternate by index. Measured with the defaults: a 4-layer CNN (16-64 channels,
global average pooling, Adam) trained on 4,000 scenes for 8 epochs reaches 72% on them and 63% on
2,000 test scenes: far from both chance and the ceiling. ``objects`` (more distractors) and
``object_sizes`` (smaller objects) are the knobs of difficulty.

The split is Fashion-MNIST's own: train scenes paste only training images, test scenes only test
images. The background photographs carry no label and are shared by both splits (different crops).
Everything about scene ``i`` is a function of ``(seed, split, i)``: a smaller set is a prefix of a
larger one. The scenes are drawn per scene and rendered in batches with ``torch.nn.functional.grid_sample``
(backgrounds and objects alike), about 2,000 scenes a second on one core; the rendered set is cached
in memory, so a second dataset with the same parameters costs nothing.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rnnpool_lite.data.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist
from rnnpool_lite.data.scenes import place_square
from rnnpool_lite.data.shipped import BACKGROUND_NAMES, background_photograph

SPLITS = ("train", "test")
_BATCH = 256  # scenes rendered per grid_sample call (bounds the memory of the sampling grids)
_ALPHA_FLOOR, _ALPHA_RAMP = 0.02, 0.3  # Fashion-MNIST's background is 0; the dim anti-aliased rim stays see-through


class _Layout(NamedTuple):
    """Everything random about a batch of scenes, drawn per scene (numpy), rendered together (torch)."""

    labels: np.ndarray       # (N,) 0 / 1
    photo: np.ndarray        # (N,) index into BACKGROUND_NAMES
    crop: np.ndarray         # (N, 4) y0, x0, side, flip (in the pre-scaled photograph's pixels)
    boxes: np.ndarray        # (N, K, 3) y, x, side of each object slot in the scene; side 0 = empty
    sources: np.ndarray      # (N, K) index of the pasted image in the split; -1 = empty
    look: np.ndarray         # (N, K, 3) flip, contrast gain, brightness offset


def _photo_scale_side(image_size: int) -> int:
    """Photographs are pre-shrunk (antialiased) so that their shorter side is 1.5x the scene: crops of
    0.5-1 of it are then resampled by at most 1.5x, where bilinear sampling does not alias."""
    return math.ceil(1.5 * image_size)


@lru_cache(maxsize=64)
def _photo(name: str, image_size: int) -> torch.Tensor:
    photo = torch.from_numpy(background_photograph(name)).float()[None, None]
    h, w = photo.shape[-2:]
    scale = _photo_scale_side(image_size) / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(photo, size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def _draw(size: int, image_size: int, seed: int, split: str, target: int, distractors: tuple[int, ...],
          objects: tuple[int, int], object_sizes: tuple[int, int], by_class: list[np.ndarray]) -> _Layout:
    k = objects[1]
    labels = np.arange(size) % 2
    photo = np.zeros(size, dtype=np.int64)
    crop = np.zeros((size, 4), dtype=np.int64)
    boxes = np.zeros((size, k, 3), dtype=np.int64)
    sources = np.full((size, k), -1, dtype=np.int64)
    look = np.zeros((size, k, 3))
    log_lo, log_hi = math.log(object_sizes[0]), math.log(object_sizes[1])
    for i in range(size):
        rng = np.random.default_rng([seed, SPLITS.index(split), i])
        photo[i] = rng.integers(len(BACKGROUND_NAMES))
        ph, pw = _photo(BACKGROUND_NAMES[photo[i]], image_size).shape[-2:]
        side = int(min(ph, pw) * rng.uniform(0.5, 1.0))
        crop[i] = rng.integers(0, ph - side + 1), rng.integers(0, pw - side + 1), side, rng.integers(2)
        n = int(rng.integers(objects[0], objects[1] + 1))
        if labels[i]:
            n = max(n, 1)
        classes = list(rng.choice(distractors, size=n))
        if labels[i]:
            classes[0] = target  # placed first, so it always finds room
        placed: list[tuple[int, int, int, int]] = []  # (x1, y1, x2, y2)
        for cls in classes:
            s = int(round(math.exp(rng.uniform(log_lo, log_hi))))
            spot = place_square(rng, image_size, image_size, s, placed, max_iou=0.0)
            if spot is None:  # a crowded scene: drop this distractor rather than overlap
                continue
            j = len(placed)
            placed.append((spot[1], spot[0], spot[1] + s, spot[0] + s))
            boxes[i, j] = (*spot, s)
            pool = by_class[cls]
            sources[i, j] = pool[rng.integers(len(pool))]
            look[i, j] = rng.integers(2), rng.uniform(0.6, 1.1), rng.uniform(-0.2, 0.2)
    return _Layout(labels, photo, crop, boxes, sources, look)


def _grid(image_size: int, scale_y: torch.Tensor, shift_y: torch.Tensor, scale_x: torch.Tensor,
          shift_x: torch.Tensor) -> torch.Tensor:
    """(N, S, S, 2) sampling grid of an axis-aligned affine map: input_x = scale_x * out_x + shift_x
    (same for y), in ``grid_sample``'s normalised coordinates with ``align_corners=False``. What
    ``affine_grid`` computes, by broadcasting instead of a batched matrix product (5x faster here)."""
    u = (torch.arange(image_size, dtype=torch.float32) * 2 + 1) / image_size - 1  # pixel centres in (-1, 1)
    n = len(scale_x)
    gx = scale_x.view(n, 1, 1) * u.view(1, 1, -1) + shift_x.view(n, 1, 1)
    gy = scale_y.view(n, 1, 1) * u.view(1, -1, 1) + shift_y.view(n, 1, 1)
    return torch.stack(torch.broadcast_tensors(gx, gy), -1)


def _render(layout: _Layout, images: np.ndarray, image_size: int) -> torch.Tensor:
    """The scenes of ``layout`` as uint8 (N, S, S)."""
    s = image_size
    n, k = layout.sources.shape
    canvas = torch.empty(n, 1, s, s)
    # backgrounds: one grid_sample per photograph over the scenes that crop it
    for p in np.unique(layout.photo):
        photo = _photo(BACKGROUND_NAMES[p], s)
        ph, pw = photo.shape[-2:]
        rows = np.flatnonzero(layout.photo == p)
        for start in range(0, len(rows), _BATCH):
            r = rows[start:start + _BATCH]
            y0, x0, side, flip = (torch.from_numpy(layout.crop[r, c]).float() for c in range(4))
            sign = 1 - 2 * flip
            grid = _grid(s, side / ph, (2 * y0 + side) / ph - 1, sign * side / pw, (2 * x0 + side) / pw - 1)
            canvas[torch.from_numpy(r)] = F.grid_sample(photo.expand(len(r), -1, -1, -1), grid, mode="bilinear",
                                                        padding_mode="border", align_corners=False)
    # objects: slot by slot, each object resampled straight onto the whole canvas (zero outside its box)
    for j in range(k):
        rows = np.flatnonzero(layout.sources[:, j] >= 0)
        for start in range(0, len(rows), _BATCH):
            r = rows[start:start + _BATCH]
            obj = torch.from_numpy(images[layout.sources[r, j]]).float().div(255)[:, None]
            y, x, side = (torch.from_numpy(layout.boxes[r, j, c]).float() for c in range(3))
            flip, gain, offset = (torch.from_numpy(layout.look[r, j, c]).float() for c in range(3))
            sign = 1 - 2 * flip
            grid = _grid(s, s / side, (s - 2 * y) / side - 1, sign * s / side, sign * ((s - 2 * x) / side - 1))
            p = F.grid_sample(obj, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            alpha = ((p - _ALPHA_FLOOR) / _ALPHA_RAMP).clamp(0, 1)
            value = (0.5 + gain.view(-1, 1, 1, 1) * (p - 0.5) + offset.view(-1, 1, 1, 1)).clamp(0, 1)
            index = torch.from_numpy(r)
            canvas[index] = alpha * value + (1 - alpha) * canvas[index]
    return canvas[:, 0].mul(255).round_().clamp_(0, 255).to(torch.uint8)


@lru_cache(maxsize=8)
def _scenes(root: str | None, split: str, size: int, image_size: int, target: int, distractors: tuple[int, ...],
            objects: tuple[int, int], object_sizes: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                          _Layout]:
    images, labels = fashion_mnist(root, split)
    by_class = [np.flatnonzero(labels == c) for c in range(len(FASHION_MNIST_CLASSES))]
    layout = _draw(size, image_size, seed, split, target, distractors, objects, object_sizes, by_class)
    pixels = _render(layout, images, image_size)
    return pixels, torch.from_numpy(layout.labels.astype(np.int64)), layout


def _class_index(name: str | int) -> int:
    if isinstance(name, int) and 0 <= name < len(FASHION_MNIST_CLASSES):
        return name
    if isinstance(name, str) and name in FASHION_MNIST_CLASSES:
        return FASHION_MNIST_CLASSES.index(name)
    raise ValueError(f"unknown Fashion-MNIST class {name!r}; choose an index 0-9 or one of {FASHION_MNIST_CLASSES}")


class FashionWakeWords(Dataset):
    """"Is a ``target`` in this scene?": Fashion-MNIST objects on shipped photographs (module docstring).

    Args:
        split: "train" (scenes from Fashion-MNIST's training images) or "test" (from its test images).
        size: number of scenes; classes alternate by index, so they are balanced.
        image_size: side of the square scenes in pixels (at least 32; the book uses 96-128).
        target: the class whose presence is the label (a name of ``FASHION_MNIST_CLASSES`` or its index).
        distractors: the classes pasted besides (and instead of) the target; default all other nine.
        objects: (min, max) objects per scene, the target included; ``min=0`` lets negatives be empty.
        object_sizes: (min, max) side in pixels of a pasted 28x28 object (drawn log-uniformly);
            default (image_size // 4, image_size // 2).
        channels: 3 (grey repeated, RGB models) or 1.
        root: folder of the Fashion-MNIST files (default: Debian's, see :func:`fashion_mnist`).
        seed: scene ``i`` is a function of ``(seed, split, i)``.

    ``images`` is a float tensor (size, channels, S, S) in [0, 1] (the channels are views of one grey
    plane: read-only), ``targets`` int64 (size,), ready for training; items are ``(image, label)``.
    ``boxes`` (size, K, 3) holds each object's y, x, side (side 0: no object) and ``sources`` (size, K)
    the index of the pasted image in the split (-1: none), ``source_classes`` its class.
    """

    def __init__(self, split: str = "train", size: int = 2000, image_size: int = 96, target: str | int = "Bag",
                 distractors: tuple[str | int, ...] | None = None, objects: tuple[int, int] = (1, 2),
                 object_sizes: tuple[int, int] | None = None, channels: int = 3, root: str | Path | None = None,
                 seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an integer >= 1, got {size!r}")
        if not isinstance(image_size, int) or image_size < 32:
            raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
        target_index = _class_index(target)
        others = tuple(c for c in range(len(FASHION_MNIST_CLASSES)) if c != target_index)
        chosen = others if distractors is None else tuple(sorted({_class_index(d) for d in distractors}))
        if not chosen or target_index in chosen:
            raise ValueError(f"distractors must be a non-empty set of classes other than the target "
                             f"{FASHION_MNIST_CLASSES[target_index]!r}, got {distractors!r}")
        lo, hi = objects
        if not 0 <= lo <= hi or hi < 1:
            raise ValueError(f"objects must be (min, max) with 0 <= min <= max and max >= 1, got {objects}")
        smin, smax = (image_size // 4, image_size // 2) if object_sizes is None else object_sizes
        if not 8 <= smin <= smax <= image_size // 2:
            raise ValueError(f"object_sizes must satisfy 8 <= min <= max <= image_size // 2 = {image_size // 2}, "
                             f"got {object_sizes}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.target = FASHION_MNIST_CLASSES[target_index]
        self.classes = [f"no {self.target}", self.target]
        pixels, self.targets, layout = _scenes(None if root is None else str(root), split, size, image_size,
                                               target_index, chosen, (int(lo), int(hi)), (int(smin), int(smax)),
                                               seed)
        self.images = pixels[:, None].float().div(255).expand(-1, channels, -1, -1)
        self.targets = self.targets.clone()  # the cache keeps its own
        self.boxes = torch.from_numpy(layout.boxes.copy())
        self.sources = torch.from_numpy(layout.sources.copy())
        _, labels = fashion_mnist(root, split)
        self.source_classes = torch.from_numpy(np.where(layout.sources >= 0, labels[layout.sources], -1))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.targets[index]
