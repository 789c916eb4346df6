#!/usr/bin/env python3
"""weft-train --log-dir: DIR/metrics.jsonl holds the training loss of every step (or the mean of
every --log-every N steps) and the test accuracy of every epoch, matching what weft-train prints;
DIR's TensorBoard event file holds the same scalars (decoded with TensorFlow's message definitions
when protoc and python3-protobuf are there, its records' checksums verified always).

  train_log_test.py WEFT_TRAIN

On a small synthetic Fashion-MNIST (synthetic_fashion_mnist.py): two epochs take a second.
"""
import glob
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "tensorboard"))
import tensorboard_events_test as events  # noqa: E402
from synthetic_fashion_mnist import write_data  # noqa: E402

EPOCHS, BATCH = 2, 32
TRAIN, TEST = 512, 200  # as train_resume_test.py's data
STEPS = TRAIN // BATCH  # an epoch


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def printed_epochs(stdout):
    """(train loss, test accuracy) of each 'epoch i/n: train loss L, test accuracy A' line."""
    return [(float(m[1]), float(m[2])) for m in re.finditer(r"epoch \d+/\d+: train loss (\S+), test accuracy (\S+) ", stdout)]


def event_files(log_dir):
    return sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")))


def check_framing(path):
    """The number of records, each one's CRCs checked (needs no protobuf)."""
    with open(path, "rb") as f:
        data = f.read()
    n, at = 0, 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == events.masked_crc32c(data[at:at + 8]), (path, at)
        body = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == events.masked_crc32c(body), (path, at)
        n, at = n + 1, at + 16 + length
    return n


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        write_data(data, TRAIN, TEST)
        args = [exe, "--data-dir", data, "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--threads", "2"]

        every_step = os.path.join(tmp, "every_step")
        run = subprocess.run(args + ["--log-dir", every_step], capture_output=True, text=True, check=True)
        lines = read_jsonl(os.path.join(every_step, "metrics.jsonl"))
        losses = [l for l in lines if "train_loss" in l]
        accuracies = [l for l in lines if "test_accuracy" in l]
        assert [l["step"] for l in losses] == list(range(1, EPOCHS * STEPS + 1)), losses
        assert all(set(l) == {"step", "train_loss"} for l in losses), losses
        assert [l["step"] for l in accuracies] == [STEPS * e for e in range(1, EPOCHS + 1)], accuracies
        printed = printed_epochs(run.stdout)
        assert len(printed) == EPOCHS, run.stdout
        for e, (loss, accuracy) in enumerate(printed):
            mean = sum(l["train_loss"] for l in losses[e * STEPS:(e + 1) * STEPS]) / STEPS
            assert abs(mean - loss) <= 5e-5, (e, mean, loss)
            assert round(accuracies[e]["test_accuracy"], 4) == accuracy, (e, accuracies[e], accuracy)
        # The accuracy line comes after its epoch's last loss.
        assert lines.index(accuracies[0]) == STEPS, lines[:STEPS + 2]

        # The progress bar, into a pipe: a tenth of an epoch a line, with the speed and the ETA.
        bars = [l for l in run.stderr.splitlines() if l.startswith("epoch ")]
        assert len(bars) == EPOCHS * 10, run.stderr
        assert re.fullmatch(r"epoch 1/2 \[#+\.+\] 2/16 loss \d\.\d{4} \d+ examples/s ETA \d+:\d\d", bars[0]), bars[0]
        assert re.fullmatch(r"epoch 2/2 \[#{30}\] 16/16 loss \d\.\d{4} \d+ examples/s in \d+:\d\d", bars[-1]), bars[-1]

        files = event_files(every_step)
        assert len(files) == 1, files
        assert check_framing(files[0]) == 1 + len(lines)

        # Every 5 steps: the mean of those 5 steps' losses (the training itself is the same).
        every_five = os.path.join(tmp, "every_five")
        subprocess.run(args + ["--log-dir", every_five, "--log-every", "5"], capture_output=True, text=True, check=True)
        fives = [l for l in read_jsonl(os.path.join(every_five, "metrics.jsonl")) if "train_loss" in l]
        assert [l["step"] for l in fives] == list(range(5, EPOCHS * STEPS + 1, 5)), fives
        for l in fives:
            want = sum(x["train_loss"] for x in losses[l["step"] - 5:l["step"]]) / 5
            assert abs(l["train_loss"] - want) <= 1e-12 * abs(want), (l, want)

        why = events.missing_tools()
        if why:
            print(f"TensorBoard events not decoded: {why}")
        else:
            tb = events.read_events(files[0], events.compile_messages(os.path.join(tmp, "pb2")))
            events.check_file_version(files[0], tb)
            want = [(l["step"], name, events.float32(l[name])) for l in lines for name in l if name != "step"]
            assert events.scalars(tb) == want, (events.scalars(tb)[:3], want[:3])

        # An unwritable --log-dir fails before training, naming the option.
        blocker = os.path.join(tmp, "a_file")
        open(blocker, "w").close()
        bad = subprocess.run(args + ["--log-dir", os.path.join(blocker, "logs")], capture_output=True, text=True)
        assert bad.returncode == 1 and "(in --log-dir " in bad.stderr and "epoch 1/" not in bad.stdout, bad
        lonely = subprocess.run(args + ["--log-every", "5"], capture_output=True, text=True)
        assert lonely.returncode == 2 and "--log-every needs --log-dir" in lonely.stderr, lonely.stderr
        zero = subprocess.run(args + ["--log-dir", every_five, "--log-every", "0"], capture_output=True, text=True)
        assert zero.returncode == 2 and "--log-every must be at least 1" in zero.stderr, zero.stderr
    print(f"ok: {len(losses)} losses and {len(accuracies)} accuracies logged, as printed")


if __name__ == "__main__":
    main()
