#!/usr/bin/python3
"""One connection's pipeline cannot hold the loop (issue 14): a connection
serves its requests for at most one slice (--gc-slice-us) before the rest of
its input waits on the server's backlog, so other clients are served in
between; and the bound on all clients' buffers (--max-client-buffers) is
looked at between the requests of one read, not only after all of them.
Both are checked by what the server did (its counters and its log), never
by timing."""
import socket
import sys
import time

import msgpack

import rcswire
from rcswire import Conn

RCSTORED = sys.argv[1]
check = rcswire.Checks()
MiB = 1 << 20


def start_server(*flags):
    """rcstored on a free port; its log lines are kept in the returned list."""
    return rcswire.start_server(RCSTORED, *flags, keep=True)


def stop(proc, what):
    proc.terminate()
    check(what + " server exits 0", proc.wait(timeout=60) == 0)


def pipeline(conn, calls):
    """Send calls [(method, params)] in one write; return the replies."""
    data = b"".join(msgpack.packb([0, i + 1, m, p], use_bin_type=True)
                    for i, (m, p) in enumerate(calls))
    conn.send_raw(data)
    conn.msgid = len(calls)
    return [conn.reply() for _ in calls]


# A burst of heavy requests from one connection, and a ping from another.
N_OBJ, N_BURST = 70000, 2000
proc, addr, _ = start_server()
try:
    owner = Conn(addr)
    ids = [r[3] for r in pipeline(owner, [("create", [b""])] * N_OBJ)]
    # Its one referrer is the last slot: each page from cursor 0 scans a
    # whole budget and finds nothing.
    target = ids[0]
    owner.ok("link", ids[-1], target)
    burst, other = Conn(addr), Conn(addr)
    calls = [("referrers", [target, 1, 0])] * N_BURST
    burst.send_raw(b"".join(msgpack.packb([0, i + 1, m, p], use_bin_type=True)
                            for i, (m, p) in enumerate(calls)))
    check("a ping is answered during another connection's burst", other.ok("ping") == "pong")
    served = other.ok("stats")["ops"]["referrers"]
    check("... before the burst was over (served %d of %d then)" % (served, N_BURST),
          served < N_BURST, served)
    got = [burst.reply() for _ in range(N_BURST)]
    check("the burst's replies come whole and in order",
          [r[1] for r in got] == list(range(1, N_BURST + 1)) and all(r[2] is None for r in got))
    check("the backlog is empty again: the burst's connection reads on",
          burst.ok("ping") == "pong")
finally:
    stop(proc, "fairness")

# --max-client-buffers holds between the requests of one read: a client that
# pipelines gets of a 1 MB object and never reads is closed once all buffers
# pass the bound, however many of its gets arrived in one read.
LIMIT = 5 * MiB
proc, addr, log = start_server("--maxmemory", "8m", "--max-message-bytes", "2m",
                               "--max-client-buffers", str(LIMIT))
try:
    c = Conn(addr)
    big = c.ok("create", b"x" * 1000000)
    c.ok("bind", "big", big)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(addr)
    s.sendall(b"".join(msgpack.packb([0, i + 1, "get", [big]]) for i in range(60)))
    deadline = time.time() + 30
    while time.time() < deadline and c.ok("stats")["server"]["clients_evicted"] < 1:
        time.sleep(0.05)
    check("the non-reader was evicted", c.ok("stats")["server"]["clients_evicted"] == 1)
    # The eviction's log line reaches the list through the drain thread.
    deadline = time.time() + 30
    while time.time() < deadline and not any("are over max_client_buffers" in l for l in log):
        time.sleep(0.01)
    closing = [l for l in log if "are over max_client_buffers" in l]
    total = int(closing[0].split("all clients' (")[1].split(" ")[0]) if closing else None
    # The check comes after each request: the total passes the bound by at
    # most the growth of one buffer, which doubles (60 replies' worth used
    # to land first: 67 MB).
    check("the buffers passed the bound by at most one buffer's growth (%s bytes of %d)"
          % (total, LIMIT), total is not None and total <= 2 * LIMIT + 2 * MiB, closing)
    check("the others are served", c.ok("ping") == "pong")
    s.close()
finally:
    stop(proc, "client bound")

print("fairness: %d failure(s)" % check.failures if check.failures else
      "fairness: all checks passed")
sys.exit(1 if check.failures else 0)
