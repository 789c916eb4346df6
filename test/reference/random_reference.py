#!/usr/bin/env python3
"""Reference values for weft's random keys, in both of JAX's threefry layouts.

Writes random_reference.inc (C++ arrays read by test/test_random.cpp) from a plain-Python
transcription of the published algorithms: Threefry-2x32 (Salmon et al., SC 2011; Random123's
known-answer vectors are checked below), JAX's two threefry layouts (jax._src.prng:
_threefry_split_original / threefry_random_bits for jax_threefry_partitionable=False,
_threefry_split_foldlike / _threefry_random_bits_partitionable for True), jax.random's uniform,
normal, truncated_normal, bernoulli and permutation in float32 (XLA's ErfInv32 polynomial), and
Flax's per-path rng derivation (flax.core.scope.LazyRng, _fold_in_static: SHA-1 of the path names
and the call counter) with nn.Dense's lecun_normal kernels and nn.Dropout's masks.

The transcription is checked against the examples of JAX's documentation before anything is
written: uniform(key(0)) and uniform(subkey) after key, subkey = split(key(0)) are 0.947667 and
0.00729382 with the partitionable layout, 0.41845703 and 0.10536897 with the classic one.

Run from anywhere with any Python 3 (no packages needed): python3 test/reference/random_reference.py
"""
import hashlib
import math
import os
import struct

M32 = 0xFFFFFFFF


def f32(x):
    """x rounded to float32 (a double holds every float32 product and sum exactly enough that one
    rounding here equals float32 arithmetic for + - * / and sqrt)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bits_to_f32(b):
    return struct.unpack("<f", struct.pack("<I", b & M32))[0]


def nextafter32(x, toward):
    b = struct.unpack("<I", struct.pack("<f", x))[0]
    if x == 0.0:
        return bits_to_f32(1) if toward > 0 else -bits_to_f32(1)
    up = (toward > x) == (x > 0)
    return bits_to_f32(b + 1 if up else b - 1)


def rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & M32


def threefry2x32(key, counter):
    k0, k1 = key
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x0, x1 = (counter[0] + k0) & M32, (counter[1] + k1) & M32
    for i in range(5):
        for r in rotations[i % 2]:
            x0 = (x0 + x1) & M32
            x1 = rotl(x1, r) ^ x0
        x0 = (x0 + ks[(i + 1) % 3]) & M32
        x1 = (x1 + ks[(i + 2) % 3] + i + 1) & M32
    return x0, x1


assert threefry2x32((0, 0), (0, 0)) == (0x6B200159, 0x99BA4EFE)
assert threefry2x32((M32, M32), (M32, M32)) == (0x1CB996FC, 0xBB002BE7)
assert threefry2x32((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3)) == (0xC4923A9C, 0x483DF7A0)


class Key:
    def __init__(self, words, layout):
        self.words, self.layout = tuple(words), layout

    @staticmethod
    def seed(s, layout):
        return Key(((s >> 32) & M32, s & M32), layout)


def random_bits(key, n):
    if key.layout == "partitionable":
        out = []
        for i in range(n):
            y0, y1 = threefry2x32(key.words, (i >> 32, i & M32))
            out.append(y0 ^ y1)
        return out
    assert n < M32  # no blocks needed for the sizes used here
    counters = list(range(n)) + ([0] if n % 2 else [])
    half = len(counters) // 2
    firsts, seconds = [], []
    for j in range(half):
        y0, y1 = threefry2x32(key.words, (counters[j], counters[j + half]))
        firsts.append(y0)
        seconds.append(y1)
    return (firsts + seconds)[:n]


def split(key, n=2):
    if key.layout == "partitionable":
        return [Key(threefry2x32(key.words, (0, i)), key.layout) for i in range(n)]
    w = random_bits(key, 2 * n)
    return [Key((w[2 * i], w[2 * i + 1]), key.layout) for i in range(n)]


def fold_in(key, data):
    return Key(threefry2x32(key.words, (0, data & M32)), key.layout)


def unit(bits):
    return bits_to_f32((bits >> 9) | 0x3F800000) - 1.0  # exact in float32


def uniform(key, n, lo=0.0, hi=1.0):
    lo, hi = f32(lo), f32(hi)
    scale = f32(hi - lo)
    return [max(lo, f32(f32(unit(b) * scale) + lo)) for b in random_bits(key, n)]


def erfinv32(x):
    """XLA's ErfInv32 (M. Giles' single-precision polynomial), operation for operation."""
    lt5 = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
           -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
    ge5 = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
           -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)
    if abs(x) == 1.0:
        return x * 3.4028234663852886e38
    w = -f32(math.log1p(-f32(x * x)))
    small = w < 5.0
    c = lt5 if small else ge5
    w = f32(w - 2.5) if small else f32(f32(math.sqrt(w)) - 3.0)
    p = f32(c[0])
    for ci in c[1:]:
        p = f32(f32(ci) + f32(p * w))
    return f32(p * x)


SQRT2 = f32(math.sqrt(2.0))


def normal(key, n):
    lo = nextafter32(-1.0, 0.0)
    return [f32(SQRT2 * erfinv32(u)) for u in uniform(key, n, lo, 1.0)]


def truncated_normal(key, lower, upper, n):
    a = f32(math.erf(f32(lower / SQRT2)))
    b = f32(math.erf(f32(upper / SQRT2)))
    lo_clip, hi_clip = nextafter32(lower, math.inf), nextafter32(upper, -math.inf)
    return [min(max(f32(SQRT2 * erfinv32(u)), lo_clip), hi_clip) for u in uniform(key, n, a, b)]


def bernoulli(key, p, n):
    return [1 if u < f32(p) else 0 for u in uniform(key, n)]


def permutation(key, n):
    rounds = math.ceil(3 * math.log(max(1, n)) / math.log(M32))
    x = list(range(n))
    for _ in range(rounds):
        key, sub = split(key)
        sort_keys = random_bits(sub, n)
        x = [v for _, v in sorted(zip(sort_keys, x), key=lambda t: t[0])]  # stable
    return x


def flax_rng(key, path, counter):
    """Flax's make_rng(stream) in the scope at `path`: fold_in of the first 4 bytes of SHA-1 over
    the path names and the call counter (minimal big-endian bytes)."""
    m = hashlib.sha1()
    for name in path:
        m.update(name.encode("utf-8"))
    m.update(counter.to_bytes((counter.bit_length() + 7) // 8, "big"))
    return fold_in(key, int.from_bytes(m.digest()[:4], "big"))


def lecun_normal(key, fan_in, fan_out):
    """jax.nn.initializers.lecun_normal() for a (fan_in, fan_out) kernel, row-major."""
    variance = f32(1.0 / fan_in)
    stddev = f32(f32(math.sqrt(variance)) / f32(0.87962566103423978))
    return [f32(v * stddev) for v in truncated_normal(key, -2.0, 2.0, fan_in * fan_out)]


def dense(x, rows, cols_in, kernel, cols_out):
    return [[f32(sum(x[r][i] * kernel[i * cols_out + o] for i in range(cols_in))) for o in range(cols_out)]
            for r in range(rows)]


# The model of the reference: Flax's
#   class MLP(nn.Module):
#     @nn.compact
#     def __call__(self, x, train):
#       h = nn.relu(nn.Dense(8)(x))
#       h = nn.Dropout(0.5, deterministic=not train)(h)
#       return nn.Dense(2)(h)
# initialised with MLP().init(jax.random.key(0), x, False) and applied in training with
# rngs={'dropout': jax.random.key(1)}; biases are zeros.
MLP_X = [[f32((7 * (3 * r + c) % 11) / 5.0 - 1.0) for c in range(3)] for r in range(2)]


def mlp_reference(layout):
    params = Key.seed(0, layout)
    k0 = lecun_normal(flax_rng(params, ("Dense_0",), 1), 3, 8)
    k1 = lecun_normal(flax_rng(params, ("Dense_1",), 1), 8, 2)
    h = [[max(0.0, v) for v in row] for row in dense(MLP_X, 2, 3, k0, 8)]
    keep = bernoulli(flax_rng(Key.seed(1, layout), ("Dropout_0",), 1), 0.5, 16)
    hd = [[f32(h[r][c] / 0.5) if keep[8 * r + c] else 0.0 for c in range(8)] for r in range(2)]
    y = dense(hd, 2, 8, k1, 2)
    return k0, k1, keep, [v for row in y for v in row]


def close(a, b, tol):
    return abs(a - b) <= tol * abs(b)


def check_against_jax_docs():
    for layout, first, sub in (("partitionable", 0.947667, 0.00729382), ("classic", 0.41845703, 0.10536897)):
        key = Key.seed(0, layout)
        assert close(uniform(key, 1)[0], first, 1e-6), (layout, uniform(key, 1))
        _, subkey = split(key)
        assert close(uniform(subkey, 1)[0], sub, 1e-6), (layout, uniform(subkey, 1))
    # Values weft's classic tests held before the partitionable layout existed (from JAX).
    classic = Key.seed(0, "classic")
    assert [k.words for k in split(classic)] == [(4146024105, 967050713), (2718843009, 1272950319)]
    assert fold_in(classic, 1).words == (928981903, 3453687069)


def cpp_u32(name, values):
    return f"  static constexpr std::uint32_t {name}[] = {{{', '.join(f'{v}u' for v in values)}}};\n"


def cpp_i32(name, values):
    return f"  static constexpr std::int32_t {name}[] = {{{', '.join(str(v) for v in values)}}};\n"


def cpp_f32(name, values):
    return f"  static constexpr float {name}[] = {{{', '.join(f'{v!r}f' for v in values)}}};\n"


def main():
    check_against_jax_docs()
    out = ["// Generated by test/reference/random_reference.py; do not edit.\n",
           "// Per layout: JAX's draws and Flax's initialisation and dropout for the same keys.\n",
           "#pragma once\n#include <cstdint>\n\nnamespace weft_reference {\n\n"]
    for layout in ("partitionable", "classic"):
        key0, key42, key1234 = Key.seed(0, layout), Key.seed(42, layout), Key.seed(1234, layout)
        k0, k1, keep, y = mlp_reference(layout)
        out.append(f"struct {layout} {{\n")
        out.append(cpp_u32("split_key0", [w for k in split(key0) for w in k.words]))
        out.append(cpp_u32("split_key42_3", [w for k in split(key42, 3) for w in k.words]))
        out.append(cpp_u32("fold_in_key0_1", fold_in(key0, 1).words))
        out.append(cpp_u32("bits_key1234_7", random_bits(key1234, 7)))
        out.append(cpp_f32("uniform_key0_4", uniform(key0, 4)))
        out.append(cpp_f32("uniform_subkey0", uniform(split(key0)[1], 1)))
        out.append(cpp_f32("uniform_key42_m2_3", uniform(key42, 5, -2.0, 3.0)))
        out.append(cpp_f32("normal_key0_5", normal(key0, 5)))
        out.append(cpp_f32("truncated_normal_key42_6", truncated_normal(key42, -0.5, 1.5, 6)))
        out.append(cpp_i32("bernoulli_key1234_03_12", bernoulli(key1234, 0.3, 12)))
        out.append(cpp_i32("permutation_key0_10", permutation(key0, 10)))
        out.append(cpp_f32("mlp_dense0_kernel", k0))
        out.append(cpp_f32("mlp_dense1_kernel", k1))
        out.append(cpp_i32("mlp_dropout_keep", keep))
        out.append(cpp_f32("mlp_x", [v for row in MLP_X for v in row]))
        out.append(cpp_f32("mlp_train_output", y))
        out.append("};\n\n")
    out.append("}  // namespace weft_reference\n")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "random_reference.inc")
    with open(path, "w") as f:
        f.write("".join(out))
    print("wrote", path)


if __name__ == "__main__":
    main()
