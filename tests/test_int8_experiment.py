"""Chapter 6's float-vs-int8 experiment at toy size: what one seed reports, how the evidence table is
read back per seed, and where the verdict lands on the summary page."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from rnnpool_lite.repro.int8_experiment import (
    INT8_CLAIM,
    PER_SEED_RECORDS,
    evidence_rows,
    float_and_int8,
    int8_scenes,
)
from rnnpool_lite.repro.verdicts import EXPECTED_CLAIMS, _expected_index
from rnnpool_lite.train import TrainConfig


def test_scenes_hold_one_object_a_bag_exactly_in_the_positives() -> None:
    scenes = int8_scenes("train", 40, 32, distractors=("Trouser", "Dress"))
    assert scenes.images.shape == (40, 1, 32, 32)
    assert ((scenes.sources >= 0).sum(1) == 1).all()  # one object per scene
    first = scenes.source_classes[:, 0]
    assert ((first == 8) == (scenes.targets == 1)).all()  # Bag (class 8) is the positive
    assert set(first[scenes.targets == 0].tolist()) <= {1, 3}  # Trouser, Dress
    sides = scenes.boxes[:, 0, 2]
    assert sides.min() >= 12 and sides.max() <= 16  # 3/8 to 1/2 of the side


def test_one_seed_scores_float_and_int8_on_the_same_test_scenes() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train, test = int8_scenes("train", 64, 32), int8_scenes("test", 48, 32)
        config = TrainConfig(epochs=2, lr=0.1, batch_size=32, device="cpu", progress=False)
        run = float_and_int8(3, train, test, config, calibration_size=16)
    finally:
        torch.set_num_threads(threads)
    assert run.history.index.tolist() == [1, 2]
    # the last epoch's weights, not the best on the test scenes
    assert run.float_accuracy == pytest.approx(float(run.history["val_accuracy"].iloc[-1]))
    assert set(run.quantized) == set(run.int8_accuracy) == {"minmax", "percentile"}
    int8_pred = run.quantized["minmax"].run(test.images, "layer").argmax(1)
    assert run.int8_accuracy["minmax"] == int((int8_pred == test.targets).sum()) / len(test)
    with torch.no_grad():
        float_pred = run.model(test.images).argmax(1)
    assert run.agreement == int((int8_pred == float_pred).sum()) / len(test)
    row = run.row()
    assert set(row) == {"seed", *PER_SEED_RECORDS} and row["seed"] == 3
    assert row["int8_percentile_accuracy"] == run.int8_accuracy["percentile"]


def test_evidence_rows_split_each_runs_lists_by_seed() -> None:
    # results.csv stores list-valued records as their JSON text
    table = pd.DataFrame({"seeds": ["[2, 0]", "[1]"], "float_accuracy": ["[0.8, 0.7]", "[0.9]"],
                          "int8_accuracy": ["[0.79, 0.7]", "[0.9]"], "float_curve": ["[[0.5, 0.8], [0.6, 0.7]]",
                                                                                     "[[0.9, 0.9]]"]})
    rows = evidence_rows(table)
    assert rows["seed"].tolist() == [0, 1, 2]
    assert rows["float_accuracy"].tolist() == [0.7, 0.9, 0.8]
    assert rows["int8_accuracy"].tolist() == [0.7, 0.9, 0.79]
    assert rows["float_curve"].tolist() == [[0.6, 0.7], [0.9, 0.9], [0.5, 0.8]]


def test_the_verdict_fills_the_summary_pages_int8_row() -> None:
    index = _expected_index(INT8_CLAIM, EXPECTED_CLAIMS)
    assert index is not None and EXPECTED_CLAIMS[index].claim == "int8 vs float"
