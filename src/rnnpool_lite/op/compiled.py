"""RNNPool's per-patch C++ kernel (``csrc/rnnpool_kernel.cpp``): build it, load it, run it under autograd.

Why a kernel: the torch path (:mod:`rnnpool_lite.op.fused`) is a few thousand whole-batch tensor ops per
call and, at the sizes of a CNN stem, spends its time moving activations through memory. The kernel keeps
one patch's whole work in registers and L1 (16 images per SIMD lane group) and recomputes it in the
backward pass instead of storing it. On the authors' VWW stem and on the 96-pixel model's smaller one
it runs forward and forward+backward about 2x faster than the torch path, about 9x the authors' layout
(``benchmarks/bench_rnnpool.py``, N = 32, 2 threads).

Which one runs: :func:`selected_kernel`. The default, ``auto``, is the kernel where it builds here and
the torch path elsewhere; ``RNNPOOL_LITE_KERNEL`` (``auto``, ``torch`` or ``compiled``, read at every
call, so it reaches papermill and sweep subprocesses) or :func:`use_kernel` (a block, as ``fit`` uses for
``TrainConfig.rnnpool_kernel``) choose. Sizes the kernel does not cover, float64, and GPUs run on the
torch path. The two round differently (both within 1e-5 of float64), and training amplifies rounding,
so ``repro.results.environment()`` records the kernel and a replay of a committed evidence run uses the
one it recorded (``torch`` for every run from before the kernel existed).

The kernel is built at first use with the system C++ compiler (``CXX``, else ``c++``; Debian's ``g++``,
installed by ``scripts/system_packages.sh``) for this CPU (``-march=native``) and cached under
``$RNNPOOL_LITE_CACHE`` (default ``~/.cache/rnnpool_lite``), keyed by the source, the flags and the
compiler. It is plain C++17 with GCC vector extensions and OpenMP, loaded by ctypes: no Python headers.
Its threads are PyTorch's own OpenMP pool (the loader resolves the library's ``libgomp.so.1`` to the one
torch loaded): threads of its own would compete for the cores with torch's OpenMP workers, which spin
for a while after every torch op (measured: on 2 cores the 96-pixel stem ran no faster on 2 threads
than on 1 until the kernel moved onto torch's pool).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

KERNEL_ENV = "RNNPOOL_LITE_KERNEL"
KERNELS = ("auto", "torch", "compiled")
CACHE_ENV = "RNNPOOL_LITE_CACHE"
FLAGS = ("-O3", "-march=native", "-std=c++17", "-fopenmp", "-shared", "-fPIC")
#: (h1, h2) pairs the kernel is instantiated for (its DISPATCH_H table)
HIDDEN_PAIRS = frozenset({(4, 4), (4, 8), (4, 16), (8, 8), (8, 16), (16, 16), (16, 32), (32, 32)})
MAX_CHANNELS, MAX_KERNEL = 64, 16
LANES = 16


class KernelUnavailable(RuntimeError):
    """The C++ kernel cannot be built or loaded here; the message says why."""


_CHOICE: ContextVar[str | None] = ContextVar("rnnpool_kernel", default=None)


def _valid(choice: str, where: str) -> str:
    if choice not in KERNELS:
        raise ValueError(f"{where} must be one of {', '.join(KERNELS)}; got {choice!r}")
    return choice


def requested_kernel() -> str:
    """What was asked for: :func:`use_kernel`'s choice inside it, else ``$RNNPOOL_LITE_KERNEL``
    (default ``"auto"``)."""
    inner = _CHOICE.get()
    return inner if inner is not None else _valid(os.environ.get(KERNEL_ENV, "auto"), KERNEL_ENV)


@contextlib.contextmanager
def use_kernel(choice: str) -> Iterator[None]:
    """Run RNNPool layers on ``choice`` (``"auto"``, ``"torch"``, ``"compiled"``) inside the block,
    whatever the environment says (``fit`` uses it for ``TrainConfig.rnnpool_kernel``). The choice
    is made in the forward pass, so the backward follows it."""
    token = _CHOICE.set(_valid(choice, "the RNNPool kernel"))
    try:
        yield
    finally:
        _CHOICE.reset(token)


@functools.cache
def unavailable_reason() -> str | None:
    """``None`` where the kernel builds and loads here, else why not (asked once per process)."""
    try:
        library()
    except KernelUnavailable as error:
        return str(error)
    return None


def selected_kernel(choice: str | None = None) -> str:
    """The kernel RNNPool layers run on: ``"compiled"`` or ``"torch"``, for ``choice`` (default: what is
    requested now, :func:`requested_kernel`). ``"auto"`` is the compiled kernel where it builds and loads
    here (a C++ compiler, a Linux or macOS toolchain) and the torch path elsewhere; an explicit
    ``"compiled"`` fails at the layer's call if it cannot."""
    choice = requested_kernel() if choice is None else _valid(choice, "the RNNPool kernel")
    if choice == "auto":
        return "compiled" if unavailable_reason() is None else "torch"
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
    path = build()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise KernelUnavailable(f"the RNNPool kernel {path} was built but does not load: {error}") from error
    v, i, f, long_ = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_long
    geometry: list[Any] = [long_, long_, long_, i, i, i, i, i, i, i, i, i]  # h, w, n, c, h1, h2, kh, kw, sh, sw, ho, wo
    cells: list[Any] = [v, v, v, f, f] * 2
    lib.rnnpool_forward.argtypes = [v, *geometry, *cells, v, i]
    lib.rnnpool_forward.restype = i
    lib.rnnpool_backward.argtypes = [v, *geometry, *cells, v, v, v, v, i]
    lib.rnnpool_backward.restype = i
    strides = [long_] * 4
    lib.rnnpool_pack.argtypes = [v, long_, i, long_, long_, *strides, long_, v, i]
    lib.rnnpool_pack.restype = None
    lib.rnnpool_unpack.argtypes = [v, long_, i, long_, long_, long_, v, *strides, i]
    lib.rnnpool_unpack.restype = None
    return lib


def _cell_arguments(params: list[Tensor]) -> list[Any]:
    out: list[Any] = []
    for w, b, u, zeta, nu in (params[:5], params[5:]):
        out += [w.data_ptr(), b.data_ptr(), u.data_ptr(), float(zeta), float(nu)]
    return out


def _check(code: int) -> None:
    if code != 0:
        raise ValueError(f"the RNNPool kernel does not support these sizes (code {code}); check supports() first")


def _pack(x: Tensor, padded: int) -> Tensor:
    """``x`` ``(N, C, H, W)``, any strides, as the kernel's ``(H, W, C, padded)`` (images past N zero)."""
    n, c, height, width = x.shape
    out = x.new_empty(height, width, c, padded)
    library().rnnpool_pack(x.data_ptr(), n, c, height, width, *x.stride(), padded, out.data_ptr(),
                           torch.get_num_threads())
    return out


def _unpack(t: Tensor, n: int, memory_format: torch.memory_format) -> Tensor:
    """The kernel's ``(H, W, C, padded)`` as ``(n, C, H, W)`` in ``memory_format``."""
    height, width, c, padded = t.shape
    out = t.new_empty(n, c, height, width).contiguous(memory_format=memory_format)
    library().rnnpool_unpack(t.data_ptr(), n, c, height, width, padded, out.data_ptr(), *out.stride(),
                             torch.get_num_threads())
    return out


class KernelPool(torch.autograd.Function):
    """Drop-in for ``op.fused._FusedPool`` (same arguments): the kernel's forward and backward."""

    @staticmethod
    def forward(ctx, geo, layer_cells, memory_format: torch.memory_format, x: Tensor, *params: Tensor) -> Tensor:
        n, c, height, width = x.shape
        (kh, kw), (sh, sw), (ho, wo) = geo.kernel, geo.stride, geo.out
        h1, h2 = params[2].shape[1], params[7].shape[1]
        padded = -(-n // LANES) * LANES
        xt = _pack(x.detach(), padded)
        weights = [p.detach().contiguous() for p in params]
        out = x.new_empty(ho, wo, 4 * h2, padded)
        geometry = [height, width, padded, c, h1, h2, kh, kw, sh, sw, ho, wo]
        _check(library().rnnpool_forward(xt.data_ptr(), *geometry, *_cell_arguments(weights), out.data_ptr(),
                                         torch.get_num_threads()))
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(xt, *weights)
            ctx.geometry, ctx.n, ctx.memory_format = geometry, n, memory_format
        return _unpack(out, n, memory_format)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        xt, *weights = ctx.saved_tensors
        geometry, n = ctx.geometry, ctx.n
        c, h1, h2 = geometry[3], geometry[4], geometry[5]
        grad_t = _pack(grad_out, geometry[2])
        grad_xt = torch.zeros_like(xt)
        sizes = [(h1, c), (h2, h1)]
        grads = [torch.zeros(2 * h * i + 2 * h + 2 * h * h + 2, dtype=torch.float64) for h, i in sizes]
        _check(library().rnnpool_backward(xt.data_ptr(), *geometry, *_cell_arguments(weights), grad_t.data_ptr(),
                                          grad_xt.data_ptr(), grads[0].data_ptr(), grads[1].data_ptr(),
                                          torch.get_num_threads()))
        result: list[Tensor | None] = [None, None, None, _unpack(grad_xt, n, ctx.memory_format)]
        for g, (h, i) in zip(grads, sizes):
            g = g.to(xt.dtype)
            a, b = 2 * h * i, 2 * h * i + 2 * h
            u = b + 2 * h * h
            result += [g[:a].view(2 * h, i), g[a:b], g[b:u].view(2 * h, h), g[u].reshape(1), g[u + 1].reshape(1)]
        return tuple(result)
