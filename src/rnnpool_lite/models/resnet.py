"""ResNet18 and ResNet18-RNNPool (paper Table 1).

Rows ``[c, n, s]`` of ``BasicBlock`` stages, built in one loop. The RNNPool variant (Table 9:
h1 = h2 = 32, patch 8, stride 4) replaces the max pool, conv2_x and conv3_x: 112x112x64 -> RNNPool
-> 28x28x128 -> conv4_x -> conv5_x. Appendix E.2.2 says so: the block "just after RNNPool" is
"the first residual block of conv4_x", 28x28x128 in, 14x14x256 out. The conv MAdds then add up
to the paper's 0.95G (0.94G without the RNNPool) and the parameters to its 10.6M.
"""
from __future__ import annotations

from torch import Tensor, nn

from rnnpool_lite.models.blocks import ConvBNAct, MemoryRule, check_num_classes, repeat_rows
from rnnpool_lite.op.layer import RNNPool2d

#: ResNet18 stages [c, n, s] (He et al.).
RESNET18_ROWS: list[tuple[int, int, int]] = [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 strided conv-BN) skip, then ReLU."""

    #: RAM convention (Appendix E): max(input, output) for a residual block.
    memory_rule = MemoryRule.MAX

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
        blocks, in_channels = repeat_rows(BasicBlock, in_channels, rows)
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
    check_num_classes(num_classes)
    return ResNet(_stem() + [nn.MaxPool2d(3, 2, 1)], RESNET18_ROWS, 64, num_classes)


def resnet18_rnnpool(num_classes: int = 1000, *, hidden: int = 32, patch: int = 8) -> ResNet:
    """ResNet18-RNNPool: conv 7x7 s2 -> RNNPool(patch 8, stride 4, h 32) -> conv4_x, conv5_x."""
    check_num_classes(num_classes)
    pool = RNNPool2d(64, hidden, patch, 4, padding=(patch - 4) // 2)
    return ResNet(_stem() + [pool], RESNET18_ROWS[2:], pool.out_channels, num_classes)


__all__ = ["BasicBlock", "RESNET18_ROWS", "ResNet", "resnet18", "resnet18_rnnpool"]
