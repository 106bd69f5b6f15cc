"""The probing model of Appendix C.1: one RNNPool over the whole image, then one FC layer.

It asks how much a single RNNPool operator can summarise: the patch is the whole image, so the
4 * h2 outputs are the only thing the classifier sees. With ``with_conv`` a 3x3 stride-2 conv with
8 filters runs first (Table 7's "with conv" columns) and RNNPool pools its whole output map.

A BatchNorm1d sits between RNNPool and the FC layer. The raw RNNPool outputs of an untrained layer
share a large common offset and differ between images by about 1% of it, which plain SGD (the
paper's optimizer, used by ``fit``) cannot untangle in a few epochs; the normalisation is a
per-feature affine map, so at inference it folds into the FC layer and the model is still
"RNNPool + one linear layer".

For the ablations of Table 16 (patch size, stride, two RNNPools) the probe can instead use RNNPool
as a *downsampler*, as MobileNetV2-RNNPool does: ``patch_size`` / ``stride`` slide it over the map
(zero padding ``(patch_size - stride) // 2``, so the map shrinks by the stride), ``pools=2`` adds
Table 16 row g's second RNNPool (patch 4, stride 2, on the first one's ``4 * h2`` channels, after a
BatchNorm2d), and a
global average of the pooled map feeds the BatchNorm and the linear layer: a cheap stand-in for
the rest of the network, which is what the paper's rows change.
"""
from __future__ import annotations

from torch import Tensor, nn

from rnnpool_lite.op.layer import RNNPool2d

SECOND_POOL = (4, 2)  # Table 16 row g: the second RNNPool's patch size and stride


class RNNPoolProbe(nn.Module):
    """``(N, C, S, S) -> (N, num_classes)`` logits; ``features(x)`` gives the 4 * h2 RNNPool outputs.

    ``cell`` picks the RNNPool's recurrent cell (``"fastgrnn"``, ``"gru"`` or ``"lstm"``), so the
    ablation chapter can compare cells (paper Table 18) on the probing sets.
    """

    #: filters of the optional 3x3 stride-2 convolution (Table 7's "with conv"): what RNNPool then reads
    conv_channels = 8

    def __init__(self, image_size: int, num_classes: int, hidden_size: int, hidden_size2: int,
                 in_channels: int = 1, with_conv: bool = False, cell: str = "fastgrnn",
                 patch_size: int | None = None, stride: int | None = None, pools: int = 1) -> None:
        super().__init__()
        if image_size < 2 or num_classes < 2:
            raise ValueError(f"need image_size >= 2 and num_classes >= 2, got {image_size}, {num_classes}")
        if pools not in (1, 2) or (pools == 2 and patch_size is None):
            raise ValueError(f"pools must be 1, or 2 with a patch_size (Table 16 row g), got pools={pools}, "
                             f"patch_size={patch_size}")
        if patch_size is None and stride is not None:
            raise ValueError(f"stride={stride} needs a patch_size (without one RNNPool pools the whole map)")
        self.conv: nn.Module = nn.Identity()
        size, channels = image_size, in_channels
        if with_conv:
            channels = self.conv_channels
            self.conv = nn.Sequential(nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False),
                                      nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            size = (image_size + 1) // 2
        if patch_size is None:
            self.pool: nn.Module = RNNPool2d(channels, hidden_size, kernel_size=size, hidden_size2=hidden_size2,
                                             cell=cell)
        else:
            stride = patch_size if stride is None else stride
            if not 1 <= stride <= patch_size <= size:
                raise ValueError(f"need 1 <= stride <= patch_size <= {size} (the pooled map), got "
                                 f"patch_size={patch_size}, stride={stride}")
            layers: list[nn.Module] = [RNNPool2d(channels, hidden_size, patch_size, stride, (patch_size - stride) // 2,
                                hidden_size2=hidden_size2, cell=cell)]
            if pools == 2:  # normalised in between, for the reason the FC layer's input is (see above)
                patch2, stride2 = SECOND_POOL
                layers.append(nn.BatchNorm2d(4 * hidden_size2))
                layers.append(RNNPool2d(4 * hidden_size2, hidden_size, patch2, stride2, (patch2 - stride2) // 2,
                                        hidden_size2=hidden_size2, cell=cell))
            self.pool = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.out_channels = 4 * hidden_size2
        self.norm = nn.BatchNorm1d(self.out_channels, momentum=0.5)
        self.fc = nn.Linear(self.out_channels, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The ``(N, 4 * h2)`` RNNPool summary of each image (Figure 4 embeds these)."""
        return self.pool(self.conv(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.norm(self.features(x)))
