#!/usr/bin/python3
"""Longest wait of a pinging client while periodic sweeps free cycles.

Client A builds N objects in 2-cycles and drops them (they wait as
candidates: the threshold is set out of reach); then client B pings in a
loop, one request at a time, while the interval timer's sweep frees them in
slices of --gc-slice-us. Reports B's latency percentiles and maximum over
the window in which the sweep ran, and the server's own pause statistics.

    bench/gc_pause.py build/server/rcstored [objects] [slice_us]
"""
import gc
import socket
import subprocess
import sys
import time

import msgpack

RCSTORED = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300_000
SLICE = sys.argv[3] if len(sys.argv) > 3 else "1000"

p = subprocess.Popen([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--gc-interval-ms", "1500",
                      "--gc-threshold", "1000000000", "--gc-slice-us", SLICE],
                     stderr=subprocess.PIPE, text=True)
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
made = 0
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
    t = time.perf_counter()
    b.call("ping")
    waits.append(time.perf_counter() - t)
    if len(waits) % 200 == 0:
        st = b.call("stats")
        if st["heap"]["objects"] == 0 and st["gc"]["candidates"] == 0:
            break
after = b.call("stats")
p.terminate()
p.wait()
waits.sort()
q = lambda f: waits[min(len(waits) - 1, int(f * len(waits)))] * 1e3
g = after["gc"]
print(f"{made} objects in 2-cycles, swept in slices of {SLICE} us while pinging:")
print(f"  collected {g['collected'] - before['gc']['collected']} in {g['slices']} slices; "
      f"objects left {after['heap']['objects']}")
print(f"  server pauses: max {g['max_pause_us']} us, histogram {g['pauses']}")
print(f"  ping wait ({len(waits)} pings): p50 {q(0.5):.3f} ms, p99 {q(0.99):.3f} ms, "
      f"p99.9 {q(0.999):.3f} ms, max {waits[-1]*1e3:.3f} ms (target: max <= 2 ms)")
