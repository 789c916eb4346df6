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

SKIP = 77
LOADER = "/lib64/ld-linux-x86-64.so.2"


def registers(lib):
    """The vector register files the library's instructions name: {'xmm', 'ymm', 'zmm'}."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", lib], check=True, capture_output=True,
                          text=True).stdout
    return set(re.findall(r"%([xyz]mm)\d", text))


def loaded_libweft(command, env=None):
    """The path of the libweft that the dynamic loader initialises when running `command`."""
    run_env = dict(os.environ, LD_DEBUG="libs", **(env or {}))
    result = subprocess.run(command, capture_output=True, text=True, env=run_env)
    if result.returncode != 0:
        sys.exit(f"hwcaps_test: {' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}"
                 f"{result.stderr[-3000:]}")
    paths = re.findall(r"calling init: (\S*libweft\.so[.0-9]*)", result.stderr)
    if not paths:
        sys.exit(f"hwcaps_test: LD_DEBUG=libs shows no libweft for {' '.join(command)}")
    return os.path.realpath(paths[0]), result


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
        loaded, result = loaded_libweft([LOADER, "--glibc-hwcaps-mask", mask, weft_tests])
        print(f"the suite with --glibc-hwcaps-mask {mask}: {loaded}; {result.stdout.strip().splitlines()[-2:]}")
        if loaded != lib:
            failures.append(f"with --glibc-hwcaps-mask {mask}, loaded {loaded}, expected {lib}")

    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
