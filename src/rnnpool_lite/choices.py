"""Typed vocabularies: string options whose misspelling fails where it is written, naming the choices.

An option such as a model's downsampler is a :class:`Choice` (a ``StrEnum``): members compare equal
to their strings, so callers and notebooks may pass ``"renet"``; the builder converts with
``Downsampler(value)``, which raises ``ValueError: 'renet2' is not a Downsampler; choose one of
'rnnpool', 'avg', ...`` instead of silently falling back to a default.
"""
from __future__ import annotations

from enum import StrEnum


class Choice(StrEnum):
    """A ``StrEnum`` whose lookup by an unknown value names every choice."""

    @classmethod
    def _missing_(cls, value: object) -> Choice:
        choices = ", ".join(repr(member.value) for member in cls)
        raise ValueError(f"{value!r} is not a {cls.__name__}; choose one of {choices}")


__all__ = ["Choice"]
