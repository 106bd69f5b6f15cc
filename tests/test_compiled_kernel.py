"""rnnpool_lite.op.compiled: the C++ kernel equals a float64 reference to 1e-5 in either memory layout, is the
default where it builds (``auto``), falls back to the torch path for sizes it does not cover and where it cannot
be built, and says why."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch

import rnnpool_lite.op.fused as fused
from rnnpool_lite import RNNPool2d
from rnnpool_lite.op import compiled
from rnnpool_lite.op.compiled import (
    KERNEL_ENV,
    KernelPool,
    KernelUnavailable,
    build,
    requested_kernel,
    selected_kernel,
    use_kernel,
)

needs_compiler = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                    reason="needs a C++ compiler: Debian's g++ (bash scripts/system_packages.sh)")

# C, h1, h2, kernel, stride, padding, N, H, W, learned zeta / nu
CASES = [
    (8, 8, 8, 6, 4, 1, 20, 24, 24, True),                 # the VWW stem's settings, N not a multiple of 16
    (3, 4, 8, (4, 6), (2, 3), (1, 2), 17, 15, 21, True),  # unequal kernel and stride: the sweeps have unequal lengths
    (4, 16, 32, 5, 5, 0, 3, 15, 20, False),               # the paper's fixed zeta = 1, nu = 0
    (16, 8, 16, 3, 1, 1, 2, 7, 9, True),                  # a runtime channel count
]


class _Spy:
    """Counts the calls that reach the kernel."""

    calls = 0

    @staticmethod
    def apply(*args):
        _Spy.calls += 1
        return KernelPool.apply(*args)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> type[_Spy]:
    monkeypatch.setattr(fused, "KernelPool", _Spy)
    _Spy.calls = 0
    return _Spy


def _grads(layer: RNNPool2d, x: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.clone().requires_grad_()
    layer.zero_grad()
    y = layer(x)
    (y * weights.to(y.dtype)).sum().backward()
    out = {"output": y.detach(), "input": x.grad}
    out.update({name: p.grad for name, p in layer.named_parameters() if p.grad is not None})
    return out


@needs_compiler
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"C{c[0]}-h{c[1]}-{c[2]}-k{c[3]}-s{c[4]}-N{c[6]}")
def test_kernel_equals_a_float64_reference(case, spy, monkeypatch: pytest.MonkeyPatch) -> None:
    c, h1, h2, kernel, stride, padding, n, height, width, learn = case
    layer = RNNPool2d(c, h1, kernel, stride, padding=padding, hidden_size2=h2, learn_zeta_nu=learn)
    x = torch.randn(n, c, height, width)
    reference_layer = copy.deepcopy(layer).double()
    weights = torch.randn_like(reference_layer(x.double()))
    reference = _grads(reference_layer, x.double(), weights)  # float64 always runs on the torch path
    assert spy.calls == 0
    monkeypatch.setenv(KERNEL_ENV, "compiled")
    for layout in (torch.contiguous_format, torch.channels_last):
        got = _grads(layer, x.contiguous(memory_format=layout), weights)
        assert got["output"].is_contiguous(memory_format=layout)  # the output follows the input's layout
        assert got.keys() == reference.keys()
        for name, ref in reference.items():
            error = ((got[name].double() - ref).abs().max() / ref.abs().max()).item()
            assert error < 1e-5, f"{name} ({layout}): {error:.2e} relative to float64"
    assert spy.calls == 2


@needs_compiler
def test_sizes_the_kernel_does_not_cover_run_on_the_torch_path(spy, monkeypatch: pytest.MonkeyPatch) -> None:
    layer = RNNPool2d(3, 5, 4, 2, hidden_size2=5)  # h = 5 is not instantiated
    x = torch.randn(2, 3, 10, 10)
    expected = layer(x)
    monkeypatch.setenv(KERNEL_ENV, "compiled")
    assert torch.equal(layer(x), expected) and spy.calls == 0


def test_the_choice_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    assert requested_kernel() == "auto"
    with use_kernel("torch"):
        assert selected_kernel() == "torch"
        monkeypatch.setenv(KERNEL_ENV, "compiled")
        assert selected_kernel() == "torch"  # the block's choice wins over the environment
    assert selected_kernel() == "compiled"
    assert selected_kernel("torch") == "torch"  # a choice given by name wins too (choose_execution's)
    monkeypatch.setenv(KERNEL_ENV, "fast")
    with pytest.raises(ValueError, match="RNNPOOL_LITE_KERNEL must be one of auto, torch, compiled; got 'fast'"):
        selected_kernel()
    with pytest.raises(ValueError, match="the RNNPool kernel must be one of auto, torch, compiled; got 'tpu'"):
        selected_kernel("tpu")
    with pytest.raises(ValueError, match="the RNNPool kernel must be one of auto, torch, compiled; got 'gpu'"), \
            use_kernel("gpu"):
        pass


@needs_compiler
def test_auto_is_the_kernel_where_it_builds(spy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    assert selected_kernel() == "compiled"
    RNNPool2d(4, 8, 4, 2)(torch.randn(2, 4, 8, 8))
    assert spy.calls == 1
    with use_kernel("torch"):  # fit's off-switch (TrainConfig(rnnpool_kernel="torch"))
        RNNPool2d(4, 8, 4, 2)(torch.randn(2, 4, 8, 8))
    assert spy.calls == 1


def test_auto_falls_back_to_the_torch_path_without_a_compiler(spy, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("RNNPOOL_LITE_CACHE", str(tmp_path))
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    compiled.library.cache_clear()
    compiled.unavailable_reason.cache_clear()
    try:
        assert selected_kernel() == "torch"
        assert "no C++ compiler" in (compiled.unavailable_reason() or "")
        layer, x = RNNPool2d(4, 8, 4, 2), torch.randn(2, 4, 8, 8)
        layer(x)
        assert spy.calls == 0
        with use_kernel("compiled"), pytest.raises(KernelUnavailable, match="no C\\+\\+ compiler"):
            layer(x)  # asked for by name, the kernel must be there
    finally:
        compiled.library.cache_clear()
        compiled.unavailable_reason.cache_clear()


def test_without_a_compiler_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(KernelUnavailable, match=r"no C\+\+ compiler.*apt-get install g\+\+"):
        build()


@needs_compiler
def test_a_failed_build_shows_the_compiler_and_a_good_one_is_reused(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("RNNPOOL_LITE_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # exits 1 without a word
    with pytest.raises(KernelUnavailable, match="could not build the RNNPool kernel"):
        build()
    monkeypatch.delenv("CXX")
    first = build()
    stamp = first.stat().st_mtime_ns
    assert build() == first and first.stat().st_mtime_ns == stamp  # same source, flags, compiler: no rebuild
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left behind
