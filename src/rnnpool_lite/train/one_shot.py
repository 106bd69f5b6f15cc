"""Appendix C.2's one-shot pooling classifiers: one operator pools the whole image, one FC reads it.

The paper asks how much each pooling operator keeps when its patch is the whole image (patch =
stride = 32 on CIFAR-10): every operator turns the image into one vector of ``4 h`` numbers
(``4 h2 = 128`` for RNNPool with ``h1 = h2 = 32``), and a single linear layer maps it to the classes.
Sizing, as in Appendix C.2:

* ``"rnnpool"``: RNNPool with ``h1 = h2 = hidden`` over the whole image: ``4 hidden`` outputs.
* ``"strided_conv"``: one convolution with an ``S x S`` kernel and stride ``S`` and ``4 hidden``
  filters.
* ``"avg"`` / ``"max"``: pool ``S x S x C`` to ``1 x 1 x C``, then a 1x1 convolution with
  ``4 hidden`` filters, so the FC layer sees as many numbers as for the others.

The paper does not say what sits between the operator and the FC layer. Here every convolution is
followed by BatchNorm and ReLU (the paper's networks put BatchNorm after every conv, Appendix G) and
RNNPool's output by BatchNorm1d, as in :class:`~rnnpool_lite.train.probe.RNNPoolProbe` (an affine map
that folds into the FC layer at inference). Without the ReLU the conv-based models would be linear
classifiers of the pixels (strided conv) or of the ``C`` channel means / maxima (avg, max pooling).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from rnnpool_lite.op.layer import RNNPool2d
from rnnpool_lite.train.config import TrainConfig
from rnnpool_lite.train.fit import FitResult, fit

ONE_SHOT_OPERATORS: tuple[str, ...] = ("rnnpool", "strided_conv", "avg", "max")


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    """Conv (kernel = stride, no padding, no bias) -> BatchNorm2d -> ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride=kernel, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class OneShotPoolClassifier(nn.Module):
    """``(N, C, S, S) -> (N, num_classes)``: ``operator`` pools S x S to 1 x 1 in one go, then one FC.

    ``features(x)`` gives the ``(N, 4 * hidden)`` pooled vector the FC layer reads.
    """

    def __init__(self, operator: str, image_size: int, num_classes: int, in_channels: int = 1,
                 hidden: int = 32) -> None:
        super().__init__()
        if operator not in ONE_SHOT_OPERATORS:
            raise ValueError(f"operator must be one of {ONE_SHOT_OPERATORS}, got {operator!r}")
        for name, value, minimum in (("image_size", image_size, 2), ("num_classes", num_classes, 2),
                                     ("in_channels", in_channels, 1), ("hidden", hidden, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        self.operator, self.image_size, self.width = operator, image_size, 4 * hidden
        if operator == "rnnpool":
            self.pool: nn.Module = nn.Sequential(
                RNNPool2d(in_channels, hidden, kernel_size=image_size, hidden_size2=hidden),
                nn.Flatten(1), nn.BatchNorm1d(self.width))
        elif operator == "strided_conv":
            self.pool = nn.Sequential(_conv_bn_relu(in_channels, self.width, image_size), nn.Flatten(1))
        else:
            window = nn.AvgPool2d(image_size) if operator == "avg" else nn.MaxPool2d(image_size)
            self.pool = nn.Sequential(window, _conv_bn_relu(in_channels, self.width, 1), nn.Flatten(1))
        self.fc = nn.Linear(self.width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The ``(N, 4 * hidden)`` vector one operator makes of each image."""
        if x.dim() != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"expected (N, C, {self.image_size}, {self.image_size}) images, got {tuple(x.shape)}")
        return self.pool(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def fit_one_shot(operator: str, train: Dataset, val: Dataset, config: TrainConfig, *, image_size: int = 32,
                 num_classes: int = 10, in_channels: int = 1, hidden: int = 32) -> FitResult:
    """Train one :class:`OneShotPoolClassifier` with ``config``; its weights start from ``config.seed``.

    One seed fixes the batch order of every operator's run (and each model's initial weights), so
    the operators' runs pair by seed, as ``rnnpool_lite.stats.compare_paired`` compares them.
    """
    torch.manual_seed(config.seed)
    model = OneShotPoolClassifier(operator, image_size, num_classes, in_channels, hidden)
    return fit(model, train, val, config)
