"""Parameters, multiply-adds and peak RAM of a model, traced from a real forward pass.

``profile(model, input_size)`` runs one forward pass with hooks and returns a
:class:`Profile` with totals and a per-layer pandas DataFrame (pandas because the book prints,
sorts and plots these tables).

Multiply-adds (MAdds), as in the paper: convolutions ``H_out W_out C_out (C_in / groups) k_h k_w``,
linear layers ``in * out``, RNN cells their matrix-vector products. BatchNorm, activations,
pooling, biases and residual additions are not counted.

RNNPool MAdds (:func:`rnnpool_madds`) are derived from the recurrences of Algorithm 1: RNN1
takes ``k_h`` rows of ``k_w`` steps plus ``k_w`` columns of ``k_h`` steps per patch, RNN2 makes
four sweeps (``2 k_h + 2 k_w`` steps); a step costs ``W x + U h`` (``h1 (C + h1)`` for RNN1 with
FastGRNN, three times that for GRU, four for LSTM); the gate nonlinearities and the elementwise
update are not counted (like activations elsewhere). The default, ``"shared"``, counts what the
vectorised ``RNNPool2d`` computes: ``W x`` once per pixel and RNN1's recurrence once per
(row, patch column) and (column, patch row) segment, shared by vertically / horizontally
overlapping patches. It is the paper's count: it gives RNNPool-Face-B 1.178G (paper 1.18G),
Face-Quant 0.122G (0.12G), MobileNetV2-RNNPool 0.237G (0.23G), where ``"per_patch"`` (every
patch on its own, as a device with no row buffer runs it) gives 1.28G, 0.165G and 0.267G.
Recurrent layers (``nn.GRU``/``nn.LSTM``/``nn.RNN``, ReNet) cost their ``W_ih`` and ``W_hh``
per step and direction.

Peak RAM, the "standard convention" of the paper (Appendix E.2, after Chowdhery et al.): layers run
one after another and the RAM of a step is what must be live then; the peak is the largest step.

* A *unit* is a block with a ``memory_rule`` attribute (a
  :class:`~rnnpool_lite.models.blocks.MemoryRule`; ``InvertedResidual``: input + output;
  ``BasicBlock``, ``Transition`` and ``DepthwiseSeparable``: max(input, output); ``DenseBlock``:
  its output; ``Inception``: input + the three smallest branch outputs (from its
  ``branch_channels``); ``ConvBNAct``: input + output; ``ReNet2d``: like RNNPool) or a
  layer outside such blocks (conv, linear: input + output; local pooling: max(input, output),
  it can overwrite its input row by row; RNNPool: input + output).
* The input image streams in from the sensor and is not counted (the paper's ResNet18 3.06 MB
  and Face-Quant 225 KB figures both exclude it), unless ``count_input=True``: then the frame is
  stored in RAM for the whole pass and adds to every step (the paper's Face-M4 keeps its
  320x240x1 frame in RAM, Section 5.3: 75 KB + 112.5 KB = its 188 KB).
* Plain convolutions before an ``RNNPool2d`` or ``ReNet2d`` (its "stem") are computed patch by
  patch together with it: their outputs and the RNNPool input are never materialised.
* A 1x1 convolution whose output goes only to a global pool or an RNNPool is computed on the fly:
  its output is consumed pixel by pixel (the final ``1x1 conv -> avgpool`` of MobileNetV2).
* BatchNorm, activations, dropout and flatten run in place. A network output (a map no other
  unit reads: detection heads, the classifier) is decoded as it is produced and is not kept.

Propositions 1/2 and the row-by-row schedule of Table 8 are in :mod:`rnnpool_lite.accounting.bounds`
; the paper-vs-ours tables in :mod:`rnnpool_lite.accounting.comparison`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from rnnpool_lite.choices import Choice
from rnnpool_lite.models.blocks import MemoryRule
from rnnpool_lite.op.layer import RNNPool2d

#: Modules that run in place on their input (no new activation map under the convention).
IN_PLACE = (nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU, nn.ReLU6, nn.Dropout, nn.Flatten, nn.Identity,
            nn.Sigmoid, nn.Hardswish, nn.SiLU)
LOCAL_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
LEAF_LAYERS = (nn.Conv2d, nn.Linear, RNNPool2d, nn.ZeroPad2d) + LOCAL_POOLS + GLOBAL_POOLS


def conv_madds(module: nn.Conv2d, output: Tensor) -> int:
    """``H_out W_out C_out (C_in / groups) k_h k_w`` for one image."""
    return int(output[0].numel() * module.weight[0].numel())


class RNNPoolMode(Choice):
    """How :func:`rnnpool_madds` counts an RNNPool's multiply-adds."""

    SHARED = "shared"        # what the vectorised RNNPool2d computes (the paper's count)
    PER_PATCH = "per_patch"  # every patch on its own


def rnnpool_madds(layer: RNNPool2d, out_height: int, out_width: int,
                  mode: RNNPoolMode | str = RNNPoolMode.SHARED) -> int:
    """Multiply-adds of one image through ``layer``.

    ``"shared"`` (default, the paper's count): what the vectorised ``RNNPool2d`` does: ``W x``
    once per pixel (RNN1) and per summary (RNN2), RNN1's recurrence once per (row, patch column)
    and (column, patch row) segment, RNN2's four sweeps per patch.
    ``"per_patch"``: every patch runs Algorithm 1 on its own (see module docstring).
    """
    mode = RNNPoolMode(mode)
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    ho, wo = out_height, out_width
    w1, u1 = _cell_matrices(layer.rnn1)
    w2, u2 = _cell_matrices(layer.rnn2)
    rnn2_steps = ho * wo * (2 * kh + 2 * kw)
    if mode is RNNPoolMode.PER_PATCH:
        return ho * wo * 2 * kh * kw * (w1 + u1) + rnn2_steps * (w2 + u2)
    hu, wu = sh * (ho - 1) + kh, sw * (wo - 1) + kw  # rows / columns that patches touch
    summaries = hu * wo + ho * wu
    return (hu * wu * w1 + (hu * wo * kw + ho * wu * kh) * u1
            + summaries * w2 + rnn2_steps * u2)


def recurrent_madds(module: nn.RNNBase, output: Tensor) -> int:
    """``steps * (W_ih + W_hh)`` summed over layers and directions (gates included in the shapes).

    ``output`` is the layer's output sequence; its leading two dimensions hold batch x steps.
    """
    steps = int(output.shape[0] * output.shape[1])
    weights = sum(p.numel() for n, p in module.named_parameters() if n.startswith("weight_"))
    return steps * int(weights)


def _cell_matrices(cell: nn.Module) -> tuple[int, int]:
    """Sizes of the input and hidden weight matrices (the MAdds of ``W x`` and ``U h``)."""
    names = ("W", "U") if hasattr(cell, "W") else ("weight_ih", "weight_hh")
    w, u = (cell.get_parameter(n) for n in names)
    return int(w.numel()), int(u.numel())


@dataclass
class Profile:
    """Totals and the per-unit table of one profiled forward pass."""

    params: int
    madds: int
    peak_ram_bytes: int
    peak_layer: str
    layers: pd.DataFrame
    bytes_per_value: int
    input_size: tuple[int, ...]
    count_input: bool = False

    @property
    def peak_ram_mb(self) -> float:
        """Peak RAM in MB of 2^20 bytes (the paper's unit)."""
        return self.peak_ram_bytes / 2**20

    @property
    def peak_ram_kb(self) -> float:
        return self.peak_ram_bytes / 2**10

    def summary(self) -> pd.Series:
        return pd.Series({"params_M": self.params / 1e6, "madds_G": self.madds / 1e9,
                          "peak_ram_MB": self.peak_ram_mb, "peak_layer": self.peak_layer})


@dataclass
class _Unit:
    name: str
    module: nn.Module
    rule: MemoryRule
    input_id: int = -1
    output_id: int = -1
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    branch_numels: list[int] = field(default_factory=list)


def _units(model: nn.Module) -> dict[str, tuple[nn.Module, MemoryRule]]:
    """Outermost blocks with a ``memory_rule`` and leaf layers outside them, by qualified name.

    A block's rule is read with ``MemoryRule(...)``, so a misspelled one fails naming the choices.
    """
    units: dict[str, tuple[nn.Module, MemoryRule]] = {}
    inside: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        rule = getattr(module, "memory_rule", None)
        if rule is not None:
            units[name] = (module, MemoryRule(rule))
            inside.append(name)
        elif isinstance(module, RNNPool2d):
            units[name] = (module, MemoryRule.RNNPOOL)
            inside.append(name)
        elif isinstance(module, LOCAL_POOLS):
            units[name] = (module, MemoryRule.POOL)
        elif isinstance(module, GLOBAL_POOLS):
            units[name] = (module, MemoryRule.GLOBAL_POOL)
        elif isinstance(module, (nn.Conv2d, nn.Linear, nn.ZeroPad2d)):
            units[name] = (module, MemoryRule.IN_OUT)
    return units


def _is_conv_layer(module: nn.Module) -> bool:
    """One conv with only in-place layers around it (``Conv2d``; ``ConvBNAct``: conv, BatchNorm, activation)."""
    leaves = [m for m in module.modules() if not list(m.children())]
    return (sum(isinstance(m, nn.Conv2d) for m in leaves) == 1
            and all(isinstance(m, (nn.Conv2d, *IN_PLACE)) for m in leaves))


def _is_1x1(module: nn.Module) -> bool:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return len(convs) == 1 and convs[0].kernel_size == (1, 1) and convs[0].stride == (1, 1)


def _normalise_size(input_size: Any) -> tuple[int, ...]:
    if isinstance(input_size, int) or not isinstance(input_size, (tuple, list)):
        raise TypeError(f"input_size must be a tuple (C, H, W) or (N, C, H, W), got {input_size!r}")
    size = tuple(input_size)
    if len(size) == 3:
        size = (1,) + size
    if len(size) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W) of positive ints, got {input_size!r}")
    if size[0] != 1:
        raise ValueError(f"profile counts one image: batch size must be 1, got {size[0]}")
    return size


def profile(model: nn.Module, input_size: Sequence[int], bytes_per_value: int = 4,
            rnnpool_mode: RNNPoolMode | str = RNNPoolMode.SHARED, count_input: bool = False) -> Profile:
    """Parameters, MAdds and standard-convention peak RAM of ``model`` on one input.

    ``input_size`` is ``(C, H, W)`` (or ``(1, C, H, W)``); ``bytes_per_value`` is 4 for float32
    models and 1 for int8; ``rnnpool_mode`` picks the RNNPool MAdds count (:func:`rnnpool_madds`);
    ``count_input`` keeps the input frame in RAM for the whole pass (column ``frame_bytes``).
    Raises ``ValueError`` when the model cannot take that input.
    """
    rnnpool_mode = RNNPoolMode(rnnpool_mode)
    size = _normalise_size(input_size)
    if isinstance(bytes_per_value, bool) or not isinstance(bytes_per_value, int) or bytes_per_value < 1:
        raise ValueError(f"bytes_per_value must be a positive int, got {bytes_per_value!r}")
    if not isinstance(count_input, bool):
        raise TypeError(f"count_input must be a bool, got {count_input!r}")
    units = _units(model)
    records: dict[str, _Unit] = {}
    order: list[str] = []
    madds: dict[str, int] = {}
    alias: dict[int, int] = {}
    keep: list[Tensor] = []  # keeps tensors alive so their ids stay unique during the pass

    def root(t: Tensor) -> int:
        i = id(t)
        while i in alias:
            i = alias[i]
        return i

    def hook(name: str, module: nn.Module, args: tuple, output: Any) -> None:
        x = args[0] if args and isinstance(args[0], Tensor) else None
        keep.extend(t for t in (x, output) if isinstance(t, Tensor))
        if (isinstance(module, IN_PLACE) and x is not None and isinstance(output, Tensor)
                and root(x) != id(output)):
            alias[id(output)] = root(x)
        if isinstance(module, nn.Conv2d):
            madds[name] = conv_madds(module, output)
        elif isinstance(module, nn.Linear):
            madds[name] = int(module.in_features * module.out_features * output[0].numel() // module.out_features)
        elif isinstance(module, RNNPool2d):
            madds[name] = rnnpool_madds(module, output.shape[2], output.shape[3], rnnpool_mode)
        elif isinstance(module, nn.RNNBase):
            madds[name] = recurrent_madds(module, output[0])
        if name in units and isinstance(output, Tensor) and x is not None:
            keep.append(output)
            unit = _Unit(name, module, units[name][1], root(x), root(output), tuple(x.shape[1:]),
                         tuple(output.shape[1:]))
            branches = getattr(module, "branch_channels", None)
            if branches is not None:
                spatial = _numel(tuple(output.shape[2:]))
                unit.branch_numels = [c * spatial for c in branches]
            records[name] = unit
            order.append(name)

    handles = [m.register_forward_hook(lambda mod, a, o, n=n: hook(n, mod, a, o))
               for n, m in model.named_modules()]
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros(size, dtype=param.dtype if param is not None else torch.float32,
                        device=param.device if param is not None else None)
        keep.append(x)
        with torch.no_grad():
            try:
                model(x)
            except (RuntimeError, ValueError) as err:
                raise ValueError(f"{type(model).__name__} cannot take an input of size {size}: {err}") from err
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    table = _memory_table([records[n] for n in order], madds, id(x), bytes_per_value)
    frame_bytes = _numel(size) * bytes_per_value if count_input else 0
    table.insert(table.columns.get_loc("ram_bytes"), "frame_bytes", frame_bytes)
    table["ram_bytes"] += table["frame_bytes"]
    peak_row = table["ram_bytes"].idxmax()
    params = sum(p.numel() for p in model.parameters())
    return Profile(params=params, madds=int(sum(madds.values())),
                   peak_ram_bytes=int(table.loc[peak_row, "ram_bytes"]),
                   peak_layer=str(table.loc[peak_row, "layer"]), layers=table,
                   bytes_per_value=bytes_per_value, input_size=size, count_input=count_input)


def _streamed_outputs(units: list[_Unit], image_id: int) -> set[int]:
    """Ids of maps that are never materialised (see the module docstring)."""
    streamed = {image_id}
    consumers: dict[int, list[_Unit]] = {}
    for u in units:
        consumers.setdefault(u.input_id, []).append(u)
    # a stem of plain convs/pools before an early RNNPool is computed patch by patch with it
    for i, u in enumerate(units):
        if u.rule is MemoryRule.RNNPOOL:
            stem = units[:i]
            if all(s.rule in (MemoryRule.IN_OUT, MemoryRule.POOL) and not list(s.module.children())
                   or _is_conv_layer(s.module) for s in stem):
                streamed.update(s.output_id for s in stem)
            break
    # a network output (no unit reads it: detection heads, the classifier) is decoded as produced
    streamed.update(u.output_id for u in units if u.output_id not in consumers)
    # a 1x1 conv feeding only global pools / RNNPools is computed on the fly
    for u in units:
        users = consumers.get(u.output_id, [])
        if users and _is_1x1(u.module) and all(c.rule in (MemoryRule.GLOBAL_POOL, MemoryRule.RNNPOOL)
                                               for c in users):
            streamed.add(u.output_id)
    return streamed


#: RAM of a unit under each rule, from its input bytes, output bytes and smallest three branch
#: outputs (inception), after streamed maps are zeroed.
_RAM: dict[MemoryRule, Callable[[int, int, int], int]] = {
    MemoryRule.IN_OUT: lambda i, o, b: i + o,
    MemoryRule.MAX: lambda i, o, b: max(i, o),
    MemoryRule.OUT: lambda i, o, b: o,
    MemoryRule.INCEPTION: lambda i, o, b: i + b,
    MemoryRule.RNNPOOL: lambda i, o, b: i + o,
    MemoryRule.POOL: lambda i, o, b: max(i, o),
    MemoryRule.GLOBAL_POOL: lambda i, o, b: i + o,
}


def _memory_table(units: list[_Unit], madds: dict[str, int], image_id: int, bpv: int) -> pd.DataFrame:
    streamed = _streamed_outputs(units, image_id)
    rows = []
    for u in units:
        in_b = 0 if u.input_id in streamed else _numel(u.input_shape) * bpv
        out_b = 0 if u.output_id in streamed else _numel(u.output_shape) * bpv
        ram = _RAM[u.rule](in_b, out_b, sum(sorted(u.branch_numels)[:3]) * bpv)
        unit_madds = sum(v for k, v in madds.items() if k == u.name or k.startswith(u.name + "."))
        params = sum(p.numel() for p in u.module.parameters())
        rows.append({"layer": u.name, "type": type(u.module).__name__, "rule": u.rule.value,
                     "input_shape": u.input_shape, "output_shape": u.output_shape, "params": params,
                     "madds": unit_madds, "input_bytes": in_b, "output_bytes": out_b, "ram_bytes": ram})
    return pd.DataFrame(rows)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
