"""pareto_front: keeps exactly the non-dominated rows, sorted by cost."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnpool_lite.accounting.pareto import pareto_front


def test_front_of_a_small_table() -> None:
    points = pd.DataFrame({"ram": [10, 20, 30, 40, 25], "acc": [0.6, 0.8, 0.7, 0.9, 0.8]},
                          index=list("abcde"))
    front = pareto_front(points, "ram", "acc")
    assert list(front.index) == ["a", "b", "d"]  # c costs more than b for less; e ties b's accuracy at more RAM


def test_missing_column_and_nan() -> None:
    with pytest.raises(KeyError, match="madds"):
        pareto_front(pd.DataFrame({"ram": [1]}), "madds", "ram")
    front = pareto_front(pd.DataFrame({"ram": [1.0, None, 3.0], "acc": [0.5, 0.99, 0.7]}), "ram", "acc")
    assert list(front["acc"]) == [0.5, 0.7]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=25))
def test_front_is_exactly_the_undominated_rows(pairs: list[tuple[int, int]]) -> None:
    points = pd.DataFrame(pairs, columns=["cost", "value"])
    front = pareto_front(points, "cost", "value")

    def dominated(c: int, v: int) -> bool:
        return any(c2 <= c and v2 >= v and (c2, v2) != (c, v) for c2, v2 in pairs)

    undominated = {(c, v) for c, v in pairs if not dominated(c, v)}
    assert set(map(tuple, front[["cost", "value"]].to_numpy().tolist())) == undominated
    assert len(front) == len(undominated)  # one row per distinct undominated point
    assert front["cost"].is_monotonic_increasing and front["value"].is_monotonic_increasing
