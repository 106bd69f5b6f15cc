"""Speed of ``RNNPool2d`` against a plain batched implementation and ``nn.AvgPool2d``.

The plain implementation is how the authors' public PyTorch code organises the work: cut every
patch out (``F.unfold``), run RNN1 over all rows of all patches with a per-time-step loop, then
over all columns, then RNN2 forward and backward over the row summaries and over the column
summaries, each as a separate pass, computing ``W x_t`` inside every step. It is written here,
from the paper's equations, on the same weights as the layer.

Both run twice: with glibc's malloc as it is, then with freed memory kept for reuse
(``rnnpool_lite.train.runtime.keep_freed_memory``; without it both spend much of their time in page
faults, see that module).

Run: ``python benchmarks/bench_rnnpool.py [--threads 2] [--repeats 11]``. Prints medians (ms) and
the ratios plain / ours (the contenders alternate within each repeat, so machine noise hits both), and checks that both give the same output (max abs difference).
"""
from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnpool_lite import RNNPool2d
from rnnpool_lite.op.cells import FastGRNNCell
from rnnpool_lite.train.runtime import keep_freed_memory

CONFIGS = {
    # name: (N, C, H, W, kernel, stride, h1, h2)
    "VWW stem": (16, 8, 112, 112, 6, 4, 8, 8),
    "face stem": (4, 4, 240, 320, 8, 4, 8, 8),
}


def _fastgrnn_sweep(cell: FastGRNNCell, seq: Tensor) -> Tensor:
    """One batch-first sequence ``(B, T, in)`` through FastGRNN, step by step; last state."""
    zeta, nu = cell.zeta, cell.nu
    h = seq.new_zeros(seq.shape[0], cell.hidden_size)
    for t in range(seq.shape[1]):
        pre = seq[:, t] @ cell.W.t() + h @ cell.U.t()
        z = torch.sigmoid(pre + cell.bias_gate)
        c = torch.tanh(pre + cell.bias_update)
        h = (zeta * (1 - z) + nu) * c + z * h
    return h


def plain_rnnpool(layer: RNNPool2d, x: Tensor) -> Tensor:
    """RNNPool with rows, columns and both directions as separate passes (the authors' layout)."""
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    n, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    patches = F.unfold(x, (kh, kw), stride=(sh, sw))  # (N, C*kh*kw, P)
    patches = patches.transpose(1, 2).reshape(-1, c, kh, kw)  # (N*P, C, kh, kw)
    b = patches.shape[0]
    rows = patches.permute(0, 2, 3, 1).reshape(b * kh, kw, c)
    cols = patches.permute(0, 3, 2, 1).reshape(b * kw, kh, c)
    row_summ = _fastgrnn_sweep(layer.rnn1, rows).view(b, kh, -1)
    col_summ = _fastgrnn_sweep(layer.rnn1, cols).view(b, kw, -1)
    out = torch.cat(
        [
            _fastgrnn_sweep(layer.rnn2, row_summ),
            _fastgrnn_sweep(layer.rnn2, row_summ.flip(1)),
            _fastgrnn_sweep(layer.rnn2, col_summ),
            _fastgrnn_sweep(layer.rnn2, col_summ.flip(1)),
        ],
        dim=1,
    )
    return out.view(n, ho, wo, -1).permute(0, 3, 1, 2)


def _interleaved_medians(fns: dict[str, object], repeats: int) -> dict[str, float]:
    """Median ms of each function, run in turn within every repeat (so drift hits all alike)."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}


def _forward_backward(fn, x: Tensor, params: list[nn.Parameter]):
    def run():
        for p in params:
            p.grad = None
        x.grad = None
        fn(x).square().mean().backward()

    return run


def bench(repeats: int = 7) -> pd.DataFrame:
    rows = []
    for name, (n, c, h, w, k, s, h1, h2) in CONFIGS.items():
        torch.manual_seed(0)
        layer = RNNPool2d(c, h1, k, s, hidden_size2=h2)
        avg = nn.AvgPool2d(k, s)
        x = torch.randn(n, c, h, w, requires_grad=True)
        params = list(layer.parameters())
        with torch.no_grad():
            diff = (layer(x) - plain_rnnpool(layer, x)).abs().max().item()
        with torch.no_grad():
            fwd = _interleaved_medians(
                {"ours": lambda: layer(x), "plain": lambda: plain_rnnpool(layer, x), "avgpool": lambda: avg(x)},
                repeats,
            )
        fb = _interleaved_medians(
            {
                "ours": _forward_backward(layer, x, params),
                "plain": _forward_backward(lambda t: plain_rnnpool(layer, t), x, params),
                "avgpool": _forward_backward(avg, x, []),
            },
            repeats,
        )
        for mode, t in (("forward", fwd), ("forward+backward", fb)):
            rows.append(
                {
                    "config": name,
                    "pass": mode,
                    "ours_ms": t["ours"],
                    "plain_ms": t["plain"],
                    "avgpool_ms": t["avgpool"],
                    "plain/ours": t["plain"] / t["ours"],
                    "ours/avgpool": t["ours"] / t["avgpool"],
                    "max_abs_diff": diff,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 160)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} interleaved runs")
    targets = {"forward": 3.0, "forward+backward": 2.5}
    tables = []
    # glibc first as it is, then told to keep freed memory (rnnpool_lite.train.runtime): the setting
    # applies to the whole process, so both contenders always run under the same allocator.
    for setting in ("glibc default", "freed memory kept"):
        if setting == "freed memory kept" and not keep_freed_memory():
            print("(not glibc: the second setting is skipped)")
            break
        table = bench(args.repeats)
        table.insert(0, "malloc", setting)
        tables.append(table)
        print(f"\n{setting}:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        met = all(
            r["plain/ours"] >= targets[r["pass"]] and r["max_abs_diff"] < 1e-4 for _, r in table.iterrows()
        )
        print("targets (forward >= 3x, forward+backward >= 2.5x, outputs within 1e-4):", "met" if met else "NOT met")


if __name__ == "__main__":
    main()
