"""The patch schedule's stem in C: one function looping over the patch grid, each stem op on
the crop of one patch (the C form of :func:`rnnpool_lite.m4.plan.run_stem`).

Per patch ``(pi, pj)``: the input crop is copied from the frame (or read in place when the frame
is in the arena), then each op writes its crop (``<map> crop`` buffers, read by the next op) and,
for a map used after the stem, the patch's tile of the whole map. Each op's lines come from its
``emit_c_stem``, given a :class:`StemStep`; each op's clock ticks are summed over the patches.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnnpool_lite.m4.c_source import CContext, window
from rnnpool_lite.m4.conversion import UnsupportedError
from rnnpool_lite.m4.plan import Stem

if TYPE_CHECKING:  # annotations only: the ops module annotates with StemStep in turn
    from rnnpool_lite.m4.ops.base import Op

INDENT = " " * 10  # inside the two patch loops and the op's block


@dataclass
class StemStep:
    """Where one stem op runs for patch ``(pi, pj)``: the C expressions of its region's first row
    and column, the region's rows and columns, the patch's tile of the map (``tile``, when the map
    is a ``terminal``: used after the stem), and the ``views`` of the crops written so far."""

    ctx: CContext
    row0: str
    col0: str
    length: tuple[int, int]
    tile: tuple[int, int]
    terminal: bool
    views: dict[str, str]

    def map_output(self, op: Op, compute: Callable[[str], list[str]]) -> list[str]:
        """Lines of an op whose output is a map (conv, clamp): ``compute(region)`` computes it from
        ``in`` into the ``rnn_region`` named ``region``; here into the op's crop and/or its tile."""
        ctx, out = self.ctx, op.outputs[0]
        oh, ow, oc = ctx.hwc(out)
        lh, lw = self.length
        crop, zp = f"{out} crop", ctx.zp[out]
        lines = []
        if crop in ctx.buffers:
            region = window(ctx.buf(crop), lh, lw, oc, row0=self.row0, col0=self.col0, map_h=oh, map_w=ow, zp=zp)
            lines += [f"const rnn_region out = {region};", *compute("out")]
            self.views[out] = region
        if self.terminal:
            lines += self._tile(op, compute, crop in ctx.buffers)
        return lines

    def _tile(self, op: Op, compute: Callable[[str], list[str]], from_crop: bool) -> list[str]:
        """The patch's tile of the whole map, row by row: copied from the crop, or computed."""
        ctx, out = self.ctx, op.outputs[0]
        oh, ow, oc = ctx.hwc(out)
        (ah, aw), lw = self.tile, self.length[1]
        dst = f"{ctx.buf(out)} + (y * {ow} + x0) * {oc}"
        lines = [f"for (int32_t y = {ah} * pi; y < {ah} * pi + {ah} && y < {oh}; y++) {{",
                 f"  const int32_t x0 = {aw} * pj, x1 = x0 + {aw} < {ow} ? x0 + {aw} : {ow};",
                 "  if (x0 >= x1) break;"]
        if from_crop:
            src = f"{ctx.buf(f'{out} crop')} + ((y - ({self.row0})) * {lw} + (x0 - ({self.col0}))) * {oc}"
            lines += [f"  const int8_t *s = {src};",
                      f"  for (int32_t i = 0; i < (x1 - x0) * {oc}; i++) ({dst})[i] = s[i];"]
        else:
            row = window(dst, 1, "x1 - x0", oc, row0="y", col0="x0", map_h=oh, map_w=ow, zp=ctx.zp[out])
            lines += [f"  const rnn_region out = {row};", *("  " + line for line in compute("out"))]
        lines.append("}")
        if out in ctx.sends:
            raise UnsupportedError(f"layer {op.module!r}: a stem map that is a model output is not exported")
        return lines


def stem_labels(stem: Stem, count_input: bool) -> list[str]:
    """The stem's timed parts, in the order of its ticks: the input crop, then each op."""
    labels = [] if count_input else ["input crop (from the flash frame)"]
    return labels + [f"{op.name} ({op.kind}, stem)" for op in stem.ops]


def _step(ctx: CContext, stem: Stem, key: str, terminal: bool, views: dict[str, str]) -> StemStep:
    (ah, bh, lh), (aw, bw, lw) = stem.regions[key]
    return StemStep(ctx, f"{ah} * pi + {bh}", f"{aw} * pj + {bw}", (lh, lw), (ah, aw), terminal, views)


def _input_crop(ctx: CContext, stem: Stem, views: dict[str, str]) -> list[str]:
    """Lines that bring the patch's input crop into the arena (none when the frame is there)."""
    inp = ctx.input_name
    h, w, c = ctx.hwc(inp)
    zp = ctx.zp[inp]
    if ctx.count_input:
        views[inp] = window(ctx.buf(inp), h, w, c, zp=zp)
        return []
    step = _step(ctx, stem, inp, False, views)
    lh, lw = step.length
    views[inp] = window(ctx.buf(f"{inp} crop"), lh, lw, c, row0=step.row0, col0=step.col0, map_h=h, map_w=w, zp=zp)
    return ["/* the input crop of patch (pi, pj), zero point outside the frame */",
            f"{{ const rnn_view src = {window('rnn_frame', h, w, c, zp=zp)};",
            f"  const rnn_region dst = {views[inp]};",
            "  rnn_copy_crop(&src, &dst); }"]


def stem_function(ctx: CContext, stem: Stem, first_tick: int) -> str:
    """``step_stem``: the patch loops; the ticks of each part go to ``rnn_ticks[first_tick + k]``."""
    gh, gw = stem.grid
    ticks = iter(range(first_tick, first_tick + len(stem_labels(stem, ctx.count_input))))
    views: dict[str, str] = {}

    def tick() -> str:
        return f"        t1 = rnn_clock(); rnn_ticks[{next(ticks)}] += t1 - t; t = t1;"

    body = [f"    for (int32_t pi = 0; pi < {gh}; pi++) {{", f"    for (int32_t pj = 0; pj < {gw}; pj++) {{",
            "        uint32_t t = rnn_clock(), t1;"]
    crop = _input_crop(ctx, stem, views)
    if crop:
        body += [" " * 8 + line for line in crop] + [tick()]
    for op in stem.ops:
        step = _step(ctx, stem, op.map_name, op.map_name in stem.terminals, views)
        body += [f"        /* {op.name}: {op.kind} ({op.module}) */",
                 f"        {{ const rnn_view in = {views[op.inputs[0]]};"]
        body += [INDENT + line for line in op.emit_c_stem(step)]
        body += ["        }", tick()]
    body += ["    }", "    }"]
    doc = (f"The stem ({' -> '.join(op.name for op in stem.ops)}), patch by patch over a {gh} x {gw} grid: "
           "each op on its crop of the patch's receptive field (m4.plan.run_stem).")
    return f"/* {doc} */\nstatic void step_stem(void) {{\n" + "\n".join(body) + "\n}\n"


__all__ = ["StemStep", "stem_function", "stem_labels"]
