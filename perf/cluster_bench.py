#!/usr/bin/python3
"""cluster_bench.py: what replication costs, in one run (issue 16's
performance targets); perf/cluster_bench.sh is its front door.

1. Throughput: rcstore-bench incref at CLIENTS connections, pipeline
   PIPELINE, against one durable node (--data-dir, --fsync always) and
   against a 3-node cluster on loopback (its leader; Raft commits on a
   majority's disk before replying): ROUNDS rounds of each in turn, the
   median kept, rps and p99 side by side and the cluster's ratio to the
   single node (target: at least 0.5).
2. Failover: a 3-node cluster, a client writing (set_data, one request at a
   time) in a loop that follows NOT_LEADER and tries the next node when one
   refuses; KILLS times the leader is killed with SIGKILL and the time from
   the kill to the writer's first acknowledged write after it is recorded
   (the killed node is then restarted on its data directory and the
   cluster converges before the next kill): every kill, the median and the
   maximum.

With two cores or more the servers run on core 0 and rcstore-bench on core
1 (taskset), as the other perf scripts do; PIN=0 turns that off. A
benchmark, not a test: it exits 0 whatever the figures are.

usage: cluster_bench.py BUILD_DIR [REQUESTS] [ROUNDS]
  env: CLIENTS (50), PIPELINE (16), KEYSPACE (10000), KILLS (20),
       ELECTION_MS (1000, the server's default), PIN (1), SKIP_FAILOVER=1,
       SKIP_THROUGHPUT=1"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import cluster  # noqa: E402
from cluster import Cluster  # noqa: E402
from rcswire import Conn  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
CLIENTS = int(os.environ.get("CLIENTS", 50))
PIPELINE = int(os.environ.get("PIPELINE", 16))
KEYSPACE = int(os.environ.get("KEYSPACE", 10000))
KILLS = int(os.environ.get("KILLS", 20))
ELECTION_MS = int(os.environ.get("ELECTION_MS", 1000))
PIN = os.environ.get("PIN", "1") == "1" and (os.cpu_count() or 1) >= 2 and \
    shutil.which("taskset") is not None
RCSTORED = os.path.join(BUILD, "server", "rcstored")
BENCH = os.path.join(BUILD, "client", "rcstore-bench")
SRV = ["taskset", "-c", "0"] if PIN else []
CLI = ["taskset", "-c", "1"] if PIN else []


def bench(nodes):
    """rcstore-bench incref on nodes (a list of (host, port)): (rps, p99 ms).
    A list of several goes to -H when the bench takes one, else the first
    (the leader) alone."""
    helptext = subprocess.run([BENCH, "--help"], capture_output=True, text=True).stdout
    if len(nodes) > 1 and "-H " in helptext:
        where = ["-H", ",".join("%s:%d" % a for a in nodes)]
    else:
        where = ["-h", nodes[0][0], "-p", str(nodes[0][1])]
    out = subprocess.run(CLI + [BENCH, *where, "-c", str(CLIENTS), "-P", str(PIPELINE),
                                "-n", str(N), "-r", str(KEYSPACE), "-t", "incref", "--json"],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)[0]
    if r["errors"]:
        print("# warning: %d errors in a run of %d requests" % (r["errors"], r["requests"]))
    return r["rps"], r["latency_ms"]["p99"]


def single(tmp):
    port = cluster.free_ports(1)[0]
    d = os.path.join(tmp, "single")
    shutil.rmtree(d, ignore_errors=True)
    p = subprocess.Popen(SRV + [RCSTORED, "--listen", "tcp://127.0.0.1:%d" % port,
                                "--data-dir", d, "--fsync", "always", "--log-level", "warn"],
                         stdin=subprocess.DEVNULL)
    try:
        for _ in cluster.deadline_loop(30, "the single node to answer"):
            try:
                c = Conn(("127.0.0.1", port))
                c.ok("ping")
                c.close()
                break
            except OSError:
                if p.poll() is not None:
                    raise
        return bench([("127.0.0.1", port)])
    finally:
        p.kill()
        p.wait()


def three(tmp):
    with Cluster(RCSTORED, 3, ELECTION_MS, extra=["--log-level", "warn"], tmp_parent=tmp,
                 wrapper=SRV) as cl:
        leader = cl.start()
        others = [n.addr for n in cl.nodes.values() if n is not leader]
        return bench([leader.addr] + others)


class LoopWriter(threading.Thread):
    """set_data on one named object, one request at a time, forever: on
    NOT_LEADER it goes to the named leader (or the next node when none is
    named), on a refused or lost connection to the next node, backing off
    5 ms once every node was tried. `acks` holds the time of each
    acknowledgement (time.monotonic)."""

    def __init__(self, cl, obj):
        super().__init__(daemon=True)
        self.cl, self.obj = cl, obj
        self.order = [n.addr for n in cl.nodes.values()]
        self.last_ack = 0.0
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.go = threading.Event()     # cleared: the writer waits
        self.go.set()

    def run(self):
        k, conn, tried = 0, None, 0
        while not self.stop.is_set():
            self.go.wait()
            try:
                if conn is None:
                    conn = Conn(self.order[k % len(self.order)])
                    conn.s.settimeout(5)
                err, _ = conn.call("set_data", self.obj, b"x")
            except OSError:   # refused, reset, closed, timed out
                err = {"code": "LOST", "leader": None}
            if err is None:
                tried = 0
                with self.cond:
                    self.last_ack = time.monotonic()
                    self.cond.notify_all()
                continue
            if conn is not None:
                conn.close()
                conn = None
            if err.get("leader"):
                host, port = cluster.parse_url(err["leader"])
                if (host, port) in self.order:
                    k = self.order.index((host, port))
                    continue
            k += 1
            tried += 1
            if tried >= len(self.order):
                tried = 0
                time.sleep(0.005)   # no node serves: back off before the next round

    def wait_ack_after(self, t, timeout=60):
        with self.cond:
            if not self.cond.wait_for(lambda: self.last_ack > t, timeout):
                raise cluster.ClusterError("no acknowledged write %d s after the kill" % timeout)
            return self.last_ack


def failover(tmp):
    times = []
    with Cluster(RCSTORED, 3, ELECTION_MS, extra=["--log-level", "warn"], tmp_parent=tmp,
                 wrapper=SRV) as cl:
        cl.start()
        c = cl.leader_conn()
        c.ok("hello")
        obj = c.ok("create", b"x")
        c.ok("bind", "failover", obj)
        c.close()
        w = LoopWriter(cl, obj)
        w.start()
        for k in range(KILLS):
            leader = cl.wait_agreed(60)
            w.wait_ack_after(time.monotonic())
            t0 = time.monotonic()
            leader.kill()
            t1 = w.wait_ack_after(t0)
            times.append((t1 - t0) * 1000)
            print("kill %2d: node %d, first acknowledged write after %.0f ms" % (
                k + 1, leader.id, times[-1]), flush=True)
            leader.start()
            # the writer pauses while the nodes converge (equal applied indexes)
            w.go.clear()
            cl.wait_converged(120)
            w.go.set()
        w.stop.set()
        w.join(10)
    return times


def main():
    for f in (RCSTORED, BENCH):
        if not os.access(f, os.X_OK):
            sys.exit("cluster_bench: %s not found: build first (make build)" % f)
    if not cluster.wants_cluster(RCSTORED):
        sys.exit("cluster_bench: %s has no --node-id (no cluster mode)" % RCSTORED)
    tmp = tempfile.mkdtemp(prefix="cluster-bench.", dir=BUILD)
    try:
        print("# %s, %d cores, load average %s%s" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(),
            " ".join(open("/proc/loadavg").read().split()[:3]),
            " (servers on core 0, rcstore-bench on core 1)" if PIN else ""))
        if os.environ.get("SKIP_THROUGHPUT") != "1":
            print("# throughput: incref, %d requests, %d connections, pipeline %d, keyspace %d, "
                  "median of %d rounds" % (N, CLIENTS, PIPELINE, KEYSPACE, ROUNDS))
            one, tri = [], []
            for _ in range(ROUNDS):
                one.append(single(tmp))
                tri.append(three(tmp))
            rps1 = statistics.median(r for r, _ in one)
            rps3 = statistics.median(r for r, _ in tri)
            p1 = statistics.median(p for _, p in one)
            p3 = statistics.median(p for _, p in tri)
            print("%-44s %12s %9s %7s" % ("", "rps", "p99 ms", "ratio"))
            print("%-44s %12.0f %9.3f %6.2fx" % ("one node, --data-dir --fsync always", rps1, p1,
                                                 1.0))
            ratio = rps3 / rps1
            print("%-44s %12.0f %9.3f %6.2fx  target >= 0.50: %s" % (
                "3-node cluster on loopback (Raft)", rps3, p3, ratio,
                "met" if ratio >= 0.5 else "NOT met"))
            print("# each round (rps/p99 ms): one node %s; cluster %s" % (
                " ".join("%.0f/%.3f" % x for x in one), " ".join("%.0f/%.3f" % x for x in tri)))
        if os.environ.get("SKIP_FAILOVER") != "1":
            print("# failover: leader kill -9 to the first acknowledged write, %d kills, "
                  "--election-timeout-ms %d" % (KILLS, ELECTION_MS))
            t = failover(tmp)
            print("failover: median %.0f ms, max %.0f ms over %d kills (%.1f and %.1f election "
                  "timeouts)" % (statistics.median(t), max(t), len(t),
                                 statistics.median(t) / ELECTION_MS, max(t) / ELECTION_MS))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
