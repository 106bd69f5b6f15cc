"""Execute chapter notebooks in place and save their outputs (what nbval then checks).

    python scripts/execute_notebooks.py notebooks/01_rnnpool_operator.ipynb [...]

Uses nbclient (a dependency of jupyter-book and nbval) with the current interpreter's kernel,
so run it with the project's virtual environment. Each notebook runs in its own folder.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, timeout: int) -> float:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    for path in args.notebooks:
        print(f"{path}: {execute(path, args.timeout):.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
