"""rcstore.aio: the rcstore client for asyncio (SPEC section 11).

The same Client, Ref and Pipeline as the blocking client (rcstore._client),
with every call a coroutine: ``c = await rcstore.aio.connect(...)``. The
methods are the blocking client's own table (``_client._Api``): here its
``_do`` is a coroutine, so each method returns an awaitable. One client is
one connection, shared by every task of its event loop: each call is written
at once and waits for its own reply, so many tasks pipeline on one socket by
themselves. It speaks the wire through rcstore._wire (no I/O there) and
raises rcstore.errors; it is not the blocking client run in a thread, and it
is not thread-safe: use a client from its loop's thread only (a Ref dropped
by another thread's collector is fine: that only queues an id, which the
next call, or the client's timer on its loop, sends).
"""

import asyncio
import collections
import ssl
import time

from . import _client, _wire
from ._client import PAGE, _as_pairs, _id
from .errors import ConnectionFailed, Error, NotFound, NotHeld, NotLeader, QuotaExceeded, SessionBusy
from .errors import SessionExpired, Timeout

__all__ = ["connect", "Client", "Ref", "Pipeline"]

# The blocking client's: a connect that gets no answer in this long is given
# up for the next address when there are several; NOT_LEADER without a
# leader named backs off, doubling.
_CONNECT_TIMEOUT_MANY = _client.CONNECT_TIMEOUT_MANY
_CONNECT_TIMEOUT_ONE = _client.CONNECT_TIMEOUT_ONE
_BACKOFF_FIRST = _client.BACKOFF_FIRST
_BACKOFF_MAX = _client.BACKOFF_MAX
_MAX_MSGID = _wire.MAX_MSGID
# How long close() waits for the replies to the releases it sends.
_CLOSE_WAIT = 5.0
# How often an idle client looks for Refs Python has freed (the blocking
# client's flusher thread's period; here a timer on the client's loop).
_FLUSH_INTERVAL = _client.FLUSH_INTERVAL


async def connect(address=_client.DEFAULT_ADDRESS, **options):
    """Connect and say hello: an asyncio ``Client``. The parameters are
    ``rcstore.connect``'s (docs/python.md): address a ``host:port``,
    ``tcp://``, ``tls://`` or ``unix:///path`` URL or a list of them; ttl a
    lease, so that a lost connection is made again and the session resumed;
    auth, user the login; tls an ``ssl.SSLContext`` or a dict (``cafile``,
    ``certfile``, ``keyfile``, ``server_hostname``, ``insecure``);
    client_name; timeout (seconds a call waits for its reply);
    failover_timeout (seconds a call follows NOT_LEADER); resume (a resume
    token: take that session over)."""
    c = Client(address, **options)
    try:
        await c._ensure(time.monotonic() + (c.failover_timeout or 0))
    except BaseException:
        await c.close()
        raise
    return c


class _Batch:
    """Requests written together whose replies are owed in order: ``next``
    the msgid the next reply must carry, ``left`` how many are owed, ``out``
    the results so far (an Error in a failed request's place), ``failed``
    how many failed, ``fut`` resolved with ``(out, failed)`` when none is
    left."""

    __slots__ = ("next", "left", "out", "failed", "fut")

    def __init__(self, first, n, fut):
        self.next = first
        self.left = n
        self.out = []
        self.failed = 0
        self.fut = fut


class _Conn(asyncio.Protocol):
    """One connection: writes requests, matches replies to batches by order
    (the server answers a connection's requests in the order received; each
    reply's msgid is checked), hands notifications to the client. A reply
    out of order, or bytes that are not msgpack-RPC, end the connection:
    past them nothing it says can be trusted."""

    def __init__(self, client, address, tls):
        self.client = client
        self.address = address
        self.tls = tls
        self.transport = None
        self.decoder = _wire.Decoder()
        self.waiting = collections.deque()
        self.msgid = 0
        self.lost = None  # the ConnectionFailed once it is gone
        self.retired = False  # takes no new requests; closes once nothing is owed
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
            if m[0] == "notification":
                try:
                    self.client._on_note(m[1], m[2])
                except ConnectionFailed as e:  # too many unread
                    self._abort(e)
                    return
                continue
            if not self.waiting or m[1] != self.waiting[0].next:
                self._abort(ConnectionFailed(f"{self.address} answered msgid {m[1]} out of order"))
                return
            b = self.waiting[0]
            if m[2] is None:
                b.out.append(m[3])
            else:
                b.out.append(m[2])
                b.failed += 1
            b.left -= 1
            b.next = b.next + 1 if b.next < _MAX_MSGID else 1
            if b.left == 0:
                self.waiting.popleft()
                if not b.fut.done():
                    b.fut.set_result((b.out, b.failed))
        if self.retired and not self.waiting:
            self.transport.close()

    def connection_lost(self, exc):
        if self.lost is None:
            why = f": {exc}" if exc else " (closed by the server)"
            self.lost = ConnectionFailed(f"the connection to {self.address} was lost{why}")
        while self.waiting:
            b = self.waiting.popleft()
            if not b.fut.done():
                b.fut.set_exception(self.lost)
                b.fut.exception()  # retrieved: nobody may be waiting (releases)
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

    def send(self, calls):
        """Write the requests calls ((method, params) pairs) at once, msgids
        from this connection's counter; the future of (results, failed)."""
        first = self.msgid % _MAX_MSGID + 1
        parts = []
        msgid = self.msgid
        packer = self.client._packer
        for method, params in calls:
            msgid = msgid % _MAX_MSGID + 1
            parts.append(_wire.encode_request(msgid, method, params, packer))
        self.msgid = msgid
        return self.send_encoded(b"".join(parts), len(parts), first)

    def send_encoded(self, data, n, first):
        """Write n encoded requests whose msgids go on from first."""
        if self.lost is not None:
            raise self.lost
        fut = self.client._loop.create_future()
        self.waiting.append(_Batch(first, n, fut))
        self.transport.write(data)
        return fut

    async def drain(self):
        """Wait until the transport's buffer is below its high-water mark."""
        while self._paused and self.lost is None:
            self._drain = self.client._loop.create_future()
            await self._drain

    def retire(self):
        """Take no new requests; close once every reply owed has come (the
        node's own answers, e.g. NOT_LEADER: their callers wait for them)."""
        self.retired = True
        if not self.waiting and self.transport is not None:
            self.transport.close()

    def _abort(self, err):
        if self.lost is None:
            self.lost = err
        self.transport.abort()


class _Notifications:
    """``async for method, params in client.notifications(timeout)``: the
    notifications of the client's connection in arrival order, until the
    client is closed; a wait longer than timeout raises Timeout (the
    iterator stays usable)."""

    def __init__(self, client, timeout):
        self._client = client
        self._timeout = timeout

    def __aiter__(self):
        return self

    async def __anext__(self):
        c = self._client
        if c._closed and c._notes.empty():
            raise StopAsyncIteration
        if c._forked:
            c._check_open()  # raises: the parent's connection
        if not c._closed and c._notes.empty() and (c._conn is None or not c._conn.usable):
            c._recover_for_notes()  # nothing would ever come on a lost connection
        c._note_waiters += 1
        try:
            if self._timeout is None:
                item = await c._notes.get()
            elif not c._notes.empty():
                # What already arrived, whatever the timeout: wait_for(.., 0)
                # would give up before the get ran.
                item = c._notes.get_nowait()
            else:
                item = await asyncio.wait_for(c._notes.get(), self._timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no notification within {self._timeout} s") from None
        finally:
            c._note_waiters -= 1
        if item is None:  # close()'s mark: leave it for the other iterators
            c._notes.put_nowait(None)
            raise StopAsyncIteration
        if isinstance(item, Error):  # the connection was lost for good
            raise item
        return item


class Client(_client._ClientBase):
    """An rcstore client for asyncio; made by ``await rcstore.aio.connect()``.
    Every method of the blocking Client is here, as a coroutine with the
    same parameters and results; ``async with`` closes it. The attributes
    are the blocking Client's: ``address``, ``session``, ``resume_token``,
    ``server_info``, ``limits``, ``closed``, ``reconnects``, ``timeout``,
    ``failover_timeout``."""

    _NAME = "rcstore.aio.Client"  # for repr

    def __init__(self, address=_client.DEFAULT_ADDRESS, **options):
        self._configure(address, **options)
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()  # one (re)connect at a time
        self._packer = _wire.request_packer()  # this loop's only
        self._notes = asyncio.Queue()  # (method, params); None once closed
        # (id, epoch) of Refs Python's collector freed: appended by
        # Ref.__del__ (a deque append, safe from any thread or finaliser),
        # sent as decrefs before the next request, on this loop.
        self._pending = collections.deque()
        self._flusher = self._loop.call_later(_FLUSH_INTERVAL, self._flush_tick)
        self._note_waiters = 0  # notifications() consumers waiting now
        self._recovering = None  # the task of _recover_for_notes

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def __enter__(self):
        raise TypeError("rcstore.aio.Client is closed by 'async with', not 'with'")

    def __exit__(self, *exc):  # pragma: no cover (never entered)
        pass

    # ---- the protocol ----
    async def _do(self, method, params, convert=None):
        epoch_before = self._epoch
        result, epoch = await self._call(method, params)
        if method == "watch":
            self._watched.add(params[0])
        elif method == "release_all" and epoch == epoch_before:
            self._epoch += 1  # every hold is gone: the session's Refs own nothing
        elif method == "cluster_transfer" and self._conn is not None:
            # The old leader restarts itself (its connections close): leave
            # it now; the next call connects and follows NOT_LEADER.
            self._move(self._conn, None)
        return convert(self, result, epoch) if convert else result

    def _make_ref(self, id, epoch):
        return Ref(self, id, epoch)

    async def hello(self, ttl=None, auth=None, user=None, resume=None, client_name=None):
        """The blocking Client's hello: sent again with these options, which
        are kept and replayed after a reconnect. Returns hello's result."""
        params = _wire.hello_params(ttl=ttl, auth=auth, user=user, resume=resume, client_name=client_name)
        result, _ = await self._call("hello", params)
        self._keep_hello(result, ttl, auth, user, resume, client_name)
        return result

    async def names(self, prefix="", limit=None):
        """``[(name, id), ...]``, sorted; without limit every one, paged."""
        # The blocking Client's names() but for await: kept apart (shared, it would be a generator both drive).
        if limit is not None:
            return await self._do("names", [prefix, limit], _as_pairs)
        out, after = [], ""
        while True:
            page = await self.names_page(prefix, PAGE, after)
            out += page["names"]
            if page["next"] is None:
                return out
            after = page["next"]

    async def referrers(self, id, limit=None):
        """Ids of the objects whose refs contain id; without limit every
        one, paged by the server's cursor when one request cannot say."""
        # The blocking Client's referrers() but for await: kept apart (shared, it would be a generator both drive).
        if limit is not None:
            return await self._do("referrers", [_id(id), limit])
        try:
            return await self._do("referrers", [_id(id)])
        except QuotaExceeded:
            pass
        out, cursor = [], 0
        while True:
            page = await self.referrers_page(id, PAGE, cursor)
            out += page["ids"]
            cursor = page["cursor"]
            if not cursor:
                return out

    def pipeline(self, raise_on_error=True):
        """``async with c.pipeline() as p: p.incref(x); ...``: the blocking
        Pipeline's queueing, sent when the block ends (or ``await
        p.execute()``); ``p.results`` holds the results in order."""
        return Pipeline(self, raise_on_error)

    def notifications(self, timeout=None):
        """An async iterator of the server's notifications, ``(method,
        params)`` such as ``("freed", [id, "refcount"])``, in arrival order,
        until the client is closed. A wait longer than timeout seconds
        (None: no limit) raises ``rcstore.Timeout``."""
        return _Notifications(self, timeout)

    async def flush(self):
        """Give back now the holds of the Refs Python's collector freed
        (every call does this first; so does close())."""
        self._check_open()
        if self._pending:
            conn = await self._ensure(time.monotonic() + (self.failover_timeout or 0))
            fut = self._send_releases(conn)
            if fut is not None:
                await self._wait(fut)

    async def close(self):
        """Send the pending releases (if the connection works; their replies
        are awaited, at most a few seconds) and close. Without a lease the
        server then releases every hold of the session; with one, the
        session stays, detached, until its lease ends. Calls after close
        raise ``ConnectionFailed``; close twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._recovering is not None:
            self._recovering.cancel()
        if self._forked:
            # The parent's connection and event loop (the epoll set is
            # shared): touch neither; the fd copy goes with the transport.
            self._conn = None
            self._notes.put_nowait(None)
            return
        self._flusher.cancel()
        conn, self._conn = self._conn, None
        if conn is not None and conn.usable:
            fut = self._send_releases(conn)
            if fut is not None:
                try:
                    await asyncio.wait_for(fut, _CLOSE_WAIT)
                except (Error, asyncio.TimeoutError):
                    pass
            conn.transport.close()
        self._notes.put_nowait(None)

    # ---- the machinery ----
    def _flush_tick(self):
        """The loop's timer: send the releases of Refs freed in an idle
        client (never from a finaliser, never reconnecting: a client with
        no connection sends them at its next call)."""
        if self._closed or self._forked:
            return
        conn = self._conn
        if self._pending and conn is not None and conn.usable:
            self._send_releases(conn)
        self._flusher = self._loop.call_later(_FLUSH_INTERVAL, self._flush_tick)

    async def _wait(self, fut, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no reply within {timeout} s") from None

    def _send_releases(self, conn):
        """Send decref for each freed Ref of the current session (a Ref of a
        session that is gone owns nothing); the future of their replies, or
        None. A release refused with NOT_LEADER waits for the next call."""
        ids = []
        while self._pending:
            try:
                i, epoch = self._pending.popleft()
            except IndexError:
                break
            if epoch == self._epoch:
                ids.append(i)
        if not ids:
            return None
        fut = conn.send([("decref", [i]) for i in ids])
        epoch = self._epoch

        def done(f):
            if f.cancelled() or f.exception() is not None:
                return  # lost: the session's end (or its lease) releases them
            results, failed = f.result()
            if failed:
                for i, r in zip(ids, results):
                    if isinstance(r, NotLeader):
                        self._pending.append((i, epoch))

        fut.add_done_callback(done)
        return fut

    async def _call(self, method, params):
        """Send one request after the pending releases and return (result,
        epoch); raise its error. NOT_LEADER is followed (the request sent
        again on the leader) until failover_timeout; a request whose
        connection is lost before its reply raises ConnectionFailed and is
        never sent again (it may have been done): the next call connects
        again."""
        self._check_open()
        deadline = time.monotonic() + (self.failover_timeout or 0)
        stale = None
        backoff = _BACKOFF_FIRST
        while True:
            conn = await self._ensure(deadline, stale)
            self._send_releases(conn)
            epoch = self._epoch
            (r,), failed = await self._wait(conn.send(((method, params),)))
            if not failed:
                return r, epoch
            if not isinstance(r, NotLeader) or time.monotonic() >= deadline:
                raise r
            stale = self._move(conn, r.leader)
            if not r.leader:
                await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _run_pipeline(self, reqs):
        """A Pipeline's requests (a _wire.Requests): the chunks written one
        after another, each once the transport has room. Returns what the
        blocking client's _run_pipeline does: (results, failed, epoch,
        retried)."""
        self._check_open()
        conn = await self._ensure(time.monotonic() + (self.failover_timeout or 0))
        self._send_releases(conn)
        epoch = self._epoch
        futs = []
        first = 1
        for data, n in reqs.chunks():
            futs.append(conn.send_encoded(data, n, first))
            first += n
            await conn.drain()
        results, failed = [], 0
        for f in futs:
            out, bad = await self._wait(f)
            results += out
            failed += bad
        retried = {}
        if failed:
            todo = [k for k, r in enumerate(results) if isinstance(r, NotLeader)]
            for k, (method, params) in zip(todo, reqs.calls(todo)):
                try:
                    results[k], retried[k] = await self._call(method, params)
                except Error as e:
                    results[k], retried[k] = e, self._epoch
            failed = sum(isinstance(r, Error) for r in results)
        return results, failed, epoch, retried

    def _move(self, conn, leader):
        """Leave conn (NOT_LEADER) for the leader it named, or the next
        address; returns conn, which _ensure must not hand out again."""
        conn.retire()
        if self._conn is conn:
            self._conn = None
        if leader:
            self._aim_at(leader)
        else:
            self._next = (self._next + 1) % len(self._addresses)
        return conn

    def _conn_lost(self, conn):
        if conn is self._conn:
            self._conn = None
            if self._note_waiters and not self._closed and not self._forked:
                self._recover_for_notes()

    def _recover_for_notes(self):
        """The connection is lost while notifications() waits: with a lease,
        connect again by itself (the session resumed, the watches remade)
        so that the wait goes on; without one, or when no address answers
        within failover_timeout, end the wait with ConnectionFailed, as the
        blocking client's next() does."""
        if self._recovering is None or self._recovering.done():
            self._recovering = self._loop.create_task(self._recover())

    async def _recover(self):
        if not self._ttl:
            self._notes.put_nowait(ConnectionFailed("the connection was lost (no lease: nothing to resume)"))
            return
        deadline = time.monotonic() + (self.failover_timeout or 0)
        backoff = _BACKOFF_FIRST
        while not self._closed:
            try:
                await self._ensure(deadline)
                return
            except Error as e:
                if isinstance(e, SessionExpired) or time.monotonic() >= deadline:
                    self._notes.put_nowait(e if isinstance(e, ConnectionFailed) else ConnectionFailed(str(e)))
                    return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def _on_note(self, method, params):
        if self._notes.qsize() >= _client.MAX_NOTIFICATIONS:
            raise _client._too_many_notes()
        if method == "freed" and params:
            self._watched.discard(params[0])
        self._notes.put_nowait((method, params))

    async def _ensure(self, deadline, stale=None):
        """A usable connection: the current one, or a new one with the
        session's hello replayed."""
        conn = self._conn
        if conn is not None and conn.usable and conn is not stale:
            return conn
        async with self._lock:
            self._check_open()
            conn = self._conn
            if conn is not None and conn.usable and conn is not stale:
                return conn
            return await self._connect(deadline)

    async def _open(self, a, limit):
        make = lambda: _Conn(self, a, tls)  # noqa: E731
        tls = a.scheme == "tls" or (self._force_tls and a.scheme == "tcp")
        try:
            if a.scheme == "unix":
                coro = self._loop.create_unix_connection(make, a.path)
            else:
                ctx = self._tls_ctx if tls else None
                host = (self._tls_hostname or a.host) if tls else None
                coro = self._loop.create_connection(make, a.host, a.port, ssl=ctx, server_hostname=host)
            _, conn = await asyncio.wait_for(coro, limit)
        except asyncio.TimeoutError:
            raise ConnectionFailed(f"{a}: no answer within {limit:g} s") from None
        except (OSError, ssl.SSLError) as e:
            raise ConnectionFailed(f"{a}: {getattr(e, 'strerror', None) or e}") from None
        return conn

    async def _connect(self, deadline):
        """Connect to the first address that serves (from _next on) and
        replay hello: the blocking client's _connect, on the loop."""
        # The blocking Client's _connect but for await: kept apart (shared, it would be a generator both drive).
        n = len(self._addresses)
        limit = _CONNECT_TIMEOUT_ONE if n == 1 else _CONNECT_TIMEOUT_MANY
        backoff = _BACKOFF_FIRST
        errors = []
        tried = 0
        while True:
            a = self._addresses[self._next % n]
            try:
                conn = await self._open(a, limit)
            except ConnectionFailed as e:
                errors.append(e.message)
                self._next = (self._next + 1) % n
                tried += 1
                if tried % n == 0:
                    if n == 1 or time.monotonic() >= deadline:
                        raise ConnectionFailed("cannot connect: " + "; ".join(errors[-n:])) from None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            try:
                await self._replay_hello(conn, limit)
                self._conn = conn
                await self._rewatch(conn)
                return conn
            except (NotLeader, SessionBusy) as e:
                conn.transport.abort()
                if time.monotonic() >= deadline:
                    raise
                leader = getattr(e, "leader", None)
                self._move(conn, leader)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            except (ConnectionFailed, Timeout) as e:
                conn.transport.abort()
                errors.append(str(e))
                self._next = (self._next + 1) % n
                tried += 1
                if tried % n == 0 and (n == 1 or time.monotonic() >= deadline):
                    raise
            except BaseException:
                conn.transport.abort()
                raise

    async def _replay_hello(self, conn, limit):
        resume, params = self._replay_params()
        # hello is part of connecting: a node that takes the connection but
        # never answers is given up like one that refuses it.
        wait = limit if self.timeout is None else min(self.timeout, limit)
        (r,), failed = await self._wait(conn.send((("hello", params),)), wait)
        if failed and isinstance(r, SessionExpired) and resume is not None:
            raise self._replay_expired(r)
        if failed:
            raise r
        self._replayed(r)
        conn.decoder.set_limit(r.get("limits"))

    async def _rewatch(self, conn):
        """Watches belong to a connection: ask again for each after a
        reconnect; an object freed meanwhile gets its notification now, with
        the reason "unknown"."""
        # The blocking Client's _rewatch but for await: kept apart (shared, it would be a generator both drive).
        if not self._watched:
            return
        ids = sorted(self._watched)
        results, failed = await self._wait(conn.send([("watch", [i]) for i in ids]))
        for i, r in zip(ids, results):
            if isinstance(r, NotFound):
                self._on_note("freed", [i, "unknown"])

    async def _release(self, ref):
        """Ref.release(): decref now (NOT_HELD/NOT_FOUND: gone either way;
        a lost connection: queued for the next call)."""
        if self._forked:
            self._check_open()  # raises: the parent's hold
        if ref._released:
            return
        ref._released = True
        if ref._epoch != self._epoch or self._closed:
            return
        try:
            await self._do("decref", [ref._id])
        except (NotHeld, NotFound):
            pass
        except (ConnectionFailed, Timeout):
            self._pending.append((ref._id, ref._epoch))


class Ref(_client.Ref):
    """The blocking Ref for an asyncio Client: ``await ref.get()``, ``await
    ref.release()``, ``async with ref``; the rest as ``rcstore.Ref``. A
    Ref that Python's collector frees only queues its id; the client's next
    call (or close) sends the decref, on its loop, never from the
    finaliser."""

    __slots__ = ()

    async def release(self):
        """Give the hold back now. Twice is harmless. If the connection is
        down the release waits for the next call that has one."""
        await self._client._release(self)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.release()

    def __enter__(self):
        raise TypeError("an rcstore.aio.Ref is released by 'async with', not 'with'")

    def __repr__(self):
        return f"<rcstore.aio.Ref {self._id}{'' if self.held else ' (released)'}>"


class Pipeline(_client.Pipeline):
    """The blocking Pipeline for an asyncio Client: the same queueing
    methods (each returns None), ``async with`` or ``await execute()`` to
    send; the results in order in ``results``, a failed call's Error in its
    place; with raise_on_error the first is raised once every reply is in."""

    async def execute(self):
        reqs, special = self._take()
        c = self._client
        epoch_before = c._epoch
        if not len(reqs):
            await c.flush()
            results, failed, epoch, retried = [], 0, c._epoch, {}
        else:
            results, failed, epoch, retried = await c._run_pipeline(reqs)
        return self._finish(special, results, failed, epoch, retried, epoch_before)

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None:
            await self.execute()
        else:
            self._take()  # the block failed: send nothing

    def __enter__(self):
        raise TypeError("an rcstore.aio pipeline is sent by 'async with', not 'with'")


_client._signed(connect)
_client._signed(Client.__init__, method=True)
