"""Chapters 1, 2, 6 and the summary page stop in their first cells on a bad parameter.

A reader who reruns a chapter with papermill and a wrong value must get one message that names the
parameter, from the cell right after ``parameters``, not a traceback from deep inside the chapter.
"""
from __future__ import annotations

from pathlib import Path

import papermill as pm
import pytest

from support import check_cell_index

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.usefixtures("kernel_sees_this_package")

CASES = [
    ("01_rnnpool_operator", {"image_size": 0}, "parameter image_size=0"),
    ("01_rnnpool_operator", {"image_name": "nosuchimage"}, "parameter image_name='nosuchimage'"),
    ("02_memory_and_compute", {"model": "mobilenetv9"}, "parameter model='mobilenetv9'"),
    ("06_int8_cortex_m4", {"resolution": [0, 640]}, "parameter resolution=[0, 640]"),
    ("06_int8_cortex_m4", {"seeds": [0]}, "parameter seeds=[0]"),
    ("06_int8_cortex_m4", {"distractors": ["Bag"]}, "parameter distractors=['Bag']"),
    ("99_summary", {"results_dir": ""}, "parameter results_dir=''"),
    ("99_summary", {"build_started": "yesterday"}, "parameter build_started='yesterday'"),
    ("99_summary", {"max_build_hours": 0}, "parameter max_build_hours=0"),
]




@pytest.mark.parametrize("chapter, parameters, message", CASES, ids=[f"{c}-{next(iter(p))}" for c, p, _ in CASES])
def test_bad_parameter_stops_the_chapter_at_once(tmp_path: Path, chapter: str, parameters: dict, message: str) -> None:
    with pytest.raises(pm.PapermillExecutionError) as error:
        pm.execute_notebook(str(NOTEBOOKS / f"{chapter}.ipynb"), str(tmp_path / "out.ipynb"),
                            cwd=str(NOTEBOOKS), progress_bar=False,
                            parameters={**parameters, "results_dir": str(tmp_path)} if "results_dir" not in parameters
                            else parameters)
    assert error.value.ename == "ParameterError", error.value.evalue
    assert error.value.evalue.startswith(message), error.value.evalue
    check = check_cell_index(NOTEBOOKS / f"{chapter}.ipynb")
    assert error.value.cell_index <= check, f"stopped only in cell {error.value.cell_index}, not {check}"
