#!/usr/bin/python3
"""The recovery half of perf/persist_vs_redis.sh: fill a server, and time a
restart to its first answered ping.

    persist_recovery.py populate-rcstore PORT OBJECTS
        OBJECTS objects of 16 bytes over one pipelined connection, in groups
        of 100: 99 plain objects and one that refs them, bound to a name
        (g/<k>), so names hold everything and no session is left; then
        `save`, then OBJECTS/10 set_data in the journal after the snapshot.
    persist_recovery.py populate-redis PORT KEYS
        KEYS SETs of 16-byte values (key:<k>), pipelined; then SAVE.
    persist_recovery.py first-ping rcstore|redis PORT -- COMMAND...
        start COMMAND and print the milliseconds from its start to the first
        answered ping (for Redis: the first +PONG, not -LOADING), then kill it
        with SIGKILL, as the first crash was.

Python's msgpack packs and reads about half a million requests a second
here: populating a million objects takes a few seconds, and none of it is
timed."""
import socket
import subprocess
import sys
import time

import msgpack

DATA = b"0123456789abcdef"


def rcs_conn(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, msgpack.Unpacker(raw=False)


class Pipe:
    def __init__(self, port):
        self.s, self.u = rcs_conn(port)
        self.msgid = 0

    def run(self, calls):
        """Send [(method, params)] at once; return the results in order."""
        buf = []
        for m, p in calls:
            self.msgid += 1
            buf.append(msgpack.packb([0, self.msgid, m, p], use_bin_type=True))
        self.s.sendall(b"".join(buf))
        out = []
        while len(out) < len(calls):
            self.u.feed(self.s.recv(1 << 20))
            for o in self.u:
                if o[0] != 1:
                    continue
                if o[2] is not None:
                    sys.exit("populate: %s" % o[2])
                out.append(o[3])
        return out


def populate_rcstore(port, n):
    p = Pipe(port)
    groups = n // 100
    ids = []
    t0 = time.time()
    for g0 in range(0, groups, 100):
        gs = range(g0, min(g0 + 100, groups))
        plain = p.run([("create", [DATA])] * (99 * len(gs)))
        heads = p.run([("create", [DATA, plain[99 * k:99 * k + 99]]) for k in range(len(gs))])
        p.run([("bind", ["g/%d" % g, h]) for g, h in zip(gs, heads)])
        ids.extend(plain[::97])
    p.run([("release_all", [])])
    t1 = time.time()
    saved = p.run([("save", [])])[0]
    t2 = time.time()
    more = n // 10
    for k in range(0, more, 10000):
        p.run([("set_data", [ids[(k + j) % len(ids)], b"%016d" % (k + j)])
               for j in range(min(10000, more - k))])
    stats = p.run([("stats", [])])[0]
    print("populated %d objects, %d names in %.1f s; save: %d bytes in %d ms; "
          "then %d set_data in the journal (%d bytes)" % (
              stats["heap"]["objects"], groups, t1 - t0, saved["snapshot_bytes"],
              saved["duration_ms"], more, stats["persistence"]["journal_bytes"]))


def populate_redis(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.time()
    for k0 in range(0, n, 10000):
        cmds = [b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(key), key, DATA)
                for key in (b"key:%d" % k for k in range(k0, min(k0 + 10000, n)))]
        s.sendall(b"".join(cmds))
        want, got = len(cmds) * 5, b""       # "+OK\r\n" each
        while len(got) < want:
            got += s.recv(1 << 20)
        if got != b"+OK\r\n" * len(cmds):
            sys.exit("populate-redis: %r" % got[:100])
    s.sendall(b"DBSIZE\r\n")
    size = s.recv(100)
    s.sendall(b"SAVE\r\n")
    ok = s.recv(100)
    print("populated redis with %s keys in %.1f s; SAVE: %s" % (
        size.strip().decode(), time.time() - t0, ok.strip().decode()))


def first_ping(kind, port, cmd):
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ping = msgpack.packb([0, 1, "ping", []]) if kind == "rcstore" else b"PING\r\n"
    try:
        while True:
            if proc.poll() is not None:
                sys.exit("first-ping: the server exited: " + proc.stderr.read())
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
            except OSError:
                time.sleep(0.001)    # the port is not open yet
                continue
            try:
                s.sendall(ping)
                r = s.recv(1000)
            except OSError:
                r = b""
            s.close()
            if (kind == "rcstore" and r and msgpack.unpackb(r)[3] == "pong") or \
               (kind == "redis" and r.startswith(b"+PONG")):
                print("%.0f" % ((time.monotonic() - t0) * 1000))
                break
            time.sleep(0.001)        # -LOADING, or not answering yet
    finally:
        proc.kill()      # kill -9 again: every round recovers from a crash
        proc.wait()
    log = proc.stderr.read()
    for line in log.splitlines():
        if "recovered " in line:
            print(line.split("recovered ", 1)[1], file=sys.stderr)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "populate-rcstore":
        populate_rcstore(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "populate-redis":
        populate_redis(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "first-ping":
        first_ping(sys.argv[2], int(sys.argv[3]), sys.argv[sys.argv.index("--") + 1:])
    else:
        sys.exit(__doc__)
