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
* All sequences of a sweep direction are one batched recurrence, and the four RNN2 sweeps are
  one (two when ``kh != kw``); the only Python loop is over time steps (at most the kernel size).
* With FastGRNN cells (the paper's) the whole layer is one autograd Function with a
  hand-written backward, run a few images at a time so that its tensors stay in cache
  (``rnnpool_lite.op.fused``). GRU, LSTM and the piecewise-linear FastGRNN run the same
  schedule through autograd (:func:`pool_with_cells`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnpool_lite import validate
from rnnpool_lite.op.cells import FastGRNNCell, RecurrentCell, make_cell
from rnnpool_lite.op.fused import PoolGeometry, fused_pool

IntPair = int | tuple[int, int]


def pooled_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a pooling window along one axis: ``(size + 2p - k) // s + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


class _Sweep(NamedTuple):
    """Sliding windows of one map read as sequences: ``steps`` positions along ``dim``, ``stride`` apart."""

    source: int  # which map
    dim: int
    steps: int
    stride: int
    backwards: bool

    def step(self, maps: Sequence[Tensor], t: int) -> Tensor:
        """Step ``t`` of every window, ``(channels, *batch)``: a view of the map."""
        window = maps[self.source].unfold(self.dim, self.steps, self.stride)
        return window[..., self.steps - 1 - t if self.backwards else t]


class _GatherSteps(torch.autograd.Function):
    """The sweeps' steps: ``T`` tensors ``(channels, B)``, the sweeps' batches one after another.

    A copy in and a sum back, one strided op per step and sweep; autograd over the same
    ``unfold`` indexing would fill a zero map per step and sum overlapping windows slowly, and
    unbinding one time-major tensor would stack the steps' gradients again.
    """

    @staticmethod
    def forward(ctx, sweeps: tuple[_Sweep, ...], *maps: Tensor) -> tuple[Tensor, ...]:
        sizes = [sweep.step(maps, 0)[0].numel() for sweep in sweeps]
        outs = []
        for t in range(sweeps[0].steps):
            out = maps[0].new_empty(maps[0].shape[0], sum(sizes))
            start = 0
            for sweep, size in zip(sweeps, sizes):
                view = sweep.step(maps, t)
                out[:, start : start + size].view(view.shape).copy_(view)
                start += size
            outs.append(out)
        ctx.sweeps, ctx.sizes, ctx.shapes = sweeps, sizes, [m.shape for m in maps]
        return tuple(outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_steps: Tensor):
        grads = [grad_steps[0].new_zeros(shape) for shape in ctx.shapes]
        for t, grad in enumerate(grad_steps):
            start = 0
            for sweep, size in zip(ctx.sweeps, ctx.sizes):
                view = sweep.step(grads, t)
                view.add_(grad[:, start : start + size].reshape(view.shape))
                start += size
        return (None, *grads)


def _scan(cell: RecurrentCell, sweeps: list[_Sweep], maps: Sequence[Tensor]) -> Tensor:
    """Last states ``(hidden, B)`` of ``cell`` over ``sweeps`` of the projected ``maps``; sweeps of
    equal length run as one recurrence, and their batches follow one another in ``sweeps``' order."""
    states = []
    for length in dict.fromkeys(s.steps for s in sweeps):
        group = tuple(s for s in sweeps if s.steps == length)
        steps = _GatherSteps.apply(group, *maps)
        states.append(cell.scan([step.view(cell.gates, cell.hidden_size, -1) for step in steps]))
    return states[0] if len(states) == 1 else torch.cat(states, 1)


def pool_with_cells(layer: RNNPool2d, x: Tensor, geo: PoolGeometry) -> Tensor:
    """RNNPool of ``x`` ``(N, C, bh sh, bw sw)`` (cut to blocks) through the cells' ``scan`` and autograd.

    Works with every cell; the layer uses it for GRU, LSTM and piecewise-linear FastGRNN. The
    input projections run once per pixel (RNN1) and once per summary (RNN2), and sweeps of equal
    length share one recurrence (RNN1's rows and columns, the four RNN2 sweeps, when
    ``kh == kw``): each time step is then a few large ops instead of several small ones.
    """
    rnn1, rnn2 = layer.rnn1, layer.rnn2
    (kh, kw), (sh, sw), (ho, wo) = geo.kernel, geo.stride, geo.out
    n, c, height, width = x.shape
    h2 = rnn2.hidden_size
    w1, b1 = rnn1.input_weights()
    p1 = torch.addmm(b1[:, None], w1, x.transpose(0, 1).reshape(c, -1)).view(-1, n, height, width)
    # RNN1: rows (n, y, j) read p1[.., y, j sw + t], columns (n, i, x) read p1[.., i sh + t, x];
    # the summaries come out rows first, then columns (when kh != kw the order of sweeps is the same)
    summaries = _scan(rnn1, [_Sweep(0, 3, kw, sw, False), _Sweep(0, 2, kh, sh, False)], [p1])
    # RNN2 over each patch's kh row summaries and kw column summaries, both directions, the
    # input projection once per summary
    w2, b2 = rnn2.input_weights()
    p2 = torch.addmm(b2[:, None], w2, summaries)
    n_rows = n * height * wo
    maps = [p2[:, :n_rows].view(-1, n, height, wo), p2[:, n_rows:].view(-1, n, ho, width)]
    sweeps = [_Sweep(0, 2, kh, sh, False), _Sweep(0, 2, kh, sh, True),
              _Sweep(1, 3, kw, sw, False), _Sweep(1, 3, kw, sw, True)]
    out = _scan(rnn2, sweeps, maps)
    return out.view(h2, 4, n, ho, wo).permute(2, 1, 0, 3, 4).reshape(n, 4 * h2, ho, wo)


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
        (ph, pw) = self.padding
        height, width = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
        geo = PoolGeometry.of(self.kernel_size, self.stride, self.output_size(x.shape[2], x.shape[3]))
        if x.shape[0] == 0:
            return x.new_zeros(0, self.out_channels, *geo.out)
        # the output follows a channels_last input (as convolutions do)
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        # zero padding, then cut to whole stride blocks (drops rows / columns of no patch)
        rows, cols = geo.size
        pads = (pw, cols - width + pw, ph, rows - height + ph)
        if any(p > 0 for p in pads):
            x = F.pad(x, pads)
        elif any(pads):  # a cut alone: a view, not a copy (the paths gather their patches from it)
            x = x[:, :, :rows, :cols]
        rnn1, rnn2 = self.rnn1, self.rnn2
        if (isinstance(rnn1, FastGRNNCell) and isinstance(rnn2, FastGRNNCell)
                and not rnn1.piecewise_linear and not rnn2.piecewise_linear):
            if torch.is_autocast_enabled(x.device.type):
                # the hand-written backward runs in the weights' float32; so does the forward under
                # autocast (as autocast itself keeps recurrences and reductions in float32)
                with torch.autocast(x.device.type, enabled=False):
                    return fused_pool((rnn1, rnn2), x.float(), geo, fmt)
            return fused_pool((rnn1, rnn2), x, geo, fmt)
        return pool_with_cells(self, x, geo).contiguous(memory_format=fmt)

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
