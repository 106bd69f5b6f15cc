"""The paper's models, written as its architecture tables (no torchvision / timm).

Every model is a plain ``nn.Module`` that ``torch.fx.symbolic_trace`` can trace with
``RNNPool2d`` as a leaf module (see :func:`rnnpool_lite.models.fx_trace`).
"""
from .blocks import ConvBNAct, DepthwiseSeparable, InvertedResidual, make_divisible
from .face import FACE_VARIANTS, DetectionHead, FaceDetector, rnnpool_face
from .mobilenetv2 import (MobileNetV2, mobilenetv2, mobilenetv2_rnnpool, mobilenetv2_rnnpool_vww,
                          mobilenetv2_vww)
from .resnet import BasicBlock, ResNet, resnet18, resnet18_rnnpool
from .tracing import fx_trace

__all__ = ["ConvBNAct", "DepthwiseSeparable", "InvertedResidual", "make_divisible", "FACE_VARIANTS",
           "DetectionHead", "FaceDetector", "rnnpool_face", "MobileNetV2", "mobilenetv2",
           "mobilenetv2_rnnpool", "mobilenetv2_rnnpool_vww", "mobilenetv2_vww", "fx_trace", "BasicBlock",
           "ResNet", "resnet18", "resnet18_rnnpool"]
