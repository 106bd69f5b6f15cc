"""GoogLeNet (Inception v1) and GoogLeNet-RNNPool (paper Table 1, Table 9).

Inception rows ``(c1, c3_reduce, c3, c5_reduce, c5, pool_proj, max_pool_after)`` built in one
loop (Szegedy et al. 2015, Table 1 there), conv-BN-ReLU everywhere, with the two auxiliary
classifiers: the paper's 9.96M parameters at 10 classes are those of GoogLeNet *with* its
auxiliary heads (5.6M without) and with a 3x3 conv in the "5x5" branch, as in the widely used
reference implementation the paper's counts match (torchvision's; ``branch5_kernel=5`` gives
Szegedy et al.'s 5x5 and 10.34M). The auxiliary heads run only in training mode; inference (and so
:func:`rnnpool_lite.accounting.profiler.profile`, which runs in eval mode) never computes them.

GoogLeNet-RNNPool (Table 9: patch 8, h1 = h2 = 32): conv 7x7 c64 s2 -> RNNPool (112x112x64 ->
28x28x128) -> max pool -> inception 4a ... The RNNPool replaces P1, C2, P2, 3a and 3b: the paper
names only the peak (inception 4e), but these blocks are what its totals remove (1.57G -> 0.81G;
ours: C2, 3a and 3b are 0.75G, and 4a reading 128 channels instead of 480 saves 0.03G more, while
the RNNPool adds 0.11G).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnpool_lite.models.blocks import ConvBNAct, MemoryRule, check_num_classes
from rnnpool_lite.op.layer import RNNPool2d

#: Inception rows (c1, c3_reduce, c3, c5_reduce, c5, pool_proj, max_pool_after), 3a ... 5b.
INCEPTION_ROWS: list[tuple[int, int, int, int, int, int, bool]] = [
    (64, 96, 128, 16, 32, 32, False),      # 3a
    (128, 128, 192, 32, 96, 64, True),     # 3b
    (192, 96, 208, 16, 48, 64, False),     # 4a
    (160, 112, 224, 24, 64, 64, False),    # 4b
    (128, 128, 256, 24, 64, 64, False),    # 4c
    (112, 144, 288, 32, 64, 64, False),    # 4d
    (256, 160, 320, 32, 128, 128, True),   # 4e
    (256, 160, 320, 32, 128, 128, False),  # 5a
    (384, 192, 384, 48, 128, 128, False),  # 5b
]
#: Auxiliary classifiers read the outputs of these rows (4a and 4d).
AUX_AFTER = (2, 5)


def _relu_conv(cin: int, cout: int, k: int, stride: int = 1) -> ConvBNAct:
    return ConvBNAct(cin, cout, k, stride, activation=nn.ReLU)


class Inception(nn.Module):
    """Four branches concatenated: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1."""

    #: RAM convention (Appendix E.2.1): input + the three smallest branch outputs (the branches
    #: run smallest first, the input is freed before the largest one is written).
    memory_rule = MemoryRule.INCEPTION

    def __init__(self, in_channels: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int,
                 branch5_kernel: int = 3) -> None:
        super().__init__()
        self.branch1 = _relu_conv(in_channels, c1, 1)
        self.branch3 = nn.Sequential(_relu_conv(in_channels, c3r, 1), _relu_conv(c3r, c3, 3))
        self.branch5 = nn.Sequential(_relu_conv(in_channels, c5r, 1), _relu_conv(c5r, c5, branch5_kernel))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), _relu_conv(in_channels, pool_proj, 1))
        self.branch_channels = (c1, c3, c5, pool_proj)
        self.out_channels = sum(self.branch_channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool -> conv 1x1 c128 -> FC 1024 -> dropout 0.7 -> FC."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.AdaptiveAvgPool2d(4), _relu_conv(in_channels, 128, 1), nn.Flatten(1),
                                    nn.Linear(2048, 1024), nn.ReLU(inplace=True), nn.Dropout(0.7),
                                    nn.Linear(1024, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class GoogLeNet(nn.Module):
    """Stem -> inception rows (max pools between stages) -> global pool -> dropout -> FC.

    In training mode with ``aux_logits`` the forward returns ``(logits, aux1, aux2)``.
    """

    def __init__(self, stem: list[nn.Module], in_channels: int, rows: list[tuple[int, int, int, int, int, int, bool]],
                 num_classes: int, aux_after: tuple[int, ...] = (), dropout: float = 0.4,
                 branch5_kernel: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(*stem)
        blocks, aux = [], {}
        for i, (c1, c3r, c3, c5r, c5, pp, pool_after) in enumerate(rows):
            block = Inception(in_channels, c1, c3r, c3, c5r, c5, pp, branch5_kernel)
            in_channels = block.out_channels
            blocks.append(nn.Sequential(block, nn.MaxPool2d(3, 2, ceil_mode=True)) if pool_after else block)
            if i in aux_after:
                aux[str(i)] = InceptionAux(in_channels, num_classes)
        self.blocks = nn.ModuleList(blocks)
        self.aux = nn.ModuleDict(aux)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_channels, num_classes))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        x = self.stem(x)
        aux_out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if self.training and str(i) in self.aux:
                aux_out.append(self.aux[str(i)](x))
        logits = self.classifier(self.flatten(self.pool(x)))
        return (logits, *aux_out) if aux_out else logits


def googlenet(num_classes: int = 1000, *, aux_logits: bool = True, branch5_kernel: int = 3) -> GoogLeNet:
    """GoogLeNet: conv 7x7 c64 s2, pool, conv 1x1 c64, conv 3x3 c192, pool, inception 3a-5b."""
    check_num_classes(num_classes)
    stem = [_relu_conv(3, 64, 7, 2), nn.MaxPool2d(3, 2, ceil_mode=True), _relu_conv(64, 64, 1),
            _relu_conv(64, 192, 3), nn.MaxPool2d(3, 2, ceil_mode=True)]
    return GoogLeNet(stem, 192, INCEPTION_ROWS, num_classes, AUX_AFTER if aux_logits else (),
                     branch5_kernel=branch5_kernel)


def googlenet_rnnpool(num_classes: int = 1000, *, hidden: int = 32, patch: int = 8,
                      aux_logits: bool = True, branch5_kernel: int = 3) -> GoogLeNet:
    """GoogLeNet-RNNPool: conv 7x7 s2 -> RNNPool(patch 8, stride 4, h 32) -> max pool -> 4a ... 5b."""
    check_num_classes(num_classes)
    pool = RNNPool2d(64, hidden, patch, 4, padding=(patch - 4) // 2)
    stem = [_relu_conv(3, 64, 7, 2), pool, nn.MaxPool2d(3, 2, ceil_mode=True)]
    aux = tuple(i - 2 for i in AUX_AFTER) if aux_logits else ()
    return GoogLeNet(stem, pool.out_channels, INCEPTION_ROWS[2:], num_classes, aux,
                     branch5_kernel=branch5_kernel)


__all__ = ["AUX_AFTER", "INCEPTION_ROWS", "GoogLeNet", "Inception", "InceptionAux", "googlenet",
           "googlenet_rnnpool"]
