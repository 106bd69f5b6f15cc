"""The paper's models by name: typed specs, built with :func:`get_model`, listed by :func:`list_models`.

As torchvision's ``get_model`` / ``list_models``, with one difference: an entry is a *configuration*
the paper reports ("MobileNetV2-RNNPool 1K" is :func:`mobilenetv2_rnnpool` with 1000 classes), not
a builder function, because the paper's tables name configurations. Each :class:`ModelSpec` also
carries what the accounting needs: the input it is measured on, the bytes per value, whether the
frame is kept in RAM, and the cells of the paper's tables that report it.

Every entry is listed in :data:`MODELS` below; :func:`register_model` adds one more (it
fails on a name or a table cell already taken).
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from torch import nn

from rnnpool_lite.models.densenet import densenet121, densenet121_rnnpool
from rnnpool_lite.models.efficientnet import efficientnet_b0, efficientnet_b0_rnnpool
from rnnpool_lite.models.face import rnnpool_face
from rnnpool_lite.models.googlenet import googlenet, googlenet_rnnpool
from rnnpool_lite.models.mobilenetv1 import mobilenetv1, mobilenetv1_rnnpool
from rnnpool_lite.models.mobilenetv2 import (
    mobilenetv2,
    mobilenetv2_rnnpool,
    mobilenetv2_rnnpool_table16,
    mobilenetv2_rnnpool_vww,
    mobilenetv2_vww,
)
from rnnpool_lite.models.resnet import resnet18, resnet18_rnnpool

IMAGE = (3, 224, 224)
VGA = (3, 480, 640)


class Cell(NamedTuple):
    """Where the paper reports a model: table number, row and (where the row holds several models)
    column, as the shipped paper tables (:func:`rnnpool_lite.paper.paper_table`) name them."""

    table: int
    row: str
    column: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One named model: how to build it and how the paper measures it."""

    name: str
    builder: Callable[..., nn.Module]
    #: keyword arguments of ``builder`` for this configuration
    config: Mapping[str, Any] = field(default_factory=dict)
    #: the input it is measured on, (C, H, W)
    input_size: tuple[int, int, int] = IMAGE
    #: 4 for float32 models, 1 for the int8 ones
    bytes_per_value: int = 4
    #: the frame is stored in RAM for the whole pass (Face-M4 on the STM32F439, Section 5.3)
    frame_in_ram: bool = False
    cells: tuple[Cell, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    @property
    def tables(self) -> frozenset[int]:
        """The paper's tables that report this model."""
        return frozenset(cell.table for cell in self.cells)

    def build(self, **overrides: Any) -> nn.Module:
        """The model, with ``overrides`` replacing keyword arguments of the configuration."""
        return self.builder(**{**self.config, **overrides})


def _t1(row: str, column: str) -> tuple[Cell, ...]:
    """A Table 1 model: Table 8 reports its least RAM in the same row and column."""
    return Cell(1, row, column), Cell(8, row, column)


def _t2(method: str, network: str) -> Cell:
    return Cell(2, method, network)


_VWW = "MobileNetV2-0.35x"
_BOTH_RNNPOOL = {"downsampler": "rnnpool", "last_pool": "rnnpool"}

#: Every registered model, one entry per configuration: those of the paper's Tables 1-5, 8 and 16
#: (Table 2's cells that are Table 1 models are listed with them).
MODELS: tuple[ModelSpec, ...] = (
    # Table 1 (ImageNet-10) and Table 8
    ModelSpec("MobileNetV2", mobilenetv2, {"num_classes": 10},
              cells=(*_t1("MobileNetV2", "base"), _t2("Base Network", "MobileNetV2"))),
    ModelSpec("MobileNetV2-RNNPool", mobilenetv2_rnnpool, {"num_classes": 10},
              cells=(*_t1("MobileNetV2", "RNNPool"), _t2("RNNPoolLayer", "MobileNetV2"))),
    ModelSpec("EfficientNet-B0", efficientnet_b0, {"num_classes": 10}, cells=_t1("EfficientNet-B0", "base")),
    ModelSpec("EfficientNet-B0-RNNPool", efficientnet_b0_rnnpool, {"num_classes": 10},
              cells=_t1("EfficientNet-B0", "RNNPool")),
    ModelSpec("ResNet18", resnet18, {"num_classes": 10}, cells=_t1("ResNet18", "base")),
    ModelSpec("ResNet18-RNNPool", resnet18_rnnpool, {"num_classes": 10}, cells=_t1("ResNet18", "RNNPool")),
    ModelSpec("DenseNet121", densenet121, {"num_classes": 10},
              cells=(*_t1("DenseNet121", "base"), _t2("Base Network", "DenseNet121"))),
    ModelSpec("DenseNet121-RNNPool", densenet121_rnnpool, {"num_classes": 10},
              cells=(*_t1("DenseNet121", "RNNPool"), _t2("RNNPoolLayer", "DenseNet121"))),
    ModelSpec("GoogLeNet", googlenet, {"num_classes": 10}, cells=_t1("GoogLeNet", "base")),
    ModelSpec("GoogLeNet-RNNPool", googlenet_rnnpool, {"num_classes": 10}, cells=_t1("GoogLeNet", "RNNPool")),
    # Table 2: downsamplers and last pools, MobileNetV2 at 10 classes
    ModelSpec("MobileNetV2 Last layer RNNPool", mobilenetv2, {"num_classes": 10, "last_pool": "rnnpool"},
              cells=(_t2("Last layer RNNPool", "MobileNetV2"),)),
    ModelSpec("MobileNetV2 Average Pooling", mobilenetv2_rnnpool, {"num_classes": 10, "downsampler": "avg"},
              cells=(_t2("Average Pooling", "MobileNetV2"),)),
    ModelSpec("MobileNetV2 Max Pooling", mobilenetv2_rnnpool, {"num_classes": 10, "downsampler": "max"},
              cells=(_t2("Max Pooling", "MobileNetV2"),)),
    ModelSpec("MobileNetV2 Strided Convolution", mobilenetv2_rnnpool,
              {"num_classes": 10, "downsampler": "strided_conv"}, cells=(_t2("Strided Convolution", "MobileNetV2"),)),
    ModelSpec("MobileNetV2 ReNet", mobilenetv2_rnnpool, {"num_classes": 10, "downsampler": "renet"},
              cells=(_t2("ReNet", "MobileNetV2"),)),
    ModelSpec("MobileNetV2 RNNPoolLayer + Last layer RNNPool", mobilenetv2_rnnpool,
              {"num_classes": 10, **_BOTH_RNNPOOL}, cells=(_t2("RNNPoolLayer + Last layer RNNPool", "MobileNetV2"),)),
    # Table 2, DenseNet121 at 10 classes
    ModelSpec("DenseNet121 Last layer RNNPool", densenet121, {"num_classes": 10, "last_pool": "rnnpool"},
              cells=(_t2("Last layer RNNPool", "DenseNet121"),)),
    ModelSpec("DenseNet121 Average Pooling", densenet121_rnnpool, {"num_classes": 10, "downsampler": "avg"},
              cells=(_t2("Average Pooling", "DenseNet121"),)),
    ModelSpec("DenseNet121 Max Pooling", densenet121_rnnpool, {"num_classes": 10, "downsampler": "max"},
              cells=(_t2("Max Pooling", "DenseNet121"),)),
    ModelSpec("DenseNet121 Strided Convolution", densenet121_rnnpool,
              {"num_classes": 10, "downsampler": "strided_conv"}, cells=(_t2("Strided Convolution", "DenseNet121"),)),
    ModelSpec("DenseNet121 ReNet", densenet121_rnnpool, {"num_classes": 10, "downsampler": "renet"},
              cells=(_t2("ReNet", "DenseNet121"),)),
    ModelSpec("DenseNet121 RNNPoolLayer + Last layer RNNPool", densenet121_rnnpool,
              {"num_classes": 10, **_BOTH_RNNPOOL}, cells=(_t2("RNNPoolLayer + Last layer RNNPool", "DenseNet121"),)),
    # Table 2, the Visual Wake Words models (MobileNetV2-0.35x, 2 classes; Figure 3's two models)
    ModelSpec("MobileNetV2-0.35x Base Network", mobilenetv2_vww, cells=(_t2("Base Network", _VWW),)),
    ModelSpec("MobileNetV2-0.35x Last layer RNNPool", mobilenetv2_vww, {"last_pool": "rnnpool"},
              cells=(_t2("Last layer RNNPool", _VWW),)),
    ModelSpec("MobileNetV2-0.35x Average Pooling", mobilenetv2_rnnpool_vww, {"downsampler": "avg"},
              cells=(_t2("Average Pooling", _VWW),)),
    ModelSpec("MobileNetV2-0.35x Max Pooling", mobilenetv2_rnnpool_vww, {"downsampler": "max"},
              cells=(_t2("Max Pooling", _VWW),)),
    ModelSpec("MobileNetV2-0.35x Strided Convolution", mobilenetv2_rnnpool_vww, {"downsampler": "strided_conv"},
              cells=(_t2("Strided Convolution", _VWW),)),
    ModelSpec("MobileNetV2-0.35x ReNet", mobilenetv2_rnnpool_vww, {"downsampler": "renet"},
              cells=(_t2("ReNet", _VWW),)),
    ModelSpec("MobileNetV2-0.35x RNNPoolLayer", mobilenetv2_rnnpool_vww, cells=(_t2("RNNPoolLayer", _VWW),)),
    ModelSpec("MobileNetV2-0.35x RNNPoolLayer + Last layer RNNPool", mobilenetv2_rnnpool_vww, _BOTH_RNNPOOL,
              cells=(_t2("RNNPoolLayer + Last layer RNNPool", _VWW),)),
    # Table 3 (ImageNet-1K)
    ModelSpec("MobileNetV1 1K", mobilenetv1, {"num_classes": 1000}, cells=(Cell(3, "MobileNetV1"),)),
    ModelSpec("MobileNetV1-ReNet 1K", mobilenetv1_rnnpool, {"num_classes": 1000, "downsampler": "renet"},
              cells=(Cell(3, "MobileNetV1-ReNet"),)),
    ModelSpec("MobileNetV1-RNNPool 1K", mobilenetv1_rnnpool, {"num_classes": 1000},
              cells=(Cell(3, "MobileNetV1-RNNPool"),)),
    ModelSpec("MobileNetV2 1K", mobilenetv2, {"num_classes": 1000}, cells=(Cell(3, "MobileNetV2"),)),
    ModelSpec("MobileNetV2-ReNet 1K", mobilenetv2_rnnpool, {"num_classes": 1000, "downsampler": "renet"},
              cells=(Cell(3, "MobileNetV2-ReNet"),)),
    ModelSpec("MobileNetV2-RNNPool 1K", mobilenetv2_rnnpool, {"num_classes": 1000},
              cells=(Cell(3, "MobileNetV2-RNNPool"),)),
    # Tables 4 and 5: the detectors at VGA; Face-Quant and Face-M4 are int8, Face-M4 keeps its frame in RAM
    ModelSpec("RNNPool-Face-C", rnnpool_face, {"variant": "C"}, input_size=VGA, cells=(Cell(4, "RNNPool-Face-C"),)),
    ModelSpec("RNNPool-Face-B", rnnpool_face, {"variant": "B"}, input_size=VGA, cells=(Cell(4, "RNNPool-Face-B"),)),
    ModelSpec("RNNPool-Face-A", rnnpool_face, {"variant": "A"}, input_size=VGA, cells=(Cell(4, "RNNPool-Face-A"),)),
    ModelSpec("RNNPool-Face-Quant", rnnpool_face, {"variant": "Quant"}, input_size=VGA, bytes_per_value=1,
              cells=(Cell(4, "RNNPool-Face-Quant"),)),
    ModelSpec("RNNPool-Face-M4", rnnpool_face, {"variant": "M4"}, input_size=(1, 240, 320), bytes_per_value=1,
              frame_in_ram=True, cells=(Cell(5, "RNNPool-Face-M4"),)),
    # Table 16: the MobileNetV2-RNNPool ablation rows (ImageNet-10; row a is the reported setting)
    ModelSpec("MobileNetV2-RNNPool Table 16 a", mobilenetv2_rnnpool_table16, {"row": "a"}, cells=(Cell(16, "a"),)),
    ModelSpec("MobileNetV2-RNNPool Table 16 b", mobilenetv2_rnnpool_table16, {"row": "b"}, cells=(Cell(16, "b"),)),
    ModelSpec("MobileNetV2-RNNPool Table 16 c", mobilenetv2_rnnpool_table16, {"row": "c"}, cells=(Cell(16, "c"),)),
    ModelSpec("MobileNetV2-RNNPool Table 16 d", mobilenetv2_rnnpool_table16, {"row": "d"}, cells=(Cell(16, "d"),)),
    ModelSpec("MobileNetV2-RNNPool Table 16 e", mobilenetv2_rnnpool_table16, {"row": "e"}, cells=(Cell(16, "e"),)),
    ModelSpec("MobileNetV2-RNNPool Table 16 f", mobilenetv2_rnnpool_table16, {"row": "f"}, cells=(Cell(16, "f"),)),
    ModelSpec("MobileNetV2-RNNPool Table 16 g", mobilenetv2_rnnpool_table16, {"row": "g"}, cells=(Cell(16, "g"),)),
)

_REGISTRY: dict[str, ModelSpec] = {}
_CELLS: dict[Cell, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` under its name; a name or a table cell already registered is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a model named {spec.name!r} is already registered")
    taken = [cell for cell in spec.cells if cell in _CELLS]
    if taken:
        raise ValueError(f"{spec.name!r}: cells {taken} already hold {[_CELLS[c].name for c in taken]}")
    _REGISTRY[spec.name] = spec
    _CELLS.update(dict.fromkeys(spec.cells, spec))
    return spec


for _spec in MODELS:
    register_model(_spec)


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; an unknown name fails naming the closest ones."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"choose one of {', '.join(_REGISTRY)}"
        raise ValueError(f"unknown model {name!r}; {hint}")
    return _REGISTRY[name]


def get_model(name: str, **config: Any) -> nn.Module:
    """Build the model registered as ``name``; ``config`` overrides keyword arguments of its builder."""
    return get_model_spec(name).build(**config)


def list_models(table: int | None = None) -> list[str]:
    """Registered names in registration order; with ``table``, only the models that table reports."""
    return [name for name, spec in _REGISTRY.items() if table is None or table in spec.tables]


def paper_model(table: int, row: str, column: str = "") -> ModelSpec:
    """The model the paper reports in one cell of a table (see :class:`Cell`)."""
    cell = Cell(table, row, column)
    if cell not in _CELLS:
        known = [c for c in _CELLS if c.table == table]
        raise ValueError(f"no registered model for {cell}; table {table} has {known}")
    return _CELLS[cell]


__all__ = ["IMAGE", "MODELS", "VGA", "Cell", "ModelSpec", "get_model", "get_model_spec", "list_models",
           "paper_model", "register_model"]
