#!/usr/bin/python3
"""RSS per object: rcstored vs redis-server, same run, same machine.

Creates N objects of D bytes of data (no refs, each held by the creating
session) in rcstored, and N keys with D-byte values in Redis (if
redis-server is installed: `apt-get install redis-server`). Reports RSS
growth per object/key, then frees everything in rcstored and reports how
much RSS went back to the operating system.

    perf/mem_per_object.py build/server/rcstored [N] [D]
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import msgpack

RCSTORED = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
D = int(sys.argv[3]) if len(sys.argv) > 3 else 16
BATCH = 10_000


def rss_of(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rcstore_run():
    p = subprocess.Popen([RCSTORED, "--listen", "tcp://127.0.0.1:0"], stderr=subprocess.PIPE,
                         text=True)
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
            out.extend(o[3] for o in u)
        return out

    s.sendall(msgpack.packb([0, 0, "ping", []]))
    replies(1)
    base = rss_of(p.pid)
    data = b"x" * D
    ids = []
    t0 = time.time()
    for start in range(0, N, BATCH):
        s.sendall(b"".join(msgpack.packb([0, i, "create", [data]])
                           for i in range(start, start + BATCH)))
        ids += replies(BATCH)
    build_s = time.time() - t0
    full = rss_of(p.pid)
    for start in range(0, N, BATCH):
        s.sendall(b"".join(msgpack.packb([0, 0, "decref", [i]]) for i in ids[start:start + BATCH]))
        replies(BATCH)
    freed = rss_of(p.pid)
    p.terminate()
    p.wait()
    return base, full, freed, build_s


def redis_run():
    exe = shutil.which("redis-server")
    if not exe:
        return None
    d = tempfile.mkdtemp()
    port = 26379
    p = subprocess.Popen([exe, "--port", str(port), "--save", "", "--appendonly", "no",
                          "--dir", d], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    f = s.makefile("rb")

    def cmd(*args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out

    s.sendall(cmd("PING"))
    f.readline()
    base = rss_of(p.pid)
    value = b"x" * D
    for start in range(0, N, BATCH):
        s.sendall(b"".join(cmd("SET", f"key:{i}", value) for i in range(start, start + BATCH)))
        for _ in range(BATCH):
            f.readline()
    full = rss_of(p.pid)
    p.terminate()
    p.wait()
    shutil.rmtree(d)
    return base, full


base, full, freed, build_s = rcstore_run()
per = (full - base) / N
print(f"rcstored: {N} objects of {D} bytes: RSS {base/2**20:.1f} -> {full/2**20:.1f} MiB, "
      f"{per:.1f} B/object (built in {build_s:.1f} s)")
back = (full - freed) / max(1, full - base) * 100
print(f"rcstored: after freeing all: RSS {freed/2**20:.1f} MiB, {back:.0f}% of the growth returned")
r = redis_run()
if r:
    rper = (r[1] - r[0]) / N
    print(f"redis:    {N} keys with {D}-byte values: {rper:.1f} B/key")
    print(f"ratio rcstored/redis: {per / rper:.2f} (target <= 0.50)")
else:
    print("redis:    redis-server not installed (apt-get install redis-server); no comparison")
