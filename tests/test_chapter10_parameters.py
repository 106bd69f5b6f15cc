"""Chapter 10 and its run notebook: bad parameters stop in the first cells naming the parameter;
the run notebook trains on the real VWW layout (``vww_root``), a path nbval's default run never takes,
and records what an evidence run needs (the last epoch's accuracy, the curves, the first step losses)."""
from __future__ import annotations

from pathlib import Path

import papermill as pm
import pytest
from papermill.exceptions import PapermillExecutionError

from rnnpool_lite.repro.sweep import read_records
from support import check_cell_index, vww_tree

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.usefixtures("kernel_sees_this_package")
CHAPTER = NOTEBOOKS / "10_ram_accuracy_tradeoffs.ipynb"


@pytest.mark.parametrize("parameters, message", [
    ({"resolutions": [32, 0]}, "parameter resolutions=0: expected an integer >= 16"),
    ({"resolutions": "32"}, "parameter resolutions='32': expected a non-empty list"),
    ({"seeds": [0, 1]}, "parameter seeds=[0, 1]: expected a list of at least 3"),
    ({"vww_root": "/no/such/folder"}, "parameter vww_root='/no/such/folder': expected a folder that exists"),
    ({"dataset": "cifar"}, "parameter dataset='cifar': expected one of 'fashion', 'faces'"),
    ({"evidence_dir": 3}, "parameter evidence_dir=3: expected a folder path"),
])
def test_bad_parameter_stops_with_its_name(tmp_path: Path, parameters: dict, message: str) -> None:
    with pytest.raises(PapermillExecutionError) as error:
        pm.execute_notebook(str(CHAPTER), str(tmp_path / "10.ipynb"), cwd=str(NOTEBOOKS), progress_bar=False,
                            parameters=parameters)
    assert error.value.ename == "ParameterError" and message in error.value.evalue
    check = check_cell_index(CHAPTER)  # nothing ran after the check
    assert error.value.cell_index <= check, f"stopped only in cell {error.value.cell_index}, not {check}"


def test_run_notebook_trains_on_vww_layout(tmp_path: Path) -> None:
    vww_tree(tmp_path / "vww")
    out = tmp_path / "run.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "runs" / "vww_resolution.ipynb"), str(out), cwd=str(NOTEBOOKS / "runs"),
                        progress_bar=False, parameters=dict(
                            # lr 0.01: at 16 px the last stages are 1x1 maps that BatchNorm normalises over
                            # 2-4 values, and at lr 0.05 their backward overflows to NaN in the second step
                            # (in NCHW and channels_last alike, depending only on float rounding)
                            model="base", image_size=16, epochs=1, batch_size=4, train_images=6, val_images=4, lr=0.01,
                            vww_root=str(tmp_path / "vww"), vww_splits=["mini_train", "mini_val"]))
    records = read_records(out)
    assert 0.0 <= records["accuracy"] <= 1.0 and records["params"] > 0
    assert records["peak_ram_int8_kb"] == 1.0  # the base model at 16 px, as the chapter's cost table says


def test_run_notebook_records_what_an_evidence_run_needs(tmp_path: Path) -> None:
    out = tmp_path / "run.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "runs" / "vww_resolution.ipynb"), str(out), cwd=str(NOTEBOOKS / "runs"),
                        progress_bar=False, parameters=dict(model="rnnpool", image_size=32, epochs=2, batch_size=8,
                                                            train_images=32, val_images=16, max_steps=3))
    records = read_records(out)
    assert len(records["first_losses"]) == 3  # max_steps stopped training after 3 SGD steps
    assert len(records["val_curve"]) == len(records["train_loss_curve"]) == 1  # the cut epoch has its row
    assert records["last_accuracy"] == records["val_curve"][-1]
