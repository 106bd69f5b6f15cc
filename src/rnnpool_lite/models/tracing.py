"""``torch.fx`` tracing with ``RNNPool2d`` kept as one leaf module (its Python loop over time
steps is an implementation detail; the int8 emulator replaces the whole layer)."""
from __future__ import annotations

from torch import fx, nn

from rnnpool_lite.models.downsample import ReNet2d
from rnnpool_lite.op.layer import RNNPool2d


class RNNPoolLeafTracer(fx.Tracer):
    """An fx tracer that does not trace into ``RNNPool2d`` or ``ReNet2d`` (recurrent layers)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (RNNPool2d, ReNet2d)) or super().is_leaf_module(m, module_qualified_name)


def fx_trace(model: nn.Module) -> fx.GraphModule:
    """``symbolic_trace`` with ``RNNPool2d`` as a leaf: a ``GraphModule`` equal to ``model``."""
    graph = RNNPoolLeafTracer().trace(model)
    return fx.GraphModule(model, graph, model.__class__.__name__)
