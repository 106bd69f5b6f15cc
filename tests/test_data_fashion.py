"""Fashion-MNIST: the IDX loader on the real files and on files written here, and the wake-word scenes."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnpool_lite.data import FASHION_MNIST_CLASSES, FashionWakeWords, fashion_mnist, fashion_scenes, padded_images
from rnnpool_lite.data.fashion_mnist import DEFAULT_ROOT, FILES

real_files = pytest.mark.skipif(not (DEFAULT_ROOT / "t10k-labels-idx1-ubyte.gz").is_file(),
                                reason="dataset-fashion-mnist not installed (scripts/system_packages.sh)")


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _fake_root(folder: Path, n_train: int = 60, n_test: int = 30, gz: bool = True) -> Path:
    """A Fashion-MNIST folder in the real format: image i is a bright rectangle, label i % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i in range(n):
            y, x = rng.integers(2, 8, size=2)
            images[i, y:28 - y, x:28 - x] = rng.integers(100, 256)
        labels = np.arange(n) % 10
        for name, array in zip(FILES[split], (images, labels)):
            data = _idx(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


@real_files
def test_loader_reads_the_real_files() -> None:
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = fashion_mnist(split=split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [n // 10] * 10
        assert images.max() == 255 and images.min() == 0 and not images.flags.writeable
    assert len(FASHION_MNIST_CLASSES) == 10 and FASHION_MNIST_CLASSES[8] == "Bag"


@pytest.mark.parametrize("gz", [True, False])
def test_loader_reads_the_format_anywhere(tmp_path: Path, gz: bool) -> None:
    root = _fake_root(tmp_path / "fm", gz=gz)
    images, labels = fashion_mnist(root, "test")
    assert images.shape == (30, 28, 28) and labels.tolist() == [i % 10 for i in range(30)]


def test_loader_names_the_package_and_files_when_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as info:
        fashion_mnist(tmp_path, "train")
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="split must be one of"):
        fashion_mnist(tmp_path, "val")


def test_loader_refuses_a_damaged_file(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "fm", gz=False)
    (root / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)  # float type code
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        fashion_mnist(root, "test")
    (root / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.arange(30))[:-3])  # truncated
    with pytest.raises(ValueError, match="header says"):
        fashion_mnist(root, "test")
    (root / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.arange(29)))  # one label short
    with pytest.raises(ValueError, match="expected"):
        fashion_mnist(root, "test")


def test_scenes_shapes_balance_and_labels(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "fm")
    ds = FashionWakeWords("train", size=40, image_size=64, object_sizes=(10, 24), root=root, seed=3)
    assert ds.images.shape == (40, 3, 64, 64) and ds.images.dtype == torch.float32
    assert ds.images.min() >= 0 and ds.images.max() <= 1 and ds.images.std() > 0.05
    assert ds.targets.dtype == torch.int64 and ds.targets.tolist() == [i % 2 for i in range(40)]
    assert ds.classes == ["no Bag", "Bag"] and len(ds) == 40
    image, label = ds[1]
    assert image.shape == (3, 64, 64) and label == 1
    bag = FASHION_MNIST_CLASSES.index("Bag")
    has_bag = (ds.source_classes == bag).any(1)
    assert torch.equal(has_bag, ds.targets.bool())  # the label is exactly "a Bag was pasted"
    assert ((ds.source_classes == bag).sum(1) <= 1).all()
    assert ((ds.sources >= 0).sum(1) >= 1).all()  # objects=(1, 2): every scene has something pasted
    assert ((ds.sources >= 0).sum(1) == 2).any()
    one = FashionWakeWords("train", size=4, image_size=64, object_sizes=(10, 24), channels=1, root=root, seed=3)
    assert one.images.shape == (4, 1, 64, 64) and torch.equal(one.images[:, 0], ds.images[:4, 0])


def test_scenes_objects_lie_inside_and_do_not_overlap(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "fm")
    ds = FashionWakeWords("train", size=60, image_size=48, objects=(2, 4), object_sizes=(8, 20), root=root)
    for boxes in ds.boxes.tolist():
        squares = [b for b in boxes if b[2] > 0]
        assert all(y >= 0 and x >= 0 and y + s <= 48 and x + s <= 48 and 8 <= s <= 20 for y, x, s in squares)
        for i, (y, x, s) in enumerate(squares):
            for y2, x2, s2 in squares[i + 1:]:
                assert y + s <= y2 or y2 + s2 <= y or x + s <= x2 or x2 + s2 <= x
    assert torch.equal(ds.boxes[..., 2] > 0, ds.sources >= 0)


def test_negatives_may_be_empty_positives_never(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "fm")
    ds = FashionWakeWords("train", size=80, image_size=48, objects=(0, 1), object_sizes=(8, 20), root=root)
    counts = (ds.sources >= 0).sum(1)
    assert (counts[ds.targets == 1] == 1).all()
    assert (counts[ds.targets == 0] == 0).any() and (counts[ds.targets == 0] == 1).any()


def test_scenes_are_a_function_of_seed_split_and_index(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "fm")
    kwargs = {"image_size": 48, "object_sizes": (8, 20), "root": root}
    a = FashionWakeWords("train", size=12, seed=1, **kwargs)
    fashion_scenes._scenes.cache_clear()  # rendered again, not read from the cache
    b = FashionWakeWords("train", size=12, seed=1, **kwargs)
    assert torch.equal(a.images, b.images) and torch.equal(a.sources, b.sources)
    longer = FashionWakeWords("train", size=20, seed=1, **kwargs)
    assert torch.equal(longer.images[:12], a.images)  # a smaller set is a prefix of a larger one
    other = FashionWakeWords("train", size=12, seed=2, **kwargs)
    assert not torch.equal(other.images, a.images)
    # the dataset hands out its own tensors: changing them leaves the cache alone
    a.targets[0] = 7
    assert FashionWakeWords("train", size=12, seed=1, **kwargs).targets[0] == 0


def test_train_scenes_paste_training_images_and_test_scenes_test_images(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_root(tmp_path / "fm", n_train=60, n_test=30)
    asked: list[str] = []
    real = fashion_scenes.fashion_mnist

    def spy(root_: object, split: str) -> tuple[np.ndarray, np.ndarray]:
        asked.append(split)
        return real(root_, split)

    monkeypatch.setattr(fashion_scenes, "fashion_mnist", spy)
    test = FashionWakeWords("test", size=50, image_size=48, object_sizes=(8, 20), root=root)
    assert set(asked) == {"test"}
    used = test.sources[test.sources >= 0]
    assert used.max() < 30  # indices into the 30 test images
    _, test_labels = fashion_mnist(root, "test")
    assert torch.equal(test.source_classes[test.sources >= 0], torch.from_numpy(test_labels)[used])
    asked.clear()
    FashionWakeWords("train", size=50, image_size=48, object_sizes=(8, 20), root=root)
    assert set(asked) == {"train"}


@real_files
def test_scenes_from_the_real_files_keep_the_split() -> None:
    train = FashionWakeWords("train", size=64, seed=0)
    test = FashionWakeWords("test", size=64, seed=0)
    assert train.images.shape == (64, 3, 96, 96)
    sides = train.boxes[..., 2][train.sources >= 0]
    assert sides.min() >= 24 and sides.max() <= 48  # the default: a quarter to a half of the side
    assert test.sources.max() < 10000 and train.sources.max() >= 10000  # 60,000 training images to draw from
    assert not torch.equal(train.images, test.images)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"split": "val"}, "split must be one of"),
    ({"size": 0}, "size must be an integer >= 1"),
    ({"image_size": 16}, "image_size must be an integer >= 32"),
    ({"target": "Hat"}, "unknown Fashion-MNIST class 'Hat'"),
    ({"target": 10}, "unknown Fashion-MNIST class 10"),
    ({"target": "Bag", "distractors": ("Bag", "Coat")}, "distractors must be a non-empty set"),
    ({"distractors": ()}, "distractors must be a non-empty set"),
    ({"objects": (2, 1)}, "objects must be"),
    ({"objects": (0, 0)}, "objects must be"),
    ({"object_sizes": (4, 20)}, "object_sizes must satisfy"),
    ({"image_size": 64, "object_sizes": (10, 40)}, r"max <= image_size // 2 = 32"),
    ({"channels": 2}, "channels must be 1 or 3"),
])
def test_bad_parameters_are_named(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FashionWakeWords(**{"size": 4, "root": tmp_path, **kwargs})


def test_distractors_and_target_by_index(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "fm")
    ds = FashionWakeWords("train", size=30, image_size=48, object_sizes=(8, 20), target=6,
                          distractors=("T-shirt/top", 4), root=root)
    assert ds.classes == ["no Shirt", "Shirt"]
    assert set(ds.source_classes[ds.sources >= 0].tolist()) <= {0, 4, 6}


def test_padded_images_pad_28_to_32_with_black_and_pick_by_seed(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "fm")
    images, labels = fashion_mnist(root, "test")
    padded = padded_images("fashion_mnist", "test", 10, seed=1, root=root)
    x, y = padded.tensors
    assert x.shape == (10, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x[..., :2, :].abs().sum() == 0 and x[..., :, 30:].abs().sum() == 0  # 2 black pixels per side
    pick = [int(np.flatnonzero((images == np.round(255 * x[i, 0, 2:30, 2:30].numpy())).all(axis=(1, 2)))[0])
            for i in range(10)]
    assert y.tolist() == labels[pick].tolist() and len(set(pick)) == 10
    again, other = padded_images("fashion_mnist", "test", 10, seed=1, root=root), padded_images(
        "fashion_mnist", "test", 10, seed=2, root=root)
    assert torch.equal(again.tensors[0], x) and not torch.equal(other.tensors[0], x)


def test_padded_images_refuse_what_they_cannot_supply(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "fm")
    with pytest.raises(ValueError, match=r"\[1, 30\]"):
        padded_images("fashion_mnist", "test", 31, root=root)
    with pytest.raises(ValueError, match="cifar10"):
        padded_images("cifar10", "test", 3)
    with pytest.raises(ValueError, match="val"):
        padded_images("mnist", "val", 3)
    digits = padded_images("mnist", "test", 4)
    assert digits.tensors[0].shape == (4, 1, 32, 32) and digits.tensors[0].max() <= 1.0
