"""The clients (blocking and rcstore.aio) against a hostile fake server.

The fake server (threads and a socket, in this file) answers hello as
rcstored would and then misbehaves as told: it floods notifications and
never answers, or sends bytes that are not msgpack. Each test asserts the
error the client raises; the bounds on time are generous (a hang is the
failure they catch, not slowness).
"""

import asyncio
import socket
import struct
import threading

import msgpack
import pytest

import rcstore
import rcstore._client as _client
import rcstore.aio as aio

# What a test waits at most for a call that must fail (a hang is the bug).
BOUND = 30.0


def _hello_reply(msgid, limits=None):
    lim = {"max_data_bytes": 0, "max_refs": 0, "max_message_bytes": 0, "max_session_ttl": 0}
    lim.update(limits or {})
    result = {
        "protocol": 1,
        "server": "fake",
        "session": 1,
        "token": b"t" * 16,
        "resumed": False,
        "ttl": 0,
        "user": None,
        "role": "leader",
        "user_role": "admin",
        "limits": lim,
    }
    return msgpack.packb([1, msgid, None, result], use_bin_type=True)


class FakeServer:
    """A listener on 127.0.0.1 (a port the kernel picks) whose connections
    answer hello and then, for any other request, do ``mode``: "notes"
    (notifications without end, never the reply), "garbage" (bytes that
    are not msgpack) or "bigbin" (a reply of 200 MiB)."""

    NOTE = msgpack.packb([2, "freed", [1, "refcount"]])

    def __init__(self, mode, limits=None):
        self.mode = mode
        self.limits = limits
        self.stop = threading.Event()
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.address = "127.0.0.1:%d" % self.ls.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, conn):
        u = msgpack.Unpacker(raw=False)
        try:
            while not self.stop.is_set():
                d = conn.recv(65536)
                if not d:
                    return
                u.feed(d)
                for m in u:
                    if m[2] == "hello":
                        conn.sendall(_hello_reply(m[1], self.limits))
                    elif self.mode == "notes":
                        burst = self.NOTE * 1000
                        while not self.stop.is_set():
                            conn.sendall(burst)
                    elif self.mode == "garbage":
                        conn.sendall(b"\xc1" * 10)
                    elif self.mode == "bigbin":
                        # A reply whose data claims 200 MiB, then sent.
                        conn.sendall(b"\x94\x01" + bytes([m[1]]) + b"\xc0\xc6" + struct.pack(">I", 200 << 20))
                        chunk = b"x" * (1 << 20)
                        for _ in range(200):
                            if self.stop.is_set():
                                return
                            conn.sendall(chunk)
        except OSError:
            return

    def close(self):
        self.stop.set()
        self.ls.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


@pytest.fixture
def fake():
    made = []

    def make(mode, limits=None):
        s = FakeServer(mode, limits)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _in_thread(fn):
    """Run fn in a daemon thread; (finished, its exception or result)."""
    out = {}

    def run():
        try:
            out["result"] = fn()
        except BaseException as e:  # noqa: B036 (the test looks at it)
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(BOUND)
    return not t.is_alive(), out.get("error", out.get("result"))


def test_timeout_fires_while_notifications_stream(fake, monkeypatch):
    # The notification cap out of the way: this is about the deadline.
    monkeypatch.setattr(_client, "MAX_NOTIFICATIONS", 10**12, raising=False)
    s = fake("notes")
    c = rcstore.connect(s.address, timeout=0.5)
    done, err = _in_thread(c.ping)
    s.close()
    assert done, "ping did not time out while notifications kept coming"
    assert isinstance(err, rcstore.Timeout), err
    assert c.address is None  # the connection was dropped, as documented
    c.close()


def test_exit_flush_cannot_hang(fake, monkeypatch):
    monkeypatch.setattr(_client, "MAX_NOTIFICATIONS", 10**12, raising=False)
    s = fake("notes")
    c = rcstore.connect(s.address)  # no timeout: the exit flush sets its own
    c._pending.append((1, c._epoch))  # a Ref freed by the collector
    done, err = _in_thread(c._at_exit)
    s.close()
    assert done, "the exit flush hung on a server that never answers"
    assert err is None and c.closed


def test_unread_notifications_are_bounded(fake, monkeypatch):
    monkeypatch.setattr(_client, "MAX_NOTIFICATIONS", 1000, raising=False)
    s = fake("notes")
    c = rcstore.connect(s.address)
    done, err = _in_thread(c.ping)
    assert done, "the client kept taking notifications nobody read"
    assert isinstance(err, rcstore.ConnectionFailed), err
    assert "more than 1000 notifications the program did not read" in str(err)
    assert c.address is None  # the connection was failed
    # What was kept is still there to read.
    assert next(c.notifications(timeout=0)) == ("freed", [1, "refcount"])
    s.close()
    c.close()


def test_aio_unread_notifications_are_bounded(fake, monkeypatch):
    monkeypatch.setattr(_client, "MAX_NOTIFICATIONS", 1000, raising=False)
    s = fake("notes")

    async def main():
        c = await aio.connect(s.address)
        try:
            with pytest.raises(rcstore.ConnectionFailed, match="more than 1000 notifications the program did not"):
                await asyncio.wait_for(c.ping(), BOUND)
            assert c._notes.qsize() <= 1000
            assert await c.notifications(timeout=5).__anext__() == ("freed", [1, "refcount"])
        finally:
            await c.close()

    asyncio.run(main())
    s.close()


def test_a_reply_larger_than_hello_allows_is_refused(fake):
    # hello says max_message_bytes 1 MiB: the client takes no reply near
    # 200 MiB (it used to take up to 256 MiB from anyone).
    s = fake("bigbin", {"max_message_bytes": 1 << 20})
    c = rcstore.connect(s.address, timeout=BOUND)
    done, err = _in_thread(c.ping)
    s.close()
    assert done
    assert isinstance(err, rcstore.ConnectionFailed), type(err)
    assert "larger than the client takes" in str(err) or "exceeds max_bin_len" in str(err), err
    c.close()


def test_aio_a_reply_larger_than_hello_allows_is_refused(fake):
    s = fake("bigbin", {"max_message_bytes": 1 << 20})

    async def main():
        c = await aio.connect(s.address)
        try:
            with pytest.raises(rcstore.ConnectionFailed):
                await asyncio.wait_for(c.ping(), BOUND)
        finally:
            await c.close()

    asyncio.run(main())
    s.close()


def test_bytes_that_are_not_msgpack_are_named(fake):
    s = fake("garbage")
    c = rcstore.connect(s.address, timeout=BOUND)
    with pytest.raises(rcstore.ConnectionFailed) as e:
        c.ping()
    s.close()
    msg = str(e.value)
    assert "not msgpack" in msg and not msg.rstrip().endswith(":"), msg
    c.close()


def test_buffer_limit_follows_hello():
    from rcstore import _wire

    assert _wire.buffer_limit({"max_message_bytes": 1 << 20}) == _wire.MIN_BUFFER_BYTES
    assert _wire.buffer_limit({"max_message_bytes": 100 << 20}) == (200 << 20) + (1 << 20)
    assert _wire.buffer_limit({"max_message_bytes": 1 << 32}) == _wire.MAX_BUFFER_BYTES
    assert _wire.buffer_limit({}) == _wire.MIN_BUFFER_BYTES
    d = _wire.Decoder()
    d.set_limit({"max_message_bytes": 100 << 20})
    assert d.max_buffer_size == (200 << 20) + (1 << 20)
