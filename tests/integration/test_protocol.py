#!/usr/bin/python3
"""Wire-level test of rcstored from another language (Debian's python3-msgpack),
written against SPEC.md rather than the C client: method names, parameter
shapes, result maps, error codes, notifications, and hostile input (garbage,
over-claiming headers, split frames, a client that never reads)."""
import os
import socket
import subprocess
import sys
import time

import msgpack

import rcswire
from rcswire import Conn

RCSTORED = sys.argv[1]
failures = 0


T0 = time.time()


def check(name, cond, detail=""):
    global failures
    if cond:
        print("ok  ", name, round(time.time() - T0, 1))
    else:
        failures += 1
        print("FAIL", name, detail)


def start_server(*flags):
    proc, addr, _ = rcswire.start_server(RCSTORED, *flags)
    return proc, addr


proc, addr = start_server("--max-data-bytes", "65536", "--max-refs", "100",
                          "--max-message-bytes", "1m", "--max-output-bytes", "262144")
try:
    c = Conn(addr)
    h = c.ok("hello", {"client": "python"})
    check("hello keys", set(h) >= {"protocol", "server", "session", "token", "resumed", "limits"}, h)
    check("hello protocol 1", h["protocol"] == 1)
    # Nobody logs in here: user and auth are accepted, unchecked, and the
    # result says what applies (no user, the admin role).
    h2 = Conn(addr).ok("hello", {"user": "bob", "auth": "anything"})
    check("hello user/auth where nobody logs in: user nil, admin",
          h2["user"] is None and h2["user_role"] == "admin" and h2["session"] > 0, h2)
    check("hello token is bin of >= 16 bytes", isinstance(h["token"], bytes) and len(h["token"]) >= 16)
    check("hello limits", set(h["limits"]) >= {"max_data_bytes", "max_refs", "max_message_bytes",
                                                "max_session_ttl"} and h["limits"]["max_refs"] == 100)
    check("hello with [] params", c.ok("hello")["session"] == h["session"])
    check("ping", c.ok("ping") == "pong")

    a = c.ok("create", b"alpha")
    b = c.ok("create", "beta", [a, a])
    check("ids are positive ints", isinstance(a, int) and a > 0 and b != a)
    g = c.ok("get", b)
    check("get map", g == {"id": b, "data": b"beta", "refs": [a, a], "refcount": 1}, g)
    st = c.ok("stat", a)
    check("stat map", all(st[k] == v for k, v in
                          {"refcount": 3, "holds": 1, "names": 0, "internal": 2,
                           "data_bytes": 5, "nrefs": 0}.items()), st)
    check("set_data -> nil", c.ok("set_data", a, b"ALPHA") is None)
    check("set_refs -> nil", c.ok("set_refs", b, [a]) is None)
    check("link -> length", c.ok("link", b, b) == 2)
    check("unlink -> length", c.ok("unlink", b, b) == 1)
    check("unlink absent -> NOT_FOUND", c.code("unlink", b, b) == "NOT_FOUND")
    check("incref -> holds", c.ok("incref", a) == 2 and c.ok("incref", a, 3) == 5)
    check("decref -> holds", c.ok("decref", a, 4) == 1)
    check("bind -> nil", c.ok("bind", "py/b", b) is None)
    check("lookup", c.ok("lookup", "py/b") == b)
    check("lookup acquire", c.ok("lookup", "py/b", True) == b and c.ok("stat", b)["holds"] == 2)
    check("names", c.ok("names", "py/") == [["py/b", b]])
    check("names limit", c.ok("names", "", 0) == [])
    check("referrers", c.ok("referrers", a) == [b])
    check("referrers page", c.ok("referrers", a, 10, 0) == {"ids": [b], "cursor": 0},
          c.ok("referrers", a, 10, 0))
    check("referrers page: limit 0 -> BAD_PARAMS", c.code("referrers", a, 0, 0) == "BAD_PARAMS")
    check("watch -> nil", c.ok("watch", a) is None)
    check("set_refs releases", c.ok("set_refs", b, []) is None)
    check("decref last hold", c.ok("decref", a) == 0)
    # The free happened inside the request: its notification is already here
    # or arrives before the next reply.
    c.ok("ping")
    check("freed notification", [2, "freed", [a, "refcount"]] in c.notes, c.notes)
    check("release_all counts holds", c.ok("release_all") == 2)
    check("name keeps object alive", c.ok("stat", b)["names"] == 1)
    c.ok("unbind", "py/b")
    check("unbind unknown -> NAME_NOT_FOUND", c.code("unbind", "py/b") == "NAME_NOT_FOUND")

    # names past what one request may return (10,000): the plain call is
    # refused and names the paging form; pages with after list each name once.
    z = c.ok("create", b"z")
    many = ["pg/%05d" % i for i in range(10050)]
    for i in range(0, len(many), 2000):
        for nm in many[i:i + 2000]:
            c.send("bind", nm, z)
        errs = [c.reply()[2] for _ in many[i:i + 2000]]
        assert errs == [None] * len(errs), errs[:3]
    err, _ = c.call("names", "pg/")
    check("names past the bound -> QUOTA_EXCEEDED naming the paging form",
          err and err["code"] == "QUOTA_EXCEEDED" and "names [prefix, limit, after]" in err["message"],
          err)
    check("names past the bound with a limit above it -> QUOTA_EXCEEDED",
          c.code("names", "pg/", 10001) == "QUOTA_EXCEEDED")
    check("names within the bound", len(c.ok("names", "pg/", 10000)) == 10000)
    check("names that fit", [n for n, _ in c.ok("names", "pg/0")] == many[:10000])
    got, after, pages = [], "", 0
    while after is not None:
        page = c.ok("names", "pg/", 4000, after)
        check_shape = set(page) == {"names", "next"} and len(page["names"]) <= 4000
        got += [n for n, _ in page["names"]]
        after = page["next"]
        pages += 1
        if not check_shape or pages > 10:
            break
    check("names pages: every name once, in order", got == many and pages == 3, (len(got), pages))
    check("names page from a cursor that is no name",
          c.ok("names", "pg/", 2, "pg/100455") == {"names": [["pg/10046", z], ["pg/10047", z]],
                                                    "next": "pg/10047"})
    check("names page: limit 0 -> BAD_PARAMS", c.code("names", "", 0, "") == "BAD_PARAMS")
    check("names page: after not a str -> BAD_PARAMS", c.code("names", "", 5, 7) == "BAD_PARAMS")
    for nm in many:
        c.send("unbind", nm)
    for _ in many:
        c.reply()
    check("names unbound again", c.ok("names", "pg/") == [])

    x = c.ok("create", b"x")
    c.ok("link", x, x)
    c.ok("watch", x)
    c.ok("decref", x)
    r = c.ok("gc")
    check("gc map", set(r) == {"collected", "candidates", "examined", "duration_us"} and r["collected"] >= 1, r)
    c.ok("ping")
    check("cycle notification", [2, "freed", [x, "cycle"]] in c.notes, c.notes)
    s = c.ok("stats")
    check("stats sections", set(s) >= {"server", "heap", "memory", "gc", "sessions", "ops"}, list(s))
    check("stats fields",
          {"version", "uptime_s", "connections"} <= set(s["server"]) and
          {"objects", "data_bytes", "refs"} <= set(s["heap"]) and
          {"rss_bytes", "heap_bytes"} <= set(s["memory"]) and
          {"collections", "collected", "candidates", "threshold", "total_us", "last_pause_us",
           "max_pause_us"} <= set(s["gc"]) and
          {"attached", "detached", "expired", "resumed"} <= set(s["sessions"]) and
          s["ops"]["gc"] == 1, s)

    # Error codes.
    check("UNKNOWN_METHOD", c.code("frobnicate") == "UNKNOWN_METHOD")
    check("debug_check is unknown without --debug-commands",
          c.code("debug_check") == "UNKNOWN_METHOD")
    check("BAD_PARAMS arity", c.code("get") == "BAD_PARAMS")
    check("BAD_PARAMS type", c.code("get", "one") == "BAD_PARAMS")
    check("BAD_PARAMS zero id", c.code("get", 0) == "BAD_PARAMS")
    check("NOT_FOUND", c.code("get", 123456789) == "NOT_FOUND")
    y = c.ok("create", b"")
    check("NOT_HELD", c.code("decref", y, 2) == "NOT_HELD" and c.ok("stat", y)["holds"] == 1)
    check("NAME_NOT_FOUND", c.code("lookup", "nope") == "NAME_NOT_FOUND")
    # Data over max_data_bytes is refused from its header, before the body is
    # buffered; the stream cannot be resynchronised, so that connection closes.
    tl = Conn(addr)
    check("TOO_LARGE data", tl.code("create", b"x" * 65537) == "TOO_LARGE" and tl.closed())
    check("TOO_LARGE refs", c.code("create", b"", [y] * 101) == "TOO_LARGE")
    check("create is atomic", c.code("create", b"", [y, 99999999]) == "NOT_FOUND"
          and c.ok("stat", y)["internal"] == 0)
    check("QUOTA_EXCEEDED", c.code("incref", y, 2**32 - 1) == "QUOTA_EXCEEDED")
    check("SESSION_EXPIRED", c.code("hello", {"resume": b"\0" * 16}) == "SESSION_EXPIRED")
    err, _ = c.call("get", 123456789)
    check("error map shape", set(err) == {"code", "message"} and isinstance(err["message"], str))

    # Malformed requests that keep the stream in sync: a reply, and the
    # connection stays usable.
    c.send_raw(msgpack.packb([0, 77, 42, []]))
    r = c.reply()
    check("BAD_REQUEST with msgid", r[1] == 77 and r[2]["code"] == "BAD_REQUEST", r)
    c.send_raw(msgpack.packb("just a string"))
    r = c.reply()
    check("BAD_REQUEST without msgid", r[1] is None and r[2]["code"] == "BAD_REQUEST", r)
    c.send_raw(msgpack.packb([0, 78, "ping", {"not": "array"}]))
    check("params not an array", c.reply()[2]["code"] == "BAD_REQUEST")
    check("still usable", c.ok("ping") == "pong")

    # A request split into single bytes.
    c.msgid += 1
    frame = msgpack.packb([0, c.msgid, "create", [b"split", [y]]])
    for i in range(len(frame)):
        c.send_raw(frame[i:i + 1])
    r = c.reply()
    check("split frame", r[1] == c.msgid and r[2] is None and isinstance(r[3], int))

    # Many requests in one write, answered in order.
    batch = b"".join(msgpack.packb([0, 1000 + i, "ping", []]) for i in range(5000))
    c.send_raw(batch)
    ids = [c.reply()[1] for _ in range(5000)]
    check("pipeline order", ids == list(range(1000, 6000)))

    # Hostile headers: refused at once, before the body, and the connection
    # closed; nothing else is affected.
    rss_before = c.ok("stats")["memory"]["rss_bytes"]
    for name, data in [("array32 4G claim", b"\xdd\xff\xff\xff\xff"),
                       ("array32 512M claim", b"\xdd\x20\x00\x00\x00"),
                       ("map32 nested claims", b"\xdf\x00\x01\x00\x00" * 16),
                       ("bin32 2 GiB claim", msgpack.packb([0, 9, "create", []])[:-1] +
                        b"\x91\xc6\x80\x00\x00\x00"),
                       ("never-used byte", b"\x94\x00\x01\xc1"),
                       ("too deep", b"\x91" * 40)]:
        h = Conn(addr)
        h.send_raw(data)
        r = h.read()
        check(name + ": error reply", r is not None and r[0] == 1 and
              r[2]["code"] in ("BAD_REQUEST", "TOO_LARGE"), r)
        check(name + ": closed", h.closed())
    r = Conn(addr)
    r.send_raw(msgpack.packb([0, 9, "create", []])[:-1] + b"\x91\xc6\x80\x00\x00\x00")
    check("over-size reply quotes msgid", r.read()[1] == 9)
    rss_after = c.ok("stats")["memory"]["rss_bytes"]
    check("hostile headers cost no memory", rss_after - rss_before < 16 * 1024 * 1024,
          (rss_before, rss_after))
    check("others unaffected", c.ok("ping") == "pong")

    # A client that never reads is cut off past max_output_bytes.
    big = c.ok("create", b"z" * 60000)
    lazy = Conn(addr)
    lazy.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = msgpack.packb([0, 1, "get", [big]])
    sent = 0
    try:
        for _ in range(2000):
            lazy.send_raw(req)
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    got = 0
    try:
        while True:
            chunk = lazy.s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except ConnectionResetError:
        pass
    check("non-reader cut off", got < 2000 * 60000, (sent, got))
    check("others unaffected by the non-reader", c.ok("ping") == "pong")

    # A session's holds go when its connection closes; a watcher sees it.
    o = Conn(addr)
    z = o.ok("create", b"short-lived")
    c.ok("watch", z)
    o.s.close()
    while not any(n[2][0] == z for n in c.notes):
        c.notes.append(c.read())
    check("close releases holds", [2, "freed", [z, "refcount"]] in c.notes)
finally:
    proc.terminate()
    code = proc.wait(timeout=30)
    check("SIGTERM exits 0", code == 0, code)

# A watcher that never reads is cut off once its notifications pass
# max_output_bytes (256 KiB): the kernel's socket buffers take the ~1 MB of
# small replies to its watches, not the ~3 MB of notifications that follow.
proc, addr = start_server("--max-output-bytes", "256k", "--max-watches-per-session", "300000")
try:
    c = Conn(addr)
    N = 200000
    deaf = Conn(addr)
    deaf.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ids = []
    for start in range(0, N, 10000):
        c.send_raw(b"".join(msgpack.packb([0, 1, "create", [b""]]) for _ in range(10000)))
        ids += [c.reply()[3] for _ in range(10000)]
    watches_before = c.ok("stats")["ops"]["watch"]
    before = c.ok("stats")["server"]["connections"]
    deaf.send_raw(b"".join(msgpack.packb([0, 1, "watch", [i]]) for i in ids))
    # The watches are on another connection: wait until the server has
    # served them all (or, failing that, has cut the deaf client already).
    deadline = time.time() + 60
    while time.time() < deadline:
        st = c.ok("stats")
        if st["ops"]["watch"] >= watches_before + N or st["server"]["connections"] < before:
            break
    check("deaf watcher: every watch served", st["ops"]["watch"] >= watches_before + N, st["ops"])
    c.send_raw(b"".join(msgpack.packb([0, 1, "decref", [i]]) for i in ids))
    for _ in ids:
        c.reply()
    # Its cut-off shows in the server's connection count (draining what the
    # kernel already buffered through a 4 KiB window would take minutes).
    deadline = time.time() + 60
    while c.ok("stats")["server"]["connections"] >= before and time.time() < deadline:
        pass
    check("deaf watcher cut off", c.ok("stats")["server"]["connections"] < before)
    deaf.s.close()
finally:
    proc.terminate()
    check("deaf server exits 0", proc.wait(timeout=30) == 0)

# --maxmemory: past it, requests that allocate fail with OUT_OF_MEMORY and
# change nothing; reads and frees keep working; freeing makes room again.
proc, addr = start_server("--maxmemory", "4m")
try:
    m = Conn(addr)
    created = []
    while True:
        err, res = m.call("create", b"m" * 100000)
        if err:
            break
        created.append(res)
    check("maxmemory: OUT_OF_MEMORY", err["code"] == "OUT_OF_MEMORY", err)
    check("maxmemory: about 4 MiB were allowed", 30 <= len(created) <= 45, len(created))
    # Fill what is left with empty objects: then nothing that grows fits.
    while True:
        err, res = m.call("create", b"")
        if err:
            break
    check("maxmemory: small create refused too", err["code"] == "OUT_OF_MEMORY", err)
    objects = m.ok("stats")["heap"]["objects"]
    check("maxmemory: link refused", m.code("link", created[0], created[1]) == "OUT_OF_MEMORY")
    check("maxmemory: incref refused", m.code("incref", created[0]) == "OUT_OF_MEMORY")
    check("maxmemory: bind refused", m.code("bind", "n", created[0]) == "OUT_OF_MEMORY")
    check("maxmemory: nothing half-done", m.ok("stats")["heap"]["objects"] == objects and
          m.ok("stat", created[0]) == {"refcount": 1, "holds": 1, "names": 0, "internal": 0,
                                       "tokens": 0, "data_bytes": 100000, "nrefs": 0})
    check("maxmemory: reads served", len(m.ok("get", created[0])["data"]) == 100000)
    check("maxmemory: ping served", m.ok("ping") == "pong")
    check("maxmemory: stats report it", m.ok("stats")["memory"]["maxmemory"] == 4 << 20)
    for i in created[:10]:
        m.ok("decref", i)
    check("maxmemory: frees make room", isinstance(m.ok("create", b"m" * 100000), int))
finally:
    proc.terminate()
    check("maxmemory server exits 0", proc.wait(timeout=30) == 0)

# Periodic sweeps yield to clients between slices: with tiny slices and
# the threshold starting a sweep only once all the garbage exists (200000
# candidates, threshold 199000), a request sent then is
# answered while candidates still wait (the sweep is under way), and the
# sweep then finishes on its own. No timing is involved.
proc, addr = start_server("--gc-interval-ms", "0", "--gc-threshold", "199000",
                          "--gc-slice-us", "10")
try:
    s = Conn(addr)
    # 200000 candidates make a sweep of thousands of slices (~100 ms): the
    # one request below needs far less to arrive. With slices run back to
    # back (the bug this guards against) it could never see one under way.
    for start in range(0, 200000, 2000):
        s.send_raw(b"".join(msgpack.packb([0, 1, "create", [b""]]) for _ in range(2000)))
        ids = [s.reply()[3] for _ in range(2000)]
        reqs = []
        for i in range(0, 2000, 2):
            reqs += [msgpack.packb([0, 1, "link", [ids[i], ids[i + 1]]]),
                     msgpack.packb([0, 1, "link", [ids[i + 1], ids[i]]]),
                     msgpack.packb([0, 1, "decref", [ids[i]]]),
                     msgpack.packb([0, 1, "decref", [ids[i + 1]]])]
        s.send_raw(b"".join(reqs))
        for _ in reqs:
            s.reply()
    # The sweep starts once the last decref is served; a request may reach
    # the server in the same loop iteration, before its first slice (the
    # tail of a pipeline is served from the backlog's idle handle, and the
    # sweep's first slice from the next idle pass). So ask until a slice
    # has run: the answer must come while candidates still wait.
    for _ in range(1000):
        st = s.ok("stats")["gc"]
        if st["slices"] >= 1 or st["candidates"] == 0:
            break
    check("sweep: requests served between slices",
          st["slices"] >= 1 and st["candidates"] > 0, st)
    deadline = time.time() + 60
    while time.time() < deadline:
        st = s.ok("stats")
        if st["gc"]["candidates"] == 0 and st["heap"]["objects"] == 0:
            break
    check("sweep: finishes by itself", st["heap"]["objects"] == 0 and
          st["gc"]["collected"] == 200000, st["gc"])
finally:
    proc.terminate()
    check("sweep server exits 0", proc.wait(timeout=30) == 0)

# Leases: a session with a ttl outlives its connection, is resumed with its
# holds, is attached to one connection at a time, and expires loudly.
proc, addr = start_server("--max-session-ttl", "1")
try:
    w = Conn(addr)
    c1 = Conn(addr)
    h1 = c1.ok("hello", {"ttl": 3600, "client": "lease-test"})
    check("lease: ttl clamped to max_session_ttl", h1["ttl"] == 1, h1)
    x = c1.ok("create", b"kept")
    c1.ok("incref", x, 2)
    c1.s.close()
    while w.ok("stats")["sessions"]["detached"] < 1:  # the close is processed
        pass
    check("lease: holds kept while detached", w.ok("stat", x)["holds"] == 3)
    c2 = Conn(addr)
    h2 = c2.ok("hello", {"resume": h1["token"]})
    check("lease: resumed", h2["resumed"] is True and h2["session"] == h1["session"] and
          h2["token"] == h1["token"], h2)
    check("lease: holds come back", c2.ok("decref", x, 3) == 0)
    check("lease: resumed counted", w.ok("stats")["sessions"]["resumed"] == 1)
    c3 = Conn(addr)
    check("lease: SESSION_BUSY while attached", c3.code("hello", {"resume": h1["token"]}) ==
          "SESSION_BUSY")
    check("lease: a wrong token is SESSION_EXPIRED",
          c3.code("hello", {"resume": bytes(16)}) == "SESSION_EXPIRED")
    # Expiry: detach again with a held object, wait for its "freed" event.
    y = c2.ok("create", b"expires")
    w.ok("watch", y)
    c2.s.close()
    while not any(n[2][0] == y for n in w.notes):
        w.notes.append(w.read())
    check("lease: expiry releases holds", [2, "freed", [y, "refcount"]] in w.notes)
    c4 = Conn(addr)
    check("lease: resume after expiry fails loudly",
          c4.code("hello", {"resume": h1["token"]}) == "SESSION_EXPIRED")
    st = w.ok("stats")["sessions"]
    check("lease: expired counted", st["expired"] == 1 and st["detached"] == 0, st)
    # No ttl: the session goes with its connection.
    c5 = Conn(addr)
    z = c5.ok("create", b"gone")
    w.ok("watch", z)
    c5.s.close()
    while not any(n[2][0] == z for n in w.notes):
        w.notes.append(w.read())
    check("lease: none without ttl", [2, "freed", [z, "refcount"]] in w.notes)
    old_token = h1["token"]
finally:
    proc.terminate()
    check("lease server exits 0", proc.wait(timeout=30) == 0)
proc, addr = start_server()
try:
    check("lease: resume after restart fails loudly",
          Conn(addr).code("hello", {"resume": old_token}) == "SESSION_EXPIRED")
finally:
    proc.terminate()
    proc.wait(timeout=30)

# Hand-off: share gives a one-use token holding a reference of its own, so
# the sender may drop its hold at once; claim moves that reference.
proc, addr = start_server("--max-session-ttl", "1")
try:
    w = Conn(addr)
    sender, receiver = Conn(addr), Conn(addr)
    x = sender.ok("create", b"handed over")
    tok = sender.ok("share", x)
    check("share: token is 16+ bytes of bin", isinstance(tok, bytes) and len(tok) >= 16)
    check("share: the token holds a reference", sender.ok("stat", x)["tokens"] == 1)
    sender.ok("decref", x)  # the classic race: the sender lets go first
    check("share: object alive on the token alone",
          w.ok("stat", x) == {"refcount": 1, "holds": 0, "names": 0, "internal": 0,
                              "tokens": 1, "data_bytes": 11, "nrefs": 0})
    check("claim: returns the id", receiver.ok("claim", tok) == x)
    st = w.ok("stat", x)
    check("claim: the reference moved to the receiver", st["holds"] == 1 and st["tokens"] == 0, st)
    check("claim: one use only", receiver.code("claim", tok) == "TOKEN_INVALID")
    check("claim: unknown token", receiver.code("claim", bytes(16)) == "TOKEN_INVALID")
    check("claim: bad token type", receiver.code("claim", 7) == "BAD_PARAMS")
    check("share: unknown object", sender.code("share", 999999) == "NOT_FOUND")
    # Expiry (ttl clamped to max_session_ttl = 1 s): the token's reference goes.
    y = sender.ok("create", b"expiring")
    t2 = sender.ok("share", y, 30)
    w.ok("watch", y)
    sender.ok("decref", y)
    while not any(n[2][0] == y for n in w.notes):
        w.notes.append(w.read())
    check("share: expiry releases the token's reference", [2, "freed", [y, "refcount"]] in w.notes)
    check("claim: expired token", receiver.code("claim", t2) == "TOKEN_INVALID")
finally:
    proc.terminate()
    check("share server exits 0", proc.wait(timeout=30) == 0)

# Share tokens are limited: each one holds a reference until claimed or
# expired, so a session may have at most --max-tokens-per-session (default
# 1024) unclaimed, and the server at most --max-tokens in all.
proc, addr = start_server()
try:
    a, b = Conn(addr), Conn(addr)
    x = a.ok("create", b"shared")
    for _ in range(1024):
        a.send("share", x)
    toks = []
    for _ in range(1024):
        r = a.reply()
        toks.append(r[3])
    check("token quota: 1024 by default", all(isinstance(t, bytes) for t in toks) and
          a.ok("hello")["limits"]["max_tokens_per_session"] == 1024)
    err, _ = a.call("share", x)
    check("token quota: the next share is QUOTA_EXCEEDED",
          err and err["code"] == "QUOTA_EXCEEDED" and "max_tokens_per_session" in err["message"],
          err)
    check("token quota: nothing was made", a.ok("stat", x)["tokens"] == 1024)
    check("token quota: another session has its own", isinstance(b.ok("share", x), bytes))
    check("token quota: a claim gives it back", b.ok("claim", toks[0]) == x and
          isinstance(a.ok("share", x), bytes))
finally:
    proc.terminate()
    check("token quota server exits 0", proc.wait(timeout=30) == 0)

proc, addr = start_server("--max-tokens-per-session", "2", "--max-tokens", "3")
try:
    a, b, c = Conn(addr), Conn(addr), Conn(addr)
    x = a.ok("create", b"shared")
    t1, t2 = a.ok("share", x), a.ok("share", x)
    check("--max-tokens-per-session", a.code("share", x) == "QUOTA_EXCEEDED")
    b.ok("share", x)
    err, _ = c.call("share", x)
    check("--max-tokens: the server's cap", err and err["code"] == "QUOTA_EXCEEDED" and
          "max_tokens" in err["message"] and "per_session" not in err["message"], err)
    a.close()  # its tokens outlive it, holding the object
    check("tokens outlive their session", c.ok("claim", t1) == x)
    check("and a claim makes room under the cap", isinstance(c.ok("share", x), bytes))
    check("the other token still works", b.ok("claim", t2) == x)
finally:
    proc.terminate()
    check("token cap server exits 0", proc.wait(timeout=30) == 0)

# why: a shortest path from a root.
proc, addr = start_server()
try:
    c = Conn(addr)
    sid = c.ok("hello")["session"]
    held = c.ok("create", b"held")
    check("why: held by a session", c.ok("why", held) ==
          {"root": "session", "session": sid, "path": [held]})
    t = c.ok("create", b"target")
    b = c.ok("create", b"b", [t])
    a = c.ok("create", b"a", [b])
    root = c.ok("create", b"root", [a])
    c.ok("bind", "jobs", root)
    for x in (t, b, a, root):
        c.ok("decref", x)
    check("why: through a name", c.ok("why", t) ==
          {"root": "name", "name": "jobs", "path": [root, a, b, t]}, c.ok("why", t))
    short = c.ok("create", b"short", [t])
    c.ok("bind", "short", short)
    c.ok("decref", short)
    check("why: the shortest path", c.ok("why", t)["path"] == [short, t], c.ok("why", t))
    tok_obj = c.ok("create", b"tok")
    c.ok("share", tok_obj)
    c.ok("decref", tok_obj)
    check("why: a share token", c.ok("why", tok_obj) == {"root": "token", "path": [tok_obj]})
    g = c.ok("create", b"g")
    c.ok("link", g, g)
    c.ok("decref", g)
    check("why: a garbage cycle has no root", c.ok("why", g) == {"root": "none", "path": []})
    check("why: unknown object", c.code("why", 999999) == "NOT_FOUND")
    # A heap of more objects than one request may examine (131,072 steps):
    # an object two steps below a root, whose referrer is no root, is not
    # settled by one request, and the answer says so.
    leaf = c.ok("create", b"leaf")
    for _ in range(14):
        for _ in range(10000):
            c.send("create", b"", [leaf])
        for _ in range(10000):
            c.reply()
    t = c.ok("create", b"t")
    mid = c.ok("create", b"mid", [t])
    c.ok("create", b"top", [mid])
    c.ok("decref", t)
    c.ok("decref", mid)
    r = c.ok("why", t)
    check("why: past the budget, incomplete",
          r["root"] == "unknown" and r["incomplete"] is True and r["path"] == [] and
          0 < r["examined"] <= 131072, r)
    check("why: past the budget, plain referrers -> QUOTA_EXCEEDED",
          c.code("referrers", t) == "QUOTA_EXCEEDED")
    pages, cursor, ids = 0, 0, []
    while True:
        page = c.ok("referrers", t, 10, cursor)
        ids += page["ids"]
        pages += 1
        cursor = page["cursor"]
        if cursor == 0:
            break
    check("referrers: pages find the referrer", ids == [mid] and pages > 1, (ids, pages))
finally:
    proc.terminate()
    check("why server exits 0", proc.wait(timeout=30) == 0)

# Authentication with --auth-token-file.
import tempfile
tdir = tempfile.mkdtemp()
token_path = os.path.join(tdir, "token")
with open(token_path, "w") as f:
    f.write("s3cret-token\n")
os.chmod(token_path, 0o644)
bad = subprocess.run([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--auth-token-file", token_path],
                     capture_output=True, text=True, timeout=30)
check("auth: a group/world-readable token file is refused with status 2, one line",
      bad.returncode == 2 and token_path in bad.stderr and "chmod 600" in bad.stderr
      and bad.stderr.count("\n") == 1, (bad.returncode, bad.stderr))
os.chmod(token_path, 0o600)
proc, addr = start_server("--auth-token-file", token_path)
try:
    u = Conn(addr)
    check("auth: ping needs none", u.ok("ping") == "pong")
    check("auth: other requests need it", u.code("create", b"x") == "AUTH_REQUIRED")
    check("auth: hello without it", u.code("hello") == "AUTH_REQUIRED")
    check("auth: the right token", u.ok("hello", {"auth": "s3cret-token"})["protocol"] == 1)
    check("auth: then everything works", isinstance(u.ok("create", b"x"), int))
    v = Conn(addr)
    err, _ = v.call("hello", {"auth": "s3cret-tokeX"})
    check("auth: a wrong token is AUTH_FAILED", err and err["code"] == "AUTH_FAILED", err)
    check("auth: and the connection is closed", v.closed())
    check("auth: others unaffected", u.ok("ping") == "pong")
finally:
    proc.terminate()
    check("auth server exits 0", proc.wait(timeout=30) == 0)

# Per-session quotas.
proc, addr = start_server("--max-holds-per-session", "5", "--max-watches-per-session", "2")
try:
    q = Conn(addr)
    o = q.ok("create", b"q")
    check("quota: holds up to the limit", q.ok("incref", o, 4) == 5)
    check("quota: holds past it", q.code("incref", o) == "QUOTA_EXCEEDED" and
          q.ok("stat", o)["holds"] == 5)
    check("quota: creating needs a hold too", q.code("create", b"x") == "QUOTA_EXCEEDED")
    check("quota: another session is not limited by this one",
          isinstance(Conn(addr).ok("create", b"y"), int))
    other = Conn(addr)
    o2, o3 = other.ok("create", b"z"), other.ok("create", b"w")
    q.ok("watch", o)
    q.ok("watch", o)  # the same object again costs nothing
    check("quota: watches up to the limit", q.ok("watch", o2) is None)
    check("quota: watches past it", q.code("watch", o3) == "QUOTA_EXCEEDED")
finally:
    proc.terminate()
    check("quota server exits 0", proc.wait(timeout=30) == 0)

def wait_for(what, pred, timeout=20):
    """Poll a server-side condition (a stats query per round) until it holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# A session that ends with many holds (over 4096) is released in slices
# after its connection closes; every object still goes, with notifications.
proc, addr = start_server()
try:
    big, w = Conn(addr), Conn(addr)
    for i in range(5000):
        big.send("create", b"o")
    ids = [big.reply()[3] for _ in range(5000)]
    w.ok("watch", ids[0])
    w.ok("watch", ids[-1])
    big.close()
    while len(w.notes) < 2:
        w.notes.append(w.read())
    check("big session: released after its close, watches notified",
          sorted(n[2][0] for n in w.notes) == sorted([ids[0], ids[-1]]), w.notes)
    check("big session: every object went",
          wait_for("objects freed", lambda: w.ok("stats")["heap"]["objects"] == 0))
    check("big session: no longer counted", w.ok("stats")["sessions"]["detached"] == 0)
finally:
    proc.terminate()
    check("big session server exits 0", proc.wait(timeout=30) == 0)

# Hostile clients: half-open connections that stall mid-message, a client
# killed in the middle of a pipeline; the invariant check after each.
proc, addr = start_server("--idle-timeout", "1", "--debug-commands", "--max-connections", "400")
try:
    w = Conn(addr)
    check("debug_check served with --debug-commands", w.ok("debug_check") == "ok")
    base = w.ok("stats")["server"]
    # Idle but with nothing pending: opened before the stalled ones, so it
    # has been quiet longer than any of them when they are closed.
    idle = Conn(addr)
    idle.ok("ping")
    half = msgpack.packb([0, 1, "create", [b"h" * 100]], use_bin_type=True)[:20]
    stalled = []
    for _ in range(200):
        s = socket.create_connection(addr)
        s.sendall(half)
        stalled.append(s)
    check("half-open: others served meanwhile", w.ok("ping") == "pong")
    check("half-open: all 200 connected",
          wait_for("connections", lambda: w.ok("stats")["server"]["connections"] >= 202))
    # The server's close is the event: block on each socket until it comes.
    eof = 0
    for s in stalled:
        s.settimeout(10)
        try:
            eof += s.recv(100) == b""
        except ConnectionResetError:
            eof += 1
        s.close()
    check("half-open: each one closed after --idle-timeout", eof == 200, eof)
    check("half-open: counted as timed out",
          w.ok("stats")["server"]["connections_timed_out"] - base["connections_timed_out"] == 200,
          w.ok("stats")["server"])
    check("idle with nothing pending: kept", idle.ok("ping") == "pong")

    # Killed mid-pipeline: 500 creates sent, the socket reset before reading.
    objects = w.ok("stats")["heap"]["objects"]
    k = Conn(addr)
    k.send_raw(b"".join(msgpack.packb([0, i, "create", [b"k" * 10]], use_bin_type=True)
                        for i in range(500)) + half)
    k.reset()
    check("killed mid-pipeline: its holds released",
          wait_for("objects", lambda: w.ok("stats")["heap"]["objects"] == objects))
    check("killed mid-pipeline: invariants hold", w.ok("debug_check") == "ok")
    check("killed mid-pipeline: others unaffected", w.ok("ping") == "pong")
finally:
    proc.terminate()
    check("hostile server exits 0", proc.wait(timeout=30) == 0)

# Metrics: Prometheus text from libmicrohttpd's thread; a scraper that
# stalls never slows the loop.
import re  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

mp, maddr, mlog = rcswire.start_server(RCSTORED, "--metrics-listen", "tcp://127.0.0.1:0")
mport = next(int(l.rsplit(":", 1)[1].split("/")[0]) for l in mlog if "metrics on http://" in l)
try:
    def scrape(path="/metrics", method="GET"):
        req = urllib.request.Request(f"http://127.0.0.1:{mport}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, None, ""

    def value(text, name):
        m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    mc = Conn(maddr)
    ids = [mc.ok("create", b"m") for _ in range(5)]
    mc.ok("decref", ids[0])
    # Stalled scrapers at another address: each address has 4 slots
    # (operations.md), so they leave this test's own scrapes theirs.
    stalled = [socket.create_connection(("127.0.0.1", mport), source_address=("127.0.0.2", 0))
               for _ in range(4)]
    for st_ in stalled:
        st_.sendall(b"GET /metr")  # and nothing more
    check("metrics: stalled scrapers do not slow the loop", mc.ok("ping") == "pong")
    check("metrics: objects reported within a second or so",
          wait_for("m", lambda: value(scrape()[2], "rcstore_objects") == 4))
    code, ctype, text = scrape()
    check("metrics: 200 with the text format", code == 200 and ctype.startswith("text/plain") and
          "version=0.0.4" in ctype, (code, ctype))
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? '
                        r'[0-9.e+-]+$')
    bad = [l for l in text.splitlines() if not l.startswith("#") and not sample.match(l)]
    check("metrics: every sample line parses", not bad, bad[:3])
    check("metrics: per-method counters",
          value(text, 'rcstore_requests_total{method="create"}') == 5 and
          value(text, 'rcstore_requests_total{method="decref"}') == 1)
    check("metrics: frees by reason", value(text, 'rcstore_frees_total{reason="refcount"}') == 1)
    check("metrics: sessions by state",
          value(text, 'rcstore_sessions{state="attached"}') == 1 and
          value(text, 'rcstore_sessions{state="detached"}') == 0)
    check("metrics: pause histogram", value(text, 'rcstore_gc_pause_seconds_bucket{le="+Inf"}') ==
          value(text, "rcstore_gc_pause_seconds_count"))
    check("metrics: rss", value(text, "rcstore_rss_bytes") > 0)
    check("metrics: other paths 404", scrape("/")[0] == 404)
    check("metrics: only GET", scrape(method="POST")[0] == 405)
    for st_ in stalled:
        st_.close()
finally:
    mp.terminate()
    check("metrics server exits 0", mp.wait(timeout=30) == 0)

print("failures:", failures)
sys.exit(1 if failures else 0)
