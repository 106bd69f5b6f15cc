"""Least RAM without recomputation: Propositions 1 and 2 and the row-by-row schedule (Claim 4).

Appendix D/E.1 of the paper. A node of an intermediate map that an output row depends on must
stay live until every output row that needs it is computed. With ``S_q`` the product of the
strides between layer ``q`` and the output and ``2 k_q + 1`` the receptive field of an output
node on layer ``q``, consecutive output rows share ``k'_q = 2 k_q + 1 - S_q`` rows of layer
``q``, which is what must be kept (Proposition 2; Proposition 1 is the stride-1 case,
``k'_q = 2 k_q``). Claim 3/4: computing the output row by row meets that bound, and with the
block's input and output in memory needs

    max{m_in n_in c_in + k''_0 n_out c_out, m_out n_out c_out + k''_0 n_in c_in}
        + sum_q c_q (2 k_q + 1 - S_q) min(S_q m - 1, S_q n - 1)

where ``k''_0`` is the number of input rows two consecutive output rows share and ``n`` is the
shorter side (the schedule runs along the longer one). The formula is used as the paper writes it;
its first term (the whole input plus ``k''_0`` output rows) matters only for blocks with a large
input such as the stem of GoogLeNet (1.27 MB by this formula, where the paper evaluates the
second term only and finds less than inception 3b's 1.01 MB).

:func:`row_schedule_ram` evaluates that for a real block (any DAG of convs, pools, concatenations
and additions) from its ``torch.fx`` graph, so Table 8 is computed from the models.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from rnnpool_lite.accounting.windows import IDENTITY, Span, layer_spans
from rnnpool_lite.models.tracing import RNNPoolLeafTracer


def proposition1_lower_bound(channels: Sequence[int], kernel_sizes: Sequence[int],
                             output_size: tuple[int, int], bytes_per_value: int = 4) -> int:
    """Proposition 1: least RAM (bytes) for the intermediate maps of a stride-1 conv stack.

    ``channels[q]`` and ``kernel_sizes[q]`` describe intermediate layer ``q`` (the output of the
    ``q``-th conv, the last one being the network output, which is not counted) and ``output_size``
    is the ``m x n`` output. An output node sees a ``(2 k_q + 1)^2`` window of layer ``q``, where
    ``k_q`` sums the kernel radii of the layers after ``q``; any serial order without
    recomputation keeps at least ``2 * sum_q c_q k_q * min(m - 1, n - 1)`` values live.
    """
    if len(channels) != len(kernel_sizes) or not channels:
        raise ValueError("channels and kernel_sizes must be non-empty and of equal length")
    if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
        raise ValueError(f"kernel sizes must be odd and positive, got {list(kernel_sizes)}")
    m, n = output_size
    radii = [(k - 1) // 2 for k in kernel_sizes]
    total = 0
    for q in range(len(channels) - 1):  # intermediate layers only
        k_q = sum(radii[q + 1:])
        total += channels[q] * k_q
    return 2 * total * min(m - 1, n - 1) * bytes_per_value


def proposition2_lower_bound(layers: Sequence[tuple[int, int, int]], output_size: tuple[int, int],
                             bytes_per_value: int = 4) -> int:
    """Proposition 2: least RAM (bytes) for the intermediate maps of a conv stack with strides.

    ``layers`` holds one ``(c_q, 2 k_q + 1, S_q)`` per intermediate layer: its channels, the
    receptive field of an output node on it, and the product of the strides from it to the
    ``m x n`` output. The bound is ``sum_q c_q (2 k_q + 1 - S_q) min(S_q m - 1, S_q n - 1)``.
    With every ``S_q = 1`` it is Proposition 1.
    """
    if not layers:
        raise ValueError("layers must be non-empty")
    m, n = output_size
    total = 0
    for c, field, stride in layers:
        if c < 1 or field < 1 or stride < 1:
            raise ValueError(f"layer (channels, field, stride) must be positive, got {(c, field, stride)}")
        total += c * max(field - stride, 0) * min(stride * m - 1, stride * n - 1)
    return total * bytes_per_value


#: Modules computed pointwise on the fly: they hold no map of their own.
POINTWISE = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.SiLU, nn.Sigmoid, nn.Hardswish, nn.Identity, nn.Dropout)
#: Functions / tensor methods whose output is stored in (or fused into) their inputs:
#: concatenation, addition, scaling.
ALIASING = (torch.cat, operator.add, operator.mul, torch.add, torch.mul)
ALIASING_METHODS = ("add", "mul", "add_", "mul_")


@dataclass
class RowSchedule:
    """Claim 4 RAM of one block and the per-map terms it adds up."""

    ram_bytes: int
    input_output_bytes: int
    layers: pd.DataFrame

    @property
    def ram_mb(self) -> float:
        return self.ram_bytes / 2**20


def _row_span(module: nn.Module) -> Span:
    """The span along rows of a windowed layer (conv, local pool, RNNPool); other modules are pointwise."""
    spans = layer_spans(module)
    return IDENTITY if spans is None else spans[0]


def row_schedule_ram(block: nn.Module, input_shape: tuple[int, int, int],
                     bytes_per_value: int = 4) -> RowSchedule:
    """RAM (bytes) of the row-by-row schedule of ``block`` (Claim 4 with Proposition 2's terms).

    ``block`` maps a ``(C, H, W)`` input ``I`` to an output ``O``; it may branch (inception),
    concatenate (dense blocks) and add (residuals). The receptive field of an ``O`` row on each map
    is the largest over the paths to ``O``; pointwise modules (BatchNorm, activations) are fused
    into the conv before them, and a global pool (squeeze-excitation) is ignored, as the paper
    does for EfficientNet-B0.
    """
    graph = RNNPoolLeafTracer().trace(block)
    gm = fx.GraphModule(block, graph)
    was_training = block.training
    gm.eval()
    param = next(block.parameters(), None)
    device = param.device if param is not None else None  # a block built on "meta" needs no arithmetic
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, *input_shape, device=device))
    block.train(was_training)
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    out_node = next(n for n in nodes if n.op == "output").args[0]

    def is_alias(node: fx.Node) -> bool:
        if node.op == "call_module":
            return isinstance(modules[node.target], POINTWISE)
        if node.op == "call_method":
            return node.target in ALIASING_METHODS
        return node.op == "call_function" and node.target in ALIASING

    def is_global_pool(node: fx.Node) -> bool:
        return node.op == "call_module" and isinstance(modules[node.target], (nn.AdaptiveAvgPool2d,
                                                                              nn.AdaptiveMaxPool2d))

    field: dict[fx.Node, int] = {out_node: 1}
    stride: dict[fx.Node, int] = {out_node: 1}
    for node in reversed(nodes):
        if node not in field or is_global_pool(node):
            continue
        layer = _row_span(modules[str(node.target)]) if node.op == "call_module" else IDENTITY
        # the rows of this node's input that one output row needs: this layer, then the rest
        needed = layer.then(Span(0, field[node] - 1, stride[node]))
        for arg in node.all_input_nodes:
            meta = arg.meta.get("tensor_meta")
            if meta is None or len(meta.shape) != 4:
                continue
            field[arg] = max(field.get(arg, 0), int(needed.size))
            stride[arg] = max(stride.get(arg, 0), needed.jump)

    def storage(node: fx.Node) -> fx.Node:
        """The map a pointwise node lives in (its producer)."""
        while is_alias(node) and len(node.all_input_nodes) == 1:
            node = node.all_input_nodes[0]
        return node

    inp = next(n for n in nodes if n.op == "placeholder")
    ends = {storage(inp), storage(out_node), inp, out_node}
    _, c_out, h_out, w_out = out_node.meta["tensor_meta"].shape
    m, n = max(h_out, w_out), min(h_out, w_out)
    rows = []
    for node in nodes:
        if node in ends or node not in field or is_alias(node) or node.op != "call_module":
            continue
        shape = node.meta["tensor_meta"].shape
        if len(shape) != 4 or shape[2] * shape[3] == 1:
            continue
        f, s = field[node], stride[node]
        values = shape[1] * max(f - s, 0) * min(s * m - 1, s * n - 1)
        rows.append({"map": node.target, "channels": shape[1], "field": f, "stride": s, "values": values})
    c_in, h_in, w_in = input_shape
    shared_rows = max(field[inp] - stride[inp], 0)
    io = max(max(h_in, w_in) * min(h_in, w_in) * c_in + shared_rows * n * c_out,
             m * n * c_out + shared_rows * min(h_in, w_in) * c_in)
    table = pd.DataFrame(rows, columns=["map", "channels", "field", "stride", "values"])
    total = io + int(table["values"].sum())
    return RowSchedule(total * bytes_per_value, io * bytes_per_value, table)


__all__ = ["ALIASING", "ALIASING_METHODS", "POINTWISE", "RowSchedule", "proposition1_lower_bound",
           "proposition2_lower_bound", "row_schedule_ram"]
