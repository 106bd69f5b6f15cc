"""The state of one PyTorch -> int8 conversion, shared by the converters of every op.

:func:`rnnpool_lite.m4.quantize` walks the ``torch.fx`` graph once and hands each node to the
converter its table names for the node's module type or function (the converters live with
their op in :mod:`rnnpool_lite.m4.ops`). A converter reads its inputs' tensor names and
quantization from the :class:`Conversion` and emits ops into it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, fx, nn

from rnnpool_lite.m4.fixed_point import QParams

if TYPE_CHECKING:  # the ops import this module for their converters
    from rnnpool_lite.m4.ops.base import Op


class UnsupportedError(TypeError):
    """A module, function or method the int8 emulator (or its C export) has no kernel for."""


class Conversion:
    """Tensor names and quantization of the nodes converted so far, and the ops emitted."""

    def __init__(self, gm: fx.GraphModule, qp: dict[str, QParams]) -> None:
        self.gm, self.qp = gm, qp
        self.modules = dict(gm.named_modules())
        self.alias: dict[str, Any] = {}  # node name -> tensor name (or tuple of them)
        self.q: dict[str, QParams] = {}
        self.ops: list[Op] = []
        self.skip: set[str] = set()  # nodes already converted as part of another (a fused BN / ReLU)

    def tensor(self, node: Any) -> str:
        """The int8 tensor a node argument stands for."""
        if not isinstance(node, fx.Node):
            raise UnsupportedError(f"constant argument {node!r} is not supported")
        name = self.alias[node.name]
        if not isinstance(name, str):
            raise UnsupportedError(f"node {node.name!r} is a tuple; only detection heads' outputs may be indexed")
        return name

    def input_of(self, node: fx.Node) -> tuple[str, QParams]:
        """The first argument's tensor and its quantization."""
        name = self.tensor(node.args[0])
        return name, self.q[name]

    def module(self, node: fx.Node) -> nn.Module:
        return self.modules[str(node.target)]

    def sole_user(self, node: fx.Node, kinds: tuple[type, ...]) -> fx.Node | None:
        """The node's only user, if it calls a module of one of ``kinds`` (a fusion candidate)."""
        users = list(node.users)
        if len(users) == 1 and users[0].op == "call_module" and isinstance(self.module(users[0]), kinds):
            return users[0]
        return None

    def emit(self, op: Op, node_names: list[str], q: list[QParams]) -> None:
        """Append ``op``; its outputs get quantization ``q``; ``node_names`` now stand for them."""
        self.ops.append(op)
        for t, qp in zip(op.outputs, q):
            self.q[t] = qp
        for n in node_names:
            self.alias[n] = op.outputs[0] if len(op.outputs) == 1 else tuple(op.outputs)


@dataclass(frozen=True)
class ModuleConverter:
    """How one module type becomes int8 ops.

    ``convert(conversion, node, module)`` emits the ops. ``leaf``: ``torch.fx`` keeps the module
    as one node instead of tracing its ``forward``. ``inner(module, x)``: tensors computed inside
    a leaf that need their own calibrated range, by name suffix (a head's two convolutions).
    ``supports``: how :data:`rnnpool_lite.m4.quantize.SUPPORTED` lists it (empty: not listed).
    """

    convert: Callable[[Conversion, fx.Node, Any], None]
    supports: str = ""
    leaf: bool = False
    inner: Callable[[Any, Tensor], dict[str, Tensor]] | None = None


@dataclass(frozen=True)
class FunctionConverter:
    """How one function (``operator.add``, ``torch.cat``) becomes int8 ops."""

    convert: Callable[[Conversion, fx.Node], None]
    supports: str = ""


__all__ = ["Conversion", "FunctionConverter", "ModuleConverter", "UnsupportedError"]
