"""The Pareto front of a cost / accuracy table: the settings no other setting beats on both.

Figure 3 of the paper draws each model as a line through its resolutions; the useful part of such
a line is its Pareto front (a larger input that costs more and is *less* accurate is never worth
running). Chapter 10 draws it for our trained points and for the paper's.
"""
from __future__ import annotations

import pandas as pd


def pareto_front(points: pd.DataFrame, cost: str, value: str) -> pd.DataFrame:
    """Rows of ``points`` not dominated on (low ``cost``, high ``value``), sorted by ``cost``.

    A row is dominated when another row costs no more and scores at least as much, and is strictly
    better on one of the two. Among exact ties (same cost and value) the first row is kept. Rows
    with a missing cost or value are ignored.
    """
    missing = [c for c in (cost, value) if c not in points.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the table (has {list(points.columns)})")
    table = points.dropna(subset=[cost, value])
    # by cost ascending, then value descending: a row is on the front iff its value beats every
    # value seen before it (all of which cost no more)
    ordered = table.sort_values([cost, value], ascending=[True, False], kind="stable")
    keep, best = [], float("-inf")
    for index, v in zip(ordered.index, ordered[value]):
        if v > best:
            keep.append(index)
            best = v
    return ordered.loc[keep]
