"""RNNPool-Face detectors (paper Tables 11-15): backbone stages + S3FD-style detection heads.

A detector is a list of *stages* and one *head* per stage: stage ``k`` produces the feature map
that head ``k`` reads. Each head is two 3x3 convolutions (with bias, no BatchNorm: they are the
predictions) giving 4 box offsets and 2 class scores for the one square anchor of each position.
As in S3FD, the first (stride-4) head predicts 3 background scores and keeps their maximum
("max-out background label"), which fights the many small negative anchors.

``forward`` returns ``(loc, conf)`` shaped ``(N, P, 4)`` and ``(N, P, 2)``; ``priors(image_size)``
returns the ``(P, 4)`` anchors ``(cx, cy, w, h)`` in the same order, normalised to the image.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor, nn

from rnnpool_lite.models.blocks import ConvBNAct, DepthwiseSeparable, bottleneck_stages
from rnnpool_lite.op.layer import RNNPool2d
from rnnpool_lite.roles import DetectionHeadRole


class DetectionHead(DetectionHeadRole):
    """Two 3x3 convs on one feature map: box offsets (4) and class scores (2) per position.

    ``stride`` > 1 makes both convs strided (Face-Quant's first head reaches stride 4 from the
    stride-2 stem map this way). ``maxout_background`` > 1 predicts that many background scores
    and keeps their maximum (S3FD).
    """

    def __init__(self, in_channels: int, stride: int = 1, maxout_background: int = 1) -> None:
        super().__init__()
        self.maxout_background = maxout_background
        self.loc = nn.Conv2d(in_channels, 4, 3, stride, 1)
        self.conf = nn.Conv2d(in_channels, maxout_background + 1, 3, stride, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        loc = self.loc(x).permute(0, 2, 3, 1).flatten(1).unflatten(1, (-1, 4))
        conf = self.conf(x)
        if self.maxout_background > 1:
            background = conf[:, : self.maxout_background].amax(dim=1, keepdim=True)
            conf = torch.cat([background, conf[:, self.maxout_background:]], dim=1)
        conf = conf.permute(0, 2, 3, 1).flatten(1).unflatten(1, (-1, 2))
        return loc, conf


class FaceDetector(nn.Module):
    """Backbone stages with one S3FD-style head each; ``strides``/``anchors`` give the priors."""

    def __init__(self, stages: list[nn.Module], heads: list[DetectionHead], strides: list[int],
                 anchors: list[int], in_channels: int) -> None:
        super().__init__()
        if not len(stages) == len(heads) == len(strides) == len(anchors):
            raise ValueError("stages, heads, strides and anchors must have the same length")
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)
        self.strides = list(strides)
        self.anchors = list(anchors)
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        locs, confs = [], []
        for stage, head in zip(self.stages, self.heads):
            x = stage(x)
            loc, conf = head(x)
            locs.append(loc)
            confs.append(conf)
        return torch.cat(locs, dim=1), torch.cat(confs, dim=1)

    @torch.no_grad()
    def feature_sizes(self, image_size: int | tuple[int, int]) -> list[tuple[int, int]]:
        """``(height, width)`` of each head's output grid, from a forward pass of a zero image.

        The pass runs in eval mode (the mode is restored): in training mode it would update the
        BatchNorm running statistics with a zero image, and fail on 1x1 maps of a batch of one.
        """
        height, width = _hw(image_size)
        x = torch.zeros(1, self.in_channels, height, width,
                        dtype=next(self.parameters()).dtype, device=next(self.parameters()).device)
        sizes: list[tuple[int, int]] = []
        was_training = self.training
        self.eval()
        try:
            for stage, head in zip(self.stages, cast(list[DetectionHead], list(self.heads))):
                x = stage(x)
                rows, cols = head.loc(x).shape[-2:]
                sizes.append((rows, cols))
        finally:
            self.train(was_training)
        return sizes

    def priors(self, image_size: int | tuple[int, int]) -> Tensor:
        """S3FD anchors ``(cx, cy, w, h)`` normalised by the image, ordered like ``loc``/``conf``.

        ``image_size`` is ``(height, width)`` (VGA is ``(480, 640)``) or an int for a square.
        Anchor centres sit at ``(j + 0.5) * stride``; each position has one square anchor.
        """
        height, width = _hw(image_size)
        boxes = []
        for (fh, fw), stride, anchor in zip(self.feature_sizes((height, width)), self.strides, self.anchors):
            cy, cx = torch.meshgrid((torch.arange(fh) + 0.5) * stride / height,
                                    (torch.arange(fw) + 0.5) * stride / width, indexing="ij")
            wh = torch.tensor([anchor / width, anchor / height]).expand(fh * fw, 2)
            boxes.append(torch.cat([torch.stack([cx, cy], -1).reshape(-1, 2), wh], dim=1))
        return torch.cat(boxes)


def _hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size


def _mbconv(in_channels: int, rows: list[tuple[int, int, int, int]]) -> tuple[nn.Sequential, int]:
    blocks, channels = bottleneck_stages(in_channels, rows)
    return nn.Sequential(*blocks), channels


def _rows_to_stages(first: list[nn.Module], first_channels: int,
                    rows: list[tuple[int, int, int, int]]) -> tuple[list[nn.Module], list[int]]:
    """``first`` (modules ending at ``first_channels``) followed by one stage per MBConv row."""
    stages: list[nn.Module] = [nn.Sequential(*first)]
    channels = [first_channels]
    for row in rows:
        stage, c = _mbconv(channels[-1], [row])
        stages.append(stage)
        channels.append(c)
    return stages, channels


S3FD_STRIDES = [4, 8, 16, 32, 64, 128]
S3FD_ANCHORS = [16, 32, 64, 128, 256, 512]


def _face_c() -> FaceDetector:
    """Table 11: RNNPool(patch 8, h 16) on the image, then MBConv rows, one head per row."""
    pool = RNNPool2d(3, 16, 8, 4, padding=2)
    first, c = _mbconv(pool.out_channels, [(6, 24, 2, 1)])
    rows = [(6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 2), (6, 160, 2, 2), (6, 320, 1, 2)]
    stages, channels = _rows_to_stages([pool, first], c, rows)
    return _s3fd(stages, channels, 3)


def _face_b() -> FaceDetector:
    """Table 12: RNNPool(8, h 6) -> 4 x conv 3x3 c24 | conv 3x3 c96 s2 -> 1x1 c32 -> MBConv rows."""
    pool = RNNPool2d(3, 6, 8, 4, padding=2)
    first = [pool] + [ConvBNAct(24, 24, 3, activation=nn.ReLU) for _ in range(4)]
    second_rows, c = _mbconv(32, [(6, 32, 3, 1)])
    second = nn.Sequential(ConvBNAct(24, 96, 3, 2, activation=nn.ReLU), ConvBNAct(96, 32, 1, activation=nn.ReLU),
                           second_rows)
    rows = [(6, 64, 3, 2), (6, 128, 2, 2), (6, 160, 1, 2), (6, 320, 1, 2)]
    stages, channels = _rows_to_stages([second], c, rows)
    return _s3fd([nn.Sequential(*first)] + stages, [24] + channels, 3)


def _face_a() -> FaceDetector:
    """Table 13: RNNPool(8, h 4) -> 4 x dw+pw c16 | dw+pw c16 s2 -> MBConv rows (t 1 / 2)."""
    pool = RNNPool2d(3, 4, 8, 4, padding=2)
    first = [pool] + [DepthwiseSeparable(16, 16) for _ in range(4)]
    second_rows, c = _mbconv(16, [(1, 16, 3, 1)])
    second = nn.Sequential(DepthwiseSeparable(16, 16, 2), second_rows)
    rows = [(1, 24, 3, 2), (1, 32, 2, 2), (2, 128, 1, 2), (2, 160, 1, 2)]
    stages, channels = _rows_to_stages([second], c, rows)
    return _s3fd([nn.Sequential(*first)] + stages, [16] + channels, 3)


def _face_quant() -> FaceDetector:
    """Table 14: conv c4 s2 -> conv c4 | RNNPool(8, h1 = h2 = 8) -> MBConv t2 rows.

    The first head reads the stride-2 stem map through strided 3x3 convs (stride 4).
    """
    stem = [ConvBNAct(3, 4, 3, 2, activation=nn.ReLU), ConvBNAct(4, 4, 3, 1, activation=nn.ReLU)]
    pool = RNNPool2d(4, 8, 8, 4, padding=2, piecewise_linear=True)  # an int8 model: quantSigmoid / quantTanh
    second, c = _mbconv(pool.out_channels, [(2, 16, 4, 1)])
    rows = [(2, 24, 4, 2), (2, 32, 2, 2), (2, 64, 1, 2), (2, 96, 1, 2)]
    stages, channels = _rows_to_stages([pool, second], c, rows)
    stages = [nn.Sequential(*stem)] + stages
    channels = [4] + channels
    heads = [DetectionHead(4, stride=2, maxout_background=3)] + [DetectionHead(ch) for ch in channels[1:]]
    return FaceDetector(stages, heads, S3FD_STRIDES, S3FD_ANCHORS, 3)


def _face_m4() -> FaceDetector:
    """Table 15: monochrome 320x240; conv c4 s2 -> RNNPool(8, h 16) -> 4 MBConv t2 blocks, 4 heads."""
    stem = [ConvBNAct(1, 4, 3, 2, activation=nn.ReLU), RNNPool2d(4, 16, 8, 4, padding=2, piecewise_linear=True)]
    first, c = _mbconv(64, [(2, 32, 1, 1)])
    rows = [(2, 32, 1, 1), (2, 64, 1, 2), (2, 64, 1, 1)]
    stages, channels = _rows_to_stages(stem + [first], c, rows)
    heads = [DetectionHead(ch) for ch in channels]
    return FaceDetector(stages, heads, [8, 8, 16, 16], [8, 16, 32, 48], 1)


def _s3fd(stages: list[nn.Module], channels: list[int], in_channels: int) -> FaceDetector:
    heads = [DetectionHead(c, maxout_background=3 if i == 0 else 1) for i, c in enumerate(channels)]
    return FaceDetector(stages, heads, S3FD_STRIDES, S3FD_ANCHORS, in_channels)


#: Variant -> builder (Tables 11-15).
FACE_VARIANTS: dict[str, Callable[[], FaceDetector]] = {
    "A": _face_a, "B": _face_b, "C": _face_c, "Quant": _face_quant, "M4": _face_m4}


def small_rnnpool_face() -> FaceDetector:
    """The book's small-width RNNPool-Face for 128-pixel scenes (chapter 4 and its evidence run).

    Why not a paper variant: at a few CPU minutes of training Face-Quant stayed below the LBP
    cascade (its stride-4 head reads a 4-channel map) and Face-A did not start to learn. This one
    keeps the paper's design (a stride-2 conv, one RNNPool to stride 4, S3FD heads at strides 4,
    8 and 16 with the max-out background label) at widths 8-64.
    """
    stage1 = nn.Sequential(ConvBNAct(3, 8, 3, 2, activation=nn.ReLU),
                           RNNPool2d(8, 8, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(32),
                           DepthwiseSeparable(32, 32))
    stages: list[nn.Module] = [stage1, DepthwiseSeparable(32, 48, 2), DepthwiseSeparable(48, 64, 2)]
    heads = [DetectionHead(32, maxout_background=3), DetectionHead(48), DetectionHead(64)]
    return FaceDetector(stages, heads, strides=[4, 8, 16], anchors=[16, 32, 64], in_channels=3)


def rnnpool_face(variant: str = "C") -> FaceDetector:
    """RNNPool-Face detector ``"A"``, ``"B"``, ``"C"``, ``"Quant"`` or ``"M4"`` (Tables 11-15).

    ``"Quant"`` and ``"M4"`` are the paper's int8 models: their RNNPools use the piecewise-linear
    quantSigmoid / quantTanh, so :func:`rnnpool_lite.m4.quantize` takes them as they are.

    Input: RGB at any size (tested at VGA, ``(480, 640)``); ``"M4"`` takes 1-channel 240x320.
    """
    if variant not in FACE_VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(map(repr, FACE_VARIANTS))}, got {variant!r}")
    return FACE_VARIANTS[variant]()


__all__ = ["FACE_VARIANTS", "DetectionHead", "FaceDetector", "rnnpool_face", "small_rnnpool_face"]
