"""``RNNPool2d``: the RNNPool operator (Algorithm 1 of the paper) slid over a feature map.

Semantics, per output position (one ``kh x kw`` patch of the zero-padded input):

1. RNN1 (hidden ``h1``) runs left to right along each of the ``kh`` rows of the patch and
   top to bottom along each of the ``kw`` columns; its last states are the row and column
   summaries.
2. RNN2 (hidden ``h2``) runs over the row summaries top to bottom and bottom to top, and over the
   column summaries left to right and right to left (one weight set for all four sweeps).
3. The output is ``[rows forward, rows backward, columns forward, columns backward]``: ``4 h2``
   channels.

How it is computed fast (the result is the same as the per-patch definition, see
``rnnpool_lite.op.reference``; all recurrences use a feature-first layout ``(hidden, batch)``):

* A row summary depends only on its row segment, so vertically overlapping patches share row
  summaries; RNN1 runs once per (image row, horizontal patch position), and once per (image
  column, vertical patch position) for the columns - not once per patch.
* The input projection ``W x`` of RNN1 is computed once per pixel, that of RNN2 once per summary.
* The row and column sweeps of RNN1 are one batched recurrence; the four RNN2 sweeps are another.
  The only Python loop is over time steps (at most the kernel size).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnpool_lite import validate
from rnnpool_lite.op.cells import FastGRNNCell, RecurrentCell, make_cell

IntPair = int | tuple[int, int]


def pooled_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a pooling window along one axis: ``(size + 2p - k) // s + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


class _Group(NamedTuple):
    """One group of sequences read from a source map: see :func:`_gather_steps`."""

    source: int  # index into the source tensors
    dim: int  # axis along which the sequence advances
    stride: int  # distance between the starts of neighbouring sequences along ``dim``
    count: int  # number of sequence starts along ``dim``
    length: int  # sequence length
    reverse: bool  # read the sequence backwards


def _slab(src: Tensor, dim: int, start: int, stride: int, count: int) -> Tensor:
    """``src`` at positions ``start, start + stride, ...`` (``count`` of them) along ``dim``."""
    index = [slice(None)] * src.dim()
    index[dim] = slice(start, start + stride * (count - 1) + 1, stride)
    return src[tuple(index)]


class _StepLayout:
    """Where each group's slab goes in a step's ``(G, B)`` input, and how to fill a step."""

    def __init__(self, groups: Sequence[_Group], sources: Sequence[Tensor]) -> None:
        self.groups = groups
        self.slabs = [tuple(_slab(sources[g.source], g.dim, 0, g.stride, g.count).shape) for g in groups]
        self.sizes = [math.prod(shape[1:]) for shape in self.slabs]
        self.width, self.total = sources[0].shape[0], sum(self.sizes)

    def pieces(self, step: Tensor, t: int, steps: int):
        """For step ``t``: each group's ``(group, part of step viewed as its slab, position)``.

        ``step`` is a ``(G, B)`` step tensor; the position is ``None`` before a short group starts.
        """
        start = 0
        for g, shape, size in zip(self.groups, self.slabs, self.sizes):
            local = t - (steps - g.length)
            pos = None if local < 0 else (g.length - 1 - local if g.reverse else local)
            yield g, step[:, start : start + size].view(shape), pos
            start += size

    def fill(self, out: Tensor, t: int, steps: int, sources: Sequence[Tensor]) -> None:
        """Write step ``t`` of every group into ``out`` (zeros before a short group starts)."""
        for g, dest, pos in self.pieces(out, t, steps):
            if pos is None:
                dest.zero_()
            else:
                dest.copy_(_slab(sources[g.source], g.dim, pos, g.stride, g.count))

    def add_back(self, grads: Sequence[Tensor], grad: Tensor, t: int, steps: int) -> None:
        """Add step ``t``'s gradient back into the sources' gradients (inverse of ``fill``)."""
        for g, piece, pos in self.pieces(grad, t, steps):
            if pos is not None:
                _slab(grads[g.source], g.dim, pos, g.stride, g.count).add_(piece)


def _stream_steps(groups: Sequence[_Group], sources: Sequence[Tensor], gates: int, hidden: int):
    """Yield each step's ``(gates, hidden, B)`` input, refilling one buffer (inference only)."""
    layout = _StepLayout(groups, sources)
    steps = max(g.length for g in groups)
    out = sources[0].new_empty(layout.width, layout.total)
    for t in range(steps):
        layout.fill(out, t, steps, sources)
        yield out.view(gates, hidden, -1)


class _GatherSteps(torch.autograd.Function):
    """Gather the per-step inputs ``(G, B)`` of all sequences from the maps they live in.

    A sequence that starts at position ``p`` along ``dim`` reads ``p, p + 1, ..., p + L - 1``; at
    step ``t`` the inputs of all sequences of a group are therefore one strided slab of the
    source, copied with a single ``copy_`` (groups shorter than ``T`` are left-padded with
    zeros). Backward adds each step's gradient slab back in place. Written as a Function
    because autograd through per-step slicing would allocate a full-size gradient per step;
    one tensor per step (not one ``(T, G, B)`` block) keeps each allocation in malloc's heap.
    """

    @staticmethod
    def forward(ctx, steps: int, groups: tuple[_Group, ...], *sources: Tensor) -> tuple[Tensor, ...]:
        layout = _StepLayout(groups, sources)
        outs = []
        for t in range(steps):
            out = sources[0].new_empty(layout.width, layout.total)
            layout.fill(out, t, steps, sources)
            outs.append(out)
        ctx.layout = layout
        ctx.source_shapes = [src.shape for src in sources]
        return tuple(outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_outs: Tensor):
        grads = [grad_outs[0].new_zeros(shape) for shape in ctx.source_shapes]
        steps = len(grad_outs)
        for t, grad in enumerate(grad_outs):
            if grad is not None:
                ctx.layout.add_back(grads, grad.contiguous(), t, steps)
        return (None, None, *grads)


def _sweep(cell: RecurrentCell, groups: Sequence[_Group], *sources: Tensor) -> Tensor:
    """Run ``cell`` over all sequences of ``groups`` (read from ``sources``): ``(hidden, B)``.

    Sequences shorter than the longest are left-padded and start later (``first_step``). In
    inference with equal lengths, a FastGRNN cell reads each step from one reused buffer.
    """
    steps = max(g.length for g in groups)
    equal = all(g.length == steps for g in groups)
    needs_grad = torch.is_grad_enabled() and (
        any(s.requires_grad for s in sources) or any(p.requires_grad for p in cell.parameters())
    )
    if equal and not needs_grad and isinstance(cell, FastGRNNCell):
        return cell.scan_streaming(_stream_steps(groups, sources, cell.gates, cell.hidden_size))
    outs = _GatherSteps.apply(steps, tuple(groups), *sources)
    xs = [o.view(cell.gates, cell.hidden_size, -1) for o in outs]
    if equal:
        return cell.scan(xs)
    counts = [_slab(sources[g.source], g.dim, 0, g.stride, g.count)[0].numel() for g in groups]
    first_step = torch.cat(
        [torch.full((n,), steps - g.length, device=outs[0].device) for n, g in zip(counts, groups)]
    )
    return cell.scan(xs, first_step)


class RNNPool2d(nn.Module):
    """RNNPool as a pooling layer: ``(N, C, H, W) -> (N, 4 * hidden_size2, H_out, W_out)``.

    ``H_out = (H + 2 p - k) // s + 1`` (likewise ``W_out``), with zero padding, as in
    ``nn.MaxPool2d``; ``stride`` defaults to ``kernel_size``.

    Args:
        in_channels: channels ``C`` of the input.
        hidden_size: hidden size ``h1`` of RNN1, which sweeps rows and columns of a patch.
        kernel_size: patch size, an int or ``(kh, kw)``.
        stride: patch stride (default: ``kernel_size``).
        padding: zero padding on each side, an int or ``(ph, pw)``.
        hidden_size2: hidden size ``h2`` of RNN2 (default: ``hidden_size``).
        cell: ``"fastgrnn"`` (the paper's), ``"gru"`` or ``"lstm"`` (Table 18's ablation).
        piecewise_linear: use quantSigmoid / quantTanh, for models that will run in int8.
        learn_zeta_nu: FastGRNN only: learn zeta and nu (EdgeML's default), or fix them at
            zeta = 1, nu = 0 as the paper's experiments do.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_size: int,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        hidden_size2: int | None = None,
        cell: str = "fastgrnn",
        *,
        piecewise_linear: bool = False,
        learn_zeta_nu: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = validate.positive_int("in_channels", in_channels)
        self.hidden_size = validate.positive_int("hidden_size", hidden_size)
        self.hidden_size2 = validate.positive_int(
            "hidden_size2", hidden_size if hidden_size2 is None else hidden_size2
        )
        self.kernel_size = validate.pair("kernel_size", kernel_size)
        self.stride = validate.pair("stride", self.kernel_size if stride is None else stride)
        self.padding = validate.pair("padding", padding, minimum=0)
        if not isinstance(cell, str):
            raise TypeError(f"cell must be a string, got {type(cell).__name__}")
        self.cell = cell.lower()
        options = dict(piecewise_linear=piecewise_linear, learn_zeta_nu=learn_zeta_nu,
                       device=device, dtype=dtype)
        self.rnn1: RecurrentCell = make_cell(self.cell, self.in_channels, self.hidden_size, **options)
        self.rnn2: RecurrentCell = make_cell(self.cell, self.hidden_size, self.hidden_size2, **options)

    @property
    def out_channels(self) -> int:
        """Channels of the output: ``4 * hidden_size2``."""
        return 4 * self.hidden_size2

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial output size for an input of ``height x width``."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return pooled_size(height, kh, sh, ph), pooled_size(width, kw, sw, pw)

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"RNNPool2d expects a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"RNNPool2d expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"RNNPool2d was built for {self.in_channels} input channels, got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )
        if not x.is_floating_point():
            raise TypeError(f"RNNPool2d expects a floating-point input, got {x.dtype}")
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        h, w = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
        if h < kh or w < kw:
            raise ValueError(
                f"input of {x.shape[2]}x{x.shape[3]} (padded to {h}x{w}) is smaller than the "
                f"{kh}x{kw} kernel"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        n, c = x.shape[:2]
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        ho, wo = pooled_size(x.shape[2], kh, sh, 0), pooled_size(x.shape[3], kw, sw, 0)
        if n == 0:
            return x.new_zeros(0, self.out_channels, ho, wo)
        rnn1, rnn2 = self.rnn1, self.rnn2
        h2 = self.hidden_size2

        # RNN1 input projection, once per pixel: (G1, N, H, W), feature-first. The whole map is
        # projected; rows / columns beyond the last patch (at most stride - 1 of them) make a few
        # wasted sequences, which is cheaper than cropping (the crop's backward zero-fills a
        # gradient the size of the input).
        w1, b1 = rnn1.input_weights()
        height, width = x.shape[2:]
        pixels = x.transpose(0, 1).reshape(c, -1)
        p1 = torch.addmm(b1[:, None], w1, pixels).view(-1, n, height, width)
        # Row sequences (n, image row y, patch column j) read p1[.., y, j*sw + t]; column
        # sequences (n, patch row i, image column x) read p1[.., i*sh + t, x]: one recurrence.
        summaries = _sweep(rnn1, [_Group(0, 3, sw, wo, kw, False), _Group(0, 2, sh, ho, kh, False)], p1)

        # RNN2 input projection, once per summary; then the four sweeps of every patch at once.
        w2, b2 = rnn2.input_weights()
        p2 = torch.addmm(b2[:, None], w2, summaries)
        n_rows = n * height * wo
        rows = p2[:, :n_rows].view(-1, n, height, wo)  # row summaries, indexed (n, y, j)
        cols = p2[:, n_rows:].view(-1, n, ho, width)  # column summaries, indexed (n, i, x)
        groups2 = [
            _Group(0, 2, sh, ho, kh, False),
            _Group(0, 2, sh, ho, kh, True),
            _Group(1, 3, sw, wo, kw, False),
            _Group(1, 3, sw, wo, kw, True),
        ]
        out = _sweep(rnn2, groups2, rows, cols)  # (h2, 4*N*ho*wo)
        # (h2, [sweep, n, i, j]) -> (n, [sweep, h2], i, j)
        return out.view(h2, 4, n, ho, wo).permute(2, 1, 0, 3, 4).reshape(n, self.out_channels, ho, wo)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, hidden_size={self.hidden_size}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, hidden_size2={self.hidden_size2}, "
            f"cell={self.cell!r}"
        )
        if self.rnn1.piecewise_linear:
            s += ", piecewise_linear=True"
        if isinstance(self.rnn1, FastGRNNCell) and not self.rnn1.learn_zeta_nu:
            s += ", learn_zeta_nu=False"
        return s

    # -- interoperability with the authors' C reference (EdgeML) ----------------------------

    _EDGEML_KEYS = ("W", "U", "Bg", "Bh", "sigmoid_zeta", "sigmoid_nu")

    @classmethod
    def from_edgeml(
        cls,
        params: Mapping[str, Any],
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        *,
        piecewise_linear: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> RNNPool2d:
        """Build a FastGRNN layer from EdgeML's C-reference parameter names.

        ``params`` holds ``W1, U1, Bg1, Bh1, sigmoid_zeta1, sigmoid_nu1`` and the same with 2
        (arrays or nested lists). ``W`` is ``(hidden, input)``, ``U`` is ``(hidden, hidden)``, the
        biases are ``(hidden,)`` (a ``(1, hidden)`` row is accepted), and zeta / nu are the
        effective values (after the sigmoid).
        """
        missing = [f"{k}{i}" for i in (1, 2) for k in cls._EDGEML_KEYS if f"{k}{i}" not in params]
        if missing:
            raise KeyError(f"EdgeML parameters missing: {', '.join(missing)}")
        arrays = {k: np.asarray(params[k], dtype=np.float64) for k in params if k[:-1] in cls._EDGEML_KEYS}
        w1, w2 = arrays["W1"], arrays["W2"]
        if w1.ndim != 2 or w2.ndim != 2:
            raise ValueError(f"W1 and W2 must be 2-D (hidden, input), got {w1.shape} and {w2.shape}")
        h1, c = w1.shape
        h2 = w2.shape[0]
        if w2.shape[1] != h1:
            raise ValueError(f"W2 must be (hidden2, hidden1={h1}), got {w2.shape}")
        layer = cls(c, h1, kernel_size, stride, padding, h2, "fastgrnn",
                    piecewise_linear=piecewise_linear, learn_zeta_nu=True,
                    device=device, dtype=dtype)
        for i, rnn in ((1, layer.rnn1), (2, layer.rnn2)):
            assert isinstance(rnn, FastGRNNCell)
            hidden = rnn.hidden_size
            expected = {"W": rnn.W.shape, "U": (hidden, hidden), "Bg": (hidden,), "Bh": (hidden,)}
            with torch.no_grad():
                for key, target in (("W", rnn.W), ("U", rnn.U), ("Bg", rnn.bias_gate), ("Bh", rnn.bias_update)):
                    value = arrays[f"{key}{i}"]
                    if key in ("Bg", "Bh"):
                        value = value.reshape(-1)
                    if tuple(value.shape) != tuple(expected[key]):
                        raise ValueError(f"{key}{i} must have shape {tuple(expected[key])}, got {value.shape}")
                    target.copy_(torch.as_tensor(value))
            rnn.set_zeta_nu(float(arrays[f"sigmoid_zeta{i}"]), float(arrays[f"sigmoid_nu{i}"]))
        return layer

    def to_edgeml(self) -> dict[str, np.ndarray | float]:
        """Parameters under EdgeML's C-reference names (inverse of :meth:`from_edgeml`)."""
        if not isinstance(self.rnn1, FastGRNNCell) or not isinstance(self.rnn2, FastGRNNCell):
            raise TypeError(f"to_edgeml needs the fastgrnn cell, this layer uses {self.cell!r}")
        out: dict[str, np.ndarray | float] = {}
        for i, rnn in ((1, self.rnn1), (2, self.rnn2)):
            out[f"W{i}"] = rnn.W.detach().cpu().numpy().copy()
            out[f"U{i}"] = rnn.U.detach().cpu().numpy().copy()
            out[f"Bg{i}"] = rnn.bias_gate.detach().cpu().numpy().copy()
            out[f"Bh{i}"] = rnn.bias_update.detach().cpu().numpy().copy()
            out[f"sigmoid_zeta{i}"] = float(rnn.zeta.detach())
            out[f"sigmoid_nu{i}"] = float(rnn.nu.detach())
        return out
