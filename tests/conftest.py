"""Shared test settings: deterministic, few threads (CI has 2 cores), hypothesis profile."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

import rnnpool_lite
from rnnpool_lite.repro.edgeml import load_vww_trace
from rnnpool_lite.train.runtime import keep_freed_memory

# tests/data holds notebooks that tests execute with their own parameters (tests/test_replay.py);
# they carry no saved outputs for nbval to check
collect_ignore = ["data"]

settings.register_profile("rnnpool", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("rnnpool")

# glibc gives freed memory back to the OS; after the model-building tests (bounds, comparison)
# the float64 gradchecks then page-fault on every allocation: measured 115 s instead of 2.5 s
# for one gradcheck in a full run. The package's documented remedy, applied to the test process.
keep_freed_memory()


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def edgeml_trace() -> dict:
    """The authors' C-reference trace of one VWW RNNPool patch, as the package ships it."""
    return load_vww_trace()


@pytest.fixture
def kernel_sees_this_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook kernels started by papermill import this checkout's package, not another install."""
    src = str(Path(rnnpool_lite.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
