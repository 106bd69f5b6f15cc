from __future__ import annotations

import ctypes.util

import pytest

from rnnpool_lite.train.runtime import keep_freed_memory


def test_keep_freed_memory_applies_on_glibc():
    applied = keep_freed_memory(64 << 20)
    assert isinstance(applied, bool)
    if ctypes.util.find_library("c") and "libc.so.6" in ctypes.util.find_library("c"):
        assert applied


def test_keep_freed_memory_rejects_non_positive_limit():
    with pytest.raises(ValueError, match="positive"):
        keep_freed_memory(0)
