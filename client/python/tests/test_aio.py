"""rcstore.aio against real rcstored processes (the ``server`` fixtures of
conftest.py) and, for NOT_LEADER, the fake cluster of
tests/integration/fake_cluster.py. Each test is a coroutine run by
``asyncio.run`` (pytest-asyncio is not in Debian 12's default set)."""

import asyncio
import functools
import gc
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

import pytest

import rcstore
import rcstore.aio as aio

REPO = pathlib.Path(__file__).resolve().parents[3]


def run(fn):
    """Run the coroutine test fn in a fresh event loop (fixtures pass through)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def assert_gone(c, id):
    """The object is freed: its last hold was given back."""
    with pytest.raises(rcstore.NotFound):
        await c.stat(id)


@run
async def test_connect_unix_and_tcp(server):
    for address in (server.address, server.unix_address, server.address.replace("tcp://", "")):
        async with await aio.connect(address, client_name="test_aio") as c:
            assert await c.ping() == "pong"
            assert c.session > 0 and c.server_info["protocol"] == 1
            assert c.address == (address if "://" in address else "tcp://" + address)
        assert c.closed
        with pytest.raises(rcstore.ConnectionFailed):
            await c.ping()


@run
async def test_connect_refused_is_connection_failed():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    with pytest.raises(rcstore.ConnectionFailed) as e:
        await aio.connect(f"127.0.0.1:{port}")
    assert isinstance(e.value, ConnectionError) and str(port) in str(e.value)


@run
async def test_every_method(server):
    async with await aio.connect(server.address) as c:
        a = await c.create(b"alpha")
        b = await c.create("beta", [a, a])
        assert await c.get(b) == {"id": b, "data": b"beta", "refs": [a, a], "refcount": 1}
        st = await c.stat(a)
        assert (st["refcount"], st["holds"], st["internal"], st["data_bytes"]) == (3, 1, 2, 5)
        assert await c.set_data(a, b"ALPHA") is None
        assert (await c.get(a))["data"] == b"ALPHA"
        assert await c.set_refs(b, [a]) is None
        assert await c.link(b, b) == 2
        assert await c.unlink(b, b) == 1
        assert await c.incref(a) == 2 and await c.incref(a, 3) == 5
        assert await c.decref(a, 4) == 1 and await c.decref(a) == 0
        assert await c.bind("aio/b", b) is None
        assert await c.lookup("aio/b") == b
        assert await c.lookup("aio/b", acquire=True) == b and (await c.stat(b))["holds"] == 2
        assert await c.names("aio/") == [("aio/b", b)]
        assert await c.names("", 0) == []
        assert await c.referrers(a) == [b] and await c.referrers(a, 1) == [b]
        why = await c.why(a)
        assert why["root"] in ("name", "session") and why["path"][-1] == a
        assert await c.watch(a) is None
        token = await c.share(b, 30)
        assert isinstance(token, bytes) and len(token) >= 16
        assert isinstance(await c.share(b), bytes)
        assert await c.release_all() == 2
        assert await c.unbind("aio/b") is None
        claimed = await c.claim(token)  # the token still held b
        assert isinstance(claimed, aio.Ref) and claimed.id == b
        assert (await c.stat(b))["holds"] == 1
        g = await c.gc()
        assert set(g) >= {"collected", "candidates", "examined", "duration_us"}
        stats = await c.stats()
        assert set(stats) >= {"server", "heap", "memory", "gc", "sessions", "ops"}
        assert set(await c.save()) >= {"snapshot_bytes", "duration_ms"}
        assert (await c.hello())["session"] == c.session
        with pytest.raises(rcstore.BadRequest):
            await c.cluster()  # standalone: not a cluster node
        assert await c.call("ping") == "pong"
        # The paged forms, a Ref by name, and the debug methods of the fixture.
        await c.bind("aio/p1", b)
        await c.bind("aio/p2", b)
        page = await c.names_page("aio/p", 1)
        assert page == {"names": [("aio/p1", b)], "next": "aio/p1"}
        assert (await c.names_page("aio/p", 1, page["next"]))["names"] == [("aio/p2", b)]
        assert await c.referrers_page(a, 10, 0) == {"ids": [b], "cursor": 0}
        named = await c.ref("aio/p1")
        assert named.id == b and (await named.stat())["names"] == 2
        assert (await named.why())["path"][-1] == b
        assert await c.debug_check() == "ok"


@run
async def test_errors(server_factory):
    s = server_factory("--max-data-bytes", "64", data_dir=False)
    async with await aio.connect(s.address) as c:
        x = await c.create(b"x")
        # Lambdas: a check the client makes itself (TOO_LARGE against the
        # limits hello gave) raises when the call is made, before any await.
        cases = [
            (rcstore.NotFound, "NOT_FOUND", lambda: c.get(999999)),
            (rcstore.NotHeld, "NOT_HELD", lambda: c.decref(x, 5)),
            (rcstore.NameNotFound, "NAME_NOT_FOUND", lambda: c.lookup("aio/none")),
            (rcstore.BadParams, "BAD_PARAMS", lambda: c.call("get", "not an id")),
            (rcstore.UnknownMethod, "UNKNOWN_METHOD", lambda: c.call("no_such_method")),
            (rcstore.TooLarge, "TOO_LARGE", lambda: c.create(b"y" * 65)),
            (rcstore.TooLarge, "TOO_LARGE", lambda: c.call("create", b"y" * 65)),  # the server's
            (rcstore.TokenInvalid, "TOKEN_INVALID", lambda: c.claim(b"0" * 16)),
            (rcstore.BadRequest, "BAD_REQUEST", lambda: c.save()),  # no --data-dir
        ]
        for cls, code, call in cases:
            with pytest.raises(cls) as e:
                await call()
            assert e.value.code == code and e.value.message and isinstance(e.value, rcstore.Error)
        assert await c.ping() == "pong"  # errors cost the connection nothing


@run
async def test_auth(server_factory, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-of-a-test\n")
    token_file.chmod(0o600)
    s = server_factory("--auth-token-file", str(token_file), data_dir=False)
    with pytest.raises(rcstore.AuthFailed):
        await aio.connect(s.address, auth="wrong")
    with pytest.raises(rcstore.AuthRequired):
        await aio.connect(s.address)  # this server takes no session without a login
    async with await aio.connect(s.address, auth="s3cret-token-of-a-test") as c:
        assert await c.create(b"x") > 0


@run
async def test_ref_lifetime(server):
    async with await aio.connect(server.address) as c:
        # Freed by Python: the id is queued, the next call sends the decref.
        r = await c.new(b"r")
        rid = r.id
        assert (await c.stat(rid))["holds"] == 1
        del r
        await assert_gone(c, rid)
        # async with releases at the block's end; release is idempotent.
        async with await c.new(b"s", refs=[]) as s:
            sid = s.id
            assert (await s.get())["data"] == b"s"
        assert not s.held
        await s.release()
        await assert_gone(c, sid)
        # Ref methods; refs may name Refs; ref() takes one more hold.
        a = await c.new(b"a")
        b = await c.new(b"b", refs=[a])
        assert await b.link(a) == 2 and await b.unlink(a.id) == 1
        a2 = await c.ref(a)
        assert (await c.stat(a))["holds"] == 2
        await a2.release()
        assert (await c.stat(a))["holds"] == 1
        token = await a.share(ttl=30)
        await a.release()
        assert (await c.stat(a.id))["refcount"] == 2  # b's ref and the token
        # A garbage cycle of Python objects holding Refs: the collector
        # frees them, the next call gives the holds back.
        gc.disable()
        try:

            class Holder:
                pass

            h1, h2 = Holder(), Holder()
            h1.other, h2.other = h2, h1
            h1.ref = await c.new(b"h1")
            h2.ref = await c.new(b"h2")
            ids = (h1.ref.id, h2.ref.id)
            del h1, h2
            assert (await c.stat(ids[0]))["holds"] == 1  # nothing freed yet
            gc.collect()
        finally:
            gc.enable()
        await c.ping()
        for i in ids:
            await assert_gone(c, i)
        # close() sends what is queued before it closes.
        async with await aio.connect(server.address, ttl=60) as c2:
            x = await c2.claim(token)
            assert (await c.stat(x.id))["holds"] == 1
            del x
        assert (await c.stat(a.id))["holds"] == 0


@run
async def test_ref_freed_in_an_idle_client(server):
    """No call follows: the client's timer on its loop sends the release."""
    async with await aio.connect(server.address) as c, await aio.connect(server.address) as observer:
        r = await c.new(b"idle")
        rid = r.id
        del r
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # the timer runs every 0.1 s: no event to wait for from here
            try:
                await observer.stat(rid)
            except rcstore.NotFound:
                break
            assert asyncio.get_running_loop().time() < deadline, "not released within 30 s"
            await asyncio.sleep(0.02)
        assert not c._pending


@run
async def test_ref_freed_from_another_thread(server):
    """A Ref dropped on another thread (its collector) only queues the id."""
    async with await aio.connect(server.address) as c:
        r = await c.new(b"t")
        rid = r.id
        box = [r]
        del r
        await asyncio.to_thread(box.clear)
        await assert_gone(c, rid)


@run
async def test_pipeline(server):
    async with await aio.connect(server.address) as c:
        root = await c.new(b"root")
        async with c.pipeline() as p:
            for _ in range(100_000):
                p.incref(root.id)
            p.stat(root)
        assert len(p.results) == 100_001
        assert p.results[:3] == [2, 3, 4] and p.results[99_999] == 100_001
        assert p.results[-1]["holds"] == 100_001
        # An error: every reply is read, the first error raised with its index.
        p = c.pipeline()
        p.create(b"one")
        p.get(999999)
        p.ping()
        with pytest.raises(rcstore.NotFound):
            await p.execute()
        assert isinstance(p.results[0], int) and isinstance(p.results[1], rcstore.NotFound)
        assert p.results[2] == "pong"
        assert await p.execute() == []  # emptied
        # Without raise_on_error the errors are only in their places; new
        # and claim give Refs, as the blocking Pipeline's do.
        async with c.pipeline(raise_on_error=False) as p:
            p.new(b"two")
            p.decref(root, 10**9)
        assert isinstance(p.results[0], aio.Ref) and isinstance(p.results[1], rcstore.NotHeld)
        # The blocking forms are refused rather than left unawaited.
        with pytest.raises(TypeError):
            with c.pipeline():
                pass
        assert await c.ping() == "pong"


@run
async def test_concurrent_tasks(server):
    """Many tasks on one client: each gets its own replies."""
    async with await aio.connect(server.address) as c:
        objs = [await c.create(str(i)) for i in range(20)]

        async def worker(k):
            got = []
            for _ in range(100):
                got.append(await c.incref(objs[k]))
            data = (await c.get(objs[k]))["data"]
            return got, data

        out = await asyncio.gather(*(worker(k) for k in range(20)))
        for k, (got, data) in enumerate(out):
            assert got == list(range(2, 102)) and data == str(k).encode()


@run
async def test_notifications(server):
    async with await aio.connect(server.address) as c:
        a = await c.create(b"a")
        b = await c.create(b"b")
        await c.watch(a)
        await c.watch(b)
        await c.decref(a)
        await c.link(b, b)
        await c.decref(b)  # a self-cycle: the collector frees it
        await c.gc()
        got = []
        async for method, params in c.notifications(timeout=10):
            got.append((method, params))
            if len(got) == 2:
                break
        assert got == [("freed", [a, "refcount"]), ("freed", [b, "cycle"])]
        # timeout=0 yields what already arrived (then Timeout).
        d = await c.create(b"d")
        await c.watch(d)
        await c.decref(d)
        await c.ping()  # the notification came before this reply
        assert await c.notifications(timeout=0).__anext__() == ("freed", [d, "refcount"])
        with pytest.raises(rcstore.Timeout):
            async for _ in c.notifications(timeout=0.05):
                pass
        # close() ends every iterator.
        waiting = asyncio.ensure_future(c.notifications().__anext__())
        await asyncio.sleep(0)
        await c.close()
        with pytest.raises(StopAsyncIteration):
            await waiting
        with pytest.raises(StopAsyncIteration):  # and one started after it
            await c.notifications().__anext__()


@run
async def test_resume_across_restart(server):
    """A lease: the server restarts (--data-dir keeps the session); the next
    call finds the connection closed, reconnects and resumes, holds intact."""
    async with await aio.connect(server.unix_address, ttl=60) as c:
        r = await c.new(b"kept")
        session = c.session
        await asyncio.to_thread(server.restart)
        assert (await c.stat(r))["holds"] == 1
        assert c.session == session and c.reconnects == 1
        assert c.server_info["resumed"] is True
        # The Ref still owns its hold in the resumed session.
        rid = r.id
        del r
        await c.ping()
        await assert_gone(c, rid)


@run
async def test_no_lease_means_a_new_session(server):
    async with await aio.connect(server.address) as c:
        r = await c.new(b"lost")
        await asyncio.to_thread(server.restart)
        assert await c.ping() == "pong" and c.reconnects == 1
        assert c.server_info["resumed"] is False
        await assert_gone(c, r)  # its only hold went with the old session
        await r.release()  # owns nothing now: sends nothing, raises nothing
        assert await c.ping() == "pong"


@run
async def test_session_expired_is_loud(server_factory):
    s = server_factory(data_dir=False)  # a restart forgets every session
    async with await aio.connect(s.address, ttl=60) as c:
        r = await c.new(b"x")
        await asyncio.to_thread(s.restart)
        with pytest.raises(rcstore.SessionExpired):
            await c.ping()
        # Said once; then a new session (with the same lease) goes on.
        assert await c.ping() == "pong" and c.server_info["resumed"] is False
        del r  # of the expired session: nothing is sent for it
        assert await c.ping() == "pong"


@pytest.fixture
def fake_cluster():
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import fake_cluster

    cl = fake_cluster.Cluster()
    yield cl
    for i in range(len(cl.ports)):
        cl.stop(i)


@run
async def test_not_leader_is_followed(fake_cluster):
    cl = fake_cluster
    cl.set_leader(2)
    addrs = [cl.addr(0), cl.addr(1), cl.addr(2)]
    async with await aio.connect(addrs, ttl=30) as c:
        assert c.address == cl.addr(2)  # hello with a lease: followers point on
        x = await c.create(b"x")
        cl.set_leader(1)
        assert await c.incref(x) == 2  # NOT_LEADER from node 2, done on node 1
        assert c.address == cl.addr(1) and c.reconnects == 1
        log = [e[:3] for e in cl.log if e[1] == "incref"]
        assert log == [[2, "incref", False], [1, "incref", True]]
    # No leader for a while: the client backs off and retries.
    async with await aio.connect(addrs) as c:
        cl.set_leader(-1)
        await c.call("fake_leader", 0, 300)
        assert await c.create(b"y") > 0 and c.address == cl.addr(0)
    # No leader at all: NotLeader once the failover timeout has passed.
    async with await aio.connect(addrs, failover_timeout=0.3) as c:
        cl.set_leader(-1)
        with pytest.raises(rcstore.NotLeader) as e:
            await c.create(b"z")
        assert e.value.leader is None


@run
async def test_lost_in_flight_is_not_sent_again(fake_cluster):
    """The connection goes with a request in flight: that call fails (it may
    have been done), nothing is sent again, the next call reconnects."""
    cl = fake_cluster
    async with await aio.connect(cl.addr(0), ttl=30) as c:
        x = await c.create(b"x")
        await c.call("fake_drop", "incref")
        with pytest.raises(rcstore.ConnectionFailed):
            await c.incref(x)
        assert await c.incref(x) == 3 and c.reconnects == 1  # the first was done
        assert [e[1] for e in cl.log].count("incref") == 2


@run
async def test_timeout():
    """A server that never answers: a call with a timeout raises Timeout."""
    accepted = []

    async def mute(reader, writer):
        accepted.append(writer)

    srv = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    with pytest.raises(rcstore.Timeout) as e:
        await aio.connect(f"127.0.0.1:{port}", timeout=0.2)
    assert isinstance(e.value, TimeoutError)
    srv.close()
    for w in accepted:
        w.close()


def _make_cert(d):
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@run
async def test_tls(server_factory):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl program to make a test certificate")
    d = tempfile.mkdtemp(prefix="rcsaio")
    try:
        cert, key = _make_cert(d)
        s = server_factory(data_dir=False, tls=(cert, key))
        ctx = ssl.create_default_context(cafile=cert)
        async with await aio.connect(s.tls_address, tls=ctx) as c:
            r = await c.new(b"over tls")
            assert (await r.get())["data"] == b"over tls"
        # The system's CAs do not know this certificate: refused.
        with pytest.raises(rcstore.ConnectionFailed):
            await aio.connect(s.tls_address)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_docs_asyncio_section_runs(server):
    """docs/python.md's asyncio example, as written, against a fresh server."""
    import re

    text = (REPO / "docs" / "python.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text.split("## asyncio", 1)[1], re.S).group(1)
    assert "127.0.0.1:7373" in code
    code = code.replace("127.0.0.1:7373", server.address.removeprefix("tcp://"))
    env = dict(os.environ, PYTHONPATH=str(REPO / "client" / "python"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "3",
        "10001",
        "[b'job 17', b'job 17', b'job 17']",
        "freed [2, 'refcount']",
        "NAME_NOT_FOUND",
    ]


@run
async def test_a_timed_out_call_leaves_the_connection_in_step():
    """A call given up (timeout, cancel) stops waiting; its reply, when it
    comes, is read and dropped, and the next call gets its own reply."""
    import msgpack

    release = asyncio.Event()

    async def serve(reader, writer):
        u = msgpack.Unpacker(raw=False)
        while data := await reader.read(65536):
            u.feed(data)
            for _, msgid, method, params in u:
                if method == "hello":
                    result = {"protocol": 1, "session": 1, "token": b"", "resumed": False}
                elif method == "slow":
                    await release.wait()
                    result = "slow done"
                else:
                    result = [method, params]
                writer.write(msgpack.packb([1, msgid, None, result], use_bin_type=True))

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with await aio.connect(f"127.0.0.1:{port}", timeout=0.1) as c:
        with pytest.raises(rcstore.Timeout):
            await c.call("slow")
        task = asyncio.ensure_future(c.call("slow"))
        await asyncio.sleep(0)
        task.cancel()
        release.set()
        assert await c.call("echo", 1) == ["echo", [1]]
        assert await c.call("echo", 2) == ["echo", [2]]
    srv.close()


@pytest.fixture
def three(rcstored):
    """A real three-node cluster (tests/integration/cluster.py), as
    test_cluster.py's, with 500 ms elections."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import cluster as harness

    if not harness.wants_cluster(rcstored):
        pytest.skip("this rcstored has no cluster mode (--node-id)")
    with harness.Cluster(rcstored, n=3, election_ms=500) as cl:
        leader = cl.start()
        yield cl, leader


@run
async def test_cluster_follows_the_leader_and_resumes_after_a_failover(three):
    cl, leader = three
    followers = [n for n in cl.nodes.values() if n is not leader]
    addresses = [n.url for n in followers] + [leader.url]  # a follower first
    async with await aio.connect(addresses, ttl=60, failover_timeout=60) as c:
        assert c.address == leader.url  # a leased hello: the followers point on
        r = await c.new(b"replicated")
        async with c.pipeline() as p:
            for _ in range(100):
                p.incref(r.id)
        assert p.results[-1] == 101 and await c.decref(r, 100) == 1
        session = c.session

        await asyncio.to_thread(leader.kill)
        try:
            got = await r.get()
        except rcstore.ConnectionFailed:  # the loss was seen with the request in flight
            got = await r.get()
        assert got["data"] == b"replicated"  # reconnected, resumed on the new leader
        new = await asyncio.to_thread(cl.wait_leader, 60)
        assert c.address == new.url and c.session == session and c.reconnects >= 1
        assert (await c.stat(r))["holds"] == 1 and r.held
        await r.release()  # its only hold: freed, on the new leader
        await assert_gone(c, r.id)


@run
async def test_pipeline_queueing_returns_none(server):
    # As the blocking Pipeline's: every queueing method returns None.
    async with await aio.connect(server.address) as c:
        root = await c.new(b"root")
        async with c.pipeline() as p:
            queued = [p.new(b"x"), p.create(b"y"), p.incref(root), p.ref(root.id), p.ping()]
        assert queued == [None] * 5
        assert isinstance(p.results[0], aio.Ref)


@run
async def test_connect_to_a_silent_node_gives_up_after_the_connect_limit(server):
    # A node that takes the connection and never answers (a SIGSTOPped
    # rcstored): hello is under the connect limit, with timeout=None too.
    # wait_for is a hang guard, not a measurement.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    address = "tcp://127.0.0.1:%d" % silent.getsockname()[1]
    try:
        with pytest.raises((rcstore.Timeout, rcstore.ConnectionFailed)):
            await asyncio.wait_for(aio.connect(address), 60)
        # A list, and a call timeout far longer than the connect limit:
        # the silent node is skipped for the next address all the same.
        c = await asyncio.wait_for(aio.connect([address, server.address], timeout=3600), 60)
        assert c.address == server.address and await c.ping() == "pong"
        await c.close()
    finally:
        silent.close()


@run
async def test_notifications_after_a_kill(server):
    # A notifications() consumer waiting when the server is killed: without
    # a lease the wait ends with ConnectionFailed (as the blocking
    # client's next()); with one the client reconnects by itself (the
    # session resumed, the watch remade) and the wait goes on. The
    # wait_fors are hang guards.
    async with await aio.connect(server.address) as d:
        x = await d.create(b"watched")
        await d.bind("aio/watched", x)
        await d.decref(x)  # kept by its name only
    plain = await aio.connect(server.address)
    leased = await aio.connect(server.address, ttl=60, failover_timeout=60)
    await plain.watch(x)
    await leased.watch(x)

    async def first(c):
        async for note in c.notifications():
            return note

    lost = asyncio.ensure_future(first(plain))
    resumed = asyncio.ensure_future(first(leased))
    await asyncio.sleep(0)  # both consumers waiting
    await asyncio.to_thread(server.kill)
    with pytest.raises(rcstore.ConnectionFailed):
        await asyncio.wait_for(lost, 60)
    await asyncio.to_thread(server.start)
    async with await aio.connect(server.address) as e:
        await e.unbind("aio/watched")
    method, params = await asyncio.wait_for(resumed, 60)
    assert method == "freed" and params[0] == x
    assert await leased.ping() == "pong"
    await leased.close()
    await plain.close()


@run
async def test_cluster_own_transfer_then_calls_go_on(three):
    # After its own cluster_transfer the client leaves the old leader
    # (which restarts itself, closing its connections) before the next call.
    cl, leader = three
    c = await aio.connect([n.url for n in cl.nodes.values()], ttl=60, failover_timeout=60)
    r = await c.new(b"before")
    assert c.address == leader.url
    await c.cluster_transfer()
    assert c.address is None  # the next call connects
    r2 = await c.new(b"after")
    assert c.address != leader.url
    assert (await c.get(r2))["data"] == b"after" and (await r.get())["data"] == b"before"
    await c.close()
