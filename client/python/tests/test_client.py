"""The sync Client against a real rcstored: every protocol method with its
Python types, and every error code the server produces raised as its own
subclass (SPEC sections 4 and 11)."""

import hashlib
import os

import pytest

import rcstore


@pytest.fixture
def c(server):
    with rcstore.connect(server.address) as c:
        yield c


def test_connect_hello_and_properties(server):
    c = rcstore.connect(server.address, client_name="pytest")
    assert isinstance(c, rcstore.Client)
    assert c.address == server.address
    assert c.session >= 1 and c.resume_token is None
    info = c.server_info
    assert info["protocol"] == 1 and info["server"].startswith("rcstored ")
    assert c.limits["max_data_bytes"] > 0
    assert repr(c).startswith("<rcstore.Client tcp://127.0.0.1:")
    c.close()
    c.close()  # twice is harmless
    assert c.closed
    with pytest.raises(rcstore.ConnectionFailed):
        c.ping()


@pytest.mark.parametrize("which", ["address", "unix_address"])
def test_every_object_method(server, which):
    with rcstore.connect(getattr(server, which)) as c:
        assert c.ping() == "pong"
        a = c.create(b"a")
        assert isinstance(a, int) and a > 0
        b = c.create("text is stored as bytes", refs=[a])
        assert c.get(b) == {"id": b, "data": b"text is stored as bytes", "refs": [a], "refcount": 1}
        assert c.get(a)["refcount"] == 2
        assert c.set_data(a, bytearray(b"\x00\xff")) is None
        assert c.get(a)["data"] == b"\x00\xff"
        assert c.set_refs(b, [a, a]) is None
        assert c.get(b)["refs"] == [a, a]
        assert c.link(b, b) == 3
        assert c.unlink(b, a) == 2
        assert c.get(b)["refs"] == [a, b]
        assert c.incref(a) == 2
        assert c.incref(a, 3) == 5
        assert c.decref(a, 4) == 1
        st = c.stat(a)
        assert st["holds"] == 1 and st["internal"] == 1 and st["data_bytes"] == 2 and st["nrefs"] == 0
        assert c.bind("py/a", a) is None
        assert c.lookup("py/a") == a
        assert c.lookup("py/a", acquire=True) == a
        assert c.stat(a)["holds"] == 2
        assert c.names("py/") == [("py/a", a)]
        assert c.names("py/", limit=5) == [("py/a", a)]
        assert c.names_page("py/", 1, "") == {"names": [("py/a", a)], "next": None}
        assert c.referrers(a) == [b]
        assert c.referrers(a, limit=1) == [b]
        page = c.referrers_page(a, 10, 0)
        assert page["ids"] == [b] and page["cursor"] == 0
        w = c.why(a)
        assert w["root"] in ("name", "session") and w["path"][-1] == a
        assert c.unbind("py/a") is None
        tok = c.share(a)
        assert isinstance(tok, bytes) and len(tok) >= 16
        assert isinstance(c.share(a, 5), bytes)
        with rcstore.connect(getattr(server, which)) as other:
            r = other.claim(tok)
            assert isinstance(r, rcstore.Ref) and r.id == a
            assert other.stat(a)["holds"] >= 2  # both sessions
        assert c.watch(a) is None
        g = c.gc()
        assert set(g) >= {"collected", "candidates", "examined", "duration_us"}
        s = c.stats()
        assert {"server", "heap", "memory", "gc", "sessions", "ops"} <= set(s)
        assert c.release_all() == 3  # a twice (one from lookup) and b
        assert c.debug_check() == "ok"
        d = c.debug_digest()
        assert len(d["digest"]) == 16
        sv = c.save()
        assert sv["snapshot_bytes"] > 0 and "duration_ms" in sv
        assert c.call("ping") == "pong"


def test_new_and_ref_forms(c):
    r = c.new(b"x")
    assert isinstance(r, rcstore.Ref) and c.stat(r.id)["holds"] == 1
    c.bind("py/r", r)  # a Ref goes wherever an id does
    r2 = c.ref(r.id)
    r3 = c.ref(r)
    r4 = c.ref("py/r")
    assert c.stat(r)["holds"] == 4
    child = c.new(b"child", refs=[r, r2.id])
    assert child.get()["refs"] == [r.id, r.id]
    for x in (r2, r3, r4, child):
        x.release()
    assert c.stat(r)["holds"] == 1
    with pytest.raises(TypeError):
        c.get("1")
    with pytest.raises(TypeError):
        c.create(12)


def test_too_large_checked_before_sending(c):
    big = b"x" * (c.limits["max_data_bytes"] + 1)
    with pytest.raises(rcstore.TooLarge) as e:
        c.create(big)
    assert str(c.limits["max_data_bytes"]) in e.value.message
    assert c.ping() == "pong"  # the connection was not cut


# ---- every error code, raised for real ----


def raises(cls, fn, *args, **kw):
    with pytest.raises(cls) as e:
        fn(*args, **kw)
    assert type(e.value) is cls and e.value.code == cls.code and e.value.message
    return e.value


def test_errors_of_one_server(server_factory):
    s = server_factory("--max-refs", "2", "--max-tokens-per-session", "1", data_dir=False)
    with rcstore.connect(s.address) as c:
        a = c.create(b"a")
        raises(rcstore.BadRequest, c.cluster)  # a standalone server
        raises(rcstore.BadRequest, c.save)  # no --data-dir
        raises(rcstore.UnknownMethod, c.call, "no_such_method")
        raises(rcstore.UnknownMethod, c.debug_check)  # no --debug-commands
        raises(rcstore.BadParams, c.call, "get", "one")
        raises(rcstore.NotFound, c.get, 10**12)
        raises(rcstore.NotFound, c.unlink, a, a)
        raises(rcstore.NotHeld, c.decref, a, 2)
        raises(rcstore.NameNotFound, c.lookup, "no/such/name")
        raises(rcstore.TooLarge, c.create, b"", [a, a, a])
        raises(rcstore.TokenInvalid, c.claim, b"\x00" * 16)
        c.share(a)
        raises(rcstore.QuotaExceeded, c.share, a)
        raises(rcstore.SessionExpired, rcstore.connect, s.address, resume=b"\x01" * 16)
        assert c.stat(a)["holds"] == 1  # nothing changed by the failures


def test_session_busy(server):
    with rcstore.connect(server.address, ttl=30) as c:
        raises(rcstore.SessionBusy, rcstore.connect, server.address, resume=c.resume_token, failover_timeout=0)


def test_out_of_memory(server_factory):
    s = server_factory("--maxmemory", "4mb", data_dir=False)
    with rcstore.connect(s.address) as c:
        with pytest.raises(rcstore.OutOfMemory) as e:
            for _ in range(10000):
                c.create(b"x" * 65536)
        assert e.value.code == "OUT_OF_MEMORY"
        assert c.ping() == "pong"  # reads still served
        assert c.release_all() > 0


def test_auth(server_factory, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("s3cret")
    os.chmod(tok, 0o600)
    s = server_factory("--auth-token-file", str(tok))
    raises(rcstore.AuthRequired, rcstore.connect, s.address)
    raises(rcstore.AuthFailed, rcstore.connect, s.address, auth="wrong")
    with rcstore.connect(s.address, auth="s3cret", ttl=60) as c:
        assert c.server_info["user"] == "default"
        r = c.new(b"x")
        s.restart()
        assert r.get()["data"] == b"x"  # logged in again, then resumed
        assert c.reconnects == 1 and c.server_info["resumed"]


def test_users_and_permission_denied(server_factory, tmp_path):
    def section(name, token, role, extra=""):
        h = hashlib.sha256(token.encode()).hexdigest()
        return f"[user {name}]\ntoken-sha256 = {h}\nrole = {role}\n{extra}\n"

    users = tmp_path / "users.ini"
    users.write_text(section("reader", "rtok", "read") + section("writer", "wtok", "write", "names = w/"))
    os.chmod(users, 0o600)
    s = server_factory("--users-file", str(users), data_dir=False)
    with rcstore.connect(s.address, user="writer", auth="wtok") as w:
        assert w.server_info["user"] == "writer" and w.server_info["user_role"] == "write"
        x = w.new(b"x")
        w.bind("w/x", x)
        raises(rcstore.PermissionDenied, w.bind, "other/x", x)
        raises(rcstore.PermissionDenied, w.gc)
        with rcstore.connect(s.address, user="reader", auth="rtok") as r:
            assert r.get(x.id)["data"] == b"x"
            raises(rcstore.PermissionDenied, r.create, b"y")
            raises(rcstore.PermissionDenied, r.incref, x.id)
    raises(rcstore.PermissionDenied, rcstore.connect, s.address, user="reader", auth="rtok", ttl=10)
    raises(rcstore.AuthFailed, rcstore.connect, s.address, user="writer", auth="rtok")


def test_connection_failed_and_timeout(server):
    import socket

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    ls.close()
    e = raises(rcstore.ConnectionFailed, rcstore.connect, f"127.0.0.1:{port}")
    assert isinstance(e, ConnectionError) and f"127.0.0.1:{port}" in e.message
    # A server that accepts and never answers: the call's timeout.
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    try:
        e = raises(rcstore.Timeout, rcstore.connect, "127.0.0.1:%d" % ls.getsockname()[1], timeout=0.3)
        assert isinstance(e, TimeoutError)
    finally:
        ls.close()


def test_pipeline_queueing_returns_none(server):
    # docs/python.md: a Pipeline's queueing methods return None (p.new used
    # to return the call's index); the Ref is in p.results.
    with rcstore.connect(server.address) as c:
        root = c.new(b"root")
        with c.pipeline() as p:
            queued = [p.new(b"x"), p.create(b"y"), p.incref(root), p.ref(root.id), p.ping(), p.watch(root)]
        assert queued == [None] * 6
        assert isinstance(p.results[0], rcstore.Ref) and isinstance(p.results[3], rcstore.Ref)


class SilentServer:
    """A node that takes connections (the kernel completes them: it
    listens) and never says a byte: a hung or SIGSTOPped rcstored."""

    def __init__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]

    def close(self):
        self.sock.close()  # unblocks a client stuck on it (a reset)


def in_thread(fn, hang_guard=60):
    """fn() in a thread: its result or its exception; None if it was still
    running after hang_guard seconds (a hang, not a measurement)."""
    import threading

    out = {}

    def run():
        try:
            out["result"] = fn()
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(hang_guard)
    return None if t.is_alive() else out


def test_connect_to_a_silent_node_gives_up_after_the_connect_limit(server):
    silent = SilentServer()
    try:
        # One address, timeout=None: hello is under the connect limit too.
        out = in_thread(lambda: rcstore.connect(silent.address))
        assert out is not None, "connect to a silent node hung"
        assert isinstance(out.get("error"), (rcstore.Timeout, rcstore.ConnectionFailed)), out
        # A list, and a call timeout far longer than the connect limit: the
        # silent node is skipped for the next address all the same.
        out = in_thread(lambda: rcstore.connect([silent.address, server.address], timeout=3600))
        assert out is not None, "connect with a silent node first hung"
        c = out["result"]
        assert c.address == server.address and c.ping() == "pong"
        c.close()
    finally:
        silent.close()
