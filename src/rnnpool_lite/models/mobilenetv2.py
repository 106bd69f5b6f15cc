"""MobileNetV2 and MobileNetV2-RNNPool (paper Table 10, Table 2 family, VWW 0.35x models).

Each model reads as its table: a stem, rows ``[t, c, n, s]`` of MBConv blocks built in one loop,
a 1x1 conv to ``last_channels``, a global pool and a linear classifier (the paper's final
"conv 1x1 c l" on a 1x1 map has the same parameters and MAdds as the linear layer).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from rnnpool_lite.models.blocks import ConvBNAct, LastPool, bottleneck_stages, check_num_classes, last_pool_layer
from rnnpool_lite.models.downsample import Downsampler
from rnnpool_lite.models.downsample import downsampler as make_downsampler
from rnnpool_lite.op.layer import RNNPool2d

#: MobileNetV2 bottleneck rows [t, c, n, s] (Sandler et al., Table 2 there).
MOBILENETV2_ROWS: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
#: Rows kept after the RNNPool downsampler (paper Table 10): RNNPool replaces the first 3 rows.
RNNPOOL_ROWS: list[tuple[int, int, int, int]] = MOBILENETV2_ROWS[3:]


class MobileNetV2(nn.Module):
    """Stem -> body (MBConv stages) -> 1x1 conv -> global pool -> classifier.

    ``features`` holds everything up to the last 1x1 conv so detectors/notebooks can reuse it.
    """

    def __init__(self, stem: Sequence[nn.Module], body: Sequence[nn.Module], body_channels: int,
                 last_channels: int, num_classes: int, pool: nn.Module, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(*stem, *body, ConvBNAct(body_channels, last_channels, 1))
        self.pool = pool
        self.flatten = nn.Flatten(1)
        pooled = getattr(pool, "out_channels", last_channels)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(pooled, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _check(num_classes: int, width_mult: float) -> None:
    check_num_classes(num_classes)
    if not width_mult > 0:
        raise ValueError(f"width_mult must be positive, got {width_mult!r}")


def mobilenetv2(num_classes: int = 1000, *, width_mult: float = 1.0, first_channels: int = 32,
                last_channels: int = 1280, last_pool: LastPool | str = LastPool.AVG,
                image_size: int = 224) -> MobileNetV2:
    """Standard MobileNetV2 (same layer shapes and parameters as torchvision's).

    ``first_channels`` and ``last_channels`` are used as given (not scaled), so the VWW base
    model is ``mobilenetv2(2, width_mult=0.35, first_channels=8, last_channels=320)``.
    ``last_pool="rnnpool"`` replaces the final average pool (Table 2, "Last layer RNNPool");
    ``image_size`` then sets that RNNPool's patch (the last map is ``image_size / 32``).
    """
    _check(num_classes, width_mult)
    body, channels = bottleneck_stages(first_channels, MOBILENETV2_ROWS, width_mult)
    stem = [ConvBNAct(3, first_channels, 3, 2)]
    return MobileNetV2(stem, body, channels, last_channels, num_classes,
                       last_pool_layer(last_pool, channels=last_channels, size=image_size // 32))


def mobilenetv2_rnnpool(num_classes: int = 1000, *, width_mult: float = 1.0, hidden: int = 16,
                        patch: int = 6, last_pool: LastPool | str = LastPool.AVG, first_channels: int = 32,
                        last_channels: int = 1280, downsampler: Downsampler | str = Downsampler.RNNPOOL,
                        image_size: int = 224) -> MobileNetV2:
    """MobileNetV2-RNNPool (paper Table 10): conv 3x3 s2 -> RNNPool (stride 4) -> rows from c64 on.

    VWW model (Table 2 / Figure 3): ``mobilenetv2_rnnpool(2, width_mult=0.35, hidden=8,
    first_channels=8, last_channels=320)`` (see :func:`mobilenetv2_rnnpool_vww`). ``downsampler``
    swaps the RNNPool for the other 4x downsamplers of Table 2 (:class:`Downsampler`: average / max
    pooling, strided convolution, ReNet).
    """
    _check(num_classes, width_mult)
    pool, channels = make_downsampler(downsampler, in_channels=first_channels, hidden=hidden, patch=patch)
    body, channels = bottleneck_stages(channels, RNNPOOL_ROWS, width_mult)
    stem = [ConvBNAct(3, first_channels, 3, 2), pool]
    return MobileNetV2(stem, body, channels, last_channels, num_classes,
                       last_pool_layer(last_pool, channels=last_channels, size=image_size // 32))


#: Paper Table 16 (MobileNetV2-RNNPool on ImageNet-10), per row: RNNPool hidden size h1 = h2, then
#: each RNNPool's (patch, stride), applied in turn after the conv 3x3 c32 s2 stem; the MBConv rows
#: resume at the map's total stride (8: from c64, as Table 10; 16: from c96, so the four c64 blocks
#: are replaced too).
TABLE16_ROWS: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = {
    "a": (16, ((6, 4),)),           # reported setting
    "b": (16, ((8, 4),)),           # patch 8
    "c": (16, ((4, 4),)),           # patch 4
    "d": (8, ((6, 4),)),            # h1 = h2 = 8
    "e": (32, ((6, 4),)),           # h1 = h2 = 32
    "f": (16, ((12, 8),)),          # stride 8, patch 12: one RNNPool replaces 4 more MBConv blocks
    "g": (16, ((6, 4), (4, 2))),    # two RNNPools: stride 4 patch 6, then stride 2 patch 4
}


def mobilenetv2_rnnpool_table16(row: str, *, num_classes: int = 10, image_size: int = 224) -> MobileNetV2:
    """The MobileNetV2-RNNPool variant of one Table 16 row (``"a"`` ... ``"g"``), for its RAM and MAdds.

    Each RNNPool gets the smallest zero padding with which it divides the map exactly by its stride
    (112 -> 28, as :func:`mobilenetv2_rnnpool`; row g then 28 -> 14).
    """
    if row not in TABLE16_ROWS:
        raise ValueError(f"Table 16 has rows {', '.join(TABLE16_ROWS)}; got {row!r}")
    check_num_classes(num_classes)
    hidden, pools = TABLE16_ROWS[row]
    layers: list[nn.Module] = [ConvBNAct(3, 32, 3, 2)]
    channels, size = 32, image_size // 2
    for patch, stride in pools:
        padding = next(p for p in range(patch) if (size + 2 * p - patch) // stride + 1 == size // stride)
        layers.append(RNNPool2d(channels, hidden, patch, stride, padding=padding))
        channels, size = 4 * hidden, size // stride
    total_stride = image_size // size
    body, channels = bottleneck_stages(channels, RNNPOOL_ROWS if total_stride == 8 else RNNPOOL_ROWS[1:])
    return MobileNetV2(layers, body, channels, 1280, num_classes, nn.AdaptiveAvgPool2d(1))


def mobilenetv2_vww(num_classes: int = 2, *, last_pool: LastPool | str = LastPool.AVG,
                    image_size: int = 224) -> MobileNetV2:
    """MobileNetV2-0.35x base of the Visual Wake Words experiments (8 first, 320 last channels)."""
    return mobilenetv2(num_classes, width_mult=0.35, first_channels=8, last_channels=320, last_pool=last_pool,
                       image_size=image_size)


def mobilenetv2_rnnpool_vww(num_classes: int = 2, *, last_pool: LastPool | str = LastPool.AVG,
                            downsampler: Downsampler | str = Downsampler.RNNPOOL,
                            image_size: int = 224) -> MobileNetV2:
    """MobileNetV2-0.35x-RNNPool for Visual Wake Words: conv c8 s2 -> RNNPool(6, 4, h 8) -> 0.35x rows."""
    return mobilenetv2_rnnpool(num_classes, width_mult=0.35, hidden=8, patch=6, last_pool=last_pool,
                               first_channels=8, last_channels=320, downsampler=downsampler,
                               image_size=image_size)


__all__ = ["MOBILENETV2_ROWS", "RNNPOOL_ROWS", "TABLE16_ROWS", "MobileNetV2", "mobilenetv2", "mobilenetv2_rnnpool",
           "mobilenetv2_rnnpool_table16", "mobilenetv2_vww", "mobilenetv2_rnnpool_vww"]
