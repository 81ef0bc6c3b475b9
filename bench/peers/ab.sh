#!/bin/bash
# Times builds of libwsrt.so against each other under one wsrt_bench, the
# way docs/performance.md's before/after figures are taken:
#
#   bench/peers/ab.sh WORKLOAD N ROUNDS DIR...
#
# Each DIR holds a libwsrt.so and a wsrt_bench next to it (copy the same
# wsrt_bench into each: it loads the library from its own directory,
# RUNPATH $ORIGIN; build it with build.sh from the oldest sources compared,
# so that every library has the symbols it calls). Every round runs each
# DIR once, `wsrt_bench WORKLOAD 0 1 N`, in an order that rotates. Prints,
# per DIR, the median, the minimum and the mean of the fastest quarter in
# ns a task, and against the first DIR the median of the per-round ratios
# and in how many rounds it was faster. On a noisy host the per-round
# ratios and the fastest quarter say more than the medians.
set -eu
if [ $# -lt 4 ]; then
    sed -n 2,15p "$0" >&2
    exit 2
fi
workload=$1 n=$2 rounds=$3
shift 3
dirs=("$@")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((i = 0; i < rounds; i++)); do
    for ((j = 0; j < ${#dirs[@]}; j++)); do
        d=${dirs[$(((i + j) % ${#dirs[@]}))]}
        line=$("$d/wsrt_bench" "$workload" 0 1 "$n")
        ns=$(echo "$line" | sed -n 's/.* ns=\([0-9]*\).*/\1/p')
        count=$(echo "$line" | sed -n 's/.* count=\([0-9]*\).*/\1/p')
        echo "$i $d $ns $count" >>"$out"
    done
done
python3 - "$out" "${dirs[@]}" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
dirs = sys.argv[2:]
per = {d: {int(r): int(ns) / int(c) for r, x, ns, c in rows if x == d} for d in dirs}
for d in dirs:
    v = sorted(per[d].values())
    q = v[: max(1, len(v) // 4)]
    print(f"{d}: median {statistics.median(v):.2f}, min {v[0]:.2f}, "
          f"fastest quarter {sum(q) / len(q):.2f} ns a task")
base = per[dirs[0]]
for d in dirs[1:]:
    r = [per[d][k] / base[k] for k in base if k in per[d]]
    print(f"{d} / {dirs[0]}: per-round median {statistics.median(r):.3f}, "
          f"faster in {sum(x < 1 for x in r)} of {len(r)}")
PY
