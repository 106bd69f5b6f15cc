"""A slow, obviously correct RNNPool: Algorithm 1 written patch by patch, step by step.

It shares no code with the fast layer: every cell is written out as its textbook equation on
one vector at a time, and every patch is cut out and swept on its own. Tests and the book use
it to check ``RNNPool2d``; it is far too slow for anything else.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnpool_lite.op.cells import FastGRNNCell, GRUCell, LSTMCell, RecurrentCell, quant_sigmoid, quant_tanh
from rnnpool_lite.op.layer import RNNPool2d


def _nonlinearities(cell: RecurrentCell):
    if cell.piecewise_linear:
        return quant_sigmoid, quant_tanh
    return torch.sigmoid, torch.tanh


def run_cell(cell: RecurrentCell, inputs: list[Tensor]) -> Tensor:
    """Run ``cell`` over a list of input vectors from a zero state; return the last ``h``."""
    sig, tanh = _nonlinearities(cell)
    hidden = cell.hidden_size
    h = inputs[0].new_zeros(hidden)
    c = inputs[0].new_zeros(hidden)
    for x in inputs:
        if isinstance(cell, FastGRNNCell):
            pre = cell.W @ x + cell.U @ h
            z = sig(pre + cell.bias_gate)
            cand = tanh(pre + cell.bias_update)
            h = (cell.zeta * (1 - z) + cell.nu) * cand + z * h
        elif isinstance(cell, GRUCell):
            gi = cell.weight_ih @ x + cell.bias_ih
            gh = cell.weight_hh @ h + cell.bias_hh
            r = sig(gi[:hidden] + gh[:hidden])
            z = sig(gi[hidden : 2 * hidden] + gh[hidden : 2 * hidden])
            n = tanh(gi[2 * hidden :] + r * gh[2 * hidden :])
            h = (1 - z) * n + z * h
        elif isinstance(cell, LSTMCell):
            g = cell.weight_ih @ x + cell.bias_ih + cell.weight_hh @ h + cell.bias_hh
            i, f = sig(g[:hidden]), sig(g[hidden : 2 * hidden])
            cand, o = tanh(g[2 * hidden : 3 * hidden]), sig(g[3 * hidden :])
            c = f * c + i * cand
            h = o * tanh(c)
        else:  # pragma: no cover
            raise TypeError(f"no reference for {type(cell).__name__}")
    return h


def rnnpool_patch(layer: RNNPool2d, patch: Tensor) -> Tensor:
    """Algorithm 1 on one patch ``(C, kh, kw)``: returns ``[q_r1, q_r2, q_c1, q_c2]`` (4*h2,)."""
    _, kh, kw = patch.shape
    row_summaries = [run_cell(layer.rnn1, [patch[:, r, t] for t in range(kw)]) for r in range(kh)]
    col_summaries = [run_cell(layer.rnn1, [patch[:, t, c] for t in range(kh)]) for c in range(kw)]
    return torch.cat(
        [
            run_cell(layer.rnn2, row_summaries),
            run_cell(layer.rnn2, row_summaries[::-1]),
            run_cell(layer.rnn2, col_summaries),
            run_cell(layer.rnn2, col_summaries[::-1]),
        ]
    )


@torch.no_grad()
def rnnpool_reference(layer: RNNPool2d, x: Tensor) -> Tensor:
    """The layer's output computed one patch at a time with :func:`rnnpool_patch`."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    x = F.pad(x, (pw, pw, ph, ph))
    n, _, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = x.new_zeros(n, layer.out_channels, ho, wo)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                patch = x[b, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
                out[b, :, i, j] = rnnpool_patch(layer, patch)
    return out
