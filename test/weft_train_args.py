#!/usr/bin/env python3
"""weft-train's checks of its arguments and data, run before any training: each bad case must
exit with the given status and a message naming the argument or file and the fix.

Usage: weft_train_args.py PATH/TO/weft-train

The data sets are tiny IDX files written here into a temporary directory (a few images each), so
the whole run takes a few seconds.
"""
import gzip
import os
import struct
import subprocess
import sys
import tempfile


def idx(dims, body):
    magic = 0x0800 | len(dims)
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(body)


def write_split(directory, prefix, n, rows=28, cols=28, compress=True):
    """prefix is 'train' or 't10k'; labels cycle through 0..9."""
    images = idx([n, rows, cols], [(k * 37 + 11) % 256 for k in range(n * rows * cols)])
    labels = idx([n], [k % 10 for k in range(n)])
    for name, data in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        if compress:
            with gzip.open(os.path.join(directory, name + ".gz"), "wb") as f:
                f.write(data)
        else:
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)


def data_dir(root, name, train=8, test=4, size=28, test_size=None):
    """Training split gzip-compressed, test split raw: both forms are read."""
    d = os.path.join(root, name)
    os.makedirs(d)
    write_split(d, "train", train, size, size)
    test_size = size if test_size is None else test_size
    write_split(d, "t10k", test, test_size, test_size, compress=False)
    return d


def main():
    exe = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory(prefix="weft-train-args-") as root:
        good = data_dir(root, "good")
        a_file = os.path.join(root, "not-a-dir")
        with open(a_file, "w") as f:
            f.write("x\n")
        cases = [
            # (description, arguments, exit status, words the message must contain)
            ("a negative seed", ["--seed", "-1", "--data-dir", good], 2,
             ["--seed must be a non-negative integer", "'-1'"]),
            ("a signed seed", ["--seed", "+5", "--data-dir", good], 2, ["--seed", "'+5'"]),
            ("a stray positional argument", ["foo", "--epochs", "1"], 2,
             ["unexpected argument 'foo'", "--name VALUE"]),
            ("a positional argument after the options", ["--data-dir", good, "extra"], 2,
             ["unexpected argument 'extra'"]),
            ("--data-dir naming a file", ["--data-dir", a_file], 2,
             ["--data-dir " + a_file, "is a file, not a directory", "directory that holds"]),
            ("a batch larger than the training set", ["--data-dir", good, "--batch-size", "9"], 2,
             ["--batch-size 9 is larger than the 8 training images", good, "--batch-size 8 or less"]),
            ("an empty training set", ["--data-dir", data_dir(root, "empty", train=0)], 2,
             ["training split", "holds no images", "--data-dir"]),
            ("an empty test set", ["--data-dir", data_dir(root, "no-test", test=0)], 2,
             ["test split", "holds no images"]),
            ("test images of another size", ["--data-dir", data_dir(root, "sizes", test_size=14)], 2,
             ["test images", "are 14x14", "training images", "are 28x28", "same data set"]),
            ("images too small for the cnn",
             ["--model", "cnn", "--data-dir", data_dir(root, "tiny", size=3)], 2,
             ["--model cnn needs images of at least 4x4", "3x3", "--model residual"]),
            ("a learning rate that makes the loss non-finite",
             ["--data-dir", good, "--batch-size", "2", "--epochs", "3", "--lr", "1e38"], 1,
             ["training diverged", "the loss is", "smaller --lr", "1e+38"]),
        ]
        for what, args, status, words in cases:
            run = subprocess.run([exe] + args, capture_output=True, text=True, timeout=120)
            problems = []
            if run.returncode != status:
                problems.append(f"exit status {run.returncode}, expected {status}")
            for w in words:
                if w not in run.stderr:
                    problems.append(f"message lacks {w!r}")
            if "epoch 1/" in run.stdout + run.stderr and status == 2:
                problems.append("training started before the check")
            if problems:
                failures.append(f"{what}: {'; '.join(problems)}\n  args: {args}\n  stderr: {run.stderr.strip()}")
        # The positive control: the same tiny data trains, and the output ends as documented.
        run = subprocess.run([exe, "--data-dir", good, "--batch-size", "4", "--epochs", "1"],
                             capture_output=True, text=True, timeout=120)
        last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
        if run.returncode != 0 or not last.startswith("final model=residual test_accuracy="):
            failures.append(f"valid tiny data: exit {run.returncode}, last line {last!r}\n  stderr: {run.stderr.strip()}")
    for f in failures:
        print("FAIL " + f)
    print(f"{len(cases) + 1 - len(failures)} of {len(cases) + 1} weft-train cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
