"""C export of a :class:`QuantizedModel`: a self-contained C99 project for a Cortex-M4 (or the host).

``export_c(qmodel, out_dir, input_size)`` writes:

* the model-independent sources, copied from ``m4/c/``: ``rnn_kernels.{h,c}`` (the integer kernels
  of :mod:`.kernels`, :mod:`.fixed_point` and :mod:`.rnnpool_int`, operation for operation),
  ``rnn_platform.h`` with ``platform_host.c`` (stdio) and ``platform_m4.c`` (startup, semihosting,
  timer, stack painting), ``m4.ld`` (256 KB SRAM, 2 MB flash) and a ``Makefile``;
* ``model.c``: the weights, biases, multipliers and shifts as ``static const`` arrays (flash), one
  ``static uint8_t arena[N]`` whose size and every buffer offset come from the emulator's planner
  (:func:`.plan.simulate_arena`), and one function per step of the schedule, commented with
  the layer it runs;
* ``frame.S`` when the frame is streamed (``count_input=False``): the int8 image ``.incbin``-ed
  into flash; with ``count_input=True`` the frame is read into the arena over semihosting.

The C code runs the emulator's schedule: under ``"patch"`` the stem (every op up to the first
RNNPool) patch by patch on crops (:mod:`.c_stem`), then the rest op by op, inverted residual
blocks row by row through a ring buffer. Each op writes its own step (``Op.emit_c``, with the
helpers of :mod:`.c_source`); every struct is filled by field name. Maps are HWC in C (NCHW in
numpy); outputs go back as records ``(tensor id, byte offset, bytes)`` and :func:`read_outputs`
rebuilds them in numpy's layout.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnpool_lite.m4.arena import Arena
from rnnpool_lite.m4.c_source import CContext, CWriter, Requant, hwc_bytes, ident
from rnnpool_lite.m4.c_stem import stem_function, stem_labels
from rnnpool_lite.m4.conversion import UnsupportedError
from rnnpool_lite.m4.model import QuantizedModel
from rnnpool_lite.m4.ops.base import Op, Shape
from rnnpool_lite.m4.plan import (
    Schedule,
    Stem,
    check_schedule,
    find_stem,
    infer_shapes,
    mbconv_groups,
    mbconv_parts,
    schedule_steps,
    sent_tensors,
    simulate_arena,
)
from rnnpool_lite.m4.toolchain import Kernels, check_kernels, kernel_defines

C_SOURCES = ("rnn_kernels.c", "rnn_kernels.h", "rnn_platform.h", "platform_host.c", "platform_m4.c", "m4.ld")
STEM_TOTAL = "stem (all patches, total)"  # the stem's own step; its ops' steps are parts of it
STATS_ID = 0xFFFFFFF0  # output record holding the per-step clock ticks, the total and the stack
Layout = Literal["flat", "hwc"]


@dataclass
class CProject:
    """What :func:`export_c` wrote: where, the arena plan, the steps and how to read the outputs."""

    out_dir: Path
    input_shape: tuple[int, int, int, int]
    count_input: bool
    arena_bytes: int
    buffers: dict[str, tuple[int, int]]  # planner buffer -> (offset, bytes)
    steps: list[str]  # labels of the timed steps, in the order of the stats record
    outputs: list[dict[str, Any]]  # per model output: name, shape, layout (a Layout)
    output_spec: Any
    weight_bytes: int
    kernels: Kernels = "optimized"
    sources: list[str] = field(default_factory=list)


def _check_input_channels(qmodel: QuantizedModel, shape: Shape) -> None:
    for op in qmodel.ops:
        want = op.in_channels if qmodel.input_name in op.inputs else None
        if want is not None and shape[1] != want:
            raise ValueError(f"the input has {shape[1]} channels; the model's first layer {op.module or op.name!r} "
                             f"expects {want} channels")


def _frame_shape(input_size: tuple[int, ...]) -> tuple[int, int, int, int]:
    shape = tuple(input_size)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[0] != 1 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError("input_size must be (C, H, W) or (1, C, H, W) of positive ints (one frame), "
                         f"got {input_size!r}")
    n, c, h, w = shape
    return n, c, h, w


def _buffers(arena: Arena) -> dict[str, tuple[int, int]]:
    """Each planner buffer's ``(offset, bytes)``: the C program uses the emulator's plan as is."""
    buffers: dict[str, tuple[int, int]] = {}
    for ev in arena.timeline.itertuples(index=False):
        if ev.event == "alloc":
            if ev.buffer in buffers:
                raise AssertionError(f"planner buffer {ev.buffer!r} allocated twice")
            buffers[str(ev.buffer)] = (int(ev.offset), int(ev.bytes))
    return buffers


def _sends(ops: list[Op], out_names: list[str], shapes: dict[str, Shape]
           ) -> tuple[dict[str, tuple[int, int, Requant | None]], list[dict[str, Any]]]:
    """Where each tensor sent out goes (output id, base byte offset, requantization) and the outputs."""
    sends: dict[str, tuple[int, int, Requant | None]] = {}
    out_info = []
    for k, name in enumerate(out_names):
        s = shapes[name]
        layout: Layout = "hwc" if len(s) == 4 else "flat"
        out_info.append(dict(name=name, shape=list(s), layout=layout))
        producer = next(op for op in ops if name in op.outputs)
        base = 0
        for t, rq in producer.output_sources(name):
            sends[t] = (k, base, rq)
            base += hwc_bytes(shapes[t])
    return sends, out_info


def export_c(qmodel: QuantizedModel, out_dir: str | Path, input_size: tuple[int, ...], schedule: Schedule = "patch",
             *, count_input: bool = False, kernels: Kernels = "optimized") -> CProject:
    """Write the C project for ``qmodel`` on one input of ``input_size`` ``(C, H, W)`` / ``(1, C, H, W)``.

    ``count_input``: the frame lives in the SRAM arena (read over semihosting), as in the
    emulator's ``report(count_input=True)``; otherwise it streams from flash (``frame.S``, written
    by :func:`write_input`). ``kernels``: ``"optimized"`` (CMSIS-NN's techniques, ``SMLAD`` on the
    Cortex-M4; bit-exact, integer sums in another order) or ``"reference"``, the plain loops that
    mirror the emulator (``-DRNN_KERNELS_REFERENCE``).
    """
    if not isinstance(qmodel, QuantizedModel):
        raise TypeError(f"qmodel must be a QuantizedModel (from m4.quantize), got {type(qmodel).__name__}")
    schedule = check_schedule(schedule)
    kernels = check_kernels(kernels)
    shape = _frame_shape(input_size)
    ops = qmodel.ops
    _check_input_channels(qmodel, shape)
    shapes = infer_shapes(ops, qmodel.input_name, shape)
    out_names = qmodel.output_tensors
    outputs = set(out_names)
    results = sent_tensors(ops, outputs)
    for op in ops:
        op.check_c(shapes, results, outputs)
    stem = find_stem(ops, outputs, shapes) if schedule == "patch" else None
    arena = simulate_arena(ops, qmodel.input_name, shapes, outputs, schedule, stem, qmodel.blocks, count_input, False)
    buffers = _buffers(arena)
    sends, out_info = _sends(ops, out_names, shapes)
    zp = {t: q.zero_point for t, q in qmodel.qparams.items()}
    program = Program(CContext(qmodel.input_name, shapes, buffers, sends, zp, count_input))
    program.build(qmodel, schedule, stem)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = resources.files("rnnpool_lite.m4") / "c"
    for fname in C_SOURCES:
        (out_dir / fname).write_text((src / fname).read_text())
    (out_dir / "model.c").write_text(program.source(qmodel, arena.peak, shape))
    (out_dir / "Makefile").write_text(_MAKEFILE.format(defines=" ".join(kernel_defines(kernels))))
    weight_bytes = program.writer.weight_bytes
    project = CProject(out_dir, shape, count_input, int(arena.peak), buffers, program.labels, out_info,
                       qmodel.output_spec, weight_bytes, kernels, list(C_SOURCES) + ["model.c"])
    meta = dict(input_shape=list(shape), count_input=count_input, arena_bytes=int(arena.peak), steps=program.labels,
                outputs=out_info, weight_bytes=weight_bytes, kernels=kernels)
    (out_dir / "project.json").write_text(json.dumps(meta, indent=1))
    return project


class Program:
    """The step functions of model.c in schedule order, their labels, and ``rnn_main``."""

    def __init__(self, ctx: CContext) -> None:
        self.ctx = ctx
        self.labels: list[str] = []
        self.calls: list[str] = []
        self.functions: list[str] = []

    @property
    def writer(self) -> CWriter:
        return self.ctx.writer

    def step(self, label: str, body: list[str], doc: str) -> None:
        """One timed step function ``step_NN``."""
        idx = len(self.labels)
        self.labels.append(label)
        name = f"step_{idx:02d}"
        self.functions.append(f"/* {doc} */\nstatic void {name}(void) {{\n" + "\n".join(body) + "\n}\n")
        self.calls.append(f"    t = rnn_clock(); {name}(); rnn_ticks[{idx}] += rnn_clock() - t; /* {label} */")

    def build(self, qmodel: QuantizedModel, schedule: Schedule, stem: Stem | None) -> None:
        ops = qmodel.ops
        start = 0
        if stem is not None:
            self.add_stem(stem)
            start = len(stem.ops)
        groups = mbconv_groups(ops, qmodel.blocks) if schedule == "patch" else {}
        joins = {k for k, op in enumerate(ops) if op.joins_outputs}  # done as their parts are sent
        for members in schedule_steps(len(ops), start, groups, joins):
            group = [ops[m] for m in members]
            if len(group) > 1:
                self.add_mbconv(group)
            else:
                self.add_op(group[0])

    def add_stem(self, stem: Stem) -> None:
        """The stem's function; its parts' labels come first, then its total."""
        first = len(self.labels)
        self.labels += stem_labels(stem, self.ctx.count_input)
        self.functions.append(stem_function(self.ctx, stem, first))
        idx = len(self.labels)
        self.labels.append(STEM_TOTAL)
        self.calls.append(f"    t = rnn_clock(); step_stem(); rnn_ticks[{idx}] += rnn_clock() - t; "
                          "/* stem, all patches */")

    def add_op(self, op: Op) -> None:
        """The op's own step, then whatever of its outputs goes out and was not sent yet."""
        ctx = self.ctx
        body = op.emit_c(ctx)
        for t in op.outputs:
            if t in ctx.sends and t not in ctx.sent:
                body += ctx.send(t, ctx.buf(t), str(ctx.nbytes(t)))
        doc = f"{op.name}: {op.kind}" + (f" ({op.module})" if op.module else "")
        self.step(f"{op.name} ({op.kind})", body, doc)

    def add_mbconv(self, group: list[Op]) -> None:
        """An inverted residual block, one output row at a time (``rnn_mbconv_rows``)."""
        ctx = self.ctx
        convs, add, dw = mbconv_parts(group)
        expand, project = (convs[0] if convs[0] is not dw else None), convs[-1]
        x = convs[0].inputs[0]
        ih, iw, ic = ctx.hwc(x)
        oh, ow, _ = ctx.hwc(project.outputs[0])
        mid = dw.w.shape[0]
        if dw.w.shape[0] != dw.groups or (expand is None and mid != ic):
            raise UnsupportedError(f"layer {dw.module!r}: a depthwise conv with a channel multiplier inside an "
                                   "inverted residual block is not exported")
        ep = f"&{expand.c_params(ctx)}" if expand is not None else "0"
        dp, pp = dw.c_params(ctx), project.c_params(ctx)
        addp = add.c_params(ctx) if add is not None else "0"
        x_first = int(add.inputs[0] == x) if add is not None else 0
        block = project.module.rsplit(".", 1)[0]
        name = self.writer.struct("rnn_mbconv_params", ident(f"{block}_mb"), dict(
            expand=ep, dw=f"&{dp}", project=f"&{pp}", add=addp, add_x_first=x_first, in_h=ih, in_w=iw, in_c=ic,
            mid_c=mid, out_h=oh, out_w=ow))
        k = dw.w.shape[2]
        ring = ctx.buf(f"{expand.outputs[0]} (ring, {k} rows)") if expand is not None else "0"
        out = group[-1].outputs[0]
        body = [f"    rnn_mbconv_rows(&{name}, {ctx.whole(x)}, {ring}, {ctx.buf(f'{dw.outputs[0]} (1 row)')}, "
                f"{ctx.buf(out)});"]
        if out in ctx.sends:
            body += ctx.send(out, ctx.buf(out), str(ctx.nbytes(out)))
        parts = " -> ".join([f"{c.name} ({c.subkind})" for c in convs] + ([f"{add.name} ({add.kind})"] if add else []))
        self.step(f"MBConv {block}", body, f"Inverted residual block {block}: {parts}; one output row at a "
                  f"time, expansion rows in a ring of {k} (m4.plan.run_mbconv_rows).")

    def source(self, qmodel: QuantizedModel, arena_bytes: int, shape: Shape) -> str:
        ctx, count_input = self.ctx, self.ctx.count_input
        frame = "" if count_input else ("extern const int8_t rnn_frame[]; "
                                        "/* the int8 input frame in flash (frame.S) */\n")
        read = ""
        if count_input:
            read = (f"    if (rnn_io_read({ctx.buf(qmodel.input_name)}, {hwc_bytes(shape)})) return 2; "
                    "/* the frame, HWC int8, into the arena */\n")
        steps = len(self.labels)
        head = (f"/* Generated by rnnpool_lite.m4.export_c: {type(qmodel).__name__} with {len(qmodel.ops)} integer "
                f"ops, input {shape[1]}x{shape[2]}x{shape[3]} (C x H x W).\n"
                f" * arena: {arena_bytes} bytes, every buffer offset from the emulator's first-fit planner;\n"
                f" * frame: {'in the arena (SRAM)' if count_input else 'streamed from flash'}. */\n")
        plan = "\n".join(f" *   {off:7d} +{size:7d}  {name}" for name, (off, size) in
                         sorted(ctx.buffers.items(), key=lambda kv: (kv[1][0], kv[0])))
        return (head + '#include <stdint.h>\n#include "rnn_kernels.h"\n#include "rnn_platform.h"\n\n'
                + "/* ---- weights, biases, multipliers, shifts (flash) ---- */\n" + "\n".join(self.writer.weights)
                + "\n" + "".join(self.writer.params) + "\n"
                + f"/* ---- the arena (SRAM): offset, bytes, buffer ----\n{plan}\n */\n"
                + f"static uint8_t arena_bytes[{max(arena_bytes, 4)}] __attribute__((aligned(8)));\n"
                + "#define arena ((int8_t *)arena_bytes)\n" + frame
                + f"static uint32_t rnn_ticks[{steps + 2}]; /* clock ticks per step, total, stack bytes */\n\n"
                + "\n".join(self.functions) + "\n"
                + "int rnn_main(void) {\n    if (rnn_io_open()) return 1;\n" + read
                + "    uint32_t t, start = rnn_clock();\n" + "\n".join(self.calls) + "\n"
                + f"    rnn_ticks[{steps}] = rnn_clock() - start;\n"
                + f"    rnn_ticks[{steps + 1}] = rnn_stack_used();\n"
                + f"    rnn_io_emit(0x{STATS_ID:08X}u, 0, rnn_ticks, sizeof rnn_ticks);\n"
                + "    rnn_io_close();\n    return 0;\n}\n")


def write_input(project: CProject, x: np.ndarray) -> None:
    """Write the int8 frame ``x`` ``(1, C, H, W)`` as HWC bytes: ``input.bin`` (and ``frame.S`` when streamed)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.int8:
        raise TypeError(f"the frame must be an int8 numpy array, got {getattr(x, 'dtype', type(x).__name__)}")
    if tuple(x.shape) != tuple(project.input_shape):
        raise ValueError(f"the frame must have shape {tuple(project.input_shape)} (the exported input), "
                         f"got {tuple(x.shape)}")
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
            raise RuntimeError(f"the C program did not send all of output {o['name']!r} "
                               f"({int((~f).sum())} bytes missing)")
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
DEFS = {defines}

host: $(SRC) platform_host.c
\tcc -std=c99 -O2 $(DEFS) -o model_host $(SRC) platform_host.c $(FRAME)

m4: $(SRC) platform_m4.c m4.ld
\tarm-none-eabi-gcc -std=c99 -mcpu=cortex-m4 -mthumb -O2 -fno-schedule-insns -ffreestanding -nostdlib $(DEFS) \\
\t    -T m4.ld \\
\t    -o model_m4.elf $(SRC) platform_m4.c $(FRAME) -lgcc

run: m4
\tqemu-system-arm -machine mps2-an386 -nographic -monitor none -serial none \\
\t    -semihosting-config enable=on,target=native -icount shift=0,align=off,sleep=off -kernel model_m4.elf
"""

__all__ = ["CProject", "STATS_ID", "STEM_TOTAL", "export_c", "read_outputs", "write_input"]
