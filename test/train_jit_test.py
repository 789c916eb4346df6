#!/usr/bin/env python3
"""weft-train compiles its steps with weft::jit by default: on a small synthetic Fashion-MNIST, a
run with jit and one with --no-jit (eager mode) end with the same test accuracy and the same
parameters, bit for bit (their CRC-32), for both models; the last batch of the test set is smaller
than the others, so the evaluation step is traced twice.

  train_jit_test.py WEFT_TRAIN

Needs only Python's standard library.
"""
import os
import subprocess
import sys
import tempfile

from synthetic_fashion_mnist import write_data
from train_resume_test import final_fields

TRAIN, TEST, BATCH = 512, 1300, 64


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        write_data(data, TRAIN, TEST)
        for model in ("residual", "cnn"):
            args = [exe, "--data-dir", data, "--model", model, "--epochs", "2", "--batch-size", str(BATCH),
                    "--threads", "2"]
            jitted = final_fields(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
            eager = final_fields(subprocess.run(args + ["--no-jit"], capture_output=True, text=True, check=True).stdout)
            for field in ("test_accuracy", "params_crc32"):
                assert jitted[field] == eager[field], \
                    f"{model}: {field} {jitted[field]} (jit) != {eager[field]} (eager)"
            print(f"{model}: jit and --no-jit agree: test_accuracy={jitted['test_accuracy']} "
                  f"params_crc32={jitted['params_crc32']}")


if __name__ == "__main__":
    main()
