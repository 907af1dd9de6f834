#!/usr/bin/env bash
# The cycle collector against CPython's, same graphs, same run:
#   bench/gc_vs_cpython.sh [build dir] [cycles] [live]
set -eu
BUILD=${1:-build}
CYCLES=${2:-500000}
LIVE=${3:-1000000}
"$BUILD/bench/gc_bench" "$CYCLES" "$LIVE"
/usr/bin/python3 - "$CYCLES" "$LIVE" <<'PY'
import gc, sys, time
cycles, live = int(sys.argv[1]), int(sys.argv[2])
gc.disable()
for _ in range(cycles):
    a = []; b = [a]; a.append(b)
del a, b
t = time.perf_counter(); n = gc.collect(); t = time.perf_counter() - t
print(f"cpython  two-cycles: {n} objects collected in {t*1e3:.1f} ms ({t*1e9/n:.1f} ns/object)")
head = None
keep = []
for _ in range(live):
    head = [head]
    keep.append(head)
t = time.perf_counter(); gc.collect(); t = time.perf_counter() - t
print(f"cpython  live heap:  {live} live lists, nothing released: gc.collect() in {t*1e3:.3f} ms")
PY
