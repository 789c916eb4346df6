"""A small synthetic Fashion-MNIST: the four IDX files, uncompressed, with images that depend on
their labels, so that a model has something to learn in a few steps. Standard library only; the
same arguments write the same bytes.
"""
import os
import random
import struct


def write_idx(path, dims, body):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x800 + len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + body)


def write_data(directory, train, test, seed=7, signal=24, stripes="pixels"):
    """Writes train-* (`train` images) and t10k-* (`test` images) into `directory`: noise in [0, 64)
    plus `signal` on the label's stripes: with stripes="pixels", the pixels p (in row-major order)
    with p % 10 == label, a fine diagonal pattern that a dense layer picks up; with "columns", the
    columns c with c % 10 == label, which survive a CNN's pooling and mark every row alike for a
    model that reads the image row by row."""
    rng = random.Random(seed)
    stripe = {"pixels": lambda p: p % 10, "columns": lambda p: p % 28 % 10}[stripes]
    for prefix, n in (("train", train), ("t10k", test)):
        labels = bytes(rng.randrange(10) for _ in range(n))
        images = bytes(min(255, rng.randrange(64) + (signal if stripe(p) == labels[i] else 0))
                       for i in range(n) for p in range(28 * 28))
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), [n, 28, 28], images)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), [n], labels)
