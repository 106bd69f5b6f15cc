"""RNNPool's per-patch C++ kernel (``csrc/rnnpool_kernel.cpp``): build it, load it, run it under autograd.

Why a kernel: the torch path (:mod:`rnnpool_lite.op.fused`) is a few thousand whole-batch tensor ops per
call and, at the sizes of a CNN stem, spends its time moving activations through memory. The kernel keeps
one patch's whole work in registers and L1 (16 images per SIMD lane group) and recomputes it in the
backward pass instead of storing it. On the authors' VWW stem it runs forward and forward+backward
about 1.5x faster than the torch path (``benchmarks/bench_rnnpool.py``).

It is opt-in: ``RNNPOOL_LITE_KERNEL=compiled`` in the environment (read at every call, so it reaches
papermill and sweep subprocesses). The default, ``torch``, keeps the rounding that every committed
evidence run was made with (their replays compare the first training steps to 1e-4, and a different
summation order moves step 2 by more than that). The kernel is built at first use with the system C++
compiler (``CXX``, else ``c++``; Debian's ``g++``, installed by ``scripts/system_packages.sh``) for this
CPU (``-march=native``) and cached under ``$RNNPOOL_LITE_CACHE`` (default
``~/.cache/rnnpool_lite``), keyed by the source, the flags and the compiler. It is plain C++17 with GCC
vector extensions and ``std::thread``: no Python headers, no OpenMP runtime beside PyTorch's.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

KERNEL_ENV = "RNNPOOL_LITE_KERNEL"
KERNELS = ("torch", "compiled")
CACHE_ENV = "RNNPOOL_LITE_CACHE"
FLAGS = ("-O3", "-march=native", "-std=c++17", "-pthread", "-shared", "-fPIC")
#: (h1, h2) pairs the kernel is instantiated for (its DISPATCH_H table)
HIDDEN_PAIRS = frozenset({(4, 4), (4, 8), (4, 16), (8, 8), (8, 16), (16, 16), (16, 32), (32, 32)})
MAX_CHANNELS, MAX_KERNEL = 64, 16
LANES = 16


class KernelUnavailable(RuntimeError):
    """The C++ kernel cannot be built or loaded here; the message says why."""


def selected_kernel() -> str:
    """``$RNNPOOL_LITE_KERNEL``: ``"torch"`` (default) or ``"compiled"``."""
    choice = os.environ.get(KERNEL_ENV, "torch")
    if choice not in KERNELS:
        raise ValueError(f"{KERNEL_ENV} must be one of {', '.join(KERNELS)}; got {choice!r}")
    return choice


def supports(channels: int, hidden: tuple[int, int], kernel: tuple[int, int]) -> bool:
    """Whether the kernel is instantiated for these sizes (else the torch path runs)."""
    return 1 <= channels <= MAX_CHANNELS and hidden in HIDDEN_PAIRS and max(kernel) <= MAX_KERNEL


def _compiler() -> str:
    name = os.environ.get("CXX") or "c++"
    path = shutil.which(name) or shutil.which("g++")
    if path is None:
        raise KernelUnavailable(f"no C++ compiler: {name!r} and 'g++' are not on PATH (Debian: apt-get install g++, "
                                "as scripts/system_packages.sh does)")
    return path


def cache_dir() -> Path:
    """Where built kernels live: ``$RNNPOOL_LITE_CACHE``, else ``$XDG_CACHE_HOME/rnnpool_lite`` or ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rnnpool_lite"


def build() -> Path:
    """Compile the kernel for this machine unless a build with the same source, flags and compiler exists."""
    source = resources.files("rnnpool_lite.op").joinpath("csrc", "rnnpool_kernel.cpp").read_bytes()
    compiler = _compiler()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), version.encode(),
                                     platform.machine().encode()])).hexdigest()[:16]
    target = cache_dir() / f"rnnpool_kernel-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "rnnpool_kernel.cpp"
        src.write_bytes(source)
        out = Path(tmp) / target.name
        done = subprocess.run([compiler, *FLAGS, "-o", str(out), str(src)], capture_output=True, text=True)
        if done.returncode != 0:
            raise KernelUnavailable(f"{compiler} could not build the RNNPool kernel:\n{done.stderr[-2000:]}")
        os.replace(out, target)  # atomic: concurrent builders leave one complete file
    return target


@functools.cache
def library() -> Any:
    """The loaded kernel (built on first use); raises :class:`KernelUnavailable` with the reason."""
    lib = ctypes.CDLL(str(build()))
    v, i, f, long_ = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_long
    geometry: list[Any] = [long_, long_, long_, i, i, i, i, i, i, i, i, i]  # h, w, n, c, h1, h2, kh, kw, sh, sw, ho, wo
    cells: list[Any] = [v, v, v, f, f] * 2
    lib.rnnpool_forward.argtypes = [v, *geometry, *cells, v, i]
    lib.rnnpool_forward.restype = i
    lib.rnnpool_backward.argtypes = [v, *geometry, *cells, v, v, v, v, i]
    lib.rnnpool_backward.restype = i
    return lib


def _cell_arguments(params: list[Tensor]) -> list[Any]:
    out: list[Any] = []
    for w, b, u, zeta, nu in (params[:5], params[5:]):
        out += [w.data_ptr(), b.data_ptr(), u.data_ptr(), float(zeta), float(nu)]
    return out


def _check(code: int) -> None:
    if code != 0:
        raise ValueError(f"the RNNPool kernel does not support these sizes (code {code}); check supports() first")


class KernelPool(torch.autograd.Function):
    """Drop-in for ``op.fused._FusedPool`` (same arguments): the kernel's forward and backward."""

    @staticmethod
    def forward(ctx, geo, layer_cells, memory_format: torch.memory_format, x: Tensor, *params: Tensor) -> Tensor:
        n, c, height, width = x.shape
        (kh, kw), (sh, sw), (ho, wo) = geo.kernel, geo.stride, geo.out
        h1, h2 = params[2].shape[1], params[7].shape[1]
        padded = -(-n // LANES) * LANES
        xt = x.new_zeros(height, width, c, padded)
        xt[..., :n] = x.detach().permute(2, 3, 1, 0)
        weights = [p.detach().contiguous() for p in params]
        out = x.new_empty(ho, wo, 4 * h2, padded)
        geometry = [height, width, padded, c, h1, h2, kh, kw, sh, sw, ho, wo]
        _check(library().rnnpool_forward(xt.data_ptr(), *geometry, *_cell_arguments(weights), out.data_ptr(),
                                         torch.get_num_threads()))
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(xt, *weights)
            ctx.geometry, ctx.n = geometry, n
        return out[..., :n].permute(3, 2, 0, 1).contiguous(memory_format=memory_format)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        xt, *weights = ctx.saved_tensors
        geometry, n = ctx.geometry, ctx.n
        c, h1, h2, ho, wo = geometry[3], geometry[4], geometry[5], geometry[10], geometry[11]
        grad_t = xt.new_zeros(ho, wo, 4 * h2, geometry[2])
        grad_t[..., :n] = grad_out.permute(2, 3, 1, 0)
        grad_xt = torch.zeros_like(xt)
        sizes = [(h1, c), (h2, h1)]
        grads = [torch.zeros(2 * h * i + 2 * h + 2 * h * h + 2, dtype=torch.float64) for h, i in sizes]
        _check(library().rnnpool_backward(xt.data_ptr(), *geometry, *_cell_arguments(weights), grad_t.data_ptr(),
                                          grad_xt.data_ptr(), grads[0].data_ptr(), grads[1].data_ptr(),
                                          torch.get_num_threads()))
        result: list[Tensor | None] = [None, None, None, grad_xt[..., :n].permute(3, 2, 0, 1).contiguous()]
        for g, (h, i) in zip(grads, sizes):
            g = g.to(xt.dtype)
            a, b = 2 * h * i, 2 * h * i + 2 * h
            u = b + 2 * h * h
            result += [g[:a].view(2 * h, i), g[a:b], g[b:u].view(2 * h, h), g[u].reshape(1), g[u + 1].reshape(1)]
        return tuple(result)
