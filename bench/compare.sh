#!/bin/sh
# Runs weft-bench and torch-bench on the same workloads and prints, per workload and thread count,
# both medians, the ratio libtorch/weft (> 1: weft is faster) and each process's peak RSS.
# Usage: bench/compare.sh [--build DIR] [--threads 1,2] [--only a,b] [--time SECONDS] [--repeat N]
#
# Every workload runs in its own process per thread count and implementation, under GNU time
# (%M: the peak resident set size in KiB, from wait4), alternating weft and libtorch so that a
# change in the machine's load hits both. Inherited variables that tune OpenMP, OpenBLAS, oneDNN or
# glibc's allocator are removed for both; libtorch then gets its best configuration from
# shared/reference/performance.md, weft nothing. With --repeat N (default 3) every process runs N
# times, still alternating, and the table shows the median of the N medians (these shared machines
# have slow spells that can last seconds) and the largest peak RSS. Progress (the harness lines)
# goes to stderr, the table to stdout.
set -eu

build=build
threads=1,2
only=mlp_infer_b1,mlp_infer_b1_eager,mlp_train_b32,mlp_train_b32_eager,mlp_train_b32_floor,mlp_train_b256_large,mlp_train_b256_large_eager,mlp_train_b256_large_floor,residual_mlp_train,residual_mlp_train_eager,residual_mlp_train_floor,conv_train_b32,conv_train_b32_eager,conv_train_b32_floor,dropout_fwd_16M,layernorm_fwd,op_overhead,gemm_1024,gemm_1024_backend_direct
time_opt=
repeat=3
usage="usage: bench/compare.sh [--build DIR] [--threads 1,2] [--only a,b] [--time SECONDS] [--repeat N]"
while [ $# -gt 0 ]; do
  case "$1" in
    --build | --threads | --only | --time | --repeat)
      [ $# -ge 2 ] || { echo "compare.sh: $1 needs a value ($usage)" >&2; exit 2; }
      case "$1" in
        --build) build=$2 ;;
        --threads) threads=$2 ;;
        --only) only=$2 ;;
        --time) time_opt="--time $2" ;;
        --repeat) repeat=$2 ;;
      esac
      shift 2 ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) echo "compare.sh: unknown option $1 ($usage)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
weft_bin=$build/bench/weft-bench
torch_bin=$build/bench/torch-bench
gnu_time=/usr/bin/time
[ -x "$weft_bin" ] || { echo "compare.sh: $weft_bin not found: build first (meson setup $build && ninja -C $build)" >&2; exit 1; }
[ -x "$torch_bin" ] || {
  echo "compare.sh: $torch_bin not found: install libtorch-dev libopenblas-dev (.ci/deps --bench)," \
    "then meson setup --reconfigure $build -Dbench_torch=enabled && ninja -C $build" >&2
  exit 1
}
[ -x "$gnu_time" ] || { echo "compare.sh: $gnu_time not found: apt-get install time" >&2; exit 1; }
case "$repeat" in '' | *[!0-9]* | 0) echo "compare.sh: --repeat needs a positive whole number ($usage)" >&2; exit 2 ;; esac

# libtorch's best configuration on this kind of machine (performance.md): OpenBLAS's AVX-512
# kernels (it does not recognise newer processors by itself), OpenMP threads that sleep instead of
# spinning against OpenBLAS's pool, and glibc keeping freed memory instead of returning it.
torch_env="OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=PASSIVE"
torch_env="$torch_env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"
# Tuning variables inherited from the caller's environment, removed for both sides.
inherited=$(env | sed -n -E 's/^((OPENBLAS|OMP|GOMP|KMP|DNNL|ONEDNN|MALLOC)_[A-Za-z0-9_]*|GLIBC_TUNABLES)=.*/\1/p')

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/results"
failures=0

# run IMPL WORKLOAD THREADS: one process; appends "IMPL THREADS WORKLOAD MEDIAN_MS RSS_KIB" to results.
run() {
  impl=$1 workload=$2 t=$3 status=0
  if [ "$impl" = weft ]; then bin=$weft_bin extra_env=; else bin=$torch_bin extra_env=$torch_env; fi
  # shellcheck disable=SC2086 # the lists are words by design (no spaces inside the values)
  (for v in $inherited; do unset "$v"; done
    exec env $extra_env "$gnu_time" -f %M -o "$tmp/rss" "$bin" --threads "$t" --only "$workload" $time_opt) \
    >"$tmp/out" 2>"$tmp/err" || status=$?
  if [ "$status" != 0 ]; then
    echo "compare.sh: $impl $workload threads=$t failed (exit $status):" >&2
    cat "$tmp/err" >&2
    failures=$((failures + 1))
    return 0
  fi
  grep '^#' "$tmp/out" >>"$tmp/config" || true
  grep "^$impl threads=" "$tmp/out" >&2 || true
  rss=$(tail -n 1 "$tmp/rss")
  awk -v rss="$rss" -v impl="$impl" '$1 == impl {
      for (i = 4; i <= NF; ++i) if ($i ~ /^median_ms=/) median = substr($i, 11)
      print impl, substr($2, 9), $3, median, rss
    }' "$tmp/out" >>"$tmp/results"
}

: >"$tmp/config"
for workload in $(echo "$only" | tr ',' ' '); do
  for t in $(echo "$threads" | tr ',' ' '); do
    r=0
    while [ "$r" -lt "$repeat" ]; do
      run weft "$workload" "$t"
      run libtorch "$workload" "$t"
      r=$((r + 1))
    done
  done
done

sort -u "$tmp/config"
echo "# libtorch environment: $torch_env"
[ -z "$inherited" ] || echo "# removed from the environment of both: $(echo "$inherited" | paste -s -d ' ' -)"
echo "# ratio = libtorch/weft median (> 1: weft is faster), medians of $repeat runs each; RSS = largest peak resident set"
# Median of each (impl, threads, workload)'s run medians, and its largest RSS.
sort -k1,1 -k2,2n -k3,3 -k4,4g "$tmp/results" | awk '
  function flush() { if (n) print key, (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2), maxrss }
  { k = $1 " " $2 " " $3
    if (k != key) { flush(); key = k; n = 0; maxrss = 0 }
    v[++n] = $4; if ($5 + 0 > maxrss) maxrss = $5 + 0 }
  END { flush() }' >"$tmp/summary"
awk -v only="$only" -v threads="$threads" '
  { median[$1, $2, $3] = $4; rss[$1, $2, $3] = $5 }
  function show(v) { return v == "" ? "-" : v }
  function mib(kib) { return kib == "" ? "-" : sprintf("%.1f", kib / 1024) }
  END {
    fmt = "%-26s %7s %12s %12s %8s %10s %10s\n"
    printf fmt, "workload", "threads", "weft_ms", "libtorch_ms", "ratio", "weft_MiB", "torch_MiB"
    nw = split(only, ws, ","); nt = split(threads, ts, ",")
    for (i = 1; i <= nw; ++i) for (j = 1; j <= nt; ++j) {
      w = ws[i]; t = ts[j]
      a = median["weft", t, w]; b = median["libtorch", t, w]
      ratio = (a != "" && b != "" && a > 0) ? sprintf("%.2f", b / a) : "-"
      printf fmt, w, t, show(a), show(b), ratio, mib(rss["weft", t, w]), mib(rss["libtorch", t, w])
    }
  }' "$tmp/summary"
[ "$failures" = 0 ] || { echo "compare.sh: $failures run(s) failed (see above)" >&2; exit 1; }
