#!/usr/bin/python3
"""Longest wait of a pinging client while periodic sweeps free cycles.

Client A builds N objects in 2-cycles (or, with "ring", one ring of N
objects) and drops them (they wait as candidates: the threshold is set out
of reach); then client B pings in a loop, one request at a time, while the
interval timer's sweep frees them in slices of --gc-slice-us. Reports B's
latency percentiles and maximum over the window in which the sweep ran, and
the server's own pause statistics.

    perf/gc_pause.py build/server/rcstored [objects] [slice_us] [pairs|ring]

As perf/compare-redis.sh does, the server runs pinned to core 0 and this
client to core 1 (PIN=0 in the environment turns that off), so that the
two do not wait for each other's core.
"""
import gc
import os
import socket
import subprocess
import sys
import time

import msgpack

RCSTORED = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300_000
SLICE = sys.argv[3] if len(sys.argv) > 3 else "1000"
SHAPE = sys.argv[4] if len(sys.argv) > 4 else "pairs"

PIN = os.environ.get("PIN", "1") != "0" and os.cpu_count() >= 2
p = subprocess.Popen([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--gc-interval-ms", "1500",
                      "--gc-threshold", "1000000000", "--gc-slice-us", SLICE],
                     stderr=subprocess.PIPE, text=True,
                     preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if PIN else None)
if PIN:
    os.sched_setaffinity(0, {1})
for line in p.stderr:
    if "listening on tcp://" in line:
        host, port = line.rsplit("tcp://", 1)[1].strip().rsplit(":", 1)
        break
addr = (host, int(port))


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

    def call(self, method, *params):
        self.s.sendall(msgpack.packb([0, 1, method, list(params)]))
        return self.replies(1)[0][3]


gc.disable()  # the client's own collector must not pause the measurement
a, b = Conn(), Conn()


def ping():
    """One ping, one reply: how long B waited."""
    t = time.perf_counter()
    b.call("ping")
    return time.perf_counter() - t


made = 0
# The ring is built with every member held, then all holds go in one burst:
# no candidate exists while it grows.
ring = []
while made < N and SHAPE == "ring":
    k = min(10000, N - made)
    a.s.sendall(b"".join(msgpack.packb([0, 1, "create", [b""]]) for _ in range(k)))
    ids = [r[3] for r in a.replies(k)]
    reqs = [msgpack.packb([0, 1, "link", [ring[-1], ids[0]]])] if ring else []
    reqs.extend(msgpack.packb([0, 1, "link", [ids[i], ids[i + 1]]]) for i in range(k - 1))
    ring.extend(ids)
    made += k
    if made == N:
        reqs.append(msgpack.packb([0, 1, "link", [ring[-1], ring[0]]]))
    a.s.sendall(b"".join(reqs))
    a.replies(len(reqs))
for i in range(0, len(ring), 50000):
    part = ring[i:i + 50000]
    a.s.sendall(b"".join(msgpack.packb([0, 1, "decref", [x]]) for x in part))
    a.replies(len(part))
while made < N:
    k = min(10000, N - made) // 2
    a.s.sendall(b"".join(msgpack.packb([0, 1, "create", [b""]]) for _ in range(2 * k)))
    ids = [r[3] for r in a.replies(2 * k)]
    reqs = []
    for i in range(0, 2 * k, 2):
        reqs.append(msgpack.packb([0, 1, "link", [ids[i], ids[i + 1]]]))
        reqs.append(msgpack.packb([0, 1, "link", [ids[i + 1], ids[i]]]))
        reqs.append(msgpack.packb([0, 1, "decref", [ids[i]]]))
        reqs.append(msgpack.packb([0, 1, "decref", [ids[i + 1]]]))
    a.s.sendall(b"".join(reqs))
    a.replies(len(reqs))
    made += 2 * k
before = b.call("stats")
waits = []
t_end = time.time() + 30
while time.time() < t_end:
    waits.append(ping())
    if len(waits) % 200 == 0:
        st = b.call("stats")
        if st["heap"]["objects"] == 0 and st["gc"]["candidates"] == 0:
            break
after = b.call("stats")
# The machine's own noise: the same pings for 10 s with nothing to collect.
base = []
t_end = time.time() + 10
while time.time() < t_end:
    base.append(ping())
base.sort()
p.terminate()
p.wait()
waits.sort()
q = lambda f: waits[min(len(waits) - 1, int(f * len(waits)))] * 1e3
g = after["gc"]
shape = "one ring" if SHAPE == "ring" else "2-cycles"
print(f"{made} objects in {shape}, swept in slices of {SLICE} us while pinging:")
print(f"  collected {g['collected'] - before['gc']['collected']} in {g['slices']} slices; "
      f"objects left {after['heap']['objects']}")
print(f"  server pauses: max {g['max_pause_us']} us, histogram {g['pauses']}")
over = sum(1 for w in waits if w > 0.002)
print(f"  ping wait ({len(waits)} pings): p50 {q(0.5):.3f} ms, p99 {q(0.99):.3f} ms, "
      f"p99.9 {q(0.999):.3f} ms, max {waits[-1]*1e3:.3f} ms, {over} over 2 ms "
      f"(target: max <= 2 ms)")
base_over = sum(1 for w in base if w > 0.002)
print(f"  after, nothing to collect ({len(base)} pings): max {base[-1]*1e3:.3f} ms, "
      f"{base_over} over 2 ms (the machine's own noise)")
