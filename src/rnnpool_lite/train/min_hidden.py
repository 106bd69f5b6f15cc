"""Table 7's search: the smallest RNNPool (h1, h2) with which a probe reaches a target accuracy.

The paper sweeps h1 and h2 over powers of two and reports, per dataset, the least pair that lets
one FC layer reach 100% test accuracy. Training every pair is the expensive part, so the search
tries candidates from the smallest RNNPool up (by parameter count) and stops at the first that
reaches the target. That reads "smallest" the way Table 7 does, assuming a larger RNNPool never
does worse; the table of tried pairs shows what each one reached.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import pandas as pd
import torch
from torch.utils.data import Dataset

from rnnpool_lite.op.layer import RNNPool2d
from rnnpool_lite.train.config import TrainConfig
from rnnpool_lite.train.fit import fit
from rnnpool_lite.train.probe import RNNPoolProbe


def rnnpool_parameters(in_channels: int, h1: int, h2: int) -> int:
    """Learnable parameters of one RNNPool (FastGRNN cells) with these sizes; the search's order."""
    return sum(p.numel() for p in RNNPool2d(in_channels, h1, 2, hidden_size2=h2).parameters())


def power_of_two_pairs(low: int = 4, high: int = 32) -> list[tuple[int, int]]:
    """Every (h1, h2) with both powers of two in [low, high] and h2 >= h1 (RNN2 reads RNN1's summaries)."""
    if low < 1 or high < low or low & (low - 1) or high & (high - 1):
        raise ValueError(f"low and high must be powers of two with 1 <= low <= high, got {low}, {high}")
    sizes = [2 ** k for k in range(low.bit_length() - 1, high.bit_length())]
    return [(a, b) for a in sizes for b in sizes if b >= a]


@dataclass(frozen=True)
class HiddenSearch:
    """The smallest passing pair (``None`` when none passed) and every pair tried, in order.

    ``histories`` holds the per-epoch history of each trained pair where the search trained probes
    (:func:`search_probe`); a search over a given score function leaves it empty.
    """

    smallest: tuple[int, int] | None
    tried: pd.DataFrame  # columns h1, h2, parameters, score, passed
    histories: dict[tuple[int, int], pd.DataFrame] = field(default_factory=dict)


def smallest_hidden(candidates: Iterable[tuple[int, int]], score: Callable[[int, int], float],
                    target: float = 1.0, in_channels: int = 1) -> HiddenSearch:
    """Call ``score(h1, h2)`` for candidates, smallest RNNPool first, until one reaches ``target``.

    ``score`` trains a probe with those hidden sizes and returns its test accuracy; ties in size
    are broken by (h1, h2). Returns a :class:`HiddenSearch`.
    """
    pairs = sorted({(int(a), int(b)) for a, b in candidates},
                   key=lambda p: (rnnpool_parameters(in_channels, *p), p))
    if not pairs or any(a < 1 or b < 1 for a, b in pairs):
        raise ValueError(f"candidates must be a non-empty list of positive (h1, h2) pairs, got {pairs}")
    rows, smallest = [], None
    for h1, h2 in pairs:
        value = float(score(h1, h2))
        passed = value >= target
        rows.append({"h1": h1, "h2": h2, "parameters": rnnpool_parameters(in_channels, h1, h2),
                     "score": value, "passed": passed})
        if passed:
            smallest = (h1, h2)
            break
    return HiddenSearch(smallest, pd.DataFrame(rows, columns=["h1", "h2", "parameters", "score", "passed"]))


def search_probe(train: Dataset, val: Dataset, candidates: Iterable[tuple[int, int]], config: TrainConfig, *,
                 image_size: int, num_classes: int, with_conv: bool, target: float = 1.0) -> HiddenSearch:
    """Table 7's search on one probing set: :func:`smallest_hidden` over :class:`RNNPoolProbe` s.

    Each candidate ``(h1, h2)`` trains a probe (weights from ``config.seed``) with ``config`` (pass
    a ``MultiLabelTask`` for the multi-label sets) and scores the best epoch's validation metric:
    "reaches ``target``" is read as Table 7's "reaches 100% test accuracy" is, at the best epoch.
    """
    histories: dict[tuple[int, int], pd.DataFrame] = {}

    def score(h1: int, h2: int) -> float:
        torch.manual_seed(config.seed)
        probe = RNNPoolProbe(image_size, num_classes, h1, h2, with_conv=with_conv)
        result = fit(probe, train, val, config)
        histories[h1, h2] = result.history
        if result.best_value is None:
            raise ValueError("search_probe scores the validation metric: fit returned none")
        return float(result.best_value)

    found = smallest_hidden(candidates, score, target, RNNPoolProbe.conv_channels if with_conv else 1)
    return replace(found, histories=histories)
