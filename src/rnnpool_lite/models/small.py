"""A small RNNPool classifier that trains in seconds: the int8 emulator's tests' and chapter 6's model."""
from __future__ import annotations

from torch import nn

from rnnpool_lite.models.blocks import ConvBNAct, InvertedResidual
from rnnpool_lite.op.layer import RNNPool2d


def small_rnnpool_classifier(in_channels: int = 1, num_classes: int = 9, width: int = 8,
                             hidden: int = 8) -> nn.Sequential:
    """conv 3x3 + BN + ReLU -> RNNPool(patch 4, stride 4, quant activations) -> conv s2 -> MBConv
    -> global average pool -> linear: every kind of op the emulator supports, for 32x32 inputs."""
    return nn.Sequential(
        ConvBNAct(in_channels, width, 3, 1, activation=nn.ReLU),
        RNNPool2d(width, hidden, 4, 4, piecewise_linear=True),
        ConvBNAct(4 * hidden, 2 * width, 3, 2, activation=nn.ReLU6),
        InvertedResidual(2 * width, 2 * width, 1, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(2 * width, num_classes),
    )


__all__ = ["small_rnnpool_classifier"]
