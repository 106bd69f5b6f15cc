"""RNNPool with FastGRNN cells as one autograd Function, computed a few images at a time.

Why: each step of RNNPool's recurrences is a handful of elementwise ops over ``(hidden, B)``,
with ``B`` in the hundreds of thousands for a training batch; over the whole batch every op
streams tens of MB through memory. Done a few images at a time, a chunk's tensors stay in the
CPU's cache, and the hand-written backward pass walks the same chunks.

Layout (feature-first: the batch follows the feature axis). The input arrives cut to whole
blocks of the stride, ``(N, C, bh sh, bw sw)`` (:class:`PoolGeometry`). For RNN1 along rows it
is copied once with the column phase outermost, ``(C, sw, n, H, bw)`` (column ``x = J sw + r``),
and projected; step ``t`` of every row sequence then reads phase ``t % sw``, blocks
``t // sw ... t // sw + wo - 1``: a strided view with contiguous runs of ``wo``, no copy. RNN1
along columns uses ``(C, sh, n, bh, W)`` the same way. The row summaries come out as
``(h1, n, H, wo)``, the column summaries as ``(h1, n, ho, W)``; RNN2's input projection runs
once per summary (not once per patch and sweep), and every step of the four RNN2 sweeps reads
one ``(2 h2, n, ho, wo)`` view of it per sweep, as RNN1 does. The backward pass adds the
steps' gradients into those views and applies the projections' transposes once per chunk. The
four sweeps run as one recurrence when ``kh == kw`` (two otherwise).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from rnnpool_lite.op.cells import FastGRNNCell, fastgrnn_scan_backward, fastgrnn_scan_forward
from rnnpool_lite.op.compiled import KernelPool, selected_kernel, supports

#: RNN1 sequences (rows plus columns) per chunk and CPU thread: ``(2 h1, B)`` tensors of about
#: 2 MB per thread at h1 = 8, which stay in cache. (Measured on 1 thread, VWW stem, N=32: about
#: 1.6x faster forward than the whole batch at once.)
CHUNK_SEQUENCES = 32768


class PoolGeometry(NamedTuple):
    """Kernel, stride, output size and the input cut to whole stride blocks ``(bh, bw)``.

    ``bh = ho - 1 + ceil(kh / sh)`` blocks of ``sh`` rows cover every patch; rows beyond them
    belong to no patch and are dropped, missing ones are zero-filled (likewise columns).
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    out: tuple[int, int]
    blocks: tuple[int, int]

    @classmethod
    def of(cls, kernel: tuple[int, int], stride: tuple[int, int], out: tuple[int, int]) -> PoolGeometry:
        blocks = tuple(o - 1 + math.ceil(k / s) for k, s, o in zip(kernel, stride, out))
        return cls(kernel, stride, out, (blocks[0], blocks[1]))

    @property
    def size(self) -> tuple[int, int]:
        """Rows and columns of the cut input: ``(bh sh, bw sw)``."""
        return self.blocks[0] * self.stride[0], self.blocks[1] * self.stride[1]


class _Cell(NamedTuple):
    """One FastGRNN cell's weights as the scans use them (see ``FastGRNNCell.input_weights``)."""

    w: Tensor  # [W; 2 W]
    b: Tensor  # [b_gate; 2 b_update]
    u: Tensor  # [U; 2 U]
    zeta: float
    nu: float
    fixed: bool


def _phase_steps(p: Tensor, axis: int, steps: int, stride: int, count: int) -> list[Tensor]:
    """Step views of a projection whose axis 1 is the phase ``t % stride`` and ``axis`` the block."""
    index: list[slice | int] = [slice(None)] * p.dim()
    views = []
    for t in range(steps):
        index[1] = t % stride
        index[axis] = slice(t // stride, t // stride + count)
        views.append(p[tuple(index)])
    return views


def _groups(kernel: tuple[int, int]) -> list[tuple[int, ...]]:
    """Which sweep directions (0: along rows, 1: along columns) share one recurrence.

    They can when they have the same number of steps: ``kh == kw``.
    """
    return [(0, 1)] if kernel[0] == kernel[1] else [(0,), (1,)]


class _Sweeps(NamedTuple):
    """RNN2 sweeps of equal length run as one recurrence: which summaries, which direction."""

    steps: int
    parts: tuple[tuple[int, bool], ...]  # (0: row summaries / 1: column summaries, reversed)
    channels: slice  # where their outputs go, in units of h2


def _sweep_groups(geo: PoolGeometry) -> list[_Sweeps]:
    parts = (((0, False), (0, True)), ((1, False), (1, True)))
    return [_Sweeps(geo.kernel[g[0]], sum((parts[d] for d in g), ()), slice(2 * g[0], 2 * g[-1] + 2))
            for g in _groups(geo.kernel)]


class _Rnn1(NamedTuple):
    """RNN1 along one direction: its phase-split projection and how the steps read it."""

    axis: int  # the block axis of the projection (axis 1 is the phase)
    steps: int
    stride: int
    patches: int  # patches along the direction

    def views(self, p: Tensor) -> list[Tensor]:
        return _phase_steps(p, self.axis, self.steps, self.stride, self.patches)


def _rnn1(geo: PoolGeometry) -> tuple[_Rnn1, _Rnn1]:
    (kh, kw), (sh, sw), (ho, wo), _ = geo
    # rows: (G, sw, n, H, bw), blocks on axis 4; columns: (G, sh, n, bh, W), blocks on axis 3
    return _Rnn1(4, kw, sw, wo), _Rnn1(3, kh, sh, ho)


def _phase_split(x: Tensor, geo: PoolGeometry) -> tuple[Tensor, Tensor]:
    """The chunk's input for the row sweeps ``(C, sw, n, H, bw)`` and the columns ``(C, sh, n, bh, W)``."""
    n, c, height, width = x.shape
    (sh, sw), (bh, bw) = geo.stride, geo.blocks
    rows = x.view(n, c, height, bw, sw).permute(1, 4, 0, 2, 3).contiguous()
    cols = x.view(n, c, bh, sh, width).permute(1, 3, 0, 2, 4).contiguous()
    return rows, cols


def _grad_input_views(grad_x: Tensor, geo: PoolGeometry) -> tuple[Tensor, Tensor]:
    """``grad_x`` viewed like :func:`_phase_split`'s two outputs."""
    n, c, height, width = grad_x.shape
    (sh, sw), (bh, bw) = geo.stride, geo.blocks
    return (grad_x.view(n, c, height, bw, sw).permute(1, 4, 0, 2, 3),
            grad_x.view(n, c, bh, sh, width).permute(1, 3, 0, 2, 4))


class _Tape(NamedTuple):
    """What a chunk's backward pass needs from its forward pass."""

    inputs: tuple[Tensor, Tensor]  # phase-split inputs of the row and the column sweeps
    rnn1: list[tuple[list[Tensor], list[Tensor]]]  # per RNN1 group: zcs, states
    rnn2: list[tuple[list[Tensor], list[Tensor]]]  # per RNN2 group: zcs, states


def _summary_slab(summary: Tensor, source: int, t: int, geo: PoolGeometry) -> Tensor:
    """Step ``t`` of an RNN2 sweep for every patch, ``(h1, n, ho, wo)``, as a view.

    ``source`` 0: row summaries ``(h1, n, bh, sh, wo)`` (patch row ``i`` reads image row
    ``i sh + t``); 1: column summaries ``(h1, n, ho, bw, sw)``.
    """
    (sh, sw), (ho, wo) = geo.stride, geo.out
    if source == 0:
        return summary[:, :, t // sh : t // sh + ho, t % sh, :]
    return summary[:, :, :, t // sw : t // sw + wo, t % sw]


def _summaries(state: Tensor, members: tuple[int, ...], n: int, geo: PoolGeometry) -> dict[int, Tensor]:
    """Split an RNN1 group's ``(h1, B)`` state into its directions' summaries (views)."""
    (sh, sw), (ho, wo), (bh, bw) = geo.stride, geo.out, geo.blocks
    shapes = {0: (n, bh, sh, wo), 1: (n, ho, bw, sw)}
    out, start = {}, 0
    for m in members:
        size = math.prod(shapes[m])
        out[m] = state[:, start : start + size].view(state.shape[0], *shapes[m])
        start += size
    return out


def _forward_chunk(x: Tensor, cell1: _Cell, cell2: _Cell, geo: PoolGeometry, out: Tensor,
                   keep: bool) -> _Tape | None:
    """Pool a chunk ``x`` ``(n, C, H, W)`` (cut to blocks) into ``out`` ``(n, 4 h2, ho, wo)``.

    With ``keep`` (gradients wanted), returns what the backward pass needs.
    """
    n = x.shape[0]
    (ho, wo) = geo.out
    h2 = cell2.u.shape[1]
    inputs = _phase_split(x, geo)
    directions = _rnn1(geo)
    views = [d.views(torch.addmm(cell1.b[:, None], cell1.w, xin.view(xin.shape[0], -1)).view(-1, *xin.shape[1:]))
             for d, xin in zip(directions, inputs)]
    projected: dict[int, Tensor] = {}  # RNN2's input projection of the row / column summaries
    tape_rnn1 = []
    for members in _groups(geo.kernel):
        inputs_t = [[views[m][t] for m in members] for t in range(directions[members[0]].steps)]
        scan = fastgrnn_scan_forward(inputs_t, cell1.u, cell1.zeta, cell1.nu, cell1.fixed, keep)
        projected.update(_summaries(torch.addmm(cell2.b[:, None], cell2.w, scan[1][-1]), members, n, geo))
        tape_rnn1.append(scan)
    out_view = out.unflatten(1, (4, h2))
    tape_rnn2 = []
    for group in _sweep_groups(geo):
        steps, parts = group.steps, group.parts
        inputs2 = [[_summary_slab(projected[s], s, steps - 1 - t if rev else t, geo) for s, rev in parts]
                   for t in range(steps)]
        zcs, states = fastgrnn_scan_forward(inputs2, cell2.u, cell2.zeta, cell2.nu, cell2.fixed, keep)
        out_view[:, group.channels].copy_(states[-1].view(h2, len(parts), n, ho, wo).permute(2, 1, 0, 3, 4))
        if keep:
            tape_rnn2.append((zcs, states))
    if not keep:
        return None
    return _Tape(inputs, tape_rnn1, tape_rnn2)


class _Grads(NamedTuple):
    """Parameter gradients of one cell, accumulated over chunks."""

    w: Tensor
    b: Tensor
    u: Tensor
    zeta_nu: Tensor  # (2,): d zeta, d nu


def _new_grads(cell: _Cell) -> _Grads:
    return _Grads(torch.zeros_like(cell.w), torch.zeros_like(cell.b), torch.zeros_like(cell.u),
                  cell.w.new_zeros(2))


def _scan_backward(grad_h: Tensor, scan: tuple[list[Tensor], list[Tensor]], cell: _Cell, grads: _Grads,
                   emit: Callable[[int, Tensor], None]) -> None:
    zcs, states = scan
    grad_u, grad_zeta, grad_nu = fastgrnn_scan_backward(
        grad_h, zcs, states, cell.u, cell.zeta, cell.nu, cell.fixed, emit
    )
    grads.u.add_(grad_u)
    grads.zeta_nu[0] += grad_zeta
    grads.zeta_nu[1] += grad_nu


def _backward_chunk(tape: _Tape, grad_out: Tensor, grad_x: Tensor, cell1: _Cell, cell2: _Cell,
                    geo: PoolGeometry, grads1: _Grads, grads2: _Grads) -> None:
    """Gradients of one chunk: writes ``grad_x`` ``(n, C, H, W)``, adds to the parameter grads."""
    n = grad_x.shape[0]
    (ho, wo) = geo.out
    h2 = cell2.u.shape[1]
    groups = _groups(geo.kernel)
    # gradients of RNN2's input projections of the summaries, and views of them per direction
    grad_ps2 = [grad_x.new_zeros(cell2.w.shape[0], len(scan[1][-1][0])) for scan in tape.rnn1]
    grad_projected: dict[int, Tensor] = {}
    for members, grad_p2 in zip(groups, grad_ps2):
        grad_projected.update(_summaries(grad_p2, members, n, geo))
    grad_view = grad_out.unflatten(1, (4, h2))
    patches = n * ho * wo
    for group, scan2 in zip(_sweep_groups(geo), tape.rnn2):
        steps, parts = group.steps, group.parts
        grad_h = grad_view[:, group.channels].permute(2, 1, 0, 3, 4).reshape(h2, -1)

        def emit2(t: int, dq: Tensor, steps: int = steps, parts=parts) -> None:
            for k, (s, rev) in enumerate(parts):
                slab = _summary_slab(grad_projected[s], s, steps - 1 - t if rev else t, geo)
                slab.add_(dq[:, k * patches : (k + 1) * patches].view(slab.shape))

        _scan_backward(grad_h, scan2, cell2, grads2, emit2)
    grad_states = []
    for scan, grad_p2 in zip(tape.rnn1, grad_ps2):
        grads2.w.addmm_(grad_p2, scan[1][-1].t())
        grads2.b.add_(grad_p2.sum(1))
        grad_states.append(torch.mm(cell2.w.t(), grad_p2))
    directions = _rnn1(geo)
    grad_ps = [grad_x.new_zeros(cell1.w.shape[0], *xin.shape[1:]) for xin in tape.inputs]
    grad_views = [d.views(gp) for d, gp in zip(directions, grad_ps)]
    for members, scan, grad_state in zip(groups, tape.rnn1, grad_states):

        def emit1(t: int, ds: Tensor, members: tuple[int, ...] = members) -> None:
            start = 0
            for m in members:
                view = grad_views[m][t]
                size = view[0].numel()
                view.add_(ds[:, start : start + size].view(view.shape))
                start += size

        _scan_backward(grad_state, scan, cell1, grads1, emit1)
    for k, (xin, gp, dest) in enumerate(zip(tape.inputs, grad_ps, _grad_input_views(grad_x, geo))):
        flat = gp.view(gp.shape[0], -1)
        grads1.w.addmm_(flat, xin.view(xin.shape[0], -1).t())
        grads1.b.add_(flat.sum(1))
        grad_in = torch.mm(cell1.w.t(), flat).view(dest.shape)
        if k == 0:
            dest.copy_(grad_in)
        else:
            dest.add_(grad_in)


def _cells(layer_cells: tuple[FastGRNNCell, FastGRNNCell], params: tuple[Tensor, ...]) -> tuple[_Cell, _Cell]:
    w1, b1, u1, zeta1, nu1, w2, b2, u2, zeta2, nu2 = params
    return (_Cell(w1, b1, u1, float(zeta1), float(nu1), not layer_cells[0].learn_zeta_nu),
            _Cell(w2, b2, u2, float(zeta2), float(nu2), not layer_cells[1].learn_zeta_nu))


def chunk_size(x: Tensor, geo: PoolGeometry) -> int:
    """Images per chunk: about :data:`CHUNK_SEQUENCES` RNN1 sequences per thread on CPU (chunks of
    equal size), the whole batch elsewhere."""
    n = x.shape[0]
    if x.device.type != "cpu":
        return max(n, 1)
    (height, width), (ho, wo) = geo.size, geo.out
    per_image = wo * height + ho * width
    chunks = math.ceil(n * per_image / (CHUNK_SEQUENCES * torch.get_num_threads()))
    return max(1, math.ceil(n / max(chunks, 1)))


class _FusedPool(torch.autograd.Function):
    """The whole FastGRNN RNNPool with a hand-written backward pass."""

    @staticmethod
    def forward(ctx, geo: PoolGeometry, layer_cells: tuple[FastGRNNCell, FastGRNNCell],
                memory_format: torch.memory_format, x: Tensor, *params: Tensor) -> Tensor:
        cell1, cell2 = _cells(layer_cells, params)
        n = x.shape[0]
        (ho, wo), h2 = geo.out, cell2.u.shape[1]
        out = x.new_empty(n, 4 * h2, ho, wo).contiguous(memory_format=memory_format)
        keep = any(ctx.needs_input_grad)
        step = chunk_size(x, geo)
        tapes = [_forward_chunk(x[i : i + step], cell1, cell2, geo, out[i : i + step], keep) for i in range(0, n, step)]
        if keep:  # intermediates live on ctx (save_for_backward is for inputs and outputs)
            ctx.save_for_backward(x, *params)
            ctx.tapes, ctx.geo, ctx.layer_cells, ctx.step = tapes, geo, layer_cells, step
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, *params = ctx.saved_tensors
        geo, step = ctx.geo, ctx.step
        cell1, cell2 = _cells(ctx.layer_cells, tuple(params))
        grads1, grads2 = _new_grads(cell1), _new_grads(cell2)
        grad_x = torch.empty_like(x)
        for tape, i in zip(ctx.tapes, range(0, x.shape[0], step)):
            _backward_chunk(tape, grad_out[i : i + step], grad_x[i : i + step], cell1, cell2, geo, grads1, grads2)
        out: list[Tensor | None] = [None, None, None, grad_x]
        for g in (grads1, grads2):
            out += [g.w, g.b, g.u, g.zeta_nu[0].reshape(1), g.zeta_nu[1].reshape(1)]
        return tuple(out)


def fused_pool(layer_cells: tuple[FastGRNNCell, FastGRNNCell], x: Tensor, geo: PoolGeometry,
               memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """RNNPool of ``x`` ``(N, C, bh sh, bw sw)`` (cut to blocks) with two sigmoid FastGRNN cells.

    Returns ``(N, 4 h2, ho, wo)`` in ``memory_format``. Gradients reach ``x`` and the cells'
    parameters through autograd (the doubled weights and zeta / nu are formed outside the
    Function). Where :func:`~rnnpool_lite.op.compiled.selected_kernel` is the C++ kernel (the
    default where it builds), float32 CPU inputs of sizes it covers run on it
    (:mod:`rnnpool_lite.op.compiled`); everything else on the torch path here.
    """
    params: list[Tensor] = []
    for cell in layer_cells:
        w, b = cell.input_weights()
        params += [w, b, cell.recurrent_weights(), cell.zeta, cell.nu]
    hidden = (layer_cells[0].hidden_size, layer_cells[1].hidden_size)
    if (selected_kernel() == "compiled" and x.device.type == "cpu" and x.dtype == torch.float32
            and supports(x.shape[1], hidden, geo.kernel)):
        return KernelPool.apply(geo, layer_cells, memory_format, x, *params)
    return _FusedPool.apply(geo, layer_cells, memory_format, x, *params)
