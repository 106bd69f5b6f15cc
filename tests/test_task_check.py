"""The book's rule for a task that can decide a comparison: each outcome, its boundaries, bad inputs."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnpool_lite.stats import HEADROOM, LEARNS_BY, check_task, compare_paired


def test_a_task_between_chance_and_the_ceiling_decides() -> None:
    c = check_task({"RNNPool": 79.6, "strided conv": 83.1, "max pooling": 10.3}, chance=10)
    assert c.decides and c.learns and c.near_ceiling == ()
    assert (c.best, c.best_mean) == ("strided conv", 83.1)
    assert c.sentence.startswith("The task can decide") and "83.1%" in c.sentence


def test_one_model_near_the_ceiling_saturates_the_task() -> None:
    c = check_task({"RNNPool": 95.7, "strided conv": 94.0, "avg": 40.0}, chance=10)
    assert not c.decides and c.learns
    assert c.near_ceiling == ("RNNPool",)
    assert c.sentence.startswith("Saturated: RNNPool (95.7%) is within 5 points of 100%")


def test_models_near_chance_have_not_learned() -> None:
    c = check_task(pd.Series({"base": 52.2, "rnnpool": 49.0}), chance=50)
    assert not c.decides and not c.learns and c.near_ceiling == ()
    assert c.sentence.startswith("Not learned: the best, base, averages 52.2% against 50% by chance")


def test_the_boundaries_follow_the_rule_exactly() -> None:
    # the best exactly learns_by above chance learns; exactly headroom below the ceiling is not near it
    assert check_task({"a": 50 + LEARNS_BY}, chance=50).decides
    assert not check_task({"a": 50 + LEARNS_BY - 1e-9}, chance=50).learns
    assert check_task({"a": 100 - HEADROOM, "b": 30}, chance=10).decides
    assert check_task({"a": 100 - HEADROOM + 1e-9}, chance=10).near_ceiling == ("a",)
    # another ceiling and other thresholds (an AP in points, say)
    c = check_task({"a": 0.9 * 100}, chance=0, ceiling=90 + 2, headroom=1, learns_by=40)
    assert c.decides


@pytest.mark.parametrize(("means", "kwargs", "match"), [
    ({}, {"chance": 10}, "at least one model"),
    ({"a": math.nan}, {"chance": 10}, "non-finite"),
    ({"a": 50.0}, {"chance": 100}, "chance must be below ceiling"),
    ({"a": 50.0}, {"chance": 10, "learns_by": -1}, "learns_by"),
    ({"a": 50.0}, {"chance": 10, "headroom": math.inf}, "headroom"),
])
def test_bad_inputs_are_refused_with_the_reason(means, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        check_task(means, **kwargs)


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.floats(0, 100), min_size=1, max_size=8),
       st.floats(0, 60))
def test_decides_is_exactly_the_two_rules(means: dict[str, float], chance: float) -> None:
    c = check_task(means, chance=chance)
    best = max(means.values())
    assert c.best_mean == best and means[c.best] == best
    assert c.decides == (best >= chance + LEARNS_BY and all(v <= 100 - HEADROOM for v in means.values()))
    assert set(c.near_ceiling) == {k for k, v in means.items() if v > 100 - HEADROOM}


def test_a_task_that_cannot_decide_records_its_comparisons_as_inconclusive() -> None:
    reversed_ = compare_paired([50.0, 51, 50, 52], [60.0, 61, 62, 61], claim="greater", paper_gap=2.0)
    equivalent = compare_paired([50.0, 50.2, 50.1], [50.1, 50.0, 50.2], claim="equivalent", margin=1.0)
    assert reversed_.verdict == "contradicted" and reversed_.reversed
    assert equivalent.verdict == "reproduced"
    flat = check_task({"a": 52.0, "b": 61.0}, chance=50)  # best 11 points above chance
    for original in (reversed_, equivalent):
        kept = flat.qualify(original)
        assert kept.verdict == "inconclusive" and kept.seeds_needed is None
        assert kept.sentence.startswith("No verdict on this task. Not learned:")
        assert kept.sentence.endswith(original.sentence)
        assert kept.differences == original.differences and kept.ci_low == original.ci_low
    assert flat.qualify(reversed_).reversed is False and flat.qualify(equivalent).reversed is None
    saturated = check_task({"a": 97.0, "b": 80.0}, chance=50)
    assert saturated.qualify(reversed_).sentence.startswith("No verdict on this task. Saturated:")
    good = check_task({"a": 75.0, "b": 70.0}, chance=50)
    assert good.qualify(reversed_) is reversed_
