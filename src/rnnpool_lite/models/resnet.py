"""ResNet18 and ResNet18-RNNPool (paper Table 1).

Rows ``[c, n, s]`` of ``BasicBlock`` stages, built in one loop. The RNNPool variant (Table 9:
h1 = h2 = 32, patch 8, stride 4) replaces the max pool and the first stage: 112x112x64 -> RNNPool
-> 28x28x128, then the remaining stages from c128 on, the first of them at stride 1 (the
RNNPool already brought the map to stride 8).
"""
from __future__ import annotations

from torch import Tensor, nn

from ..layer import RNNPool2d
from .blocks import ConvBNAct

#: ResNet18 stages [c, n, s] (He et al.).
RESNET18_ROWS: list[tuple[int, int, int]] = [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 strided conv-BN) skip, then ReLU."""

    #: RAM convention (Appendix E): max(input, output) for a residual block.
    memory_rule = "max"

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 3, stride, activation=nn.ReLU)
        self.conv2 = ConvBNAct(out_channels, out_channels, 3, 1, activation=None)
        self.downsample = (ConvBNAct(in_channels, out_channels, 1, stride, activation=None)
                           if stride != 1 or in_channels != out_channels else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.downsample(x))


class ResNet(nn.Module):
    """Stem -> BasicBlock stages -> global average pool -> linear classifier."""

    def __init__(self, stem: list[nn.Module], rows: list[tuple[int, int, int]], in_channels: int,
                 num_classes: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for c, n, s in rows:
            for i in range(n):
                blocks.append(BasicBlock(in_channels, c, s if i == 0 else 1))
                in_channels = c
        self.features = nn.Sequential(*stem, *blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


def _stem() -> list[nn.Module]:
    return [ConvBNAct(3, 64, 7, 2, activation=nn.ReLU)]


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet18: conv 7x7 c64 s2 -> max pool 3x3 s2 -> BasicBlock rows -> avgpool -> FC."""
    return ResNet(_stem() + [nn.MaxPool2d(3, 2, 1)], RESNET18_ROWS, 64, num_classes)


def resnet18_rnnpool(num_classes: int = 1000, hidden: int = 32, patch: int = 8) -> ResNet:
    """ResNet18-RNNPool: conv 7x7 s2 -> RNNPool(patch 8, stride 4, h 32) -> rows from c128 on."""
    pool = RNNPool2d(64, hidden, patch, 4, padding=(patch - 4) // 2)
    rows = [(c, n, 1 if i == 0 else s) for i, (c, n, s) in enumerate(RESNET18_ROWS[1:])]
    return ResNet(_stem() + [pool], rows, pool.out_channels, num_classes)


__all__ = ["BasicBlock", "RESNET18_ROWS", "ResNet", "resnet18", "resnet18_rnnpool"]
