#!/usr/bin/env python3
"""Writes the seed corpora of the IDX fuzz targets into DIR/raw and DIR/gzip: small valid IDX
files (images, labels, other ranks), their gzip forms, and typical damage (cut data, cut trailer,
trailing bytes, two members). fuzz-idx-gzip compresses its input itself after a first byte that
chooses the damage (see fuzz_idx_gzip.cpp), so its seeds are that byte and a plain IDX file.

Usage: make_corpus.py DIR
"""
import gzip
import os
import struct
import sys


def idx(dims, body, type_byte=0x08):
    head = bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return head + bytes(body)


def main():
    out = sys.argv[1]
    plain = {
        "images": idx([2, 3, 3], [(k * 37 + 11) % 256 for k in range(18)]),
        "labels": idx([5], [0, 9, 3, 3, 255]),
        "scalar": idx([], [7]),
        "rank4": idx([1, 2, 2, 2], range(8)),
        "empty-images": idx([0, 28, 28], []),
        "floats": idx([1], [0, 0, 128, 63], type_byte=0x0D),
    }
    raw = dict(plain)
    for name, data in plain.items():
        gz = gzip.compress(data, mtime=0)
        raw[name + ".gz"] = gz
        raw[name + ".gz-cut-trailer"] = gz[:-4]
        raw[name + ".gz-cut-data"] = gz[: len(gz) // 2]
        raw[name + ".gz-trailing"] = gz + b"\0\0\0\0"
        raw[name + ".gz-two-members"] = gzip.compress(data[:6], mtime=0) + gzip.compress(data[6:], mtime=0)
    seeds = {"raw": raw, "gzip": {}}
    for name, data in plain.items():
        for mode in range(8):
            seeds["gzip"][f"{name}-mode{mode}"] = bytes([mode | (3 << 3)]) + data
    for target, files in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
