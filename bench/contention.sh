#!/bin/sh
# One epoch of weft-train's residual model on one and on two threads, on a quiet machine and beside
# one competing busy process, side by side: does weft keep its speed when it shares the machine?
# Usage: bench/contention.sh [--build DIR] [--repeat N] [--model residual|cnn]
#
# Each configuration runs N times (default 3), alternating, and the table shows the median epoch
# time (the figure weft-train prints for the epoch, data loading excluded). The competitor is a
# shell busy loop started before the loaded runs and killed after them. No variables are set: the
# inherited OMP_* and GOMP_* are removed, as a user's shell would not have them. Needs the
# Fashion-MNIST package (.ci/deps --data).
set -eu

build=build
repeat=3
model=residual
usage="usage: bench/contention.sh [--build DIR] [--repeat N] [--model residual|cnn]"
while [ $# -gt 0 ]; do
  case "$1" in
    --build | --repeat | --model)
      [ $# -ge 2 ] || { echo "contention.sh: $1 needs a value ($usage)" >&2; exit 2; }
      case "$1" in
        --build) build=$2 ;;
        --repeat) repeat=$2 ;;
        --model) model=$2 ;;
      esac
      shift 2 ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) echo "contention.sh: unknown option $1 ($usage)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
train=$build/examples/weft-train
[ -x "$train" ] || { echo "contention.sh: $train not found; build it: ninja -C $build examples/weft-train" >&2; exit 1; }
for v in $(env | sed -n 's/^\(OMP_[A-Z_]*\|GOMP_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

tmp=$(mktemp -d)
busy=
cleanup() { [ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

# Epoch seconds of one run, from weft-train's "epoch 1/1: ... (5.4 s)" line.
epoch_s() {
  "$train" --model "$model" --epochs 1 --threads "$1" 2>/dev/null |
    sed -n 's/^epoch 1\/1: .*(\([0-9.]*\) s)$/\1/p'
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for load in quiet loaded; do
  if [ "$load" = loaded ]; then
    sh -c 'while :; do :; done' &
    busy=$!
  fi
  i=0
  while [ "$i" -lt "$repeat" ]; do
    for t in 1 2; do
      s=$(epoch_s "$t")
      echo "$load threads=$t epoch_s=$s" >&2
      echo "$s" >>"$tmp/$load-$t"
    done
    i=$((i + 1))
  done
  if [ -n "$busy" ]; then kill "$busy"; wait "$busy" 2>/dev/null || true; busy=; fi
done

q1=$(median "$tmp/quiet-1"); q2=$(median "$tmp/quiet-2")
l1=$(median "$tmp/loaded-1"); l2=$(median "$tmp/loaded-2")
echo "| model | threads | quiet epoch s | beside one busy process | loaded / quiet |"
echo "|---|---|---|---|---|"
awk -v m="$model" -v q1="$q1" -v q2="$q2" -v l1="$l1" -v l2="$l2" 'BEGIN {
  printf "| %s | 1 | %.2f | %.2f | %.2f |\n", m, q1, l1, l1 / q1
  printf "| %s | 2 | %.2f | %.2f | %.2f |\n", m, q2, l2, l2 / q2
  printf "\nloaded: threads 2 / threads 1 = %.2f (at most 1); threads 2 loaded / quiet = %.2f (at most 1.6)\n", l2 / l1, l2 / q2
}'
