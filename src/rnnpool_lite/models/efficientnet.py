"""EfficientNet-B0 and EfficientNet-B0-RNNPool (paper Table 1, Table 9).

Rows ``[t, k, c, n, s]`` (expansion, depthwise kernel, channels, repeats, first stride) of
MBConv blocks with squeeze-and-excitation, built in one loop (Tan & Le 2019, Table 1 there).
SiLU ("swish") activations. The SE convolutions act on the pooled 1x1 vector (they are fully
connected layers with biases, as in the reference model) and have no BatchNorm; every conv on a
feature map is followed by BatchNorm.

EfficientNet-B0-RNNPool (Table 9: patch 6, h1 = h2 = 16): conv 3x3 c32 s2 -> RNNPool
(112x112x32 -> 28x28x64) -> the rows from c80 on, so the block after the RNNPool maps
28x28x64 to 14x14x80 (Appendix E.2.2).
"""
from __future__ import annotations

from torch import Tensor, nn

from rnnpool_lite.models.blocks import ConvBNAct, MemoryRule, check_num_classes
from rnnpool_lite.op.layer import RNNPool2d

#: EfficientNet-B0 MBConv rows [t, k, c, n, s].
EFFICIENTNET_B0_ROWS: list[tuple[int, int, int, int, int]] = [
    (1, 3, 16, 1, 1),
    (6, 3, 24, 2, 2),
    (6, 5, 40, 2, 2),
    (6, 3, 80, 3, 2),
    (6, 5, 112, 3, 1),
    (6, 5, 192, 4, 2),
    (6, 3, 320, 1, 1),
]
#: Rows kept after the RNNPool (it replaces the c16, c24 and c40 rows).
EFFICIENTNET_B0_RNNPOOL_ROWS = EFFICIENTNET_B0_ROWS[3:]


class SqueezeExcite(nn.Module):
    """Global average pool -> FC (1x1 conv) reduce -> SiLU -> FC expand -> sigmoid -> rescale."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.SiLU(inplace=True)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBConvSE(nn.Module):
    """MBConv with SE: 1x1 expand (t) -> k x k depthwise (stride) -> SE (in / 4) -> 1x1 project."""

    #: RAM convention: input + output, the expanded map computed channel by channel (Appendix E).
    memory_rule = MemoryRule.IN_OUT

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, activation=nn.SiLU))
        layers += [ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, activation=nn.SiLU),
                   SqueezeExcite(hidden, max(1, in_channels // 4)),
                   ConvBNAct(hidden, out_channels, 1, activation=None)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class EfficientNet(nn.Module):
    """Stem -> MBConvSE rows -> conv 1x1 c1280 -> global average pool -> dropout -> FC."""

    def __init__(self, stem: list[nn.Module], in_channels: int, rows: list[tuple[int, int, int, int, int]],
                 num_classes: int, last_channels: int = 1280, dropout: float = 0.2) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for t, k, c, n, s in rows:
            for i in range(n):
                blocks.append(MBConvSE(in_channels, c, k, s if i == 0 else 1, t))
                in_channels = c
        self.features = nn.Sequential(*stem, *blocks, ConvBNAct(in_channels, last_channels, 1, activation=nn.SiLU))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _stem() -> list[nn.Module]:
    return [ConvBNAct(3, 32, 3, 2, activation=nn.SiLU)]


def efficientnet_b0(num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B0 (5.29M parameters at 1000 classes, 4.02M at 10)."""
    check_num_classes(num_classes)
    return EfficientNet(_stem(), 32, EFFICIENTNET_B0_ROWS, num_classes)


def efficientnet_b0_rnnpool(num_classes: int = 1000, *, hidden: int = 16, patch: int = 6) -> EfficientNet:
    """EfficientNet-B0-RNNPool: conv 3x3 c32 s2 -> RNNPool(patch 6, stride 4, h 16) -> rows from c80."""
    check_num_classes(num_classes)
    pool = RNNPool2d(32, hidden, patch, 4, padding=2)
    return EfficientNet(_stem() + [pool], pool.out_channels, EFFICIENTNET_B0_RNNPOOL_ROWS, num_classes)


__all__ = ["EFFICIENTNET_B0_ROWS", "EFFICIENTNET_B0_RNNPOOL_ROWS", "EfficientNet", "MBConvSE", "SqueezeExcite",
           "efficientnet_b0", "efficientnet_b0_rnnpool"]
