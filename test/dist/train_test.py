#!/usr/bin/env python3
"""weft-train --data-parallel on 2 ranks, on a small synthetic Fashion-MNIST:

- against 1 process with the same global batch: the parameters after 50 steps of the residual
  model (dropout 0) agree to 1e-5 relative, leaf by leaf;
- two runs on 2 ranks end with bit-identical checkpoints and the same params_crc32;
- a rank killed mid-training stops the job in seconds with a message naming it, and --resume
  (on 2 ranks) reaches the uninterrupted run's final line; a 2-rank checkpoint resumes on 1 rank.

  train_test.py MPIEXEC WEFT_TRAIN
"""
import array
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import train_resume_test  # noqa: E402  (its final_fields)
from synthetic_fashion_mnist import write_data  # noqa: E402

TRAIN, TEST = 1600, 200
BATCH = 32  # 50 steps an epoch


def final_fields(output):
    return train_resume_test.final_fields(output)


def read_params(path):
    """The float32 params of a safetensors checkpoint: {path: array('f')}."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    params = {}
    for name, info in header.items():
        if name == "__metadata__" or not name.startswith("variables/params/"):
            continue
        begin, end = info["data_offsets"]
        values = array.array("f")
        values.frombytes(blob[8 + header_len + begin:8 + header_len + end])
        params[name] = values
    return params


def rank_pid(mpirun_pid, rank):
    """The pid of the given rank among mpirun's descendants (OpenMPI sets OMPI_COMM_WORLD_RANK)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env and "weft-train" in stat:
            return int(entry)
    return None


def main():
    mpiexec, exe = sys.argv[1], sys.argv[2]
    mpi = [mpiexec, "--oversubscribe", "-np"]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        write_data(data, TRAIN, TEST)
        common = ["--data-dir", data, "--batch-size", str(BATCH), "--threads", "1"]

        def run(ranks, name, *extra):
            cmd = ([exe] if ranks == 0 else mpi + [str(ranks), exe, "--data-parallel"]) + common + list(extra)
            cmd += ["--checkpoint-dir", os.path.join(tmp, name)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}"
            return done.stdout

        # 1 process against 2 ranks, 50 steps without dropout.
        one = final_fields(run(0, "one", "--epochs", "1", "--dropout", "0"))
        two = final_fields(run(2, "two", "--epochs", "1", "--dropout", "0"))
        a = read_params(os.path.join(tmp, "one", "step_000050", "checkpoint.safetensors"))
        b = read_params(os.path.join(tmp, "two", "step_000050", "checkpoint.safetensors"))
        assert a.keys() == b.keys() and a, (a.keys(), b.keys())
        worst = 0.0
        for name in a:
            diff = math.sqrt(sum((x - y) ** 2 for x, y in zip(a[name], b[name])))
            norm = math.sqrt(sum(x * x for x in a[name]))
            worst = max(worst, diff / max(norm, 1e-30))
        assert worst <= 1e-5, f"2 ranks and 1 process differ by {worst:.3g} relative after 50 steps"
        print(f"50 steps, 1 process vs 2 ranks: largest relative difference of a leaf {worst:.2e}; "
              f"accuracy {one['test_accuracy']} vs {two['test_accuracy']}")

        # Two runs on 2 ranks: bit for bit the same.
        again = final_fields(run(2, "again", "--epochs", "1", "--dropout", "0"))
        assert again["params_crc32"] == two["params_crc32"], (again, two)
        with open(os.path.join(tmp, "two", "step_000050", "checkpoint.safetensors"), "rb") as f:
            first = f.read()
        with open(os.path.join(tmp, "again", "step_000050", "checkpoint.safetensors"), "rb") as f:
            second = f.read()
        assert first == second, "two 2-rank runs with the same seed wrote different checkpoints"

        # The uninterrupted run, then one whose rank 1 is killed after the first epoch's checkpoint.
        want = final_fields(run(2, "straight", "--epochs", "3"))
        killed_dir = os.path.join(tmp, "killed")
        cmd = mpi + ["2", exe, "--data-parallel"] + common + ["--epochs", "3", "--checkpoint-dir", killed_dir]
        job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        latest = os.path.join(killed_dir, "latest")
        while not os.path.exists(latest) and job.poll() is None:
            time.sleep(0.005)
        pid = rank_pid(job.pid, 1)
        assert pid is not None, "rank 1 not found"
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        output, _ = job.communicate(timeout=120)
        stopped_after = time.monotonic() - killed_at
        assert job.returncode != 0, f"the job succeeded although rank 1 was killed:\n{output}"
        assert "rank 1" in output, f"no message naming rank 1:\n{output}"
        assert stopped_after < 30, f"the job took {stopped_after:.1f} s to stop after rank 1 died"
        with open(latest) as f:
            assert f.read().strip() != "step_000150", "the run ended before it was killed"
        shutil.copytree(killed_dir, os.path.join(tmp, "killed_one"))
        got = final_fields(run(2, "killed", "--epochs", "3", "--resume"))
        assert (got["test_accuracy"], got["params_crc32"]) == (want["test_accuracy"], want["params_crc32"]), (got, want)
        print(f"rank 1 killed: the job stopped {stopped_after:.1f} s later; --resume ends as the straight run: "
              f"test_accuracy={got['test_accuracy']} params_crc32={got['params_crc32']}")

        # A 2-rank checkpoint resumes on 1 rank: the state is global (the masks differ, so the result does).
        resumed_one = run(1, "killed_one", "--epochs", "3", "--resume")
        assert "resuming after epoch" in resumed_one, resumed_one
        assert float(final_fields(resumed_one)["test_accuracy"]) > 0.5, resumed_one


if __name__ == "__main__":
    main()
