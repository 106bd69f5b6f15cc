"""The probing model of Appendix C.1: one RNNPool over the whole image, then one FC layer.

It asks how much a single RNNPool operator can summarise: the patch is the whole image, so the
4 * h2 outputs are the only thing the classifier sees. With ``with_conv`` a 3x3 stride-2 conv with
8 filters runs first (Table 7's "with conv" columns) and RNNPool pools its whole output map.

A BatchNorm1d sits between RNNPool and the FC layer. The raw RNNPool outputs of an untrained layer
share a large common offset and differ between images by about 1% of it, which plain SGD (the
paper's optimizer, used by ``fit``) cannot untangle in a few epochs; the normalisation is a
per-feature affine map, so at inference it folds into the FC layer and the model is still
"RNNPool + one linear layer".
"""
from __future__ import annotations

from torch import Tensor, nn

from ..layer import RNNPool2d


class RNNPoolProbe(nn.Module):
    """``(N, C, S, S) -> (N, num_classes)`` logits; ``features(x)`` gives the 4 * h2 RNNPool outputs.

    ``cell`` picks the RNNPool's recurrent cell (``"fastgrnn"``, ``"gru"`` or ``"lstm"``), so the
    ablation chapter can compare cells (paper Table 18) on the probing sets.
    """

    def __init__(self, image_size: int, num_classes: int, hidden_size: int, hidden_size2: int,
                 in_channels: int = 1, with_conv: bool = False, cell: str = "fastgrnn") -> None:
        super().__init__()
        if image_size < 2 or num_classes < 2:
            raise ValueError(f"need image_size >= 2 and num_classes >= 2, got {image_size}, {num_classes}")
        self.conv: nn.Module = nn.Identity()
        size, channels = image_size, in_channels
        if with_conv:
            self.conv = nn.Sequential(nn.Conv2d(in_channels, 8, 3, stride=2, padding=1, bias=False),
                                      nn.BatchNorm2d(8), nn.ReLU(inplace=True))
            size, channels = (image_size + 1) // 2, 8
        self.pool = RNNPool2d(channels, hidden_size, kernel_size=size, hidden_size2=hidden_size2, cell=cell)
        self.norm = nn.BatchNorm1d(self.pool.out_channels, momentum=0.5)
        self.fc = nn.Linear(self.pool.out_channels, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The ``(N, 4 * h2)`` RNNPool summary of each image (Figure 4 embeds these)."""
        return self.pool(self.conv(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.norm(self.features(x)))
