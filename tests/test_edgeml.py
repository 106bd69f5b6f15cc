"""The authors' trace that ships in the package: it is the project's shared fixture, and it reproduces."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnpool_lite.repro.edgeml import load_vww_trace, trace_layer_and_input

SHARED_TRACE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "edgeml_vww_rnnpool_trace.json"


def test_shipped_trace_is_the_shared_fixture() -> None:
    if not SHARED_TRACE.exists():
        pytest.skip(f"{SHARED_TRACE} is missing: the project's shared fixtures are not beside this checkout")
    assert load_vww_trace() == json.loads(SHARED_TRACE.read_text())


def test_shipped_trace_reproduces() -> None:
    layer, x, expected = trace_layer_and_input(load_vww_trace())
    assert (layer(x).flatten() - expected).abs().max() < 1e-5
