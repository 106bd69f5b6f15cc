"""Recurrent cells for RNNPool, written for batched sweeps over many short sequences.

RNNPool runs thousands of tiny recurrences (length = patch size, hidden size 4-64) at once, so a
cell here is not stepped one sequence at a time. Each cell splits its work in two:

* ``input_weights()``: the matrix and bias of the input projection ``W x + b``. RNNPool applies
  it once per pixel, although a pixel appears in several patches and in both sweeps.
* ``scan(xs)``: the recurrence over projected inputs ``xs``, a sequence of ``T`` tensors
  ``(gates, hidden, B)`` (or one ``(T, gates, hidden, B)`` tensor), from a zero state,
  returning the last state ``(hidden, B)``. The only Python loop is over ``T``. The layout is
  feature-first (the batch is the innermost, contiguous axis): every elementwise op then runs
  on long contiguous rows, and ``U h`` is one ``(hidden, hidden) @ (hidden, B)`` product.

FastGRNN's recurrence is also available as two plain functions, :func:`fastgrnn_scan_forward`
and :func:`fastgrnn_scan_backward`, for callers that run it inside their own autograd Function
(``rnnpool_lite.op.fused``).

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

    def scan(self, xs: Sequence[Tensor]) -> Tensor:  # pragma: no cover - abstract
        """Run over ``T`` projected inputs ``(gates, hidden, B)``; return the last state ``(hidden, B)``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Run over a batch-first sequence ``(B, T, input_size)``; return the last state ``(B, hidden)``."""
        b, t, _ = x.shape
        weight, bias = self.input_weights()
        xs = F.linear(x, weight, bias).view(b, t, self.gates, self.hidden_size).permute(1, 2, 3, 0)
        return self.scan(xs.contiguous().unbind(0)).t()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s + (", piecewise_linear=True" if self.piecewise_linear else "")


class _FastGRNNScan(torch.autograd.Function):
    """FastGRNN recurrence with a hand-written backward pass (sigmoid nonlinearities only).

    Forward keeps, per step, ``[z, c]`` and the previous state; backward walks the steps in
    reverse (see :func:`fastgrnn_scan_backward`); autograd over the same loop records more ops
    and saves more tensors. zeta and nu enter as Python scalars: broadcasting a one-element
    tensor takes a slow path on CPU.
    """

    @staticmethod
    def forward(ctx, fixed: bool, u2: Tensor, zeta: Tensor, nu: Tensor, *xs: Tensor) -> Tensor:
        zeta_f, nu_f = float(zeta), float(nu)
        keep = any(ctx.needs_input_grad)  # inference keeps nothing for a backward pass
        zcs, states = fastgrnn_scan_forward([[x] for x in xs], u2, zeta_f, nu_f, fixed, keep)
        if keep:
            ctx.save_for_backward(u2, zeta, *zcs, *states[:-1])
            ctx.fixed, ctx.zeta, ctx.nu, ctx.steps = fixed, zeta_f, nu_f, len(xs)
        return states[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        u2, zeta_t, *saved = ctx.saved_tensors
        steps = ctx.steps
        grads: list[Tensor | None] = [None] * steps
        grad_u2, grad_zeta, grad_nu = fastgrnn_scan_backward(
            grad_h, saved[:steps], saved[steps:], u2, ctx.zeta, ctx.nu, ctx.fixed,
            lambda t, g: grads.__setitem__(t, g.clone()),
        )
        return (None, grad_u2, grad_zeta.view_as(zeta_t), grad_nu.view_as(zeta_t), *grads)


def _columns(s: Tensor, parts: Sequence[Tensor]) -> Iterable[tuple[Tensor, Tensor]]:
    """Pair each part ``(rows, *batch)`` with its consecutive columns of ``s``, viewed like it."""
    start = 0
    for part in parts:
        size = part[0].numel()
        yield s[:, start : start + size].view(part.shape), part
        start += size


def fastgrnn_scan_forward(
    steps: Iterable[Sequence[Tensor]], u2: Tensor, zeta: float, nu: float, fixed: bool, keep: bool
) -> tuple[list[Tensor], list[Tensor]]:
    """FastGRNN over projected inputs (update half doubled): ``[z; c]`` per step and the states.

    Each step's input comes in parts ``(2 hidden, *batch)``, possibly strided views (the layer
    reads its steps straight out of projected maps); the parts' batches follow one another in
    the state. ``u2`` is ``[U; 2 U]`` (see :meth:`FastGRNNCell.recurrent_weights`): ``x_t + u2 h``
    is one matrix product and an add per part, and one in-place sigmoid gives ``z`` and
    ``(c + 1) / 2``. Returns ``zcs`` (per step, ``[z; c]``, ``(2 hidden, B)``) and the states
    ``h_0 = 0, h_1, ..., h_T`` ``(hidden, B)``; without ``keep`` only the last state.
    """
    zcs: list[Tensor] = []
    states: list[Tensor] = []
    hidden = u2.shape[1]
    h: Tensor | None = None
    for parts in steps:
        if h is None:
            s = parts[0].new_empty(2 * hidden, sum(part[0].numel() for part in parts))
            for view, part in _columns(s, parts):
                torch.sigmoid(part, out=view)
        elif len(parts) == 1 and parts[0].dim() == 2:
            s = torch.addmm(parts[0], u2, h).sigmoid_()
        else:
            s = torch.mm(u2, h)
            for view, part in _columns(s, parts):
                view.add_(part)
            s.sigmoid_()
        z, c = s[:hidden], s[hidden:].mul_(2.0).sub_(1.0)
        if h is None:  # h_0 = 0: h_1 = c (zeta (1 - z) + nu)
            new = torch.addcmul(c, z, c, value=-1.0) if fixed else torch.addcmul(c * (zeta + nu), z, c, value=-zeta)
            if keep:
                states.append(torch.zeros_like(new))
        elif fixed:  # h' = c + z (h - c)
            new = torch.lerp(c, h, z)
        else:  # h' = (zeta + nu) c + z (h - zeta c)
            new = torch.add(h, c, alpha=-zeta).mul_(z).add_(c, alpha=zeta + nu)
        if keep:
            zcs.append(s)
            states.append(new)
        else:
            states = [new]
        h = new
    return zcs, states


def fastgrnn_scan_backward(
    grad_h: Tensor, zcs: Sequence[Tensor], states: Sequence[Tensor], u2: Tensor, zeta: float,
    nu: float, fixed: bool, emit: Callable[[int, Tensor], None],
) -> tuple[Tensor, Tensor, Tensor]:
    """Backward of :func:`fastgrnn_scan_forward` from the last state's gradient ``grad_h``.

    Calls ``emit(t, grad_x_t)`` for every step, last step first, with the gradient of step
    ``t``'s input ``(2 hidden, B)`` in a buffer that is reused for the next call (add it
    somewhere or copy it). Returns the gradients of ``u2``, ``zeta`` and ``nu`` (0-d tensors,
    zero when ``fixed``).
    """
    hidden = u2.shape[1]
    grad_u2 = torch.zeros_like(u2)
    sum_dhc = grad_h.new_zeros(())  # sum of dh * c over all steps: d nu
    sum_dhzc = grad_h.new_zeros(())  # sum of dh * z * c: d zeta = sum_dhc - sum_dhzc
    ds = torch.empty_like(zcs[-1])
    ds_z, ds_c = ds[:hidden], ds[hidden:]
    dh = grad_h.contiguous()
    for t in reversed(range(len(zcs))):
        z, c, h_prev = zcs[t][:hidden], zcs[t][hidden:], states[t]
        dhz = dh * z
        # through z = sigmoid(.): dh z (1 - z) (h - zeta c)
        torch.add(h_prev, c, alpha=-zeta, out=ds_z).mul_(dhz)
        ds_z.addcmul_(ds_z, z, value=-1.0)
        # through c = 2 sigmoid(.) - 1 (input doubled): dc (1 - c^2) / 2, dc = (zeta + nu) dh - zeta dh z
        if fixed:
            torch.sub(dh, dhz, out=ds_c)
        else:
            torch.mul(dh, zeta + nu, out=ds_c).sub_(dhz, alpha=zeta)
            sum_dhc += torch.dot(dh.view(-1), c.reshape(-1))
            sum_dhzc += torch.dot(dhz.view(-1), c.reshape(-1))
        ds_c.addcmul_(ds_c * c, c, value=-1.0).mul_(0.5)
        if t > 0:
            grad_u2.addmm_(ds, h_prev.t())
            dh = torch.addmm(dhz, u2.t(), ds)
        emit(t, ds)
    return grad_u2, sum_dhc - sum_dhzc, sum_dhc


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

    def recurrent_weights(self) -> Tensor:
        """``[U; 2 U]``: ``U h`` for both gates, the update half doubled like :meth:`input_weights`."""
        return torch.cat([self.U, 2.0 * self.U])

    def scan(self, xs: Sequence[Tensor]) -> Tensor:
        if self.piecewise_linear:
            return self._scan_autograd(xs)
        steps = [x.reshape(2 * self.hidden_size, -1) for x in xs]
        h = _FastGRNNScan.apply(not self.learn_zeta_nu, self.recurrent_weights(), self.zeta, self.nu, *steps)
        return h

    def _scan_autograd(self, xs: Sequence[Tensor]) -> Tensor:
        """The same recurrence through autograd (the piecewise-linear cell; tests check the fast one against it)."""
        gate_scale = xs[0].new_tensor([1.0, 1.0 if self.piecewise_linear else 2.0]).view(2, 1, 1)
        zeta, nu = self.zeta, self.nu
        h: Tensor | None = None
        for x in xs:
            pre = x if h is None else torch.addcmul(x, self.U @ h, gate_scale)
            if self.piecewise_linear:
                z, c = quant_sigmoid(pre[0]), quant_tanh(pre[1])
            else:
                s = torch.sigmoid(pre)
                z, c = s[0], 2.0 * s[1] - 1.0
            new = (zeta * (1.0 - z) + nu) * c
            h = new if h is None else new + z * h
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

    def scan(self, xs: Sequence[Tensor]) -> Tensor:
        hsz = self.hidden_size
        bhh = self.bias_hh.view(3, hsz, 1)
        h: Tensor | None = None
        for t in range(len(xs)):
            x = xs[t]  # (3, h, B): r, z, n
            hp = bhh if h is None else torch.addmm(self.bias_hh[:, None], self.weight_hh, h).view(3, hsz, -1)
            rz = self._sigmoid(x[:2] + hp[:2])
            r, z = rz[0], rz[1]
            n = self._tanh(torch.addcmul(x[2], r, hp[2]))
            h = n - z * n if h is None else torch.lerp(n, h, z)
        assert h is not None
        return h


class LSTMCell(_TorchGatedCell):
    """LSTM with PyTorch's equations and parameter names; the summary is the hidden state h."""

    gates = 4

    def input_weights(self) -> tuple[Tensor, Tensor]:
        # both biases are added once per position; the step only adds U h
        return self.weight_ih, self.bias_ih + self.bias_hh

    def scan(self, xs: Sequence[Tensor]) -> Tensor:
        hsz = self.hidden_size
        h: Tensor | None = None
        c: Tensor | None = None
        for t in range(len(xs)):
            g = xs[t] if h is None else xs[t] + (self.weight_hh @ h).view(4, hsz, -1)
            i, f, o = self._sigmoid(g[0]), self._sigmoid(g[1]), self._sigmoid(g[3])
            cand = self._tanh(g[2])
            c = i * cand if c is None else torch.addcmul(i * cand, f, c)
            h = o * self._tanh(c)
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
