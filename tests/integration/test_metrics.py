"""Observability (issue 18): /metrics parsed by Prometheus's own parser
(Debian's python3-prometheus-client) with every family operators expect,
the probes /healthz and /readyz (a standalone server; a cluster node before
and after it has a leader; a stalled event loop), the slow log (the slowlog
and slowlog_reset methods), and the warn lines about clients that break the
protocol, with the peer address and a rate limit.

Usage: test_metrics.py RCSTORED [RCSTORE] (with the CLI, its slowlog
commands are tried too). Every wait polls a condition against a
deadline; nothing sleeps in place of an event it could wait for."""
import ctypes
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import msgpack  # noqa: E402
import rcswire  # noqa: E402
from rcswire import Conn  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("SKIP: python3-prometheus-client is not installed (make deps)")
    sys.exit(77)

RCSTORED = sys.argv[1]
RCSTORE = sys.argv[2] if len(sys.argv) > 2 else None
check = rcswire.Checks()


def wait_for(pred, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def http(port, path):
    """(status, body) of GET path on the metrics listener."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def families(port):
    """The families of /metrics as Prometheus's parser reads them, by name
    (a counter's name without _total, as the parser gives it)."""
    status, text = http(port, "/metrics")
    assert status == 200, status
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams, family, name=None, **labels):
    """The value of the sample name (default: the family's own) whose labels
    include labels, or None."""
    f = fams.get(family)
    if f is None:
        return None
    for s in f.samples:
        if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def metrics_port(log):
    return next(int(l.rsplit(":", 1)[1].split("/")[0]) for l in log if "metrics on http://" in l)


# ---- a standalone server: every family, the probes, the slow log ----
proc, addr, log = rcswire.start_server(RCSTORED, "--metrics-listen", "tcp://127.0.0.1:0",
                                       "--slowlog-log-slower-than-us", "0",
                                       "--slowlog-max-len", "5", keep=True, echo=False)
mport = metrics_port(log)
try:
    c = Conn(addr)
    hello = c.ok("hello")
    fams = families(mport)
    want = ["rcstore_request_duration_seconds", "rcstore_errors", "rcstore_build_info",
            "process_cpu_seconds", "process_resident_memory_bytes",
            "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
            "process_start_time_seconds", "rcstore_connections_refused"]
    check("metrics: Prometheus's parser reads every family the issue names",
          all(w in fams for w in want), [w for w in want if w not in fams])
    check("metrics: types", fams["rcstore_request_duration_seconds"].type == "histogram" and
          fams["rcstore_errors"].type == "counter" and
          fams["rcstore_build_info"].type == "gauge" and
          fams["process_cpu_seconds"].type == "counter" and
          fams["rcstore_connections_refused"].type == "counter")
    check("build_info: 1, with the version hello gives",
          sample(fams, "rcstore_build_info", version=hello["server"].split()[-1]) == 1,
          fams["rcstore_build_info"].samples)

    # A request moves its method's histogram; its buckets are cumulative.
    def ping_count():
        return sample(families(mport), "rcstore_request_duration_seconds",
                      "rcstore_request_duration_seconds_count", method="ping") or 0
    before = ping_count()
    for _ in range(7):
        c.ok("ping")
    check("histogram: 7 pings move ping's count by 7 (within the second the snapshot takes)",
          wait_for(lambda: ping_count() == before + 7), (before, ping_count()))
    fams = families(mport)
    h = [s for s in fams["rcstore_request_duration_seconds"].samples
         if s.labels.get("method") == "ping"]
    buckets = [s.value for s in h if s.name.endswith("_bucket")]
    inf = sample(fams, "rcstore_request_duration_seconds", "rcstore_request_duration_seconds_bucket",
                 method="ping", le="+Inf")
    total = sample(fams, "rcstore_request_duration_seconds", "rcstore_request_duration_seconds_sum",
                   method="ping")
    check("histogram: cumulative buckets, +Inf = count, a positive sum under a second",
          buckets == sorted(buckets) and inf == before + 7 and 0 < total < 1, (buckets, total))
    check("histogram: every served method has one (create with no call: count 0)",
          sample(fams, "rcstore_request_duration_seconds", "rcstore_request_duration_seconds_count",
                 method="create") == 0)

    # An error moves its code's counter.
    def errors(code):
        return sample(families(mport), "rcstore_errors", "rcstore_errors_total", code=code)
    nf, bp = errors("NOT_FOUND"), errors("BAD_PARAMS")
    c.code("get", 123456)
    c.code("get", 123457)
    c.code("get", "x")
    check("errors by code: two NOT_FOUND and one BAD_PARAMS counted",
          wait_for(lambda: errors("NOT_FOUND") == nf + 2 and errors("BAD_PARAMS") == bp + 1),
          (errors("NOT_FOUND"), errors("BAD_PARAMS")))
    check("errors by code: every code is there", all(
        errors(code) is not None for code in ("BAD_REQUEST", "UNKNOWN_METHOD", "TOO_LARGE",
                                             "PERMISSION_DENIED", "NOT_LEADER", "INTERNAL")))

    # process_*: read when scraped.
    fams = families(mport)
    fds = sample(fams, "process_open_fds")
    extra = [socket.create_connection(addr) for _ in range(6)]
    for s in extra:  # the server has accepted each once it answers a ping on it
        s.sendall(msgpack.packb([0, 1, "ping", []]))
        s.recv(100)
    fams2 = families(mport)
    check("process_open_fds: > 0, and 6 more connections are 6 more fds",
          fds > 0 and sample(fams2, "process_open_fds") >= fds + 6,
          (fds, sample(fams2, "process_open_fds")))
    for s in extra:
        s.close()
    check("process_max_fds: above the open ones",
          sample(fams, "process_max_fds") > sample(fams, "process_open_fds"))
    check("process_resident_memory_bytes: > 1 MiB and under the virtual size",
          (1 << 20) < sample(fams, "process_resident_memory_bytes") <=
          sample(fams, "process_virtual_memory_bytes"))
    check("process_cpu_seconds_total: > 0", sample(fams, "process_cpu_seconds",
                                                   "process_cpu_seconds_total") > 0)
    start = sample(fams, "process_start_time_seconds")
    check("process_start_time_seconds: this process's start, a few seconds ago",
          time.time() - 120 < start <= time.time() + 1, start)

    # Connections refused by cause: a TLS ClientHello on a plaintext port.
    def refused(cause):
        return sample(families(mport), "rcstore_connections_refused",
                      "rcstore_connections_refused_total", cause=cause)
    check("refused: every cause is there", all(
        refused(k) is not None
        for k in ("max_connections", "tls_handshake", "wrong_protocol", "login_failed")))
    wp = refused("wrong_protocol")
    t = socket.create_connection(addr)
    t.sendall(b"\x16\x03\x01\x00\x05hello")
    t.settimeout(10)
    check("refused: TLS on the plaintext port is closed", t.recv(100) == b"")
    t.close()
    check("refused: ... and counted as wrong_protocol",
          wait_for(lambda: refused("wrong_protocol") == wp + 1))

    # ---- probes ----
    check("/healthz: 200 ok", http(mport, "/healthz") == (200, "ok\n"))
    check("/readyz: a standalone server is ready once it serves (after recovery)",
          http(mport, "/readyz") == (200, "ready\n"))
    check("other paths: 404 naming the three", http(mport, "/nope")[0] == 404 and
          "/healthz" in http(mport, "/nope")[1])

    # Slow HTTP clients (a header byte now and then keeps a slot: the idle
    # timeout never fires) hold at most 4 slots per source address, so a
    # prober at another address is still answered.
    slow = []
    for _ in range(20):
        k = socket.create_connection(("127.0.0.1", mport), timeout=10)
        k.sendall(b"GET /healthz HTTP/1.1\r\nX: ")
        slow.append(k)

    def probe_from(src):
        k = socket.socket()
        k.settimeout(10)
        try:
            k.bind((src, 0))
            k.connect(("127.0.0.1", mport))
            k.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while True:
                b = k.recv(4096)
                if not b:
                    return got
                got += b
        except OSError as e:
            return repr(e).encode()
        finally:
            k.close()
    check("/healthz from another address while 20 slow clients try to hold one each: 200",
          probe_from("127.0.0.2").startswith(b"HTTP/1.1 200"))
    check("a 5th connection from the slow clients' address is refused",
          not probe_from("127.0.0.1").startswith(b"HTTP/1.1 200"))
    for k in slow:
        k.close()
    check("/healthz from 127.0.0.1 again once the slow clients are gone",
          wait_for(lambda: probe_from("127.0.0.1").startswith(b"HTTP/1.1 200")))

    # ---- the slow log, every request logged (threshold 0), 5 kept ----
    s = Conn(addr)
    sess = s.ok("hello")["session"]
    s.ok("slowlog_reset")
    for m in ("ping", "stats", "ping"):
        s.ok(m)
    got = s.ok("slowlog")
    me = "%s:%d" % s.s.getsockname()
    check("slowlog: newest first, with method, client, session and user",
          [e["method"] for e in got] == ["ping", "stats", "ping", "slowlog_reset"] and
          all(e["client"] == me and e["session"] == sess and e["user"] is None for e in got),
          got)
    ids = [e["id"] for e in got]
    check("slowlog: ids fall by one from the newest", ids == list(range(ids[0], ids[0] - 4, -1)),
          ids)
    check("slowlog: times are now, durations microseconds",
          all(abs(e["time"] - time.time()) < 60 and 0 <= e["duration_us"] < 10 ** 6 for e in got))
    check("slowlog [2]: the two newest", [e["id"] for e in s.ok("slowlog", 2)] ==
          [ids[0] + 1, ids[0]])
    check("slowlog [0]: none", s.ok("slowlog", 0) == [])
    for _ in range(10):
        s.ok("ping")
    got = s.ok("slowlog", 100)
    check("slowlog: max-len 5 keeps the 5 newest", len(got) == 5 and
          [e["id"] for e in got] == list(range(got[0]["id"], got[0]["id"] - 5, -1)), got)
    check("slowlog: a count that is not an integer is BAD_PARAMS",
          s.code("slowlog", "ten") == "BAD_PARAMS")
    last = got[0]["id"]
    check("slowlog_reset: nil", s.ok("slowlog_reset") is None)
    got = s.ok("slowlog")
    check("slowlog after a reset: only what came since, ids going on",
          [e["method"] for e in got] == ["slowlog_reset"] and got[0]["id"] > last, got)

    # ---- rcstore slowlog [N] | reset ----
    if RCSTORE:
        def cli(*args):
            r = subprocess.run([RCSTORE, "-H", "%s:%d" % addr, *args], capture_output=True,
                               text=True, timeout=30)
            return r.returncode, r.stdout
        rc, out = cli("slowlog", "2")
        line = re.compile(r"^\d+ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \d+ us [a-z_]+ client "
                          r"127\.0\.0\.1:\d+ session \d+$")
        check("rcstore slowlog 2: two lines, id, time, duration, method, client, session",
              rc == 0 and len(out.splitlines()) == 2 and
              all(line.match(l) for l in out.splitlines()), out)
        check("rcstore slowlog reset: OK", cli("slowlog", "reset") == (0, "OK\n"))
        rc, out = cli("slowlog")
        # Newest first: this command's own hello (the CLI says hello before
        # each command), then the reset; nothing from before the reset.
        got = [l.split()[4] for l in out.splitlines()]
        check("rcstore slowlog after the reset: only this CLI's hello and the reset",
              rc == 0 and got == ["hello", "slowlog_reset"], out)
        check("rcstore slowlog x: a usage error (2)", cli("slowlog", "x")[0] == 2)

    # ---- protocol violations: logged with the peer, rate limited ----
    mark = len(log)
    peers = []
    for _ in range(12):
        b = socket.create_connection(addr)
        peers.append("%s:%d" % b.getsockname())
        b.sendall(b"\xc1")  # never msgpack
        b.settimeout(10)
        while b.recv(100):
            pass
        b.close()

    def lines():
        return [l for l in log[mark:] if "malformed msgpack" in l]
    check("violations: a malformed message is logged at warn with its peer",
          wait_for(lambda: lines()) and "warn" in lines()[0] and peers[0] in lines()[0],
          log[mark:mark + 3])
    check("violations: at most 5 lines a second, then a count of the rest",
          wait_for(lambda: any("suppressed" in l and "broke the protocol" in l
                               for l in log[mark:]), timeout=10) and len(lines()) < 12,
          log[mark:])
    over = Conn(addr)
    over.send_raw(b"\x94\x00\x01\xa4ping\xdd\xff\xff\xff\xff")  # params claim 4G elements
    check("violations: an oversized message is refused (TOO_LARGE) and closed",
          over.read()[2]["code"] == "TOO_LARGE" and over.read() is None)
finally:
    proc.terminate()
    check("standalone server exits 0", proc.wait(timeout=30) == 0)


# ---- a stalled loop: /healthz and /readyz say 503 (the HTTP thread still
# answers). The loop's thread alone is stopped with ptrace (PTRACE_SEIZE +
# PTRACE_INTERRUPT stop one thread, not the process); skipped where ptrace
# is refused. ----
def stall_test():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
    p, _, plog = rcswire.start_server(RCSTORED, "--metrics-listen", "tcp://127.0.0.1:0",
                                      echo=False)
    port = metrics_port(plog)
    try:
        if libc.ptrace(PTRACE_SEIZE, p.pid, None, None) != 0:
            print("skip: stalled loop (ptrace refused: %s)" % os.strerror(ctypes.get_errno()))
            return
        try:
            libc.ptrace(PTRACE_INTERRUPT, p.pid, None, None)
            os.waitpid(p.pid, 0x40000000)  # __WALL: the main thread's stop
            check("stalled loop: /healthz turns 503 after its heartbeat is 5 s old",
                  wait_for(lambda: http(port, "/healthz")[0] == 503, timeout=15),
                  http(port, "/healthz"))
            status, body = http(port, "/readyz")
            check("stalled loop: /readyz 503 too, saying why",
                  status == 503 and "stalled" in body, (status, body))
        finally:
            libc.ptrace(PTRACE_DETACH, p.pid, None, None)
        check("stalled loop: back to 200 once the loop turns again",
              wait_for(lambda: http(port, "/healthz") == (200, "ok\n"), timeout=10))
    finally:
        p.terminate()
        p.wait(timeout=30)


stall_test()


# ---- the slow log off (-1), and refused logins ----
tmp = tempfile.mkdtemp(prefix="rcs-metrics-")
tokfile = os.path.join(tmp, "token")
with open(tokfile, "w") as f:
    f.write("s3cret\n")
os.chmod(tokfile, 0o600)
proc, addr, log = rcswire.start_server(RCSTORED, "--metrics-listen", "tcp://127.0.0.1:0",
                                       "--auth-token-file", tokfile,
                                       "--slowlog-log-slower-than-us", "-1", keep=True,
                                       echo=False)
mport = metrics_port(log)
try:
    a = Conn(addr)
    a.ok("hello", {"auth": "s3cret"})
    for _ in range(5):
        a.ok("ping")
    check("slowlog -1: nothing is logged", a.ok("slowlog", 100) == [])
    bad = Conn(addr)
    me = "%s:%d" % bad.s.getsockname()
    check("a refused login: AUTH_FAILED", bad.code("hello", {"auth": "nope"}) == "AUTH_FAILED")
    check("a refused login: logged with the peer address",
          wait_for(lambda: any("failed login from " + me in l for l in log)))
    check("a refused login: counted as login_failed", wait_for(lambda: sample(
        families(mport), "rcstore_connections_refused", "rcstore_connections_refused_total",
        cause="login_failed") == 1))
finally:
    proc.terminate()
    check("auth server exits 0", proc.wait(timeout=30) == 0)
    os.unlink(tokfile)
    os.rmdir(tmp)


# ---- max-connections: refused, counted by cause, logged with the peer ----
proc, addr, log = rcswire.start_server(RCSTORED, "--metrics-listen", "tcp://127.0.0.1:0",
                                       "--max-connections", "2", keep=True, echo=False)
mport = metrics_port(log)
try:
    held = [Conn(addr), Conn(addr)]
    for h in held:
        h.ok("ping")
    extra = Conn(addr)
    me = "%s:%d" % extra.s.getsockname()
    check("max-connections: a third connection is closed", extra.closed())
    check("max-connections: logged with the peer address",
          wait_for(lambda: any("refused " + me + ": max_connections (2)" in l for l in log)))
    check("max-connections: counted as cause max_connections", wait_for(lambda: sample(
        families(mport), "rcstore_connections_refused", "rcstore_connections_refused_total",
        cause="max_connections") == 1))
finally:
    proc.terminate()
    check("max-connections server exits 0", proc.wait(timeout=30) == 0)


# ---- a cluster node: /readyz 503 until it knows a serving leader ----
import cluster  # noqa: E402

if cluster.wants_cluster(RCSTORED):
    with cluster.Cluster(RCSTORED, 3, 500, metrics=True) as cl:
        n1 = cl.nodes[1].start()
        p1 = cl.nodes[1].metrics_port
        status, body = http(p1, "/readyz")
        check("cluster: a lone node of three is not ready, and says why",
              status == 503 and "no serving leader" in body, (status, body))
        check("cluster: ... but alive", http(p1, "/healthz") == (200, "ok\n"))
        cl.nodes[2].start()
        cl.nodes[3].start()
        leader = cl.wait_leader()
        check("cluster: every node ready once a leader serves", wait_for(
            lambda: all(http(n.metrics_port, "/readyz") == (200, "ready\n")
                        for n in cl.nodes.values()), timeout=30),
            [(n.id, http(n.metrics_port, "/readyz")) for n in cl.nodes.values()])
        follower = next(n for n in cl.nodes.values() if n is not leader)
        fc = follower.conn()
        err, res = fc.call("slowlog")
        check("cluster: a follower answers slowlog itself (its own log)",
              err is None and isinstance(res, list), err)
        fc.close()

print("failures:", check.failures)
sys.exit(1 if check.failures else 0)
