"""Execution orders: ``"layer"`` (op by op, whole tensors) and ``"patch"`` (the paper's).

``"patch"``: the *stem* - every op up to and including the first RNNPool, which must all be
sliding windows (convs, clamps, detection heads, the RNNPool) - is computed one RNNPool output
patch at a time from the receptive-field crop of the input, so the large early maps never
exist whole. For each patch ``(i, j)`` every stem tensor is needed on a region
``[a i + b, a i + b + L)`` (per axis), found by walking the stem backwards from its *terminals*
(tensors used after the stem: the RNNPool output, one value per patch, and e.g. a detection
head's output, a tile of (RNNPool stride / map stride) positions per patch; the patch grid grows
past the RNNPool's output when the tiles need it to cover a map). Each op runs on its input crop with no padding;
positions of a crop that lie outside the real map are set to the map's zero point, which is
exactly the zero padding the next op would apply, so the patch results equal the whole-map
results bit for bit. Overlaps between patches are recomputed (the executed MACs say how much).
After the stem, ops run layer by layer; an inverted residual block (MBConv) is executed as the
paper's RAM convention assumes: its 1x1 expansion is produced row by row into a ring buffer of
``k`` rows feeding the depthwise conv, whose output row is projected at once, so the block
needs its input, its output and a few rows of scratch.

The numpy execution of the stem vectorizes: all patches run in one batched call per op (the
patches are independent, so the values are those of a patch-by-patch loop); MBConv blocks do run
row by row (:func:`run_mbconv_rows`). The SRAM arena (:mod:`.arena`) is simulated for the real
order: the stem for one patch (every patch allocates and frees the same buffers; border patches
use smaller crops), then each block with its ring buffer.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rnnpool_lite.m4.arena import Arena
from rnnpool_lite.m4.kernels import pad
from rnnpool_lite.m4.ops.add import AddOp
from rnnpool_lite.m4.ops.base import Op, Shape, Window
from rnnpool_lite.m4.ops.conv import ConvOp

Schedule = Literal["layer", "patch"]
SCHEDULES: tuple[Schedule, ...] = get_args(Schedule)
Region = tuple[int, int, int]  # a, b, L along one axis: patch i needs [a i + b, a i + b + L)


def check_schedule(schedule: object) -> Schedule:
    """``schedule`` as a :data:`Schedule`, or a ``ValueError`` naming the choices."""
    for choice in SCHEDULES:
        if schedule == choice:
            return choice
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def infer_shapes(ops: list[Op], input_name: str, input_shape: Shape) -> dict[str, Shape]:
    """Shape of every tensor for an input of ``input_shape``."""
    shapes = {input_name: tuple(input_shape)}
    for op in ops:
        for name, shape in zip(op.outputs, op.out_shapes(*(shapes[i] for i in op.inputs))):
            shapes[name] = tuple(shape)
    return shapes


def _union(regions: list[Region], where: str) -> Region:
    if len({a for a, _, _ in regions}) != 1:
        raise ValueError(f"patch schedule: {where} is read with different strides per patch; it cannot be tiled")
    a = regions[0][0]
    start = min(b for _, b, _ in regions)
    end = max(b + length for _, b, length in regions)
    return a, start, end - start


@dataclass
class Stem:
    """The stem of a model for one input size: its ops, regions, terminals and the patch grid."""

    ops: list[Op]
    grid: tuple[int, int]
    regions: dict[str, tuple[Region, Region]] = field(default_factory=dict)  # tensor or head map -> (rows, cols)
    terminals: set[str] = field(default_factory=set)  # maps (``Op.map_name``) used after the stem


def find_stem(ops: list[Op], output_tensors: set[str], shapes: dict[str, Shape]) -> Stem | None:
    """The ops up to the first RNNPool with their per-patch regions (``None`` without an RNNPool)."""
    first = next((k for k, op in enumerate(ops) if op.ends_stem), None)
    if first is None:
        return None
    stem_ops = ops[: first + 1]
    windows = {op.name: _window(op) for op in stem_ops}  # every stem op is a sliding window
    produced = {t for op in stem_ops for t in op.outputs}
    later = {t for op in ops[first + 1:] for t in op.inputs} | output_tensors
    # Each stem map's stride w.r.t. the input; a terminal's tile per patch is the RNNPool's
    # stride over the map's (so all patches advance by the same step in every map), and the
    # patch grid grows until the tiles cover every terminal (extra patches compute padding only).
    stride: dict[str, tuple[int, int]] = {}
    for op in stem_ops:
        in_stride = stride.get(op.inputs[0], (1, 1))
        stride[op.map_name] = (in_stride[0] * windows[op.name][2], in_stride[1] * windows[op.name][3])
    pool_stride = stride[stem_ops[-1].map_name]
    tiles: dict[str, tuple[int, int]] = {}
    grid = list(shapes[stem_ops[-1].outputs[0]][2:])
    for op in stem_ops:
        key = op.map_name
        if not (any(t in later for t in op.outputs) or op.internal_maps):
            continue
        s_map = stride[key]
        if pool_stride[0] % s_map[0] or pool_stride[1] % s_map[1]:
            raise ValueError(f"patch schedule: the stride of {op.name!r} ({s_map}) does not divide the RNNPool's "
                             f"({pool_stride}); its output cannot be tiled by RNNPool patches")
        tiles[key] = (pool_stride[0] // s_map[0], pool_stride[1] // s_map[1])
        size = op.map_shapes(shapes[op.inputs[0]])[0][2:]
        grid = [max(grid[0], math.ceil(size[0] / tiles[key][0])), max(grid[1], math.ceil(size[1] / tiles[key][1]))]
    stem = Stem(stem_ops, (grid[0], grid[1]))
    needs: dict[str, list[tuple[Region, Region]]] = {}
    for op in reversed(stem_ops):
        key = op.map_name
        wanted = list(needs.get(key, []))
        if key in tiles:
            stem.terminals.add(key)
            th, tw = tiles[key]
            wanted.append(((th, 0, th), (tw, 0, tw)))
        if not wanted:
            continue
        rows = _union([r for r, _ in wanted], op.name)
        cols = _union([c for _, c in wanted], op.name)
        stem.regions[key] = (rows, cols)
        kh, kw, sh, sw, ph, pw = windows[op.name]
        src = op.inputs[0]
        needs.setdefault(src, []).append(((rows[0] * sh, rows[1] * sh - ph, (rows[2] - 1) * sh + kh),
                                          (cols[0] * sw, cols[1] * sw - pw, (cols[2] - 1) * sw + kw)))
    for src, wanted in needs.items():
        if src not in produced:
            stem.regions[src] = (_union([r for r, _ in wanted], src), _union([c for _, c in wanted], src))
    return stem


def _window(op: Op) -> Window:
    if op.window is None:
        raise ValueError(f"patch schedule: op {op.name!r} ({op.kind}) before the first RNNPool is not a "
                         "sliding window and cannot run patch by patch")
    return op.window


def _crops(x: np.ndarray, region: tuple[Region, Region], grid: tuple[int, int], zp: int) -> np.ndarray:
    """All patches' crops of a whole map: ``(N * gh * gw, C, Lh, Lw)``, outside = ``zp``."""
    (ah, bh, lh), (aw, bw, lw) = region
    gh, gw = grid
    n, c, h, w = x.shape
    top, left = max(0, -bh), max(0, -bw)
    bottom = max(0, ah * (gh - 1) + bh + lh - h)
    right = max(0, aw * (gw - 1) + bw + lw - w)
    xp = pad(x, (top, bottom, left, right), zp)
    xp = xp[:, :, bh + top:, bw + left:]
    win = sliding_window_view(xp, (lh, lw), axis=(2, 3))[:, :, ::ah, ::aw][:, :, :gh, :gw]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * gh * gw, c, lh, lw)


def _mask_outside(y: np.ndarray, region: tuple[Region, Region], grid: tuple[int, int], size: tuple[int, int],
                  zp: int) -> np.ndarray:
    """Set crop positions that fall outside the real ``size`` map to ``zp`` (its zero padding)."""
    (ah, bh, lh), (aw, bw, lw) = region
    gh, gw = grid
    rows = ah * np.arange(gh)[:, None] + bh + np.arange(lh)[None, :]
    cols = aw * np.arange(gw)[:, None] + bw + np.arange(lw)[None, :]
    ok_r, ok_c = (rows >= 0) & (rows < size[0]), (cols >= 0) & (cols < size[1])
    if ok_r.all() and ok_c.all():
        return y
    ok = ok_r[:, None, :, None] & ok_c[None, :, None, :]  # (gh, gw, lh, lw)
    y = y.reshape(-1, gh, gw, y.shape[1], lh, lw)
    y = np.where(ok[None, :, :, None], y, np.int8(zp))
    return y.reshape(-1, y.shape[3], lh, lw)


def _assemble(y: np.ndarray, region: tuple[Region, Region], grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Tiles ``(N * gh * gw, C, Lh, Lw)`` back into the whole ``(N, C, H, W)`` map."""
    (ah, bh, _), (aw, bw, _) = region
    gh, gw = grid
    tiles = y[:, :, -bh: -bh + ah, -bw: -bw + aw]
    c = tiles.shape[1]
    whole = tiles.reshape(-1, gh, gw, c, ah, aw).transpose(0, 3, 1, 4, 2, 5).reshape(-1, c, gh * ah, gw * aw)
    return np.ascontiguousarray(whole[:, :, : size[0], : size[1]])


def run_stem(stem: Stem, x: np.ndarray, input_name: str, zero_points: dict[str, int],
             shapes: dict[str, Shape]) -> dict[str, np.ndarray]:
    """Run the stem patch by patch (all patches batched): the terminal tensors, whole."""
    crops = {input_name: _crops(x, stem.regions[input_name], stem.grid, zero_points[input_name])}
    env: dict[str, np.ndarray] = {}
    for op in stem.ops:
        src = op.inputs[0]
        (ih, jh), key = stem.regions[src], op.map_name
        (oh, ow) = stem.regions[key]
        kh, kw, sh, sw, ph, pw = _window(op)
        r0, c0 = oh[1] * sh - ph - ih[1], ow[1] * sw - pw - jh[1]
        maps = op.run_window(crops[src][:, :, r0: r0 + (oh[2] - 1) * sh + kh, c0: c0 + (ow[2] - 1) * sw + kw])
        h, w = op.map_shapes(shapes[src])[0][2:]
        if not op.internal_maps:  # a map the next stem ops read: positions off the map are padding
            out = op.outputs[0]
            crops[out] = _mask_outside(maps[0], (oh, ow), stem.grid, (h, w), zero_points[out])
            maps = (crops[out],)
        if key in stem.terminals:
            env.update(zip(op.outputs, op.finish(*(_assemble(m, (oh, ow), stem.grid, (h, w)) for m in maps))))
    return env


def mbconv_groups(ops: list[Op], blocks: list[str]) -> dict[int, list[int]]:
    """Op indices of each inverted residual block, keyed by its first op's index.

    A block's ops are the convs whose module lies under the block (expand, depthwise, project)
    and the add that sums the block's input with the projection.
    """
    groups: dict[int, list[int]] = {}
    for block in blocks:
        members = [k for k, op in enumerate(ops) if isinstance(op, ConvOp) and op.module.startswith(block + ".")]
        if not members:
            continue
        last_out, block_in = ops[members[-1]].outputs[0], ops[members[0]].inputs[0]
        for k in range(members[-1] + 1, len(ops)):
            if isinstance(ops[k], AddOp) and set(ops[k].inputs) == {last_out, block_in}:
                members.append(k)
                break
        inside = {t for k in members for t in ops[k].outputs[:1]} - {ops[members[-1]].outputs[0]}
        readers = {k for k, op in enumerate(ops) if inside & set(op.inputs)}
        if readers <= set(members):  # the expanded / depthwise maps never leave the block
            groups[members[0]] = members
    return groups


def mbconv_parts(group: list[Op]) -> tuple[list[ConvOp], AddOp | None, ConvOp]:
    """An MBConv group's convs (expand, depthwise, project), its add (if any) and its depthwise conv."""
    convs = [op for op in group if isinstance(op, ConvOp)]
    add = next((op for op in group if isinstance(op, AddOp)), None)
    dw = next(op for op in convs if op.subkind == "depthwise")
    return convs, add, dw


def run_mbconv_rows(group: list[Op], env: dict[str, np.ndarray]) -> np.ndarray:
    """One inverted residual block, one output row at a time (the patch schedule's order).

    The 1x1 expansion of each input row is computed once, when the depthwise conv first needs it,
    into a ring of ``k`` rows; rows above / below the map are the expanded map's zero point (the
    depthwise conv's padding). Each depthwise output row is projected (and added to the block's
    input row) at once. Same kernels, same integer arithmetic per value as the whole-map ops.
    """
    convs, add, dw = mbconv_parts(group)
    expand = convs[0] if convs[0] is not dw else None
    project = convs[-1]
    x = env[convs[0].inputs[0]]
    n, _, h, _ = x.shape
    kh, sh = dw.w.shape[2], dw.stride[0]
    top, bottom, left, right = dw.padding
    rows_out = (h + top + bottom - kh) // sh + 1
    ring: dict[int, np.ndarray] = {}
    out = []
    for r in range(rows_out):
        first = r * sh - top
        for i in [i for i in ring if i < first]:  # rows no longer needed leave the ring
            del ring[i]
        window = []
        for i in range(first, first + kh):
            if i not in ring:
                if 0 <= i < h:
                    ring[i] = expand.conv(x[:, :, i: i + 1]) if expand is not None else x[:, :, i: i + 1]
                else:
                    ring[i] = np.full((n, dw.w.shape[0], 1, x.shape[3]), dw.in_zp, dtype=np.int8)
            window.append(ring[i])
        row = project.conv(dw.conv(np.concatenate(window, axis=2), (0, 0, left, right)))
        if add is not None:
            rows = {project.outputs[0]: row, convs[0].inputs[0]: x[:, :, r: r + 1]}
            row = add.run(*(rows[t] for t in add.inputs))[0]
        out.append(row)
    return np.concatenate(out, axis=2)


def simulate_arena(ops: list[Op], input_name: str, shapes: dict[str, Shape], output_tensors: set[str],
                   schedule: Schedule, stem: Stem | None, blocks: list[str], count_input: bool,
                   count_output: bool) -> Arena:
    """Replay the schedule's allocations in a first-fit :class:`Arena` (see the module docstring)."""
    check_schedule(schedule)
    nbytes = {t: int(np.prod(s)) for t, s in shapes.items()}  # int8: one byte per value
    # Tensors that only feed the outputs: with count_output=False they are handed to the
    # decoder as produced (alive during their own step only) and the final concat is not run.
    result = sent_tensors(ops, output_tensors)
    skip = {k for k, op in enumerate(ops) if op.joins_outputs and not count_output}
    start = len(stem.ops) if schedule == "patch" and stem is not None else 0
    groups = mbconv_groups(ops, blocks) if schedule == "patch" else {}
    steps = schedule_steps(len(ops), start, groups, skip)
    reads: dict[str, int] = {}
    for idx, members in enumerate(steps):
        for m in members:
            for t in ops[m].inputs:
                reads[t] = idx
    arena = Arena()

    def transient(t: str) -> bool:
        return t in result and not count_output

    def release(names: list[str]) -> None:
        for name in names:
            if name in arena.live:
                arena.free(name)

    if count_input:
        arena.at(0, "input")
        arena.allocate(input_name, nbytes[input_name])
    step_no = 0
    if schedule == "patch" and stem is not None:
        step_no = _simulate_stem(arena, stem, input_name, shapes, nbytes, count_input, transient)
        if reads.get(input_name) is None and input_name in arena.live:
            arena.free(input_name)
    for idx, members in enumerate(steps):
        step_no += 1
        group = [ops[m] for m in members]
        inside = {t for op in group for t in op.outputs}
        label = group[0].name if len(group) == 1 else "MBConv " + os.path.commonprefix([op.module for op in group
                                                                                      if op.module]).rstrip(".")
        arena.at(step_no, label)
        outs = list(group[-1].outputs)
        for t in outs:
            arena.allocate(t, nbytes[t])
        scratch = _group_scratch(group, shapes) if len(group) > 1 else []
        for name, size in scratch:
            arena.allocate(name, size)
        release([name for name, _ in scratch])
        done = [t for op in group for t in op.inputs if reads.get(t) == idx and t not in inside]
        release(done + [t for t in outs if transient(t) or (t not in reads and t not in result)])
    return arena


def sent_tensors(ops: list[Op], output_tensors: set[str]) -> set[str]:
    """The outputs and the tensors a join of outputs is made of: all are handed out as produced."""
    result = set(output_tensors)
    for op in reversed(ops):
        for t in op.outputs:
            if op.joins_outputs and t in result:
                result.update(src for src, _ in op.output_sources(t))
    return result


def schedule_steps(n_ops: int, start: int, groups: dict[int, list[int]], skip: set[int]) -> list[list[int]]:
    """Op indices per step from ``start``: one step per MBConv group, one per other op not in ``skip``."""
    steps: list[list[int]] = []
    taken: set[int] = set()
    for k in range(start, n_ops):
        if k in groups:
            steps.append(groups[k])
            taken.update(groups[k])
        elif k not in taken and k not in skip:
            steps.append([k])
    return steps


def _group_scratch(members: list[Op], shapes: dict[str, Shape]) -> list[tuple[str, int]]:
    """An MBConv's scratch: ``k`` rows of the expanded map (ring buffer) and one depthwise row."""
    convs = [op for op in members if isinstance(op, ConvOp)]
    dw = next((op for op in convs if op.subkind == "depthwise"), None)
    if dw is None:
        return []
    _, c, _, w_in = shapes[dw.inputs[0]]
    _, _, _, w_out = shapes[dw.outputs[0]]
    out: list[tuple[str, int]] = []
    if convs[0] is not dw:
        out.append((f"{convs[0].outputs[0]} (ring, {dw.w.shape[2]} rows)", c * w_in * dw.w.shape[2]))
    out.append((f"{dw.outputs[0]} (1 row)", c * w_out))
    return out


def _simulate_stem(arena: Arena, stem: Stem, input_name: str, shapes: dict[str, Shape], nbytes: dict[str, int],
                   count_input: bool, transient: Callable[[str], bool]) -> int:
    """One patch of the stem: whole terminal maps first, then each op's crop (freed when dead)."""
    step = 1
    arena.at(step, "stem outputs")
    for op in stem.ops:
        for t in op.outputs:
            if op.map_name in stem.terminals and not transient(t):
                arena.allocate(t, nbytes[t])
    last_use: dict[str, int] = {}
    for k, op in enumerate(stem.ops):
        last_use[op.inputs[0]] = k
    crop_bytes = lambda key, c: c * stem.regions[key][0][2] * stem.regions[key][1][2]  # noqa: E731
    if not count_input:
        step += 1
        arena.at(step, "input crop (streamed from the camera)")
        arena.allocate(f"{input_name} crop", crop_bytes(input_name, shapes[input_name][1]))
    live_crops = {input_name: f"{input_name} crop"} if not count_input else {}
    for k, op in enumerate(stem.ops):
        step += 1
        arena.at(step, f"{op.name} (one patch)")
        key = op.map_name
        if key in stem.terminals:
            for t in op.outputs:
                if transient(t):  # a head's tile, handed to the decoder
                    c = shapes[t][2]
                    arena.allocate(f"{t} tile", c * stem.regions[key][0][0] * stem.regions[key][1][0])
                    arena.free(f"{t} tile")
        read_later = key not in stem.terminals or any(u.inputs[0] == op.outputs[0] for u in stem.ops[k + 1:])
        if read_later and not op.internal_maps:
            name = f"{op.outputs[0]} crop"
            arena.allocate(name, crop_bytes(key, shapes[op.outputs[0]][1]))
            live_crops[op.outputs[0]] = name
        scratch = op.scratch_bytes(shapes[op.inputs[0]][1])
        if scratch:
            arena.allocate(f"{op.name} scratch", scratch)
            arena.free(f"{op.name} scratch")
        for src, name in list(live_crops.items()):
            if last_use.get(src, -1) <= k and name in arena.live:
                arena.free(name)
                del live_crops[src]
    for name in live_crops.values():
        if name in arena.live:
            arena.free(name)
    return step


__all__ = ["SCHEDULES", "Schedule", "Stem", "check_schedule", "find_stem", "infer_shapes", "mbconv_groups",
           "mbconv_parts", "run_mbconv_rows", "run_stem", "schedule_steps", "sent_tensors", "simulate_arena"]
