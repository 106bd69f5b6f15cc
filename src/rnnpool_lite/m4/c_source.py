"""Pieces of the generated ``model.c``: constant arrays, structs filled by field name, and the
context an op's C emission reads (tensor shapes, arena offsets, which tensors go out).

Every struct is written with C99 designated initializers (``.weights = ...``) so that a field
reordered in ``rnn_kernels.h`` cannot be silently filled with another field's value.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

import numpy as np

CValue = Union[int, str, "Mapping[str, CValue]"]
C_TYPE_BYTES = {"int8_t": 1, "int16_t": 2, "int32_t": 4}


def ident(name: str) -> str:
    """A C identifier for a tensor or layer name."""
    out = "".join(ch if ch.isalnum() else "_" for ch in name)
    return out if out and not out[0].isdigit() else "t_" + out


def c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    if not flat:
        flat = [0]
    lines = [", ".join(str(v) for v in flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] = {{\n    {body}\n}};\n"


def c_init(fields: Mapping[str, CValue]) -> str:
    """A designated initializer ``{.a = 1, .b = {.c = 2}}`` (nested mappings are nested structs)."""
    return "{" + ", ".join(f".{k} = {c_init(v) if isinstance(v, Mapping) else v}" for k, v in fields.items()) + "}"


def window(data: str, h: CValue, w: CValue, c: CValue, *, row0: CValue = 0, col0: CValue = 0,
           map_h: CValue | None = None, map_w: CValue | None = None, zp: CValue = 0) -> str:
    """An ``rnn_view`` / ``rnn_region`` initializer: a buffer of ``h x w x c`` holding the rows and
    columns from ``(row0, col0)`` of a ``map_h x map_w`` map (the whole map by default)."""
    return c_init(dict(data=data, h=h, w=w, c=c, row0=row0, col0=col0, map_h=h if map_h is None else map_h,
                       map_w=w if map_w is None else map_w, zp=zp))


def hwc_bytes(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


class CWriter:
    """The flash part of model.c: weight arrays, parameter structs, and the step functions."""

    def __init__(self) -> None:
        self.weights: list[str] = []
        self.params: list[str] = []
        self.functions: list[str] = []
        self.weight_bytes = 0
        self.names: set[str] = set()

    def array(self, ctype: str, name: str, values: np.ndarray, comment: str = "") -> str:
        """A ``static const`` array; returns its C name."""
        name = ident(name)
        if name in self.names:
            raise AssertionError(f"C array {name!r} written twice")
        self.names.add(name)
        values = np.asarray(values)
        self.weight_bytes += values.size * C_TYPE_BYTES[ctype]
        self.weights.append((f"/* {comment} */\n" if comment else "") + c_array(ctype, name, values))
        return name

    def struct(self, ctype: str, name: str, fields: Mapping[str, CValue]) -> str:
        """A ``static const`` struct filled by field name; returns its C name."""
        self.params.append(f"static const {ctype} {name} = {c_init(fields)};\n")
        return name

    def ints(self, name: str, values: list[int]) -> str:
        name = ident(name)
        self.names.add(name)
        body = ", ".join(str(int(v)) for v in values)
        self.params.append(f"static const int32_t {name}[{len(values)}] = {{{body}}};\n")
        return name


Requant = dict[str, int]  # in_zp, mult, shift, out_zp: one part of a concatenated output


@dataclass
class CContext:
    """What an op's C emission needs: shapes, arena offsets, zero points, the outputs' records.

    ``sends`` maps a tensor to its output record ``(output id, base byte offset, requantization)``:
    the tensors the program hands out as they are produced (the model's outputs, or the parts of a
    concatenated output). ``sent`` collects those already handed out by the step being written.
    """

    input_name: str
    shapes: dict[str, tuple[int, ...]]
    buffers: dict[str, tuple[int, int]]  # planner buffer -> (offset, bytes)
    sends: dict[str, tuple[int, int, Requant | None]]
    zp: dict[str, int]
    count_input: bool
    writer: CWriter = field(default_factory=CWriter)
    sent: set[str] = field(default_factory=set)

    def buf(self, name: str) -> str:
        """Pointer to a planner buffer in the arena."""
        return f"(arena + {self.buffers[name][0]})"

    def hwc(self, t: str) -> tuple[int, int, int]:
        s = self.shapes[t]
        if len(s) == 4:
            return s[2], s[3], s[1]
        return 1, 1, int(np.prod(s[1:]))

    def nbytes(self, t: str) -> int:
        return hwc_bytes(self.shapes[t])

    def whole(self, t: str) -> str:
        """Pointer to a whole tensor: the arena, or the flash frame for a streamed input."""
        if t == self.input_name and not self.count_input:
            return "rnn_frame"
        return self.buf(t)

    def view(self, t: str) -> str:
        """An ``rnn_view`` initializer on the whole tensor."""
        h, w, c = self.hwc(t)
        return window(self.whole(t), h, w, c, zp=self.zp[t])

    def send(self, t: str, ptr: str, nbytes: str, offset: str = "0", indent: str = "    ") -> list[str]:
        """Hand ``nbytes`` of tensor ``t`` at ``ptr`` out (requantized first for a concatenation)."""
        k, base, rq = self.sends[t]
        self.sent.add(t)
        lines = []
        if rq is not None:
            lines.append(f"{indent}rnn_requantize({ptr}, {nbytes}, {rq['in_zp']}, {rq['mult']}, {rq['shift']}, "
                         f"{rq['out_zp']}); /* to the concatenation's quantization */")
        lines.append(f"{indent}rnn_io_emit({k}, {base} + {offset}, {ptr}, {nbytes});")
        return lines


__all__ = ["CContext", "CValue", "CWriter", "Requant", "c_array", "c_init", "hwc_bytes", "ident", "window"]
