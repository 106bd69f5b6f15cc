"""The 4x downsamplers compared in Table 2, and ReNet (Visin et al. 2015) as one of them.

Table 2 puts a different operator between the stride-2 stem and the first kept stage of a network
and compares accuracy, MAdds and parameters at equal RAM. Every downsampler here maps
``H x W`` to ``H / 4 x W / 4``.

ReNet, as read from the paper's setting (Section 2 c, Appendix B): it "flattens non-overlapping
patches of size equal to the stride" and sweeps them with bidirectional RNNs, first along each
row of patches, then along each column of the row-sweep outputs. We use GRUs (ReNet's cell) and
give each direction ``out_channels / 2`` hidden units, so the output has as many channels as the
RNNPool it replaces (``4 h``). With these choices the paper's ReNet increments (MobileNetV2-0.35x:
+22K parameters, +14.5M MAdds over average pooling; DenseNet121: +0.8M, +0.6G) are reproduced.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch.nn import functional as F

from rnnpool_lite.choices import Choice
from rnnpool_lite.models.blocks import ConvBNAct, MemoryRule
from rnnpool_lite.op.layer import RNNPool2d


class Downsampler(Choice):
    """The 4x downsamplers of Table 2 (each built by :data:`DOWNSAMPLERS`)."""

    RNNPOOL = "rnnpool"
    AVG = "avg"
    MAX = "max"
    STRIDED_CONV = "strided_conv"
    RENET = "renet"


class ReNet2d(nn.Module):
    """ReNet layer: non-overlapping ``patch x patch`` patches, flattened, swept by two bi-GRUs.

    ``(N, C, H, W) -> (N, out_channels, H / patch, W / patch)``. The horizontal bi-GRU reads the
    flattened patches of a patch row left-right and right-left; the vertical bi-GRU reads its
    outputs down and up each patch column.
    """

    #: RAM convention: like RNNPool it can consume its input a patch row at a time, so the stem
    #: before it is never materialised (``rnnpool_lite.accounting.profiler``).
    memory_rule = MemoryRule.RNNPOOL

    def __init__(self, in_channels: int, out_channels: int, patch: int = 4) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"ReNet2d out_channels must be even (two directions), got {out_channels}")
        if patch < 1:
            raise ValueError(f"ReNet2d patch must be positive, got {patch}")
        self.in_channels, self.out_channels, self.patch = in_channels, out_channels, patch
        hidden = out_channels // 2
        self.horizontal = nn.GRU(in_channels * patch * patch, hidden, batch_first=True, bidirectional=True)
        self.vertical = nn.GRU(out_channels, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        p = self.patch
        if h % p or w % p:
            raise ValueError(f"ReNet2d needs H and W divisible by patch {p}, got {h}x{w}")
        gh, gw = h // p, w // p
        patches = F.unfold(x, p, stride=p)  # (N, C p p, gh gw), row-major over the patch grid
        rows, _ = self.horizontal(patches.transpose(1, 2).reshape(n * gh, gw, -1))
        cols = rows.reshape(n, gh, gw, -1).transpose(1, 2).reshape(n * gw, gh, -1)
        out, _ = self.vertical(cols)  # (N gw, gh, out)
        return out.reshape(n, gw, gh, -1).permute(0, 3, 2, 1)


def _rnnpool(in_channels: int, hidden: int, patch: int) -> tuple[nn.Module, int]:
    layer = RNNPool2d(in_channels, hidden, patch, 4, padding=2)
    return layer, layer.out_channels


#: Downsampler -> builder ``(in_channels, hidden, patch) -> (layer, output channels)``.
DOWNSAMPLERS: dict[Downsampler, Callable[[int, int, int], tuple[nn.Module, int]]] = {
    Downsampler.RNNPOOL: _rnnpool,
    Downsampler.AVG: lambda c, h, p: (nn.AvgPool2d(p, 4, padding=2, count_include_pad=False), c),
    Downsampler.MAX: lambda c, h, p: (nn.MaxPool2d(p, 4, padding=2), c),
    Downsampler.STRIDED_CONV: lambda c, h, p: (ConvBNAct(c, 4 * h, p, 4), 4 * h),
    Downsampler.RENET: lambda c, h, p: (ReNet2d(c, 4 * h, 4), 4 * h),
}


def downsampler(kind: Downsampler | str, *, in_channels: int, hidden: int, patch: int) -> tuple[nn.Module, int]:
    """The 4x downsampler of Table 2 and its output channel count.

    ``"rnnpool"``: RNNPool (patch ``patch``, stride 4, padding 2, ``4 hidden`` channels);
    ``"avg"``/``"max"``: pooling with the same window (channels kept); ``"strided_conv"``: a
    ``patch x patch`` stride-4 conv to ``4 hidden`` channels; ``"renet"``: :class:`ReNet2d` with
    4x4 patches and ``4 hidden`` channels. Padding 2 gives 112 -> 28 for patch 6 and 8 (the
    authors pad the 27x27 RNNPool output to 28x28).
    """
    return DOWNSAMPLERS[Downsampler(kind)](in_channels, hidden, patch)


__all__ = ["DOWNSAMPLERS", "Downsampler", "ReNet2d", "downsampler"]
