"""Recurrent cells for RNNPool, written for batched sweeps over many short sequences.

RNNPool runs thousands of tiny recurrences (length = patch size, hidden size 4-64) at once, so a
cell here is not stepped one sequence at a time. Each cell splits its work in two:

* ``input_weights()``: the matrix and bias of the input projection ``W x + b``. RNNPool applies
  it once per pixel, although a pixel appears in several patches and in both sweeps.
* ``scan(xs)``: the recurrence over projected inputs ``xs``, a sequence of ``T`` tensors
  ``(gates, hidden, B)`` (or one ``(T, gates, hidden, B)`` tensor), from a zero state, returning the last state ``(hidden, B)``. The
  only Python loop is over ``T``. The layout is feature-first (the batch is the innermost,
  contiguous axis): every elementwise op then runs on long contiguous rows, and ``U h`` is one
  ``(hidden, hidden) @ (hidden, B)`` product.

Sequences of different lengths share one ``scan``: shorter ones are left-padded and
``first_step`` (shape ``(B,)``) says at which step each starts; before it the state stays zero.

The nonlinearities can be swapped for the piecewise-linear ``quant_sigmoid`` /
``quant_tanh`` of the RNNPool paper (from the EdgeML code), which quantize to int8 without loss.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Activation = Callable[[Tensor], Tensor]


def quant_sigmoid(x: Tensor) -> Tensor:
    """Piecewise-linear sigmoid: ``clamp((x + 1) / 2, 0, 1)`` (EdgeML's ``quantSigm``)."""
    return torch.clamp((x + 1.0) * 0.5, 0.0, 1.0)


def quant_tanh(x: Tensor) -> Tensor:
    """Piecewise-linear tanh: ``clamp(x, -1, 1)`` (EdgeML's ``quantTanh``)."""
    return torch.clamp(x, -1.0, 1.0)


def _activations(piecewise_linear: bool) -> tuple[Activation, Activation]:
    if piecewise_linear:
        return quant_sigmoid, quant_tanh
    return torch.sigmoid, torch.tanh


def _logit(p: float, limit: float = 50.0) -> float:
    """Inverse sigmoid, clamped so that 0 and 1 map to finite values (sigmoid(50) == 1.0)."""
    if p <= 0.0:
        return -limit
    if p >= 1.0:
        return limit
    return max(-limit, min(limit, math.log(p) - math.log1p(-p)))


class RecurrentCell(nn.Module):
    """Common interface: ``input_weights`` applied once per position, ``scan`` over time."""

    #: width of the input projection, in multiples of ``hidden_size``
    gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, piecewise_linear: bool = False) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.piecewise_linear = piecewise_linear
        self._sigmoid, self._tanh = _activations(piecewise_linear)

    def input_weights(self) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        """``(weight (gates*hidden, input), bias (gates*hidden,))`` of the input projection."""
        raise NotImplementedError

    def scan(self, xs: Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:  # pragma: no cover
        """Run over ``T`` projected inputs ``(gates, hidden, B)``; return the last state ``(hidden, B)``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Run over a batch-first sequence ``(B, T, input_size)``; return the last state ``(B, hidden)``."""
        b, t, _ = x.shape
        weight, bias = self.input_weights()
        xs = F.linear(x, weight, bias).view(b, t, self.gates, self.hidden_size).permute(1, 2, 3, 0)
        return self.scan(xs.contiguous().unbind(0)).t()

    @staticmethod
    def _masked(t: int, first_step: Tensor | None, new: Tensor, old: Tensor | None) -> Tensor:
        if first_step is None:
            return new
        started = first_step <= t
        return torch.where(started, new, torch.zeros_like(new) if old is None else old)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s + (", piecewise_linear=True" if self.piecewise_linear else "")


class _FastGRNNScan(torch.autograd.Function):
    """FastGRNN recurrence with a hand-written backward pass (sigmoid nonlinearities only).

    Forward keeps, per step, ``[z, c]`` and the previous state; backward walks the steps in
    reverse with about a dozen contiguous elementwise ops each (autograd over the same loop
    records more ops and saves more tensors). The update gate arrives doubled:
    ``c = tanh(a) = 2 sigmoid(2a) - 1`` (see ``FastGRNNCell.input_weights``), so one in-place
    sigmoid serves both gates. zeta and nu enter as Python scalars: broadcasting a one-element
    tensor takes a slow path on CPU.
    """

    @staticmethod
    def forward(ctx, fixed: bool, u: Tensor, zeta: Tensor, nu: Tensor, *xs: Tensor) -> Tensor:
        zeta_f, nu_f = float(zeta), float(nu)
        keep = any(ctx.needs_input_grad)  # inference keeps nothing for a backward pass
        zcs, states = _fastgrnn_forward(list(xs), u, zeta_f, nu_f, fixed, keep)
        if keep:
            ctx.save_for_backward(u, zeta, *zcs, *states[:-1])
            ctx.fixed, ctx.zeta, ctx.nu, ctx.steps = fixed, zeta_f, nu_f, len(xs)
        return states[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        u, zeta_t, *saved = ctx.saved_tensors
        steps = ctx.steps
        grads, grad_u, grad_zeta, grad_nu = _fastgrnn_backward(
            grad_h, saved[:steps], saved[steps:], u, ctx.zeta, ctx.nu, ctx.fixed
        )
        return (None, grad_u, torch.full_like(zeta_t, grad_zeta), torch.full_like(zeta_t, grad_nu), *grads)


def _fastgrnn_forward(
    xs: Iterable[Tensor], u: Tensor, zeta: float, nu: float, fixed: bool, keep: bool
) -> tuple[list[Tensor], list[Tensor]]:
    """All steps: per step ``[z, c]`` and the states ``h_0 .. h_T``.

    Without ``keep`` the buffers are reused, only the last state is returned, and ``xs`` may be
    a generator that refills one buffer per step (each step's input is read before the next).
    """
    zcs: list[Tensor] = []
    states: list[Tensor] = []
    for t, x in enumerate(xs):
        if t == 0:
            states.append(x.new_zeros(x.shape[1:]))
            gates, spare = torch.empty_like(x), torch.empty_like(states[0])
        h = states[-1]
        s = torch.empty_like(x) if keep else gates
        if t == 0:
            s.copy_(x)
        else:
            uh = torch.mm(u, h)
            torch.add(x[0], uh, out=s[0])
            torch.add(x[1], uh, alpha=2.0, out=s[1])
        s.sigmoid_()
        z, c = s[0], s[1].mul_(2.0).sub_(1.0)
        new = torch.empty_like(h) if keep or t == 0 else spare
        if fixed:  # h' = c + z (h - c)
            torch.lerp(c, h, z, out=new)
        else:  # h' = (zeta + nu) c + z (h - zeta c)
            torch.add(h, c, alpha=-zeta, out=new).mul_(z).add_(c, alpha=zeta + nu)
        if keep:
            zcs.append(s)
            states.append(new)
        else:
            states, spare = [new], h
    return zcs, states


def _fastgrnn_backward(
    grad_h: Tensor, zcs: Sequence[Tensor], states: Sequence[Tensor], u: Tensor, zeta: float,
    nu: float, fixed: bool,
) -> tuple[list[Tensor], Tensor, float, float]:
    """Backward through all steps: per-step input gradients, ``dU``, ``dzeta`` and ``dnu``."""
    grads = [torch.empty_like(zc) for zc in zcs]
    grad_u = torch.zeros_like(u)
    grad_zeta = grad_nu = 0.0
    dh = grad_h.contiguous()
    for t in reversed(range(len(zcs))):
        z, c, h_prev, g = zcs[t][0], zcs[t][1], states[t], grads[t]
        if fixed:
            dz = torch.sub(h_prev, c).mul_(dh)
            dc = torch.addcmul(dh, dh, z, value=-1.0)
        else:
            dz = torch.add(h_prev, c, alpha=-zeta).mul_(dh)
            dhc = dh * c
            sum_dhc = float(dhc.sum())
            grad_nu += sum_dhc
            grad_zeta += sum_dhc - float((dhc * z).sum())
            dc = torch.mul(z, -zeta).add_(zeta + nu).mul_(dh)
        torch.mul(dz, torch.addcmul(z, z, z, value=-1.0), out=g[0])  # sigmoid'
        torch.addcmul(dc, dc, c * c, value=-1.0, out=g[1]).mul_(0.5)  # (1 - c^2) / 2
        if t > 0:
            d_uh = torch.add(g[0], g[1], alpha=2.0)
            grad_u.addmm_(d_uh, h_prev.t())
            dh = torch.addmm(dh * z, u.t(), d_uh)
    return grads, grad_u, grad_zeta, grad_nu


class FastGRNNCell(RecurrentCell):
    """FastGRNN (Kusupati et al., 2018), the cell of the RNNPool paper.

    ``pre = W x + U h``; ``z = sigmoid(pre + bias_gate)``; ``c = tanh(pre + bias_update)``;
    ``h' = (zeta (1 - z) + nu) c + z h``. ``zeta`` and ``nu`` are the sigmoids of the learnable
    ``zeta_raw`` and ``nu_raw`` (so they stay in (0, 1)), as in EdgeML; with
    ``learn_zeta_nu=False`` they are fixed at 1 and 0, the paper's setting, and the update is an
    exact ``lerp(c, h, z)``.
    """

    gates = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        piecewise_linear: bool = False,
        learn_zeta_nu: bool = True,
        zeta_init: float = 1.0,
        nu_init: float = -4.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(input_size, hidden_size, piecewise_linear)
        kw = {"device": device, "dtype": dtype}
        self.learn_zeta_nu = learn_zeta_nu
        self.W = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.U = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        self.bias_gate = nn.Parameter(torch.ones(hidden_size, **kw))
        self.bias_update = nn.Parameter(torch.ones(hidden_size, **kw))
        if learn_zeta_nu:
            self.zeta_raw = nn.Parameter(torch.full((1,), zeta_init, **kw))
            self.nu_raw = nn.Parameter(torch.full((1,), nu_init, **kw))
        nn.init.kaiming_uniform_(self.W, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.U, a=math.sqrt(5))

    @property
    def zeta(self) -> Tensor:
        """Effective zeta in (0, 1) (exactly 1 when not learned)."""
        if self.learn_zeta_nu:
            return torch.sigmoid(self.zeta_raw)
        return torch.ones(1, dtype=self.W.dtype, device=self.W.device)

    @property
    def nu(self) -> Tensor:
        """Effective nu in (0, 1) (exactly 0 when not learned)."""
        if self.learn_zeta_nu:
            return torch.sigmoid(self.nu_raw)
        return torch.zeros(1, dtype=self.W.dtype, device=self.W.device)

    def set_zeta_nu(self, zeta: float, nu: float) -> None:
        """Set the effective zeta and nu (stored as their logits when learned)."""
        if not self.learn_zeta_nu:
            if zeta != 1.0 or nu != 0.0:
                raise ValueError("a cell with learn_zeta_nu=False has zeta = 1 and nu = 0 fixed")
            return
        with torch.no_grad():
            self.zeta_raw.fill_(_logit(zeta))
            self.nu_raw.fill_(_logit(nu))

    def input_weights(self) -> tuple[Tensor, Tensor]:
        """``[W; 2 W]`` and ``[b_gate; 2 b_update]``: the update half is doubled.

        The scan computes ``tanh(a)`` as ``2 sigmoid(2 a) - 1`` so that one in-place sigmoid
        covers both gates (``tanh`` is about 3x slower than ``sigmoid`` on CPU). With the
        piecewise-linear option nothing is doubled.
        """
        scale = 1.0 if self.piecewise_linear else 2.0
        weight = torch.cat([self.W, scale * self.W])
        return weight, torch.cat([self.bias_gate, scale * self.bias_update])

    def scan(self, xs: Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:
        if not self.piecewise_linear and first_step is None:
            return _FastGRNNScan.apply(not self.learn_zeta_nu, self.U, self.zeta, self.nu, *xs)
        return self._scan_autograd(xs, first_step)

    def scan_streaming(self, xs: Iterable[Tensor]) -> Tensor:
        """Inference-only scan over step inputs that may share one buffer (no autograd).

        Lets RNNPool gather each step into the same buffer instead of materializing all ``T``.
        """
        if self.piecewise_linear:
            return self._scan_autograd([x.clone() for x in xs])
        zeta, nu = float(self.zeta), float(self.nu)
        return _fastgrnn_forward(xs, self.U, zeta, nu, not self.learn_zeta_nu, keep=False)[1][-1]

    def _scan_autograd(self, xs: Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:
        """The same recurrence through autograd (piecewise-linear, or unequal lengths)."""
        gate_scale = xs[0].new_tensor([1.0, 1.0 if self.piecewise_linear else 2.0]).view(2, 1, 1)
        zeta, nu = self.zeta, self.nu
        h: Tensor | None = None
        for t in range(len(xs)):
            pre = xs[t] if h is None else torch.addcmul(xs[t], self.U @ h, gate_scale)
            if self.piecewise_linear:
                z, c = quant_sigmoid(pre[0]), quant_tanh(pre[1])
            else:
                s = torch.sigmoid(pre)
                z, c = s[0], 2.0 * s[1] - 1.0
            new = (zeta * (1.0 - z) + nu) * c
            if h is not None:
                new = new + z * h
            h = self._masked(t, first_step, new, h)
        assert h is not None
        return h

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.learn_zeta_nu else ", learn_zeta_nu=False")


class _TorchGatedCell(RecurrentCell):
    """Shared storage of GRU and LSTM: PyTorch's parameter names, shapes and uniform init,
    so that weights copy one-to-one from ``nn.GRUCell`` / ``nn.LSTMCell``."""

    def __init__(self, input_size: int, hidden_size: int, piecewise_linear: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, piecewise_linear)
        kw = {"device": device, "dtype": dtype}
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(rows, **kw))
        self.bias_hh = nn.Parameter(torch.empty(rows, **kw))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)


class GRUCell(_TorchGatedCell):
    """GRU with PyTorch's equations and parameter names (``weight_ih``, ``weight_hh``, ...)."""

    gates = 3

    def input_weights(self) -> tuple[Tensor, Tensor]:
        return self.weight_ih, self.bias_ih

    def scan(self, xs: Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:
        hsz = self.hidden_size
        bhh = self.bias_hh.view(3, hsz, 1)
        h: Tensor | None = None
        for t in range(len(xs)):
            x = xs[t]  # (3, h, B): r, z, n
            hp = bhh if h is None else torch.addmm(self.bias_hh[:, None], self.weight_hh, h).view(3, hsz, -1)
            rz = self._sigmoid(x[:2] + hp[:2])
            r, z = rz[0], rz[1]
            n = self._tanh(torch.addcmul(x[2], r, hp[2]))
            new = n - z * n if h is None else torch.lerp(n, h, z)
            h = self._masked(t, first_step, new, h)
        assert h is not None
        return h


class LSTMCell(_TorchGatedCell):
    """LSTM with PyTorch's equations and parameter names; the summary is the hidden state h."""

    gates = 4

    def input_weights(self) -> tuple[Tensor, Tensor]:
        # both biases are added once per position; the step only adds U h
        return self.weight_ih, self.bias_ih + self.bias_hh

    def scan(self, xs: Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:
        hsz = self.hidden_size
        h: Tensor | None = None
        c: Tensor | None = None
        for t in range(len(xs)):
            g = xs[t] if h is None else xs[t] + (self.weight_hh @ h).view(4, hsz, -1)
            i, f, o = self._sigmoid(g[0]), self._sigmoid(g[1]), self._sigmoid(g[3])
            cand = self._tanh(g[2])
            c_new = i * cand if c is None else torch.addcmul(i * cand, f, c)
            h_new = o * self._tanh(c_new)
            c = self._masked(t, first_step, c_new, c)
            h = self._masked(t, first_step, h_new, h)
        assert h is not None
        return h


CELLS: dict[str, type[RecurrentCell]] = {
    "fastgrnn": FastGRNNCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
}


def make_cell(name: str, input_size: int, hidden_size: int, **kwargs) -> RecurrentCell:
    """Build a cell by name (``"fastgrnn"``, ``"gru"`` or ``"lstm"``)."""
    if not isinstance(name, str) or name.lower() not in CELLS:
        raise ValueError(f"unknown cell {name!r}; choose one of {sorted(CELLS)}")
    cls = CELLS[name.lower()]
    if cls is not FastGRNNCell:
        kwargs.pop("learn_zeta_nu", None)
    return cls(input_size, hidden_size, **kwargs)
