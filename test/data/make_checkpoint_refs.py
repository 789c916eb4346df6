#!/usr/bin/env python3
"""Reference checkpoints for weft's safetensors and Flax msgpack readers and writers.

The files are written from the formats' published specifications with NumPy and msgpack only:
safetensors as https://huggingface.co/docs/safetensors describes it (8-byte little-endian header
length, JSON header, raw little-endian data), Flax's as flax/serialization.py encodes a state dict
(msgpack map; arrays as extension type 1 holding msgpack (shape, dtype name, bytes); NumPy
scalars as type 3; large arrays in the chunked form of _chunk).

The tree is the variables of a small Linen MLP, Dense(8) -> BatchNorm -> relu -> Dense(3), in
Linen's insertion order, plus an "extras" collection with every other kind of leaf.

  make_checkpoint_refs.py write DIR            writes the reference files (committed in test/data)
  make_checkpoint_refs.py check DATA TOOL      checks that the committed files in DATA are what
                                               `write` gives, runs `TOOL resave DATA OUT` (weft
                                               loads the references and saves them again) and
                                               reads weft's files back, value by value
Exits with 77 (a skipped test for meson) when NumPy or msgpack is missing.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import msgpack
    import numpy as np
except ImportError as e:  # apt-get install python3-numpy python3-msgpack
    print(f"skipped: {e}", file=sys.stderr)
    sys.exit(77)

# ---------------------------------------------------------------- the reference tree

EPS = 1e-5  # flax.linen.BatchNorm's default epsilon


def bf16_bits(values):
    """bfloat16 bit patterns (round to nearest even) of float32 values; NumPy has no bfloat16."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def reference():
    """(variables, extras, x, y): the MLP's variables, other leaves, an input and the MLP's output."""
    rng = np.random.RandomState(0)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    params = {
        "Dense_0": {"kernel": f32(4, 8), "bias": f32(8)},
        "BatchNorm_0": {"scale": (1.0 + 0.5 * rng.random_sample(8)).astype(np.float32), "bias": f32(8)},
        "Dense_1": {"kernel": f32(8, 3), "bias": f32(3)},
    }
    batch_stats = {"BatchNorm_0": {"mean": f32(8), "var": (0.5 + rng.random_sample(8)).astype(np.float32)}}
    extras = {
        "step": np.array(7, dtype=np.int32),
        "labels": np.array([3, -1, 0, 2147483647, -2147483648], dtype=np.int32),
        "scalar": np.array(-1.5, dtype=np.float32),
        "half": np.array([[1.0, -2.5, 65504.0], [0.000061035156, 0.0, -0.0]], dtype=np.float16),
        "brain": bf16_bits([1.0, 3.140625, -123.5, 1e-3]),  # stored as BF16 / "bfloat16"
        "double": np.array([1.0 / 3.0, -2.0, 1e-3], dtype=np.float64),
    }
    x = f32(2, 4)
    # The forward pass in float64, rounded once at the end: float32 matmuls round differently with
    # the SIMD width NumPy dispatches to, so y would depend on the machine that runs the check.
    d = lambda a: a.astype(np.float64)
    h = d(x) @ d(params["Dense_0"]["kernel"]) + d(params["Dense_0"]["bias"])
    bn, stats = params["BatchNorm_0"], batch_stats["BatchNorm_0"]
    h = (h - d(stats["mean"])) / np.sqrt(d(stats["var"]) + EPS) * d(bn["scale"]) + d(bn["bias"])
    h = np.maximum(h, 0)
    y = (h @ d(params["Dense_1"]["kernel"]) + d(params["Dense_1"]["bias"])).astype(np.float32)
    return {"params": params, "batch_stats": batch_stats}, extras, x, y


def flatten(tree, prefix=""):
    """(path, leaf) pairs with '/'-joined paths, in the tree's order."""
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            yield from flatten(value, path)
        else:
            yield path, value


def unflatten(pairs):
    tree = {}
    for path, value in pairs:
        *inner, last = path.split("/")
        node = tree
        for key in inner:
            node = node.setdefault(key, {})
        node[last] = value
    return tree


def sort_tree(tree):
    return {k: sort_tree(v) if isinstance(v, dict) else v for k, v in sorted(tree.items())}

# ---------------------------------------------------------------- safetensors

SAFETENSORS_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.float16): "F16",
                      np.dtype(np.float64): "F64", np.dtype(np.uint16): "BF16"}  # uint16 holds bfloat16 bits
SAFETENSORS_NUMPY = {"F32": np.float32, "I32": np.int32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}


def safetensors_bytes(pairs, metadata=None, sort_keys=False):
    header, data, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, arr in pairs:
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        data.append(raw)
        offset += len(raw)
    text = json.dumps(header, sort_keys=sort_keys, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the safetensors package pads
    return struct.pack("<Q", len(text)) + text + b"".join(data)


def read_safetensors(blob):
    """{name: array}, metadata: a reader of the specification, with its checks."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    out, end = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = info["data_offsets"]
        assert begin == end, f"{name}: gap or overlap"
        dtype = np.dtype(SAFETENSORS_NUMPY[info["dtype"]]).newbyteorder("<")
        arr = np.frombuffer(data[begin:stop], dtype=dtype).reshape(info["shape"])
        out[name] = arr
        end = stop
    assert end == len(data), "trailing bytes"
    return out, metadata

# ---------------------------------------------------------------- Flax msgpack (flax/serialization.py)


def _ndarray_to_bytes(arr):
    return msgpack.packb((arr.shape, arr.dtype.name, arr.tobytes("C")), use_bin_type=True)


class BFloat16Bits:
    """An array of bfloat16 bit patterns, encoded as Flax encodes a jnp.bfloat16 array."""

    def __init__(self, bits):
        self.bits = bits


def _msgpack_ext_pack(x):
    if isinstance(x, BFloat16Bits):
        return msgpack.ExtType(1, msgpack.packb((x.bits.shape, "bfloat16", x.bits.tobytes("C")), use_bin_type=True))
    if isinstance(x, np.ndarray):
        return msgpack.ExtType(1, _ndarray_to_bytes(x))
    if np.issctype(type(x)):
        return msgpack.ExtType(3, _ndarray_to_bytes(np.asarray(x)))
    return x


def _chunk(arr, max_chunk_size):
    chunksize = max(1, int(max_chunk_size / arr.dtype.itemsize))
    flat = arr.reshape(-1)
    chunks = [flat[i:i + chunksize] for i in range(0, flat.size, chunksize)]
    return {"__msgpack_chunked_array__": True, "shape": {str(i): d for i, d in enumerate(arr.shape)},
            "chunks": {str(i): c for i, c in enumerate(chunks)}}


def flax_to_bytes(tree):
    return msgpack.packb(tree, default=_msgpack_ext_pack, strict_types=True)


def _dtype_from_name(name):
    return np.uint16 if name == b"bfloat16" else np.dtype(name.decode())  # bfloat16 kept as its bits


def _msgpack_ext_unpack(code, data):
    if code in (1, 3):
        shape, dtype_name, buffer = msgpack.unpackb(data, raw=True)
        arr = np.frombuffer(buffer, dtype=_dtype_from_name(dtype_name)).reshape(shape)
        return arr if code == 1 else arr[()]
    return msgpack.ExtType(code, data)


def _unchunk_in_place(d):
    if isinstance(d, dict):
        if "__msgpack_chunked_array__" in d:
            shape = tuple(d["shape"][str(i)] for i in range(len(d["shape"])))
            chunks = [d["chunks"][str(i)] for i in range(len(d["chunks"]))]
            return np.concatenate(chunks).reshape(shape)
        for k, v in d.items():
            d[k] = _unchunk_in_place(v)
    return d


def flax_msgpack_restore(blob):
    return _unchunk_in_place(msgpack.unpackb(blob, ext_hook=_msgpack_ext_unpack, raw=False))

# ---------------------------------------------------------------- the files


def reference_files():
    """{file name: bytes} of the committed references."""
    variables, extras, x, y = reference()
    pairs = list(flatten(variables)) + [(f"extras/{k}", v) for k, v in extras.items()]
    files = {
        "mlp.safetensors": safetensors_bytes(pairs, {"format": "np", "model": "mlp"}),
        # weft's own order and layout: sorted keys, compact JSON, data in path order.
        "mlp_sorted.safetensors": safetensors_bytes(sorted(flatten(variables)), sort_keys=True),
        "mlp_io.safetensors": safetensors_bytes([("data/x", x), ("data/y", y)]),
    }
    flax_extras = dict(extras)
    flax_extras["brain"] = BFloat16Bits(extras["brain"])
    flax_extras["py_int"] = 12                               # a Python int: a plain msgpack integer
    flax_extras["np_scalar"] = np.float32(2.5)               # a NumPy scalar: extension type 3
    flax_extras["empty_state"] = {}                          # optax.EmptyState()
    flax_extras["chunked"] = _chunk(np.arange(15, dtype=np.float32).reshape(3, 5) - 7, 16)
    files["mlp.msgpack"] = flax_to_bytes({**variables, "extras": flax_extras})
    files["mlp_sorted.msgpack"] = flax_to_bytes(sort_tree(variables))
    return files


def expected_as_weft_loads():
    """{path: array}: what weft must hold after loading mlp.msgpack (float types become float32)."""
    variables, extras, _, _ = reference()
    out = {p: v for p, v in flatten(variables)}
    for k, v in extras.items():
        if k == "brain":
            v = (v.astype(np.uint32) << 16).view(np.float32)
        out[f"extras/{k}"] = v if v.dtype == np.int32 else v.astype(np.float32)
    out["extras/py_int"] = np.array(12, dtype=np.int32)
    out["extras/np_scalar"] = np.array(2.5, dtype=np.float32)
    out["extras/chunked"] = np.arange(15, dtype=np.float32).reshape(3, 5) - 7
    return out


def same(name, got, want):
    got, want = np.asarray(got), np.asarray(want)
    ok = got.shape == want.shape and got.dtype == want.dtype and got.tobytes() == want.tobytes()
    if not ok:
        print(f"{name}: got {got.dtype} {got.shape} {got.ravel()[:4]}, expected {want.dtype} {want.shape} {want.ravel()[:4]}")
    return ok


def check(data_dir, tool):
    ok = True
    for name, blob in reference_files().items():
        with open(os.path.join(data_dir, name), "rb") as f:
            if f.read() != blob:
                print(f"{name}: the committed file differs from what the script writes; run it with `write`")
                ok = False
    want = expected_as_weft_loads()
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([tool, "resave", data_dir, out], check=True)
        with open(os.path.join(out, "mlp.safetensors"), "rb") as f:
            tensors, metadata = read_safetensors(f.read())
        ok &= metadata == {"format": "np", "model": "mlp"}
        want_st = {k: v for k, v in want.items() if k not in ("extras/py_int", "extras/np_scalar", "extras/chunked")}
        ok &= sorted(tensors) == sorted(want_st)
        for k, v in want_st.items():
            ok &= k in tensors and same(f"weft's mlp.safetensors {k}", tensors[k], v)
        for name in ("mlp.msgpack", "mlp_chunked.msgpack"):
            with open(os.path.join(out, name), "rb") as f:
                restored = dict(flatten(flax_msgpack_restore(f.read())))
            ok &= sorted(restored) == sorted(want)
            for k, v in want.items():
                ok &= k in restored and same(f"weft's {name} {k}", restored[k], v)
        with open(os.path.join(out, "mlp_chunked.msgpack"), "rb") as f:
            raw = msgpack.unpackb(f.read(), ext_hook=lambda code, data: msgpack.ExtType(code, data))
        ok &= raw["params"]["Dense_0"]["kernel"].get("__msgpack_chunked_array__") is True
    print("weft's files read back as written" if ok else "mismatch")
    return ok


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        for name, blob in reference_files().items():
            with open(os.path.join(sys.argv[2], name), "wb") as f:
                f.write(blob)
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        return 0 if check(sys.argv[2], sys.argv[3]) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
