"""Argument checks shared by the layer, ``TrainConfig`` and the chapters' papermill parameters.

A reader who reruns a chapter with ``-p image_size 0`` or builds ``RNNPool2d(3, 0, 2)`` should get
one sentence that names the argument, not a traceback from deep inside torch. Every check takes
``(name, value, *, options)`` and raises :class:`ParameterError` (a ``ValueError``) whose message
starts with ``parameter <name>=<value>``; a value of the wrong type (a float where an int is
needed) raises :class:`ParameterTypeError`, which is also a ``TypeError`` as Python's own checks are.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from numbers import Integral, Real
from pathlib import Path
from typing import Any, NoReturn


class ParameterError(ValueError):
    """An argument or chapter parameter has a value the code cannot run with."""


class ParameterTypeError(ParameterError, TypeError):
    """An argument or chapter parameter has the wrong type."""


def fail(name: str, value: Any, expected: str, error: type[ParameterError] = ParameterError) -> NoReturn:
    """Raise ``error`` saying that ``name`` has ``value`` where ``expected`` was needed."""
    raise error(f"parameter {name}={value!r}: expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (NumPy integers pass; bools and floats are refused)."""
    if not _is_int(value):
        fail(name, value, f"an integer >= {minimum}", ParameterTypeError)
    if value < minimum:
        fail(name, value, f"an integer >= {minimum}")
    return int(value)


def pair(name: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    """An integer or an ``(h, w)`` pair of integers, each >= ``minimum``, as ``(h, w)``."""
    expected = f"an integer or a pair (h, w) of integers >= {minimum}"
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        fail(name, value, expected)
    if not all(_is_int(v) for v in items):
        fail(name, value, expected, ParameterTypeError)
    if min(items) < minimum:
        fail(name, value, expected)
    return int(items[0]), int(items[1])


def positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A real number > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        fail(name, value, "a number", ParameterTypeError)
    if value != value:
        fail(name, value, "a number")
    if value < 0 or (value == 0 and not allow_zero):
        fail(name, value, "a number >= 0" if allow_zero else "a number > 0")
    return float(value)


def fraction(name: str, value: Any, *, include_one: bool = True) -> float:
    """A number in [0, 1] (in [0, 1) without ``include_one``)."""
    expected = "a number between 0 and 1" + ("" if include_one else ", below 1")
    if isinstance(value, bool) or not isinstance(value, Real):
        fail(name, value, expected, ParameterTypeError)
    value = float(value)
    if not 0 <= value <= 1 or (value == 1 and not include_one):
        fail(name, value, expected)
    return float(value)


def one_of(name: str, value: Any, choices: Collection[Any]) -> Any:
    """One of ``choices``."""
    if value not in choices:
        fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def all_of(name: str, values: Any, choices: Collection[Any]) -> list[Any]:
    """A non-empty list whose every item is one of ``choices``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        fail(name, values, "a list with items from " + ", ".join(repr(c) for c in choices))
    values = list(values)
    bad = [v for v in values if v not in choices]
    if not values or bad:
        fail(name, values, "a non-empty list with items from " + ", ".join(repr(c) for c in choices))
    return values


def seeds(name: str, value: Any, *, minimum: int = 1) -> list[int]:
    """A list of at least ``minimum`` distinct non-negative integer seeds."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        fail(name, value, f"a list of at least {minimum} distinct non-negative integers")
    value = list(value)
    if (len(value) < minimum or len(set(value)) != len(value)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value)):
        fail(name, value, f"a list of at least {minimum} distinct non-negative integers")
    return value


def existing_dir(name: str, value: Any, *, optional: bool = True) -> Path | None:
    """A folder that exists (``None`` allowed when ``optional``: the chapter then uses shipped data)."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, Path)) or not Path(value).expanduser().is_dir():
        fail(name, value, "a folder that exists" + (" (or None for the shipped data)" if optional else ""))
    return Path(value).expanduser()


def device(name: str, value: Any) -> str | None:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``, available on this machine; ``None`` (pick one) passes."""
    import torch

    if value is None:
        return None
    if not isinstance(value, str):
        fail(name, value, 'a device name such as "cpu" or "cuda"')
    try:
        dev = torch.device(value)
    except RuntimeError:
        fail(name, value, 'a device name such as "cpu" or "cuda"')
    if dev.type == "cuda" and not torch.cuda.is_available():
        fail(name, value, '"cpu" on this machine (torch sees no CUDA device)')
    if dev.type == "mps" and not torch.backends.mps.is_available():
        fail(name, value, '"cpu" on this machine (torch sees no MPS device)')
    if dev.type not in ("cpu", "cuda", "mps"):
        fail(name, value, '"cpu", "cuda" or "mps"')
    return value
