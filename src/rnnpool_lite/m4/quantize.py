"""Post-training int8 quantization: float ``nn.Module`` -> :class:`QuantizedModel`.

Steps: trace the model with ``torch.fx`` (``RNNPool2d`` and ``DetectionHead`` stay leaves),
calibrate every tensor's range on a sample (:mod:`.calibrate`), then walk the graph once and
emit integer ops: ``Conv2d -> BatchNorm2d -> ReLU/ReLU6`` becomes one :class:`ConvOp` (BN folded
into the weights and bias, the activation a clamp), ``+`` a rescaled add, and so on. Anything
else raises :class:`UnsupportedError` naming the node and the module or function.
"""
from __future__ import annotations

import copy
import operator
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from rnnpool_lite.m4.calibrate import calibrate
from rnnpool_lite.m4.fixed_point import QParams, quantize_bias, quantize_multiplier, quantize_weights
from rnnpool_lite.m4.kernels import ADD_LEFT_SHIFT
from rnnpool_lite.m4.model import QuantizedModel
from rnnpool_lite.m4.ops import AddOp, AvgPoolOp, ClampOp, ConcatOp, ConvOp, FlattenOp, HeadOp, LinearOp, Op, RNNPoolOp
from rnnpool_lite.m4.rnnpool_int import IntRNNPool, check_rnnpool
from rnnpool_lite.models.blocks import InvertedResidual
from rnnpool_lite.models.face import DetectionHead
from rnnpool_lite.models.tracing import RNNPoolLeafTracer
from rnnpool_lite.op.cells import FastGRNNCell, quant_sigmoid, quant_tanh
from rnnpool_lite.op.layer import RNNPool2d

SUPPORTED = ("Conv2d (+ BatchNorm2d, ReLU, ReLU6)", "ReLU", "ReLU6", "Linear", "AdaptiveAvgPool2d(1)",
             "Flatten", "Dropout", "Identity", "RNNPool2d (FastGRNN, piecewise-linear)", "DetectionHead",
             "+ (residual add)", "torch.cat")


class UnsupportedError(TypeError):
    """A module, function or method the int8 emulator has no kernel for."""


class _Tracer(RNNPoolLeafTracer):
    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return isinstance(m, DetectionHead) or super().is_leaf_module(m, qualified_name)


def _convert_activations(model: nn.Module, allowed: bool) -> None:
    """Check RNNPool cells; with ``allowed``, swap sigmoid/tanh for quantSigmoid/quantTanh."""
    for name, m in model.named_modules():
        if not isinstance(m, RNNPool2d):
            continue
        for cell in (m.rnn1, m.rnn2):
            if isinstance(cell, FastGRNNCell) and not cell.piecewise_linear and allowed:
                cell.piecewise_linear = True
                cell._sigmoid, cell._tanh = quant_sigmoid, quant_tanh
        check_rnnpool(m, name)


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    w = conv.weight.detach().double().numpy()
    b = np.zeros(w.shape[0]) if conv.bias is None else conv.bias.detach().double().numpy()
    if bn is None:
        return w, b
    gamma = bn.weight.detach().double().numpy() if bn.affine else np.ones(w.shape[0])
    beta = bn.bias.detach().double().numpy() if bn.affine else np.zeros(w.shape[0])
    scale = gamma / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
    return w * scale[:, None, None, None], (b - bn.running_mean.detach().double().numpy()) * scale + beta


def _conv_op(name: str, module: str, conv: nn.Conv2d, w: np.ndarray, b: np.ndarray, qin: QParams,
             qout: QParams, act: tuple[float | None, float | None], inputs: list[str], outputs: list[str]) -> ConvOp:
    if conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise UnsupportedError(f"Conv2d {module!r}: only dilation 1 and numeric zero padding are supported")
    wq, sw = quantize_weights(w)
    mult, shift = quantize_multiplier(qin.scale * sw / qout.scale)
    lo, hi = qout.clamp(*act)
    ph, pw = conv.padding
    return ConvOp(name, inputs, outputs, module, w=wq, bias=quantize_bias(b, qin.scale * sw), mult=mult,
                  shift=shift, stride=tuple(conv.stride), padding=(ph, ph, pw, pw), groups=conv.groups,
                  in_zp=qin.zero_point, out_zp=qout.zero_point, act_min=lo, act_max=hi)


_ACT = {nn.ReLU: (0.0, None), nn.ReLU6: (0.0, 6.0)}


class _Converter:
    def __init__(self, gm: fx.GraphModule, qp: dict[str, QParams]) -> None:
        self.gm, self.qp = gm, qp
        self.modules = dict(gm.named_modules())
        self.alias: dict[str, Any] = {}  # node name -> tensor name (or tuple of them)
        self.q: dict[str, QParams] = {}
        self.ops: list[Op] = []
        self.skip: set[str] = set()

    def tensor(self, node: Any) -> str:
        if not isinstance(node, fx.Node):
            raise UnsupportedError(f"constant argument {node!r} is not supported")
        name = self.alias[node.name]
        if not isinstance(name, str):
            raise UnsupportedError(f"node {node.name!r} is a tuple; only detection heads' outputs may be indexed")
        return name

    def _sole_user(self, node: fx.Node, kinds: tuple[type, ...]) -> fx.Node | None:
        users = list(node.users)
        if len(users) == 1 and users[0].op == "call_module" and isinstance(self.modules[users[0].target], kinds):
            return users[0]
        return None

    def convert(self) -> QuantizedModel:
        input_name, spec = None, None
        for node in self.gm.graph.nodes:
            if node.name in self.skip:
                continue
            if node.op == "placeholder":
                if input_name is not None:
                    raise UnsupportedError("models with more than one input are not supported")
                input_name = node.name
                self.alias[node.name], self.q[node.name] = node.name, self.qp[node.name]
            elif node.op == "call_module":
                self.call_module(node)
            elif node.op == "call_function":
                self.call_function(node)
            elif node.op == "output":
                spec = self.output_spec(node.args[0])
            else:
                raise UnsupportedError(f"node {node.name!r}: {node.op} {node.target!r} is not supported "
                                       f"(supported: {', '.join(SUPPORTED)})")
        return QuantizedModel(self.ops, input_name, self.q, spec)

    def output_spec(self, arg: Any) -> Any:
        if isinstance(arg, (tuple, list)):
            return tuple(self.output_spec(a) for a in arg)
        return self.tensor(arg)

    def emit(self, op: Op, node_names: list[str], q: list[QParams]) -> None:
        self.ops.append(op)
        for t, qp in zip(op.outputs, q):
            self.q[t] = qp
        for n in node_names:
            self.alias[n] = op.outputs[0] if len(op.outputs) == 1 else tuple(op.outputs)

    def call_module(self, node: fx.Node) -> None:
        m = self.modules[node.target]
        qin = self.q.get(self.tensor(node.args[0])) if node.args else None
        inp = [self.tensor(node.args[0])]
        if isinstance(m, nn.Conv2d):
            chain, bn, act = [node], None, (None, None)
            nxt = self._sole_user(node, (nn.BatchNorm2d,))
            if nxt is not None:
                bn = self.modules[nxt.target]
                chain.append(nxt)
            nxt = self._sole_user(chain[-1], (nn.ReLU, nn.ReLU6))
            if nxt is not None:
                act = _ACT[type(self.modules[nxt.target])]
                chain.append(nxt)
            self.skip.update(n.name for n in chain[1:])
            last = chain[-1].name
            w, b = _fold_bn(m, bn)
            op = _conv_op(last, node.target, m, w, b, qin, self.qp[last], act, inp, [last])
            self.emit(op, [n.name for n in chain], [self.qp[last]])
        elif isinstance(m, nn.BatchNorm2d):
            raise UnsupportedError(f"BatchNorm2d {node.target!r} does not directly follow a Conv2d with no other "
                                   "users, so it cannot be folded")
        elif type(m) in _ACT:
            lo, hi = qin.clamp(*_ACT[type(m)])
            self.emit(ClampOp(node.name, inp, [node.name], node.target, lo=lo, hi=hi), [node.name], [qin])
        elif isinstance(m, nn.Linear):
            wq, sw = quantize_weights(m.weight.detach().double().numpy())
            b = np.zeros(m.out_features) if m.bias is None else m.bias.detach().double().numpy()
            qout = self.qp[node.name]
            mult, shift = quantize_multiplier(qin.scale * sw / qout.scale)
            op = LinearOp(node.name, inp, [node.name], node.target, w=wq, bias=quantize_bias(b, qin.scale * sw),
                          mult=mult, shift=shift, in_zp=qin.zero_point, out_zp=qout.zero_point)
            self.emit(op, [node.name], [qout])
        elif isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
            self.emit(AvgPoolOp(node.name, inp, [node.name], node.target, zp=qin.zero_point), [node.name], [qin])
        elif isinstance(m, nn.Flatten) and m.end_dim == -1:
            self.emit(FlattenOp(node.name, inp, [node.name], node.target, start_dim=m.start_dim), [node.name], [qin])
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            self.alias[node.name] = inp[0]
        elif isinstance(m, RNNPool2d):
            qout = self.qp[node.name]
            pool = IntRNNPool.from_float(m, qin, qout, node.target)
            self.emit(RNNPoolOp(node.name, inp, [node.name], node.target, pool=pool), [node.name], [qout])
        elif isinstance(m, DetectionHead):
            self.head(node, m, qin, inp)
        else:
            raise UnsupportedError(f"module {node.target!r} ({type(m).__name__}) has no int8 kernel "
                                   f"(supported: {', '.join(SUPPORTED)})")

    def head(self, node: fx.Node, m: DetectionHead, qin: QParams, inp: list[str]) -> None:
        geometry = lambda c: (c.kernel_size, c.stride, c.padding)  # noqa: E731
        if geometry(m.loc) != geometry(m.conf):
            raise UnsupportedError(f"DetectionHead {node.target!r}: loc and conf convs must share kernel, stride "
                                   "and padding (they are tiled together)")
        outs, qs, convs = [f"{node.name}.loc", f"{node.name}.conf"], [], []
        for conv, out in zip((m.loc, m.conf), outs):
            w, b = _fold_bn(conv, None)
            qs.append(self.qp[out])
            convs.append(_conv_op(out, f"{node.target}.{out.split('.')[-1]}", conv, w, b, qin, self.qp[out],
                                  (None, None), inp, [out]))
        op = HeadOp(node.name, inp, outs, node.target, loc=convs[0], conf=convs[1], maxout=m.maxout_background)
        self.emit(op, [node.name], qs)

    def call_function(self, node: fx.Node) -> None:
        fn = node.target
        if fn is operator.getitem:
            source = self.alias.get(node.args[0].name) if isinstance(node.args[0], fx.Node) else None
            if not isinstance(source, tuple):
                raise UnsupportedError(f"node {node.name!r}: indexing is supported on detection-head outputs only")
            self.alias[node.name] = source[node.args[1]]
        elif fn in (operator.add, torch.add, operator.iadd) and len(node.args) == 2 and not node.kwargs:
            a, b = (self.tensor(x) for x in node.args)
            qa, qb, qout = self.q[a], self.q[b], self.qp[node.name]
            twice = 2 * max(qa.scale, qb.scale)
            ma, sa = quantize_multiplier(qa.scale / twice)
            mb, sb = quantize_multiplier(qb.scale / twice)
            mo, so = quantize_multiplier(twice / ((1 << ADD_LEFT_SHIFT) * qout.scale))
            params = dict(a_zp=qa.zero_point, b_zp=qb.zero_point, a_mult=int(ma), a_shift=int(sa), b_mult=int(mb),
                          b_shift=int(sb), out_mult=int(mo), out_shift=int(so), out_zp=qout.zero_point)
            self.emit(AddOp(node.name, [a, b], [node.name], params=params), [node.name], [qout])
        elif fn is torch.cat:
            xs = [self.tensor(x) for x in node.args[0]]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            qout = self.qp[node.name]
            requant = []
            for x in xs:
                mult, shift = quantize_multiplier(self.q[x].scale / qout.scale)
                requant.append(dict(in_zp=self.q[x].zero_point, mult=int(mult), shift=int(shift),
                                    out_zp=qout.zero_point))
            self.emit(ConcatOp(node.name, xs, [node.name], dim=dim, requant=requant), [node.name], [qout])
        else:
            name = getattr(fn, "__name__", repr(fn))
            raise UnsupportedError(f"node {node.name!r}: function {name!r} has no int8 kernel "
                                   f"(supported: {', '.join(SUPPORTED)})")


def quantize(model: nn.Module, calibration: Any, method: str = "minmax", *, percentile: float = 99.99,
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
    _convert_activations(model, convert_activations)
    gm = fx.GraphModule(model, _Tracer().trace(model), type(model).__name__)
    qparams = calibrate(gm, calibration, method, percentile)
    qmodel = _Converter(gm, qparams).convert()
    qmodel.blocks = [name for name, m in model.named_modules() if isinstance(m, InvertedResidual)]
    qmodel.float_model = gm
    return qmodel


__all__ = ["SUPPORTED", "UnsupportedError", "quantize"]
