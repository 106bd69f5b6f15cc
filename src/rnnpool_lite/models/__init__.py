"""The paper's models, written as its architecture tables (no torchvision / timm).

Every model is a plain ``nn.Module`` that ``torch.fx.symbolic_trace`` can trace with
``RNNPool2d`` as a leaf module (see :func:`rnnpool_lite.models.fx_trace`). The models of the
paper's tables are registered by name (:func:`get_model`, :func:`list_models`, :mod:`.registry`).
"""
from rnnpool_lite.models.blocks import (
    ConvBNAct,
    DepthwiseSeparable,
    InvertedResidual,
    LastPool,
    MemoryRule,
    make_divisible,
)
from rnnpool_lite.models.densenet import DenseBlock, DenseNet, Transition, densenet121, densenet121_rnnpool
from rnnpool_lite.models.downsample import DOWNSAMPLERS, Downsampler, ReNet2d, downsampler
from rnnpool_lite.models.efficientnet import EfficientNet, MBConvSE, efficientnet_b0, efficientnet_b0_rnnpool
from rnnpool_lite.models.face import FACE_VARIANTS, DetectionHead, FaceDetector, rnnpool_face, small_rnnpool_face
from rnnpool_lite.models.googlenet import GoogLeNet, Inception, googlenet, googlenet_rnnpool
from rnnpool_lite.models.mobilenetv1 import MobileNetV1, mobilenetv1, mobilenetv1_rnnpool
from rnnpool_lite.models.mobilenetv2 import (
    MobileNetV2,
    mobilenetv2,
    mobilenetv2_rnnpool,
    mobilenetv2_rnnpool_table16,
    mobilenetv2_rnnpool_vww,
    mobilenetv2_vww,
)
from rnnpool_lite.models.registry import (
    Cell,
    ModelSpec,
    get_model,
    get_model_spec,
    list_models,
    paper_model,
    register_model,
)
from rnnpool_lite.models.resnet import BasicBlock, ResNet, resnet18, resnet18_rnnpool
from rnnpool_lite.models.tracing import fx_trace

__all__ = [
    # registry
    "Cell", "ModelSpec", "get_model", "get_model_spec", "list_models", "paper_model", "register_model",
    # builders
    "densenet121", "densenet121_rnnpool", "efficientnet_b0", "efficientnet_b0_rnnpool", "googlenet",
    "googlenet_rnnpool", "mobilenetv1", "mobilenetv1_rnnpool", "mobilenetv2", "mobilenetv2_rnnpool",
    "mobilenetv2_rnnpool_table16", "mobilenetv2_rnnpool_vww", "mobilenetv2_vww", "resnet18", "resnet18_rnnpool",
    "rnnpool_face", "small_rnnpool_face",
    # vocabularies and layers
    "DOWNSAMPLERS", "Downsampler", "FACE_VARIANTS", "LastPool", "MemoryRule", "ReNet2d", "downsampler",
    # classes and blocks
    "BasicBlock", "ConvBNAct", "DenseBlock", "DenseNet", "DepthwiseSeparable", "DetectionHead", "EfficientNet",
    "FaceDetector", "GoogLeNet", "Inception", "InvertedResidual", "MBConvSE", "MobileNetV1", "MobileNetV2",
    "ResNet", "Transition", "make_divisible", "fx_trace",
]
