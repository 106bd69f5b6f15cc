"""Recurrent cells for RNNPool, written for batched sweeps over many short sequences.

RNNPool runs thousands of tiny recurrences (length = patch size, hidden size 4-64) at once, so a
cell here is not stepped one sequence at a time. Each cell splits its work in two:

* ``project(x)``: the input projection ``W x + b`` for every position at once. RNNPool calls it
  once per pixel, although a pixel appears in several patches and in both the row and the
  column sweep.
* ``scan(xp)``: the recurrence over a time-major, gate-major batch ``xp``: a ``(T, gates, B,
  hidden)`` tensor or a list of ``T`` tensors ``(gates, B, hidden)``, from a zero state, returning the last hidden state ``(B, hidden)``.
  The only Python loop is over ``T``. Gate-major keeps every elementwise op on contiguous
  memory, which is 2-8x faster on CPU than the same op on an interleaved half of a row.

Sequences of different lengths share one ``scan``: shorter ones are left-padded and
``first_step`` (shape ``(B, 1)``) says at which step each starts; before it the state stays zero.

The nonlinearities can be swapped for the piecewise-linear ``quant_sigmoid`` /
``quant_tanh`` of the RNNPool paper (from the EdgeML code), which quantize to int8 without loss.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
import torch.nn.functional as F

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
    """Common interface of the cells: ``project`` once per position, ``scan`` over time."""

    #: width of the input projection, in multiples of ``hidden_size``
    gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, piecewise_linear: bool = False) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.piecewise_linear = piecewise_linear
        self._sigmoid, self._tanh = _activations(piecewise_linear)

    def project(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def scan(self, xp: Tensor | Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Run over a batch-first sequence ``(B, T, input_size)``; return the last state."""
        b, t, _ = x.shape
        xp = self.project(x).view(b, t, self.gates, self.hidden_size).permute(1, 2, 0, 3)
        return self.scan(xp.contiguous())

    @staticmethod
    def _masked(t: int, first_step: Tensor | None, new: Tensor, old: Tensor | None) -> Tensor:
        if first_step is None:
            return new
        started = first_step <= t
        return torch.where(started, new, torch.zeros_like(new) if old is None else old)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s + (", piecewise_linear=True" if self.piecewise_linear else "")


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

    def project(self, x: Tensor) -> Tensor:
        """``[W x + b_gate, 2 (W x + b_update)]`` along the last axis (``2 * hidden`` wide).

        The update half is doubled because the scan computes ``tanh(a)`` as
        ``2 sigmoid(2 a) - 1``: one in-place sigmoid then covers both gates (``tanh`` is about
        3x slower than ``sigmoid`` on CPU). With the piecewise-linear option no doubling is done.
        """
        scale = 1.0 if self.piecewise_linear else 2.0
        weight = torch.cat([self.W, scale * self.W])
        return F.linear(x, weight, torch.cat([self.bias_gate, scale * self.bias_update]))

    def scan(self, xp: Tensor | Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:
        piecewise = self.piecewise_linear
        ut = self.U.t()
        if not piecewise:
            ut2 = torch.stack([ut, 2.0 * ut])  # (2, h, h): the update gate's pre-activation doubled
        if self.learn_zeta_nu:
            zeta, nu = self.zeta, self.nu
            zeta_plus_nu = zeta + nu
        minus_one = xp[0].new_full((), -1.0)
        h: Tensor | None = None
        for t in range(len(xp)):
            if h is None:
                pre = xp[t]
            elif piecewise:
                pre = xp[t] + (h @ ut)  # broadcast over both gates
            else:
                pre = torch.baddbmm(xp[t], h.expand(2, -1, -1), ut2)
            if piecewise:
                z, c = quant_sigmoid(pre[0]), quant_tanh(pre[1])
            else:
                s = torch.sigmoid(pre)
                z, c = s[0], torch.add(minus_one, s[1], alpha=2.0)  # tanh(a) = 2 sigmoid(2a) - 1
            if not self.learn_zeta_nu:
                new = c - z * c if h is None else torch.lerp(c, h, z)
            else:
                new = torch.addcmul(zeta_plus_nu, z, -zeta) * c  # (zeta (1 - z) + nu) c
                if h is not None:
                    new = torch.addcmul(new, z, h)
            h = self._masked(t, first_step, new, h)
        assert h is not None
        return h

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.learn_zeta_nu else ", learn_zeta_nu=False")


class GRUCell(RecurrentCell):
    """GRU with PyTorch's equations and parameter names (``weight_ih``, ``weight_hh``, ...)."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, piecewise_linear: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, piecewise_linear)
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size, **kw))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size, **kw))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def scan(self, xp: Tensor | Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:
        hsz = self.hidden_size
        whh = self.weight_hh.view(3, hsz, hsz).transpose(1, 2)  # per gate (h_in, h_out)
        bhh = self.bias_hh.view(3, 1, hsz)
        h: Tensor | None = None
        for t in range(len(xp)):
            x = xp[t]  # (3, B, h): r, z, n
            hp = bhh if h is None else torch.baddbmm(bhh, h.expand(3, -1, -1), whh)
            rz = self._sigmoid(x[:2] + hp[:2])
            r, z = rz[0], rz[1]
            n = self._tanh(torch.addcmul(x[2], r, hp[2]))
            new = n - z * n if h is None else torch.lerp(n, h, z)
            h = self._masked(t, first_step, new, h)
        assert h is not None
        return h


class LSTMCell(RecurrentCell):
    """LSTM with PyTorch's equations and parameter names; the summary is the hidden state h."""

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, piecewise_linear: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, piecewise_linear)
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size, **kw))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size, **kw))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        # both biases are added once per position; the step only adds U h
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def scan(self, xp: Tensor | Sequence[Tensor], first_step: Tensor | None = None) -> Tensor:
        hsz = self.hidden_size
        whh = self.weight_hh.view(4, hsz, hsz).transpose(1, 2)
        h: Tensor | None = None
        c: Tensor | None = None
        for t in range(len(xp)):
            g = xp[t] if h is None else torch.baddbmm(xp[t], h.expand(4, -1, -1), whh)
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
