"""Post-training int8 quantization: float ``nn.Module`` -> :class:`QuantizedModel`.

Steps: trace the model with ``torch.fx`` (the modules the converter table marks as leaves, e.g.
``RNNPool2d`` and a detection head, stay one node), calibrate every tensor's range on a sample
(:mod:`.calibrate`), then walk the graph once and hand each node to the converter that
:data:`MODULE_CONVERTERS` (by module type, the most derived class first) or
:data:`FUNCTION_CONVERTERS` names: ``Conv2d -> BatchNorm2d -> ReLU/ReLU6`` becomes one
:class:`~.ops.conv.ConvOp` (BN folded into the weights and bias, the activation a clamp), ``+`` a
rescaled add, and so on. Anything else raises :class:`UnsupportedError` naming the node and the
module or function. Model blocks are recognised by the roles of :mod:`rnnpool_lite.roles`, so
this module does not import the model zoo.
"""
from __future__ import annotations

import copy
import operator
from typing import Any

from torch import Tensor, fx, nn

from rnnpool_lite.m4.calibrate import Method, calibrate
from rnnpool_lite.m4.conversion import Conversion, FunctionConverter, ModuleConverter, UnsupportedError
from rnnpool_lite.m4.model import QuantizedModel
from rnnpool_lite.m4.ops.add import ADD_FUNCTIONS, convert_add
from rnnpool_lite.m4.ops.avgpool import convert_avgpool
from rnnpool_lite.m4.ops.clamp import convert_activation
from rnnpool_lite.m4.ops.concat import CAT_FUNCTIONS, convert_cat
from rnnpool_lite.m4.ops.conv import convert_conv
from rnnpool_lite.m4.ops.flatten import convert_flatten
from rnnpool_lite.m4.ops.head import convert_head, head_maps
from rnnpool_lite.m4.ops.linear import convert_linear
from rnnpool_lite.m4.ops.rnnpool import convert_rnnpool, prepare_rnnpools
from rnnpool_lite.op.layer import RNNPool2d
from rnnpool_lite.roles import DetectionHeadRole, InvertedResidualRole


def _identity(c: Conversion, node: fx.Node, m: nn.Module) -> None:
    c.alias[node.name] = c.tensor(node.args[0])


def _unfused_batchnorm(c: Conversion, node: fx.Node, m: nn.Module) -> None:
    raise UnsupportedError(f"BatchNorm2d {node.target!r} does not directly follow a Conv2d with no other "
                           "users, so it cannot be folded")


def _getitem(c: Conversion, node: fx.Node) -> None:
    """``loc, conf = head(x)``: indexing a tuple of tensors names one of them."""
    source = c.alias.get(node.args[0].name) if isinstance(node.args[0], fx.Node) else None
    index = node.args[1]
    if not isinstance(source, tuple) or not isinstance(index, int):
        raise UnsupportedError(f"node {node.name!r}: indexing is supported on detection-head outputs only")
    c.alias[node.name] = source[index]


MODULE_CONVERTERS: dict[type, ModuleConverter] = {
    nn.Conv2d: ModuleConverter(convert_conv, "Conv2d (+ BatchNorm2d, ReLU, ReLU6)"),
    nn.BatchNorm2d: ModuleConverter(_unfused_batchnorm),
    nn.ReLU: ModuleConverter(convert_activation, "ReLU"),
    nn.ReLU6: ModuleConverter(convert_activation, "ReLU6"),
    nn.Linear: ModuleConverter(convert_linear, "Linear"),
    nn.AdaptiveAvgPool2d: ModuleConverter(convert_avgpool, "AdaptiveAvgPool2d(1)"),
    nn.Flatten: ModuleConverter(convert_flatten, "Flatten"),
    nn.Dropout: ModuleConverter(_identity, "Dropout"),
    nn.Identity: ModuleConverter(_identity, "Identity"),
    RNNPool2d: ModuleConverter(convert_rnnpool, "RNNPool2d (FastGRNN, piecewise-linear)", leaf=True),
    DetectionHeadRole: ModuleConverter(convert_head, "DetectionHead", leaf=True, inner=head_maps),
}
FUNCTION_CONVERTERS: dict[Any, FunctionConverter] = {
    **{fn: FunctionConverter(convert_add, "+ (residual add)") for fn in ADD_FUNCTIONS},
    operator.getitem: FunctionConverter(_getitem),
    **{fn: FunctionConverter(convert_cat, "torch.cat") for fn in CAT_FUNCTIONS},
}
_ENTRIES: list[ModuleConverter | FunctionConverter] = [*MODULE_CONVERTERS.values(), *FUNCTION_CONVERTERS.values()]
SUPPORTED = tuple(dict.fromkeys(c.supports for c in _ENTRIES if c.supports))


def module_converter(m: nn.Module) -> ModuleConverter | None:
    """The table's entry for the most derived class of ``m`` it lists."""
    return next((MODULE_CONVERTERS[t] for t in type(m).__mro__ if t in MODULE_CONVERTERS), None)


def _unsupported(what: str) -> UnsupportedError:
    return UnsupportedError(f"{what} has no int8 kernel (supported: {', '.join(SUPPORTED)})")


class _Tracer(fx.Tracer):
    """Keeps the table's leaf modules as one node; names a module that ``torch.fx`` cannot trace."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        entry = module_converter(m)
        return (entry is not None and entry.leaf) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except fx.proxy.TraceError as e:  # data-dependent control flow (a recurrent layer, ...)
            raise _unsupported(f"module {self.path_of_module(m)!r} ({type(m).__name__}) cannot be traced by "
                               f"torch.fx ({e}) and") from e


def _inner_tensors(m: nn.Module, x: Tensor) -> dict[str, Tensor]:
    entry = module_converter(m)
    return entry.inner(m, x) if entry is not None and entry.inner is not None else {}


def convert(gm: fx.GraphModule, qparams: dict[str, Any]) -> QuantizedModel:
    """Walk the graph once, each node through its converter."""
    c = Conversion(gm, qparams)
    input_name, spec = None, None
    for node in gm.graph.nodes:
        if node.name in c.skip:
            continue
        if node.op == "placeholder":
            if input_name is not None:
                raise UnsupportedError("models with more than one input are not supported")
            input_name = node.name
            c.alias[node.name], c.q[node.name] = node.name, qparams[node.name]
        elif node.op == "call_module":
            m = c.module(node)
            entry = module_converter(m)
            if entry is None:
                raise _unsupported(f"module {node.target!r} ({type(m).__name__})")
            entry.convert(c, node, m)
        elif node.op == "call_function":
            fentry = FUNCTION_CONVERTERS.get(node.target)
            if fentry is None:
                raise _unsupported(f"node {node.name!r}: function {getattr(node.target, '__name__', node.target)!r}")
            fentry.convert(c, node)
        elif node.op == "output":
            spec = _output_spec(c, node.args[0])
        else:
            raise _unsupported(f"node {node.name!r}: {node.op} {node.target!r}")
    if input_name is None:
        raise UnsupportedError("the model has no input")
    return QuantizedModel(c.ops, input_name, c.q, spec)


def _output_spec(c: Conversion, arg: Any) -> Any:
    if isinstance(arg, (tuple, list)):
        return tuple(_output_spec(c, a) for a in arg)
    return c.tensor(arg)


def quantize(model: nn.Module, calibration: Any, method: Method = "minmax", *, percentile: float = 99.99,
             convert_activations: bool = False) -> QuantizedModel:
    """Post-training int8 quantization of ``model`` calibrated on ``calibration``.

    ``calibration``: a float batch ``(N, C, H, W)`` or an iterable of batches / ``(x, y)`` pairs.
    ``method``: ``"minmax"`` or ``"percentile"`` (``percentile`` sets p). RNNPool layers must use
    FastGRNN with the piecewise-linear activations; ``convert_activations=True`` swaps
    sigmoid/tanh for quantSigmoid/quantTanh instead of refusing (an approximation: the
    int8 model then follows the piecewise-linear network, not the smooth one it came from).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    model = copy.deepcopy(model).cpu().float().eval()
    prepare_rnnpools(model, convert_activations)
    gm = fx.GraphModule(model, _Tracer().trace(model), type(model).__name__)
    qparams = calibrate(gm, calibration, method, percentile, _inner_tensors)
    qmodel = convert(gm, qparams)
    qmodel.blocks = [name for name, m in model.named_modules() if isinstance(m, InvertedResidualRole)]
    qmodel.float_model = gm
    return qmodel


__all__ = ["FUNCTION_CONVERTERS", "MODULE_CONVERTERS", "SUPPORTED", "convert",
           "module_converter", "quantize"]
