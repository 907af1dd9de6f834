"""rcstore._wire: the protocol without I/O, shared by the sync client and
rcstore.aio.

It turns requests into bytes (``encode_request``), bytes from the server into
messages (``Decoder``), addresses into ``Address`` values
(``parse_addresses``) and hello's options into its parameters
(``hello_params``). It never touches a socket, a clock or a lock: the callers
own those.
"""

import dataclasses
import ipaddress
from operator import itemgetter

import msgpack

from .errors import ConnectionFailed, error_from_wire

__all__ = [
    "DEFAULT_PORT",
    "REQUEST",
    "RESPONSE",
    "NOTIFICATION",
    "MAX_MSGID",
    "Address",
    "Decoder",
    "Requests",
    "encode_request",
    "request_packer",
    "parse_addresses",
    "hello_params",
]

DEFAULT_PORT = 7373
REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2
# msgids are uint32 on the wire; callers wrap to 1 after this.
MAX_MSGID = 2**32 - 1
# What the decoder buffers for one message before it gives up on the stream.
# Before hello, and for a server whose max_message_bytes is small, it is
# MIN_BUFFER_BYTES (room for the largest replies, names or why pages, far
# above a default server's 4 MiB requests); after hello it is twice the
# server's max_message_bytes plus 1 MiB when that is more (a get's reply is
# at most a request's size: data, refs and a few keys), never more than
# MAX_BUFFER_BYTES. A hostile server cannot make the client hold more.
MIN_BUFFER_BYTES = 64 * 1024 * 1024
MAX_BUFFER_BYTES = 256 * 1024 * 1024


def buffer_limit(limits):
    """What a Decoder may buffer for a server whose hello gave limits."""
    mmb = limits.get("max_message_bytes") if isinstance(limits, dict) else None
    if isinstance(mmb, bool) or not isinstance(mmb, int) or mmb <= 0:
        return MIN_BUFFER_BYTES
    return min(MAX_BUFFER_BYTES, max(MIN_BUFFER_BYTES, 2 * mmb + (1 << 20)))


def _not_msgpack(e):
    what = str(e) or {
        msgpack.ExtraData: "extra bytes after a message",
        msgpack.FormatError: "a byte that starts no msgpack value (such as 0xc1)",
        msgpack.StackError: "values nested too deep",
    }.get(type(e), type(e).__name__)
    return ConnectionFailed(f"the server sent bytes that are not msgpack: {what}")

_SCHEMES = ("tcp", "tls", "unix")


@dataclasses.dataclass(frozen=True)
class Address:
    """One server address. ``scheme`` is ``"tcp"``, ``"tls"`` or ``"unix"``;
    ``host`` and ``port`` are set for tcp and tls (``host`` without IPv6
    brackets), ``path`` for unix. ``str()`` gives its URL."""

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self):
        if self.scheme == "unix":
            return "unix://" + self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _parse_one(text):
    s = text.strip()
    if not s:
        raise ValueError("an empty address")
    scheme = "tcp"
    if "://" in s:
        scheme, s = s.split("://", 1)
        scheme = scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(f"{text!r}: unknown scheme {scheme!r} (tcp://, tls:// or unix://)")
    if scheme == "unix":
        if not s:
            raise ValueError(f"{text!r}: a unix address needs a path (unix:///run/rcstore.sock)")
        return Address("unix", path=s)
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: unclosed [ in an IPv6 address")
        host, rest = s[1:end], s[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected :PORT after ]")
        port_text = rest[1:] if rest else ""
    elif s.count(":") > 1:
        # A bare IPv6 address (no port): "::1".
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            raise ValueError(f"{text!r}: write an IPv6 address with a port as [addr]:port") from None
        host, port_text = s, ""
    elif ":" in s:
        host, port_text = s.rsplit(":", 1)
    else:
        host, port_text = s, ""
    if not host:
        raise ValueError(f"{text!r}: no host")
    if port_text == "":
        port = DEFAULT_PORT
    else:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r}: the port must be 1 to 65535")
        port = int(port_text)
    return Address(scheme, host=host, port=port)


def parse_addresses(address):
    """The ``Address`` list of address: an ``Address``; a str (one address,
    or several separated by commas); a ``(host, port)`` tuple; or a list of
    any of these. ``unix:///path``, ``tcp://host:port``, ``tls://host:port``;
    a bare ``host:port`` or ``host`` is tcp, the port defaulting to 7373;
    IPv6 hosts go in brackets (``[::1]:7373``). Raises ValueError for an
    address that cannot be parsed, or for none at all."""
    out = []

    def add(a):
        if isinstance(a, Address):
            out.append(a)
        elif isinstance(a, str):
            for part in a.split(","):
                out.append(_parse_one(part))
        elif isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], str):
            out.append(_parse_one(f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"))
        else:
            raise ValueError(f"not an address: {a!r}")

    if isinstance(address, (list,)) or (isinstance(address, tuple) and address and not isinstance(address[0], str)):
        for a in address:
            add(a)
    else:
        add(address)
    if not out:
        raise ValueError("no address given")
    return out


def encode_request(msgid, method, params, packer=None):
    """The bytes of the request ``[0, msgid, method, params]``. bytes go as
    msgpack bin, str as str. msgid must fit in a uint32. packer: one from
    ``request_packer()`` to reuse (it is not thread-safe: one user at a
    time); without it each request makes its own (about half a
    microsecond here, a tenth of an unpipelined call's own CPU)."""
    if packer is None:
        return msgpack.packb([REQUEST, msgid, method, list(params)], use_bin_type=True)
    return packer.pack([REQUEST, msgid, method, list(params)])


def request_packer():
    """A msgpack Packer as encode_request packs, to pass it again and again."""
    return msgpack.Packer(use_bin_type=True)


class Requests:
    """Requests encoded as they are queued: a pipeline's. ``add(method,
    params)`` packs ``[0, msgid, method, params]`` at once and returns the
    call's index; msgids are 1, 2, ... in the order added (only requests in
    flight on one connection need distinct msgids, a pipeline's run is sent
    alone, and its replies are matched in order with these msgids checked).
    ``chunks()`` gives the bytes in pieces of at most CHUNK_REQUESTS
    requests, what a sender writes at a time; ``calls(indexes)`` decodes
    chosen calls back (to send them again after NOT_LEADER). Packing as
    calls come keeps no Python object per call alive: a pipeline of a
    million calls holds its bytes, not a million lists for the garbage
    collector to walk (docs/performance.md, "Python client")."""

    CHUNK_REQUESTS = 1024

    __slots__ = ("_packer", "_pack", "_done", "_cur", "n", "_keep", "kept")

    def __init__(self, keep=()):
        self._packer = msgpack.Packer(autoreset=False, use_bin_type=True)
        self._pack = self._packer.pack
        self._done = []  # bytes of full chunks
        self._cur = []  # (method, params) of the calls in the packer now
        self.n = 0
        self._keep = frozenset(keep)
        # (index, method, params, extra) of the calls given an extra or of
        # a method in keep: what a pipeline does more with than return the
        # wire's result (make a Ref, note a watch).
        self.kept = []

    def __len__(self):
        return self.n

    def add(self, method, params, extra=None):
        """Encode the call now; returns None (what a Pipeline's queueing
        methods return, this being their ``_do``). A call with an extra, or
        of a method in keep, is also kept in ``kept``. A call msgpack
        cannot encode raises (TypeError, ...) and is not queued."""
        cur = self._cur
        if len(cur) == self.CHUNK_REQUESTS:
            self._done.append(self._packer.bytes())
            self._packer.reset()
            cur = self._cur = []
        msgid = self.n + 1
        if msgid > MAX_MSGID:
            raise OverflowError(f"a pipeline takes at most {MAX_MSGID} calls")
        try:
            self._pack((REQUEST, msgid, method, params))
        except BaseException:
            # msgpack empties its whole buffer when a pack fails: put the
            # calls of this chunk back, so that only the bad one is lost.
            self._packer.reset()
            first = msgid - len(cur)
            for k, (m, p) in enumerate(cur):
                self._pack((REQUEST, first + k, m, p))
            raise
        cur.append((method, params))
        self.n = msgid
        if extra is not None or method in self._keep:
            self.kept.append((msgid - 1, method, params, extra))
        return None

    def chunks(self):
        """[(bytes, count)]: the requests in order, count in each piece."""
        out = [(b, self.CHUNK_REQUESTS) for b in self._done]
        if self._cur:
            out.append((self._packer.bytes(), len(self._cur)))
        return out

    def calls(self, indexes):
        """The (method, params) of the calls at indexes (sorted), decoded
        back from their bytes."""
        want = set(indexes)
        out = {}
        u = msgpack.Unpacker(raw=False, strict_map_key=False)
        for b, _ in self.chunks():
            u.feed(b)
            for _, msgid, method, params in u:
                if msgid - 1 in want:
                    out[msgid - 1] = (method, params)
        return [out[i] for i in indexes]


_FIRST, _MSGID, _ERROR, _RESULT = (itemgetter(i) for i in range(4))
# feed_results takes the checks in C (map over the list) from this many
# messages on; below it the plain loop is as fast.
_FAST_MIN = 8


class Decoder:
    """A streaming decoder of what the server sends. ``feed(data)`` returns
    the complete messages in data (and what was buffered before), in order,
    as tuples: ``("response", msgid, error, result)`` where error is None or
    the ``rcstore.Error`` (subclass) the response carries, made by
    ``error_from_wire``; or ``("notification", method, params)``. msgpack
    bin comes back as bytes, str as str. A stream that is not msgpack-RPC
    raises ``ConnectionFailed``: the connection cannot be trusted past it."""

    def __init__(self, max_buffer_size=MIN_BUFFER_BYTES):
        self.max_buffer_size = max_buffer_size
        self._fed = 0  # bytes fed, to know when nothing is buffered
        self._u = self._unpacker()

    def _unpacker(self):
        return msgpack.Unpacker(
            raw=False,
            strict_map_key=False,
            unicode_errors="surrogateescape",
            max_buffer_size=self.max_buffer_size,
        )

    def set_limit(self, limits):
        """Bound messages by the limits of the server's hello
        (``buffer_limit``). Done when nothing is buffered (just after
        hello's reply); else the bound stays as it was."""
        n = buffer_limit(limits)
        if n != self.max_buffer_size and self._u.tell() == self._fed:
            self.max_buffer_size = n
            self._fed = 0
            self._u = self._unpacker()

    def feed(self, data):
        return [_message(m) for m in self._messages(data)]

    def feed_results(self, data, want):
        """``feed`` for the replies to a run of requests whose msgids go on
        from want (a pipeline's). Returns ``(results, failed, notes,
        want)``: the result of each response in data (and what was
        buffered), in order, with the ``Error`` in a failed response's
        place; how many of them failed; the notifications' ``(method,
        params)``; the msgid the next response must carry. Raises
        ``ConnectionFailed`` as feed does, and for a response whose msgid
        is not the one due. A run of plain successful responses is checked
        with passes of C (map over the list) instead of a Python loop: about
        half of feed's cost per message."""
        msgs = self._messages(data)
        n = len(msgs)
        if n >= _FAST_MIN and want + n - 1 <= MAX_MSGID:
            try:
                plain = (
                    set(map(type, msgs)) == {list}
                    and set(map(len, msgs)) == {4}
                    and set(map(_FIRST, msgs)) == {RESPONSE}
                    and list(map(_MSGID, msgs)) == list(range(want, want + n))
                    and not any(map(_ERROR, msgs))
                )
            except TypeError:
                plain = False
            if plain:
                return list(map(_RESULT, msgs)), 0, [], want + n
        results, notes, failed = [], [], 0
        for raw in msgs:
            m = _message(raw)
            if m[0] == "notification":
                notes.append((m[1], m[2]))
                continue
            if m[1] != want:
                raise ConnectionFailed(f"the server answered msgid {m[1]} where {want} was due")
            want = want + 1 if want < MAX_MSGID else 1
            if m[2] is not None:
                failed += 1
                results.append(m[2])
            else:
                results.append(m[3])
        return results, failed, notes, want

    def _messages(self, data):
        try:
            self._u.feed(data)
        except msgpack.BufferFull:
            raise ConnectionFailed(
                f"the server sent a message larger than the client takes ({self.max_buffer_size} bytes)"
            ) from None
        self._fed += len(data)
        try:
            return list(self._u)
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as e:
            raise _not_msgpack(e) from None


def _message(m):
    if isinstance(m, (list, tuple)):
        if len(m) == 4 and m[0] == RESPONSE and isinstance(m[1], int):
            err = None if m[2] is None else error_from_wire(m[2])
            return ("response", m[1], err, m[3])
        if len(m) == 3 and m[0] == NOTIFICATION and isinstance(m[1], str):
            params = m[2] if isinstance(m[2], list) else [m[2]]
            return ("notification", m[1], params)
    raise ConnectionFailed(f"the server sent a message that is not msgpack-RPC: {m!r:.200}")


def hello_params(ttl=None, auth=None, user=None, resume=None, client_name=None):
    """hello's parameters: ``[]`` when no option is given, else ``[opts]``
    with the options given: ``ttl`` (seconds, an int >= 0), ``auth`` (the
    token, str or bytes), ``user`` (str), ``resume`` (the resume token,
    bytes), ``client`` (client_name, str, shown in the server's sessions)."""
    opts = {}
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise ValueError(f"ttl must be a whole number of seconds >= 0, not {ttl!r}")
        opts["ttl"] = ttl
    if auth is not None:
        if not isinstance(auth, (str, bytes)):
            raise TypeError("auth must be str or bytes")
        opts["auth"] = auth
    if user is not None:
        if not isinstance(user, str):
            raise TypeError("user must be str")
        opts["user"] = user
    if resume is not None:
        opts["resume"] = bytes(resume)
    if client_name is not None:
        opts["client"] = str(client_name)
    return [opts] if opts else []
