"""Fashion-MNIST (Xiao et al. 2017) from its four IDX files, read with gzip and numpy; no download.

Debian's ``dataset-fashion-mnist`` installs the files of the original distribution under
``/usr/share/datasets/fashion-mnist/`` (``scripts/system_packages.sh`` installs it): 60,000 training
and 10,000 test images, 28x28 grey, 10 balanced classes. They are the files torchvision reads too, so
a copy anywhere else (``root=``) works the same, gzipped or not.
"""
from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

import numpy as np

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
#: the split's (images, labels) files, as the original distribution names them
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one Fashion-MNIST uses


def fashion_mnist(root: str | Path | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The ``split`` ("train" or "test") of Fashion-MNIST: images uint8 (N, 28, 28), labels int64 (N,).

    Reads ``<name>.gz`` or ``<name>`` for the split's two files in ``root`` (default: Debian's
    ``/usr/share/datasets/fashion-mnist``). A missing file raises ``FileNotFoundError`` naming the
    Debian package and the expected file names. The arrays are cached and read-only (copy to change).
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {tuple(FILES)}, got {split!r}")
    folder = Path(root) if root is not None else DEFAULT_ROOT
    images_name, labels_name = FILES[split]
    images = _read_idx(_find(folder, images_name))
    labels = _read_idx(_find(folder, labels_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{folder}: {images_name} holds {images.shape} and {labels_name} {labels.shape}; "
                         "expected (N, 28, 28) images and N labels")
    return images, labels.astype(np.int64)


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    expected = ", ".join(f"{n}.gz" for pair in FILES.values() for n in pair)
    raise FileNotFoundError(
        f"Fashion-MNIST file {name}.gz (or {name}) not found in {folder}. Install the Debian package "
        f"{DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE}, or scripts/system_packages.sh), which puts the "
        f"files in {DEFAULT_ROOT}, or pass root= a folder holding {expected}.")


@cache
def _read_idx(path: Path) -> np.ndarray:
    """One IDX file: a big-endian header (magic 0x0000TTDD: type TT, DD dimensions), the sizes, the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} ({int(np.prod(shape))} bytes), file holds {len(raw) - offset}")
    array = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)
    array.setflags(write=False)
    return array
