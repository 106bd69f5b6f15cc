"""MobileNetV1, MobileNetV1-RNNPool and MobileNetV1-ReNet (paper Table 3, ImageNet-1K rows).

Rows ``[c, n, s]`` of depthwise-separable blocks built in one loop (Howard et al. 2017, Table 1
there). The RNNPool model is "constructed similarly" to MobileNetV2-RNNPool with h1 = h2 = 16
(Section 5.1): conv 3x3 c32 s2 -> RNNPool (patch 6, stride 4: 112x112x32 -> 28x28x64) -> the
rows from the stride-1 c256 block on; ReNet replaces the RNNPool in the ReNet model.
"""
from __future__ import annotations

from torch import Tensor, nn

from rnnpool_lite.models.blocks import ConvBNAct, DepthwiseSeparable, check_num_classes, repeat_rows
from rnnpool_lite.models.downsample import Downsampler
from rnnpool_lite.models.downsample import downsampler as make_downsampler

#: MobileNetV1 depthwise-separable rows [c, n, s].
MOBILENETV1_ROWS: list[tuple[int, int, int]] = [
    (64, 1, 1), (128, 1, 2), (128, 1, 1), (256, 1, 2), (256, 1, 1), (512, 1, 2), (512, 5, 1), (1024, 1, 2),
    (1024, 1, 1),
]
#: Rows kept after a 4x downsampler from the stride-2 stem (it replaces the rows up to stride 8).
MOBILENETV1_RNNPOOL_ROWS = MOBILENETV1_ROWS[4:]


class MobileNetV1(nn.Module):
    """Stem -> depthwise-separable rows -> global average pool -> linear classifier."""

    def __init__(self, stem: list[nn.Module], in_channels: int, rows: list[tuple[int, int, int]],
                 num_classes: int) -> None:
        super().__init__()
        blocks, in_channels = repeat_rows(DepthwiseSeparable, in_channels, rows)
        self.features = nn.Sequential(*stem, *blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _stem() -> list[nn.Module]:
    return [ConvBNAct(3, 32, 3, 2, activation=nn.ReLU)]


def mobilenetv1(num_classes: int = 1000) -> MobileNetV1:
    """MobileNetV1 (4.23M parameters, 0.57G MAdds at 1000 classes)."""
    check_num_classes(num_classes)
    return MobileNetV1(_stem(), 32, MOBILENETV1_ROWS, num_classes)


def mobilenetv1_rnnpool(num_classes: int = 1000, *, hidden: int = 16, patch: int = 6,
                        downsampler: Downsampler | str = Downsampler.RNNPOOL) -> MobileNetV1:
    """MobileNetV1-RNNPool (``downsampler="renet"``: MobileNetV1-ReNet) of Table 3."""
    check_num_classes(num_classes)
    pool, channels = make_downsampler(downsampler, in_channels=32, hidden=hidden, patch=patch)
    return MobileNetV1(_stem() + [pool], channels, MOBILENETV1_RNNPOOL_ROWS, num_classes)


__all__ = ["MOBILENETV1_ROWS", "MOBILENETV1_RNNPOOL_ROWS", "MobileNetV1", "mobilenetv1", "mobilenetv1_rnnpool"]
