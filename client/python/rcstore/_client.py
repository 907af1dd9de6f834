"""rcstore._client: the blocking Client, its Ref and Pipeline.

A ``Client`` is one connection (one session) to rcstored, or to the leader of
a cluster, with one method per protocol method. It re-makes a lost connection
at the next call, resuming its session when it has a lease, and follows
``NOT_LEADER``. One lock per Client serialises its calls, so threads may
share one. A ``Ref`` owns one hold; when Python's collector frees a Ref it
only queues its id (no I/O, no lock, nothing that could block or deadlock in
a finaliser) and the client gives the hold back at its next call, ``flush()``
or ``close()``. This module does the I/O; ``_wire`` does the bytes.
"""

import atexit
import collections
import inspect
import os
import select
import socket
import ssl
import threading
import time
import weakref

from . import _wire
from .errors import (
    ConnectionFailed,
    Error,
    NotFound,
    NotHeld,
    NotLeader,
    QuotaExceeded,
    SessionBusy,
    SessionExpired,
    Timeout,
    TooLarge,
)

__all__ = ["Client", "Ref", "Pipeline", "connect"]

DEFAULT_ADDRESS = "127.0.0.1:7373"
# A connect (with a TLS handshake) that gets no answer in this long is given
# up for the next address when there are several, as librcstore does.
CONNECT_TIMEOUT_MANY = 2.0
CONNECT_TIMEOUT_ONE = 10.0
# NOT_LEADER with no leader named (an election): back off, doubling.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 0.5
# Up to this many requests go out in one write before their replies are
# read; more are interleaved with reading (the server cuts off a client whose
# unread replies pass its max_output_bytes).
SMALL_BATCH = 64
# What one names/referrers page asks for (the server's most per request).
PAGE = 10000
# How often the background flusher looks for Refs Python has freed.
FLUSH_INTERVAL = 0.1
# What one data write is cut into on the interleaved path.
CHUNK = 256 * 1024
# Notifications kept for notifications() at most (rcstore.aio's too): one
# more fails the connection with ConnectionFailed. rcstored sends one per
# watch, so only a program with more watched objects freed and unread than
# this, or a hostile server, meets it (docs/python.md).
MAX_NOTIFICATIONS = 100_000


def _too_many_notes():
    return ConnectionFailed(
        f"the server sent more than {MAX_NOTIFICATIONS} notifications the program did not read "
        "(read them with notifications())"
    )


def _id(x):
    """An object id from an int or a Ref."""
    if type(x) is int:
        return x
    if isinstance(x, Ref):
        return x._id
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"an object id must be an int or a Ref, not {type(x).__name__}")
    return x


def _ids(xs):
    return [_id(x) for x in xs]


def _data(d):
    if isinstance(d, (bytes, str)):
        return d
    if isinstance(d, (bytearray, memoryview)):
        return bytes(d)
    raise TypeError(f"data must be bytes or str, not {type(d).__name__}")


def _tuples(pairs):
    return [tuple(p) for p in pairs]


# ---- results turned into Python objects (client, result, epoch) -> value ----


def _as_ref(client, result, epoch):
    return client._make_ref(result, epoch)


def _as_pairs(client, result, epoch):
    return _tuples(result)


class _Api:
    """The protocol's methods, written once. Each builds its request and
    hands it to ``self._do(method, params, convert)``: the Client runs it
    now and returns the result, a Pipeline queues it. ``convert(client,
    result, epoch)`` turns the wire's result into the Python value."""

    def _do(self, method, params, convert=None):  # pragma: no cover
        """Run (or queue) the request; every method returns what this
        returns, so that rcstore.aio's _do, a coroutine, makes each of them
        awaitable."""
        raise NotImplementedError

    def _check_data(self, data):  # pragma: no cover
        return data

    # -- objects --
    def ping(self):
        """``"pong"``."""
        return self._do("ping", [])

    def create(self, data, refs=()):
        """Create an object (data: bytes or str; refs: ids or Refs); returns
        its id. This session holds it once: give that hold back with
        ``decref`` (``new`` gives a Ref that does it for you)."""
        refs = _ids(refs)
        d = self._check_data(_data(data))
        return self._do("create", [d, refs] if refs else [d])

    def new(self, data, refs=()):
        """Create an object and return a ``Ref`` owning its one hold."""
        refs = _ids(refs)
        d = self._check_data(_data(data))
        return self._do("create", [d, refs] if refs else [d], _as_ref)

    def get(self, id):
        """``{"id": int, "data": bytes, "refs": [int, ...], "refcount": int}``."""
        return self._do("get", [_id(id)])

    def set_data(self, id, data):
        return self._do("set_data", [_id(id), self._check_data(_data(data))])

    def set_refs(self, id, refs):
        return self._do("set_refs", [_id(id), _ids(refs)])

    def link(self, id, target):
        """Append target to id's refs; returns the new number of refs."""
        return self._do("link", [_id(id), _id(target)])

    def unlink(self, id, target):
        """Remove target's first occurrence from id's refs (``NotFound`` if
        absent); returns the new number of refs."""
        return self._do("unlink", [_id(id), _id(target)])

    def incref(self, id, n=1):
        """Add n holds of this session; returns its holds afterwards."""
        return self._do("incref", [_id(id)] if n == 1 else [_id(id), n])

    def decref(self, id, n=1):
        """Drop n holds of this session (``NotHeld`` if it has fewer);
        returns its holds afterwards. The object may be freed."""
        return self._do("decref", [_id(id)] if n == 1 else [_id(id), n])

    def stat(self, id):
        """``{"refcount", "holds", "names", "internal", "tokens",
        "data_bytes", "nrefs"}``."""
        return self._do("stat", [_id(id)])

    # -- names --
    def bind(self, name, id):
        return self._do("bind", [name, _id(id)])

    def unbind(self, name):
        return self._do("unbind", [name])

    def lookup(self, name, acquire=False):
        """The id bound to name; with acquire, this session also gains one
        hold (that it must decref: ``ref(name)`` gives a Ref instead)."""
        return self._do("lookup", [name, True] if acquire else [name])

    def names_page(self, prefix="", limit=PAGE, after=""):
        """One page of names: ``{"names": [(name, id), ...], "next": str or
        None}``; call again with ``after=next`` until next is None."""

        def conv(client, r, epoch):
            return {"names": _tuples(r["names"]), "next": r.get("next")}

        return self._do("names", [prefix, limit, after], conv)

    def referrers_page(self, id, limit=PAGE, cursor=0):
        """One page of referrers: ``{"ids": [int, ...], "cursor": int}``;
        call again with the cursor until it is 0."""
        return self._do("referrers", [_id(id), limit, cursor])

    # -- sessions, hand-off --
    def watch(self, id):
        """Ask for the notification ``("freed", [id, reason])`` when the
        object is freed (read it with ``notifications()``)."""
        return self._do("watch", [_id(id)])

    def release_all(self):
        """Release every hold of this session; returns how many. The Refs
        of the session stop owning anything (their release does nothing)."""
        return self._do("release_all", [])

    def share(self, id, ttl=None):
        """A one-use transfer token (bytes) holding one reference for ttl
        seconds (the server's default, 60, when None)."""
        return self._do("share", [_id(id)] if ttl is None else [_id(id), ttl])

    def claim(self, token):
        """Claim a share token: a ``Ref`` owning the hold it moved here."""
        return self._do("claim", [bytes(token)], _as_ref)

    def ref(self, target):
        """A ``Ref`` owning a new hold: target is an id (or a Ref: ``incref``)
        or a name (a ``lookup`` with acquire, in one atomic request)."""
        if isinstance(target, str):
            return self._do("lookup", [target, True], _as_ref)
        i = _id(target)

        def conv(client, r, epoch):
            return client._make_ref(i, epoch)

        return self._do("incref", [i], conv)

    # -- queries, administration --
    def why(self, id):
        """What keeps the object alive: ``{"root": "name"|"session"|"token"|
        "none"|"unknown", "path": [id, ..., id], ...}``."""
        return self._do("why", [_id(id)])

    def gc(self):
        """Run a full cycle collection: ``{"collected", "candidates",
        "examined", "duration_us"}``."""
        return self._do("gc", [])

    def stats(self):
        return self._do("stats", [])

    def save(self):
        """Write a snapshot now (a server with --data-dir):
        ``{"snapshot_bytes", "duration_ms"}``."""
        return self._do("save", [])

    def cluster(self):
        """The node's view of its cluster (SPEC section 9)."""
        return self._do("cluster", [])

    def cluster_add(self, id, raft_address, client_address):
        return self._do("cluster_add", [id, raft_address, client_address])

    def cluster_remove(self, id):
        return self._do("cluster_remove", [id])

    def cluster_transfer(self, id=None):
        return self._do("cluster_transfer", [] if id is None else [id])

    def slowlog(self, count=None):
        """The slow log, newest first (a list of maps)."""
        return self._do("slowlog", [] if count is None else [count])

    def slowlog_reset(self):
        return self._do("slowlog_reset", [])

    def debug_check(self):
        """The server's consistency check (``--debug-commands``): ``"ok"``."""
        return self._do("debug_check", [])

    def debug_digest(self):
        """A digest of the replicated state (``--debug-commands``)."""
        return self._do("debug_digest", [])

    def call(self, method, *params):
        """Any method by name, with its params as they go on the wire: for
        methods newer than this client."""
        return self._do(method, list(params))


class _Conn:
    """One open socket with its decoder and msgid counter."""

    __slots__ = ("sock", "address", "decoder", "msgid", "tls", "poller")

    def __init__(self, sock, address, tls):
        self.sock = sock
        self.address = address
        self.decoder = _wire.Decoder()
        self.msgid = 0
        self.tls = tls
        # Registered once: the check before each call is one poll(0).
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN)

    def next_msgid(self):
        self.msgid = self.msgid + 1 if self.msgid < _wire.MAX_MSGID else 1
        return self.msgid

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _poll(fds, write_fd=None, timeout=None):
    """The readable fds among fds (and whether write_fd is writable) within
    timeout seconds (None: no limit). poll, not select: fds past 1024."""
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    if write_fd is not None:
        p.register(write_fd, select.POLLOUT | (select.POLLIN if write_fd in fds else 0))
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    readable, writable = set(), False
    for fd, ev in p.poll(ms):
        if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
            readable.add(fd)
        if fd == write_fd and ev & (select.POLLOUT | select.POLLHUP | select.POLLERR):
            writable = True
    return readable, writable


def _tls_context(tls):
    """An SSLContext from connect's tls= (None: the system's CAs)."""
    if isinstance(tls, ssl.SSLContext):
        return tls, None
    opts = dict(tls or {})
    unknown = set(opts) - {"cafile", "certfile", "keyfile", "server_hostname", "insecure"}
    if unknown:
        raise ValueError(f"unknown tls options: {sorted(unknown)}")
    ctx = ssl.create_default_context(cafile=opts.get("cafile"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if opts.get("insecure"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.get("certfile"):
        ctx.load_cert_chain(opts["certfile"], opts.get("keyfile"))
    return ctx, opts.get("server_hostname")


class _ClientBase(_Api):
    """What the blocking Client and rcstore.aio's Client share, free of I/O:
    the options as given, the attributes the user reads, and the steps of
    hello and NOT_LEADER that only change the client's state. Each subclass
    does its own I/O around them (threads and sockets, or asyncio)."""

    _NAME = "rcstore.Client"  # for repr

    def _configure(
        self,
        address,
        *,
        ttl=None,
        auth=None,
        user=None,
        tls=None,
        client_name=None,
        timeout=None,
        failover_timeout=10.0,
        resume=None,
    ):
        """The options of connect() (docs/python.md), here once for both
        Clients and both connect()s, which pass them on as given."""
        self._addresses = _wire.parse_addresses(address)
        _wire.hello_params(ttl=ttl, auth=auth, user=user, client_name=client_name)  # checks types
        self._uses_tls = tls is not None or any(a.scheme == "tls" for a in self._addresses)
        self._tls_ctx, self._tls_hostname = _tls_context(tls) if self._uses_tls else (None, None)
        self._force_tls = tls is not None
        self._ttl = ttl if ttl else None
        self._auth = auth
        self._user = user
        self._client_name = client_name
        self.timeout = timeout
        self.failover_timeout = failover_timeout
        self._token = bytes(resume) if resume is not None else None
        self._conn = None
        self._next = 0  # index in _addresses of the next address to try
        self._closed = False
        self._epoch = 0  # which session Refs belong to; +1 per new session
        self._hello = {}
        self.reconnects = 0
        self._watched = set()
        # A client belongs to the process that made it: in a child of
        # os.fork() it never touches the socket it shares with the parent
        # (_after_fork_in_child sets _forked).
        self._pid = os.getpid()
        self._forked = False
        _all_clients.add(self)

    # ---- what the user may read ----
    @property
    def address(self):
        """The URL of the server in use (None while disconnected)."""
        c = self._conn
        return str(c.address) if c else None

    @property
    def session(self):
        """This client's session id (0 on a cluster follower)."""
        return self._hello.get("session")

    @property
    def resume_token(self):
        """The session's resume token (bytes) while it has a lease, else None."""
        return self._token

    @property
    def server_info(self):
        """The result of the last hello (a dict: server, session, limits...)."""
        return dict(self._hello)

    @property
    def limits(self):
        return dict(self._hello.get("limits") or {})

    @property
    def closed(self):
        return self._closed

    def __repr__(self):
        state = "closed" if self._closed else (self.address or "disconnected")
        return f"<{self._NAME} {state} session={self.session}>"

    def _check_data(self, data):
        lim = (self._hello.get("limits") or {}).get("max_data_bytes")
        n = len(data.encode() if isinstance(data, str) else data)
        if lim and n > lim:
            raise TooLarge(f"data of {n} bytes is over the server's max_data_bytes ({lim}); nothing was sent")
        return data

    def _check_open(self):
        if self._forked:
            raise ConnectionFailed(
                f"this client was made in process {self._pid}; a child process "
                f"(this is {os.getpid()}) must connect its own client"
            )
        if self._closed:
            raise ConnectionFailed("the client is closed")

    def _inherit(self):
        """In a child of os.fork(), right after it: this client is the
        parent's. The releases queued so far are dropped (the holds are the
        parent's), and from now on nothing is queued or sent: every call
        raises ConnectionFailed, close() only closes this process's copy
        of the file descriptors."""
        self._forked = True
        pending = getattr(self, "_pending", None)  # None: forked inside __init__
        if pending is not None:
            pending.clear()

    # ---- hello's and NOT_LEADER's state, without I/O ----
    def _keep_hello(self, result, ttl, auth, user, resume, client_name):
        """hello() answered: keep what was given, to replay after a reconnect."""
        if auth is not None:
            self._auth, self._user = auth, user
        if client_name is not None:
            self._client_name = client_name
        if ttl is not None:
            self._ttl = ttl or None
        if resume is not None and result.get("resumed"):
            self._epoch += 1  # another session: the Refs made so far are not its
        self._took_hello(result)

    def _replay_params(self):
        """(resume, params) of the hello a new connection sends: the kept
        options, resuming the session when it has a lease."""
        resume = self._token if self._ttl or self._token else None
        params = _wire.hello_params(
            ttl=self._ttl, auth=self._auth, user=self._user, resume=resume, client_name=self._client_name
        )
        return resume, params

    def _replay_expired(self, err):
        """The replayed hello's SessionExpired: the holds are gone. Say so
        to the call that needed them, and start a new session at the next
        one (never silently now). Returns the error to raise."""
        self._token = None
        self._epoch += 1
        return SessionExpired(err.message + " (the session's holds are gone; the next call starts a new session)")

    def _replayed(self, result):
        """The replayed hello's result: a session not resumed is a new one."""
        first = not self._hello
        if not result.get("resumed") and not first:
            self._epoch += 1  # a new session: the old one's Refs own nothing
        self._took_hello(result)
        if not first:
            self.reconnects += 1

    def _took_hello(self, result):
        self._hello = result
        # A lease (hello's ttl, as granted) makes the token worth keeping.
        self._token = bytes(result.get("token") or b"") or None if result.get("ttl") else None

    def _aim_at(self, leader):
        """Make the leader a NOT_LEADER named (an address) the next to try;
        an address that does not parse changes nothing."""
        try:
            [a] = _wire.parse_addresses(leader)
        except ValueError:
            return
        if self._uses_tls and a.scheme == "tcp":
            a = _wire.Address("tls", a.host, a.port)  # never from TLS into plaintext
        if a not in self._addresses:
            self._addresses.append(a)
        self._next = self._addresses.index(a)


class Client(_ClientBase):
    """A connection to rcstored (or a cluster) and its session. Use
    ``rcstore.connect(...)``; see docs/python.md.

    Keyword options beyond SPEC section 11's: ``client_name`` (shown in the
    server's session list), ``timeout`` (seconds one call may wait for its
    reply; None: no limit), ``failover_timeout`` (seconds a call keeps
    following NOT_LEADER; default 10, as librcstore), ``resume`` (a resume
    token from another Client's ``resume_token``: take that session over).
    """

    def __init__(self, address=DEFAULT_ADDRESS, **options):
        self._configure(address, **options)
        self._lock = threading.RLock()
        self._packer = _wire.request_packer()  # used under the lock only
        # Filled from finalisers and other threads without a lock:
        # deque.append and popleft are atomic in CPython.
        self._pending = collections.deque()  # (id, epoch) of freed Refs
        self._notes = collections.deque()  # (method, params)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._waiters = 0
        try:
            with self._lock:
                self._connect(time.monotonic() + self.failover_timeout)
        except BaseException:
            self._closed = True
            self._wake_r.close()
            self._wake_w.close()
            raise
        _open_clients.add(self)
        _start_flusher()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the protocol ----
    def _do(self, method, params, convert=None):
        with self._lock:
            epoch_before = self._epoch
            [(err, result, epoch)] = self._run([(method, params)], follow=True)
            if err is not None:
                raise err
            if method == "watch":
                self._watched.add(params[0])
            elif method == "release_all" and epoch == epoch_before:
                # Every hold is gone: the session's Refs own nothing now.
                self._epoch += 1
            elif method == "cluster_transfer":
                # This node is no longer the leader and restarts itself,
                # closing its connections: leave it now, so that the next
                # call connects (and follows NOT_LEADER) rather than dying
                # with the old connection.
                self._move(None)
            return convert(self, result, epoch) if convert else result

    def _make_ref(self, id, epoch):
        return Ref(self, id, epoch)

    def hello(self, ttl=None, auth=None, user=None, resume=None, client_name=None):
        """Send hello again with these options (see SPEC section 3): a ttl
        gives the session a lease (and a resume token), a resume takes a
        leased session over. What is given is kept and replayed after a
        reconnect. Returns hello's result."""
        params = _wire.hello_params(ttl=ttl, auth=auth, user=user, resume=resume, client_name=client_name)
        with self._lock:
            [(err, result, _)] = self._run([("hello", params)], follow=True)
            if err is not None:
                raise err
            self._keep_hello(result, ttl, auth, user, resume, client_name)
            return result

    def names(self, prefix="", limit=None):
        """``[(name, id), ...]`` of the names starting with prefix, sorted.
        Without limit, every one: paged by ``names_page`` (not atomic: a
        name bound or unbound meanwhile may or may not be listed)."""
        if limit is not None:
            return self._do("names", [prefix, limit], _as_pairs)
        out, after = [], ""
        while True:
            page = self.names_page(prefix, PAGE, after)
            out += page["names"]
            if page["next"] is None:
                return out
            after = page["next"]

    def referrers(self, id, limit=None):
        """Ids of the objects whose refs contain id. Without limit, every
        one, paged by the server's cursor when one request cannot say."""
        if limit is not None:
            return self._do("referrers", [_id(id), limit])
        try:
            return self._do("referrers", [_id(id)])
        except QuotaExceeded:
            pass
        out, cursor = [], 0
        while True:
            page = self.referrers_page(id, PAGE, cursor)
            out += page["ids"]
            cursor = page["cursor"]
            if not cursor:
                return out

    def pipeline(self, raise_on_error=True):
        """A ``Pipeline``: queue calls, send them in one go at the end of the
        ``with`` block (or ``execute()``); results in order."""
        return Pipeline(self, raise_on_error)

    def notifications(self, timeout=None):
        """An iterator of the server's notifications, ``(method, params)``
        such as ``("freed", [id, "refcount"])``, in arrival order. Each
        ``next`` waits at most timeout seconds (None: no limit) and raises
        ``rcstore.Timeout`` when none came (the iterator stays usable).
        Notifications that arrived during other calls are kept for it, and
        other threads' calls run while it waits."""
        return _Notifications(self, timeout)

    def flush(self):
        """Give back now the holds of the Refs Python's collector has freed
        (every call does this first; so do close() and interpreter exit)."""
        with self._lock:
            self._check_open()
            if self._pending:
                self._run([], follow=True)

    def close(self):
        """Send the pending releases (if the connection works) and close.
        Without a lease the server then releases every hold of the session;
        with one, the session stays, detached, until its lease ends. Calls
        after close raise ``ConnectionFailed``; close twice is harmless."""
        with self._lock:
            if self._closed:
                return
            if self._forked:
                # The parent's connection: close this process's copy of the
                # fd (never shutdown(), never a byte sent, no wake-up).
                self._closed = True
                self._drop_conn()
                return
            try:
                if self._pending and self._conn is not None:
                    self._run([], follow=False, reconnect=False)
            except Error:
                pass
            self._closed = True
            self._drop_conn()
        _open_clients.discard(self)
        self._wake()  # a thread in notifications() sees the close

    def __del__(self):
        # The wake-up pair only: it may still be polled by a notifications()
        # that close() woke, so it lives as long as the client.
        for s in (getattr(self, "_wake_r", None), getattr(self, "_wake_w", None)):
            if s is not None:
                s.close()

    def _inherit(self):
        super()._inherit()
        # The lock may have been held by another thread of the parent at
        # the fork: the child's copy would never be released.
        self._lock = threading.RLock()

    # ---- the machinery ----
    def _drop_conn(self):
        c, self._conn = self._conn, None
        if c is not None:
            c.close()

    def _take_pending(self):
        """The decref requests for freed Refs of the current session (a Ref
        of a session that is gone owns nothing any more)."""
        out = []
        while self._pending:
            try:
                i, epoch = self._pending.popleft()
            except IndexError:
                break
            if epoch == self._epoch:
                out.append(("decref", [i]))
        return out

    def _run(self, requests, follow, reconnect=True):
        """Send requests (a list of (method, params)) after the pending
        releases and read their replies, following NOT_LEADER when follow.
        Returns [(error or None, result, epoch)] in order. The lock is held.
        A connection lost with requests in flight raises ConnectionFailed:
        they may or may not have been done, so none is sent twice (releases
        in flight included: a release done twice could take another Ref's
        hold; one lost is given back by the session's end)."""
        self._check_open()
        if len(requests) == 1 and not self._pending and self._conn is not None and self._alive():
            # The unpipelined call's path: nothing to give back first, the
            # connection up. A NOT_LEADER goes on below (asked once more
            # there, then it moves to the leader).
            epoch = self._epoch
            try:
                [(err, res)] = self._exchange(requests)
            except (ConnectionFailed, Timeout):
                self._drop_conn()
                raise
            if not (follow and isinstance(err, NotLeader)):
                return [(err, res, epoch)]
        deadline = time.monotonic() + (self.failover_timeout or 0)
        results = [None] * len(requests)
        todo = list(range(len(requests)))
        backoff = BACKOFF_FIRST
        while True:
            if self._conn is not None and not self._alive():
                self._drop_conn()
            if self._conn is None:
                if not reconnect:
                    raise ConnectionFailed("not connected")
                self._connect(deadline)
            epoch = self._epoch
            pending = self._take_pending()
            batch = pending + [requests[k] for k in todo]
            try:
                replies = self._exchange(batch)
            except (ConnectionFailed, Timeout):
                self._drop_conn()
                if not todo:
                    return results
                raise
            refused = None  # a NOT_LEADER: nothing was done, so all of it again on the leader
            for (_, params), (err, _) in zip(pending, replies):
                if isinstance(err, NotLeader):
                    self._pending.append((params[0], epoch))
                    refused = refused or err
            replies = replies[len(pending) :]
            retry = []
            for k, (err, res) in zip(todo, replies):
                results[k] = (err, res, epoch)
                if isinstance(err, NotLeader):
                    retry.append(k)
                    refused = refused or err
            if refused is None or not follow or time.monotonic() >= deadline:
                return results
            self._move(refused.leader)
            if not refused.leader:
                time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, BACKOFF_MAX)
            todo = retry

    def _move(self, leader):
        """Leave this node for the leader it named (or the next address)."""
        self._drop_conn()
        if leader:
            self._aim_at(leader)

    def _alive(self):
        """False if the server closed the idle connection (a restart, a
        leader stepping down, --idle-timeout). Reads what waits without
        blocking; notifications go to the queue."""
        c = self._conn
        try:
            r = c.poller.poll(0)
        except (OSError, ValueError):
            return False
        if not r and not (c.tls and c.sock.pending()):
            return True
        try:
            c.sock.settimeout(0)
            data = c.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError):
            return True
        except OSError:
            return False
        finally:
            try:
                c.sock.settimeout(self.timeout)
            except OSError:
                pass
        if not data:
            return False
        try:
            msgs = c.decoder.feed(data)
        except ConnectionFailed:
            return False
        for m in msgs:
            if m[0] != "notification":
                return False  # a reply nobody asked for: not a stream to trust
            try:
                self._on_note(m[1], m[2])
            except ConnectionFailed:
                self._drop_conn()
                raise
        return True

    def _exchange(self, batch):
        """Send batch on the connection and return its [(error, result)]."""
        c = self._conn
        if not batch:
            return []
        first = c.msgid + 1 if c.msgid < _wire.MAX_MSGID else 1
        if len(batch) == 1:
            payload = _wire.encode_request(c.next_msgid(), batch[0][0], batch[0][1], self._packer)
            if self.timeout is None:
                return [self._exchange_one(payload, first)]
        else:
            payload = b"".join([_wire.encode_request(c.next_msgid(), m, p, self._packer) for m, p in batch])
        results, failed = self._exchange_chunks([(payload, len(batch))], first)
        if not failed:
            return [(None, r) for r in results]
        return [(r, None) if isinstance(r, Error) else (None, r) for r in results]

    def _exchange_one(self, payload, msgid):
        """One request without a timeout, the unpipelined call's path:
        sendall, then recv until its reply (notifications on the way go to
        the queue). Returns (error, result). _exchange_chunks does the same
        with more bookkeeping; this keeps a round trip within a few
        microseconds of a bare socket's (docs/performance.md)."""
        c = self._conn
        sock = c.sock
        try:
            sock.sendall(payload)
            while True:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionFailed(f"{c.address} closed the connection with a reply owed")
                reply = None
                for m in c.decoder.feed(data):
                    if m[0] == "notification":
                        self._on_note(m[1], m[2])
                    elif reply is None and m[1] == msgid:
                        reply = (m[2], m[3])
                    else:
                        raise ConnectionFailed(f"{c.address} answered msgid {m[1]}, expected {msgid}")
                if reply is not None:
                    return reply
        except Error:
            raise
        except ssl.SSLError as e:
            raise ConnectionFailed(f"{c.address}: TLS: {e}") from None
        except OSError as e:
            raise ConnectionFailed(f"{c.address}: {e.strerror or e}") from None

    def _exchange_chunks(self, chunks, want):
        """Send chunks ([(bytes, count)]: requests whose msgids go on from
        want) and return (results, failed): the results in order, an Error
        in a failed request's place, and how many failed. Up to
        SMALL_BATCH requests go in one write before reading; more are
        written while the replies are read, so neither side's buffers fill."""
        c = self._conn
        n = sum(k for _, k in chunks)
        out = []
        failed = 0
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        sock = c.sock
        fd = sock.fileno()
        small = n <= SMALL_BATCH
        try:
            if small:
                sock.sendall(b"".join(b for b, _ in chunks))
                view = None
            else:
                sock.settimeout(0)
                todo = collections.deque(b for b, _ in chunks)
                view = memoryview(todo.popleft())
            while len(out) < n:
                if view is not None:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise Timeout(f"no reply from {c.address} within {self.timeout} s")
                    r, w = _poll([fd], fd, left)
                    if w:
                        try:
                            view = view[sock.send(view[:CHUNK]) :]
                        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                            pass
                        if not view:
                            view = memoryview(todo.popleft()) if todo else None
                            if view is None:
                                sock.settimeout(self.timeout)  # only reading from here
                    if not r and not (c.tls and sock.pending()):
                        continue
                    try:
                        data = sock.recv(CHUNK)
                    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                else:
                    if deadline is not None:
                        # Checked at every turn: a server that streams
                        # notifications (and never the reply) keeps each
                        # recv short of its own timeout.
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise Timeout(f"no reply from {c.address} within {self.timeout} s")
                        sock.settimeout(left)
                    data = sock.recv(CHUNK)
                if not data:
                    raise ConnectionFailed(f"{c.address} closed the connection with {n - len(out)} replies owed")
                results, bad, notes, want = c.decoder.feed_results(data, want)
                out += results
                failed += bad
                for method, params in notes:
                    self._on_note(method, params)
        except Error:
            raise
        except socket.timeout:
            raise Timeout(f"no reply from {c.address} within {self.timeout} s") from None
        except ssl.SSLError as e:
            raise ConnectionFailed(f"{c.address}: TLS: {e}") from None
        except OSError as e:
            raise ConnectionFailed(f"{c.address}: {e.strerror or e}") from None
        finally:
            if deadline is not None or not small:
                try:
                    sock.settimeout(self.timeout)
                except OSError:
                    pass
        return out, failed

    def _run_pipeline(self, reqs):
        """A Pipeline's requests (a _wire.Requests, encoded as queued): the
        pending releases go first, in their own exchange, then the chunks.
        Returns (results, failed, epoch, retried): results in order with an
        Error in a failed call's place, how many failed, the session epoch
        they were done in, and for the calls sent again after NOT_LEADER
        (through _run, which moves to the leader) {index: epoch}. The lock
        is held."""
        self._check_open()
        if self._conn is not None and not self._alive():
            self._drop_conn()
        if self._conn is None:
            self._connect(time.monotonic() + (self.failover_timeout or 0))
        if self._pending:
            self._run([], follow=True)
        epoch = self._epoch
        try:
            results, failed = self._exchange_chunks(reqs.chunks(), 1)
        except (ConnectionFailed, Timeout):
            self._drop_conn()
            raise
        retried = {}
        if failed:
            todo = [k for k, r in enumerate(results) if isinstance(r, NotLeader)]
            if todo:
                for k, (err, res, e) in zip(todo, self._run(reqs.calls(todo), follow=True)):
                    results[k] = err if err is not None else res
                    retried[k] = e
                failed = sum(isinstance(r, Error) for r in results)
        return results, failed, epoch, retried

    def _on_note(self, method, params):
        if len(self._notes) >= MAX_NOTIFICATIONS:
            raise _too_many_notes()
        if method == "freed" and params:
            self._watched.discard(params[0])
        self._notes.append((method, params))
        if self._waiters:
            self._wake()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _open_socket(self, a, timeout):
        if a.scheme == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(timeout)
                s.connect(a.path)
            except BaseException:
                s.close()
                raise
            return s, False
        s = socket.create_connection((a.host, a.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if a.scheme == "tls" or self._force_tls:
            try:
                s = self._tls_ctx.wrap_socket(s, server_hostname=self._tls_hostname or a.host)
            except BaseException:
                s.close()
                raise
            return s, True
        return s, False

    def _connect(self, deadline):
        """Connect to the first address that serves (from self._next on) and
        replay hello. Raises ConnectionFailed when every address refused (a
        round of them), NotLeader/SessionBusy past the deadline, and what
        hello raised (AuthFailed, SessionExpired, ...)."""
        n = len(self._addresses)
        timeout = CONNECT_TIMEOUT_ONE if n == 1 else CONNECT_TIMEOUT_MANY
        backoff = BACKOFF_FIRST
        errors = []
        tried = 0
        while True:
            a = self._addresses[self._next % n]
            try:
                sock, tls = self._open_socket(a, timeout)
            except (OSError, ssl.SSLError) as e:
                errors.append(f"{a}: {getattr(e, 'strerror', None) or e}")
                self._next = (self._next + 1) % n
                tried += 1
                if tried % n == 0:
                    if n == 1 or time.monotonic() >= deadline:
                        raise ConnectionFailed("cannot connect: " + "; ".join(errors[-n:])) from None
                    time.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            sock.settimeout(self.timeout)
            self._conn = _Conn(sock, a, tls)
            try:
                self._replay_hello(timeout)
                return
            except (NotLeader, SessionBusy) as e:
                self._drop_conn()
                if time.monotonic() >= deadline:
                    raise
                leader = getattr(e, "leader", None)
                if leader:
                    self._move(leader)
                else:
                    self._next = (self._next + 1) % n
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except (ConnectionFailed, Timeout) as e:
                self._drop_conn()
                errors.append(str(e))
                self._next = (self._next + 1) % n
                tried += 1
                if tried % n == 0 and (n == 1 or time.monotonic() >= deadline):
                    raise
            except BaseException:
                self._drop_conn()
                raise

    def _replay_hello(self, limit):
        resume, params = self._replay_params()
        # hello is part of connecting: a node that takes the connection but
        # never answers is given up after the connect limit (for the next
        # address), like one that refuses it, whatever self.timeout is.
        timeout = self.timeout
        self.timeout = limit if timeout is None else min(timeout, limit)
        try:
            self._conn.sock.settimeout(self.timeout)
            [(err, result)] = self._exchange([("hello", params)])
        finally:
            self.timeout = timeout
            if self._conn is not None:
                try:
                    self._conn.sock.settimeout(timeout)
                except OSError:
                    pass
        if isinstance(err, SessionExpired) and resume is not None:
            self._drop_conn()
            raise self._replay_expired(err)
        if err is not None:
            raise err
        self._replayed(result)
        self._conn.decoder.set_limit(result.get("limits"))
        self._rewatch()

    def _rewatch(self):
        """Watches belong to a connection: ask again for each after a
        reconnect. An object freed meanwhile gets its notification now, with
        the reason "unknown" (it went while nobody was listening)."""
        if not self._watched:
            return
        ids = sorted(self._watched)
        replies = self._exchange([("watch", [i]) for i in ids])
        for i, (err, _) in zip(ids, replies):
            if isinstance(err, NotFound):
                self._on_note("freed", [i, "unknown"])

    def _next_note(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        lost = None  # with a lease: how long reconnecting may go on
        backoff = BACKOFF_FIRST
        while True:
            try:
                return self._notes.popleft()
            except IndexError:
                pass
            with self._lock:
                self._check_open()
                if self._conn is None or not self._alive():  # reads what waits
                    self._drop_conn()
                    try:
                        self._run([], follow=True)  # reconnect (and watch again)
                        lost, backoff = None, BACKOFF_FIRST
                        continue
                    except ConnectionFailed:
                        # A lease: the server may be restarting; go on
                        # trying for failover_timeout, as aio does.
                        if not self._ttl:
                            raise
                        lost = lost or time.monotonic() + (self.failover_timeout or 0)
                        if time.monotonic() >= lost:
                            raise
                        c = None
                else:
                    if self._notes:
                        continue
                    lost, c = None, self._conn
                    self._waiters += 1
            if c is None:  # reconnecting with a lease: wait a little, outside the lock
                if deadline is not None and time.monotonic() >= deadline:
                    raise Timeout(f"no notification within {timeout} s")
                time.sleep(backoff if deadline is None else min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            try:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Timeout(f"no notification within {timeout} s")
                try:
                    r, _ = _poll([c.sock.fileno(), self._wake_r.fileno()], None, left)
                except (OSError, ValueError):
                    r = ()
                if self._wake_r.fileno() in r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except OSError:
                        pass
                if not r and deadline is not None and time.monotonic() >= deadline:
                    raise Timeout(f"no notification within {timeout} s")
            finally:
                with self._lock:
                    self._waiters -= 1
            # Readable: _alive() reads it under the lock at the next turn.

    def _background_flush(self):
        """The flusher thread's turn: send the pending releases if no call is
        running (a running call sends them itself) and the connection is up.
        Never reconnects and never follows a leader: that is for calls."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._pending and not self._closed and not self._forked and self._conn is not None:
                try:
                    self._run([], follow=False, reconnect=False)
                except Exception:
                    pass  # the next call reconnects and sends what is left
        finally:
            self._lock.release()

    def _at_exit(self):
        """Interpreter exit: send the pending releases if the connection is
        usable and no other thread is in a call, then close. Never waits for
        the lock, never reconnects."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._closed or self._forked:
                return
            if self._conn is not None and self._pending:
                self.timeout = 2.0 if self.timeout is None else min(self.timeout, 2.0)
                try:
                    self._run([], follow=False, reconnect=False)
                except Exception:
                    pass
            self._closed = True
            self._drop_conn()
        finally:
            self._lock.release()

    # Refs call these.
    def _release(self, ref):
        """Ref.release: the hold goes through the pending queue, so that a
        release and the session's end (or a reconnect) never race."""
        with self._lock:
            if ref._released:
                return
            ref._released = True
            if ref._epoch != self._epoch or self._closed:
                return
            self._pending.append((ref._id, ref._epoch))
            self._run([], follow=True)


class _Notifications:
    __slots__ = ("_client", "_timeout")

    def __init__(self, client, timeout):
        self._client = client
        self._timeout = timeout

    def __iter__(self):
        return self

    def __next__(self):
        return self._client._next_note(self._timeout)


class Ref:
    """One hold on an object, owned by this Python object: the rcstore
    analogue of a strong reference. ``release()`` (or the end of a ``with``
    block) gives it back now; a Ref that Python's collector frees gives it
    back later, from its client's own thread. A Ref cannot be pickled: hand
    an object to another process with ``share()`` and ``Client.claim``."""

    __slots__ = ("_client", "_id", "_epoch", "_released", "__weakref__")

    def __init__(self, client, id, epoch):
        self._client = client
        self._id = id
        self._epoch = epoch
        self._released = False

    @property
    def id(self):
        return self._id

    @property
    def client(self):
        return self._client

    @property
    def held(self):
        """True while this Ref owns its hold: not released, and its session
        is still the client's (a session lost without a lease, or a
        release_all, took every hold)."""
        return not self._released and self._epoch == self._client._epoch and not self._client._closed

    def get(self):
        return self._client.get(self._id)

    def stat(self):
        return self._client.stat(self._id)

    def why(self):
        return self._client.why(self._id)

    def link(self, other):
        """Append other (a Ref or an id) to this object's refs."""
        return self._client.link(self._id, other)

    def unlink(self, other):
        return self._client.unlink(self._id, other)

    def share(self, ttl=None):
        return self._client.share(self._id, ttl)

    def release(self):
        """Give the hold back now. Twice is harmless. If the connection is
        down the release waits for the next call that has one."""
        self._client._release(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        # A finaliser: a lock-free append and nothing else (it may run in
        # any thread, inside another call of this client, or at exit).
        try:
            if not self._released:
                self._released = True
                c = self._client
                if not c._forked:  # a child of fork: the parent's hold
                    c._pending.append((self._id, self._epoch))
        except AttributeError:
            pass  # __init__ did not finish

    def __reduce__(self):
        raise TypeError(
            "a Ref is one session's hold and cannot be pickled: pass ref.share() "
            "to the other process and Client.claim(token) there"
        )

    def __repr__(self):
        return f"<rcstore.Ref {self._id}{'' if self.held else ' (released)'}>"


class Pipeline(_Api):
    """Calls queued and sent in one go. Each method of the Client queues a
    call (and returns None); ``execute()`` (run by the end of a ``with``
    block) sends them, reads every reply, and returns the results in order.
    A call that failed has its ``rcstore.Error`` in its place; with
    ``raise_on_error`` (the default) execute raises the first of them once
    every reply is in. ``results`` keeps the last list. Calls are encoded
    as they are queued (``_wire.Requests``): a call whose parameters cannot
    be encoded raises TypeError there, and is not queued."""

    # Calls whose result needs more than the wire's value, besides those
    # with a convert.
    _SPECIAL = frozenset(("watch", "release_all"))

    def __init__(self, client, raise_on_error=True):
        self._client = client
        self._take()
        self.raise_on_error = raise_on_error
        self.results = None

    # _do(method, params, convert=None), the queueing, is the bound add of
    # the Requests being filled, set by _take: one Python call less per
    # queued call than a method calling it. Calls with a convert, and watch
    # and release_all, are kept in its ``kept`` for _finish.

    def _check_data(self, data):
        return self._client._check_data(data)

    def __len__(self):
        return len(self._reqs)

    def _take(self):
        """The calls queued so far (a Requests and its kept calls); the
        pipeline starts an empty one."""
        reqs = getattr(self, "_reqs", None)
        self._reqs = _wire.Requests(self._SPECIAL)
        self._do = self._reqs.add
        return reqs, reqs.kept if reqs is not None else []

    def _finish(self, special, results, failed, epoch, retried, epoch_before):
        """Turn the wire's results into the calls' values (Refs, ...) and
        note watches and release_all on the client; raise as asked."""
        c = self._client
        cleared = False
        for i, method, params, convert in special:
            r = results[i]
            if isinstance(r, Error):
                continue
            if method == "watch":
                c._watched.add(params[0])
            elif method == "release_all":
                cleared = True
            if convert is not None:
                results[i] = convert(c, r, retried.get(i, epoch))
        if cleared and c._epoch == epoch_before:
            c._epoch += 1  # every hold is gone: the session's Refs own nothing
        self.results = results
        if failed and self.raise_on_error:
            for r in results:
                if isinstance(r, Error):
                    raise r
        return results

    def execute(self):
        reqs, special = self._take()
        c = self._client
        with c._lock:
            epoch_before = c._epoch
            if not len(reqs):
                c._run([], follow=True)  # what a call does first: give back freed Refs' holds
                results, failed, epoch, retried = [], 0, c._epoch, {}
            else:
                results, failed, epoch, retried = c._run_pipeline(reqs)
            return self._finish(special, results, failed, epoch, retried, epoch_before)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.execute()
        else:
            self._take()  # the block failed: send nothing


def _signed(f, method=False):
    """Give f, which takes (address, **options), the option names of
    _ClientBase._configure as its signature, so that help() and
    inspect.signature show them; method: f takes self first."""
    sig = inspect.signature(_ClientBase._configure)
    params = list(sig.parameters.values())
    params[1] = params[1].replace(default=DEFAULT_ADDRESS)
    f.__signature__ = sig.replace(parameters=params if method else params[1:])
    return f


@_signed
def connect(address=DEFAULT_ADDRESS, **options):
    """Connect to rcstored and say hello: a ``Client``. address: a
    ``"host:port"``, ``tcp://``, ``tls://`` or ``unix:///path`` URL, or a
    list (or comma-separated str) of them for a cluster. ttl: a lease of
    that many seconds, so a lost connection is re-made and the session
    resumed. auth, user: the login. tls: an ``ssl.SSLContext``, or a dict
    with ``cafile``, ``certfile``, ``keyfile``, ``server_hostname``,
    ``insecure``; given, every tcp address is dialled with TLS. The other
    options are the Client's (client_name, timeout, failover_timeout,
    resume)."""
    return Client(address, **options)


_signed(Client.__init__, method=True)


# Open clients, for the exit flush; weak, so that this keeps none alive.
_open_clients = weakref.WeakSet()
_flusher = None
_flusher_lock = threading.Lock()
# Every client made in this process, blocking or asyncio (weak), for
# _after_fork_in_child.
_all_clients = weakref.WeakSet()


def _after_fork_in_child():
    """os.fork()'s child: every client is its parent's. None is flushed at
    exit or by a flusher, none sends again (Client._inherit); the
    flusher's state starts afresh (its thread is not in the child, and its
    lock may have been held at the fork)."""
    global _flusher, _flusher_lock
    _flusher = None
    _flusher_lock = threading.Lock()
    _open_clients.clear()
    for c in list(_all_clients):
        c._inherit()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _flush_loop():
    """The background flusher: one daemon thread for every Client of the
    process, sending the releases of freed Refs of idle clients within
    about FLUSH_INTERVAL. It ends when no client is open (the next connect
    starts it again)."""
    global _flusher
    while True:
        time.sleep(FLUSH_INTERVAL)
        clients = list(_open_clients)
        if not clients:
            with _flusher_lock:
                if not _open_clients:
                    _flusher = None
                    return
            continue
        for c in clients:
            if c._pending:
                c._background_flush()
        clients = c = None  # keep none alive while sleeping


def _start_flusher():
    global _flusher
    with _flusher_lock:
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flush_loop, name="rcstore-flush", daemon=True)
            _flusher.start()


def _flush_at_exit():
    for c in list(_open_clients):
        c._at_exit()


atexit.register(_flush_at_exit)
