"""``QuantizedModel``: the integer ops of a model, its quantization, and how to run / measure it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from rnnpool_lite.m4.cost import flash_bytes
from rnnpool_lite.m4.fixed_point import QParams
from rnnpool_lite.m4.ops.base import Op, Shape
from rnnpool_lite.m4.plan import (
    Schedule,
    Stem,
    check_schedule,
    find_stem,
    infer_shapes,
    mbconv_groups,
    run_mbconv_rows,
    run_stem,
    simulate_arena,
)
from rnnpool_lite.m4.report import Report


def _flatten(spec: Any) -> list[str]:
    return [spec] if isinstance(spec, str) else [t for s in spec for t in _flatten(s)]


def _map(spec: Any, fn: Callable[[str], Any]) -> Any:
    return fn(spec) if isinstance(spec, str) else tuple(_map(s, fn) for s in spec)


class QuantizedModel:
    """An int8 model: ``ops`` in execution order, per-tensor ``qparams``, the output structure.

    Built by :func:`rnnpool_lite.m4.quantize`. ``run`` / ``run_int8`` execute it with integer
    kernels under a schedule (``"layer"`` or ``"patch"``, identical integer results);
    ``report`` measures RAM (simulated arena), flash, MACs and cycles. ``float_model`` is the
    traced float network it was converted from (with quantSigmoid / quantTanh if
    ``convert_activations`` swapped them): the reference its outputs should follow.
    """

    def __init__(self, ops: list[Op], input_name: str, qparams: dict[str, QParams], output_spec: Any,
                 blocks: list[str] | None = None) -> None:
        self.ops, self.input_name, self.qparams, self.output_spec = ops, input_name, qparams, output_spec
        self.blocks = list(blocks or [])
        self.float_model: torch.nn.Module | None = None

    @property
    def input_qparams(self) -> QParams:
        return self.qparams[self.input_name]

    @property
    def output_tensors(self) -> list[str]:
        return _flatten(self.output_spec)

    def __repr__(self) -> str:
        kinds = pd.Series([op.kind for op in self.ops]).value_counts().to_dict()
        return f"QuantizedModel({len(self.ops)} ops: {kinds}, flash {flash_bytes(self.ops)} B)"

    def quantize_input(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Float input batch to int8 with the calibrated input quantization."""
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"input must be a batch (N, C, H, W), got shape {x.shape}")
        return self.input_qparams.quantize(x)

    def run_int8(self, x: torch.Tensor | np.ndarray, schedule: Schedule = "patch") -> Any:
        """Raw int8 outputs (numpy), structured like the float model's output.

        ``x`` is a float batch (quantized here) or an int8 array (used as is).
        """
        env = self._run(x, schedule)
        return _map(self.output_spec, lambda t: env[t])

    def run(self, x: torch.Tensor | np.ndarray, schedule: Schedule = "patch") -> Any:
        """Float in, dequantized float tensors out, structured like the float model's output."""
        env = self._run(x, schedule)
        return _map(self.output_spec,
                    lambda t: torch.from_numpy(self.qparams[t].dequantize(env[t]).astype(np.float32)))

    def _run(self, x: torch.Tensor | np.ndarray, schedule: Schedule) -> dict[str, np.ndarray]:
        schedule = check_schedule(schedule)
        if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer):
            if x.dtype != np.int8 or x.ndim != 4:
                raise TypeError(f"an integer input must be an int8 batch (N, C, H, W), got {x.dtype} {x.shape}")
            return self._execute(x, schedule)
        return self._execute(self.quantize_input(x), schedule)

    def intermediates(self, x: torch.Tensor | np.ndarray, schedule: Schedule = "layer") -> dict[str, np.ndarray]:
        """Every tensor the schedule produces (input, terminals and layer outputs), by name."""
        return self._execute(self.quantize_input(x), check_schedule(schedule))

    def _execute(self, x: np.ndarray, schedule: Schedule) -> dict[str, np.ndarray]:
        env = {self.input_name: x}
        start = 0
        groups: dict[int, list[int]] = {}
        if schedule == "patch":
            groups = mbconv_groups(self.ops, self.blocks)
            shapes = infer_shapes(self.ops, self.input_name, x.shape)
            stem = find_stem(self.ops, set(self.output_tensors), shapes)
            if stem is not None:
                zps = {t: q.zero_point for t, q in self.qparams.items()}
                env.update(run_stem(stem, x, self.input_name, zps, shapes))
                start = len(stem.ops)
        done: set[int] = set()
        for k in range(start, len(self.ops)):
            if k in groups:  # an inverted residual block, row by row through a ring buffer
                members = [self.ops[m] for m in groups[k]]
                env[members[-1].outputs[0]] = run_mbconv_rows(members, env)
                done.update(groups[k])
            elif k not in done:
                op = self.ops[k]
                env.update(zip(op.outputs, op.run(*(env[t] for t in op.inputs))))
        return env

    def report(self, input_size: tuple[int, ...], schedule: Schedule = "patch", count_input: bool = False,
               count_output: bool = False, clock_hz: float = 80e6) -> Report:
        """Measure peak arena, flash, MACs and cycles for one input ``(C, H, W)`` or ``(N, C, H, W)``.

        ``count_input``: keep the whole input image in the arena (the M4 deployment stores its
        320x240 frame); otherwise the image is streamed from the camera and only each patch's
        crop (patch schedule) occupies SRAM. ``count_output``: keep the model's outputs in the
        arena until the end; otherwise each detection head's output is handed to the decoder as
        it is produced (alive during its own op only). ``clock_hz``: the default clock of
        ``Report.latency_ms``.
        """
        schedule = check_schedule(schedule)
        shape = tuple(input_size)
        if len(shape) == 3:
            shape = (1, *shape)
        if len(shape) != 4 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W) positive ints, got {input_size!r}")
        shapes = infer_shapes(self.ops, self.input_name, shape)
        outputs = set(self.output_tensors)
        stem = find_stem(self.ops, outputs, shapes) if schedule == "patch" else None
        arena = simulate_arena(self.ops, self.input_name, shapes, outputs, schedule, stem, self.blocks,
                               count_input, count_output)
        executed: dict[str, int] = {}
        if stem is not None:
            executed = _stem_macs(stem, shapes)
        rows = []
        for op in self.ops:
            in_shape = shapes[op.inputs[0]]
            net = op.macs(*(shapes[t] for t in op.inputs))
            ran = executed.get(op.name, net)
            rows.append(dict(op=op.name, kind=op.kind, module=op.module, output=str(shapes[op.outputs[0]]),
                             macs=net, executed_macs=ran, cycles=op.cycles(in_shape, ran),
                             flash_bytes=op.flash_bytes))
        table = pd.DataFrame(rows)
        return Report(schedule, shape, count_input, count_output, arena.peak, flash_bytes(self.ops),
                      int(table.executed_macs.sum()), int(table.macs.sum()), float(table.cycles.sum()),
                      arena.timeline, table, clock_hz)


def _stem_macs(stem: Stem, shapes: dict[str, Shape]) -> dict[str, int]:
    """MACs the patch schedule executes in the stem: each op's MACs per output position times
    the positions of its per-patch region, times the patches (overlaps are computed again)."""
    out = {}
    for op in stem.ops:
        n, _, h, w = op.map_shapes(shapes[op.inputs[0]])[0]
        (rows, cols) = stem.regions[op.map_name]
        per_position = op.macs(shapes[op.inputs[0]]) / (n * h * w)
        out[op.name] = int(round(per_position * rows[2] * cols[2] * n * stem.grid[0] * stem.grid[1]))
    return out


__all__ = ["QuantizedModel"]
