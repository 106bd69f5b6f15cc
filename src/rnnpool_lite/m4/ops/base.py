"""The interface every integer op implements (numpy run, shapes, cost, C emission).

An op names its input and output tensors. Besides running on int8 arrays it knows its output
shapes, MACs, flash bytes and estimated cycles (for the report), its step in the generated C,
and - when it is a sliding window - its ``window`` ``(kh, kw, sh, sw, pad_top, pad_left)``, so
the patch schedule can run it on a crop (``run_window``, ``emit_c_stem``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from rnnpool_lite.m4.conversion import UnsupportedError

if TYPE_CHECKING:  # the C side imports the ops' shapes
    from rnnpool_lite.m4.c_source import CContext, Requant
    from rnnpool_lite.m4.c_stem import StemStep

Shape = tuple[int, ...]
Window = tuple[int, int, int, int, int, int]


def conv_out(size: int, k: int, s: int, p0: int, p1: int) -> int:
    """Output length of a window ``k``, stride ``s``, padding ``p0 + p1`` over ``size``."""
    return (size + p0 + p1 - k) // s + 1


@dataclass
class Op(ABC):
    """Base: ``name``, input and output tensor names, and the module it came from."""

    name: str
    inputs: list[str]
    outputs: list[str]
    module: str = ""
    #: the label of the op in reports and in the generated C
    kind: ClassVar[str] = "op"
    #: the patch schedule's stem runs up to and including the first such op (RNNPool: one output per patch)
    ends_stem: ClassVar[bool] = False
    #: the op's spatial maps are internal and its outputs are made from them (a detection head)
    internal_maps: ClassVar[bool] = False
    #: a join of model outputs that the receiver can do as the parts are sent out (``torch.cat``)
    joins_outputs: ClassVar[bool] = False

    # --- numpy -------------------------------------------------------------------------------
    @abstractmethod
    def run(self, *xs: np.ndarray) -> tuple[np.ndarray, ...]:
        """The outputs for int8 inputs ``xs`` (one per input tensor)."""

    @abstractmethod
    def out_shapes(self, *shapes: Shape) -> list[Shape]:
        """The output shapes for inputs of ``shapes``."""

    def macs(self, *shapes: Shape) -> int:
        return 0

    @property
    def flash_bytes(self) -> int:
        return 0

    @property
    def window(self) -> Window | None:
        """Sliding-window geometry, or ``None`` if the op cannot run on a spatial crop."""
        return None

    def run_window(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """The op's maps on a crop that already holds its padding (the patch schedule)."""
        raise UnsupportedError(f"{self.where} cannot run on a crop")

    def map_shapes(self, shape: Shape) -> list[Shape]:
        """Shapes of the spatial maps ``run_window`` produces (the outputs, unless internal)."""
        return self.out_shapes(shape)

    @property
    def map_name(self) -> str:
        """The name of the op's spatial result (a head's two maps share one geometry)."""
        return self.name if self.internal_maps else self.outputs[0]

    def finish(self, *maps: np.ndarray) -> tuple[np.ndarray, ...]:
        """The outputs from the whole assembled maps (only an op with ``internal_maps`` changes them)."""
        return maps

    def scratch_bytes(self, in_channels: int) -> int:
        """Arena scratch per patch in the stem (besides the crops)."""
        return 0

    @property
    def in_channels(self) -> int | None:
        """The input channels the op's weights expect (``None``: any)."""
        return None

    @property
    def where(self) -> str:
        """How errors name the op: the layer it came from and its class."""
        return f"layer {self.module or self.name!r} ({type(self).__name__})"

    # --- cost --------------------------------------------------------------------------------
    @abstractmethod
    def cycles(self, in_shape: Shape, macs: float) -> float:
        """Estimated Cortex-M4 cycles on an input of ``in_shape`` executing ``macs`` MACs."""

    # --- C -----------------------------------------------------------------------------------
    def check_c(self, shapes: dict[str, Shape], results: set[str], outputs: set[str]) -> None:
        """Refuse, naming the layer, what the C export cannot run (``results``: tensors that
        only feed the model's ``outputs``). Most ops run whatever the emulator runs."""
        return None

    @abstractmethod
    def emit_c(self, ctx: CContext) -> list[str]:
        """The body of the op's step function in model.c (whole tensors in the arena)."""

    def emit_c_stem(self, step: StemStep) -> list[str]:
        """The op's lines in the stem's patch loop, on the crop of one patch."""
        raise UnsupportedError(f"layer {self.module or self.name!r} ({self.kind}) in the stem has no C kernel")

    def output_sources(self, name: str) -> list[tuple[str, Requant | None]]:
        """The tensors sent out for output ``name`` and their requantization (a join's parts)."""
        return [(name, None)]


def check_flat_input(op: Op, shapes: dict[str, Shape]) -> None:
    """C keeps maps HWC: an op that reads its input in NCHW order (flatten, concatenation) is
    exported only when that order is the same (one channel or one position)."""
    src = shapes[op.inputs[0]]
    if len(src) == 4 and src[2] * src[3] > 1 and src[1] > 1:
        raise UnsupportedError(f"{op.where}: its input {src} is a map with several channels and positions; "
                               "C keeps maps HWC, so this NCHW flatten / concat is not exported")


__all__ = ["Op", "Shape", "Window", "check_flat_input", "conv_out"]
