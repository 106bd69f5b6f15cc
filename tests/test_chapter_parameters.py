"""Chapter parameters that nbval does not exercise (it replays the saved default run).

Chapter 5 with ``vww_root`` on a tiny Visual Wake Words tree in the real layout (COCO instances json
+ jpgs, written here) and a Table 2 downsampler; chapter 4 with a paper detector (``detector="Quant"``,
whose deepest maps are 1x1 at 128 pixels); chapter 7 with a two-row grid; chapter 9 deeper, on noise.
All at toy sizes: these tests check that the code paths run end to end and report their tables, not
the numbers. Bad parameter values must stop a chapter in its first cells, naming the parameter.

Chapter 5's evidence tier: pointed (``evidence_dir``) at a complete evidence folder, here a toy
sweep of 3 models x 2 seeds, the chapter draws its tables and verdicts from it, recorded with tier
"evidence"; with ``check_claims`` it asserts the book's rule for a task on that evidence, which a
toy run at chance breaks, naming the claim. nbval's run of the saved chapter (no evidence yet, or
the committed one) is the other half.
"""
from __future__ import annotations

import os
from pathlib import Path

import papermill as pm
import pytest
from papermill.exceptions import PapermillExecutionError

import rnnpool_lite
from rnnpool_lite.repro.results import ChapterResults
from rnnpool_lite.repro.sweep import load_grid, read_records, sweep
from support import check_cell_index, vww_tree

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.usefixtures("kernel_sees_this_package")




def _text_outputs(notebook: Path) -> str:
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                     for c in nb.cells for o in c.get("outputs", []))


def test_vww_chapter_runs_on_real_layout(tmp_path: Path) -> None:
    vww_tree(tmp_path / "vww")
    out = tmp_path / "05.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "05_visual_wake_words.ipynb"), str(out), cwd=str(NOTEBOOKS),
                        progress_bar=False, parameters=dict(
                            vww_root=str(tmp_path / "vww"), vww_splits=["mini_train", "mini_val"],
                            image_size=32, epochs=1, batch_size=4, seeds=[0], downsamplers=["strided_conv"],
                            check_claims=False, results_dir=str(tmp_path / "results")))
    text = _text_outputs(out)
    assert "8 training and 8 validation images" in text
    assert "our accuracy (%) VWW 32px" in text
    assert "Strided Convolution" in text and "RNNPool - Strided Convolution accuracy (points)" in text
    assert "check_claims=False: numbers reported, claims not checked" in text
    assert (tmp_path / "results" / "05_visual_wake_words.json").is_file()


#: chapter 5's own quick run at toy sizes (seconds of training), beside a toy evidence folder
TOY_VWW = dict(image_size=32, train_images=16, val_images=16, epochs=1, batch_size=8, seeds=[0],
               downsamplers=[])
#: a complete toy evidence grid: one run per seed and model, and, as the committed grid has it, a
#: second item that gives two of the models one more seed
TOY_SCALE = """\
  dataset: [fashion]
  image_size: [32]
  train_images: [16]
  val_images: [32]
  epochs: [1]
  batch_size: [8]
  crop_scale: [[0.8, 1.0]]
"""
TOY_EVIDENCE_GRID = f"""\
- seeds: [[0], [1]]
  model: [base, rnnpool, avg]
{TOY_SCALE}- seeds: [[2]]
  model: [rnnpool, avg]
{TOY_SCALE}"""


@pytest.fixture(scope="module")
def toy_evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evidence") / "05_visual_wake_words"
    folder.mkdir()
    (folder / "grid.yaml").write_text(TOY_EVIDENCE_GRID)
    src = str(Path(rnnpool_lite.__file__).resolve().parents[1])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
        table = sweep(NOTEBOOKS / "runs" / "vww_model.ipynb", load_grid(folder / "grid.yaml"), folder, jobs=1)
    assert (table["status"] == "ok").all(), table["error"].tolist()
    return folder


def test_vww_chapter_shows_complete_evidence_and_records_its_tier(tmp_path: Path, toy_evidence: Path) -> None:
    out = tmp_path / "05.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "05_visual_wake_words.ipynb"), str(out), cwd=str(NOTEBOOKS),
                        progress_bar=False, parameters=dict(
                            TOY_VWW, evidence_dir=str(toy_evidence), check_claims=False,
                            results_dir=str(tmp_path / "results")))
    text = _text_outputs(out)
    assert ("tier: evidence (32-pixel images, 16 training and 32 validation images, 1 epoch, 3 models x 2 "
            "seeds; MobileNetV2-0.35x-RNNPool and Average Pooling: 3 seeds)") in text
    assert "**Shown: the evidence run.** Evidence run (complete)" in text
    saved = ChapterResults.load(tmp_path / "results" / "05_visual_wake_words.json")
    assert saved.parameters["tier"] == "evidence" and saved.seeds == [0, 1, 2]
    # each comparison is paired on the seeds both models ran
    assert [(v["claim"], v["n"]) for v in saved.verdicts] == [
        ("RNNPool model vs base, equivalence (Tables 1-2)", 2), ("RNNPool vs average pool (Table 2)", 3)]
    assert all(v["tier"] == "evidence" for v in saved.verdicts)


def test_vww_chapter_asserts_the_task_rule_on_the_evidence(tmp_path: Path, toy_evidence: Path) -> None:
    with pytest.raises(PapermillExecutionError) as failure:
        pm.execute_notebook(str(NOTEBOOKS / "05_visual_wake_words.ipynb"), str(tmp_path / "05.ipynb"),
                            cwd=str(NOTEBOOKS), progress_bar=False,
                            parameters=dict(TOY_VWW, evidence_dir=str(toy_evidence),
                                            results_dir=str(tmp_path / "results")))
    error = failure.value
    assert error.ename == "ClaimFailed", (error.ename, error.evalue)
    assert error.evalue.startswith("claim failed: the evidence run's task can tell the models apart: the best "
                                   "model at least 20 points above chance")
    assert not (tmp_path / "results").exists()  # stopped before the results file


def test_face_chapter_runs_with_a_paper_detector(tmp_path: Path) -> None:
    out = tmp_path / "04.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "04_face_detection.ipynb"), str(out), cwd=str(NOTEBOOKS),
                        progress_bar=False, parameters=dict(
                            detector="Quant", train_scenes=8, val_scenes=4, epochs=2, batch_size=4, seeds=[0, 1],
                            results_dir=str(tmp_path / "results")))
    text = _text_outputs(out)
    assert "this book: RNNPool-Face (Quant), scene set" in text
    assert "LBP cascade (scikit-image)" in text
    assert "claims not checked" in text  # they are about the default detector and scale
    assert (tmp_path / "results" / "04_face_detection.json").is_file()
    assert read_records(out) == {}  # chapters report through tables, not sweep records


def test_receptive_field_chapter_stops_on_a_bad_model_name(tmp_path: Path) -> None:
    with pytest.raises(pm.PapermillExecutionError, match=r"parameter models=\['RNNPool', 'ResNet'\]"):
        pm.execute_notebook(str(NOTEBOOKS / "09_receptive_fields.ipynb"), str(tmp_path / "09.ipynb"),
                            cwd=str(NOTEBOOKS), progress_bar=False, parameters=dict(models=["RNNPool", "ResNet"]))


def test_receptive_field_chapter_runs_deeper_on_noise(tmp_path: Path) -> None:
    """Layer 16, noise images, no MobileNetV2 (its claims are skipped), one epoch on 16 images."""
    out = tmp_path / "09.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "09_receptive_fields.ipynb"), str(out), cwd=str(NOTEBOOKS),
                        progress_bar=False, parameters=dict(
                            models=["RNNPool", "average pooling"], layer=16, image_set="noise", n_images=4,
                            train_images=16, epochs=1, batch_size=8, results_dir=str(tmp_path)))
    text = _text_outputs(out)
    assert "4 noise images of 64x64" in text and "TRF at stride 16: RNNPool" in text
    assert (tmp_path / "09_receptive_fields.json").is_file()


def test_ablation_chapter_runs_a_small_grid(tmp_path: Path) -> None:
    out = tmp_path / "07.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "07_ablations.ipynb"), str(out), cwd=str(NOTEBOOKS),
                        progress_bar=False, parameters=dict(
                            cells=["fastgrnn"], rows=["a", "g"], seeds=[0], epochs=1, train_size=64,
                            out_dir=str(tmp_path / "sweep"), results_dir=str(tmp_path / "results")))
    text = _text_outputs(out)
    assert "2 runs" in text and "claims checked" in text
    assert (tmp_path / "results" / "07_ablations.json").is_file()


@pytest.mark.parametrize("chapter, parameters, message", [
    ("04_face_detection", {"detector": "D"}, "parameter detector='D': expected one of 'small'"),
    ("04_face_detection", {"image_size": 0}, "parameter image_size=0: expected an integer >= 48"),
    ("04_face_detection", {"wider_root": "/no/such/folder"}, "parameter wider_root='/no/such/folder'"),
    ("04_face_detection", {"evidence_dir": 3}, "parameter evidence_dir=3: expected a folder path"),
    ("07_ablations", {"cells": ["rnn"]}, "parameter cells=['rnn']: expected a non-empty list"),
    ("07_ablations", {"rows": ["z"]}, "parameter rows=['z']"),
    ("07_ablations", {"evidence_dir": 3}, "parameter evidence_dir=3: expected a folder path"),
    ("05_visual_wake_words", {"image_size": 0}, "parameter image_size=0: expected an integer >= 32"),
    ("05_visual_wake_words", {"dataset": "mnist"}, "parameter dataset='mnist': expected one of"),
    ("05_visual_wake_words", {"objects": [2, 1]}, "parameter objects=[2, 1]: expected [min, max]"),
    ("05_visual_wake_words", {"evidence_dir": "/"}, "parameter evidence_dir='/': expected a folder holding"),
    ("03_training_probes", {"image_size": 0}, "parameter image_size=0: expected one of 32, 64"),
    ("03_training_probes", {"seeds": [0, 1]}, "parameter seeds=[0, 1]: expected a list of at least 3"),
    ("03_training_probes", {"search_sets": ["lines16"]}, "parameter search_sets=['lines16']: expected a non-empty"),
    ("03_training_probes", {"one_shot_datasets": ["cifar10"]}, "parameter one_shot_datasets=['cifar10']"),
    ("08_cortex_m4_qemu", {"face_m4_size": [0, 320]}, "parameter face_m4_size=0: expected an integer >= 16"),
])
def test_bad_parameters_stop_the_chapter_naming_the_parameter(tmp_path: Path, chapter: str, parameters: dict,
                                                             message: str) -> None:
    with pytest.raises(PapermillExecutionError) as error:
        pm.execute_notebook(str(NOTEBOOKS / f"{chapter}.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(NOTEBOOKS),
                            progress_bar=False, parameters=parameters)
    assert error.value.ename == "ParameterError" and message in error.value.evalue
    check = check_cell_index(NOTEBOOKS / f"{chapter}.ipynb")  # stopped in the check, not after it
    assert error.value.cell_index <= check, f"stopped only in cell {error.value.cell_index}, not {check}"
