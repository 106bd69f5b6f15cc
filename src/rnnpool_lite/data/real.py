"""Loaders for the paper's real datasets from a local copy (``root=``); nothing is downloaded.

- :class:`ImageNet10`: ImageFolder layout restricted to the paper's 10 synsets (Appendix A).
- :class:`VisualWakeWords`: COCO images + instances json, relabelled person / no-person with the
  VWW rule: "person" if any person box covers more than 0.5% of the image area.
- :class:`WiderFace`: WIDER FACE images + ``wider_face_{split}_bbx_gt.txt``; easy/medium/hard via
  the official ``wider_{subset}_val.mat`` files of the evaluation kit (read with scipy).
- :class:`ScutHead`: SCUT-HEAD part B, PASCAL VOC layout (xml per image, ImageSets/Main lists).

Images are decoded with Pillow into (3, H, W) float tensors in [0, 1]. A wrong layout raises
``FileNotFoundError`` naming the layout that was expected. Detection items are ``(image, target)``
with target ``{"boxes": float32 (n, 4) x1, y1, x2, y2 pixels, "labels": int64 (n,)}`` like
:class:`rnnpool_lite.data.FaceSceneDataset`; batch them with ``detection_collate``.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMAGENET10_SYNSETS: tuple[tuple[str, str], ...] = (
    ("n02690373", "airliner"), ("n04285008", "sports car"), ("n01560419", "bulbul"),
    ("n02124075", "Egyptian cat"), ("n02430045", "deer"), ("n02099601", "golden retriever"),
    ("n01641577", "bullfrog"), ("n03538406", "horse cart"), ("n03673027", "ocean liner"),
    ("n04467665", "trailer truck"),
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VWW_AREA_FRACTION = 0.005


def load_image(path: str | Path) -> torch.Tensor:
    """Decode an image file with Pillow to a (3, H, W) float32 tensor in [0, 1]."""
    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def _require(path: Path, layout: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist. Expected layout:\n{layout}")
    return path


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


class ImageNet10(Dataset):
    """ImageNet-10 (paper Appendix A): the 10 CIFAR-10-like ImageNet classes, 1300 train / 50 val
    images per class in the paper. ``classes`` are the synset ids, ``class_names`` the words.
    The folder walk is written here (no torchvision); other synset folders under root are ignored.
    """

    LAYOUT = ("root/\n  train/<synset>/*.JPEG   (e.g. train/n02690373/n02690373_1.JPEG)\n"
              "  val/<synset>/*.JPEG\nwith the 10 synsets " + ", ".join(s for s, _ in IMAGENET10_SYNSETS))
    classes = [s for s, _ in IMAGENET10_SYNSETS]
    class_names = [n for _, n in IMAGENET10_SYNSETS]

    def __init__(self, root: str | Path, split: str = "train",
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        _check_split(split, ("train", "val"))
        base = _require(Path(root) / split, self.LAYOUT)
        self.samples: list[tuple[Path, int]] = []
        for label, synset in enumerate(self.classes):
            folder = _require(base / synset, self.LAYOUT)
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"no images in {folder}. Expected layout:\n{self.LAYOUT}")
            self.samples += [(p, label) for p in files]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = load_image(path)
        return (self.transform(image) if self.transform else image), label


class VisualWakeWords(Dataset):
    """Visual Wake Words from COCO: class 1 ("person") when any person annotation's box
    (w * h of its COCO ``bbox``) exceeds 0.5% of the image area, else 0 ("no-person").

    Reads the COCO instances json with the standard ``json`` module (only images, categories and
    annotations are needed). Crowd annotations count like the others, as in the VWW builder.
    The paper's split is 115K train / 8K val (COCO train2017+most of val / rest); here a split is
    whatever image folder + json pair is given.
    """

    LAYOUT = ("root/\n  annotations/instances_{split}.json   (COCO instances format)\n"
              "  {split}/*.jpg                          (e.g. train2017/000000000009.jpg)")
    classes = ["no-person", "person"]

    def __init__(self, root: str | Path, split: str = "train2017",
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 area_fraction: float = VWW_AREA_FRACTION) -> None:
        root = Path(root)
        ann_file = _require(root / "annotations" / f"instances_{split}.json", self.LAYOUT)
        self.image_dir = _require(root / split, self.LAYOUT)
        coco = json.loads(ann_file.read_text())
        try:
            person = [c["id"] for c in coco["categories"] if c["name"] == "person"]
            images = {im["id"]: im for im in coco["images"]}
            annotations = coco["annotations"]
        except KeyError as err:
            raise ValueError(f"{ann_file} is not a COCO instances file (missing {err})") from err
        if not person:
            raise ValueError(f"{ann_file} has no 'person' category")
        positive: set[int] = set()
        for ann in annotations:
            im = images[ann["image_id"]]
            _, _, w, h = ann["bbox"]
            if ann["category_id"] in person and w * h > area_fraction * im["width"] * im["height"]:
                positive.add(ann["image_id"])
        self.samples = [(im["file_name"], int(i in positive)) for i, im in sorted(images.items())]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        name, label = self.samples[index]
        image = load_image(self.image_dir / name)
        return (self.transform(image) if self.transform else image), label


def parse_wider_annotations(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Parse ``wider_face_{split}_bbx_gt.txt``: per image a file name, a box count, then one line per
    box ``x y w h blur expression illumination invalid occlusion pose`` (a count of 0 is followed
    by one all-zero line). Returns (relative file name, (n, 10) int array) pairs."""
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    out, i = [], 0
    while i < len(lines):
        name = lines[i]
        try:
            count = int(lines[i + 1])
        except (IndexError, ValueError) as err:
            raise ValueError(f"{path}: expected a box count after {name!r} (line {i + 2})") from err
        rows = lines[i + 2:i + 2 + max(count, 1)]
        values = np.array([[int(v) for v in r.split()[:10]] for r in rows], dtype=np.int64).reshape(-1, 10)
        out.append((name, values[:count]))
        i += 2 + max(count, 1)
    return out


def _read_wider_subset(mat_path: Path) -> dict[str, np.ndarray]:
    """Map 'event/file' (no extension) -> 0-based indices of the boxes kept by that difficulty."""
    from scipy.io import loadmat

    mat = loadmat(str(mat_path))
    keep: dict[str, np.ndarray] = {}
    for e in range(mat["event_list"].shape[0]):
        event = str(np.ravel(mat["event_list"][e, 0])[0])
        files, gts = mat["file_list"][e, 0], mat["gt_list"][e, 0]
        for f in range(files.shape[0]):
            name = str(np.ravel(files[f, 0])[0])
            keep[f"{event}/{name}"] = np.ravel(gts[f, 0]).astype(np.int64) - 1
    return keep


class WiderFace(Dataset):
    """WIDER FACE (32,203 images, 393,703 faces). Boxes marked ``invalid`` are dropped.

    ``subset`` ("easy" | "medium" | "hard", validation only) keeps the boxes listed in the
    evaluation kit's ``wider_{subset}_val.mat`` ``gt_list`` and returns the others in
    ``target["ignore"]`` (as the official evaluation ignores them). Extra per-box attributes
    (blur, occlusion, ...) are in ``target["attributes"]``. ``classes`` = ["background", "face"].
    """

    LAYOUT = ("root/\n  WIDER_{split}/images/<event>/<file>.jpg\n"
              "  wider_face_split/wider_face_{split}_bbx_gt.txt\n"
              "  eval_tools/ground_truth/wider_{easy,medium,hard}_val.mat   (only for subset=)")
    classes = ["background", "face"]

    def __init__(self, root: str | Path, split: str = "train", subset: str | None = None,
                 transform: Callable | None = None) -> None:
        _check_split(split, ("train", "val"))
        if subset not in (None, "easy", "medium", "hard"):
            raise ValueError(f"subset must be None, 'easy', 'medium' or 'hard', got {subset!r}")
        if subset is not None and split != "val":
            raise ValueError("easy/medium/hard subsets are defined for split='val' only")
        root = Path(root)
        self.image_dir = _require(root / f"WIDER_{split}" / "images", self.LAYOUT)
        ann = _require(root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt", self.LAYOUT)
        self.records = parse_wider_annotations(ann)
        self.keep = None
        if subset is not None:
            self.keep = _read_wider_subset(_require(
                root / "eval_tools" / "ground_truth" / f"wider_{subset}_val.mat", self.LAYOUT))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):  # noqa: ANN204
        name, values = self.records[index]
        image = load_image(self.image_dir / name)
        xyxy = values[:, :4].astype(np.float32).copy()
        xyxy[:, 2:] += xyxy[:, :2]
        valid = values[:, 7] == 0
        ignore = np.zeros(len(values), dtype=bool)
        if self.keep is not None:
            kept = np.zeros(len(values), dtype=bool)
            kept[self.keep.get(name.rsplit(".", 1)[0], np.array([], dtype=np.int64))] = True
            ignore = ~kept
        use = valid & ~ignore
        target = {"boxes": torch.from_numpy(xyxy[use]).reshape(-1, 4),
                  "labels": torch.ones(int(use.sum()), dtype=torch.int64),
                  "ignore": torch.from_numpy(xyxy[valid & ignore]).reshape(-1, 4),
                  "attributes": torch.from_numpy(values[use, 4:])}
        sample = (image, target)
        return self.transform(sample) if self.transform else sample


class ScutHead(Dataset):
    """SCUT-HEAD (part B: 2405 images, 43,940 heads; 1905 train / 500 test), PASCAL VOC layout.

    ``classes`` = ["background", "head"]; every ``<object>`` box is a head (labels 1).
    """

    LAYOUT = ("root/   (e.g. SCUT_HEAD_Part_B)\n  JPEGImages/<id>.jpg\n  Annotations/<id>.xml"
              "   (VOC: object/bndbox/xmin,ymin,xmax,ymax)\n  ImageSets/Main/{split}.txt   (one id a line)")
    classes = ["background", "head"]

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None) -> None:
        _check_split(split, ("train", "test", "val", "trainval"))
        self.root = Path(root)
        ids = _require(self.root / "ImageSets" / "Main" / f"{split}.txt", self.LAYOUT)
        _require(self.root / "JPEGImages", self.LAYOUT)
        _require(self.root / "Annotations", self.LAYOUT)
        self.ids = [line.strip() for line in ids.read_text().splitlines() if line.strip()]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def read_boxes(self, image_id: str) -> torch.Tensor:
        """The (n, 4) x1, y1, x2, y2 boxes of one VOC xml file."""
        xml = _require(self.root / "Annotations" / f"{image_id}.xml", self.LAYOUT)
        boxes = []
        for obj in ET.parse(xml).getroot().iter("object"):
            bb = obj.find("bndbox")
            if bb is None:
                raise ValueError(f"{xml}: <object> without <bndbox>")
            corners = [bb.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
            if any(c is None for c in corners):
                raise ValueError(f"{xml}: <bndbox> without one of xmin, ymin, xmax, ymax")
            boxes.append([float(c) for c in corners if c is not None])
        return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)

    def __getitem__(self, index: int):  # noqa: ANN204
        image_id = self.ids[index]
        image = load_image(_require(self.root / "JPEGImages" / f"{image_id}.jpg", self.LAYOUT))
        boxes = self.read_boxes(image_id)
        sample = (image, {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)})
        return self.transform(sample) if self.transform else sample
