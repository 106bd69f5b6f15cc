"""The first cell of every chapter and lab: install rnnpool_lite where it is missing (Colab).

A chapter opened from the book's Colab button runs in a bare kernel: without this cell it stops at
``import rnnpool_lite``. The cell installs the package from the book's repository at the branch
the book is built from (``_config.yml``'s ``repository``), as d2l.ai's chapters ``pip install d2l``,
and fetches the Debian data sets a notebook needs where ``apt-get`` is there (Colab runs Ubuntu);
elsewhere it says how to get them. Where the package is installed (a clone, Binder, the book build,
a grader) it does nothing. The book hides it (``remove-cell``).

    python scripts/install_cell.py --check   # every chapter and lab starts with the current cell
    python scripts/install_cell.py --write   # (re)write that cell in every chapter and lab

This file is the one home of the cell's text; ``tests/test_course_kit.py`` runs the cell.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: Debian packages of data sets, and the folder each installs.
DEBIAN_DATASETS: dict[str, str] = {
    "dataset-fashion-mnist": "/usr/share/datasets/fashion-mnist",
}

#: Notebooks that need a Debian data set (the others need none).
NOTEBOOK_DATASETS: dict[str, tuple[str, ...]] = {
    "notebooks/03_training_probes.ipynb": ("dataset-fashion-mnist",),
    "notebooks/05_visual_wake_words.ipynb": ("dataset-fashion-mnist",),  # FashionWakeWords
    "notebooks/06_int8_cortex_m4.ipynb": ("dataset-fashion-mnist",),
}

TAGS = ["remove-cell"]


def notebooks() -> list[Path]:
    """Every chapter (``notebooks/NN_*.ipynb``) and lab (``labs/lab*.ipynb``)."""
    return sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb")) + sorted(ROOT.glob("labs/lab*.ipynb"))


def repository() -> tuple[str, str]:
    """The book's repository address and branch, from ``_config.yml``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return config["url"], config["branch"]


def render(datasets: Sequence[str] = ()) -> str:
    """The cell's code, for a notebook that needs ``datasets`` (Debian package names)."""
    unknown = sorted(set(datasets) - set(DEBIAN_DATASETS))
    if unknown:
        raise ValueError(f"unknown Debian data sets {unknown}; known: {sorted(DEBIAN_DATASETS)}")
    url, branch = repository()
    lines = [
        "# Where rnnpool_lite is missing (Colab, a fresh kernel), install it from",
        "# the book's repository at the branch the book and its launch buttons are",
        "# built from. Where it is installed (a clone, Binder, the book build, a",
        "# grader), nothing happens.",
        "import importlib.util",
        "import subprocess",
        "import sys",
        "",
        f'REPOSITORY, BRANCH = "{url}", "{branch}"',
        'if importlib.util.find_spec("rnnpool_lite") is None:',
        "    subprocess.run(",
        "        [",
        "            sys.executable,",
        '            "-m",',
        '            "pip",',
        '            "install",',
        '            "--quiet",',
        '            f"git+{REPOSITORY}@{BRANCH}",',
        "        ],",
        "        check=True,",
        "    )",
    ]
    if datasets:
        lines += [
            "",
            "# The Debian data sets this notebook reads: apt-get installs them where",
            "# it can (Colab runs Ubuntu); elsewhere, this says how to get them.",
            "import os",
            "import shutil",
            "",
            "DATASETS = {",
            *(f'    "{name}": "{DEBIAN_DATASETS[name]}",' for name in datasets),
            "}",
            "missing = [p for p, d in DATASETS.items() if not os.path.isdir(d)]",
            'if missing and shutil.which("apt-get") and os.geteuid() == 0:',
            '    subprocess.run(["apt-get", "install", "-y", "-q", *missing],',
            "                   check=True)",
            "elif missing:",
            '    print("This notebook reads the Debian package(s)",',
            '          ", ".join(missing) + ": install them with apt-get, or",',
            '          "pass the folder that holds the same files as `root`.")',
        ]
    return "\n".join(lines)


def cell_for(path: Path) -> dict:
    """The install cell of one notebook, as nbformat JSON."""
    key = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    source = render(NOTEBOOK_DATASETS.get(key, ()))
    return {"cell_type": "code", "execution_count": None, "id": "install-rnnpool-lite",
            "metadata": {"tags": TAGS}, "outputs": [], "source": source.splitlines(keepends=True)}


def is_install_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and "importlib.util.find_spec(\"rnnpool_lite\")" in "".join(cell["source"])


def write(path: Path) -> bool:
    """Put the current install cell first in ``path``; True when the file changed."""
    if not stale(path):
        return False
    text = path.read_text()
    notebook = json.loads(text)
    cells = [c for c in notebook["cells"] if not is_install_cell(c)]
    notebook["cells"] = [cell_for(path), *cells]
    new = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
        return True
    return False


def stale(path: Path) -> bool:
    """Whether ``path`` does not start with the current install cell."""
    first = json.loads(path.read_text())["cells"][0]
    expected = cell_for(path)
    return not (is_install_cell(first) and "".join(first["source"]) == "".join(expected["source"])
                and first["metadata"].get("tags") == TAGS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail if a notebook lacks the current cell")
    mode.add_argument("--write", action="store_true", help="write the current cell into every notebook")
    args = parser.parse_args(argv)
    if args.write:
        for path in notebooks():
            if write(path):
                print(f"updated {path.relative_to(ROOT)}")
        return 0
    bad = [str(p.relative_to(ROOT)) for p in notebooks() if stale(p)]
    for name in bad:
        print(f"{name}: does not start with the current install cell (run --write)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
