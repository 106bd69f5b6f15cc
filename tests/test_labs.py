"""The labs' autograding is live, and every lab carries its course scaffolding.

For each lab in labs/, ``otter assign`` generates the handed-out (student) notebook and the
autograder from the teacher notebook, and the grader (``otter run``'s runner, no Docker) must give:

* the solution (otter's autograder notebook) full marks on every question;
* the student notebook, run as handed out, zero on every question (each needs student code);
* the teacher notebook with one answer replaced by the deliberately wrong one in tests/labs_wrong/,
  less than full marks on that question (and on the questions its file names as also catching it),
  full marks on all the others.

Generated files live in pytest's temporary folders only.
"""
from __future__ import annotations

import ast
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python -m labs.grade` runs from the root; so do these imports
    sys.path.insert(0, str(ROOT))

from labs import grade  # noqa: E402

LABS = sorted((ROOT / "labs").glob("lab*.ipynb"))
WRONG = ROOT / "tests" / "labs_wrong"


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _wrong_answer(lab: Path) -> tuple[str, str, str, set[str]]:
    """The wrong answer for a lab: its code, the solution line it replaces, its question, also-catching questions."""
    path = WRONG / f"{lab.stem.split('_')[0]}_wrong.py"
    code = path.read_text()
    consts = {t.id: ast.literal_eval(node.value) for node in ast.parse(code).body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}
    return code, consts["REPLACES"], consts["QUESTION"], set(consts.get("ALSO_CAUGHT_BY", ()))


def _solution_lines(lab: Path) -> list[str]:
    """The code lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (and ``# SOLUTION`` lines)."""
    lines, inside = [], False
    for cell in _cells(lab):
        if cell["cell_type"] != "code":
            continue
        for line in _source(cell).splitlines():
            marker = line.strip()
            if marker in ("# BEGIN SOLUTION", "# END SOLUTION"):
                inside = marker == "# BEGIN SOLUTION"
            elif marker.endswith("# SOLUTION"):
                lines.append(marker.removesuffix("# SOLUTION").strip())
            elif inside and len(marker) > 12:
                lines.append(marker)
    return lines


@pytest.fixture(scope="module")
def assigned(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """``otter assign`` for every lab: ``{lab stem: (output folder, autograder zip)}``."""
    out = {}
    for lab in LABS:
        folder = tmp_path_factory.mktemp(lab.stem)
        out[lab.stem] = (folder, grade.assign(lab, folder / "dist"))
    return out


def test_there_are_four_labs_and_each_has_a_wrong_answer() -> None:
    assert len(LABS) >= 4
    for lab in LABS:
        assert (WRONG / f"{lab.stem.split('_')[0]}_wrong.py").is_file(), lab.name


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=[p.stem for p in LABS])
def test_solution_full_student_zero_wrong_answer_loses_its_marks(lab: Path, assigned, tmp_path: Path) -> None:
    folder, autograder = assigned[lab.stem]
    dist = folder / "dist"

    solution = grade.grade_notebook(dist / "autograder" / lab.name, autograder)
    assert solution and all(score == possible > 0 for score, possible in solution.values()), solution

    student_nb = dist / "student" / lab.name
    handed_out = {line.strip() for c in _cells(student_nb) if c["cell_type"] == "code"
                  for line in _source(c).splitlines()}
    leaked = [line for line in _solution_lines(lab) if line in handed_out]
    assert not leaked, f"solution lines in the handed-out notebook: {leaked}"
    student = grade.grade_notebook(student_nb, autograder)
    assert student.keys() == solution.keys()
    assert all(score == 0 for score, _ in student.values()), student

    code, replaces, question, also = _wrong_answer(lab)
    nb = json.loads((dist / "autograder" / lab.name).read_text())
    targets = [c for c in nb["cells"] if c["cell_type"] == "code" and replaces in _source(c)]
    assert len(targets) == 1, f"{replaces!r} must be in exactly one cell of {lab.name}"
    targets[0]["source"] = code
    wrong_nb = tmp_path / lab.name
    wrong_nb.write_text(json.dumps(nb))
    wrong = grade.grade_notebook(wrong_nb, autograder)
    lost = {q for q, (score, possible) in wrong.items() if score < possible}
    assert lost == {question} | also, wrong


@pytest.mark.slow
def test_grade_command_writes_a_csv(assigned, tmp_path: Path) -> None:
    """``python -m labs.grade DIR --out CSV`` on a class folder: one row per notebook."""
    lab = next(p for p in LABS if p.stem.startswith("lab3"))
    dist = assigned[lab.stem][0] / "dist"
    submissions = tmp_path / "submissions"
    for student, version in (("ada", "autograder"), ("bob", "student")):
        (submissions / student).mkdir(parents=True)
        shutil.copy(dist / version / lab.name, submissions / student / lab.name)
    (submissions / "notes.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                                         "nbformat_minor": 5}))
    out = tmp_path / "grades.csv"
    subprocess.run([sys.executable, "-m", "labs.grade", str(submissions), "--out", str(out)], cwd=ROOT,
                   check=True, capture_output=True, text=True)
    rows = {r["submission"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {f"ada/{lab.name}", f"bob/{lab.name}", "notes.ipynb"}
    ada, bob = rows[f"ada/{lab.name}"], rows[f"bob/{lab.name}"]
    assert ada["lab"] == bob["lab"] == "lab3_int8_requantization"
    assert float(ada["total"]) == float(ada["possible"]) > 0 and not ada["error"]
    assert float(bob["total"]) == 0 and float(bob["possible"]) == float(ada["possible"])
    assert rows["notes.ipynb"]["error"] and not rows["notes.ipynb"]["total"]


def test_labs_are_a_part_of_the_book() -> None:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    part = next(p for p in toc["parts"] if p["caption"] == "Labs")
    assert [c["file"] for c in part["chapters"]] == [f"labs/{p.stem}" for p in LABS]
