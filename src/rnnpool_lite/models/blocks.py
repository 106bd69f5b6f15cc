"""Building blocks shared by the paper's models.

Every convolution is followed by ``nn.BatchNorm2d`` (paper, Appendix G) and activations are
modules, not functional calls, so BatchNorm folding and ``torch.fx`` conversion see them. Blocks
have their own classes (``InvertedResidual``, ...) because the RAM convention of Appendix E treats
each kind of block by its own rule (see :mod:`rnnpool_lite.accounting.profiler`).
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from rnnpool_lite.choices import Choice
from rnnpool_lite.op.layer import RNNPool2d
from rnnpool_lite.roles import InvertedResidualRole


class MemoryRule(Choice):
    """What is live while a unit runs, under the paper's RAM convention (Appendix E).

    Blocks declare theirs as the class attribute ``memory_rule``; the profiler
    (:mod:`rnnpool_lite.accounting.profiler`) gives the leaf layers outside blocks theirs.
    """

    IN_OUT = "in+out"            # input and output together (convs, MBConv blocks)
    MAX = "max"                  # max(input, output): output rows overwrite consumed input rows
    OUT = "out"                  # the output alone, which holds the input (dense blocks)
    INCEPTION = "inception"      # input + the three smallest branch outputs
    RNNPOOL = "rnnpool"          # input + output, and the convs before it run patch by patch with it
    POOL = "pool"                # a local pool: max(input, output), as MAX
    GLOBAL_POOL = "global_pool"  # a global pool: input + output; a 1x1 conv feeding it is streamed


class LastPool(Choice):
    """The global pool before a classifier (Table 2, "Last layer RNNPool")."""

    AVG = "avg"
    RNNPOOL = "rnnpool"


def last_pool_layer(kind: LastPool | str, *, channels: int, size: int) -> nn.Module:
    """Global average pool, or an RNNPool over the whole ``size x size`` last map with h1 = h2 = channels / 4."""
    if LastPool(kind) is LastPool.RNNPOOL:
        return RNNPool2d(channels, channels // 4, size, size)
    return nn.AdaptiveAvgPool2d(1)


def check_num_classes(num_classes: object) -> None:
    """Every model constructor's guard: a positive ``int`` (``True`` is not a class count)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (MobileNet convention).

    Never goes below ``min_value`` (default ``divisor``) nor more than 10% below ``value``,
    the rule of the MobileNetV2 reference implementation, so width multipliers give the same
    layer shapes as that model.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """``Conv2d`` (no bias) -> ``BatchNorm2d`` -> activation (``nn.ReLU6`` by default, or none)."""

    #: RAM convention (``rnnpool_lite.accounting.profiler``): input and output are live together.
    memory_rule = MemoryRule.IN_OUT

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: type[nn.Module] | None = nn.ReLU6) -> None:
        padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(activation(inplace=True) if activation in (nn.ReLU, nn.ReLU6) else activation())
        super().__init__(*layers)
        self.out_channels = out_channels


class InvertedResidual(InvertedResidualRole):
    """MobileNetV2 bottleneck (MBConv): 1x1 expand (t), 3x3 depthwise (stride), 1x1 project.

    The skip connection is used when the stride is 1 and the channel count is kept.
    """

    #: RAM convention: input + output; the expanded map is computed on the fly (Appendix E).
    memory_rule = MemoryRule.IN_OUT

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
            ConvBNAct(hidden, out_channels, 1, activation=None),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 conv + pointwise 1x1 conv, each with BatchNorm and ReLU (RNNPool-Face-A)."""

    #: RAM convention: max(input, output). The depthwise conv works in place with a line buffer
    #: of k rows and the pointwise conv pixel by pixel, so output rows overwrite consumed input
    #: rows. This is the paper's count for MobileNetV1 (3.06 MB = 112x112x64) and RNNPool-Face-A
    #: (1.17 MB = its 160x120x16 maps).
    memory_rule = MemoryRule.MAX

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, activation=nn.ReLU),
            ConvBNAct(in_channels, out_channels, 1, activation=nn.ReLU),
        )
        self.out_channels = out_channels


def repeat_rows(block: Callable[[int, int, int], nn.Module], in_channels: int,
                rows: list[tuple[int, int, int]]) -> tuple[list[nn.Module], int]:
    """Blocks from paper-table rows ``[c, n, s]``: ``n`` blocks of ``c`` output channels, the
    first with stride ``s``; ``block(in_channels, out_channels, stride)`` builds one.

    Returns the blocks and the output channel count.
    """
    blocks: list[nn.Module] = []
    for c, n, s in rows:
        for i in range(n):
            blocks.append(block(in_channels, c, s if i == 0 else 1))
            in_channels = c
    return blocks, in_channels


def bottleneck_stages(in_channels: int, rows: list[tuple[int, int, int, int]],
                      width_mult: float = 1.0, divisor: int = 8) -> tuple[list[nn.Module], int]:
    """MBConv blocks from paper-table rows ``[t, c, n, s]``, built in one loop.

    Returns the blocks and the output channel count.
    """
    blocks: list[nn.Module] = []
    channels = in_channels
    for t, c, n, s in rows:
        out = make_divisible(c * width_mult, divisor) if width_mult != 1.0 else c
        for i in range(n):
            blocks.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
            channels = out
    return blocks, channels
