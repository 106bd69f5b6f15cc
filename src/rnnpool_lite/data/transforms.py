"""Image transforms without torchvision: small torch callables on (C, H, W) float tensors.

The paper's augmentation (Appendix G): random resized crop (scale 0.08-1.0, 0.2-1.0 for VWW,
aspect 3/4-4/3), horizontal flip, normalisation; validation: resize then centre crop (256 -> 224,
the same ratio at other resolutions). Detection needs the boxes to follow the image:
:class:`DetectionHorizontalFlip` and :class:`DetectionResize` take and return ``(image, target)``.
Randomness comes from a ``torch.Generator`` when one is given, else torch's global generator, so a
seeded DataLoader worker gives the same crops every run.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def _size2(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    return int(h), int(w)


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise TypeError(f"expected a (C, H, W) tensor, got {type(image).__name__} "
                        f"{tuple(image.shape) if isinstance(image, torch.Tensor) else ''}")


def resize(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (C, H, W) tensor to ``size`` (antialiased when shrinking)."""
    _check_image(image)
    out = F.interpolate(image[None].float(), size=_size2(size), mode="bilinear",
                        align_corners=False, antialias=True)
    return out[0]


class RandomResizedCrop:
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio``, resize to ``size``.

    Follows the Inception-style sampling: 10 tries of (area, log-uniform aspect), else the
    centre crop clipped to the ratio range.
    """

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 generator: torch.Generator | None = None) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (lo, hi) with 0 < lo <= hi, got {ratio}")
        self.size, self.scale, self.ratio, self.generator = _size2(size), scale, ratio, generator

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=self.generator).item()

    def params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the crop for an image of height x width."""
        area = height * width
        for _ in range(10):
            target = area * self._uniform(*self.scale)
            aspect = math.exp(self._uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (), generator=self.generator))
                left = int(torch.randint(0, width - w + 1, (), generator=self.generator))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        top, left, h, w = self.params(image.shape[1], image.shape[2])
        return resize(image[:, top:top + h, left:left + w], self.size)


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"p must be a probability, got {p}")
        self.p, self.generator = p, generator

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        return image.flip(-1) if torch.rand((), generator=self.generator).item() < self.p else image


class Normalize:
    """(x - mean) / std per channel. ImageNet statistics by default, as in the paper's code."""

    def __init__(self, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225)) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean and std must have equal length and std > 0, got {mean}, {std}")
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        if image.shape[0] != self.mean.shape[0]:
            raise ValueError(f"image has {image.shape[0]} channels, mean/std have {self.mean.shape[0]}")
        return (image - self.mean) / self.std


class ResizeCenterCrop:
    """Validation transform: resize the shorter side to ``resize`` then centre-crop ``crop``.

    The paper's 256 -> 224; ``ResizeCenterCrop.for_crop(160)`` keeps that 256/224 ratio.
    """

    def __init__(self, resize: int, crop: int | tuple[int, int]) -> None:
        ch, cw = _size2(crop)
        if resize < max(ch, cw):
            raise ValueError(f"resize ({resize}) must be >= the crop {crop}")
        self.resize, self.crop = resize, (ch, cw)

    @classmethod
    def for_crop(cls, crop: int) -> ResizeCenterCrop:
        return cls(int(round(crop * 256 / 224)), crop)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        h, w = image.shape[1:]
        s = self.resize / min(h, w)
        image = resize(image, (max(self.crop[0], round(h * s)), max(self.crop[1], round(w * s))))
        h, w = image.shape[1:]
        top, left = (h - self.crop[0]) // 2, (w - self.crop[1]) // 2
        return image[:, top:top + self.crop[0], left:left + self.crop[1]]


class Compose:
    """Apply callables in order."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x):  # noqa: ANN001, ANN204 - images or (image, target) pairs
        for t in self.transforms:
            x = t(x)
        return x


Target = dict[str, torch.Tensor]


class DetectionHorizontalFlip:
    """Flip image and boxes (x1, y1, x2, y2 in pixels, x2 exclusive) with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.flip = RandomHorizontalFlip(p, generator)

    def __call__(self, sample: tuple[torch.Tensor, Target]) -> tuple[torch.Tensor, Target]:
        image, target = sample
        _check_image(image)
        if torch.rand((), generator=self.flip.generator).item() >= self.flip.p:
            return image, target
        w = image.shape[-1]
        boxes = target["boxes"].clone()
        boxes[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
        return image.flip(-1), {**target, "boxes": boxes}


class DetectionResize:
    """Resize image to ``size`` (H, W) and scale the boxes by the same factors."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _size2(size)

    def __call__(self, sample: tuple[torch.Tensor, Target]) -> tuple[torch.Tensor, Target]:
        image, target = sample
        _check_image(image)
        h, w = image.shape[1:]
        sy, sx = self.size[0] / h, self.size[1] / w
        boxes = target["boxes"] * torch.tensor([sx, sy, sx, sy], dtype=target["boxes"].dtype)
        return resize(image, self.size), {**target, "boxes": boxes}


def imagenet_train_transform(size: int = 224, scale: tuple[float, float] = (0.08, 1.0),
                             generator: torch.Generator | None = None) -> Compose:
    """The paper's training augmentation (use ``scale=(0.2, 1.0)`` for VWW)."""
    return Compose([RandomResizedCrop(size, scale, generator=generator),
                    RandomHorizontalFlip(0.5, generator), Normalize()])


def imagenet_val_transform(size: int = 224) -> Compose:
    """The paper's validation transform: resize (256/224 of ``size``), centre crop, normalise."""
    return Compose([ResizeCenterCrop.for_crop(size), Normalize()])


class Transformed(torch.utils.data.Dataset):
    """Wrap a dataset so ``transform`` is applied to each item's image (or to the whole
    ``(image, target)`` pair when ``pairs=True``, for detection transforms)."""

    def __init__(self, dataset: torch.utils.data.Dataset, transform: Callable, pairs: bool = False) -> None:
        self.dataset, self.transform, self.pairs = dataset, transform, pairs
        self.classes = getattr(dataset, "classes", None)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):  # noqa: ANN204
        image, target = self.dataset[index]
        if self.pairs:
            return self.transform((image, target))
        return self.transform(image), target
