"""DenseNet121 and DenseNet121-RNNPool (paper Table 1, Table 2, Figure 2, Appendix F.1.3).

Rows ``(dense layers, channels after the transition)`` built in one loop (Huang et al.: growth
32, bottleneck width 4 x 32, transitions halve the channels). Layers are pre-activation
(BatchNorm -> ReLU -> conv) as in the reference DenseNet, so every conv's output is normalised by
the next BatchNorm and the parameter count is the reference one (6.96M at 10 classes).

DenseNet121-RNNPool (Figure 2, Table 9: patch 8, h1 = h2 = 48): one RNNPool replaces P1, D1, T1
and D2 (112x112x64 -> 28x28x192); T2 (now 192 -> 256 channels), D3, T3 and D4 are kept, so D3's
output is 14x14x1024 as in Appendix E.2.2. ``replace_intermediate_pools=True`` also replaces the
2x2 average pools of T2 and T3 by RNNPools (patch 4, stride 2, h = channels / 4, F.1.3).

The paper is not consistent about the RNNPool's width: Table 9 (h1 = h2 = 48, so 192 channels) and
Table 2's strided-conv and ReNet rows (6.38M / 6.41M parameters, which need a 192-channel output)
against Figure 2's 28x28x128 and Section 4's 0.43 MB for the model with D3/D4 trimmed (which fits
a 128-channel map). We follow Tables 9 and 2.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnpool_lite.models.blocks import ConvBNAct, LastPool, MemoryRule, check_num_classes, last_pool_layer
from rnnpool_lite.models.downsample import Downsampler
from rnnpool_lite.models.downsample import downsampler as make_downsampler
from rnnpool_lite.op.layer import RNNPool2d

#: DenseNet121 rows: (dense layers, output channels of the transition after them; 0 = none).
DENSENET121_ROWS: list[tuple[int, int]] = [(6, 128), (12, 256), (24, 512), (16, 0)]
GROWTH, BOTTLENECK = 32, 4


class DenseLayer(nn.Module):
    """BN-ReLU-conv 1x1 (4 k) -> BN-ReLU-conv 3x3 (k); its output is concatenated to its input."""

    def __init__(self, in_channels: int, growth: int = GROWTH, bottleneck: int = BOTTLENECK) -> None:
        super().__init__()
        width = bottleneck * growth
        self.layers = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True), nn.Conv2d(in_channels, width, 1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.Conv2d(width, growth, 3, padding=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


class DenseBlock(nn.Sequential):
    """``n`` dense layers; output channels = input + ``n * growth``."""

    #: RAM convention (Appendix E.2.1): the block's output, which holds its input and every
    #: layer's output, is the peak.
    memory_rule = MemoryRule.OUT

    def __init__(self, in_channels: int, n: int, growth: int = GROWTH) -> None:
        super().__init__(*[DenseLayer(in_channels + i * growth, growth) for i in range(n)])
        self.out_channels = in_channels + n * growth


class Transition(nn.Sequential):
    """BN-ReLU-conv 1x1 -> 2x2 average pool (or an RNNPool with patch 4, stride 2, h = c / 4)."""

    #: RAM convention: max(input, output). The 1x1 conv is computed on the fly into the pool, and a
    #: pooled output row needs only two input rows, so it overwrites input rows already consumed
    #: (the rule the profiler uses for local pooling).
    memory_rule = MemoryRule.MAX

    def __init__(self, in_channels: int, out_channels: int, rnnpool: bool = False) -> None:
        pool: nn.Module = (RNNPool2d(out_channels, out_channels // 4, 4, 2, padding=1) if rnnpool
                           else nn.AvgPool2d(2, 2))
        super().__init__(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, 1, bias=False), pool)
        self.out_channels = out_channels


class DenseNet(nn.Module):
    """Stem -> dense blocks and transitions -> BN-ReLU -> global pool -> linear classifier."""

    def __init__(self, stem: list[nn.Module], stem_channels: int, rows: list[tuple[int, int]],
                 num_classes: int, pool: LastPool | str = LastPool.AVG, rnnpool_transitions: bool = False,
                 image_size: int = 224) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = stem_channels
        for n, transition in rows:
            if n:
                dense = DenseBlock(channels, n)
                blocks.append(dense)
                channels = dense.out_channels
            if transition:
                blocks.append(Transition(channels, transition, rnnpool_transitions))
                channels = transition
        self.features = nn.Sequential(*stem, *blocks, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.pool = last_pool_layer(pool, channels=channels, size=image_size // 32)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(getattr(self.pool, "out_channels", channels), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _stem() -> list[nn.Module]:
    return [ConvBNAct(3, 64, 7, 2, activation=nn.ReLU)]


def densenet121(num_classes: int = 1000, *, last_pool: LastPool | str = LastPool.AVG,
                image_size: int = 224) -> DenseNet:
    """DenseNet121: conv 7x7 c64 s2 -> max pool 3x3 s2 -> D1 T1 D2 T2 D3 T3 D4 -> pool -> FC.

    ``last_pool="rnnpool"`` replaces the final average pool (Table 2 row 2: h = 1024 / 4).
    """
    check_num_classes(num_classes)
    return DenseNet(_stem() + [nn.MaxPool2d(3, 2, 1)], 64, DENSENET121_ROWS, num_classes, last_pool,
                    image_size=image_size)


def densenet121_rnnpool(num_classes: int = 1000, *, hidden: int = 48, patch: int = 8,
                        replace_intermediate_pools: bool = False, last_pool: LastPool | str = LastPool.AVG,
                        downsampler: Downsampler | str = Downsampler.RNNPOOL, image_size: int = 224,
                        dense_layers: tuple[int, int] = (24, 16)) -> DenseNet:
    """DenseNet121-RNNPool: conv 7x7 s2 -> RNNPool(patch 8, stride 4, h 48) -> T2 D3 T3 D4.

    ``downsampler`` swaps the RNNPool for the other operators of Table 2 (T2 then reads their
    channel count); ``replace_intermediate_pools`` replaces T2's and T3's pools by RNNPools, and
    with ``last_pool="rnnpool"`` all three remaining pools are RNNPools (Section 4).
    ``dense_layers`` are the layers of D3 and D4; Section 4's smaller model drops 14 and 10 of
    them: ``(10, 6)``. T3 keeps halving the channels of D3's output (F.1.3).
    """
    check_num_classes(num_classes)
    d3, d4 = dense_layers
    if not (isinstance(d3, int) and isinstance(d4, int) and d3 >= 1 and d4 >= 1):
        raise ValueError(f"dense_layers must be two positive ints, got {dense_layers!r}")
    pool, channels = make_downsampler(downsampler, in_channels=64, hidden=hidden, patch=patch)
    t2 = DENSENET121_ROWS[1][1]
    rows = [(0, t2), (d3, (t2 + d3 * GROWTH) // 2), (d4, 0)]  # T2 of the replaced D2, then D3 T3 D4
    return DenseNet(_stem() + [pool], channels, rows, num_classes, last_pool, replace_intermediate_pools,
                    image_size)


__all__ = ["DENSENET121_ROWS", "DenseBlock", "DenseLayer", "DenseNet", "Transition", "densenet121",
           "densenet121_rnnpool"]
