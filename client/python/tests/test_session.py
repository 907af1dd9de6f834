"""Pipelines, notifications, reconnect and resume across a real restart,
and one Client shared by threads."""

import signal
import threading

import pytest

import rcstore


@pytest.fixture
def c(server):
    with rcstore.connect(server.address) as c:
        yield c


# ---- pipelines ----


def test_pipeline_100k(c):
    root = c.new(b"root")
    with c.pipeline() as p:
        for _ in range(100_000):
            p.incref(root.id)
        assert len(p) == 100_000
    assert p.results == list(range(2, 100_002))  # in order
    assert c.stat(root)["holds"] == 100_001
    assert c.decref(root, 100_000) == 1


def test_pipeline_results_and_errors(c):
    a = c.new(b"a")
    with pytest.raises(rcstore.NotFound):
        with c.pipeline() as p:
            p.get(a)
            p.get(10**12)
            p.new(b"made anyway")
            p.lookup("no/such")
    res = p.results  # every reply was read before the first error was raised
    assert res[0]["data"] == b"a"
    assert isinstance(res[1], rcstore.NotFound)
    assert isinstance(res[2], rcstore.Ref) and res[2].get()["data"] == b"made anyway"
    assert isinstance(res[3], rcstore.NameNotFound)
    p = c.pipeline(raise_on_error=False)
    p.ping()
    p.decref(a, 5)
    p.claim(b"\0" * 16)
    out = p.execute()
    assert out[0] == "pong" and type(out[1]) is rcstore.NotHeld and type(out[2]) is rcstore.TokenInvalid
    assert p.execute() == []  # the queue was emptied
    with pytest.raises(KeyError):
        with c.pipeline() as p:
            p.create(b"never sent")
            raise KeyError("the block failed")
    assert c.stats()["heap"]["objects"] == 2  # a and "made anyway"


# ---- notifications ----


def test_watch_and_notifications(c, server):
    with rcstore.connect(server.address) as other:
        a = other.new(b"a")
        b = other.new(b"b", refs=[a])
        b.link(b)  # b is a cycle of one
        c.watch(a.id)
        c.watch(b.id)
        it = c.notifications(timeout=0.2)
        with pytest.raises(rcstore.Timeout):
            next(it)
        a.release()  # b still refers to a
        b.release()  # a garbage cycle: the collector frees it
        other.gc()
        assert next(it) == ("freed", [b.id, "cycle"])
        assert next(it) == ("freed", [a.id, "cycle"])  # the iterator lives on after Timeout


def test_notifications_kept_during_calls(c, server):
    r = c.new(b"x")
    c.watch(r)
    i = r.id
    r.release()
    c.ping()  # the notification came with the reply: kept
    assert next(c.notifications(timeout=0)) == ("freed", [i, "refcount"])


def test_notifications_waiter_and_another_thread(c, server):
    """A thread waits in notifications() while another thread calls."""
    ids = [c.create(b"x") for _ in range(3)]
    for i in ids:
        c.watch(i)
    got = []

    def waiter():
        it = c.notifications(timeout=30)
        for _ in ids:
            got.append(next(it))

    t = threading.Thread(target=waiter)
    t.start()
    for i in ids:
        c.decref(i)  # runs while the waiter waits: no deadlock
    t.join(60)
    assert not t.is_alive()
    assert sorted(g[1][0] for g in got) == sorted(ids)


def test_close_wakes_a_waiter(server):
    c = rcstore.connect(server.address)
    errors = []

    def waiter():
        try:
            next(c.notifications())
        except rcstore.ConnectionFailed as e:
            errors.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    while not c._waiters:
        pass
    c.close()
    t.join(30)
    assert not t.is_alive() and errors


# ---- reconnect and resume ----


def test_resume_across_a_restart(server):
    """A lease, a server restarted on its --data-dir: the next call
    reconnects, resumes, and the holds and Refs are intact."""
    c = rcstore.connect(server.address, ttl=60)
    token = c.resume_token
    assert isinstance(token, bytes) and len(token) >= 16
    r = c.new(b"kept")
    session = c.session
    c.watch(r)
    server.restart()
    assert r.get()["data"] == b"kept"  # the idle connection was found closed first
    assert c.reconnects == 1 and c.session == session and c.server_info["resumed"]
    assert r.held and c.stat(r)["holds"] == 1
    r.release()
    assert next(c.notifications(timeout=10)) == ("freed", [r.id, "refcount"])  # watched again
    c.close()


def test_resume_across_a_kill(server):
    c = rcstore.connect(server.address, ttl=60)
    r = c.new(b"kept")
    server.kill()
    with pytest.raises(rcstore.ConnectionFailed):
        c.ping()  # nobody there, one address: fails at once
    server.start()
    assert r.get()["data"] == b"kept"
    c.close()


def test_lost_in_flight_is_not_sent_again(server):
    c = rcstore.connect(server.address, ttl=60)
    server.proc.send_signal(signal.SIGSTOP)  # the request goes out, no reply comes
    c.timeout = 0.5
    try:
        with pytest.raises(rcstore.Timeout):
            c.create(b"maybe")
    finally:
        server.proc.send_signal(signal.SIGCONT)
    c.timeout = None
    # The next call is made on a new connection (the old one owes a reply).
    assert c.ping() == "pong" and c.reconnects == 1
    c.close()


def test_session_expired_is_loud(server_factory):
    s = server_factory(data_dir=False)  # a restart without a data dir loses the sessions
    c = rcstore.connect(s.address, ttl=60)
    r = c.new(b"x")
    s.restart()
    with pytest.raises(rcstore.SessionExpired):
        c.ping()
    assert not r.held and c.resume_token is None
    assert c.ping() == "pong"  # then a new session, with a new lease
    assert c.resume_token is not None
    r.release()  # owns nothing: nothing sent
    c.close()


def test_without_lease_a_new_session(server):
    c = rcstore.connect(server.address)
    r = c.new(b"x")
    s1 = c.session
    server.restart()
    assert c.ping() == "pong"
    assert c.session != s1 and not r.held
    c.close()


def test_resume_in_another_client(server):
    a = rcstore.connect(server.address, ttl=60)
    x = a.create(b"x")
    token = a.resume_token
    a._conn.sock.close()  # the process "dies" with its lease
    a._conn = None
    b = rcstore.connect(server.address, resume=token, ttl=60)
    assert b.server_info["resumed"] and b.stat(x)["holds"] == 1
    b.decref(x)
    b.close()


# ---- threads ----


def test_threads_share_one_client(c):
    """One lock per Client: 8 threads x 500 mixed calls, every reply to its
    own caller."""
    root = c.new(b"root")
    errors = []

    def work(k):
        try:
            for j in range(500):
                data = f"{k}/{j}".encode()
                r = c.new(data, refs=[root])
                assert r.get()["data"] == data
                assert c.incref(r.id) == 2
                c.decref(r.id)
                if j % 2:
                    r.release()
                else:
                    del r  # released by the next call of any thread
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    c.flush()
    assert c.stat(root)["internal"] == 0 and c.stats()["heap"]["objects"] == 1


def test_hello_by_hand_takes_a_lease(server):
    c = rcstore.connect(server.address, client_name="by-hand")
    assert c.resume_token is None
    info = c.hello(ttl=30)
    assert info["ttl"] == 30 and c.resume_token == info["token"]
    r = c.new(b"leased later")
    server.restart()
    assert r.get()["data"] == b"leased later" and c.server_info["resumed"]
    c.close()


def test_freed_while_disconnected_is_told(server):
    """A watched object freed while the client was away (its holder had no
    lease, so recovery released it): after the reconnect, the watch is
    made again, finds nothing, and the notification says "unknown"."""
    c = rcstore.connect(server.address, ttl=60)
    o = rcstore.connect(server.address)
    x = o.create(b"held by a session without a lease")
    c.watch(x)
    server.restart()
    c.ping()
    assert next(c.notifications(timeout=0)) == ("freed", [x, "unknown"])
    c.close()
    o.close()


def test_slowlog(server):
    with rcstore.connect(server.address) as c:
        try:
            entries = c.slowlog()
        except rcstore.UnknownMethod:
            pytest.skip("this rcstored has no slowlog yet")
        assert isinstance(entries, list)
        assert c.slowlog_reset() is None
        assert c.slowlog(5) == [] or isinstance(c.slowlog(5), list)


def test_notifications_with_a_lease_go_on_across_a_kill(server):
    """next() on notifications() while the server is killed and restarted
    on its --data-dir: with a lease the client reconnects by itself (the
    session resumed, the watch remade) and the wait goes on."""
    with rcstore.connect(server.address) as d:
        x = d.create(b"watched")
        d.bind("py/watched", x)
        d.decref(x)  # kept by its name only
    c = rcstore.connect(server.address, ttl=60, failover_timeout=60)
    c.watch(x)
    got = {}

    def consume():
        try:
            got["note"] = next(c.notifications())
        except BaseException as e:
            got["error"] = e

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    server.kill()
    server.start()
    with rcstore.connect(server.address) as e:
        e.unbind("py/watched")  # freed: before the rewatch ("unknown") or after it ("refcount")
    t.join(60)  # a hang guard
    assert not t.is_alive() and "error" not in got, got
    method, params = got["note"]
    assert method == "freed" and params[0] == x
    assert c.ping() == "pong"
    c.close()
