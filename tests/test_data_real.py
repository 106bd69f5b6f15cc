"""Real-dataset loaders on tiny fixtures in the real formats (written here), and the transforms."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rnnpool_lite.data.real import (
    IMAGENET10_SYNSETS,
    ImageNet10,
    ScutHead,
    VisualWakeWords,
    WiderFace,
    parse_wider_annotations,
)
from rnnpool_lite.data.transforms import (
    DetectionHorizontalFlip,
    DetectionResize,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ResizeCenterCrop,
    Transformed,
    imagenet_train_transform,
)


def _jpg(path: Path, h: int = 20, w: int = 30, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8)).save(path)


def test_imagenet10_folder_walk(tmp_path: Path) -> None:
    for k, (synset, _) in enumerate(IMAGENET10_SYNSETS):
        for j in range(2 if k == 0 else 1):
            _jpg(tmp_path / "val" / synset / f"{synset}_{j}.JPEG", value=10 * k)
    _jpg(tmp_path / "val" / "n99999999" / "x.JPEG")  # other synsets are ignored
    d = ImageNet10(tmp_path, "val")
    assert len(d) == 11 and d.class_names[0] == "airliner"
    image, label = d[2]
    assert image.shape == (3, 20, 30) and label == 1 and abs(image.mean().item() - 10 / 255) < 0.01
    with pytest.raises(FileNotFoundError, match="train/<synset>"):
        ImageNet10(tmp_path, "train")


def test_visual_wake_words_rule(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 100, "height": 100} for i in (1, 2, 3)]
    for im in images:
        _jpg(tmp_path / "val2017" / im["file_name"], 100, 100)
    anns = [  # 100x100 image: threshold is 50 px^2
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 6], "area": 40},   # 60 > 50
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 7, 7], "area": 49},    # 49: small
        {"id": 3, "image_id": 3, "category_id": 18, "bbox": [0, 0, 90, 90], "area": 8100},  # a dog
    ]
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(coco))
    d = VisualWakeWords(tmp_path, "val2017")
    assert [label for _, label in d.samples] == [1, 0, 0]
    assert d[0][0].shape == (3, 100, 100) and d.classes == ["no-person", "person"]
    with pytest.raises(FileNotFoundError, match="instances_"):
        VisualWakeWords(tmp_path, "train2017")


WIDER_TXT = """0--Parade/0_Parade_a.jpg
2
10 20 30 40 0 0 0 0 0 0
5 5 8 9 2 0 0 0 1 0
0--Parade/0_Parade_b.jpg
0
0 0 0 0 0 0 0 0 0 0
1--Handshaking/1_Hand_c.jpg
3
1 2 3 4 0 0 0 0 0 0
50 50 10 10 0 0 0 1 0 0
60 10 20 20 0 0 0 0 0 0
"""


def test_wider_face_txt_and_subsets(tmp_path: Path) -> None:
    from scipy.io import savemat

    (tmp_path / "wider_face_split").mkdir()
    (tmp_path / "wider_face_split" / "wider_face_val_bbx_gt.txt").write_text(WIDER_TXT)
    for name, _ in parse_wider_annotations(tmp_path / "wider_face_split" / "wider_face_val_bbx_gt.txt"):
        _jpg(tmp_path / "WIDER_val" / "images" / name, 100, 120)
    records = parse_wider_annotations(tmp_path / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    assert [len(v) for _, v in records] == [2, 0, 3]

    d = WiderFace(tmp_path, "val")
    image, t = d[0]
    assert image.shape == (3, 100, 120)
    assert t["boxes"].tolist() == [[10, 20, 40, 60], [5, 5, 13, 14]]
    assert d[1][1]["boxes"].shape == (0, 4)
    assert d[2][1]["boxes"].tolist() == [[1, 2, 4, 6], [60, 10, 80, 30]]  # invalid box dropped

    # the evaluation kit's .mat: cells event_list, file_list, gt_list (1-based box indices)
    def cell(items: list) -> np.ndarray:
        out = np.empty((len(items), 1), dtype=object)
        for i, item in enumerate(items):
            out[i, 0] = item
        return out
    gt = tmp_path / "eval_tools" / "ground_truth"
    gt.mkdir(parents=True)
    savemat(gt / "wider_hard_val.mat", {
        "event_list": cell(["0--Parade", "1--Handshaking"]),
        "file_list": cell([cell(["0_Parade_a", "0_Parade_b"]), cell(["1_Hand_c"])]),
        "gt_list": cell([cell([np.array([[2]]), np.zeros((0, 1))]), cell([np.array([[3], [1]])])]),
    })
    hard = WiderFace(tmp_path, "val", subset="hard")
    t0 = hard[0][1]
    assert t0["boxes"].tolist() == [[5, 5, 13, 14]] and t0["ignore"].tolist() == [[10, 20, 40, 60]]
    assert hard[2][1]["boxes"].tolist() == [[1, 2, 4, 6], [60, 10, 80, 30]]
    with pytest.raises(FileNotFoundError, match="wider_\\{easy,medium,hard\\}_val.mat"):
        WiderFace(tmp_path, "val", subset="easy")
    with pytest.raises(FileNotFoundError, match="WIDER_\\{split\\}"):
        WiderFace(tmp_path, "train")


VOC_XML = """<annotation><folder>SCUT_HEAD_Part_B</folder><filename>PartB_00001.jpg</filename>
<size><width>64</width><height>48</height><depth>3</depth></size>
<object><name>person</name><difficult>0</difficult>
<bndbox><xmin>3</xmin><ymin>4</ymin><xmax>20</xmax><ymax>22</ymax></bndbox></object>
<object><name>person</name><bndbox><xmin>30</xmin><ymin>5</ymin><xmax>41</xmax><ymax>17</ymax></bndbox></object>
</annotation>"""


def test_scut_head_voc(tmp_path: Path) -> None:
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "Annotations" / "PartB_00001.xml").write_text(VOC_XML)
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("PartB_00001\n")
    _jpg(tmp_path / "JPEGImages" / "PartB_00001.jpg", 48, 64)
    d = ScutHead(tmp_path, "test")
    image, t = d[0]
    assert len(d) == 1 and image.shape == (3, 48, 64)
    assert t["boxes"].tolist() == [[3, 4, 20, 22], [30, 5, 41, 17]] and t["labels"].tolist() == [1, 1]
    with pytest.raises(FileNotFoundError, match="ImageSets/Main"):
        ScutHead(tmp_path, "train")


@settings(max_examples=15, deadline=None)
@given(st.integers(8, 60), st.integers(8, 60), st.integers(0, 10_000))
def test_random_resized_crop_shapes_and_ranges(h: int, w: int, seed: int) -> None:
    crop = RandomResizedCrop(16, scale=(0.2, 1.0), generator=torch.Generator().manual_seed(seed))
    top, left, ch, cw = crop.params(h, w)
    assert top >= 0 and top + ch <= h and left >= 0 and left + cw <= w
    assert crop(torch.rand(3, h, w)).shape == (3, 16, 16)


def test_transforms_numbers() -> None:
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    assert torch.equal(RandomHorizontalFlip(1.0)(x), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(x), x)
    n = Normalize((1.0, 2.0), (2.0, 4.0))(x)
    assert n[1, 0, 0].item() == (24 - 2) / 4
    v = ResizeCenterCrop(8, 6)(torch.rand(3, 16, 32))   # shorter side 16 -> 8, then 6x6 centre
    assert v.shape == (3, 6, 6) and ResizeCenterCrop.for_crop(224).resize == 256
    flat = torch.full((3, 40, 50), 0.5)
    assert torch.allclose(imagenet_train_transform(32)(flat)[:, 0, 0],
                          (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]))
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(8, scale=(0.5, 0.2))
    with pytest.raises(TypeError, match="C, H, W"):
        RandomHorizontalFlip()(torch.zeros(4, 4))


def test_box_aware_flip_and_resize() -> None:
    image = torch.zeros(1, 10, 20)
    image[:, 2:5, 3:8] = 1.0
    target = {"boxes": torch.tensor([[3.0, 2.0, 8.0, 5.0]]), "labels": torch.tensor([1])}
    fimg, ft = DetectionHorizontalFlip(1.0)((image, target))
    assert ft["boxes"].tolist() == [[12.0, 2.0, 17.0, 5.0]]
    assert fimg[0, 2:5, 12:17].min() == 1.0 and fimg.sum() == image.sum()
    rimg, rt = DetectionResize((20, 40))((image, target))
    assert rimg.shape == (1, 20, 40) and rt["boxes"].tolist() == [[6.0, 4.0, 16.0, 10.0]]
    wrapped = Transformed([(image, target)], DetectionHorizontalFlip(1.0), pairs=True)
    assert wrapped[0][1]["boxes"].tolist() == [[12.0, 2.0, 17.0, 5.0]]
