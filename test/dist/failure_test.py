#!/usr/bin/env python3
"""A rank that hangs: the other stops with a TimeoutError naming it, and the job ends, in seconds.

  failure_test.py MPIEXEC HANG_PROGRAM
"""
import subprocess
import sys
import time


def main():
    mpiexec, hang = sys.argv[1], sys.argv[2]
    start = time.monotonic()
    run = subprocess.run([mpiexec, "--oversubscribe", "-np", "2", hang], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    output = run.stdout + run.stderr
    assert run.returncode != 0, f"the job succeeded although rank 1 hung:\n{output}"
    want = "weft::dist::psum: rank 0 waited 1 s for rank 1 (of 2 ranks), which did not answer"
    assert want in output, f"no message naming the hung rank in:\n{output}"
    # A 1 s timeout, then MPI_Abort: far less than the 60 s rank 1 sleeps.
    assert elapsed < 30, f"the job took {elapsed:.1f} s to stop"
    print(f"stopped after {elapsed:.1f} s (rc {run.returncode}): {want}")


if __name__ == "__main__":
    main()
