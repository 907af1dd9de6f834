#!/usr/bin/env bash
# The cycle collector against CPython's, same graphs, same machine, same run:
#   perf/gc_vs_cpython.sh [build dir] [cycles] [live] [churn] [runs]
# rcstore's garbage is built the way clients build it (gc_bench's "clients"
# case: through the command layer, on a heap that churned `churn` objects
# first); CPython's is `cycles` pairs of lists a <-> b on a fresh heap, and
# again after a churn like rcstore's. Each side collects `runs` times; the
# last lines put them side by side.
set -eu
BUILD=${1:-build}
CYCLES=${2:-500000}
LIVE=${3:-1000000}
CHURN=${4:-3000000}
RUNS=${5:-5}
/usr/bin/python3 - "$BUILD/perf/gc_bench" "$CYCLES" "$LIVE" "$CHURN" "$RUNS" <<'PY'
import gc, re, statistics, subprocess, sys, time
bench, cycles, live, churn, runs = sys.argv[1], *map(int, sys.argv[2:])
out = subprocess.run([bench, str(cycles), str(live), str(churn), str(runs)], check=True,
                     capture_output=True, text=True).stdout
print(out, end="")
sync = [float(x) for x in re.findall(r"clients two-cycles: \d+ objects collected by gc in ([\d.]+) ms", out)]
sliced = [float(x) for x in re.findall(r"clients two-cycles sliced: .* total ([\d.]+) ms", out)]

gc.disable()
py = []
for _ in range(runs):
    for _ in range(cycles):
        a = []; b = [a]; a.append(b)
    del a, b
    t = time.perf_counter(); n = gc.collect(); t = time.perf_counter() - t
    py.append(t * 1e3)
    print(f"cpython  two-cycles: {n} objects collected in {t*1e3:.1f} ms ({t*1e9/n:.1f} ns/object)")
# CPython after the same churn as rcstore's heap: churn lists made and 15
# in 16 dropped in random order, so its allocator's free blocks are
# scattered too. Reported apart; the ratio above is against the fresh heap.
import random
rnd = random.Random(1)
kept = []
objs = [[] for _ in range(churn)]
rnd.shuffle(objs)
kept = objs[::16]
del objs
pyc = []
for _ in range(runs):
    for _ in range(cycles):
        a = []; b = [a]; a.append(b)
    del a, b
    t = time.perf_counter(); n = gc.collect(); t = time.perf_counter() - t
    pyc.append(t * 1e3)
    print(f"cpython  two-cycles after churn: {n} objects collected in {t*1e3:.1f} ms")
del kept
if live > 0:
    head = None
    keep = []
    for _ in range(live):
        head = [head]
        keep.append(head)
    t = time.perf_counter(); gc.collect(); t = time.perf_counter() - t
    print(f"cpython  live heap:  {live} live lists, nothing released: gc.collect() in {t*1e3:.3f} ms")

def rng(v):
    return f"{min(v):.1f}-{max(v):.1f} ms (median {statistics.median(v):.1f})"
pm = statistics.median(py)
print(f"side by side, {2 * cycles} objects in 2-cycles, {runs} runs each:")
print(f"  cpython gc.collect():        {rng(py)}")
print(f"  rcstore gc (duration_us):    {rng(sync)}  ratio of medians {statistics.median(sync) / pm:.2f}x")
print(f"  rcstore sliced sweep, total: {rng(sliced)}  ratio of medians {statistics.median(sliced) / pm:.2f}x")
print(f"  cpython gc.collect() after the same churn: {rng(pyc)} (rcstore gc against it: "
      f"{statistics.median(sync) / statistics.median(pyc):.2f}x)")
PY
