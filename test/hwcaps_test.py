#!/usr/bin/env python3
"""The portable build (-Dcpu=portable): one library for any x86-64 and its x86-64-v3 and -v4
variants under glibc-hwcaps/, of which the dynamic loader loads the best that this processor runs.

Checks that the baseline holds no AVX instruction (so it runs on any x86-64), that each variant
uses its level's registers, that a program loads the variant that ld.so says this processor
supports, and that the suite passes on the other variants too (ld.so --glibc-hwcaps-mask keeps
the loader from the better ones).

Usage: hwcaps_test.py BASELINE_LIB V3_LIB V4_LIB WEFT_TESTS
"""
import os
import re
import subprocess
import sys
import tempfile

SKIP = 77
LOADER = "/lib64/ld-linux-x86-64.so.2"


def registers(lib):
    """The vector register files the library's instructions name: {'xmm', 'ymm', 'zmm'}."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", lib], check=True, capture_output=True,
                          text=True).stdout
    return set(re.findall(r"%([xyz]mm)\d", text))


def loaded_libweft(command):
    """The path of the libweft that the dynamic loader initialises in the process running `command`
    (its own debug log: the suite's child processes write theirs to other files)."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "ld")
        # Without the LD_LIBRARY_PATH that meson test sets to the folders of its arguments (the
        # variants' own folders among them): the programs find the library through their RUNPATH.
        env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=dict(env, LD_DEBUG="libs", LD_DEBUG_OUTPUT=prefix))
        output, _ = process.communicate()
        if process.returncode != 0:
            sys.exit(f"hwcaps_test: {' '.join(command)} failed ({process.returncode}):\n{output[-3000:]}")
        with open(f"{prefix}.{process.pid}") as log:
            paths = re.findall(r"calling init: (\S*libweft\.so[.0-9]*)", log.read())
    if not paths:
        sys.exit(f"hwcaps_test: LD_DEBUG=libs shows no libweft for {' '.join(command)}")
    return os.path.realpath(paths[0]), output


def supported_levels():
    """The glibc-hwcaps levels this processor supports, best first, as ld.so --help lists them."""
    text = subprocess.run([LOADER, "--help"], check=True, capture_output=True, text=True).stdout
    return re.findall(r"^\s+(x86-64-v\d) \(supported", text, re.MULTILINE)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    baseline, v3, v4, weft_tests = (os.path.realpath(p) for p in sys.argv[1:])
    if not os.path.exists(LOADER) or subprocess.run(["objdump", "--version"], capture_output=True).returncode:
        print("hwcaps_test: needs glibc's x86-64 loader and objdump; skipped")
        return SKIP

    failures = []
    seen = {name: registers(lib) for name, lib in (("baseline", baseline), ("x86-64-v3", v3), ("x86-64-v4", v4))}
    print("vector registers used:", {name: sorted(r) for name, r in seen.items()})
    if seen["baseline"] & {"ymm", "zmm"}:
        failures.append(f"the baseline library uses {sorted(seen['baseline'] & {'ymm', 'zmm'})}: it would crash on "
                        "an x86-64 without AVX")
    if "ymm" not in seen["x86-64-v3"] or "zmm" in seen["x86-64-v3"]:
        failures.append(f"the x86-64-v3 variant should use ymm and not zmm: {sorted(seen['x86-64-v3'])}")
    if "zmm" not in seen["x86-64-v4"]:
        failures.append(f"the x86-64-v4 variant uses no zmm register: {sorted(seen['x86-64-v4'])}")

    levels = supported_levels()
    expected = v4 if "x86-64-v4" in levels else v3 if "x86-64-v3" in levels else baseline
    loaded, _ = loaded_libweft([weft_tests, "--list-test-cases"])
    print(f"this processor supports {levels}; a program loads {loaded}")
    if loaded != expected:
        failures.append(f"loaded {loaded}, expected {expected}")

    # The suite on the other levels: --glibc-hwcaps-mask keeps the loader to the subdirectories it
    # lists, and x86-64-v2 is one weft does not build, so that mask leaves the baseline.
    for mask, lib in (("x86-64-v3", v3), ("x86-64-v2", baseline)):
        if mask == "x86-64-v3" and "x86-64-v3" not in levels:
            continue
        loaded, output = loaded_libweft([LOADER, "--glibc-hwcaps-mask", mask, weft_tests])
        print(f"the suite with --glibc-hwcaps-mask {mask}: {loaded}; {output.strip().splitlines()[-2:]}")
        if loaded != lib:
            failures.append(f"with --glibc-hwcaps-mask {mask}, loaded {loaded}, expected {lib}")

    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
