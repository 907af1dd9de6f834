"""Ref lifetime (SPEC section 11): a Ref owns one hold; release, with, del,
garbage cycles collected by gc.collect(), interpreter exit, and a session
that went away under it."""

import gc
import os
import pickle
import subprocess
import sys
import textwrap
import time

import pytest

import rcstore

PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def c(server):
    with rcstore.connect(server.address) as c:
        yield c


@pytest.fixture
def observer(server):
    """A second client that watches objects die."""
    with rcstore.connect(server.address) as o:
        yield o


def alive(o, i):
    try:
        o.stat(i)
        return True
    except rcstore.NotFound:
        return False


def test_release_and_context_manager(c, observer):
    r = c.new(b"x")
    assert r.held and repr(r) == f"<rcstore.Ref {r.id}>"
    r.release()
    assert not r.held and "released" in repr(r)
    r.release()  # twice: nothing
    assert not alive(observer, r.id)
    with c.new(b"y") as r2:
        assert alive(observer, r2.id)
    assert not alive(observer, r2.id)
    with pytest.raises(ValueError):
        with c.new(b"z") as r3:
            raise ValueError("the block failed")
    assert not alive(observer, r3.id)


def test_methods(c):
    a = c.new(b"a")
    b = c.new(b"b")
    assert a.get()["data"] == b"a"
    assert a.link(b) == 1 and a.link(b.id) == 2
    assert a.unlink(b) == 1
    assert a.stat()["nrefs"] == 1
    assert a.why()["path"] == [a.id]
    tok = a.share(30)
    claimed = c.claim(tok)
    assert claimed.id == a.id and a.stat()["holds"] == 2
    assert a.client is c


def test_del_releases_at_the_next_call(c, observer):
    r = c.new(b"x")
    i = r.id
    with c._lock:  # the background flusher waits while a call could run
        del r  # the finaliser queues; nothing is sent from it
        assert len(c._pending) == 1
        assert alive(observer, i)
        c.ping()  # the next call sends the release first
        assert not alive(observer, i)
        r = c.new(b"y")
        i = r.id
        del r
        c.flush()
        assert not alive(observer, i)


def test_del_released_in_the_background(c, observer):
    """An idle client: the flusher thread sends the release on its own."""
    r = c.new(b"x")
    i = r.id
    del r
    deadline = time.monotonic() + 30
    while alive(observer, i):  # the flusher runs every 0.1 s: no event to wait for here
        assert time.monotonic() < deadline, "not released within 30 s"
        time.sleep(0.02)
    assert not c._pending


def test_garbage_cycles_of_python_objects_holding_refs(c, observer):
    class Node:
        pass

    ids = []
    gc.disable()
    try:
        for _ in range(100):
            a, b = Node(), Node()
            a.other, b.other = b, a  # a Python cycle: refcounting alone never frees it
            a.ref, b.ref = c.new(b"a"), c.new(b"b")
            ids += [a.ref.id, b.ref.id]
        del a, b
        c.ping()
        assert all(alive(observer, i) for i in ids[:3])
        gc.collect()
    finally:
        gc.enable()
    c.flush()
    assert not any(alive(observer, i) for i in ids)


def test_server_side_cycle_freed_by_gc(c, observer):
    a = c.new(b"a")
    b = c.new(b"b", refs=[a])
    a.link(b)
    ia = a.id
    a.release()
    b.release()
    assert alive(observer, ia)  # the cycle keeps them, until the collector
    assert c.gc()["collected"] == 2
    assert not alive(observer, ia)


def test_refs_of_a_lost_session_own_nothing(server, observer):
    c = rcstore.connect(server.address)
    r = c.new(b"x")
    i = r.id
    keep = observer.new(b"kept")  # something of the observer's to be sure it is untouched
    c._conn.sock.shutdown(2)  # the connection goes; no lease: the server releases the holds
    assert c.ping() == "pong"  # a new session
    assert c.reconnects == 1 and not r.held
    r2 = c.ref(keep.id)  # the new session holds keep once
    r.release()  # r's hold went with its session: this must not take r2's
    del r
    c.flush()
    assert c.stat(keep.id)["holds"] == 2
    assert not alive(observer, i)
    r2.release()
    c.close()


def test_release_all_ends_the_refs(c):
    r = c.new(b"x")
    keep = c.new(b"y")
    c.bind("py/keep", keep)
    assert c.release_all() == 2
    assert not r.held and not keep.held
    again = c.ref(keep.id)
    r.release()
    keep.release()  # no decref sent: again's hold stays
    assert c.stat(keep.id)["holds"] == 1
    again.release()


def test_not_picklable(c):
    r = c.new(b"x")
    with pytest.raises(TypeError, match="share"):
        pickle.dumps(r)


def exit_script(body):
    return textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {PKG!r})
        import rcstore
        """
    ) + textwrap.dedent(body)


@pytest.mark.parametrize("ttl", [None, 30])
def test_interpreter_exit(server, observer, ttl):
    """At exit, pending releases are sent if the connection works; live Refs
    go with the session (no lease) or stay until the lease ends. Nothing is
    sent from a finaliser during shutdown (no traceback on stderr)."""
    script = exit_script(
        f"""
        c = rcstore.connect({server.address!r}, ttl={ttl})
        freed = c.new(b"freed before exit")
        live = c.new(b"alive at exit")
        print(freed.id, live.id, flush=True)
        c._lock.acquire()   # keeps the background flusher out: the exit hook (this thread) must send it
        del freed           # pending when the interpreter exits
        keep_a_cycle = [live]
        keep_a_cycle.append(keep_a_cycle)
        """
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    freed, live = map(int, p.stdout.split())
    assert not alive(observer, freed)  # flushed at exit, lease or not
    assert alive(observer, live) == (ttl is not None)  # the lease keeps it


def test_exit_with_the_server_gone(server):
    """A connection that does not work at exit: nothing is tried beyond a
    failed send, no hang, no traceback."""
    script = exit_script(
        f"""
        import os, signal
        c = rcstore.connect({server.address!r}, ttl=30)
        r = c.new(b"x")
        del r
        print(os.getpid(), flush=True)
        sys.stdin.readline()
        """
    )
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.readline()
    server.kill()
    out, err = p.communicate("\n", timeout=60)
    assert p.returncode == 0 and err == "", err
