#!/usr/bin/python3
"""The procedures of docs/operations.md, "Running a cluster", against real
nodes: replacing a dead node (cluster_remove, a new id on an empty data
directory started without --peer, cluster_add; and, as in Kubernetes, the
same id again with the initial --peer lines) and backups (a stopped
follower's data directory copied, then the whole cluster restored from
that one copy: every node gets it and starts with its own id). After each,
the names written before are there, nothing written after the copy is, and
every node reports the same debug_digest at the same applied index.

Runs in a network namespace of its own (unshare -n: a fresh loopback, the
fixed ports below meet nothing); skipped (exit 0, with the reason) where
one cannot be made or rcstored has no --node-id.

usage: test_cluster_ops.py RCSTORED"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rcswire import Checks, Conn  # noqa: E402

RCSTORED = os.path.abspath(sys.argv[1])

if "--node-id" not in subprocess.run([RCSTORED, "--help"], capture_output=True, text=True).stdout:
    print("skip: this rcstored has no --node-id")
    sys.exit(0)
if not os.environ.get("RCS_IN_NETNS"):
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        print("skip: cannot make a network namespace (unshare -n needs root)")
        sys.exit(0)
    sys.exit(subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                             sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
                            env=dict(os.environ, RCS_IN_NETNS="1")).returncode)

check = Checks()
tmp = tempfile.mkdtemp()
procs = {}


def client(n):
    return f"tcp://127.0.0.1:{7380 + n}"


def raft(n):
    return f"127.0.0.1:{7480 + n}"


PEERS = [a for n in (1, 2, 3) for a in ("--peer", f"{n}={raft(n)}={client(n)}")]


def start(n, peers=()):
    log = open(os.path.join(tmp, f"n{n}.log"), "a")
    procs[n] = subprocess.Popen(
        [RCSTORED, "--node-id", str(n), "--data-dir", os.path.join(tmp, f"n{n}"), "--listen",
         client(n), "--raft-listen", raft(n), "--debug-commands", "--log-level", "warn", *peers],
        stderr=log)


def stop(n, kill=False):
    p = procs.pop(n)
    p.kill() if kill else p.terminate()
    p.wait(timeout=30)


def call(n, method, *params):
    c = Conn(("127.0.0.1", 7380 + n))
    try:
        return c.call(method, *params)
    finally:
        c.close()


def leader(nodes, timeout=20):
    """The node that leads and serves, once one does (polled: leadership
    has no event a client can wait on)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for n in nodes:
            try:
                err, res = call(n, "cluster")
            except OSError:
                continue
            if err is None and res["ready"]:
                return n
        time.sleep(0.1)
    return None


def converged(nodes, timeout=20):
    """Every node's digest at one applied index, once they agree."""
    deadline = time.time() + timeout
    while True:
        ds = []
        for n in nodes:
            try:
                ds.append(call(n, "debug_digest")[1])
            except OSError:
                ds.append(None)
        if all(ds) and len({(d["applied_index"], d["digest"]) for d in ds}) == 1:
            return True
        if time.time() > deadline:
            print("     digests:", ds)
            return False
        time.sleep(0.1)


def write(l, name):
    c = Conn(("127.0.0.1", 7380 + l))
    try:
        c.ok("hello")
        ident = c.ok("create", name.encode(), [])
        c.ok("bind", name, ident)
    finally:
        c.close()


def names(l):
    return {n for n in (f"k/{i}" for i in range(1, 8)) if call(l, "lookup", n)[0] is None}


try:
    for n in (1, 2, 3):
        start(n, PEERS)
    l = leader((1, 2, 3))
    check("a leader", l is not None)
    for i in range(1, 6):
        write(l, f"k/{i}")

    # Replacing a dead node: a follower dies for good.
    dead = 3 if l != 3 else 2
    stop(dead, kill=True)
    err, res = call(l, "cluster_remove", dead)
    check(f"cluster_remove {dead}", err is None and res is True, (err, res))
    shutil.rmtree(os.path.join(tmp, f"n{dead}"))
    start(4)  # a new id, an empty directory, no --peer: it waits
    err, res = call(l, "cluster_add", 4, raft(4), client(4))
    check("cluster_add 4 (a voter once it replies)", err is None and res is True, (err, res))
    live = tuple(sorted({1, 2, 3, 4} - {dead}))
    err, res = call(l, "cluster")
    check("members are the live nodes, all voters",
          sorted((m["id"], m["voter"]) for m in res["members"]) == [(n, True) for n in live], res)
    write(l, "k/6")
    check("the replacement converged with the others", converged(live))

    # The Kubernetes way: the same id again (the pod's ordinal), after its
    # removal, on an empty directory, with the initial peer lines (the
    # StatefulSet's start script passes them).
    same = next(n for n in live if n not in (l, 4))
    stop(same, kill=True)
    err, res = call(l, "cluster_remove", same)
    check(f"cluster_remove {same}", err is None and res is True, (err, res))
    shutil.rmtree(os.path.join(tmp, f"n{same}"))
    start(same, PEERS)
    err, res = call(l, "cluster_add", same, raft(same), client(same))
    check(f"cluster_add {same} again, on an empty directory", err is None and res is True,
          (err, res))
    check(f"node {same} converged with the others", converged(live))

    # A backup: a stopped follower's directory.
    f = next(n for n in live if n != l)
    stop(f)
    shutil.copytree(os.path.join(tmp, f"n{f}"), os.path.join(tmp, "backup"))
    start(f)
    write(l, "k/7")
    check("k/7 written after the copy", "k/7" in names(l))

    # Restoring the cluster from that one copy.
    for n in live:
        stop(n)
    for n in live:
        shutil.rmtree(os.path.join(tmp, f"n{n}"))
        shutil.copytree(os.path.join(tmp, "backup"), os.path.join(tmp, f"n{n}"))
        start(n)
    l = leader(live)
    check("the restored cluster elects a leader", l is not None)
    got = names(l) if l else set()
    check("it has what the copy had, not what came after",
          got == {f"k/{i}" for i in range(1, 7)}, sorted(got))
    check("every restored node holds the same state", converged(live))
finally:
    for n in list(procs):
        stop(n, kill=True)
    shutil.rmtree(tmp)
print("failures:", check.failures)
sys.exit(1 if check.failures else 0)
