"""C export of a :class:`QuantizedModel`: a self-contained C99 project for a Cortex-M4 (or the host).

``export_c(qmodel, out_dir, input_size)`` writes:

* the model-independent sources, copied from ``m4/c/``: ``rnn_kernels.{h,c}`` (the integer kernels
  of :mod:`.kernels`, :mod:`.fixed_point` and :mod:`.rnnpool_int`, operation for operation),
  ``rnn_platform.h`` with ``platform_host.c`` (stdio) and ``platform_m4.c`` (startup, semihosting,
  timer, stack painting), ``m4.ld`` (256 KB SRAM, 2 MB flash) and a ``Makefile``;
* ``model.c``: the weights, biases, multipliers and shifts as ``static const`` arrays (flash), one
  ``static uint8_t arena[N]`` whose size and every buffer offset come from the emulator's planner
  (:func:`.schedule.simulate_arena`), and one function per step of the schedule, commented with
  the layer it runs;
* ``frame.S`` when the frame is streamed (``count_input=False``): the int8 image ``.incbin``-ed
  into flash; with ``count_input=True`` the frame is read into the arena over semihosting.

The C code runs the emulator's schedule: under ``"patch"`` the stem (every op up to the first
RNNPool) patch by patch on crops, then the rest op by op, inverted residual blocks row by row
through a ring buffer. Maps are HWC in C (NCHW in numpy); outputs go back as records
``(tensor id, byte offset, bytes)`` and :func:`read_outputs` rebuilds them in numpy's layout.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rnnpool_lite.m4.model import QuantizedModel
from rnnpool_lite.m4.ops import (
    AddOp,
    AvgPoolOp,
    ClampOp,
    ConcatOp,
    ConvOp,
    FlattenOp,
    HeadOp,
    LinearOp,
    Op,
    RNNPoolOp,
    Shape,
)
from rnnpool_lite.m4.plan import Stem, _steps, check_schedule, find_stem, infer_shapes, mbconv_groups, simulate_arena
from rnnpool_lite.m4.quantize import UnsupportedError

C_SOURCES = ("rnn_kernels.c", "rnn_kernels.h", "rnn_platform.h", "platform_host.c", "platform_m4.c", "m4.ld")
STEM_TOTAL = "stem (all patches, total)"  # the stem's own step; its ops' steps are parts of it
STATS_ID = 0xFFFFFFF0  # output record holding the per-step clock ticks, the total and the stack
EXPORTABLE = (ConvOp, HeadOp, RNNPoolOp, AddOp, ClampOp, AvgPoolOp, FlattenOp, LinearOp, ConcatOp)


@dataclass
class CProject:
    """What :func:`export_c` wrote: where, the arena plan, the steps and how to read the outputs."""

    out_dir: Path
    input_shape: tuple[int, int, int, int]
    count_input: bool
    arena_bytes: int
    buffers: dict[str, tuple[int, int]]  # planner buffer -> (offset, bytes)
    steps: list[str]  # labels of the timed steps, in the order of the stats record
    outputs: list[dict[str, Any]]  # per model output: name, shape, layout ("flat" / "hwc")
    output_spec: Any
    weight_bytes: int
    smlad: bool = False
    sources: list[str] = field(default_factory=list)


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    if not flat:
        flat = [0]
    lines = [", ".join(str(v) for v in flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] = {{\n    {body}\n}};\n"


def _ident(name: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in name)
    return out if out and not out[0].isdigit() else "t_" + out


class _Writer:
    """Builds model.c: weights, parameter structs, step functions."""

    def __init__(self) -> None:
        self.weights: list[str] = []
        self.params: list[str] = []
        self.functions: list[str] = []
        self.weight_bytes = 0
        self.names: set[str] = set()

    def array(self, ctype: str, name: str, values: np.ndarray, comment: str = "") -> str:
        name = _ident(name)
        assert name not in self.names, name
        self.names.add(name)
        values = np.asarray(values)
        self.weight_bytes += values.size * {"int8_t": 1, "int16_t": 2, "int32_t": 4}[ctype]
        self.weights.append((f"/* {comment} */\n" if comment else "") + _c_array(ctype, name, values))
        return name

    def conv(self, op: ConvOp, prefix: str | None = None) -> str:
        """A ``static const rnn_conv_params`` for a ConvOp (weights reordered for HWC)."""
        o, cg, kh, kw = op.w.shape
        sub = op.subkind
        if op.groups > 1 and sub != "depthwise":
            raise UnsupportedError(f"layer {op.module or op.name!r}: grouped convolution (groups={op.groups}) "
                                   "has no C kernel (regular, depthwise and pointwise convs are exported)")
        w = op.w[:, 0].transpose(1, 2, 0) if sub == "depthwise" else op.w.transpose(0, 2, 3, 1)
        p = _ident(prefix or op.name)
        desc = f"{op.module or op.name}: {sub} conv {kh}x{kw}, stride {op.stride[0]}, {op.groups and op.w.shape[1] * op.groups} -> {o} channels"
        wn = self.array("int8_t", f"{p}_w", w, desc)
        bn = self.array("int32_t", f"{p}_bias", op.bias)
        mn = self.array("int32_t", f"{p}_mult", op.mult)
        sn = self.array("int32_t", f"{p}_shift", op.shift)
        name = f"{p}_p"
        self.params.append(
            f"static const rnn_conv_params {name} = {{{wn}, {bn}, {mn}, {sn}, {o}, {kh}, {kw}, {op.stride[0]}, "
            f"{op.stride[1]}, {op.padding[0]}, {op.padding[2]}, {int(sub == 'depthwise')}, {op.in_zp}, "
            f"{op.out_zp}, {op.act_min}, {op.act_max}}};\n")
        return name

    def rnnpool(self, op: RNNPoolOp) -> str:
        pool, p = op.pool, _ident(op.name)
        cells = []
        for k, cell in ((1, pool.rnn1), (2, pool.rnn2)):
            q = f"{p}_rnn{k}"
            names = [self.array("int8_t", f"{q}_w", cell.w, f"{op.module or op.name}: RNN{k} (FastGRNN) W, "
                                f"{cell.w.shape[0]} x {cell.w.shape[1]}"),
                     self.array("int8_t", f"{q}_u", cell.u),
                     self.array("int32_t", f"{q}_w_mult", cell.w_mult), self.array("int32_t", f"{q}_w_shift", cell.w_shift),
                     self.array("int32_t", f"{q}_u_mult", cell.u_mult), self.array("int32_t", f"{q}_u_shift", cell.u_shift),
                     self.array("int32_t", f"{q}_bias_gate", cell.bias_gate),
                     self.array("int32_t", f"{q}_bias_update", cell.bias_update)]
            cells.append("{" + ", ".join(names) + f", {cell.w.shape[0]}, {cell.w.shape[1]}, {cell.zeta}, {cell.nu}, "
                         f"{cell.state_bits}}}")
        (kh, kw), (sh, sw), (ph, pw) = pool.kernel, pool.stride, pool.padding
        name = f"{p}_p"
        self.params.append(
            f"static const rnn_rnnpool_params {name} = {{\n    {cells[0]},\n    {cells[1]},\n    {kh}, {kw}, {sh}, "
            f"{sw}, {ph}, {pw}, {pool.in_zp}, {pool.out_mult}, {pool.out_shift}, {pool.out_zp}}};\n")
        return name

    def ints(self, name: str, values: list[int]) -> str:
        name = _ident(name)
        self.names.add(name)
        self.params.append(f"static const int32_t {name}[{len(values)}] = {{{', '.join(str(int(v)) for v in values)}}};\n")
        return name


def _hwc_bytes(shape: Shape) -> int:
    return int(np.prod(shape))


def _check_exportable(qmodel: QuantizedModel, shapes: dict[str, Shape], results: set[str]) -> None:
    for op in qmodel.ops:
        where = f"layer {op.module or op.name!r} ({type(op).__name__})"
        if not isinstance(op, EXPORTABLE):
            raise UnsupportedError(f"{where} has no C kernel; exportable: "
                                   f"{', '.join(t.__name__ for t in EXPORTABLE)}")
        if isinstance(op, ConcatOp) and op.outputs[0] not in qmodel.output_tensors:
            raise UnsupportedError(f"{where}: only a concatenation of model outputs (done as they are sent out) "
                                   "is exported, not one inside the network")
        if isinstance(op, (ConcatOp, FlattenOp)):
            src = shapes[op.inputs[0]]
            if len(src) == 4 and src[2] * src[3] > 1 and src[1] > 1:
                raise UnsupportedError(f"{where}: its input {src} is a map with several channels and positions; "
                                       "C keeps maps HWC, so this NCHW flatten / concat is not exported")
        if isinstance(op, ConcatOp) and any(s != 1 for s in shapes[op.outputs[0]][: op.dim]):
            raise UnsupportedError(f"{where}: concatenation along dim {op.dim} of a batch is not exported")
        if isinstance(op, HeadOp) and op.conf.w.shape[0] > 32:
            raise UnsupportedError(f"{where}: more than 32 head channels")
        if isinstance(op, HeadOp) and not set(op.outputs) <= results:
            raise UnsupportedError(f"{where}: a detection head's outputs must be model outputs")


def _check_input_channels(qmodel: QuantizedModel, shape: Shape) -> None:
    for op in qmodel.ops:
        if qmodel.input_name not in op.inputs:
            continue
        conv = op.loc if isinstance(op, HeadOp) else op
        if isinstance(conv, ConvOp):
            want = conv.w.shape[1] * conv.groups
        elif isinstance(op, RNNPoolOp):
            want = op.pool.rnn1.w.shape[1]
        else:
            continue
        if shape[1] != want:
            raise ValueError(f"the input has {shape[1]} channels; the model's first layer {op.module or op.name!r} "
                             f"expects {want} channels")


def export_c(qmodel: QuantizedModel, out_dir: str | Path, input_size: tuple[int, ...], schedule: str = "patch", *,
             count_input: bool = False, smlad: bool = False) -> CProject:
    """Write the C project for ``qmodel`` on one input of ``input_size`` ``(C, H, W)`` / ``(1, C, H, W)``.

    ``count_input``: the frame lives in the SRAM arena (read over semihosting), as in the
    emulator's ``report(count_input=True)``; otherwise it streams from flash (``frame.S``, written
    by :func:`write_input`). ``smlad``: the optimized kernels (CMSIS-NN's techniques, ``SMLAD`` on
    the Cortex-M4; bit-exact, integer sums in another order); otherwise the reference loops
    (``-DRNN_KERNELS_REFERENCE``).
    """
    if not isinstance(qmodel, QuantizedModel):
        raise TypeError(f"qmodel must be a QuantizedModel (from m4.quantize), got {type(qmodel).__name__}")
    check_schedule(schedule)
    shape = tuple(input_size)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[0] != 1 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(f"input_size must be (C, H, W) or (1, C, H, W) of positive ints (one frame), got {input_size!r}")
    ops = qmodel.ops
    _check_input_channels(qmodel, shape)
    shapes = infer_shapes(ops, qmodel.input_name, shape)
    out_names = qmodel.output_tensors
    outputs = set(out_names)
    result = set(outputs)
    for op in reversed(ops):
        if isinstance(op, ConcatOp) and op.outputs[0] in result:
            result.update(op.inputs)
    _check_exportable(qmodel, shapes, result)
    stem = find_stem(ops, outputs, shapes) if schedule == "patch" else None
    arena = simulate_arena(ops, qmodel.input_name, shapes, outputs, schedule, stem, qmodel.blocks, count_input, False)
    buffers: dict[str, tuple[int, int]] = {}
    for ev in arena.timeline.itertuples(index=False):
        if ev.event == "alloc":
            if ev.buffer in buffers:
                raise AssertionError(f"planner buffer {ev.buffer!r} allocated twice")
            buffers[ev.buffer] = (int(ev.offset), int(ev.bytes))

    # where each produced value goes out: output id, base byte offset, requantization (concat)
    emit: dict[str, tuple[int, int, dict | None]] = {}
    out_info = []
    for k, name in enumerate(out_names):
        s = shapes[name]
        out_info.append(dict(name=name, shape=list(s), layout="hwc" if len(s) == 4 else "flat"))
        producer = next(op for op in ops if name in op.outputs)
        if isinstance(producer, ConcatOp):
            base = 0
            for t, rq in zip(producer.inputs, producer.requant):
                emit[t] = (k, base, rq)
                base += _hwc_bytes(shapes[t])
        else:
            emit[name] = (k, 0, None)

    g = _Gen(qmodel, shapes, buffers, emit, count_input, stem)
    g.build(schedule)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = resources.files("rnnpool_lite.m4") / "c"
    for fname in C_SOURCES:
        (out_dir / fname).write_text((src / fname).read_text())
    (out_dir / "model.c").write_text(g.source(arena.peak, shape))
    (out_dir / "Makefile").write_text(_MAKEFILE.format(smlad="" if smlad else "-DRNN_KERNELS_REFERENCE"))
    project = CProject(out_dir, shape, count_input, int(arena.peak), buffers, g.labels, out_info, qmodel.output_spec,
                       g.w.weight_bytes, smlad, list(C_SOURCES) + ["model.c"])
    meta = dict(input_shape=list(shape), count_input=count_input, arena_bytes=int(arena.peak), steps=g.labels,
                outputs=out_info, weight_bytes=g.w.weight_bytes, smlad=smlad)
    (out_dir / "project.json").write_text(json.dumps(meta, indent=1))
    return project


class _Gen:
    """Generates the step functions of model.c."""

    def __init__(self, qmodel: QuantizedModel, shapes: dict[str, Shape], buffers: dict[str, tuple[int, int]],
                 emit: dict[str, tuple[int, int, dict | None]], count_input: bool, stem: Stem | None) -> None:
        self.q, self.shapes, self.buffers, self.emit_map = qmodel, shapes, buffers, emit
        self.count_input, self.stem = count_input, stem
        self.w = _Writer()
        self.labels: list[str] = []
        self.calls: list[str] = []
        self.zp = {t: q.zero_point for t, q in qmodel.qparams.items()}

    # --- helpers ---------------------------------------------------------------------------
    def buf(self, name: str) -> str:
        return f"(arena + {self.buffers[name][0]})"

    def hwc(self, t: str) -> tuple[int, int, int]:
        s = self.shapes[t]
        if len(s) == 4:
            return s[2], s[3], s[1]
        return 1, 1, int(np.prod(s[1:]))

    def whole(self, t: str) -> str:
        """Pointer to a whole tensor: the arena, or the flash frame for a streamed input."""
        if t == self.q.input_name and not self.count_input:
            return "rnn_frame"
        return self.buf(t)

    def view(self, t: str) -> str:
        h, w, c = self.hwc(t)
        return f"{{{self.whole(t)}, {h}, {w}, {c}, 0, 0, {h}, {w}, {self.zp[t]}}}"

    def emit_lines(self, t: str, ptr: str, nbytes: str, offset: str = "0", indent: str = "    ") -> list[str]:
        k, base, rq = self.emit_map[t]
        lines = []
        if rq is not None:
            lines.append(f"{indent}rnn_requantize({ptr}, {nbytes}, {rq['in_zp']}, {rq['mult']}, {rq['shift']}, "
                         f"{rq['out_zp']}); /* to the concatenation's quantization */")
        lines.append(f"{indent}rnn_io_emit({k}, {base} + {offset}, {ptr}, {nbytes});")
        return lines

    def function(self, label: str, body: list[str], doc: str) -> None:
        idx = len(self.labels)
        self.labels.append(label)
        name = f"step_{idx:02d}"
        self.functions_add(f"/* {doc} */\nstatic void {name}(void) {{\n" + "\n".join(body) + "\n}\n")
        self.calls.append(f"    t = rnn_clock(); {name}(); rnn_ticks[{idx}] += rnn_clock() - t; /* {label} */")

    def functions_add(self, text: str) -> None:
        self.w.functions.append(text)

    # --- the schedule -------------------------------------------------------------------------
    def build(self, schedule: str) -> None:
        ops = self.q.ops
        start = 0
        if self.stem is not None:
            self.gen_stem()
            start = len(self.stem.ops)
        groups = mbconv_groups(ops, self.q.blocks) if schedule == "patch" else {}
        skip = {k for k, op in enumerate(ops) if isinstance(op, ConcatOp)}
        for members in _steps(len(ops), start, groups, skip):
            group = [ops[m] for m in members]
            if len(group) > 1:
                self.gen_mbconv(group)
            else:
                self.gen_op(group[0])

    def gen_stem(self) -> None:
        stem, q = self.stem, self.q
        gh, gw = stem.grid
        first = len(self.labels)
        labels = []
        if not self.count_input:
            labels.append("input crop (from the flash frame)")
        labels += [f"{op.name} ({op.kind}, stem)" for op in stem.ops]
        self.labels += labels
        body = [f"    for (int32_t pi = 0; pi < {gh}; pi++) {{", f"    for (int32_t pj = 0; pj < {gw}; pj++) {{",
                "        uint32_t t = rnn_clock(), t1;"]
        tick = lambda k: [f"        t1 = rnn_clock(); rnn_ticks[{first + k}] += t1 - t; t = t1;"]  # noqa: E731
        views: dict[str, str] = {}  # tensor -> C expression of an rnn_view on its crop / map
        slot = 0

        def region(key: str) -> tuple[str, str, int, int]:
            (ah, bh, lh), (aw, bw, lw) = stem.regions[key]
            return f"{ah} * pi + {bh}", f"{aw} * pj + {bw}", lh, lw

        inp = q.input_name
        h, w, c = self.hwc(inp)
        if self.count_input:
            views[inp] = f"{{{self.buf(inp)}, {h}, {w}, {c}, 0, 0, {h}, {w}, {self.zp[inp]}}}"
        else:
            r0, c0, lh, lw = region(inp)
            crop = self.buf(f"{inp} crop")
            body += ["        /* the input crop of patch (pi, pj), zero point outside the frame */",
                     f"        {{ const rnn_view src = {{rnn_frame, {h}, {w}, {c}, 0, 0, {h}, {w}, {self.zp[inp]}}};",
                     f"          const rnn_region dst = {{{crop}, {lh}, {lw}, {c}, {r0}, {c0}, {h}, {w}, {self.zp[inp]}}};",
                     "          rnn_copy_crop(&src, &dst); }"]
            body += tick(slot)
            slot += 1
            views[inp] = f"{{{crop}, {lh}, {lw}, {c}, {r0}, {c0}, {h}, {w}, {self.zp[inp]}}}"
        for k, op in enumerate(stem.ops):
            key = Stem.key(op)
            src = op.inputs[0]
            body.append(f"        /* {op.name}: {op.kind} ({op.module}) */")
            body.append(f"        {{ const rnn_view in = {views[src]};")
            r0, c0, lh, lw = region(key)
            if isinstance(op, HeadOp):
                body += self.stem_head(op, r0, c0, lh, lw)
            elif isinstance(op, RNNPoolOp):
                p = self.w.rnnpool(op)
                ho, wo, co = self.hwc(op.outputs[0])
                scratch = self.buffers[f"{op.name} scratch"]
                need = _rnnpool_scratch(op)
                assert need <= scratch[1], (need, scratch)
                if key in stem.terminals:
                    body += [f"          if (pi < {ho} && pj < {wo})",
                             f"            rnn_rnnpool_patch(&{p}, &in, pi, pj, {self.buf(op.name + ' scratch')}, "
                             f"{self.buf(op.outputs[0])} + (pi * {wo} + pj) * {co});"]
                if f"{op.outputs[0]} crop" in self.buffers:
                    raise UnsupportedError(f"layer {op.module!r}: an RNNPool read by later stem ops is not exported")
            else:
                out = op.outputs[0]
                oh, ow, oc = self.hwc(out)
                crop = f"{out} crop"
                if crop in self.buffers:
                    body += [f"          const rnn_region out = {{{self.buf(crop)}, {lh}, {lw}, {oc}, {r0}, {c0}, "
                             f"{oh}, {ow}, {self.zp[out]}}};"]
                    body += self.stem_compute(op, "out")
                    views[out] = f"{{{self.buf(crop)}, {lh}, {lw}, {oc}, {r0}, {c0}, {oh}, {ow}, {self.zp[out]}}}"
                if key in stem.terminals:  # this patch's tile of the whole map
                    (ah, bh, _), (aw, bw, _) = stem.regions[key]
                    body += [f"          for (int32_t y = {ah} * pi; y < {ah} * pi + {ah} && y < {oh}; y++) {{",
                             f"            const int32_t x0 = {aw} * pj, x1 = x0 + {aw} < {ow} ? x0 + {aw} : {ow};",
                             "            if (x0 >= x1) break;"]
                    dst = f"{self.buf(out)} + (y * {ow} + x0) * {oc}"
                    if crop in self.buffers:
                        body += [f"            const int8_t *s = {self.buf(crop)} + ((y - ({r0})) * {lw} + (x0 - ({c0}))) * {oc};",
                                 f"            for (int32_t i = 0; i < (x1 - x0) * {oc}; i++) ({dst})[i] = s[i];"]
                    else:
                        body += [f"            const rnn_region out = {{{dst}, 1, x1 - x0, {oc}, y, x0, {oh}, {ow}, "
                                 f"{self.zp[out]}}};"]
                        body += ["  " + line for line in self.stem_compute(op, "out")]
                    body.append("          }")
                    if out in self.emit_map:
                        raise UnsupportedError(f"layer {op.module!r}: a stem map that is a model output is not exported")
            body.append("        }")
            body += tick(slot)
            slot += 1
        body += ["    }", "    }"]
        idx = len(self.labels)
        self.labels.append(STEM_TOTAL)
        name = "step_stem"
        doc = (f"The stem ({' -> '.join(op.name for op in stem.ops)}), patch by patch over a {gh} x {gw} grid: "
               "each op on its crop of the patch's receptive field (m4.schedule.run_stem).")
        self.functions_add(f"/* {doc} */\nstatic void {name}(void) {{\n" + "\n".join(body) + "\n}\n")
        self.calls.append(f"    t = rnn_clock(); {name}(); rnn_ticks[{idx}] += rnn_clock() - t; /* stem, all patches */")

    def stem_compute(self, op: Op, out: str) -> list[str]:
        if isinstance(op, ConvOp):
            return [f"          rnn_conv(&{self.w.conv(op)}, &in, &{out});"]
        if isinstance(op, ClampOp):
            return [f"          rnn_copy_crop(&in, &{out});",
                    f"          rnn_clamp({out}.data, {out}.data, {out}.h * {out}.w * {out}.c, {op.lo}, {op.hi});"]
        raise UnsupportedError(f"layer {op.module or op.name!r} ({op.kind}) in the stem has no C kernel")

    def stem_head(self, op: HeadOp, r0: str, c0: str, lh: int, lw: int) -> list[str]:
        lines = []
        (hh, hw, _), = [self.hwc_map(op)]
        for conv, t, maxout in ((op.loc, op.outputs[0], 1), (op.conf, op.outputs[1], op.maxout)):
            p = self.w.conv(conv)
            k = self.shapes[t][2]
            tile = self.buf(f"{t} tile")
            lines += [f"          {{ /* {t}: this patch's tile of the {hh} x {hw} head map, sent out row by row */",
                      f"            const int32_t y0 = {r0}, x0 = {c0};",
                      f"            const int32_t rows = y0 + {lh} <= {hh} ? {lh} : {hh} - y0, "
                      f"cols = x0 + {lw} <= {hw} ? {lw} : {hw} - x0;",
                      "            if (rows > 0 && cols > 0) {",
                      f"              const rnn_region out = {{{tile}, rows, cols, {k}, y0, x0, {hh}, {hw}, 0}};",
                      f"              rnn_head_conv(&{p}, {maxout}, &in, &out);",
                      "              for (int32_t r = 0; r < rows; r++) {"]
            lines += self.emit_lines(t, f"{tile} + r * cols * {k}", f"cols * {k}", f"((y0 + r) * {hw} + x0) * {k}",
                                     "                ")
            lines += ["              }", "            }", "          }"]
        return lines

    def hwc_map(self, op: HeadOp) -> tuple[int, int, int]:
        (_, c, h, w), _ = op.map_shapes(self.shapes[op.inputs[0]])
        return h, w, c

    def gen_mbconv(self, group: list[Op]) -> None:
        convs = [op for op in group if isinstance(op, ConvOp)]
        add = next((op for op in group if isinstance(op, AddOp)), None)
        dw = next(op for op in convs if op.subkind == "depthwise")
        expand = convs[0] if convs[0] is not dw else None
        project = convs[-1]
        x = convs[0].inputs[0]
        ih, iw, ic = self.hwc(x)
        oh, ow, oc = self.hwc(project.outputs[0])
        mid = dw.w.shape[0]
        if dw.w.shape[0] != dw.groups or (expand is None and mid != ic):
            raise UnsupportedError(f"layer {dw.module!r}: a depthwise conv with a channel multiplier inside an "
                                   "inverted residual block is not exported")
        ep = self.w.conv(expand) if expand is not None else "0"
        dp, pp = self.w.conv(dw), self.w.conv(project)
        addp, x_first = "0", 0
        if add is not None:
            addp = self.w.ints(f"{add.name}_q", _add_params(add))
            x_first = int(add.inputs[0] == x)
        block = project.module.rsplit(".", 1)[0]
        name = _ident(f"{block}_mb")
        self.w.params.append(
            f"static const rnn_mbconv_params {name} = {{{'&' + ep if expand is not None else '0'}, &{dp}, &{pp}, "
            f"{addp}, {x_first}, {ih}, {iw}, {ic}, {mid}, {oh}, {ow}}};\n")
        ring = f"{expand.outputs[0]} (ring, {dw.w.shape[2]} rows)" if expand is not None else None
        row = f"{dw.outputs[0]} (1 row)"
        out = group[-1].outputs[0]
        body = [f"    rnn_mbconv_rows(&{name}, {self.whole(x)}, {self.buf(ring) if ring else '0'}, {self.buf(row)}, "
                f"{self.buf(out)});"]
        if out in self.emit_map:
            body += self.emit_lines(out, self.buf(out), str(_hwc_bytes(self.shapes[out])))
        parts = " -> ".join(f"{op.name} ({op.subkind if isinstance(op, ConvOp) else op.kind})" for op in group)
        self.function(f"MBConv {block}", body, f"Inverted residual block {block}: {parts}; one output row at a "
                      f"time, expansion rows in a ring of {dw.w.shape[2]} (m4.schedule.run_mbconv_rows).")

    def gen_op(self, op: Op) -> None:
        label = f"{op.name} ({op.kind})"
        doc = f"{op.name}: {op.kind}" + (f" ({op.module})" if op.module else "")
        body: list[str] = []
        if isinstance(op, FlattenOp):
            n = _hwc_bytes(self.shapes[op.inputs[0]])
            body = [f"    const int8_t *src = {self.whole(op.inputs[0])}; int8_t *dst = {self.buf(op.outputs[0])};",
                    f"    for (int32_t i = 0; i < {n}; i++) dst[i] = src[i];"]
        elif isinstance(op, ConvOp):
            out = op.outputs[0]
            oh, ow, oc = self.hwc(out)
            p = self.w.conv(op)
            if op.subkind == "pointwise" and op.stride == (1, 1) and not any(op.padding):
                ih, iw, ic = self.hwc(op.inputs[0])
                body = [f"    rnn_pointwise(&{p}, {self.whole(op.inputs[0])}, {ic}, {ih * iw}, {self.buf(out)});"]
            else:
                body = [f"    const rnn_view in = {self.view(op.inputs[0])};",
                        f"    const rnn_region out = {{{self.buf(out)}, {oh}, {ow}, {oc}, 0, 0, {oh}, {ow}, {self.zp[out]}}};",
                        f"    rnn_conv(&{p}, &in, &out);"]
        elif isinstance(op, HeadOp):
            hh, hw, _ = self.hwc_map(op)
            body = [f"    const rnn_view in = {self.view(op.inputs[0])};"]
            for conv, t, maxout in ((op.loc, op.outputs[0], 1), (op.conf, op.outputs[1], op.maxout)):
                k = self.shapes[t][2]
                body += [f"    {{ const rnn_region out = {{{self.buf(t)}, {hh}, {hw}, {k}, 0, 0, {hh}, {hw}, 0}};",
                         f"      rnn_head_conv(&{self.w.conv(conv)}, {maxout}, &in, &out); }}"]
                body += self.emit_lines(t, self.buf(t), str(hh * hw * k))
        elif isinstance(op, RNNPoolOp):
            p = self.w.rnnpool(op)
            ho, wo, co = self.hwc(op.outputs[0])
            need = _rnnpool_scratch(op)
            body = [f"    const rnn_view in = {self.view(op.inputs[0])};",
                    f"    uint32_t scratch[{(need + 3) // 4}]; /* on the stack: the planner has no scratch here */",
                    f"    for (int32_t i = 0; i < {ho}; i++)",
                    f"      for (int32_t j = 0; j < {wo}; j++)",
                    f"        rnn_rnnpool_patch(&{p}, &in, i, j, scratch, {self.buf(op.outputs[0])} + (i * {wo} + j) * {co});"]
        elif isinstance(op, AddOp):
            q = self.w.ints(f"{op.name}_q", _add_params(op))
            n = _hwc_bytes(self.shapes[op.outputs[0]])
            body = [f"    rnn_add({self.whole(op.inputs[0])}, {self.whole(op.inputs[1])}, {self.buf(op.outputs[0])}, {n}, {q});"]
        elif isinstance(op, ClampOp):
            n = _hwc_bytes(self.shapes[op.outputs[0]])
            body = [f"    rnn_clamp({self.whole(op.inputs[0])}, {self.buf(op.outputs[0])}, {n}, {op.lo}, {op.hi});"]
        elif isinstance(op, AvgPoolOp):
            h, w, c = self.hwc(op.inputs[0])
            body = [f"    rnn_avg_pool_global({self.whole(op.inputs[0])}, {self.buf(op.outputs[0])}, {h * w}, {c}, {op.zp});"]
        elif isinstance(op, LinearOp):
            p = _ident(op.name)
            wn = self.w.array("int8_t", f"{p}_w", op.w, f"{op.module or op.name}: linear {op.w.shape[1]} -> {op.w.shape[0]}")
            bn = self.w.array("int32_t", f"{p}_bias", op.bias)
            mn = self.w.array("int32_t", f"{p}_mult", op.mult)
            sn = self.w.array("int32_t", f"{p}_shift", op.shift)
            body = [f"    rnn_linear({self.whole(op.inputs[0])}, {op.w.shape[1]}, {wn}, {bn}, {mn}, {sn}, {op.w.shape[0]}, "
                    f"{op.in_zp}, {op.out_zp}, {op.act_min}, {op.act_max}, {self.buf(op.outputs[0])});"]
        else:  # pragma: no cover - _check_exportable refused it
            raise UnsupportedError(f"layer {op.module or op.name!r} ({op.kind}) has no C kernel")
        if not isinstance(op, HeadOp):
            for t in op.outputs:
                if t in self.emit_map:
                    body += self.emit_lines(t, self.buf(t), str(_hwc_bytes(self.shapes[t])))
        self.function(label, body, doc)

    def source(self, arena_bytes: int, shape: Shape) -> str:
        q = self.q
        frame = ""
        if not self.count_input:
            frame = "extern const int8_t rnn_frame[]; /* the int8 input frame in flash (frame.S) */\n"
        read = ""
        if self.count_input:
            read = (f"    if (rnn_io_read({self.buf(q.input_name)}, {_hwc_bytes(shape)})) return 2; "
                    "/* the frame, HWC int8, into the arena */\n")
        steps = len(self.labels)
        head = (f"/* Generated by rnnpool_lite.m4.export_c: {type(q).__name__} with {len(q.ops)} integer ops, input "
                f"{shape[1]}x{shape[2]}x{shape[3]} (C x H x W).\n"
                f" * arena: {arena_bytes} bytes, every buffer offset from the emulator's first-fit planner;\n"
                f" * frame: {'in the arena (SRAM)' if self.count_input else 'streamed from flash'}. */\n")
        plan = "\n".join(f" *   {off:7d} +{size:7d}  {name}" for name, (off, size) in
                         sorted(self.buffers.items(), key=lambda kv: (kv[1][0], kv[0])))
        return (head + '#include <stdint.h>\n#include "rnn_kernels.h"\n#include "rnn_platform.h"\n\n'
                + "/* ---- weights, biases, multipliers, shifts (flash) ---- */\n" + "\n".join(self.w.weights) + "\n"
                + "".join(self.w.params) + "\n"
                + f"/* ---- the arena (SRAM): offset, bytes, buffer ----\n{plan}\n */\n"
                + f"static uint8_t arena_bytes[{max(arena_bytes, 4)}] __attribute__((aligned(8)));\n"
                + "#define arena ((int8_t *)arena_bytes)\n" + frame
                + f"static uint32_t rnn_ticks[{steps + 2}]; /* clock ticks per step, total, stack bytes */\n\n"
                + "\n".join(self.w.functions) + "\n"
                + "int rnn_main(void) {\n    if (rnn_io_open()) return 1;\n" + read
                + "    uint32_t t, start = rnn_clock();\n" + "\n".join(self.calls) + "\n"
                + f"    rnn_ticks[{steps}] = rnn_clock() - start;\n"
                + f"    rnn_ticks[{steps + 1}] = rnn_stack_used();\n"
                + f"    rnn_io_emit(0x{STATS_ID:08X}u, 0, rnn_ticks, sizeof rnn_ticks);\n"
                + "    rnn_io_close();\n    return 0;\n}\n")


def _add_params(op: AddOp) -> list[int]:
    p = op.params
    return [p["a_zp"], p["b_zp"], p["a_mult"], p["a_shift"], p["b_mult"], p["b_shift"], p["out_mult"], p["out_shift"],
            p["out_zp"], p.get("act_min", -128), p.get("act_max", 127)]


def _rnnpool_scratch(op: RNNPoolOp) -> int:
    (kh, kw), h1, h2 = op.pool.kernel, op.pool.rnn1.w.shape[0], op.pool.rnn2.w.shape[0]
    return ((2 * ((kh + kw) * h1 + 4 * h2) + 3) & ~3) + 4 * max(h1, h2)


def write_input(project: CProject, x: np.ndarray) -> None:
    """Write the int8 frame ``x`` ``(1, C, H, W)`` as HWC bytes: ``input.bin`` (and ``frame.S`` when streamed)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.int8:
        raise TypeError(f"the frame must be an int8 numpy array, got {getattr(x, 'dtype', type(x).__name__)}")
    if tuple(x.shape) != tuple(project.input_shape):
        raise ValueError(f"the frame must have shape {tuple(project.input_shape)} (the exported input), got {tuple(x.shape)}")
    (project.out_dir / "input.bin").write_bytes(np.ascontiguousarray(x[0].transpose(1, 2, 0)).tobytes())
    frame = project.out_dir / "frame.S"
    if project.count_input:
        frame.unlink(missing_ok=True)
    else:
        frame.write_text('/* the int8 HWC input frame, streamed from flash */\n'
                         '    .section .frame, "a"\n    .balign 4\n    .global rnn_frame\nrnn_frame:\n'
                         '    .incbin "input.bin"\n')


def read_outputs(project: CProject, data: bytes) -> tuple[Any, np.ndarray]:
    """Parse ``output.bin``: the outputs (structured like ``run_int8``) and the stats words."""
    arrays = [np.zeros(int(np.prod(o["shape"])), dtype=np.int8) for o in project.outputs]
    filled = [np.zeros(a.size, dtype=bool) for a in arrays]
    stats = None
    pos = 0
    while pos < len(data):
        ident, offset, n = np.frombuffer(data, dtype="<u4", count=3, offset=pos)
        pos += 12
        chunk = data[pos:pos + int(n)]
        pos += int(n)
        if ident == STATS_ID:
            stats = np.frombuffer(chunk, dtype="<u4").copy()
            continue
        arrays[ident][offset:offset + n] = np.frombuffer(chunk, dtype=np.int8)
        filled[ident][offset:offset + n] = True
    for o, f in zip(project.outputs, filled):
        if not f.all():
            raise RuntimeError(f"the C program did not send all of output {o['name']!r} ({int((~f).sum())} bytes missing)")
    if stats is None:
        raise RuntimeError("the C program ended without its stats record")
    result = {}
    for o, a in zip(project.outputs, arrays):
        s = o["shape"]
        result[o["name"]] = a.reshape(s[0], s[2], s[3], s[1]).transpose(0, 3, 1, 2).copy() if o["layout"] == "hwc" \
            else a.reshape(s)

    def build(spec: Any) -> Any:
        return result[spec] if isinstance(spec, str) else tuple(build(s) for s in spec)

    return build(project.output_spec), stats


_MAKEFILE = """# Two builds of the same sources (rnnpool_lite.m4.toolchain runs the same commands).
SRC = model.c rnn_kernels.c
FRAME = $(wildcard frame.S)
DEFS = {smlad}

host: $(SRC) platform_host.c
\tcc -std=c99 -O2 $(DEFS) -o model_host $(SRC) platform_host.c $(FRAME)

m4: $(SRC) platform_m4.c m4.ld
\tarm-none-eabi-gcc -std=c99 -mcpu=cortex-m4 -mthumb -O2 -ffreestanding -nostdlib $(DEFS) -T m4.ld \\
\t    -o model_m4.elf $(SRC) platform_m4.c $(FRAME) -lgcc

run: m4
\tqemu-system-arm -machine mps2-an386 -nographic -monitor none -serial none \\
\t    -semihosting-config enable=on,target=native -icount shift=0,align=off,sleep=off -kernel model_m4.elf
"""

__all__ = ["CProject", "STATS_ID", "export_c", "read_outputs", "write_input"]
