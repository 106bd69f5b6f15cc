"""Grade a folder of lab submissions with otter-grader and write one row per submission to a CSV.

    python -m labs.grade SUBMISSIONS_DIR --out grades.csv

Every ``*.ipynb`` under ``SUBMISSIONS_DIR`` (searched recursively, so one folder per student works)
is a student's copy of a handed-out lab. Its lab is read from the notebook's metadata
(``otter.assignment_name``, which ``otter assign`` writes into the student version), the lab's
autograder is built from its teacher notebook in ``labs/`` with ``otter assign`` (once per lab, in a
temporary folder, so the hidden checks are always the ones in the repository), and the submission is
executed and graded with otter's non-containerized runner (``otter run``: no Docker). The CSV has
one row per submission: its path, its lab, the points of every question, the total, the possible
total, and an error message where a notebook could not be graded. Run it from the repository root
in the environment of the ``test`` extra (it needs ``rnnpool_lite`` and ``otter-grader``).
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

LABS_DIR = Path(__file__).resolve().parent


def teacher_notebooks() -> dict[str, Path]:
    """The teacher notebooks by assignment name (the ``name`` of their ``ASSIGNMENT CONFIG`` cell)."""
    labs = {}
    for path in sorted(LABS_DIR.glob("lab*.ipynb")):
        config = next(c for c in json.loads(path.read_text())["cells"]
                      if c["cell_type"] == "raw" and "".join(c["source"]).startswith("# ASSIGNMENT CONFIG"))
        name = next(line.split(":", 1)[1].strip() for line in "".join(config["source"]).splitlines()
                    if line.startswith("name:"))
        labs[name] = path
    return labs


def assign(teacher: Path, out: Path) -> Path:
    """Run ``otter assign`` on a teacher notebook into ``out``; return the autograder zip.

    ``out/student/`` then holds the notebook to hand out and ``out/autograder/`` the solution.
    """
    subprocess.run([sys.executable, "-m", "otter", "assign", "--no-run-tests", "--no-pdfs", str(teacher), str(out)],
                   check=True, capture_output=True, text=True)
    (zip_path,) = (out / "autograder").glob("*.zip")
    return zip_path


def grade_notebook(submission: Path, autograder: Path) -> dict[str, tuple[float, float]]:
    """Execute and grade one notebook: ``{question: (score, possible)}``."""
    from otter.api import grade_submission

    results = grade_submission(str(submission), str(autograder), quiet=True)
    return {name: (float(test.score), float(test.possible)) for name, test in sorted(results.results.items())}


def lab_of(notebook: Path) -> str | None:
    """The assignment name otter stored in a handed-out notebook (``None`` for other notebooks)."""
    try:
        metadata = json.loads(notebook.read_text())["metadata"]
    except (ValueError, KeyError):
        return None
    return metadata.get("otter", {}).get("assignment_name")


def grade_folder(submissions: Path, out_csv: Path) -> list[dict[str, object]]:
    """Grade every notebook under ``submissions`` and write ``out_csv``; return its rows."""
    notebooks = sorted(p for p in submissions.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    labs = teacher_notebooks()
    rows: list[dict[str, object]] = []
    autograders: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="labs-grade-") as tmp:
        for notebook in notebooks:
            row: dict[str, object] = {"submission": str(notebook.relative_to(submissions))}
            lab = lab_of(notebook)
            row["lab"] = lab or ""
            if lab not in labs:
                row["error"] = "not a handed-out lab notebook (no otter assignment name of a lab in labs/)"
                rows.append(row)
                continue
            if lab not in autograders:
                autograders[lab] = assign(labs[lab], Path(tmp) / lab)
            try:
                scores = grade_notebook(notebook, autograders[lab])
            except Exception as err:  # a broken notebook gets a row with its error, the others are graded
                row["error"] = f"{type(err).__name__}: {err}"
                rows.append(row)
                continue
            row.update({q: score for q, (score, _) in scores.items()})
            row["total"] = sum(score for score, _ in scores.values())
            row["possible"] = sum(possible for _, possible in scores.values())
            rows.append(row)
    questions = sorted({k for row in rows for k in row} - {"submission", "lab", "total", "possible", "error"})
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["submission", "lab", *questions, "total", "possible", "error"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labs.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write (default grades.csv)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    rows = grade_folder(args.submissions, args.out)
    print(f"graded {len(rows)} notebooks -> {args.out}")


if __name__ == "__main__":
    main()
