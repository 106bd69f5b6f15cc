"""Paired comparisons over seeds: a confidence interval and a verdict per claim of the paper.

Two models trained on the same seeds, where one seed fixes the data order, the augmentation and the
initialisation of the layers they share, differ by less noise than two independent samples: most of
the seed-to-seed variance cancels in the per-seed difference. :func:`compare_paired` therefore works
on the differences ``a[s] - b[s]`` and nothing else, as Bouthillier et al. (MLSys 2021, "Accounting
for variance in machine learning benchmarks") recommend for comparing learning pipelines, and reports
an interval estimate rather than a point estimate or a p-value, as Agarwal et al. (NeurIPS 2021,
"Deep reinforcement learning at the edge of the statistical precipice", the rliable library) argue
for few-run studies.

Why a t-interval by default: with the 3-10 seeds a CPU budget allows, a bootstrap interval is too
narrow. A bootstrap resamples the few observed differences, so it never sees a value beyond them,
and its percentile and BCa intervals under-cover at that size: a nominal 95% interval holds the true
mean of normal differences about 75% of the time at 3 seeds, 85% at 5 and 90% at 10. The Student
t-interval on the paired differences has exact coverage under normality and degrades gently without
it. ``method="bca"`` or ``"percentile"`` (``scipy.stats.bootstrap``, the kind of interval rliable
computes) is there for runs with tens of seeds or clearly non-normal differences.

A comparison can only come out either way on a task that separates the models: one where every
model scores 100%, or none learns, decides nothing whatever the interval says. :func:`check_task`
states the book's rule for that (the best model at least ``LEARNS_BY`` points above chance, none
within ``HEADROOM`` points of the ceiling) once, for every chapter that trains.

This module is a leaf (numpy and scipy only): the chapters, the sweep's tables and the summary page
all take their verdicts from here, so one comparison is stated one way everywhere.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as scipy_stats

Claim = Literal["greater", "equivalent"]
Verdict = Literal["reproduced", "contradicted", "inconclusive"]
Method = Literal["t", "bca", "percentile"]
#: per-seed values: a sequence or array in seed order, or a mapping (dict, pandas Series) seed -> value
Samples = ArrayLike | Mapping[Any, float]

CLAIMS: tuple[str, ...] = ("greater", "equivalent")
METHODS: tuple[str, ...] = ("t", "bca", "percentile")
#: the book's rule for a task that can decide a comparison (issue 14): the best model at least this many
#: points above chance ...
LEARNS_BY = 20.0
#: ... and no model within this many points of the ceiling (100% for an accuracy)
HEADROOM = 5.0
#: resamples of the bootstrap methods; the generator is seeded, so a verdict is a function of the data
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class PairedComparison:
    """What :func:`compare_paired` found: the paired difference, its interval and the verdict.

    ``differences`` are ``a - b`` per seed, in the order the seeds were given. ``smaller_than_paper``
    (claim "greater" only) is ``ci_high < paper_gap``: the whole interval lies below the paper's gap.
    ``reversed`` (claim "greater" only) is ``ci_high < 0``: b beats a, the opposite of the paper.
    ``seeds_needed`` is the number of seeds at which a t-interval with the measured spread of the
    differences would be narrow enough to decide the claim (``None`` where no number of seeds can:
    an equivalence claim whose mean difference sits exactly on the margin).
    """

    claim: Claim
    a_label: str
    b_label: str
    metric: str
    n: int
    a_mean: float
    b_mean: float
    differences: tuple[float, ...]
    mean_difference: float
    sd_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    method: Method
    verdict: Verdict
    paper_gap: float | None
    margin: float | None
    smaller_than_paper: bool | None
    reversed: bool | None
    seeds_needed: int | None
    sentence: str

    def __str__(self) -> str:
        return self.sentence

    @property
    def half_width(self) -> float:
        """Half the width of the confidence interval."""
        return (self.ci_high - self.ci_low) / 2


def seeds_for_half_width(sd: float, half_width: float, confidence: float = 0.95) -> int | None:
    """Smallest n >= 2 with ``t_{n-1} * sd / sqrt(n) <= half_width``, ``t_{n-1}`` the two-sided
    ``confidence`` quantile of Student's t with n-1 degrees of freedom.

    How many seeds a paired t-interval needs, at spread ``sd`` of the per-seed differences, to be at
    most ``half_width`` wide on each side. ``None`` when ``half_width`` is 0 and ``sd`` is not.
    """
    _check_confidence(confidence)
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a finite number >= 0, got {sd}")
    if not (math.isfinite(half_width) and half_width >= 0):
        raise ValueError(f"half_width must be a finite number >= 0, got {half_width}")
    if sd == 0:
        return 2
    if half_width == 0:
        return None
    q = (1 + confidence) / 2
    # the t quantile exceeds the normal one, so the normal answer is a lower bound to start from
    n = max(2, math.ceil((scipy_stats.norm.ppf(q) * sd / half_width) ** 2))
    # float degrees of freedom: a half-width far below sd (a mean a rounding error from the margin)
    # makes n exceed int64, which scipy's t quantile refuses as an integer
    while scipy_stats.t.ppf(q, float(n - 1)) * sd / math.sqrt(n) > half_width:
        n += 1
    return n


def compare_paired(a: Samples, b: Samples, *, claim: Claim = "greater", paper_gap: float | None = None,
                   margin: float | None = None, confidence: float = 0.95, method: Method = "t",
                   labels: tuple[str, str] = ("a", "b"), metric: str = "accuracy", unit: str = "",
                   digits: int = 2) -> PairedComparison:
    """Compare two models' per-seed metrics, paired by seed, and decide the paper's claim about them.

    ``a`` and ``b`` are either two sequences in the same seed order, or two mappings (a dict or a
    pandas Series) keyed by seed, paired by key. Higher is taken as better: pass losses or RAM
    negated. With ``d = a - b`` per seed and ``[lo, hi]`` the ``confidence`` interval of ``mean(d)``:

    ``claim="greater"`` (the paper says a beats b), ``paper_gap`` the smallest gap the paper reports:

    - ``lo > 0``: **reproduced**; ``smaller_than_paper`` says whether also ``hi < paper_gap``.
    - ``lo <= 0`` and ``hi < paper_gap``: **contradicted**: the paper's gap is ruled out and no gain is
      shown (``reversed`` when even ``hi < 0``: b beats a).
    - otherwise: **inconclusive**.

    ``claim="equivalent"`` (the paper says "accuracy within about ``margin``"):

    - ``[lo, hi]`` inside ``(-margin, margin)``: **reproduced**.
    - ``[lo, hi]`` wholly outside ``[-margin, margin]``: **contradicted**.
    - otherwise: **inconclusive**.

    The interval: ``method="t"`` (default) is the Student t-interval ``mean(d) +- t_{n-1} sd(d) / sqrt(n)``;
    ``"bca"`` and ``"percentile"`` are ``scipy.stats.bootstrap`` intervals of the mean (seeded, so
    repeatable); see the module docstring for why t is the default at 3-10 seeds.

    ``seeds_needed`` solves ``t_{n-1} sd(d) / sqrt(n) <= target`` (:func:`seeds_for_half_width`) with
    target ``paper_gap / 2`` for "greater" (an interval narrower than the gap cannot hold both 0 and
    the gap, so it always decides) and ``|margin - |mean(d)||`` for "equivalent" (the interval then fits
    inside the margin, or wholly outside it, around the measured mean).

    ``labels``, ``metric``, ``unit`` and ``digits`` only shape ``sentence``, the text a chapter glues in.

    Raises ``ValueError`` for unequal lengths or unmatched seeds, fewer than 2 seeds, non-finite
    values, a missing or non-positive ``paper_gap`` (greater) or ``margin`` (equivalent), the other
    claim's parameter, or a ``confidence`` outside (0, 1); ``TypeError`` when one input is keyed by
    seed and the other is not.
    """
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS}, got {claim!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_confidence(confidence)
    if claim == "greater":
        _check_positive("paper_gap", paper_gap, claim)
        if margin is not None:
            raise ValueError("margin belongs to claim='equivalent'; claim='greater' takes paper_gap")
    else:
        _check_positive("margin", margin, claim)
        if paper_gap is not None:
            raise ValueError("paper_gap belongs to claim='greater'; claim='equivalent' takes margin")
    xa, xb = _paired(a, b)
    d = xa - xb
    n = d.size
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    lo, hi = _interval(d, mean, sd, confidence, method)

    smaller: bool | None = None
    rev: bool | None = None
    if claim == "greater":
        assert paper_gap is not None
        gap = float(paper_gap)
        smaller, rev = bool(hi < gap), bool(hi < 0)
        verdict: Verdict = "reproduced" if lo > 0 else "contradicted" if hi < gap else "inconclusive"
        needed = seeds_for_half_width(sd, gap / 2, confidence)
    else:
        assert margin is not None
        m = float(margin)
        if -m < lo and hi < m:
            verdict = "reproduced"
        elif lo > m or hi < -m:
            verdict = "contradicted"
        else:
            verdict = "inconclusive"
        # a mean on the margin up to float rounding (accuracies on a grid of 1/N, a mean of -1.0
        # computed as -0.99999...) sits on it: no number of seeds decides it
        target = 0.0 if math.isclose(abs(mean), m, rel_tol=1e-9) else abs(m - abs(mean))
        needed = seeds_for_half_width(sd, target, confidence) if target > 0 else None

    result = PairedComparison(
        claim=claim, a_label=labels[0], b_label=labels[1], metric=metric, n=n,
        a_mean=float(xa.mean()), b_mean=float(xb.mean()), differences=tuple(float(v) for v in d),
        mean_difference=mean, sd_difference=sd, ci_low=lo, ci_high=hi, confidence=confidence, method=method,
        verdict=verdict, paper_gap=None if paper_gap is None else float(paper_gap),
        margin=None if margin is None else float(margin), smaller_than_paper=smaller, reversed=rev,
        seeds_needed=needed, sentence="")
    return _with_sentence(result, unit, digits)


@dataclass(frozen=True)
class TaskCheck:
    """Whether a task can tell its models apart, by the book's rule (see :func:`check_task`).

    ``means`` are the models' mean scores in points (percent). ``near_ceiling`` names the models within
    ``headroom`` points of ``ceiling``.
    """

    means: dict[str, float]
    chance: float
    ceiling: float
    learns_by: float
    headroom: float
    best: str
    best_mean: float
    near_ceiling: tuple[str, ...]

    @property
    def learns(self) -> bool:
        """The best model is at least ``learns_by`` points above chance."""
        return self.best_mean >= self.chance + self.learns_by

    @property
    def decides(self) -> bool:
        """Both rules hold: a paired comparison on this task can come out either way."""
        return self.learns and not self.near_ceiling

    @property
    def sentence(self) -> str:
        """Why the task decides or not, for the page."""
        rule = (f"the book's rule for a task that can decide a comparison: the best at least {self.learns_by:g} "
                f"points above chance, none within {self.headroom:g} points of {self.ceiling:g}%")
        if self.near_ceiling:
            which = ", ".join(f"{k} ({self.means[k]:.1f}%)" for k in self.near_ceiling)
            verb = "is" if len(self.near_ceiling) == 1 else "are"
            return (f"Saturated: {which} {verb} within {self.headroom:g} points of {self.ceiling:g}%, so this "
                    f"task cannot tell the models apart ({rule}).")
        if not self.learns:
            return (f"Not learned: the best, {self.best}, averages {self.best_mean:.1f}% against "
                    f"{self.chance:g}% by chance, less than {self.learns_by:g} points above it, so this task "
                    f"cannot tell the models apart ({rule}).")
        return (f"The task can decide the comparison: the best, {self.best}, averages {self.best_mean:.1f}% "
                f"({self.chance:g}% by chance) and none is within {self.headroom:g} points of "
                f"{self.ceiling:g}% ({rule}).")

    def qualify(self, comparison: PairedComparison) -> PairedComparison:
        """``comparison`` as the book records it on this task: unchanged where the task decides;
        otherwise inconclusive, neither reversed nor a seed count that would settle it (more seeds
        cannot make such a task decide), its sentence led by why. An interval on a task that cannot
        tell the models apart is no evidence for or against the paper, whatever side of 0 it lies.
        """
        if self.decides:
            return comparison
        return replace(comparison, verdict="inconclusive",
                       reversed=None if comparison.reversed is None else False, seeds_needed=None,
                       sentence=(f"No verdict on this task. {self.sentence} Taken alone, its interval reads: "
                                 f"{comparison.sentence}"))

    def __str__(self) -> str:
        return self.sentence


def check_task(means: Mapping[str, float], *, chance: float, ceiling: float = 100.0,
               learns_by: float = LEARNS_BY, headroom: float = HEADROOM) -> TaskCheck:
    """Check the book's rule for a trained comparison: the best model scores at least ``learns_by``
    points above ``chance``, and no model is within ``headroom`` points of ``ceiling``.

    Why: at the ceiling every model scores the same, and near chance none has learned anything to
    compare, so a comparison on such a task cannot come out against the paper, whatever its interval.
    ``means`` maps each model (or setting) to its mean score over seeds, in points (0-100 for an
    accuracy). The result's ``decides`` is the verdict; its ``sentence`` says why, for the page.

    Raises ``ValueError`` for no models, a non-finite mean, ``chance >= ceiling`` or a negative
    ``learns_by`` or ``headroom``.
    """
    scores = {str(k): float(v) for k, v in means.items()}
    if not scores:
        raise ValueError("check_task needs the mean score of at least one model")
    bad = [k for k, v in scores.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"non-finite mean scores for {bad}")
    if not (math.isfinite(chance) and math.isfinite(ceiling) and chance < ceiling):
        raise ValueError(f"chance must be below ceiling, got chance={chance!r}, ceiling={ceiling!r}")
    for name, value in (("learns_by", learns_by), ("headroom", headroom)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    best = max(scores, key=scores.__getitem__)
    return TaskCheck(means=scores, chance=float(chance), ceiling=float(ceiling), learns_by=float(learns_by),
                     headroom=float(headroom), best=best, best_mean=scores[best],
                     near_ceiling=tuple(k for k, v in scores.items() if v > ceiling - headroom))


def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _check_positive(name: str, value: float | None, claim: str) -> None:
    if value is None:
        raise ValueError(f"claim={claim!r} needs {name} (the paper's figure the interval is judged against)")
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _keyed(x: Any) -> bool:
    """A mapping seed -> value: a dict, or a pandas Series (one-dimensional, indexed by seed)."""
    return isinstance(x, Mapping) or (getattr(x, "ndim", None) == 1 and hasattr(x, "index") and hasattr(x, "items"))


def _paired(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two samples as float arrays in matching seed order, checked."""
    if _keyed(a) != _keyed(b):
        raise TypeError("pass a and b both as sequences in the same seed order, or both keyed by seed")
    if _keyed(a):
        da, db = dict(a.items()), dict(b.items())
        if set(da) != set(db):
            only_a, only_b = sorted(set(da) - set(db), key=str), sorted(set(db) - set(da), key=str)
            raise ValueError(f"a and b must hold the same seeds to be paired: only in a {only_a}, only in b {only_b}")
        seeds = list(da)
        xa = np.asarray([da[s] for s in seeds], dtype=float)
        xb = np.asarray([db[s] for s in seeds], dtype=float)
        names = [repr(s) for s in seeds]
    else:
        xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if xa.ndim != 1 or xb.ndim != 1:
            raise ValueError(f"a and b must be one-dimensional (one value per seed), got shapes {xa.shape}, {xb.shape}")
        if xa.size != xb.size:
            raise ValueError(f"a and b must have one value per seed each, paired by seed: got {xa.size} and {xb.size}")
        names = [f"position {i}" for i in range(xa.size)]
    if xa.size < 2:
        raise ValueError(f"a paired comparison needs at least 2 seeds, got {xa.size}")
    for label, x in (("a", xa), ("b", xb)):
        bad = [names[i] for i in np.flatnonzero(~np.isfinite(x))]
        if bad:
            raise ValueError(f"{label} has non-finite values (NaN or inf) at {', '.join(bad)}")
    return xa, xb


def _interval(d: np.ndarray, mean: float, sd: float, confidence: float, method: Method) -> tuple[float, float]:
    if sd == 0:  # every seed gave the same difference: no spread to put an interval on
        return mean, mean
    if method == "t":
        half = float(scipy_stats.t.ppf((1 + confidence) / 2, d.size - 1)) * sd / math.sqrt(d.size)
        return mean - half, mean + half
    result = scipy_stats.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
                                   method="BCa" if method == "bca" else "percentile",
                                   random_state=np.random.default_rng(BOOTSTRAP_SEED))  # scipy < 1.15: no rng=
    lo, hi = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"the {method} bootstrap gave no interval for differences {d.tolist()}; use method='t'")
    return lo, hi


def _with_sentence(r: PairedComparison, unit: str, digits: int) -> PairedComparison:
    """The sentence a chapter prints for this comparison, from the record's own fields."""
    def num(x: float, signed: bool = False) -> str:
        text = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
        return f"{text} {unit}" if unit else text

    a, b = r.a_label, r.b_label
    how = {"t": "t-interval", "bca": "BCa bootstrap", "percentile": "percentile bootstrap"}[r.method]
    evidence = (f"{a} minus {b} on {r.metric} is {num(r.mean_difference, True)} on average over {r.n} paired seeds, "
                f"{r.confidence:.0%} CI [{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}] ({how})")
    more = (f"; about {r.seeds_needed} seeds at this spread would decide it" if r.seeds_needed is not None
            else "; the mean sits on the margin, so no number of seeds decides it at this spread")
    if r.claim == "greater":
        assert r.paper_gap is not None
        gap = num(r.paper_gap)
        if r.verdict == "reproduced":
            text = f"Reproduced: {a} beats {b}. {evidence}, above 0"
            if r.smaller_than_paper:
                text += f", but the whole interval lies below the paper's gap of {gap}: the effect is smaller"
            elif r.ci_low > r.paper_gap:
                text += f", and the whole interval lies above the paper's gap of {gap}: the effect is larger"
            else:
                text += f", consistent with the paper's gap of {gap}"
        elif r.verdict == "contradicted":
            text = (f"Contradicted: {b} beats {a}, the reverse of the paper. " if r.reversed
                    else f"Contradicted: no gain of {a} over {b} is shown. ")
            text += f"{evidence}, which rules out the paper's gap of {gap}"
        else:
            text = (f"Inconclusive: {a} vs {b}. {evidence}, which holds both 0 and the paper's gap of {gap}{more}")
    else:
        assert r.margin is not None
        band = f"±{num(r.margin)}"
        if r.verdict == "reproduced":
            text = f"Reproduced: {a} and {b} are equivalent within {band}. {evidence}, inside the margin"
        elif r.verdict == "contradicted":
            text = f"Contradicted: {a} and {b} differ by more than {band}. {evidence}, wholly outside the margin"
        else:
            text = f"Inconclusive: {a} vs {b} within {band}. {evidence}, which crosses the margin{more}"
    return replace(r, sentence=text + ".")
