"""Probing sets, shipped real images and face scenes: shapes, labels, determinism, splits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnpool_lite.data import (
    BACKGROUND_NAMES,
    DigitsDataset,
    FaceSceneDataset,
    FaceVsBackgroundDataset,
    LFWFacesDataset,
    MultiLineDataset,
    OneLineDataset,
    ShapesDataset,
    detection_collate,
    permute_rows_and_columns,
    shuffle_pixels,
)


def test_one_line_classes_balanced_and_deterministic() -> None:
    a, b = OneLineDataset(size=90, seed=3), OneLineDataset(size=90, seed=3)
    assert a.classes[0] == "0 deg" and a.classes[-1] == "160 deg" and len(a.classes) == 9
    assert torch.equal(a.images, b.images)
    assert torch.bincount(a.targets).tolist() == [10] * 9
    x, y = a[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    assert not torch.equal(OneLineDataset(size=9, seed=4).images, a.images[:9])


def test_one_line_orientation_is_in_the_pixels() -> None:
    # The principal axis of the bright pixels must point along the class angle (within 12 deg).
    d = OneLineDataset(size=45, image_size=64, noise=0, seed=1)
    for img, label in zip(d.images[:, 0].numpy(), d.targets.numpy()):
        rr, cc = np.nonzero(img > 100)
        cov = np.cov(np.stack([cc, -rr]).astype(float))
        v = np.linalg.eigh(cov)[1][:, -1]
        angle = np.degrees(np.arctan2(v[1], v[0])) % 180
        diff = min(abs(angle - 20 * label), 180 - abs(angle - 20 * label))
        assert diff < 12, (label, angle)


def test_multi_line_and_shapes_multi_hot() -> None:
    m = MultiLineDataset(size=50, max_lines=3, seed=0)
    assert m.targets.shape == (50, 9) and set(m.targets.unique().tolist()) <= {0.0, 1.0}
    assert (m.targets.sum(1) >= 1).all() and (m.targets.sum(1) <= 3).all()
    s = ShapesDataset(size=50, image_size=64, seed=0)
    assert s.classes == ["circle", "triangle", "square", "pentagon", "hexagon"]
    assert s.images.shape == (50, 1, 64, 64) and s.images.dtype == torch.uint8
    assert (s.targets.sum(1) >= 1).all()
    # with no noise, more shapes means more bright pixels on average
    s0 = ShapesDataset(size=60, noise=0, seed=0)
    bright = (s0.images[:, 0] > 150).flatten(1).sum(1).float()
    k = s0.targets.sum(1)
    assert bright[k == 3].mean() > bright[k == 1].mean()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000))
def test_permutation_keeps_pixels_and_is_a_bijection(seed: int) -> None:
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(2, 1, 5, 7)
    p = permute_rows_and_columns(x, seed)
    assert p.shape == x.shape
    assert torch.equal(p.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    # rows stay rows: each permuted row holds the values of one original row
    assert set(map(tuple, p[0, 0].sort(1).values.tolist())) == set(map(tuple, x[0, 0].tolist()))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000))
def test_pixel_shuffle_keeps_each_histogram_with_a_new_order_per_image(seed: int) -> None:
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    x = torch.cat([x, x[:1]])  # images 0 and 2 are equal
    p = shuffle_pixels(x, seed)
    assert p.shape == x.shape
    assert torch.equal(p.flatten(2).sort(2).values, x.flatten(2).sort(2).values)
    # the channels of a pixel move together
    assert torch.equal(p[:, 1] - p[:, 0], x[:, 1] - x[:, 0])
    assert not torch.equal(p[0], p[2]), "equal images get different permutations"
    assert torch.equal(p, shuffle_pixels(x, seed))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="image_size"):
        OneLineDataset(size=4, image_size=48)
    with pytest.raises(ValueError, match="max_shapes"):
        ShapesDataset(size=4, max_shapes=6)
    with pytest.raises(ValueError, match="split"):
        LFWFacesDataset(split="test")
    with pytest.raises(ValueError, match="face_sizes"):
        FaceSceneDataset(size=1, image_size=32, face_sizes=(16, 48))
    with pytest.raises(ValueError, match="source"):
        DigitsDataset(source="emnist")
    with pytest.raises(ValueError, match="at least 2"):
        permute_rows_and_columns(torch.zeros(3))
    with pytest.raises(ValueError, match="at least 3"):
        shuffle_pixels(torch.zeros(4, 4))


def test_shipped_real_images() -> None:
    tr, va = LFWFacesDataset("train"), LFWFacesDataset("val")
    assert (len(tr), len(va)) == (160, 40) and va.targets.sum().item() == 20
    assert tr[0][0].shape == (1, 25, 25)
    d = DigitsDataset("val", source="sklearn")
    assert len(d) == 359 and d.images.shape[-2:] == (8, 8) and d.images.max() <= 1
    assert "astronaut" not in BACKGROUND_NAMES and len(BACKGROUND_NAMES) == 17


def test_face_scenes_boxes_splits_and_collate() -> None:
    tr = FaceSceneDataset("train", size=12, image_size=(96, 128), faces_per_image=(2, 3),
                          face_sizes=(16, 40), channels=1, seed=5)
    va = FaceSceneDataset("val", size=4, image_size=96, seed=5)
    assert not set(tr.face_indices) & set(va.face_indices)
    assert not set(tr.backgrounds) & set(va.backgrounds)
    assert len(tr.face_indices) == 80 and len(va.backgrounds) == 3
    img, t = tr[0]
    assert img.shape == (1, 96, 128) and t["labels"].dtype == torch.int64
    for _, t in tr:
        b = t["boxes"]
        assert 2 <= len(b) <= 3
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= 128).all() and (b[:, 3] <= 96).all()
        sides = b[:, 2] - b[:, 0]
        assert torch.equal(sides, b[:, 3] - b[:, 1]) and (sides >= 16).all() and (sides <= 40).all()
    again = FaceSceneDataset("train", size=12, image_size=(96, 128), faces_per_image=(2, 3),
                             face_sizes=(16, 40), channels=1, seed=5)
    assert torch.equal(again.images, tr.images)
    images, targets = detection_collate([va[0], va[1], va[2]])
    assert images.shape == (3, 3, 96, 96) and len(targets) == 3


def test_face_vs_background_balanced() -> None:
    d = FaceVsBackgroundDataset("val", size=20, image_size=32, channels=1)
    assert d.classes == ["no-person", "person"] and torch.bincount(d.targets).tolist() == [10, 10]
    assert d[0][0].shape == (1, 32, 32)


def test_shipped_data_needs_no_network(tmp_path) -> None:  # noqa: ANN001
    """Every shipped source loads with sockets disabled and an empty scikit-image cache (no pooch)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import rnnpool_lite

    code = (
        "import socket\n"
        "def no(*a, **k): raise OSError('network is blocked in this test')\n"
        "socket.socket.connect = no; socket.create_connection = no\n"
        "from rnnpool_lite.data import BACKGROUND_NAMES, background_photograph, DigitsDataset, lfw_faces\n"
        "from skimage import data; import os\n"
        "assert lfw_faces().shape == (100, 25, 25)\n"
        "assert all(background_photograph(n).ndim == 2 for n in BACKGROUND_NAMES)\n"
        "d = DigitsDataset('train', 'mnist5k'); assert len(d) == 4000 and d.images.shape[-1] == 28\n"
        "assert os.path.isfile(data.lbp_frontal_face_cascade_filename())\n"
        "assert os.listdir(os.environ['SKIMAGE_DATADIR']) == []\n"
    )
    src = str(Path(rnnpool_lite.__file__).resolve().parents[1])
    env = {**os.environ, "SKIMAGE_DATADIR": str(tmp_path), "PYTHONPATH": src}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
