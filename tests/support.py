"""Helpers shared by several test files (imported as ``support``; pytest puts tests/ on the path)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def vww_tree(root: Path) -> None:
    """8 random jpgs per split, odd ones with a person box of 20% of the image (above the 0.5% rule)."""
    rng = np.random.default_rng(0)
    (root / "annotations").mkdir(parents=True)
    for split in ("mini_train", "mini_val"):
        (root / split).mkdir()
        images, annotations = [], []
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / split / f"{i}.jpg")
            images.append({"id": i, "file_name": f"{i}.jpg", "width": 48, "height": 40})
            if i % 2:
                annotations.append({"id": 100 + i, "image_id": i, "category_id": 1, "bbox": [0, 0, 20, 19]})
        coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def check_cell_index(notebook: Path) -> int:
    """Index, in the notebook papermill executes, of the cell that checks the parameters: the cell
    tagged ``parameters``, papermill's injected parameters, then the check."""
    cells = json.loads(notebook.read_text())["cells"]
    return next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", [])) + 2
