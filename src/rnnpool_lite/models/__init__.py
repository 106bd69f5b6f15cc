"""The paper's models, written as its architecture tables (no torchvision / timm).

Every model is a plain ``nn.Module`` that ``torch.fx.symbolic_trace`` can trace with
``RNNPool2d`` as a leaf module (see :func:`rnnpool_lite.models.fx_trace`).
"""
from rnnpool_lite.models.blocks import ConvBNAct, DepthwiseSeparable, InvertedResidual, make_divisible
from rnnpool_lite.models.densenet import DenseBlock, DenseNet, Transition, densenet121, densenet121_rnnpool
from rnnpool_lite.models.downsample import DOWNSAMPLERS, ReNet2d, downsampler
from rnnpool_lite.models.efficientnet import EfficientNet, MBConvSE, efficientnet_b0, efficientnet_b0_rnnpool
from rnnpool_lite.models.face import FACE_VARIANTS, DetectionHead, FaceDetector, rnnpool_face
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
from rnnpool_lite.models.resnet import BasicBlock, ResNet, resnet18, resnet18_rnnpool
from rnnpool_lite.models.tracing import fx_trace

__all__ = ["ConvBNAct", "DepthwiseSeparable", "InvertedResidual", "make_divisible", "FACE_VARIANTS",
           "DetectionHead", "FaceDetector", "rnnpool_face", "MobileNetV2", "mobilenetv2",
           "mobilenetv2_rnnpool", "mobilenetv2_rnnpool_table16", "mobilenetv2_rnnpool_vww", "mobilenetv2_vww", "fx_trace", "BasicBlock",
           "ResNet", "resnet18", "resnet18_rnnpool", "DOWNSAMPLERS", "ReNet2d", "downsampler", "DenseBlock",
           "DenseNet", "Transition", "densenet121", "densenet121_rnnpool", "EfficientNet", "MBConvSE",
           "efficientnet_b0", "efficientnet_b0_rnnpool", "GoogLeNet", "Inception", "googlenet",
           "googlenet_rnnpool", "MobileNetV1", "mobilenetv1", "mobilenetv1_rnnpool"]
