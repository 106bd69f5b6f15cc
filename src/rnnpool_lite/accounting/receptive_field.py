"""Receptive fields: the theoretical one from kernel sizes and strides, the effective one from gradients.

The *theoretical* receptive field (TRF) of an output unit is the set of input pixels that have any
path to it; it follows from the kernel sizes, strides, paddings and dilations of the layers alone.
The *effective* receptive field (ERF, Luo et al. 2016) is where the unit's gradient with respect to
the input actually lies: ``|d y[unit] / d x|``, summed over input channels and averaged over
images. For a deep stack of small convolutions the ERF is a roughly Gaussian blob that fills only a
fraction of the TRF; this module measures both, so a chapter can put them side by side, and
quantifies an ERF with numbers (:func:`erf_stats`) so claims about it can be checked.

For ``RNNPool2d`` the TRF of an output unit is its patch (every sweep reads every pixel of the
patch through RNN1's row or column summaries); :func:`sweep_channels` names the channel groups of
its four sweeps, so :func:`effective_receptive_field` can take the ERF of one sweep.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, fx, nn
from torch.nn import functional as F

from rnnpool_lite.accounting.windows import IDENTITY, Span, layer_spans
from rnnpool_lite.models.downsample import ReNet2d
from rnnpool_lite.models.tracing import RNNPoolLeafTracer
from rnnpool_lite.op.layer import RNNPool2d

#: The four sweeps of RNNPool, in the order of their channel groups in the layer's output.
SWEEPS = ("rows forward", "rows backward", "columns forward", "columns backward")


@dataclass(frozen=True)
class ReceptiveField:
    """The theoretical receptive field of every output unit of a layer, in input pixels.

    It is the bounding box of the pixels with a path to the unit: a layer whose kernel is smaller
    than its stride leaves gaps inside the box.
    """

    rows: Span
    cols: Span

    @property
    def size(self) -> tuple[float, float]:
        """``(height, width)`` in pixels, before clipping to an image (``inf`` for global layers)."""
        return self.rows.size, self.cols.size

    @property
    def stride(self) -> tuple[int, int]:
        """Input pixels between neighbouring output units (the product of the strides)."""
        return self.rows.jump, self.cols.jump

    def window(self, unit: tuple[int, int], input_size: tuple[int, int]) -> tuple[slice, slice]:
        """Rows and columns of an ``input_size`` image that ``unit`` sees (clipped to the image)."""
        out = []
        for span, u, n in zip((self.rows, self.cols), unit, input_size):
            lo, hi = span.lo + u * span.jump, span.hi + u * span.jump
            start = int(min(max(0, lo), n))
            out.append(slice(start, int(max(start, min(n, hi + 1)))))  # empty when all in the padding
        return out[0], out[1]

    def mask(self, unit: tuple[int, int], input_size: tuple[int, int]) -> Tensor:
        """Boolean ``input_size`` map: ``True`` on the pixels ``unit`` sees."""
        mask = torch.zeros(input_size, dtype=torch.bool)
        mask[self.window(unit, input_size)] = True
        return mask


_IDENTITY = ReceptiveField(IDENTITY, IDENTITY)

#: Modules that act on each position separately: they pass the receptive field through.
_POINTWISE = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU,
              nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Identity, nn.Dropout, nn.Dropout2d,
              nn.GroupNorm, nn.InstanceNorm2d)
#: Modules whose every output sees every input position.
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear, ReNet2d)
#: Functions and methods that combine their tensor arguments position by position.
_ELEMENTWISE_FUNCTIONS = {operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul,
                          torch.cat, torch.relu, torch.sigmoid, torch.tanh, F.relu, F.relu6, F.hardswish,
                          F.silu, F.gelu, operator.neg}
_ELEMENTWISE_METHODS = {"add", "mul", "relu", "sigmoid", "tanh", "contiguous", "clone", "add_", "mul_",
                        "relu_", "clamp", "clamp_"}


def _through(rf: ReceptiveField, module: nn.Module, name: str) -> ReceptiveField:
    """``rf`` followed by one leaf module."""
    if isinstance(module, _POINTWISE):
        return rf
    if isinstance(module, _GLOBAL):
        return ReceptiveField(rf.rows.everything(), rf.cols.everything())
    if getattr(module, "ceil_mode", False):
        raise ValueError(f"{name}: ceil_mode is not supported")
    spans = layer_spans(module)
    if spans is not None:
        return ReceptiveField(rf.rows.then(spans[0]), rf.cols.then(spans[1]))
    raise ValueError(f"cannot tell the receptive field of module {name!r} ({type(module).__name__})")


def theoretical_receptive_field(model: nn.Module | Sequence[nn.Module]) -> ReceptiveField:
    """The TRF of ``model``'s output units, in pixels of its input.

    ``model`` is an fx-traceable module (``RNNPool2d`` and ``ReNet2d`` are kept as leaves) or a list
    of layers applied in turn. Branches that are added or concatenated (residual blocks) see the
    union of their fields. Raises ``ValueError`` for a layer whose field it cannot tell, rather than
    guess.
    """
    if not isinstance(model, nn.Module):
        layers = list(model)
        if not layers or not all(isinstance(m, nn.Module) for m in layers):
            raise TypeError("theoretical_receptive_field needs a module or a non-empty list of modules")
        model = nn.Sequential(*layers)
    if isinstance(model, (RNNPool2d, ReNet2d)) or RNNPoolLeafTracer().is_leaf_module(model, ""):
        return _through(_IDENTITY, model, type(model).__name__)
    graph = RNNPoolLeafTracer().trace(model)
    modules = dict(model.named_modules())
    fields: dict[fx.Node, ReceptiveField] = {}
    output: ReceptiveField | None = None
    for node in graph.nodes:
        inputs = [fields[a] for a in node.all_input_nodes if a in fields]
        if node.op == "placeholder":
            fields[node] = _IDENTITY
        elif node.op == "get_attr":
            continue
        elif node.op == "output":
            output = inputs[0]
        elif not inputs:
            continue  # a constant
        elif node.op == "call_module":
            fields[node] = _through(inputs[0], modules[node.target], str(node.target))
        elif (node.op == "call_function" and node.target in _ELEMENTWISE_FUNCTIONS) or \
                (node.op == "call_method" and node.target in _ELEMENTWISE_METHODS):
            rf = inputs[0]
            for other in inputs[1:]:
                rf = ReceptiveField(rf.rows.union(other.rows), rf.cols.union(other.cols))
            fields[node] = rf
        else:
            raise ValueError(f"cannot tell the receptive field through {node.op} {node.target!r}")
    assert output is not None
    return output


def sweep_channels(layer: RNNPool2d) -> dict[str, slice]:
    """The output channels of each of RNNPool's four sweeps (``h2`` each).

    In the order ``[rows fwd, rows bwd, cols fwd, cols bwd]`` (:data:`SWEEPS`).
    """
    if not isinstance(layer, RNNPool2d):
        raise TypeError(f"sweep_channels needs an RNNPool2d, got {type(layer).__name__}")
    h2 = layer.hidden_size2
    return {name: slice(k * h2, (k + 1) * h2) for k, name in enumerate(SWEEPS)}


def _unit(unit: str | tuple[int, int], height: int, width: int) -> tuple[int, int]:
    if unit == "center":
        return height // 2, width // 2
    if (not isinstance(unit, tuple) or len(unit) != 2
            or not all(isinstance(u, int) and not isinstance(u, bool) for u in unit)):
        raise ValueError(f"unit must be 'center' or a pair of ints (row, column), got {unit!r}")
    if not (0 <= unit[0] < height and 0 <= unit[1] < width):
        raise ValueError(f"unit {unit} is outside the {height}x{width} output map")
    return unit


def effective_receptive_field(module: nn.Module, images: Tensor, unit: str | tuple[int, int] = "center",
                              channels: int | slice | Sequence[int] | None = None,
                              batch_size: int = 64) -> Tensor:
    """The ERF of one output unit: ``|d y[n, channels, i, j] / d x[n]|``, summed over input channels and
    averaged over images.

    ``module`` maps ``(N, C, H, W)`` images to an ``(N, K, H', W')`` map and runs in eval mode here
    (training-mode BatchNorm would mix the images of a batch). ``unit`` is ``"center"`` (``(H'//2,
    W'//2)``) or ``(i, j)``; ``channels`` picks the output channels whose sum is differentiated (all by
    default; e.g. one sweep of RNNPool, see :func:`sweep_channels`). Absolute values are taken per
    image before averaging, so gradients of opposite sign in different images do not cancel.
    The images are moved to the module's device. Returns an ``(H, W)`` float tensor on the CPU.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a floating-point (N, C, H, W) tensor, got {shape}")
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else images.device
    was_training = module.training
    module.eval()
    total = torch.zeros(images.shape[2:], dtype=torch.float64)
    try:
        for chunk in images.split(batch_size):
            x = chunk.detach().to(device, copy=True).requires_grad_(True)
            y = module(x)
            if y.dim() != 4:
                raise ValueError(f"module output must be an (N, K, H, W) map, got shape {tuple(y.shape)}")
            i, j = _unit(unit, y.shape[2], y.shape[3])
            picked = y[:, :, i, j] if channels is None else y[:, channels, i, j]
            if picked.numel() == 0:
                raise ValueError(f"channels {channels!r} selects none of the {y.shape[1]} output channels")
            (grad,) = torch.autograd.grad(picked.sum(), x)
            total += grad.abs().sum(1).sum(0).double().cpu()
    finally:
        module.train(was_training)
    return (total / images.shape[0]).float()


@dataclass(frozen=True)
class ERFStats:
    """Numbers that summarise an ERF map (all in input pixels)."""

    area: int               # fewest pixels that hold ``mass`` of the gradient
    side: float             # sqrt(area): the side of a square of that area
    std: float              # RMS distance from the centroid along one axis (sqrt of the mean of var_y, var_x)
    centroid: tuple[float, float]  # (row, column), gradient-weighted
    mass: float             # the fraction used for ``area``


def erf_stats(erf: Tensor, mass: float = 0.9) -> ERFStats:
    """Area holding ``mass`` of the gradient, its square side, the spread and the centroid of an ERF map."""
    if not isinstance(erf, Tensor) or erf.dim() != 2:
        raise ValueError(f"erf must be a 2-D map, got {getattr(erf, 'shape', type(erf).__name__)}")
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass!r}")
    w = erf.detach().double().cpu()
    if (w < 0).any() or not torch.isfinite(w).all():
        raise ValueError("erf must be finite and non-negative")
    total = float(w.sum())
    if total == 0:
        raise ValueError("erf is zero everywhere: the unit does not depend on the input")
    ordered = w.flatten().sort(descending=True).values.cumsum(0)
    area = int(torch.searchsorted(ordered, torch.tensor([mass * total * (1 - 1e-12)], dtype=torch.float64)).item()) + 1
    area = min(area, w.numel())
    rows = torch.arange(w.shape[0], dtype=torch.float64)[:, None]
    cols = torch.arange(w.shape[1], dtype=torch.float64)[None, :]
    cy, cx = float((w * rows).sum() / total), float((w * cols).sum() / total)
    var = float((w * ((rows - cy) ** 2 + (cols - cx) ** 2)).sum() / total) / 2
    return ERFStats(area, math.sqrt(area), math.sqrt(var), (cy, cx), mass)


def mass_inside(erf: Tensor, mask: Tensor) -> float:
    """Fraction of the ERF's gradient that lies on ``mask`` (e.g. the TRF window: 1 up to rounding)."""
    total = float(erf.double().sum())
    if total == 0:
        raise ValueError("erf is zero everywhere")
    return float(erf.double()[mask].sum()) / total


def coverage(erf: Tensor, mask: Tensor, threshold: float = 0.0) -> float:
    """Fraction of the pixels on ``mask`` where the ERF exceeds ``threshold`` times its maximum."""
    if not mask.any():
        raise ValueError("mask selects no pixel")
    return float((erf[mask] > threshold * erf.max()).double().mean())


def deepest_prefix(layers: nn.Sequential, stride: int) -> nn.Sequential:
    """The longest prefix of ``layers`` whose output stride (product of strides) is exactly ``stride``.

    For MobileNetV2 and its RNNPool variants, stride 8 is the part RNNPool replaces (the stem conv
    plus the first three rows of inverted residuals) or the stem plus the RNNPool layer.
    """
    if not isinstance(layers, nn.Sequential):
        raise TypeError(f"layers must be an nn.Sequential, got {type(layers).__name__}")
    end = None
    for k in range(1, len(layers) + 1):
        jump = theoretical_receptive_field(layers[:k]).stride
        if jump == (stride, stride):
            end = k
        elif jump[0] > stride:
            break
    if end is None:
        raise ValueError(f"no prefix of these layers has output stride {stride}")
    return cast(nn.Sequential, layers[:end])  # a slice of a Sequential is a Sequential


__all__ = ["SWEEPS", "ReceptiveField", "ERFStats", "theoretical_receptive_field", "sweep_channels",
           "effective_receptive_field", "erf_stats", "mass_inside", "coverage", "deepest_prefix"]
