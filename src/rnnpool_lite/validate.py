"""Checks for a chapter's papermill parameters, run in its first cells.

A reader who reruns a chapter with ``-p image_size 0`` or a mistyped model name should get one
sentence that names the parameter, not a traceback from deep inside torch twenty cells later.
Each check raises :class:`ParameterError` (a ``ValueError``) whose message starts with the
parameter's name.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any


class ParameterError(ValueError):
    """A chapter parameter has a value the chapter cannot run with."""


def _fail(name: str, value: Any, expected: str) -> None:
    raise ParameterError(f"parameter {name}={value!r}: expected {expected}")


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, value, f"an integer >= {minimum}")
    return value


def positive_float(name: str, value: Any, allow_zero: bool = False) -> float:
    """A real number > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        _fail(name, value, "a number")
    if value < 0 or (value == 0 and not allow_zero):
        _fail(name, value, "a number >= 0" if allow_zero else "a number > 0")
    return float(value)


def fraction(name: str, value: Any) -> float:
    """A number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        _fail(name, value, "a number between 0 and 1")
    return float(value)


def one_of(name: str, value: Any, choices: Collection[Any]) -> Any:
    """One of ``choices``."""
    if value not in choices:
        _fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def all_of(name: str, values: Any, choices: Collection[Any]) -> list[Any]:
    """A non-empty list whose every item is one of ``choices``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        _fail(name, values, "a list with items from " + ", ".join(repr(c) for c in choices))
    values = list(values)
    bad = [v for v in values if v not in choices]
    if not values or bad:
        _fail(name, values, "a non-empty list with items from " + ", ".join(repr(c) for c in choices))
    return values


def seeds(name: str, value: Any, minimum: int = 1) -> list[int]:
    """A list of at least ``minimum`` distinct non-negative integer seeds."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        _fail(name, value, f"a list of at least {minimum} distinct non-negative integers")
    value = list(value)
    if (len(value) < minimum or len(set(value)) != len(value)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value)):
        _fail(name, value, f"a list of at least {minimum} distinct non-negative integers")
    return value


def existing_dir(name: str, value: Any, optional: bool = True) -> Path | None:
    """A folder that exists (``None`` allowed when ``optional``: the chapter then uses shipped data)."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, Path)) or not Path(value).expanduser().is_dir():
        _fail(name, value, "a folder that exists" + (" (or None for the shipped data)" if optional else ""))
    return Path(value).expanduser()


def device(name: str, value: Any) -> str | None:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``, available on this machine; ``None`` (pick one) passes."""
    import torch

    if value is None:
        return None
    if not isinstance(value, str):
        _fail(name, value, 'a device name such as "cpu" or "cuda"')
    try:
        dev = torch.device(value)
    except RuntimeError:
        _fail(name, value, 'a device name such as "cpu" or "cuda"')
    if dev.type == "cuda" and not torch.cuda.is_available():
        _fail(name, value, '"cpu" on this machine (torch sees no CUDA device)')
    if dev.type == "mps" and not torch.backends.mps.is_available():
        _fail(name, value, '"cpu" on this machine (torch sees no MPS device)')
    if dev.type not in ("cpu", "cuda", "mps"):
        _fail(name, value, '"cpu", "cuda" or "mps"')
    return value
