#!/usr/bin/env python3
"""The Fashion-MNIST examples, run briefly on a small synthetic data set (IDX files written here):
flax-mnist and transformer-classifier train an epoch and must beat chance by far; checkpoint-resume
run straight to step N and run to step K, then resumed to N, must print the same final line
(the parameters' CRC-32 included), and a resume with other data is refused.

  examples_test.py FLAX_MNIST TRANSFORMER_CLASSIFIER CHECKPOINT_RESUME

Needs only Python's standard library.
"""
import os
import subprocess
import sys
import tempfile

from synthetic_fashion_mnist import write_data

TRAIN, TEST = 2048, 500
# Ten classes: chance is 0.1. An epoch on these images reaches about 0.8 (CNN) and 1.0 (Transformer).
ACCURACY_FLOOR = 0.5


def run(args):
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return done.stdout


def final_line(output):
    line = output.strip().splitlines()[-1]
    assert line.startswith("final "), f"no final line in:\n{output}"
    return line


def final_fields(output):
    return dict(field.split("=", 1) for field in final_line(output).split()[1:])


def check_classifier(exe, data):
    output = run([exe, "--data-dir", data, "--epochs", "1", "--threads", "2"])
    fields = final_fields(output)
    assert set(fields) == {"test_accuracy", "wall_s"}, fields
    accuracy, wall = float(fields["test_accuracy"]), float(fields["wall_s"])
    assert ACCURACY_FLOOR < accuracy <= 1.0, f"{os.path.basename(exe)}: test accuracy {accuracy}\n{output}"
    assert wall > 0, fields
    # One log line per epoch before the final line.
    assert "test_accuracy" in output.strip().splitlines()[-2], output
    return accuracy


def check_resume(exe, data, tmp):
    steps, interrupted_at, save_every = 30, 20, 10
    args = [exe, "--data-dir", data, "--train-examples", "1024", "--threads", "2", "--save-every", str(save_every)]
    straight_dir, resumed_dir = os.path.join(tmp, "straight"), os.path.join(tmp, "resumed")

    straight = final_line(run(args + ["--checkpoint-dir", straight_dir, "--steps", str(steps)]))
    assert straight.startswith(f"final step={steps} "), straight

    first = final_line(run(args + ["--checkpoint-dir", resumed_dir, "--steps", str(interrupted_at)]))
    assert first.startswith(f"final step={interrupted_at} "), first
    assert first.split()[-1] != straight.split()[-1], "the parameters did not change between the two stops"
    output = run(args + ["--checkpoint-dir", resumed_dir, "--steps", str(steps), "--resume"])
    assert f"resuming from step {interrupted_at}" in output, output
    resumed = final_line(output)
    assert resumed == straight, f"resumed: {resumed}\nstraight: {straight}"
    assert sorted(os.listdir(resumed_dir)) == ["latest", "step_000010", "step_000020", "step_000030"], \
        os.listdir(resumed_dir)

    # Training again into a directory that holds checkpoints, or resuming with other data, is refused.
    again = subprocess.run(args + ["--checkpoint-dir", resumed_dir, "--steps", "40"], capture_output=True, text=True)
    assert again.returncode == 1 and "already holds checkpoints up to step 30; pass --resume" in again.stderr, again.stderr
    other = subprocess.run([exe, "--data-dir", data, "--train-examples", "512", "--checkpoint-dir", resumed_dir,
                            "--steps", "40", "--resume"], capture_output=True, text=True)
    assert other.returncode == 1 and "train_examples 1024 but this run has 512" in other.stderr, other.stderr
    return resumed


def check_bad_arguments(exe, data):
    for args, words in ((["--epochs", "0"], "--epochs must be an integer of at least 1, got 0"),
                        (["--epochs", "2x"], "bad value '2x' for --epochs"),
                        (["--train-examples", "100"], "use --train-examples 128 or more"),
                        (["--train-examples", "9999"], "asks for more than the 2048 training images"),
                        (["--threads"], "option --threads needs a value"),
                        (["--bogus", "1"], "unknown option --bogus")):
        done = subprocess.run([exe, "--data-dir", data] + args, capture_output=True, text=True)
        assert done.returncode == 2 and words in done.stderr, (args, done.returncode, done.stderr)


def main():
    flax_mnist, transformer, checkpoint_resume = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        # Column stripes: they survive the CNN's pooling and mark every row for the Transformer.
        write_data(data, TRAIN, TEST, signal=96, stripes="columns")
        cnn = check_classifier(flax_mnist, data)
        attention = check_classifier(transformer, data)
        check_bad_arguments(flax_mnist, data)
        bad_dropout = subprocess.run([transformer, "--data-dir", data, "--dropout", "1"], capture_output=True, text=True)
        assert bad_dropout.returncode == 2 and "--dropout must be in [0, 1), got 1" in bad_dropout.stderr, bad_dropout.stderr
        resumed = check_resume(checkpoint_resume, data, tmp)
        print(f"flax-mnist test_accuracy={cnn}, transformer-classifier test_accuracy={attention}; "
              f"checkpoint-resume resumed as straight: {resumed}")


if __name__ == "__main__":
    main()
