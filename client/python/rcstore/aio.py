"""rcstore.aio: the rcstore client for asyncio (SPEC section 11).

The same Client, Ref and Pipeline as the blocking client (rcstore._client),
with every call a coroutine: ``c = await rcstore.aio.connect(...)``. One
client is one connection, shared by every task of its event loop: each call
is written at once and waits for its own reply, so many tasks pipeline on
one socket by themselves. It speaks the wire through rcstore._wire (no I/O
there) and raises rcstore.errors; it is not the blocking client run in a
thread, and it is not thread-safe: use a client from its loop's thread only
(a Ref dropped by another thread's collector is fine: that only queues an id).
"""

import asyncio
import collections
import ssl as _ssl
import time

from . import _wire
from .errors import ConnectionFailed, NotLeader, SessionBusy, SessionExpired, Timeout

__all__ = ["connect", "Client", "Ref", "Pipeline", "DEFAULT_FAILOVER_TIMEOUT"]

# How long a call follows NOT_LEADER and retries a reconnect before it gives
# up (librcstore's default too: docs/client-failover.md).
DEFAULT_FAILOVER_TIMEOUT = 10.0
# A TCP connect (and TLS handshake) that gets no answer is given up after this
# with several addresses (the next may serve), after the longer one with one.
_CONNECT_TIMEOUT_MANY = 2.0
_CONNECT_TIMEOUT_ONE = 10.0
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.5
# A pipeline writes its requests this many at a time and waits for the
# transport to drain between writes: memory stays bounded by the kernel's
# buffers plus one chunk, whatever the pipeline's length.
_CHUNK = 1024
_MAX_MSGID = _wire.MAX_MSGID


async def connect(
    address="127.0.0.1:7373",
    *,
    ttl=None,
    auth=None,
    user=None,
    tls=None,
    client_name=None,
    timeout=None,
    failover_timeout=DEFAULT_FAILOVER_TIMEOUT,
):
    """Connect to the first address of ``address`` that serves (a str, a
    comma-separated list, or a list; ``unix:///path``, ``tcp://host:port``,
    ``tls://host:port``, bare ``host:port``), send hello, and return the
    Client. ``ttl`` gives the session a lease of that many seconds: a lost
    connection is made again and the session resumed, holds intact.
    ``auth``/``user`` log in; ``tls`` is an ``ssl.SSLContext`` for tls://
    addresses (default: ``ssl.create_default_context()``, the system's CAs);
    ``client_name`` is shown in the server's sessions; ``timeout`` (seconds)
    bounds each call's wait for its reply (None: no bound);
    ``failover_timeout`` how long a call follows NOT_LEADER and retries a lost
    connection's reconnect. Raises ConnectionFailed when no address serves."""
    c = Client(
        address,
        ttl=ttl,
        auth=auth,
        user=user,
        tls=tls,
        client_name=client_name,
        timeout=timeout,
        failover_timeout=failover_timeout,
    )
    try:
        await c._ensure(time.monotonic() + failover_timeout)
    except BaseException:
        await c.close()
        raise
    return c


def _ids(refs):
    return [r.id if isinstance(r, Ref) else r for r in refs]


def _id(x):
    return x.id if isinstance(x, Ref) else x


class _Batch:
    """Requests written together whose replies are owed in order: ``next``
    the msgid the next reply must carry, ``left`` how many are owed, ``out``
    the (error, result) pairs so far, ``fut`` resolved with ``out`` when
    none is left (None: nobody waits, the replies are dropped)."""

    __slots__ = ("next", "left", "out", "fut")

    def __init__(self, first, n, fut):
        self.next = first
        self.left = n
        self.out = []
        self.fut = fut


class _Conn(asyncio.Protocol):
    """One connection: writes requests, matches replies to batches by order
    (the server answers a connection's requests in the order received, and
    each reply's msgid is checked), hands notifications to the client. A
    reply that breaks the order, or bytes that are not msgpack-RPC, end the
    connection: past them nothing it says can be trusted."""

    def __init__(self, client, address):
        self.client = client
        self.address = address
        self.transport = None
        self.decoder = _wire.Decoder()
        self.waiting = collections.deque()
        self.msgid = 0
        self.lost = None  # the ConnectionFailed once it is gone
        self.retired = False  # no new requests: closes once nothing is owed
        self._paused = False
        self._drain = None

    # -- asyncio.Protocol --
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            msgs = self.decoder.feed(data)
        except ConnectionFailed as e:
            self._abort(e)
            return
        for m in msgs:
            if m[0] != "response":
                self.client._notified(m[1], m[2])
                continue
            if not self.waiting or m[1] != self.waiting[0].next:
                self._abort(ConnectionFailed(f"{self.address}: a reply (msgid {m[1]}) out of order"))
                return
            b = self.waiting[0]
            if b.fut is not None:
                b.out.append((m[2], m[3]))
            b.left -= 1
            b.next = b.next + 1 if b.next < _MAX_MSGID else 1
            if b.left == 0:
                self.waiting.popleft()
                if b.fut is not None and not b.fut.done():
                    b.fut.set_result(b.out)
        if self.retired and not self.waiting:
            self.transport.close()

    def connection_lost(self, exc):
        if self.lost is None:
            why = f": {exc}" if exc else " (closed by the server)"
            self.lost = ConnectionFailed(f"the connection to {self.address} was lost{why}")
        while self.waiting:
            b = self.waiting.popleft()
            if b.fut is not None and not b.fut.done():
                b.fut.set_exception(self.lost)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.client._conn_lost(self)

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- the client's side --
    @property
    def usable(self):
        return self.lost is None and not self.retired

    def send(self, calls, want=True):
        """Write the requests ``calls`` ((method, params) pairs) at once and
        return the future of their (error, result) pairs, in order (None if
        ``want`` is false: the replies are read and dropped)."""
        first = self.msgid % _MAX_MSGID + 1
        parts = []
        msgid = self.msgid
        for method, params in calls:
            msgid = msgid % _MAX_MSGID + 1
            parts.append(_wire.encode_request(msgid, method, params))
        self.msgid = msgid
        fut = self.client._loop.create_future() if want else None
        self.waiting.append(_Batch(first, len(parts), fut))
        self.transport.write(b"".join(parts))
        return fut

    async def drain(self):
        """Wait until the transport's buffer is below its high-water mark."""
        while self._paused and self.lost is None:
            self._drain = self.client._loop.create_future()
            await self._drain

    def retire(self):
        """Take no new requests; close once every reply owed has come (they
        are this node's answers, e.g. NOT_LEADER, and their callers wait)."""
        self.retired = True
        if not self.waiting and self.transport is not None:
            self.transport.close()

    def _abort(self, err):
        if self.lost is None:
            self.lost = err
        self.transport.abort()


class _Notifications:
    """``async for method, params in client.notifications(timeout)``: the
    notifications of the client's connection in arrival order, ending when
    the client is closed; a wait longer than ``timeout`` raises Timeout."""

    def __init__(self, client, timeout):
        self._client = client
        self._timeout = timeout

    def __aiter__(self):
        return self

    async def __anext__(self):
        c = self._client
        if c._closed and c._notes.empty():
            raise StopAsyncIteration
        try:
            if self._timeout is None:
                item = await c._notes.get()
            else:
                item = await asyncio.wait_for(c._notes.get(), self._timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no notification within {self._timeout} s") from None
        if item is None:  # close()'s mark: leave it for the other iterators
            c._notes.put_nowait(None)
            raise StopAsyncIteration
        return item


class Client:
    """An rcstore client for asyncio; made by ``await rcstore.aio.connect()``.
    Every protocol method is a coroutine method of the same name and
    parameters as the blocking Client's. ``async with`` closes it.

    Read-only attributes: ``addresses`` (the parsed list), ``address`` (the
    one in use), ``session`` (the session's id), ``hello_result`` (the last
    hello's map), ``reconnects`` (connections made again since connect)."""

    def __init__(
        self,
        address="127.0.0.1:7373",
        *,
        ttl=None,
        auth=None,
        user=None,
        tls=None,
        client_name=None,
        timeout=None,
        failover_timeout=DEFAULT_FAILOVER_TIMEOUT,
    ):
        self.addresses = _wire.parse_addresses(address)
        _wire.hello_params(ttl, auth, user, None, client_name)  # checks the types now
        if tls is not None and not isinstance(tls, _ssl.SSLContext):
            raise TypeError("tls must be an ssl.SSLContext (or None)")
        self._ttl = ttl
        self._auth = auth
        self._user = user
        self._tls = tls
        self._client_name = client_name
        self._timeout = timeout
        self._failover_timeout = failover_timeout
        self._loop = asyncio.get_running_loop()
        self._conn = None
        self._next = 0  # the address to try after a refusal
        self._token = None  # the resume token while the session has a lease
        self._epoch = 0  # +1 whenever the session changes: older holds are gone
        self._lock = asyncio.Lock()
        self._notes = asyncio.Queue()
        # (epoch, id) of Refs that Python's collector freed: appended by
        # Ref.__del__ (a list append, safe from any thread and any finaliser),
        # drained by the next call on this client's own task.
        self._releases = []
        self._closed = False
        self.session = None
        self.hello_result = None
        self.reconnects = 0
        self.address = None

    def __repr__(self):
        state = "closed" if self._closed else str(self.address)
        return f"<rcstore.aio.Client {state} session={self.session}>"

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # -- connections --
    def _ssl_for(self, addr):
        if addr.scheme != "tls":
            return None
        if self._tls is None:
            self._tls = _ssl.create_default_context()
        return self._tls

    async def _open(self, addr, deadline):
        many = len(self.addresses) > 1
        limit = _CONNECT_TIMEOUT_MANY if many else _CONNECT_TIMEOUT_ONE
        limit = max(0.05, min(limit, deadline - time.monotonic()))
        make = lambda: _Conn(self, addr)  # noqa: E731
        try:
            if addr.scheme == "unix":
                coro = self._loop.create_unix_connection(make, addr.path)
            else:
                ctx = self._ssl_for(addr)
                coro = self._loop.create_connection(
                    make, addr.host, addr.port, ssl=ctx, server_hostname=addr.host if ctx else None
                )
            _, conn = await asyncio.wait_for(coro, limit)
        except asyncio.TimeoutError:
            raise ConnectionFailed(f"cannot connect to {addr}: no answer within {limit:g} s") from None
        except (OSError, _ssl.SSLError) as e:
            raise ConnectionFailed(f"cannot connect to {addr}: {e}") from None
        return conn

    async def _hello(self, conn):
        resume = self._token
        params = _wire.hello_params(self._ttl, self._auth, self._user, resume, self._client_name)
        # hello is part of connecting: a node that takes the connection but
        # never answers is given up like one that refuses it.
        limit = self._timeout if self._timeout is not None else _CONNECT_TIMEOUT_ONE
        ((err, result),) = await self._wait(conn.send((("hello", params),)), limit)
        if err is not None:
            if isinstance(err, SessionExpired):
                # Its holds are gone: say so once, then start afresh.
                self._token = None
                self._epoch += 1
            raise err
        if not isinstance(result, dict):
            raise ConnectionFailed(f"{conn.address}: hello answered {result!r}")
        if self.session is not None and not result.get("resumed"):
            self._epoch += 1
        self.session = result.get("session")
        self.hello_result = result
        token = result.get("token")
        self._token = token if self._ttl and token else None
        return result

    def _hint(self, leader):
        """The Address of a NOT_LEADER hint, or None. A TLS client never
        follows a hint into plaintext: tcp://H:P is dialled as tls://H:P."""
        if not leader:
            return None
        try:
            a = _wire.parse_addresses(leader)[0]
        except ValueError:
            return None
        if a.scheme == "tcp" and self.addresses[0].scheme == "tls":
            a = _wire.Address("tls", host=a.host, port=a.port)
        return a

    async def _ensure(self, deadline, hint=None, stale=None):
        """A usable connection: the current one, or a new one (to ``hint``
        first, then round the list) with the session's hello replayed."""
        conn = self._conn
        if conn is not None and conn.usable and conn is not stale:
            return conn
        async with self._lock:
            conn = self._conn
            if conn is not None and conn.usable and conn is not stale:
                return conn
            if self._closed:
                raise ConnectionFailed("the client is closed")
            return await self._dial(deadline, hint)

    async def _dial(self, deadline, hint):
        backoff = _BACKOFF_FIRST
        first = self._conn is None and self.session is None
        refused = 0
        while True:
            addr = hint if hint is not None else self.addresses[self._next % len(self.addresses)]
            hint = None
            conn = None
            try:
                conn = await self._open(addr, deadline)
                await self._hello(conn)
            except NotLeader as e:
                # A follower takes no lease: go where it points.
                last = e
                hint = self._hint(e.leader)
                if hint is None:
                    self._next += 1
            except SessionBusy as e:
                last = e  # the server has not seen the old connection close yet
            except (ConnectionFailed, Timeout) as e:
                last = e
                self._next += 1
                refused += 1
                if len(self.addresses) == 1:
                    raise
            except BaseException:
                if conn is not None:
                    conn.transport.abort()
                raise
            else:
                self._conn = conn
                self.address = conn.address
                if not first:
                    self.reconnects += 1
                return conn
            if conn is not None:
                conn.transport.abort()
            if hint is None and time.monotonic() + backoff > deadline:
                raise last
            if hint is None and (refused == 0 or refused % len(self.addresses) == 0):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _conn_lost(self, conn):
        if conn is self._conn:
            self._conn = None

    def _notified(self, method, params):
        self._notes.put_nowait((method, params))

    def _take_releases(self):
        """The ids whose Ref Python freed, of this session; the others were
        held by a session that is gone (their holds went with it)."""
        out = []
        rel = self._releases
        while rel:
            epoch, id = rel.pop()
            if epoch == self._epoch:
                out.append(("decref", [id]))
        return out

    def _send(self, conn, calls, want=True):
        if self._releases:
            rel = self._take_releases()
            if rel:
                conn.send(rel, want=False)
        return conn.send(calls, want)

    async def _wait(self, fut, timeout):
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no reply within {timeout} s") from None

    async def call(self, method, *params, timeout=None):
        """Send one request and return its result; raise its error. A
        NOT_LEADER is followed (the request is sent again on the leader)
        until ``failover_timeout``; a request whose connection is lost
        before its reply raises ConnectionFailed and is never sent again
        (it may have been done); the next call connects again."""
        return await self._call(method, list(params), timeout)

    async def _call(self, method, params, timeout=None):
        if timeout is None:
            timeout = self._timeout
        deadline = time.monotonic() + self._failover_timeout
        hint = None
        stale = None
        backoff = _BACKOFF_FIRST
        while True:
            conn = await self._ensure(deadline, hint, stale)
            ((err, result),) = await self._wait(self._send(conn, ((method, params),)), timeout)
            if err is None:
                return result
            if not isinstance(err, NotLeader) or time.monotonic() >= deadline:
                raise err
            conn.retire()
            stale = conn
            hint = self._hint(err.leader)
            if hint is None:
                self._next += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    async def close(self):
        """Give back the holds of Refs Python freed (their decrefs are sent
        and answered), then close the connection. A session with a lease
        stays on the server, detached, until the lease ends (SPEC section
        3); without one the server releases its holds now. Idempotent."""
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if conn is not None and conn.usable:
            rel = self._take_releases()
            if rel:
                try:
                    await self._wait(conn.send(rel), 5.0)
                except (ConnectionFailed, Timeout):
                    pass
            conn.transport.close()
        self._conn = None
        self._notes.put_nowait(None)

    @property
    def closed(self):
        return self._closed

    def notifications(self, timeout=None):
        """An async iterator of ``(method, params)``: the server's
        notifications (``("freed", [id, reason])`` after ``watch``), in
        arrival order, until the client is closed. ``timeout``: seconds one
        wait may take before it raises Timeout (None: no bound)."""
        return _Notifications(self, timeout)

    def pipeline(self):
        """``async with c.pipeline() as p: p.incref(x); ...``: calls are
        queued (each returns its index in ``p.results``), sent at once when
        the block ends, and ``p.results`` holds the results in order."""
        return Pipeline(self)

    # -- Refs --
    async def new(self, data, refs=()):
        """Create an object and return a Ref owning its one hold."""
        return Ref(self, await self._call("create", [data, _ids(refs)] if refs else [data]))

    async def ref(self, id):
        """Take one more hold on an existing object: a Ref owning it."""
        id = _id(id)
        await self._call("incref", [id])
        return Ref(self, id)

    async def claim(self, token):
        """Claim a share token: a Ref owning the hold it carried."""
        return Ref(self, await self._call("claim", [bytes(token)]))

    # -- one method per protocol method --
    async def hello(self):
        """hello without options: the session's map (``hello_result``)."""
        return await self._call("hello", [])

    async def ping(self):
        return await self._call("ping", [])

    async def create(self, data, refs=()):
        """Create an object; return its id (the session gains one hold)."""
        return await self._call("create", [data, _ids(refs)] if refs else [data])

    async def get(self, id):
        return await self._call("get", [_id(id)])

    async def set_data(self, id, data):
        return await self._call("set_data", [_id(id), data])

    async def set_refs(self, id, refs):
        return await self._call("set_refs", [_id(id), _ids(refs)])

    async def link(self, id, target):
        return await self._call("link", [_id(id), _id(target)])

    async def unlink(self, id, target):
        return await self._call("unlink", [_id(id), _id(target)])

    async def incref(self, id, n=None):
        return await self._call("incref", [_id(id)] if n is None else [_id(id), n])

    async def decref(self, id, n=None):
        return await self._call("decref", [_id(id)] if n is None else [_id(id), n])

    async def stat(self, id):
        return await self._call("stat", [_id(id)])

    async def bind(self, name, id):
        return await self._call("bind", [name, _id(id)])

    async def unbind(self, name):
        return await self._call("unbind", [name])

    async def lookup(self, name, acquire=False):
        return await self._call("lookup", [name, True] if acquire else [name])

    async def names(self, prefix="", limit=None):
        return await self._call("names", [prefix] if limit is None else [prefix, limit])

    async def referrers(self, id, limit=None):
        return await self._call("referrers", [_id(id)] if limit is None else [_id(id), limit])

    async def watch(self, id):
        return await self._call("watch", [_id(id)])

    async def release_all(self):
        return await self._call("release_all", [])

    async def share(self, id, ttl=None):
        return await self._call("share", [_id(id)] if ttl is None else [_id(id), ttl])

    async def why(self, id):
        return await self._call("why", [_id(id)])

    async def gc(self):
        return await self._call("gc", [])

    async def stats(self):
        return await self._call("stats", [])

    async def save(self):
        return await self._call("save", [])

    async def cluster(self):
        return await self._call("cluster", [])

    async def cluster_add(self, id, raft_address, client_address):
        return await self._call("cluster_add", [id, raft_address, client_address])

    async def cluster_remove(self, id):
        return await self._call("cluster_remove", [id])

    async def cluster_transfer(self, id=None):
        return await self._call("cluster_transfer", [] if id is None else [id])


class Ref:
    """One hold on an object, owned by this Python object (SPEC section 11).
    ``id`` is the object's id; ``await ref.release()`` (or leaving
    ``async with ref``) gives the hold back. A Ref that Python's collector
    frees first only queues its id: the client's next call (or close)
    sends the decref, on its own task; never from inside the finaliser. A
    Ref whose session ended (a connection lost without a lease) owns
    nothing any more: releasing it does nothing."""

    __slots__ = ("client", "id", "_epoch", "_live", "__weakref__")

    def __init__(self, client, id):
        self.client = client
        self.id = id
        self._epoch = client._epoch
        self._live = True

    def __repr__(self):
        state = "" if self._live else " released"
        return f"<rcstore.aio.Ref {self.id}{state}>"

    @property
    def released(self):
        return not self._live

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.release()

    def __del__(self):
        if self._live:
            self._live = False
            self.client._releases.append((self._epoch, self.id))

    async def release(self):
        """Give the hold back (decref). Idempotent."""
        if not self._live:
            return
        self._live = False
        if self._epoch == self.client._epoch:
            await self.client._call("decref", [self.id])

    async def get(self):
        return await self.client.get(self.id)

    async def link(self, other):
        return await self.client.link(self.id, other)

    async def unlink(self, other):
        return await self.client.unlink(self.id, other)

    async def share(self, ttl=None):
        return await self.client.share(self.id, ttl)


class Pipeline:
    """Calls queued and sent at once (``Client.pipeline()``). Each queueing
    method returns the call's index; ``await p.execute()`` sends what is
    queued and returns the results in order (the block's end does it and
    keeps them in ``p.results``). The first error is raised once every reply
    has been read, with ``index`` set to its call's place; ``p.results`` then
    holds the results and, in the failed places, the errors."""

    def __init__(self, client):
        self._client = client
        self._calls = []
        self.results = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, et, e, tb):
        if et is None:
            await self.execute()

    def __len__(self):
        return len(self._calls)

    def _q(self, method, params):
        self._calls.append((method, params))
        return len(self._calls) - 1

    async def execute(self):
        calls, self._calls = self._calls, []
        c = self._client
        if not calls:
            self.results = []
            return self.results
        conn = await c._ensure(time.monotonic() + c._failover_timeout)
        futs = []
        for i in range(0, len(calls), _CHUNK):
            futs.append(c._send(conn, calls[i : i + _CHUNK]))
            await conn.drain()
        results = []
        first = None
        for f in futs:
            for err, result in await c._wait(f, c._timeout):
                if err is not None:
                    if first is None:
                        err.index = len(results)
                        first = err
                    result = err
                results.append(result)
        self.results = results
        if first is not None:
            raise first
        return results

    def call(self, method, *params):
        return self._q(method, list(params))

    def ping(self):
        return self._q("ping", [])

    def create(self, data, refs=()):
        return self._q("create", [data, _ids(refs)] if refs else [data])

    def get(self, id):
        return self._q("get", [_id(id)])

    def set_data(self, id, data):
        return self._q("set_data", [_id(id), data])

    def set_refs(self, id, refs):
        return self._q("set_refs", [_id(id), _ids(refs)])

    def link(self, id, target):
        return self._q("link", [_id(id), _id(target)])

    def unlink(self, id, target):
        return self._q("unlink", [_id(id), _id(target)])

    def incref(self, id, n=None):
        return self._q("incref", [_id(id)] if n is None else [_id(id), n])

    def decref(self, id, n=None):
        return self._q("decref", [_id(id)] if n is None else [_id(id), n])

    def stat(self, id):
        return self._q("stat", [_id(id)])

    def bind(self, name, id):
        return self._q("bind", [name, _id(id)])

    def unbind(self, name):
        return self._q("unbind", [name])

    def lookup(self, name, acquire=False):
        return self._q("lookup", [name, True] if acquire else [name])

    def watch(self, id):
        return self._q("watch", [_id(id)])

    def share(self, id, ttl=None):
        return self._q("share", [_id(id)] if ttl is None else [_id(id), ttl])
