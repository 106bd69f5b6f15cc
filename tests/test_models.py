"""Model constructors: shapes, parameter counts of the reference architectures, fx tracing."""
import pytest
import torch
from torch import nn

from rnnpool_lite import RNNPool2d
from rnnpool_lite.models import (
    FACE_VARIANTS,
    fx_trace,
    mobilenetv2,
    mobilenetv2_rnnpool,
    mobilenetv2_rnnpool_vww,
    mobilenetv2_vww,
    resnet18,
    rnnpool_face,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_mobilenetv2_matches_torchvision_parameter_count():
    # torchvision.models.mobilenet_v2(num_classes=1000) has 3,504,872 parameters.
    assert n_params(mobilenetv2(1000)) == 3_504_872
    assert n_params(mobilenetv2(10)) == 2_236_682


def test_resnet18_matches_torchvision_parameter_count():
    # torchvision.models.resnet18(num_classes=1000) has 11,689,512 parameters.
    assert n_params(resnet18(1000)) == 11_689_512


def test_vww_models_use_8_first_320_last_channels_and_h8():
    base, pooled = mobilenetv2_vww(), mobilenetv2_rnnpool_vww()
    convs = [m for m in base.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels == 8 and convs[-1].out_channels == 320
    rnnpool = pooled.features[1]
    assert isinstance(rnnpool, RNNPool2d)
    assert (rnnpool.in_channels, rnnpool.hidden_size, rnnpool.hidden_size2, rnnpool.kernel_size,
            rnnpool.stride) == (8, 8, 8, (6, 6), (4, 4))
    assert n_params(pooled) < 250_000 + 40_000  # paper caps parameters at ~250K (ours: 281,902)
    assert n_params(pooled) == 281_902


@pytest.mark.parametrize("variant", FACE_VARIANTS)
def test_face_detectors_fx_trace_and_priors_match_outputs(variant):
    torch.manual_seed(0)
    model = rnnpool_face(variant).eval()
    hw = (64, 64)
    x = torch.randn(1, model.in_channels, *hw)
    with torch.no_grad():
        loc, conf = model(x)
        loc2, conf2 = fx_trace(model)(x)
    torch.testing.assert_close(loc, loc2)
    torch.testing.assert_close(conf, conf2)
    priors = model.priors(hw)
    assert loc.shape == (1, priors.shape[0], 4) and conf.shape == (1, priors.shape[0], 2)
    assert torch.all(priors[:, 2:] > 0)


def test_priors_in_training_mode_leave_batchnorm_alone():
    # at 128 px Face-Quant's last maps are 1x1: a training-mode pass of one image would fail
    model = rnnpool_face("Quant").train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    priors = model.priors((128, 128))
    assert model.training and priors.shape[1] == 4
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_face_c_vga_grids_and_m4_heads():
    assert rnnpool_face("C").strides == [4, 8, 16, 32, 64, 128]
    m4 = rnnpool_face("M4")
    assert m4.in_channels == 1 and m4.strides == [8, 8, 16, 16] and m4.anchors == [8, 16, 32, 48]
    assert m4.feature_sizes((240, 320)) == [(60 // 2, 80 // 2)] * 2 + [(15, 20)] * 2
    assert n_params(rnnpool_face("C")) == 1_562_522
    assert n_params(rnnpool_face("Quant")) == 70_214


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="variant"):
        rnnpool_face("D")
    with pytest.raises(ValueError, match="Downsampler"):
        mobilenetv2_rnnpool(10, downsampler="renet2")
    with pytest.raises(ValueError, match="num_classes"):
        mobilenetv2(0)
    with pytest.raises(ValueError, match="image_size"):
        rnnpool_face("A").priors((0, 10))
