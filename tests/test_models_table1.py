"""The Table 1 / Table 3 models: reference parameter counts, shapes, fx tracing, ReNet, and the
memory rules of dense and inception blocks."""
import pytest
import torch
from torch import nn

from rnnpool_lite import RNNPool2d
from rnnpool_lite.accounting.profiler import profile
from rnnpool_lite.models import (
    DenseBlock,
    Inception,
    ReNet2d,
    Transition,
    densenet121,
    densenet121_rnnpool,
    efficientnet_b0,
    efficientnet_b0_rnnpool,
    fx_trace,
    googlenet,
    googlenet_rnnpool,
    mobilenetv1,
    mobilenetv1_rnnpool,
    mobilenetv2_rnnpool_vww,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("build,expected", [
    # reference counts at 1000 classes: torchvision densenet121 7,978,856; efficientnet_b0 5,288,548;
    # googlenet(aux_logits=True) 13,004,888 and without aux 6,624,904 (3x3 "5x5" branch, as torchvision);
    # MobileNetV1 (Howard et al.) 4,231,976.
    (lambda: densenet121(1000), 7_978_856),
    (lambda: efficientnet_b0(1000), 5_288_548),
    (lambda: googlenet(1000), 13_004_888),
    (lambda: googlenet(1000, aux_logits=False), 6_624_904),
    (lambda: mobilenetv1(1000), 4_231_976),
])
def test_reference_parameter_counts(build, expected):
    assert n_params(build()) == expected


@pytest.mark.parametrize("build,paper_m", [
    (lambda: densenet121(10), 6.96), (lambda: efficientnet_b0(10), 4.03), (lambda: googlenet(10), 9.96),
    (lambda: densenet121_rnnpool(10), 5.60), (lambda: efficientnet_b0_rnnpool(10), 3.90),
    (lambda: googlenet_rnnpool(10), 9.35),
])
def test_table1_parameter_counts_at_10_classes(build, paper_m):
    assert n_params(build()) / 1e6 == pytest.approx(paper_m, rel=0.03)


def test_densenet_with_every_pool_an_rnnpool_runs_and_fx_traces():
    # Section 4's model (the registered ones are run by test_registry)
    model = densenet121_rnnpool(10, replace_intermediate_pools=True, last_pool="rnnpool", image_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
        traced = fx_trace(model)
        torch.testing.assert_close(traced(x), y)
    assert y.shape == (1, 10)
    assert sum(isinstance(m, RNNPool2d) for m in traced.modules()) == 4  # downsampler, T2, T3, last pool


def test_every_conv_on_a_feature_map_is_followed_by_batchnorm():
    for model in (densenet121_rnnpool(10, replace_intermediate_pools=True), efficientnet_b0(10), googlenet(10),
                  mobilenetv1(10)):
        mods = list(model.modules())
        for i, m in enumerate(mods):
            if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1) or isinstance(m, nn.Conv2d) and m.bias is None:
                # pre-activation DenseNet: the BatchNorm of the next layer normalises the conv output
                assert any(isinstance(n, nn.BatchNorm2d) for n in mods[i + 1:]), type(model).__name__


def test_googlenet_auxiliary_heads_only_in_training():
    model = googlenet(10).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (2, 10) for o in out)
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert googlenet(10, aux_logits=False).train()(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_densenet121_rnnpool_replaces_p1_to_d2_and_optionally_the_transition_pools():
    model = densenet121_rnnpool(10)
    pool = model.features[1]
    assert isinstance(pool, RNNPool2d) and (pool.hidden_size, pool.kernel_size) == (48, (8, 8))
    blocks = [m for m in model.features if isinstance(m, DenseBlock)]
    assert [len(b) for b in blocks] == [24, 16] and blocks[0].out_channels == 1024
    inner = densenet121_rnnpool(10, replace_intermediate_pools=True)
    pools = [t[-1] for t in inner.features if isinstance(t, Transition)]
    assert [(p.in_channels, p.hidden_size, p.kernel_size, p.stride) for p in pools] == [
        (256, 64, (4, 4), (2, 2)), (512, 128, (4, 4), (2, 2))]


def test_renet_shapes_parameters_and_madds():
    layer = ReNet2d(8, 32, 4)
    x = torch.randn(2, 8, 16, 24)
    assert layer(x).shape == (2, 32, 4, 6)
    gru = lambda i, h: 2 * 3 * (i * h + h * h + 2 * h)  # noqa: E731  bidirectional GRU, two biases
    assert n_params(layer) == gru(8 * 16, 16) + gru(32, 16)
    p = profile(nn.Sequential(layer), (8, 16, 24))
    weights = lambda i, h: 2 * 3 * (i * h + h * h)  # noqa: E731
    assert p.madds == 4 * 6 * (weights(128, 16) + weights(32, 16))
    with pytest.raises(ValueError, match="divisible"):
        layer(torch.randn(1, 8, 10, 12))
    with pytest.raises(ValueError, match="even"):
        ReNet2d(8, 31)


def test_renet_downsampler_matches_paper_increments():
    # Table 2, MobileNetV2-0.35x: ReNet 277K / 46.4M vs average pooling 255K / 31.9M (+22K, +14.5M)
    renet = profile(mobilenetv2_rnnpool_vww(downsampler="renet"), (3, 224, 224))
    layer = renet.layers.set_index("layer").loc["features.1"]
    assert layer["params"] / 1e3 == pytest.approx(22, rel=0.2)
    assert layer["madds"] / 1e6 == pytest.approx(14.5, rel=0.05)
    assert renet.peak_ram_bytes == profile(mobilenetv2_rnnpool_vww(), (3, 224, 224)).peak_ram_bytes


@pytest.fixture(scope="module")
def peaks():
    from rnnpool_lite.accounting.comparison import model_profile
    return model_profile


@pytest.mark.parametrize("name,peak_bytes,rule", [
    ("DenseNet121", 112 * 112 * 64 * 4, "in+out"),                          # stem conv output
    ("DenseNet121-RNNPool", 14 * 14 * 1024 * 4, "out"),                     # D3's output (E.2.2)
    ("EfficientNet-B0", 112 * 112 * (32 + 16) * 4, "in+out"),              # first MBConv
    ("EfficientNet-B0-RNNPool", (28 * 28 * 64 + 14 * 14 * 80) * 4, "in+out"),
    ("GoogLeNet", 112 * 112 * 64 * 4, "in+out"),
    ("GoogLeNet-RNNPool", 14 * 14 * (528 + 128 + 128 + 256) * 4, "inception"),  # inception 4e
    ("MobileNetV1 1K", 112 * 112 * 64 * 4, "max"),
    ("MobileNetV1-RNNPool 1K", 28 * 28 * 256 * 4, "max"),
])
def test_standard_convention_peaks(peaks, name, peak_bytes, rule):
    p = peaks(name)
    assert p.peak_ram_bytes == peak_bytes
    assert p.layers.set_index("layer").loc[p.peak_layer, "rule"] == rule


def test_densenet_and_inception_rules_on_small_blocks():
    def block_ram(block: nn.Module, shape: tuple[int, int, int]) -> int:
        # pools around the block: its input is not the image and its output not the network
        # output (both streamed under the convention)
        table = profile(nn.Sequential(nn.MaxPool2d(1), block, nn.MaxPool2d(1)), shape, 1).layers
        return int(table.loc[1, "ram_bytes"])

    assert block_ram(DenseBlock(8, 2), (8, 6, 6)) == (8 + 2 * 32) * 36  # its output only
    assert block_ram(Inception(16, 4, 2, 8, 2, 6, 5), (16, 5, 5)) == (16 + 4 + 5 + 6) * 25
    assert block_ram(Transition(16, 4), (16, 8, 8)) == 16 * 64  # max(input, output)


def test_densenet121_rnnpool_trimmed_dense_blocks():
    # Section 4: drop 14 dense layers of D3 and 10 of D4
    model = densenet121_rnnpool(10, dense_layers=(10, 6))
    blocks = [m for m in model.features if isinstance(m, DenseBlock)]
    assert [len(b) for b in blocks] == [10, 6] and blocks[0].out_channels == 256 + 10 * 32
    with pytest.raises(ValueError, match="dense_layers"):
        densenet121_rnnpool(10, dense_layers=(0, 6))


@pytest.mark.parametrize("build", [densenet121, densenet121_rnnpool, efficientnet_b0, efficientnet_b0_rnnpool,
                                   googlenet, googlenet_rnnpool, mobilenetv1, mobilenetv1_rnnpool])
def test_bad_num_classes_raise(build):
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_classes"):
            build(bad)


def test_unknown_downsampler_raises():
    with pytest.raises(ValueError, match="Downsampler"):
        densenet121_rnnpool(10, downsampler="bilinear")
