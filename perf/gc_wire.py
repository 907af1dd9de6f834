#!/usr/bin/python3
"""The `gc` request over the wire, on garbage a client builds: N objects in
2-cycles sent as perf/gc_pause.py sends them (create 10,000 empty objects,
then link a b, link b a, decref a, decref b for each pair: every object is
a candidate), then one `gc`, whose own duration_us is printed; RUNS times
on one server. Periodic sweeps are kept out of the way.

    perf/gc_wire.py build/server/rcstored [objects] [runs]

The heap empties after each `gc`, so each run starts from a fresh id table:
perf/gc_bench's "clients" case adds the churned heap."""
import gc
import socket
import subprocess
import sys

import msgpack

RCSTORED = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
p = subprocess.Popen([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--gc-interval-ms", "86400000",
                      "--gc-threshold", "1000000000"], stderr=subprocess.PIPE, text=True)
for line in p.stderr:
    if "listening on tcp://" in line:
        host, port = line.rsplit("tcp://", 1)[1].strip().rsplit(":", 1)
        break
s = socket.create_connection((host, int(port)))
u = msgpack.Unpacker(raw=False)


def replies(n):
    out = []
    while len(out) < n:
        u.feed(s.recv(1 << 20))
        out.extend(o for o in u if o[0] == 1)
    return out


gc.disable()
try:
    for run in range(RUNS):
        made = 0
        while made < N:
            k = min(10000, N - made) // 2
            s.sendall(b"".join(msgpack.packb([0, 1, "create", [b""]]) for _ in range(2 * k)))
            ids = [r[3] for r in replies(2 * k)]
            reqs = []
            for i in range(0, 2 * k, 2):
                reqs.append(msgpack.packb([0, 1, "link", [ids[i], ids[i + 1]]]))
                reqs.append(msgpack.packb([0, 1, "link", [ids[i + 1], ids[i]]]))
                reqs.append(msgpack.packb([0, 1, "decref", [ids[i]]]))
                reqs.append(msgpack.packb([0, 1, "decref", [ids[i + 1]]]))
            s.sendall(b"".join(reqs))
            replies(len(reqs))
            made += 2 * k
        s.sendall(msgpack.packb([0, 1, "gc", []]))
        r = replies(1)[0][3]
        print(f"gc over the wire: {r['collected']} collected, {r['candidates']} candidates, "
              f"duration_us {r['duration_us']}", flush=True)
finally:
    p.terminate()
    p.wait()
