#!/usr/bin/python3
"""How long a pinging client waits while another pipelines the queries that
used to stall the loop (issue 14): why, names with a prefix and a limit,
referrers and lookup, on a heap of many objects and names, over the wire.

Client A builds the heap pipelined: groups of six objects, a container held
by A that refers to four leaves, the first leaf referring to one more
object; the first NAMES containers get a name user/NNNNNNN and lose A's hold.
Then, for each request kind, A sends bursts of 20 pipelined requests while
client B (another process) pings one request at a time; B reports its
latency over each kind's window. The collector is off (the leaves are
candidates and a sweep would be measured instead).

    perf/query_stall.py build/server/rcstored [objects] [names] [bursts]

The in-process perf/query_stall.c measures each request's own CPU time on
10M objects in seconds; this one takes minutes to build 10M over the wire.
As perf/gc_pause.py does, the server runs on core 0 and the clients on core
1 (PIN=0 in the environment turns that off).
"""
import gc
import os
import socket
import subprocess
import sys
import threading
import time

import msgpack

RCSTORED = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
NAMES = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
BURSTS = int(sys.argv[4]) if len(sys.argv) > 4 else 50
GROUPS = N // 6
if NAMES >= GROUPS:
    sys.exit("query_stall.py: names must be fewer than objects / 6")

PIN = os.environ.get("PIN", "1") != "0" and os.cpu_count() >= 2
p = subprocess.Popen([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--gc-interval-ms", "0",
                      "--gc-threshold", str(1 << 30)],
                     stderr=subprocess.PIPE, text=True,
                     preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if PIN else None)
if PIN:
    os.sched_setaffinity(0, {1})
addr = None
for line in p.stderr:
    if "listening on tcp://" in line:
        host, port = line.rsplit("tcp://", 1)[1].strip().rsplit(":", 1)
        addr = (host, int(port))
    if " ready (pid " in line:
        break
if addr is None:
    sys.exit("rcstored did not start")
threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()


class Conn:
    def __init__(self):
        self.s = socket.create_connection(addr)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.u = msgpack.Unpacker(raw=False)

    def replies(self, n):
        out = []
        while len(out) < n:
            self.u.feed(self.s.recv(1 << 20))
            out.extend(o for o in self.u if o[0] == 1)
        return out

    def pipeline(self, reqs):
        """Send [(method, params), ...] at once; the replies' (error, result)."""
        self.s.sendall(b"".join(msgpack.packb([0, i, m, list(a)]) for i, (m, a) in enumerate(reqs)))
        return [(r[2], r[3]) for r in self.replies(len(reqs))]


def ok(results):
    for err, res in results:
        if err is not None:
            sys.exit(f"query_stall.py: {err}")
    return [res for _, res in results]


gc.disable()
a = Conn()
t0 = time.time()
leaf, deep = [], []
BATCH = 5000
for g0 in range(0, GROUPS, BATCH):
    gs = range(g0, min(GROUPS, g0 + BATCH))
    d = ok(a.pipeline([("create", [b""]) for _ in gs]))
    ls = ok(a.pipeline([r for k, _ in enumerate(gs) for r in
                        (("create", [b"", [d[k]]]), ("create", [b""]), ("create", [b""]),
                         ("create", [b""]))]))
    cs = ok(a.pipeline([("create", [b"", ls[4 * k:4 * k + 4]]) for k, _ in enumerate(gs)]))
    reqs = [("decref", [x]) for x in d + ls]
    for k, g in enumerate(gs):
        if g < NAMES:
            reqs += [("bind", [f"user/{g:07d}", cs[k]]), ("decref", [cs[k]])]
    ok(a.pipeline(reqs))
    leaf += ls[1::4]
    deep += d
stats = ok(a.pipeline([("stats", [])]))[0]
print(f"heap: {stats['heap']['objects']} objects, {NAMES} names, built in {time.time() - t0:.0f} s",
      flush=True)

# B: a separate process that pings until told to stop, one latency per line.
pinger = subprocess.Popen([sys.executable, "-c", f"""
import select, socket, sys, time, msgpack
s = socket.create_connection({addr!r})
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
u = msgpack.Unpacker(raw=False)
req = msgpack.packb([0, 1, "ping", []])
out = []
while not select.select([sys.stdin], [], [], 0)[0]:
    t = time.perf_counter()
    s.sendall(req)
    while not any(True for _ in u):
        u.feed(s.recv(4096))
    out.append(time.perf_counter() - t)
print(" ".join(f"{{x * 1e6:.0f}}" for x in out))
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def window(reqs_of_burst):
    """Run the bursts while B pings; B's latencies (us) over the window."""
    global pinger
    pinger = subprocess.Popen(pinger.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    time.sleep(0.3)  # B is pinging before the first burst
    answers = []
    for i in range(BURSTS):
        answers += a.pipeline(reqs_of_burst(i))
    out, _ = pinger.communicate("stop\n")
    lat = sorted(float(x) for x in out.split())
    return lat, answers


pinger.communicate("stop\n")
kinds = [
    ("nothing (B alone)", lambda i: [("ping", [])]),
    ("why [two steps below a root]", lambda i: [("why", [deep[(i * 20 + k) * 7919 % GROUPS]])
                                                for k in range(20)]),
    ("why [leaf of a named container]", lambda i: [("why", [leaf[(i * 20 + k) * 31 % NAMES]])
                                                   for k in range(20)]),
    ("names [\"user/05\", 100]", lambda i: [("names", ["user/05", 100]) for _ in range(20)]),
    ("lookup [name]", lambda i: [("lookup", [f"user/{(i * 20 + k) * 13 % NAMES:07d}"])
                                 for k in range(20)]),
    ("referrers [leaf]", lambda i: [("referrers", [leaf[(i * 20 + k) * 7919 % GROUPS]])
                                    for k in range(20)]),
    ("referrers [leaf, 100, 0]", lambda i: [("referrers", [leaf[(i * 20 + k) * 7919 % GROUPS],
                                                           100, 0]) for k in range(20)]),
]
print(f"{'A pipelines 20 at a time':34} {'pings':>6} {'p50 us':>8} {'p99 us':>8} {'max us':>8}  "
      "A's answers")
for what, burst in kinds:
    lat, answers = window(burst)
    errs = sum(1 for e, _ in answers if e is not None)
    unknown = sum(1 for e, r in answers if e is None and isinstance(r, dict) and r.get("incomplete"))
    note = f"{len(answers)} replies, {errs} errors, {unknown} incomplete"
    print(f"{what:34} {len(lat):6d} {lat[len(lat) // 2]:8.0f} {lat[len(lat) * 99 // 100]:8.0f} "
          f"{lat[-1]:8.0f}  {note}", flush=True)
p.terminate()
p.wait()
