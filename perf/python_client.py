#!/usr/bin/python3
"""The Python client's speed against what the wire allows (issue 19): one
rcstored on loopback, and in alternating order each round

  bench      rcstore-bench -c 1 -P 1000 -t incref (the C load generator:
             one connection, 1000 requests in flight)
  pipeline   rcstore's sync Client, `with c.pipeline() as p: p.incref(id)`
             N times, from the first queued call to the last result
  aio        the same through rcstore.aio (reported, no target)
  bare       a bare-socket loop: msgpack.Packer + sendall + Unpacker, one
             incref round trip at a time
  client     the sync Client's c.incref(id), one round trip at a time
             (bare and client alternate in 10 blocks within the round)

and prints the medians and the two ratios the issue sets targets for:
pipeline / bench >= 0.5 (requests per second) and client / bare <= 1.3
(time per round trip). A benchmark, not a test: it exits 0 either way.

    perf/python_client.py [BUILD_DIR] [--rounds R] [-n N] [--rtt-n M]
                          [--unix] [--pin]

BUILD_DIR (default ./build) holds server/rcstored and client/rcstore-bench.
The package is the checkout's client/python, not an installed one. --unix
runs everything over a unix socket instead of TCP; --pin puts the server on
core 0 and the client (Python or the bench) on core 1 (taskset).
"""

import argparse
import asyncio
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import msgpack

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "client" / "python"))

import rcstore  # noqa: E402
import rcstore.aio  # noqa: E402


def start_server(rcstored, unix_dir, pin):
    args = [rcstored]
    if unix_dir:
        path = os.path.join(unix_dir, "rcstored.sock")
        args += ["--listen", "unix://" + path]
    else:
        args += ["--listen", "tcp://127.0.0.1:0"]
    if pin:
        args = ["taskset", "-c", "0"] + args
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "listening on tcp://" in line:
            address = "tcp://" + line.rsplit("tcp://", 1)[1].strip()
            break
        if "listening on unix://" in line:
            address = "unix://" + line.rsplit("unix://", 1)[1].strip()
            break
    else:
        sys.exit("rcstored did not start")
    return p, address


def run_bench(bench, address, n, pin):
    args = [bench, "-c", "1", "-P", "1000", "-t", "incref", "-n", str(n), "--json"]
    if address.startswith("unix://"):
        args += ["-s", address[len("unix://"):]]
    else:
        host, port = address[len("tcp://"):].rsplit(":", 1)
        args += ["-h", host, "-p", port]
    if pin:
        args = ["taskset", "-c", "1"] + args
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]["rps"]


def py_pipeline(address, n):
    with rcstore.connect(address) as c:
        root = c.new(b"root")
        t0 = time.perf_counter()
        with c.pipeline() as p:
            for _ in range(n):
                p.incref(root.id)
        dt = time.perf_counter() - t0
        assert p.results[-1] == n + 1, p.results[-1]
    return n / dt


def aio_pipeline(address, n):
    async def main():
        async with await rcstore.aio.connect(address) as c:
            root = await c.new(b"root")
            t0 = time.perf_counter()
            async with c.pipeline() as p:
                for _ in range(n):
                    p.incref(root.id)
            dt = time.perf_counter() - t0
            assert p.results[-1] == n + 1, p.results[-1]
        return n / dt

    return asyncio.run(main())


class BareConn:
    """A bare-socket msgpack-RPC connection: the floor a client's round
    trip is measured against (Packer, sendall, Unpacker, nothing else)."""

    def __init__(self, address):
        if address.startswith("unix://"):
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(address[len("unix://"):])
        else:
            host, port = address[len("tcp://"):].rsplit(":", 1)
            self.s = socket.create_connection((host, int(port)))
            self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pk = msgpack.Packer()
        self.u = msgpack.Unpacker()
        self.msgid = 0
        self.oid = self.call("create", b"root")

    def call(self, method, *params):
        self.msgid += 1
        self.s.sendall(self.pk.pack([0, self.msgid, method, list(params)]))
        while True:
            r = next(self.u, None)
            if r is not None:
                break
            self.u.feed(self.s.recv(65536))
        if r[2] is not None:
            raise RuntimeError(r[2])
        return r[3]


def round_trips(address, m, blocks=10):
    """Seconds per unpipelined incref, bare socket and Client.incref, in
    alternating blocks of m/blocks calls (the machine's drift hits both)."""
    bare = BareConn(address)
    t_bare = t_client = 0.0
    k = max(1, m // blocks)
    with rcstore.connect(address) as c:
        oid = c.create(b"root")
        for b in range(blocks):
            for side in ((0, 1) if b % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                if side == 0:
                    for _ in range(k):
                        bare.call("incref", bare.oid)
                    t_bare += time.perf_counter() - t0
                else:
                    for _ in range(k):
                        c.incref(oid)
                    t_client += time.perf_counter() - t0
    bare.s.close()
    return t_bare / (k * blocks), t_client / (k * blocks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default=str(REPO / "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=1_000_000, help="pipelined increfs per round")
    ap.add_argument("--rtt-n", type=int, default=20_000, help="round trips per round")
    ap.add_argument("--unix", action="store_true", help="a unix socket instead of TCP")
    ap.add_argument("--pin", action="store_true", help="server on core 0, clients on core 1")
    a = ap.parse_args()
    rcstored = os.path.join(a.build, "server", "rcstored")
    bench = os.path.join(a.build, "client", "rcstore-bench")
    for p in (rcstored, bench):
        if not os.access(p, os.X_OK):
            sys.exit(f"{p}: not found (make build)")
    if a.pin:
        if shutil.which("taskset") is None:
            sys.exit("--pin needs taskset (util-linux)")
        os.sched_setaffinity(0, {1})
    unix_dir = tempfile.mkdtemp(prefix="rcspyperf") if a.unix else None
    srv, address = start_server(rcstored, unix_dir, a.pin)
    res = {k: [] for k in ("bench", "pipeline", "aio", "bare", "client")}
    load = os.getloadavg()[0]
    print(f"# {time.strftime('%H:%M UTC', time.gmtime())}, load average {load:.2f}, "
          f"{address.split('://')[0]}, n={a.n}, rtt-n={a.rtt_n}, rounds={a.rounds}", flush=True)
    try:
        order = [
            ("bench", lambda: run_bench(bench, address, a.n, a.pin)),
            ("pipeline", lambda: py_pipeline(address, a.n)),
            ("aio", lambda: aio_pipeline(address, a.n)),
            ("rtt", lambda: round_trips(address, a.rtt_n)),
        ]
        for r in range(a.rounds):
            # Alternate the order so that neither side always runs first.
            steps = order if r % 2 == 0 else order[::-1]
            for name, fn in steps:
                v = fn()
                if name == "rtt":
                    res["bare"].append(v[0])
                    res["client"].append(v[1])
                else:
                    res[name].append(v)
            print(f"round {r + 1}: bench {res['bench'][-1]:,.0f} rps, pipeline "
                  f"{res['pipeline'][-1]:,.0f} rps ({res['pipeline'][-1] / res['bench'][-1]:.2f}x), "
                  f"aio {res['aio'][-1]:,.0f} rps; round trip bare {res['bare'][-1] * 1e6:.1f} us, "
                  f"client {res['client'][-1] * 1e6:.1f} us ({res['client'][-1] / res['bare'][-1]:.2f}x)",
                  flush=True)
    finally:
        srv.terminate()
        srv.wait()
        if unix_dir:
            shutil.rmtree(unix_dir, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    per_round_pipe = statistics.median(p / b for p, b in zip(res["pipeline"], res["bench"]))
    per_round_rtt = statistics.median(c / b for c, b in zip(res["client"], res["bare"]))
    print(f"medians: rcstore-bench -c 1 -P 1000 {med['bench']:,.0f} rps; Python pipeline "
          f"{med['pipeline']:,.0f} rps; aio pipeline {med['aio']:,.0f} rps")
    print(f"         bare-socket round trip {med['bare'] * 1e6:.1f} us; Client.incref "
          f"{med['client'] * 1e6:.1f} us")
    ok1 = per_round_pipe >= 0.5
    ok2 = per_round_rtt <= 1.3
    print(f"target: pipeline / rcstore-bench >= 0.5 (median of the rounds): {per_round_pipe:.2f}, "
          f"{'met' if ok1 else 'NOT met'}")
    print(f"target: client / bare-socket round trip <= 1.3 (median of the rounds): {per_round_rtt:.2f}, "
          f"{'met' if ok2 else 'NOT met'}")


if __name__ == "__main__":
    main()
