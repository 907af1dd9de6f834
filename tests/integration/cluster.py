"""cluster: a harness that runs a cluster of real rcstored nodes on loopback
(SPEC section 9, /tmp/iface16.md) for the Python tests and the cluster
benchmark. It starts N nodes with free client and Raft ports and one data
directory each under a temporary directory, kills (-9), stops (SIGTERM)
and restarts them on their data directories, finds the leader through the
`cluster` method, calls methods on the leader following NOT_LEADER, and
waits for all nodes to reach the same applied index before comparing their
`debug_digest`. It is not a client library: it drives the wire protocol
through rcswire.Conn and gives up with a ClusterError, never a hang.

Every wait polls a condition (the `cluster` or `debug_digest` method, a
connect, a file in a Raft directory) against a deadline and fails with what
it waited for and the tail of each node's log; nothing here sleeps in place
of a condition it could poll."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from rcswire import Conn

POLL = 0.02         # between two polls of a condition


class ClusterError(Exception):
    """A wait passed its deadline, or a node did what no node may do."""


def wants_cluster(rcstored):
    """True when this rcstored has cluster mode (--node-id in its --help)."""
    out = subprocess.run([rcstored, "--help"], capture_output=True, text=True).stdout
    return "--node-id" in out


def help_flag(rcstored, pattern):
    """The first --flag of rcstored --help whose name matches the regular
    expression pattern, or None (for options the tests use when present,
    such as a Raft snapshot threshold)."""
    out = subprocess.run([rcstored, "--help"], capture_output=True, text=True).stdout
    for flag in re.findall(r"(--[a-z][a-z0-9-]*)", out):
        if re.search(pattern, flag):
            return flag
    return None


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1, held together while chosen
    so that no two are the same (another process may still take one before
    a node binds it: the node's start then fails with a clear message)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def parse_url(url):
    """tcp://HOST:PORT -> (host, port)."""
    m = re.fullmatch(r"tcp://(.+):(\d+)", url or "")
    if not m:
        raise ClusterError("not a tcp:// address: %r" % (url,))
    return m.group(1).strip("[]"), int(m.group(2))


def deadline_loop(timeout, what, describe=None):
    """Yields until the caller breaks out; raises ClusterError naming what
    was awaited (and describe(), the state seen last) once timeout seconds
    have passed."""
    end = time.monotonic() + timeout
    while True:
        yield
        if time.monotonic() >= end:
            raise ClusterError("after %.1f s still waiting for %s%s" % (
                timeout, what, ("; " + describe()) if describe else ""))
        time.sleep(POLL)


class Node:
    """One rcstored process of a cluster: its id, ports, data directory and
    log file; start, kill, stop and restart keep the same arguments (a
    restarted node rejoins from its data directory: --peer is then ignored)."""

    def __init__(self, cluster, node_id, client_port, raft_port, peers, metrics_port=None):
        self.cluster = cluster
        self.metrics_port = metrics_port
        self.id = node_id
        self.client_port, self.raft_port = client_port, raft_port
        self.addr = ("127.0.0.1", client_port)
        self.url = "tcp://127.0.0.1:%d" % client_port
        self.raft_address = "127.0.0.1:%d" % raft_port
        self.dir = os.path.join(cluster.tmp, "node%d" % node_id)
        self.log_path = os.path.join(cluster.tmp, "node%d.log" % node_id)
        self.proc = None
        self.starts = 0
        self.argv = [cluster.rcstored, "--listen", self.url, "--data-dir", self.dir,
                     "--node-id", str(node_id), "--raft-listen", self.raft_address,
                     "--advertise", self.url,
                     "--election-timeout-ms", str(cluster.election_ms),
                     "--debug-commands", *cluster.extra]
        for p in peers:
            self.argv += ["--peer", "%d=%s=%s" % p]
        if metrics_port:
            self.argv += ["--metrics-listen", "tcp://127.0.0.1:%d" % metrics_port]

    def metrics(self):
        """The text of this node's /metrics (started with metrics=True)."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=10) as r:
            return r.read().decode()

    def __repr__(self):
        return "node %d (%s)" % (self.id, self.url)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self):
        """How the node is, for failure messages: "running", "not started"
        or its exit status (-9: killed, by this harness or by someone else)."""
        if self.proc is None:
            return "not started"
        rc = self.proc.poll()
        return "running" if rc is None else "exited with status %d" % rc

    def start(self, timeout=30):
        """Start the process and wait until it answers ping on its client
        port (the process dying first is an error with its log)."""
        assert not self.alive(), "%r is running" % self
        os.makedirs(self.dir, exist_ok=True)
        self.starts += 1
        log = open(self.log_path, "a")
        log.write("==== start %d: %s\n" % (self.starts, " ".join(self.argv)))
        log.flush()
        self.proc = subprocess.Popen(self.cluster.wrapper + self.argv, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        for _ in deadline_loop(timeout, "%r to answer ping" % self, self.log_tail):
            if self.proc.poll() is not None:
                raise ClusterError("%r exited with status %s at start: %s" % (
                    self, self.proc.returncode, self.log_tail()))
            try:
                c = Conn(self.addr)
            except OSError:
                continue
            try:
                c.s.settimeout(5)
                if c.call("ping") == (None, "pong"):
                    return self
            except (OSError, ConnectionError):
                pass
            finally:
                c.close()

    def kill(self):
        """kill -9, as a crash or a lost machine would end it."""
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout=30):
        """SIGTERM and wait: returns the exit status (0 for a clean stop)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise ClusterError("%r did not stop within %d s of SIGTERM: %s" % (
                self, timeout, self.log_tail()))

    def restart(self, timeout=30):
        self.kill()
        return self.start(timeout)

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as f:
                tail = f.readlines()[-lines:]
        except OSError:
            return "(no log)"
        return "\n  [%s log] " % self + "  ".join(tail)

    def conn(self, timeout=30):
        c = Conn(self.addr)
        c.s.settimeout(timeout)
        return c

    def call(self, method, *params, timeout=10):
        """One request on a new connection: (error map or None, result), or
        (None, None) raised as OSError/ConnectionError when unreachable."""
        c = self.conn(timeout)
        try:
            return c.call(method, *params)
        finally:
            c.close()

    def info(self):
        """The `cluster` map, or None when the node does not answer."""
        if not self.alive():
            return None
        try:
            err, res = self.call("cluster", timeout=5)
        except (OSError, ConnectionError):
            return None
        if err:
            raise ClusterError("%r: cluster -> %s" % (self, err))
        return res

    def digest(self):
        """The `debug_digest` map, or None when the node does not answer."""
        if not self.alive():
            return None
        try:
            err, res = self.call("debug_digest", timeout=5)
        except (OSError, ConnectionError):
            return None
        if err:
            raise ClusterError("%r: debug_digest -> %s" % (self, err))
        return res

    def raft_files(self):
        """Raft's files in DIR/raft (libraft's uv layout): closed segments
        as (first, last) index pairs, and snapshots' indexes."""
        closed, snaps = [], []
        try:
            names = os.listdir(os.path.join(self.dir, "raft"))
        except OSError:
            return closed, snaps
        for n in names:
            m = re.fullmatch(r"(\d+)-(\d+)", n)
            if m:
                closed.append((int(m.group(1)), int(m.group(2))))
            m = re.fullmatch(r"snapshot-(\d+)-(\d+)-(\d+)\.meta", n)
            if m:
                snaps.append(int(m.group(2)))
        return closed, snaps

    def compacted_past(self, index):
        """True once this node can no longer send entry index + 1 from its
        log: it has a snapshot past index and no closed segment that starts
        at or before index + 1."""
        closed, snaps = self.raft_files()
        return any(s > index for s in snaps) and all(first > index + 1 for first, _ in closed)


class Cluster:
    """N nodes (ids 1..N) formed with --peer for each, on loopback ports.
    A context manager: leaving it kills every node and removes the
    temporary directory (kept, with the nodes' logs, when the environment
    has RCS_CLUSTER_KEEP=1). extra: more flags for every node; wrapper: a
    command the nodes run under (the benchmark's taskset); metrics: each
    node serves /metrics on a port of its own."""

    def __init__(self, rcstored, n=3, election_ms=300, extra=(), tmp_parent=None, wrapper=(),
                 metrics=False):
        self.rcstored = rcstored
        self.wrapper = list(wrapper)
        self.election_ms = election_ms
        self.extra = list(extra)
        self.tmp = tempfile.mkdtemp(prefix="rcs-cluster-", dir=tmp_parent)
        self.nodes = {}
        ports = free_ports(3 * n)
        specs = [(i + 1, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]) for i in range(n)]
        peers = [(i, "127.0.0.1:%d" % rp, "tcp://127.0.0.1:%d" % cp) for i, cp, rp, _ in specs]
        for i, cp, rp, mp in specs:
            self.nodes[i] = Node(self, i, cp, rp, peers, mp if metrics else None)

    def __enter__(self):
        return self

    def __exit__(self, etype, value, tb):
        if etype is not None and etype is not ClusterError:
            # a ClusterError carries the logs already
            print("cluster: %s: %s%s" % (etype.__name__, value, self.logs()))
        self.close()

    def close(self):
        for n in self.nodes.values():
            n.kill()
        if os.environ.get("RCS_CLUSTER_KEEP") == "1":
            print("cluster: kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, timeout=30):
        """Start every node (each answers ping), then wait for a leader."""
        for n in self.nodes.values():
            n.start(timeout)
        return self.wait_leader(timeout)

    def new_node(self, node_id):
        """A node that is no initial member: --node-id and no --peer, an
        empty data directory; it waits for cluster_add. Not started."""
        cp, rp = free_ports(2)
        n = Node(self, node_id, cp, rp, [])
        self.nodes[node_id] = n
        return n

    def live(self):
        return [n for n in self.nodes.values() if n.alive()]

    def describe(self):
        """Each live node's view, for failure messages."""
        out = []
        for n in self.nodes.values():
            if not n.alive():
                out.append("%d %s" % (n.id, n.status()))
                continue
            try:
                i = n.info()
            except ClusterError as e:
                out.append("%d: %s" % (n.id, e))
                continue
            if i is None:
                out.append("%d unreachable" % n.id)
            else:
                out.append("%d %s term %s leader %s ready %s commit %s applied %s" % (
                    n.id, i.get("role"), i.get("term"), i.get("leader_id"), i.get("ready"),
                    i.get("commit_index"), i.get("applied_index")))
        return ", ".join(out)

    def logs(self):
        return "".join(n.log_tail() for n in self.nodes.values())

    def wait_leader(self, timeout=30, exclude=()):
        """The node that says it is the leader and ready (it has applied
        every committed entry), polled through `cluster`. When two nodes
        say so (an old leader has not heard of the new term yet), the one
        with the higher term."""
        for _ in deadline_loop(timeout, "a ready leader", lambda: self.describe() + self.logs()):
            best = None
            for n in self.live():
                if n.id in exclude:
                    continue
                i = n.info()
                if i and i["role"] == "leader" and i["ready"]:
                    if best is None or i["term"] > best[1]["term"]:
                        best = (n, i)
            if best:
                return best[0]

    def wait_agreed(self, timeout=30):
        """The leader once every live node names it (leader_id and client
        address) and it is ready."""
        for _ in deadline_loop(timeout, "every live node to name one ready leader",
                               lambda: self.describe() + self.logs()):
            infos = [(n, n.info()) for n in self.live()]
            if any(i is None for _, i in infos):
                continue
            leaders = [(n, i) for n, i in infos if i["role"] == "leader" and i["ready"]]
            if len(leaders) != 1:
                continue
            ln, _ = leaders[0]
            if all(i["leader_id"] == ln.id and i["leader"] == ln.url for _, i in infos):
                return ln

    def leader_conn(self, timeout=30):
        """A connection to the current ready leader."""
        return self.wait_leader(timeout).conn()

    def call(self, method, *params, timeout=30):
        """A request on the leader, following NOT_LEADER (to the address it
        names, else to whichever node becomes the ready leader) until
        another answer or the deadline. A request answered NOT_LEADER
        changed nothing, so repeating it is safe; a connection lost with
        the request in flight is not retried (its outcome is unknown) and
        raises ConnectionError."""
        target = None
        for _ in deadline_loop(timeout, "an answer to %s other than NOT_LEADER" % method,
                               self.describe):
            if target is None:
                target = self.wait_leader(timeout)
            try:
                c = Conn(target.addr)
            except OSError:
                target = None
                continue
            try:
                err, res = c.call(method, *params)
            finally:
                c.close()
            if err and err["code"] == "NOT_LEADER":
                target = self.by_url(err.get("leader"))
                continue
            return err, res

    def ok(self, method, *params, timeout=30):
        err, res = self.call(method, *params, timeout=timeout)
        if err:
            raise ClusterError("%s%s on the leader: %s" % (method, params, err))
        return res

    def by_url(self, url):
        """The node whose client address is url, or None."""
        for n in self.nodes.values():
            if n.url == url:
                return n
        return None

    def wait_caught_up(self, node, timeout=60):
        """Wait until node has applied everything the leader had committed
        when this was called (a restarted node is back in the majority)."""
        target = self.wait_leader(timeout).info()["commit_index"]
        for _ in deadline_loop(timeout, "%r to apply up to index %d" % (node, target),
                               lambda: self.describe() + node.log_tail()):
            i = node.info()
            if i and i["applied_index"] >= target:
                return

    def wait_converged(self, timeout=60, nodes=None):
        """Wait until every given node (default: every live node) reports
        the same applied index and the same digest in debug_digest, and
        that index is not behind the leader's commit index. Returns the
        digest map of one node. A leader applies changes ahead of their
        commit, so digests may differ for a moment at one index while
        something is in flight: only the deadline decides they diverged."""
        nodes = nodes or self.live()
        seen = {}

        def state():
            return "; ".join("%d: %s" % (k, v) for k, v in sorted(seen.items())) + self.logs()

        for _ in deadline_loop(timeout, "nodes %s to converge (same applied index and digest)"
                               % [n.id for n in nodes], state):
            seen.clear()
            for n in nodes:
                seen[n.id] = n.digest() or "no answer (%s)" % n.status()
            if any(isinstance(v, str) for v in seen.values()):
                continue
            if len({(v["applied_index"], v["digest"]) for v in seen.values()}) != 1:
                continue
            idx = next(iter(seen.values()))["applied_index"]
            leader = [i for i in (n.info() for n in nodes) if i and i["role"] == "leader"]
            if leader and leader[0]["commit_index"] > idx:
                continue
            return next(iter(seen.values()))
