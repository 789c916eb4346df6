#!/bin/sh
# Data-parallel throughput: one epoch of weft-train's residual model as 1 process x 1 thread,
# 1 process x 2 threads and 2 ranks x 1 thread (mpirun) with the same global batch B (strong
# scaling), and 2 ranks with B each (global 2B: weak scaling, as data-parallel speed-ups are usually
# quoted). Beside each its bound without communication: two independent processes of the ranks'
# batch at the same time, their rates added (they share the memory system, and a half batch costs
# more per example than a whole one). Then
# dist-bench: the allreduce of the model's gradients against its bytes and the copy bandwidth.
# Usage: bench/data_parallel.sh [--build DIR] [--repeat N] [--batch-size N]
# Needs the Fashion-MNIST package (.ci/deps --data) and OpenMPI.
set -eu

build=build
repeat=3
batch=128
usage="usage: bench/data_parallel.sh [--build DIR] [--repeat N] [--batch-size N]"
while [ $# -gt 0 ]; do
  case "$1" in
    --build | --repeat | --batch-size)
      [ $# -ge 2 ] || { echo "data_parallel.sh: $1 needs a value ($usage)" >&2; exit 2; }
      case "$1" in
        --build) build=$2 ;;
        --repeat) repeat=$2 ;;
        --batch-size) batch=$2 ;;
      esac
      shift 2 ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) echo "data_parallel.sh: unknown option $1 ($usage)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
train=$build/examples/weft-train
[ -x "$train" ] && [ -x "$build/bench/dist-bench" ] ||
  { echo "data_parallel.sh: build weft with MPI first (ninja -C $build)" >&2; exit 1; }
for v in $(env | sed -n 's/^\(OMP_[A-Z_]*\|GOMP_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# examples_per_s of one run's final line
rate() { sed -n 's/^final .*examples_per_s=\([0-9]*\).*/\1/p' "$1"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

half=$((batch / 2))
for i in $(seq "$repeat"); do
  "$train" --epochs 1 --batch-size "$batch" --threads 1 >"$tmp/p1t1.$i" 2>/dev/null
  "$train" --epochs 1 --batch-size "$batch" --threads 2 >"$tmp/p1t2.$i" 2>/dev/null
  mpirun --oversubscribe -np 2 "$train" --data-parallel --epochs 1 --batch-size "$batch" --threads 1 \
    >"$tmp/r2t1.$i" 2>/dev/null
  mpirun --oversubscribe -np 2 "$train" --data-parallel --epochs 1 --batch-size $((2 * batch)) --threads 1 \
    >"$tmp/r2t1w.$i" 2>/dev/null
  for b in "$half" "$batch"; do  # two processes at once, each with its own batch: no communication
    "$train" --epochs 1 --batch-size "$b" --threads 1 >"$tmp/a.$i" 2>/dev/null &
    "$train" --epochs 1 --batch-size "$b" --threads 1 >"$tmp/b.$i" 2>/dev/null
    wait
    echo "final examples_per_s=$(($(rate "$tmp/a.$i") + $(rate "$tmp/b.$i")))" >"$tmp/bound$b.$i"
  done
done
for c in p1t1 p1t2 r2t1 r2t1w "bound$half" "bound$batch"; do
  for i in $(seq "$repeat"); do rate "$tmp/$c.$i"; done | median >"$tmp/$c"
done
one=$(cat "$tmp/p1t1")
printf '| configuration | examples/s (median of %s) | against 1 process x 1 thread |\n|---|---|---|\n' "$repeat"
for c in "p1t1:1 process x 1 thread, batch $batch" "p1t2:1 process x 2 threads, batch $batch" \
  "r2t1:2 ranks x 1 thread, global batch $batch" "bound$half:2 processes of batch $half at once, no communication" \
  "r2t1w:2 ranks x 1 thread, $batch each (global $((2 * batch)))" \
  "bound$batch:2 processes of batch $batch at once, no communication"; do
  v=$(cat "$tmp/${c%%:*}")
  printf '| %s | %s | %s |\n' "${c#*:}" "$v" "$(awk -v a="$v" -v b="$one" 'BEGIN { printf "%.2f", a / b }')"
done
echo
OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 "$build/bench/dist-bench"
