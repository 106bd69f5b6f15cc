"""Roles a model block declares so that a backend recognises it without importing the model zoo.

The int8 emulator (:mod:`rnnpool_lite.m4`) treats a few blocks specially: a detection head is
converted as one op (its two convolutions tiled together), and an inverted residual block is
run row by row through a ring buffer. It finds them by these base classes, through its converter
table, so that ``m4`` never imports ``models`` and ``models`` never imports ``m4``: both import
this module. A block opts in by inheriting the role; a block that merely looks alike (an
EfficientNet MBConv with squeeze-excite also has a ``use_residual``) is not mistaken for one.
"""
from __future__ import annotations

from torch import nn


class DetectionHeadRole(nn.Module):
    """Two convolutions on one feature map, box offsets ``loc`` and class scores ``conf``; the
    first ``maxout_background`` channels of ``conf`` are background scores reduced by a maximum."""

    loc: nn.Conv2d
    conf: nn.Conv2d
    maxout_background: int


class InvertedResidualRole(nn.Module):
    """An optional 1x1 expansion, a depthwise convolution and a 1x1 projection (plus the block's
    input when ``use_residual``), whose expanded map a backend may compute a few rows at a time."""

    use_residual: bool


__all__ = ["DetectionHeadRole", "InvertedResidualRole"]
