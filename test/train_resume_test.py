#!/usr/bin/env python3
"""weft-train's checkpoints: a run killed after an epoch's checkpoint and resumed with --resume ends
with the same test accuracy and the same final checkpoint, byte for byte, as a run never
interrupted; --eval-only prints the accuracy of the latest checkpoint.

  train_resume_test.py WEFT_TRAIN

The data is a small synthetic Fashion-MNIST (IDX files written here), so that an epoch takes a
fraction of a second. Needs only Python's standard library.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

from synthetic_fashion_mnist import write_data

TRAIN, TEST, EPOCHS, BATCH = 512, 200, 3, 32


def final_fields(output):
    line = output.strip().splitlines()[-1]
    assert line.startswith("final "), f"no final line in:\n{output}"
    return dict(field.split("=", 1) for field in line.split()[1:])


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        write_data(data, TRAIN, TEST)
        args = [exe, "--data-dir", data, "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--threads", "2"]
        steps = TRAIN // BATCH * EPOCHS
        final_name = f"step_{steps:06d}"

        straight_dir = os.path.join(tmp, "straight")
        straight = subprocess.run(args + ["--checkpoint-dir", straight_dir], capture_output=True, text=True, check=True)
        want = final_fields(straight.stdout)
        assert "examples_per_s" in want and float(want["examples_per_s"]) > 0, want

        # Killed as soon as the first epoch's checkpoint is published.
        resumed_dir = os.path.join(tmp, "resumed")
        child = subprocess.Popen(args + ["--checkpoint-dir", resumed_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        latest = os.path.join(resumed_dir, "latest")
        while not os.path.exists(latest) and child.poll() is None:
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        with open(latest) as f:
            killed_at = f.read().strip()
        assert killed_at != final_name, "the run ended before it was killed; the test needs longer epochs"
        resumed = subprocess.run(args + ["--checkpoint-dir", resumed_dir, "--resume"], capture_output=True, text=True, check=True)
        assert "resuming after epoch" in resumed.stdout, resumed.stdout
        got = final_fields(resumed.stdout)
        assert got["test_accuracy"] == want["test_accuracy"], (got, want)
        with open(os.path.join(straight_dir, final_name, "checkpoint.safetensors"), "rb") as f:
            a = f.read()
        with open(os.path.join(resumed_dir, final_name, "checkpoint.safetensors"), "rb") as f:
            b = f.read()
        assert a == b, "the resumed run's final checkpoint differs from the uninterrupted run's"

        evaluated = subprocess.run(args + ["--checkpoint-dir", straight_dir, "--eval-only"], capture_output=True, text=True, check=True)
        assert final_fields(evaluated.stdout)["test_accuracy"] == want["test_accuracy"], evaluated.stdout

        # A resume with other options is refused, naming the option.
        other = subprocess.run([exe, "--data-dir", data, "--epochs", str(EPOCHS), "--batch-size", "16", "--checkpoint-dir",
                                straight_dir, "--resume"], capture_output=True, text=True)
        assert other.returncode == 1 and "batch_size 32 but this run has 16" in other.stderr, other.stderr
        print(f"killed after {killed_at}; resumed run ends as the straight one: test_accuracy={got['test_accuracy']}, "
              f"final checkpoints identical ({len(a)} bytes)")


if __name__ == "__main__":
    main()
