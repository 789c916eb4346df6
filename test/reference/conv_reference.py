#!/usr/bin/env python3
"""Reference values for weft's convolution and pooling over 1 and 3 spatial axes, and for
ConvTranspose (test/test_core_conv.cpp).

Writes conv_reference.inc from a direct NumPy transcription (loops over output positions, float64
sums rounded to float32) of the definitions Flax's Conv, max_pool and avg_pool rely on:
lax.conv_general_dilated with channels-last input, kernel (spatial..., in / groups, out), window
strides, explicit (low, high) padding, rhs (kernel) dilation and feature_group_count; and
lax.reduce_window with max (padding -inf) or add (padding 0), divided by the window size
(count_include_pad=True) or by the count of positions inside the input (False), as
flax.linen.pooling.avg_pool does. SAME padding is XLA's: ceil(in / stride) outputs, the odd pad
on the high side. Inputs and kernels are test/testing.hpp's deterministic `pattern`.

ConvTranspose is lax.conv_transpose (what flax.linen.ConvTranspose calls): a convolution of the
input dilated by the strides, padded by _conv_transpose_padding for SAME / VALID, with the kernel
as given (transpose_kernel=False) or with its spatial axes flipped and its in / out axes swapped
(transpose_kernel=True). The script computes it independently in scatter form: input position i
and kernel tap k add x[i] * kernel[k] to output position i * stride - k * dilation + pad_low.

Run from anywhere (NumPy needed): python3 test/reference/conv_reference.py
"""
import itertools
import math
import os

import numpy as np

F32 = np.float32


def pattern(shape, lo=-1.0, hi=1.0, salt=0):
    """test/testing.hpp's pattern: lo + float(fmod(0.618... * (i + 1 + 7 salt), 1)) * (hi - lo)."""
    n = int(np.prod(shape))
    t = np.array([math.fmod(0.6180339887 * (i + 1 + 7 * salt), 1.0) for i in range(n)], dtype=np.float64)
    return (F32(lo) + t.astype(F32) * (F32(hi) - F32(lo))).astype(F32).reshape(shape)


def same_pads(in_sizes, window, strides, dilation):
    pads = []
    for n, k, s, d in zip(in_sizes, window, strides, dilation):
        span = (k - 1) * d + 1
        out = -(-n // s)
        total = max((out - 1) * s + span - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def conv(x, kernel, strides, pads, dilation, groups):
    """lax.conv_general_dilated: x (N, spatial..., C), kernel (spatial..., C / groups, O)."""
    r = kernel.ndim - 2
    n, c = x.shape[0], x.shape[-1]
    window, cin, cout = kernel.shape[:r], kernel.shape[-2], kernel.shape[-1]
    spatial = x.shape[1:-1]
    outs = [(spatial[i] + pads[i][0] + pads[i][1] - ((window[i] - 1) * dilation[i] + 1)) // strides[i] + 1
            for i in range(r)]
    y = np.zeros((n,) + tuple(outs) + (cout,), dtype=np.float64)
    per_group = cout // groups
    for b in range(n):
        for o in itertools.product(*[range(e) for e in outs]):
            acc = np.zeros(cout)
            for k in itertools.product(*[range(e) for e in window]):
                pos = [o[i] * strides[i] - pads[i][0] + k[i] * dilation[i] for i in range(r)]
                if any(p < 0 or p >= spatial[i] for i, p in enumerate(pos)):
                    continue
                v = x[(b,) + tuple(pos)].astype(np.float64)
                w = kernel[k].astype(np.float64)  # (cin, cout)
                for g in range(groups):
                    acc[g * per_group:(g + 1) * per_group] += v[g * cin:(g + 1) * cin] @ w[:, g * per_group:(g + 1) * per_group]
            y[(b,) + o] = acc
    return y.astype(F32)


def pool(x, window, strides, pads, kind, count_include_pad=True):
    """lax.reduce_window (max or add) over the spatial axes of x (N, spatial..., C), as Flax's pools."""
    r = len(window)
    spatial = x.shape[1:-1]
    outs = [(spatial[i] + pads[i][0] + pads[i][1] - window[i]) // strides[i] + 1 for i in range(r)]
    y = np.zeros((x.shape[0],) + tuple(outs) + (x.shape[-1],), dtype=np.float64)
    for b in range(x.shape[0]):
        for o in itertools.product(*[range(e) for e in outs]):
            vals = []
            for k in itertools.product(*[range(e) for e in window]):
                pos = [o[i] * strides[i] - pads[i][0] + k[i] for i in range(r)]
                if all(0 <= p < spatial[i] for i, p in enumerate(pos)):
                    vals.append(x[(b,) + tuple(pos)].astype(np.float64))
            if kind == "max":
                y[(b,) + o] = np.max(vals, axis=0) if vals else -np.inf
            else:
                total = np.sum(vals, axis=0) if vals else 0.0
                y[(b,) + o] = total / (np.prod(window) if count_include_pad else len(vals))
    return y.astype(F32)


def conv_transpose_padding(k, s, padding):
    """jax.lax's _conv_transpose_padding for one axis (k the dilated kernel extent)."""
    if padding == "SAME":
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
    else:  # VALID
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    return pad_a, pad_len - pad_a


def conv_transpose(x, kernel, strides, padding, dilation, transpose_kernel=False):
    """lax.conv_transpose in scatter form: x (N, spatial..., C), kernel (spatial..., C, O), or
    (spatial..., O, C) with transpose_kernel."""
    r = kernel.ndim - 2
    if transpose_kernel:
        kernel = np.swapaxes(kernel[tuple(slice(None, None, -1) for _ in range(r))], -1, -2)
    window = kernel.shape[:r]
    spatial = x.shape[1:-1]
    pads = [conv_transpose_padding((window[i] - 1) * dilation[i] + 1, strides[i], padding) for i in range(r)]
    outs = [(spatial[i] - 1) * strides[i] + 1 + pads[i][0] + pads[i][1] - (window[i] - 1) * dilation[i]
            for i in range(r)]
    y = np.zeros((x.shape[0],) + tuple(outs) + (kernel.shape[-1],), dtype=np.float64)
    for b in range(x.shape[0]):
        for i in itertools.product(*[range(e) for e in spatial]):
            for k in itertools.product(*[range(e) for e in window]):
                o = tuple(i[a] * strides[a] - k[a] * dilation[a] + pads[a][0] for a in range(r))
                if all(0 <= o[a] < outs[a] for a in range(r)):
                    y[(b,) + o] += x[(b,) + i].astype(np.float64) @ kernel[k].astype(np.float64)
    return y.astype(F32)


def cpp_array(name, values):
    flat = ", ".join(f"{float(v)!r}f" for v in np.asarray(values, dtype=F32).ravel())
    return f"inline constexpr float {name}[] = {{{flat}}};"


def main():
    lines = [
        "// Generated by test/reference/conv_reference.py; do not edit.",
        "#pragma once",
        "",
        "namespace weft_reference::conv {",
        "",
    ]
    # 1-D: x (2, 9, 4), kernel (3, 2, 6) with 2 groups, stride 2, dilation 2, SAME.
    x1 = pattern((2, 9, 4), salt=1)
    k1 = pattern((3, 2, 6), -0.5, 0.5, salt=2)
    p1 = same_pads([9], [3], [2], [2])
    lines += [f"// 1-D: x pattern((2, 9, 4), -1, 1, 1), kernel pattern((3, 2, 6), -0.5, 0.5, 2), groups 2, strides 2,",
              f"// dilation 2, SAME = {p1}.",
              cpp_array("conv1d_same", conv(x1, k1, [2], p1, [2], 2))]
    # 1-D VALID, no groups: kernel (4, 4, 3).
    k1v = pattern((4, 4, 3), -0.5, 0.5, salt=3)
    lines += ["// 1-D VALID: kernel pattern((4, 4, 3), -0.5, 0.5, 3), stride 1.",
              cpp_array("conv1d_valid", conv(x1, k1v, [1], [(0, 0)], [1], 1))]
    # 3-D: x (2, 5, 4, 6, 3), kernel (3, 2, 3, 3, 4), strides (2, 1, 2), dilation (1, 2, 1), SAME.
    x3 = pattern((2, 5, 4, 6, 3), salt=4)
    k3 = pattern((3, 2, 3, 3, 4), -0.5, 0.5, salt=5)
    p3 = same_pads([5, 4, 6], [3, 2, 3], [2, 1, 2], [1, 2, 1])
    lines += [f"// 3-D: x pattern((2, 5, 4, 6, 3), -1, 1, 4), kernel pattern((3, 2, 3, 3, 4), -0.5, 0.5, 5),",
              f"// strides (2, 1, 2), dilation (1, 2, 1), SAME = {p3}.",
              cpp_array("conv3d_same", conv(x3, k3, [2, 1, 2], p3, [1, 2, 1], 1))]
    # 3-D grouped, explicit padding: kernel (2, 2, 2, 1, 6), groups 3, pads ((1, 0), (0, 1), (2, 1)).
    k3g = pattern((2, 2, 2, 1, 6), -0.5, 0.5, salt=6)
    pads3g = [(1, 0), (0, 1), (2, 1)]
    lines += ["// 3-D grouped: kernel pattern((2, 2, 2, 1, 6), -0.5, 0.5, 6), groups 3, padding ((1, 0), (0, 1), (2, 1)).",
              cpp_array("conv3d_grouped", conv(x3, k3g, [1, 1, 1], pads3g, [1, 1, 1], 3))]
    # Pooling: 1-D window 3 stride 2 SAME; 3-D window (2, 3, 2) strides (2, 2, 1) SAME.
    pp1 = same_pads([9], [3], [2], [1])
    lines += [f"// Pools of x1: window 3, stride 2, SAME = {pp1}.",
              cpp_array("max_pool1d", pool(x1, [3], [2], pp1, "max")),
              cpp_array("avg_pool1d", pool(x1, [3], [2], pp1, "avg")),
              cpp_array("avg_pool1d_exclude_pad", pool(x1, [3], [2], pp1, "avg", count_include_pad=False))]
    pp3 = same_pads([5, 4, 6], [2, 3, 2], [2, 2, 1], [1, 1, 1])
    lines += [f"// Pools of x3: window (2, 3, 2), strides (2, 2, 1), SAME = {pp3}.",
              cpp_array("max_pool3d", pool(x3, [2, 3, 2], [2, 2, 1], pp3, "max")),
              cpp_array("avg_pool3d", pool(x3, [2, 3, 2], [2, 2, 1], pp3, "avg")),
              cpp_array("avg_pool3d_exclude_pad", pool(x3, [2, 3, 2], [2, 2, 1], pp3, "avg", count_include_pad=False))]
    # ConvTranspose.
    xt1 = pattern((2, 5, 3), salt=10)
    kt1 = pattern((3, 3, 4), -0.5, 0.5, salt=11)
    yt1 = conv_transpose(xt1, kt1, [2], "SAME", [1])
    xt2 = pattern((1, 3, 4, 2), salt=12)
    kt2 = pattern((3, 2, 2, 3), -0.5, 0.5, salt=13)
    yt2 = conv_transpose(xt2, kt2, [2, 3], "VALID", [1, 2])
    kt3 = pattern((3, 3, 3, 2), -0.5, 0.5, salt=14)  # (kh, kw, features, in) for transpose_kernel
    yt3 = conv_transpose(xt2, kt3, [2, 2], "SAME", [1, 1], transpose_kernel=True)
    lines += [f"// ConvTranspose 1-D: x pattern((2, 5, 3), -1, 1, 10), kernel pattern((3, 3, 4), -0.5, 0.5, 11),",
              f"// strides 2, SAME: output {yt1.shape}.",
              cpp_array("conv_transpose1d_same", yt1),
              f"// 2-D: x pattern((1, 3, 4, 2), -1, 1, 12), kernel pattern((3, 2, 2, 3), -0.5, 0.5, 13), strides (2, 3),",
              f"// dilation (1, 2), VALID: output {yt2.shape}.",
              cpp_array("conv_transpose2d_valid", yt2),
              f"// 2-D transpose_kernel: kernel pattern((3, 3, 3, 2), -0.5, 0.5, 14), strides (2, 2), SAME: output {yt3.shape}.",
              cpp_array("conv_transpose2d_transpose_kernel", yt3)]
    lines += ["", "}  // namespace weft_reference::conv", ""]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv_reference.inc")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("wrote", out)


if __name__ == "__main__":
    main()
