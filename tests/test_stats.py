"""Paired comparisons: every verdict of both claims on constructed samples, bad inputs, properties."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from rnnpool_lite.stats import compare_paired, seeds_for_half_width

BASE = np.array([80.0, 81.0, 82.0, 83.0, 84.0])


def _shifted(differences: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """a, b with a - b = differences per seed (b varies a lot across seeds: the pairing must remove it)."""
    return BASE + np.asarray(differences), BASE


def test_t_interval_matches_the_textbook_formula() -> None:
    a, b = _shifted([1.0, 2.0, 3.0, 2.5, 1.5])
    r = compare_paired(a, b, paper_gap=1.0)
    d = a - b
    half = scipy_stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert r.mean_difference == pytest.approx(2.0) and r.n == 5
    assert (r.ci_low, r.ci_high) == pytest.approx((2.0 - half, 2.0 + half))
    assert r.half_width == pytest.approx(half) and r.differences == pytest.approx(tuple(d))
    assert r.a_mean == pytest.approx(BASE.mean() + 2) and r.b_mean == pytest.approx(BASE.mean())


@pytest.mark.parametrize(("differences", "gap", "verdict", "smaller", "reversed_", "words"), [
    # lo > 0 and the interval reaches past the paper's gap
    ([1.0, 2.0, 3.0, 2.5, 1.5], 2.0, "reproduced", False, False, "consistent with the paper's gap"),
    # lo > 0 but hi < gap: a real effect, smaller than the paper's
    ([1.0, 1.2, 0.9, 1.1, 1.0], 4.0, "reproduced", True, False, "the effect is smaller"),
    # lo > gap: larger than the paper's
    ([5.0, 5.2, 4.9, 5.1, 5.0], 1.0, "reproduced", False, False, "the effect is larger"),
    # lo <= 0 and hi < gap: no gain shown and the paper's gap ruled out
    ([0.2, -0.3, 0.1, 0.0, -0.1], 2.0, "contradicted", True, False, "no gain of A over B"),
    # hi < 0: b beats a, the reverse of the paper
    ([-2.0, -2.2, -1.9, -2.1, -1.8], 1.0, "contradicted", True, True, "B beats A, the reverse of the paper"),
    # the interval holds both 0 and the gap
    ([-3.0, 4.0, 1.0, -2.0, 5.0], 2.0, "inconclusive", False, False, "holds both 0 and the paper's gap"),
])
def test_greater_verdicts(differences: list[float], gap: float, verdict: str, smaller: bool, reversed_: bool,
                          words: str) -> None:
    a, b = _shifted(differences)
    r = compare_paired(a, b, claim="greater", paper_gap=gap, labels=("A", "B"), unit="points")
    assert r.verdict == verdict
    assert r.smaller_than_paper is smaller and r.reversed is reversed_
    assert r.sentence.startswith(verdict.capitalize()) and words in r.sentence, r.sentence
    assert r.margin is None and r.paper_gap == gap
    if verdict == "reproduced":
        assert r.ci_low > 0
    elif verdict == "contradicted":
        assert r.ci_low <= 0 and r.ci_high < gap
    else:
        assert r.ci_low <= 0 <= gap <= r.ci_high


@pytest.mark.parametrize(("differences", "verdict", "words"), [
    ([0.1, -0.2, 0.3, 0.0, -0.1], "reproduced", "inside the margin"),
    ([3.0, 3.2, 2.9, 3.1, 3.0], "contradicted", "wholly outside the margin"),
    ([-3.0, -3.2, -2.9, -3.1, -3.0], "contradicted", "wholly outside the margin"),
    ([0.5, 1.5, 0.8, 1.2, 1.0], "inconclusive", "crosses the margin"),
    ([-3.0, 4.0, 1.0, -2.0, 5.0], "inconclusive", "crosses the margin"),
])
def test_equivalent_verdicts(differences: list[float], verdict: str, words: str) -> None:
    a, b = _shifted(differences)
    r = compare_paired(a, b, claim="equivalent", margin=1.0)
    assert r.verdict == verdict and words in r.sentence, r.sentence
    assert r.smaller_than_paper is None and r.reversed is None and r.paper_gap is None
    inside = r.ci_low > -1.0 and r.ci_high < 1.0
    outside = r.ci_low > 1.0 or r.ci_high < -1.0
    assert (verdict == "reproduced") == inside and (verdict == "contradicted") == outside


def test_the_boundaries_follow_the_rules_exactly() -> None:
    """Constant differences give a zero-width interval at the mean: the rules' strict and loose ends."""
    a, b = _shifted([0.0] * 5)
    assert compare_paired(a, b, paper_gap=1.0).verdict == "contradicted"  # lo = 0 is not > 0
    a, b = _shifted([1.0] * 5)
    assert compare_paired(a, b, paper_gap=1.0).verdict == "reproduced"
    # equivalence: an interval touching the margin is neither inside (-m, m) nor wholly outside [-m, m]
    assert compare_paired(a, b, claim="equivalent", margin=1.0).verdict == "inconclusive"
    r = compare_paired(a, b, claim="equivalent", margin=1.0)
    assert r.seeds_needed is None and "no number of seeds" in r.sentence


def test_pairing_by_seed_key_and_pandas() -> None:
    a = {0: 80.0, 1: 85.0, 2: 90.0}
    b = {2: 89.0, 0: 79.0, 1: 84.0}  # another order: paired by key, every difference is 1
    r = compare_paired(a, b, paper_gap=0.5)
    assert r.differences == (1.0, 1.0, 1.0) and r.verdict == "reproduced"
    r2 = compare_paired(pd.Series(a), pd.Series(b), paper_gap=0.5)
    assert r2.differences == r.differences
    with pytest.raises(ValueError, match=r"only in a \[3\], only in b \[\]"):
        compare_paired({**a, 3: 1.0}, b, paper_gap=0.5)
    with pytest.raises(TypeError, match="both keyed by seed"):
        compare_paired(a, [1.0, 2.0, 3.0], paper_gap=0.5)
    with pytest.raises(ValueError, match="one-dimensional"):  # a table is not one value per seed
        compare_paired(pd.DataFrame({"x": a, "y": a}), pd.DataFrame({"x": b, "y": b}), paper_gap=0.5)


@pytest.mark.parametrize(("a", "b", "kwargs", "error", "match"), [
    ([1.0, 2.0, 3.0], [1.0, 2.0], {"paper_gap": 1}, ValueError, "got 3 and 2"),
    ([1.0], [2.0], {"paper_gap": 1}, ValueError, "at least 2 seeds"),
    ([], [], {"paper_gap": 1}, ValueError, "at least 2 seeds"),
    ([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0], {"paper_gap": 1}, ValueError, "a has non-finite values .* position 1"),
    ([1.0, 2.0, 3.0], [1.0, 2.0, float("inf")], {"paper_gap": 1}, ValueError, "b has non-finite"),
    ({0: 1.0, 1: float("nan")}, {0: 1.0, 1: 2.0}, {"paper_gap": 1}, ValueError, "at 1"),
    ([[1.0, 2.0]], [[1.0, 2.0]], {"paper_gap": 1}, ValueError, "one-dimensional"),
    ([1.0, 2.0], [1.0, 2.0], {}, ValueError, "needs paper_gap"),
    ([1.0, 2.0], [1.0, 2.0], {"claim": "equivalent"}, ValueError, "needs margin"),
    ([1.0, 2.0], [1.0, 2.0], {"paper_gap": 0}, ValueError, "paper_gap must be a finite number > 0"),
    ([1.0, 2.0], [1.0, 2.0], {"paper_gap": float("nan")}, ValueError, "paper_gap must be"),
    ([1.0, 2.0], [1.0, 2.0], {"claim": "equivalent", "margin": -1}, ValueError, "margin must be"),
    ([1.0, 2.0], [1.0, 2.0], {"paper_gap": 1, "margin": 1}, ValueError, "margin belongs to"),
    ([1.0, 2.0], [1.0, 2.0], {"claim": "equivalent", "margin": 1, "paper_gap": 1}, ValueError, "paper_gap belongs"),
    ([1.0, 2.0], [1.0, 2.0], {"claim": "better", "paper_gap": 1}, ValueError, "claim must be one of"),
    ([1.0, 2.0], [1.0, 2.0], {"paper_gap": 1, "confidence": 95}, ValueError, "confidence must be in"),
    ([1.0, 2.0], [1.0, 2.0], {"paper_gap": 1, "method": "bootstrap"}, ValueError, "method must be one of"),
])
def test_bad_inputs_are_refused_with_the_reason(a, b, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        compare_paired(a, b, **kwargs)


def test_bootstrap_methods_are_seeded_and_narrower_than_t_at_few_seeds() -> None:
    a, b = _shifted([1.0, 2.0, 3.0, 2.5, 1.5])
    t = compare_paired(a, b, paper_gap=1.0)
    for method in ("bca", "percentile"):
        r1 = compare_paired(a, b, paper_gap=1.0, method=method)
        r2 = compare_paired(a, b, paper_gap=1.0, method=method)
        assert (r1.ci_low, r1.ci_high) == (r2.ci_low, r2.ci_high)
        assert r1.half_width < t.half_width  # why t is the default for 3-10 seeds
        assert "bootstrap" in r1.sentence and r1.mean_difference == t.mean_difference


def test_seeds_needed_solves_the_t_half_width() -> None:
    sd, target = 2.0, 0.5
    n = seeds_for_half_width(sd, target)
    assert n is not None

    def half(k: int) -> float:
        return scipy_stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)

    assert half(n) <= target < half(n - 1)
    assert seeds_for_half_width(0.0, 0.1) == 2 and seeds_for_half_width(1.0, 0.0) is None
    assert seeds_for_half_width(1.0, 100.0) == 2
    assert seeds_for_half_width(sd, target, confidence=0.99) > n
    # a mean a rounding error from an equivalence margin: an astronomical n, not a TypeError
    assert seeds_for_half_width(sd, 1e-13) > 2**63
    with pytest.raises(ValueError, match="sd must be"):
        seeds_for_half_width(-1.0, 1.0)
    # in a comparison: greater targets half the paper's gap, equivalent the distance to the margin
    a, b = _shifted([-3.0, 4.0, 1.0, -2.0, 5.0])
    r = compare_paired(a, b, paper_gap=2.0)
    assert r.seeds_needed == seeds_for_half_width(r.sd_difference, 1.0) and r.seeds_needed > 5
    e = compare_paired(a, b, claim="equivalent", margin=1.0)
    assert e.seeds_needed == seeds_for_half_width(e.sd_difference, abs(1.0 - abs(e.mean_difference)))
    assert f"about {r.seeds_needed} seeds" in r.sentence
    # a mean on the margin up to float rounding is on it: no seed count, not an astronomical one
    on = compare_paired([57.43, 52.870000000000005, 51.68000000000001], [58.26, 52.13, 54.59],
                        claim="equivalent", margin=1.0)
    assert on.mean_difference != -1.0 and abs(on.mean_difference + 1.0) < 1e-12 and on.seeds_needed is None
    assert "the mean sits on the margin" in on.sentence


def test_an_interval_narrower_than_the_gap_always_decides() -> None:
    """Why seeds_needed targets gap / 2: at that many seeds (same spread) the greater claim is decided."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        d = rng.normal(rng.uniform(-2, 4), 1.0, size=4)
        first = compare_paired(BASE[:4] + d, BASE[:4], paper_gap=2.0)
        k = first.seeds_needed
        assert k is not None
        # k seeds whose differences have exactly the measured mean and spread
        z = rng.normal(size=k)
        z = (z - z.mean()) / z.std(ddof=1)
        more = first.mean_difference + first.sd_difference * z
        assert compare_paired(more, np.zeros(k), paper_gap=2.0).verdict != "inconclusive"


finite = st.floats(min_value=-100, max_value=100, allow_nan=False, allow_infinity=False)


@given(st.integers(min_value=2, max_value=12).flatmap(
    lambda n: st.tuples(st.lists(finite, min_size=n, max_size=n), st.lists(finite, min_size=n, max_size=n))))
def test_properties_of_the_t_interval(pair: tuple[list[float], list[float]]) -> None:
    a, b = pair
    r = compare_paired(a, b, paper_gap=1.0)
    assert r.ci_low <= r.mean_difference <= r.ci_high
    s = compare_paired(b, a, paper_gap=1.0)
    assert s.mean_difference == pytest.approx(-r.mean_difference, abs=1e-9)
    assert (s.ci_low, s.ci_high) == pytest.approx((-r.ci_high, -r.ci_low), abs=1e-9)
    # a higher confidence widens the interval
    wide = compare_paired(a, b, paper_gap=1.0, confidence=0.99)
    assert wide.ci_low <= r.ci_low + 1e-9 and wide.ci_high >= r.ci_high - 1e-9
    # shifting both samples by the same per-seed amount (a seed effect) changes nothing
    shift = np.linspace(-50, 50, len(a))
    moved = compare_paired(np.add(a, shift), np.add(b, shift), paper_gap=1.0)
    assert moved.mean_difference == pytest.approx(r.mean_difference, abs=1e-6)
    assert moved.half_width == pytest.approx(r.half_width, abs=1e-6)


@given(st.lists(finite, min_size=3, max_size=8), st.floats(min_value=0.1, max_value=10))
def test_equivalent_verdict_is_symmetric_in_a_and_b(d: list[float], margin: float) -> None:
    a = np.asarray(d)
    b = np.zeros(len(d))
    assert compare_paired(a, b, claim="equivalent", margin=margin).verdict == \
        compare_paired(b, a, claim="equivalent", margin=margin).verdict
