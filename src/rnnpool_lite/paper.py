"""The RNNPool paper's published tables, as shipped CSV files (copied from the paper's PDF).

The book prints these next to its own numbers, so they ship with the package instead of being
read from anywhere outside it.
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

_PACKAGE = "rnnpool_lite.paper_tables"


def available_tables() -> list[str]:
    """Names accepted by :func:`paper_table` (CSV file names without ``.csv``)."""
    return sorted(p.name[:-4] for p in resources.files(_PACKAGE).iterdir() if p.name.endswith(".csv"))


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables, e.g. ``paper_table("table1_imagenet10")``."""
    names = available_tables()
    if name not in names:
        raise KeyError(f"no paper table {name!r}; available: {', '.join(names)}")
    with resources.files(_PACKAGE).joinpath(f"{name}.csv").open() as f:
        return pd.read_csv(f)
