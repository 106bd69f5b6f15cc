"""The optimized C kernels (the default build) against the reference loops (-DRNN_KERNELS_REFERENCE).

Both builds of ``m4/c/rnn_kernels.c`` are compiled with the host's ``cc`` as shared libraries and
called through ctypes on random shapes: odd channel counts, widths that are not multiples of 4,
regions reaching past the map, positive shifts and large biases (the requantization's slow path),
FastGRNN parameters outside the fast path's ranges (its fallback). Every output byte must agree.
On the host the optimized kernels run their portable C lanes; the Cortex-M4 build (SMLAD, SXTB16)
is checked end to end against the emulator in test_m4_qemu.py.
"""
from __future__ import annotations

import ctypes as C
import shutil
import subprocess
from importlib import resources

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")

I8P, I32P = C.POINTER(C.c_int8), C.POINTER(C.c_int32)


class View(C.Structure):
    _fields_ = [("data", I8P), *[(n, C.c_int32) for n in ("h", "w", "c", "row0", "col0", "map_h", "map_w", "zp")]]


class Region(C.Structure):
    _fields_ = [("data", I8P), *[(n, C.c_int32) for n in ("h", "w", "c", "row0", "col0", "map_h", "map_w", "zp")]]


class ConvParams(C.Structure):
    _fields_ = [("w", I8P), ("bias", I32P), ("mult", I32P), ("shift", I32P),
                *[(n, C.c_int32) for n in ("out_c", "kh", "kw", "sh", "sw", "pad_top", "pad_left", "depthwise",
                                           "in_zp", "out_zp", "act_min", "act_max")]]


class MBConvParams(C.Structure):
    _fields_ = [("expand", C.POINTER(ConvParams)), ("dw", C.POINTER(ConvParams)), ("project", C.POINTER(ConvParams)),
                ("add", I32P), *[(n, C.c_int32) for n in ("add_x_first", "in_h", "in_w", "in_c", "mid_c", "out_h",
                                                          "out_w")]]


class FastGRNN(C.Structure):
    _fields_ = [("w", I8P), ("u", I8P), *[(n, I32P) for n in ("w_mult", "w_shift", "u_mult", "u_shift", "bias_gate",
                                                                "bias_update")],
                *[(n, C.c_int32) for n in ("hidden", "input", "zeta", "nu", "state_bits")]]


class RNNPoolParams(C.Structure):
    _fields_ = [("rnn1", FastGRNN), ("rnn2", FastGRNN),
                *[(n, C.c_int32) for n in ("kh", "kw", "sh", "sw", "pad_top", "pad_left", "in_zp", "out_mult",
                                           "out_shift", "out_zp")]]


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    """(reference, optimized) builds of rnn_kernels.c as ctypes libraries."""
    src = resources.files("rnnpool_lite.m4") / "c"
    d = tmp_path_factory.mktemp("kernels")
    for name in ("rnn_kernels.c", "rnn_kernels.h"):
        (d / name).write_text((src / name).read_text())
    out = []
    for name, defs in (("ref", ["-DRNN_KERNELS_REFERENCE"]), ("fast", [])):
        subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", *defs, "-o", f"lib{name}.so",
                        "rnn_kernels.c"], cwd=d, check=True)
        out.append(C.CDLL(str(d / f"lib{name}.so")))
    return out


class Arrays:
    """Keeps the numpy arrays behind ctypes pointers alive."""

    def __init__(self):
        self.keep = []

    def i8(self, a):
        a = np.ascontiguousarray(a, dtype=np.int8)
        self.keep.append(a)
        return a.ctypes.data_as(I8P)

    def i32(self, a):
        a = np.ascontiguousarray(a, dtype=np.int32)
        self.keep.append(a)
        return a.ctypes.data_as(I32P)


def _requant(rng, n, big=False):
    mult = rng.integers(1 << 30, (1 << 31) - 1, n)
    shift = rng.integers(-12, 3 if big else 1, n)  # positive shifts: the reference's saturating path
    return mult, shift


def conv_params(arr, rng, cin, cout, kh, kw, depthwise=False, big=False):
    wshape = (kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    mult, shift = _requant(rng, cout, big)
    lim = (1 << 30) if big else 4096
    in_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
    act_min = int(rng.choice([-128, out_zp]))
    p = ConvParams(arr.i8(rng.integers(-128, 128, wshape)), arr.i32(rng.integers(-lim, lim, cout)), arr.i32(mult),
                   arr.i32(shift), cout, kh, kw, int(rng.integers(1, 3)), int(rng.integers(1, 3)),
                   int(rng.integers(0, kh)), int(rng.integers(0, kw)), int(depthwise), in_zp, out_zp, act_min, 127)
    return p


def _call_both(libs, fn, make_args, out_size):
    outs = []
    for lib in libs:
        out = np.zeros(out_size, dtype=np.int8)
        getattr(lib, fn)(*make_args(out))
        outs.append(out)
    return outs


@pytest.mark.parametrize("seed", range(40))
def test_conv_equals_reference(libs, seed):
    """Regular and depthwise convs (multiplier 1 and 2) on a view, the region reaching past the map."""
    rng = np.random.default_rng(seed)
    arr = Arrays()
    kind = seed % 3
    cin = int(rng.choice([1, 2, 3, 4, 5, 7, 8, 12, 13, 32, 36]))
    cout = cin * (1 + (kind == 2)) if kind else int(rng.integers(1, 10))
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    p = conv_params(arr, rng, cin, cout, kh, kw, depthwise=kind > 0, big=seed % 4 == 0)
    map_h, map_w = kh + int(rng.integers(0, 9)), kw + int(rng.integers(0, 9))
    x = rng.integers(-128, 128, (map_h, map_w, cin))
    view = View(arr.i8(x), map_h, map_w, cin, 0, 0, map_h, map_w, p.in_zp)
    out_h, out_w = (map_h + 2 * p.pad_top - kh) // p.sh + 1, (map_w + 2 * p.pad_left - kw) // p.sw + 1
    rh, rw = int(rng.integers(1, out_h + 3)), int(rng.integers(1, out_w + 4))
    row0, col0 = int(rng.integers(-2, out_h)), int(rng.integers(-2, out_w))

    def args(out):
        region = Region(out.ctypes.data_as(I8P), rh, rw, cout, row0, col0, out_h, out_w, p.out_zp)
        return C.byref(p), C.byref(view), C.byref(region)

    ref, fast = _call_both(libs, "rnn_conv", args, rh * rw * cout)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("seed", range(30))
def test_pointwise_equals_reference(libs, seed):
    rng = np.random.default_rng(100 + seed)
    arr = Arrays()
    cin = int(rng.choice([1, 3, 4, 5, 8, 13, 16, 24, 64]))
    cout, pixels = int(rng.integers(1, 12)), int(rng.integers(1, 11))
    p = conv_params(arr, rng, cin, cout, 1, 1, big=seed % 3 == 0)
    x = arr.i8(rng.integers(-128, 128, (pixels, cin)))
    ref, fast = _call_both(libs, "rnn_pointwise", lambda out: (C.byref(p), x, cin, pixels, out.ctypes.data_as(I8P)),
                           pixels * cout)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("seed", range(20))
def test_head_conv_equals_reference(libs, seed):
    rng = np.random.default_rng(200 + seed)
    arr = Arrays()
    cin, maxout = int(rng.choice([3, 4, 8, 32])), int(rng.choice([1, 3]))
    cout = maxout + int(rng.integers(1, 5))
    p = conv_params(arr, rng, cin, cout, 3, 3)
    p.sh = p.sw = 1
    p.pad_top = p.pad_left = 1
    h, w = (int(v) for v in rng.integers(2, 9, 2))
    view = View(arr.i8(rng.integers(-128, 128, (h, w, cin))), h, w, cin, 0, 0, h, w, p.in_zp)
    oc = cout - maxout + 1

    def args(out):
        region = Region(out.ctypes.data_as(I8P), h, w, oc, 0, 0, h, w, p.out_zp)
        return C.byref(p), maxout, C.byref(view), C.byref(region)

    ref, fast = _call_both(libs, "rnn_head_conv", args, h * w * oc)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("seed", range(20))
def test_mbconv_rows_equals_reference(libs, seed):
    """An inverted residual block row by row: expansion (or none), depthwise, projection, add."""
    rng = np.random.default_rng(300 + seed)
    arr = Arrays()
    in_h, in_w = (int(v) for v in rng.integers(2, 9, 2))
    in_c, mid = int(rng.choice([3, 4, 5, 8, 16])), int(rng.choice([4, 6, 7, 8, 12, 16, 20]))
    expand = seed % 3 != 0
    if not expand:
        mid = in_c
    stride = 1 if seed % 2 else 2
    dw = conv_params(arr, rng, mid, mid, 3, 3, depthwise=True)
    dw.sh = dw.sw = stride
    dw.pad_top = dw.pad_left = 1
    ex = conv_params(arr, rng, in_c, mid, 1, 1) if expand else None
    residual = stride == 1 and seed % 4 == 1
    out_c = in_c if residual else int(rng.integers(1, 9))
    pr = conv_params(arr, rng, mid, out_c, 1, 1)
    for q in (ex, pr):
        if q is not None:
            q.sh = q.sw = 1
            q.pad_top = q.pad_left = 0
    out_h, out_w = (in_h - 1) // stride + 1, (in_w - 1) // stride + 1
    add = None
    if residual:
        m, s = _requant(rng, 3)
        add = arr.i32([*rng.integers(-128, 128, 2), m[0], s[0] - 8, m[1], s[1] - 8, m[2], s[2], 5, -128, 127])
    mb = MBConvParams(C.pointer(ex) if ex is not None else None, C.pointer(dw), C.pointer(pr), add, seed % 2,
                      in_h, in_w, in_c, mid, out_h, out_w)
    x = arr.i8(rng.integers(-128, 128, (in_h, in_w, in_c)))

    def args(out):
        ring = np.zeros(3 * in_w * mid, dtype=np.int8)
        row = np.zeros(out_w * mid, dtype=np.int8)
        arr.keep += [ring, row]
        return C.byref(mb), x, ring.ctypes.data_as(I8P), row.ctypes.data_as(I8P), out.ctypes.data_as(I8P)

    ref, fast = _call_both(libs, "rnn_mbconv_rows", args, out_h * out_w * out_c)
    np.testing.assert_array_equal(fast, ref)


def fastgrnn(arr, rng, hidden, inp, fallback):
    wm, ws = _requant(rng, hidden)
    um, us = _requant(rng, hidden)
    if fallback:  # outside the fast path's ranges: a positive shift, hidden > 127 is not drawn (too slow)
        ws = ws.copy()
        ws[0] = 1
    zeta, nu = int(rng.integers(0, 32769)), int(rng.integers(-600, 600))
    return FastGRNN(arr.i8(rng.integers(-128, 128, (hidden, inp))), arr.i8(rng.integers(-128, 128, (hidden, hidden))),
                    arr.i32(wm), arr.i32(np.minimum(ws, 0) if not fallback else ws), arr.i32(um), arr.i32(us),
                    arr.i32(rng.integers(-40000, 40000, hidden)), arr.i32(rng.integers(-40000, 40000, hidden)),
                    hidden, inp, zeta, nu, int(rng.integers(0, 3)))


@pytest.mark.parametrize("seed", range(30))
def test_rnnpool_patch_equals_reference(libs, seed):
    """One RNNPool patch: random hidden sizes (odd ones too, and 16), inputs, patch shapes, padding."""
    rng = np.random.default_rng(400 + seed)
    arr = Arrays()
    h1, h2, c = int(rng.integers(1, 18)), int(rng.integers(1, 18)), int(rng.integers(1, 7))
    if seed % 5 == 0:  # Face-M4's sizes: the 16-unit fused step and the 4-channel projections
        h1, h2, c = 16, 16, 4
    kh, kw = (int(v) for v in rng.integers(2, 9, 2))
    fallback = seed % 10 == 9
    g1, g2 = fastgrnn(arr, rng, h1, c, fallback), fastgrnn(arr, rng, h2, h1, False)
    in_zp = int(rng.integers(-128, 128))
    p = RNNPoolParams(g1, g2, kh, kw, int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(0, 3)),
                      int(rng.integers(0, 3)), in_zp, int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(-16, -6)),
                      int(rng.integers(-128, 128)))
    map_h, map_w = kh + int(rng.integers(0, 5)), kw + int(rng.integers(0, 5))
    view = View(arr.i8(rng.integers(-128, 128, (map_h, map_w, c))), map_h, map_w, c, 0, 0, map_h, map_w, in_zp)
    scratch_bytes = 2 * ((kh + kw) * h1 + 4 * h2) + 4 * max(h1, h2) + 64
    oy, ox = int(rng.integers(0, 2)), int(rng.integers(0, 2))

    def args(out):
        scratch = np.zeros(scratch_bytes, dtype=np.int8)
        arr.keep.append(scratch)
        return C.byref(p), C.byref(view), oy, ox, 0, scratch.ctypes.data_as(C.c_void_p), out.ctypes.data_as(I8P)

    ref, fast = _call_both(libs, "rnn_rnnpool_patch", args, 4 * h2)
    np.testing.assert_array_equal(fast, ref)
    # a row of patches with reuse_left: each call takes the shared column summaries from the scratch
    scratch = np.zeros(scratch_bytes, dtype=np.int8)
    for ox in range(3):
        outs = [np.zeros(4 * h2, dtype=np.int8) for _ in libs]
        for lib, out, reuse in zip(libs, outs, (0, 1)):
            buf = np.zeros(scratch_bytes, dtype=np.int8) if reuse == 0 else scratch
            lib.rnn_rnnpool_patch(C.byref(p), C.byref(view), oy, ox, reuse * (ox > 0), buf.ctypes.data_as(C.c_void_p),
                                  out.ctypes.data_as(I8P))
        np.testing.assert_array_equal(outs[1], outs[0], err_msg=f"patch ({oy}, {ox}) reusing the left one's columns")
