"""Receptive fields: the theoretical field from kernels and strides, the effective one from gradients."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from rnnpool_lite import RNNPool2d
from rnnpool_lite.accounting.receptive_field import (
    SWEEPS,
    coverage,
    deepest_prefix,
    effective_receptive_field,
    erf_stats,
    mass_inside,
    sweep_channels,
    theoretical_receptive_field,
)
from rnnpool_lite.models import mobilenetv2, mobilenetv2_rnnpool_vww, mobilenetv2_vww
from rnnpool_lite.models.blocks import ConvBNAct
from rnnpool_lite.models.downsample import ReNet2d


def _positive_conv(k: int, s: int, p: int, c_in: int = 1, c_out: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, s, p, bias=False)
    with torch.no_grad():
        conv.weight.uniform_(0.1, 1.0)  # no cancellation: every path carries gradient
    return conv


@given(k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2), size=st.integers(8, 14),
       i=st.integers(0, 3), j=st.integers(0, 3))
def test_erf_of_one_conv_is_its_kernel_window(k: int, s: int, p: int, size: int, i: int, j: int) -> None:
    conv = nn.Conv2d(2, 3, k, s, p)  # random signs: the support can only shrink, never leak
    trf = theoretical_receptive_field(conv)
    assert trf.size == (k, k) and trf.stride == (s, s)
    out = (size + 2 * p - k) // s + 1
    i, j = i % out, j % out
    erf = effective_receptive_field(conv, torch.randn(3, 2, size, size), unit=(i, j))
    mask = trf.mask((i, j), (size, size))
    assert not erf[~mask].any()
    expected = torch.zeros(size, size, dtype=torch.bool)
    for r in range(i * s - p, i * s - p + k):
        for c in range(j * s - p, j * s - p + k):
            if 0 <= r < size and 0 <= c < size:  # positions in the zero padding see no pixel
                expected[r, c] = True
    assert torch.equal(mask, expected)


@given(layers=st.lists(st.tuples(st.integers(2, 4), st.integers(1, 2), st.integers(0, 1)), min_size=1, max_size=3))
def test_support_of_a_positive_linear_stack_is_the_theoretical_window(layers: list[tuple[int, int, int]]) -> None:
    """Kernels at least as large as their stride leave no gaps: the support is the whole window."""
    stack = nn.Sequential(*[_positive_conv(k, s, p) for k, s, p in layers])
    size = 24
    out = stack(torch.zeros(1, 1, size, size)).shape[2:]
    unit = (out[0] // 2, out[1] // 2)
    trf = theoretical_receptive_field(stack)
    erf = effective_receptive_field(stack, torch.rand(2, 1, size, size), unit=unit)
    assert torch.equal(erf > 0, trf.mask(unit, (size, size)))
    strides_before = [math.prod(s for _, s, _ in layers[:n]) for n in range(len(layers))]
    assert trf.size[0] == 1 + sum((k - 1) * jump for (k, _, _), jump in zip(layers, strides_before))


def test_mobilenetv2_stem_and_replaced_rows_match_hand_values() -> None:
    base = mobilenetv2_vww(2)
    # stem: conv 3x3 stride 2 -> 3 pixels, stride 2
    assert theoretical_receptive_field(base.features[:1]).size == (3, 3)
    # stem + rows 1-3 (t1 c16 n1 s1, t6 c24 n2 s2, t6 c32 n3 s2): 3 + 2*2 + 2*(2+4) + 2*(4+8+8) = 59
    replaced = deepest_prefix(base.features, 8)
    assert len(replaced) == 1 + 1 + 2 + 3
    trf = theoretical_receptive_field(replaced)
    assert trf.size == (59, 59) and trf.stride == (8, 8)
    assert (trf.rows.lo, trf.rows.hi) == (-29, 29)  # symmetric: every kernel is odd with "same" padding
    # the RNNPool model: stem, then RNNPool patch 6 stride 4 padding 2 -> 3 + 5*2 = 13
    rnnpool = deepest_prefix(mobilenetv2_rnnpool_vww(2).features, 8)
    assert len(rnnpool) == 2 and isinstance(rnnpool[1], RNNPool2d)
    trf = theoretical_receptive_field(rnnpool)
    assert trf.size == (13, 13) and trf.stride == (8, 8) and (trf.rows.lo, trf.rows.hi) == (-5, 7)
    # average pooling and a strided conv in RNNPool's place see the same window
    for kind in ("avg", "max", "strided_conv"):
        other = deepest_prefix(mobilenetv2_rnnpool_vww(2, downsampler=kind).features, 8)
        assert theoretical_receptive_field(other) == trf


def test_whole_models_and_global_layers() -> None:
    assert theoretical_receptive_field(mobilenetv2(10).features).stride == (32, 32)
    assert theoretical_receptive_field(mobilenetv2(10)).size == (math.inf, math.inf)
    assert theoretical_receptive_field(ReNet2d(3, 8, 4)).size == (math.inf, math.inf)
    assert theoretical_receptive_field([nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1)]).size == (math.inf, math.inf)


class _TwoBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], 1) + x


def test_branches_take_the_union() -> None:
    assert theoretical_receptive_field(_TwoBranches()).size == (5, 5)
    with pytest.raises(ValueError, match="strides"):
        theoretical_receptive_field(_Mismatch())


class _Mismatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 1, 3, 2, 1), nn.Conv2d(1, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


@given(k=st.integers(2, 5), s=st.integers(1, 3), i=st.integers(0, 2), j=st.integers(0, 2))
def test_rnnpool_erf_is_confined_to_its_patch_and_covers_it(k: int, s: int, i: int, j: int) -> None:
    torch.manual_seed(k * 10 + s)
    pool = RNNPool2d(2, 3, k, s, hidden_size2=2)
    size = (2 + 1) * s + k
    trf = theoretical_receptive_field(pool)
    assert trf.size == (k, k)
    images = torch.randn(4, 2, size, size)
    mask = trf.mask((i, j), (size, size))
    assert int(mask.sum()) == k * k
    for channels in [None, *sweep_channels(pool).values()]:  # every sweep reads the whole patch
        erf = effective_receptive_field(pool, images, (i, j), channels)
        assert mass_inside(erf, mask) == 1.0
        assert coverage(erf, mask) == 1.0


def test_sweep_channels_partition_the_output() -> None:
    pool = RNNPool2d(3, 4, 4, hidden_size2=5)
    groups = sweep_channels(pool)
    assert list(groups) == list(SWEEPS)
    assert sum((list(range(pool.out_channels))[g] for g in groups.values()), []) == list(range(20))
    with pytest.raises(TypeError):
        sweep_channels(nn.Conv2d(1, 1, 1))


def test_sweeps_weight_the_pixels_they_read_last() -> None:
    """Rows forward ends on the bottom row, rows backward on the top one; RNN1 reads rows left to right."""
    torch.manual_seed(0)
    pool = RNNPool2d(1, 8, 8, 8)
    images = torch.randn(64, 1, 8, 8)
    centre = {}
    for name, channels in sweep_channels(pool).items():
        centre[name] = erf_stats(effective_receptive_field(pool, images, (0, 0), channels)).centroid
    assert centre["rows forward"][0] > 3.5 > centre["rows backward"][0]
    assert centre["columns forward"][1] > 3.5 > centre["columns backward"][1]


def test_erf_stats_of_known_maps() -> None:
    delta = torch.zeros(9, 9)
    delta[2, 6] = 3.0
    s = erf_stats(delta)
    assert (s.area, s.std, s.centroid) == (1, 0.0, (2.0, 6.0))
    square = torch.zeros(20, 20)
    square[5:15, 5:15] = 1.0
    s = erf_stats(square, mass=0.9)
    assert s.area == 90 and s.side == math.sqrt(90) and s.centroid == (9.5, 9.5)
    assert s.std == pytest.approx(math.sqrt((100 - 1) / 12))  # variance of a uniform 10-point grid
    assert erf_stats(square, mass=1.0).area == 100


@given(y=st.integers(0, 11), x=st.integers(0, 11), value=st.floats(1e-3, 1e3))
def test_erf_stats_finds_a_single_pixel(y: int, x: int, value: float) -> None:
    erf = torch.zeros(12, 12)
    erf[y, x] = value
    assert erf_stats(erf).centroid == (y, x) and erf_stats(erf).area == 1


def test_erf_runs_in_eval_mode_and_restores_training() -> None:
    model = ConvBNAct(3, 4, 3, 2)
    model.train()
    images = torch.randn(4, 3, 9, 9)
    erf = effective_receptive_field(model, images)
    assert model.training
    # in eval mode BatchNorm does not mix positions: the ERF stays in the 3x3 window
    assert mass_inside(erf, theoretical_receptive_field(model).mask((2, 2), (9, 9))) == 1.0
    # one image at a time gives the same average as a batch
    single = effective_receptive_field(model, images, batch_size=1)
    assert torch.allclose(erf, single, atol=1e-6)


def test_bad_inputs() -> None:
    conv = nn.Conv2d(1, 1, 3)
    with pytest.raises(ValueError, match="images"):
        effective_receptive_field(conv, torch.randn(1, 8, 8))
    with pytest.raises(ValueError, match="images"):
        effective_receptive_field(conv, torch.zeros(1, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least one"):
        effective_receptive_field(conv, torch.randn(0, 1, 8, 8))
    with pytest.raises(ValueError, match="outside"):
        effective_receptive_field(conv, torch.randn(1, 1, 8, 8), unit=(6, 0))
    with pytest.raises(ValueError, match="unit"):
        effective_receptive_field(conv, torch.randn(1, 1, 8, 8), unit="middle")
    with pytest.raises(ValueError, match="channels"):
        effective_receptive_field(conv, torch.randn(1, 1, 8, 8), channels=slice(3, 5))
    with pytest.raises(ValueError, match="batch_size"):
        effective_receptive_field(conv, torch.randn(1, 1, 8, 8), batch_size=0)
    with pytest.raises(ValueError, match=r"\(N, K, H, W\)"):
        effective_receptive_field(nn.Sequential(conv, nn.Flatten()), torch.randn(1, 1, 8, 8))
    with pytest.raises(TypeError):
        effective_receptive_field("conv", torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="zero everywhere"):
        erf_stats(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="mass"):
        erf_stats(torch.ones(4, 4), mass=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        erf_stats(-torch.ones(4, 4))
    with pytest.raises(ValueError, match="2-D"):
        erf_stats(torch.ones(4))
    with pytest.raises(ValueError, match="Upsample"):
        theoretical_receptive_field(nn.Sequential(conv, nn.Upsample(scale_factor=2)))
    with pytest.raises(TypeError):
        theoretical_receptive_field([])
    with pytest.raises(ValueError, match="stride 4"):
        deepest_prefix(mobilenetv2_vww(2).features[:1], 4)
    with pytest.raises(TypeError):
        deepest_prefix([conv], 1)
