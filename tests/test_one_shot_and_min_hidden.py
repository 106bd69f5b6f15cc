"""One-shot pooling classifiers (Appendix C.2) and the smallest-hidden-size search (Table 7)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from rnnpool_lite.data import MULTI_LABEL_SETS, multi_label_set
from rnnpool_lite.train import MultiLabelTask, TrainConfig
from rnnpool_lite.train.min_hidden import power_of_two_pairs, rnnpool_parameters, search_probe, smallest_hidden
from rnnpool_lite.train.one_shot import ONE_SHOT_OPERATORS, OneShotPoolClassifier, fit_one_shot


@pytest.mark.parametrize("operator", ONE_SHOT_OPERATORS)
def test_every_operator_pools_to_one_vector_of_4h(operator: str) -> None:
    model = OneShotPoolClassifier(operator, image_size=16, num_classes=10, in_channels=3, hidden=4)
    x = torch.rand(5, 3, 16, 16)
    assert model.features(x).shape == (5, 16)
    assert model(x).shape == (5, 10)
    model(x).sum().backward()  # trainable end to end


def test_pooling_operators_see_only_channel_summaries() -> None:
    """avg / max pooling keep one number per channel: images with equal channel means look alike."""
    model = OneShotPoolClassifier("avg", image_size=8, num_classes=3, hidden=2).eval()
    a = torch.zeros(1, 1, 8, 8)
    a[..., :4, :] = 1.0
    b = torch.zeros(1, 1, 8, 8)
    b[..., :, :4] = 1.0  # same mean, other geometry
    assert torch.allclose(model(a), model(b))
    rnnpool = OneShotPoolClassifier("rnnpool", image_size=8, num_classes=3, hidden=2).eval()
    assert not torch.allclose(rnnpool(a), rnnpool(b))


@given(st.sampled_from(["pool", "avg ", ""]), st.integers(-2, 1))
def test_bad_arguments_are_refused(operator: str, size: int) -> None:
    with pytest.raises(ValueError):
        OneShotPoolClassifier(operator, image_size=16, num_classes=10)
    with pytest.raises(ValueError):
        OneShotPoolClassifier("max", image_size=size, num_classes=10)


def test_wrong_image_size_is_named() -> None:
    with pytest.raises(ValueError, match="expected"):
        OneShotPoolClassifier("rnnpool", image_size=8, num_classes=2, hidden=2)(torch.rand(1, 1, 9, 9))


def test_search_stops_at_the_smallest_passing_pair() -> None:
    calls = []

    def score(h1: int, h2: int) -> float:
        calls.append((h1, h2))
        return 1.0 if h1 * h2 >= 64 else 0.5

    result = smallest_hidden(power_of_two_pairs(4, 32), score)
    assert result.smallest == (8, 8)
    assert calls[-1] == (8, 8) and len(calls) == len(result.tried)
    sizes = result.tried["parameters"].tolist()
    assert sizes == sorted(sizes) and result.tried["passed"].tolist() == [False] * (len(calls) - 1) + [True]


def test_search_reports_none_when_nothing_passes() -> None:
    result = smallest_hidden([(4, 4), (8, 8)], lambda h1, h2: 0.9)
    assert result.smallest is None and len(result.tried) == 2
    with pytest.raises(ValueError):
        smallest_hidden([], lambda h1, h2: 1.0)
    with pytest.raises(ValueError):
        smallest_hidden([(0, 4)], lambda h1, h2: 1.0)


def test_parameter_count_grows_with_hidden_sizes() -> None:
    assert rnnpool_parameters(1, 4, 4) < rnnpool_parameters(1, 4, 8) < rnnpool_parameters(1, 8, 8)
    assert power_of_two_pairs(4, 8) == [(4, 4), (4, 8), (8, 8)]
    with pytest.raises(ValueError):
        power_of_two_pairs(3, 8)


def test_search_probe_trains_each_candidate_until_one_passes() -> None:
    """search_probe trains real probes: a target of 0 passes the first, an unreachable one none."""
    train, val = multi_label_set("lines32", 16, 0), multi_label_set("lines32", 8, 1)
    config = TrainConfig(epochs=1, batch_size=8, task=MultiLabelTask(), progress=False)
    first = search_probe(train, val, [(4, 4), (2, 2)], config, image_size=32, num_classes=9, with_conv=True,
                         target=0.0)
    assert first.smallest == (2, 2) and list(first.histories) == [(2, 2)]
    none = search_probe(train, val, [(2, 2), (4, 4)], config, image_size=32, num_classes=9, with_conv=False,
                        target=1.01)
    assert none.smallest is None and list(none.histories) == [(2, 2), (4, 4)]
    assert none.tried["score"].tolist() == [h["val_accuracy"].max() for h in none.histories.values()]


def test_fit_one_shot_is_seeded_by_its_config() -> None:
    images = torch.rand(12, 1, 8, 8)
    data = TensorDataset(images, torch.arange(12) % 3)
    config = TrainConfig(epochs=1, batch_size=4, progress=False, seed=3)
    runs = [fit_one_shot("strided_conv", data, data, config, image_size=8, num_classes=3, hidden=2) for _ in "ab"]
    assert runs[0].history["val_loss"].tolist() == runs[1].history["val_loss"].tolist()
    other = fit_one_shot("strided_conv", data, data, replace(config, seed=4), image_size=8, num_classes=3, hidden=2)
    assert other.history["val_loss"].tolist() != runs[0].history["val_loss"].tolist()


def test_multi_label_sets_are_named() -> None:
    assert {name: image_size for name, (_, image_size) in MULTI_LABEL_SETS.items()} == {
        "lines32": 32, "lines64": 64, "shapes64": 64}
    shapes = multi_label_set("shapes64", 3, 5)
    assert shapes.images.shape == (3, 1, 64, 64) and shapes.classes[0] == "circle"
    with pytest.raises(ValueError, match="lines32"):
        multi_label_set("lines16", 3, 0)
