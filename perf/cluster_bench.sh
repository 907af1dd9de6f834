#!/usr/bin/env bash
# cluster_bench.sh: what replication costs rcstored, in one run (issue 16's
# performance targets; docs/performance.md has the figures).
#
# 1. Throughput: incref at CLIENTS connections, pipeline PIPELINE
#    (rcstore-bench), against one node with --data-dir --fsync always and
#    against a 3-node cluster on loopback; the median of ROUNDS rounds, rps
#    and p99 side by side, the cluster's ratio (target >= 0.5).
# 2. Failover: KILLS times, the leader killed with SIGKILL under a client
#    that writes in a loop; the time to its first acknowledged write after
#    the kill: every kill, the median and the maximum.
#
# The work is done by perf/cluster_bench.py (it starts the nodes through the
# tests' cluster harness, tests/integration/cluster.py). Servers on core 0,
# the load on core 1 (PIN=0: no pinning). Data directories live under
# BUILD_DIR and are removed at the end. A benchmark, not a test: it exits 0
# whatever the figures are.
#
# usage: perf/cluster_bench.sh [BUILD_DIR] [REQUESTS] [ROUNDS]
#   env: CLIENTS (50), PIPELINE (16), KEYSPACE (10000), KILLS (20),
#        ELECTION_MS (1000), PIN (1), SKIP_THROUGHPUT=1, SKIP_FAILOVER=1
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$HERE/cluster_bench.py" "${1:-build}" "${2:-1000000}" "${3:-3}"
