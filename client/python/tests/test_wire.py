"""rcstore._wire (the sans-IO codec) and rcstore.errors, without a server."""

import msgpack
import pytest

import rcstore
from rcstore import _wire
from rcstore._wire import Address, Decoder, encode_request, hello_params, parse_addresses


def test_parse_addresses():
    A = Address
    assert parse_addresses("127.0.0.1:7000") == [A("tcp", "127.0.0.1", 7000)]
    assert parse_addresses("localhost") == [A("tcp", "localhost", 7373)]
    assert parse_addresses("tcp://h:1") == [A("tcp", "h", 1)]
    assert parse_addresses("tls://h:2") == [A("tls", "h", 2)]
    assert parse_addresses("tls://h") == [A("tls", "h", 7373)]
    assert parse_addresses("unix:///run/rcstore/s.sock") == [A("unix", path="/run/rcstore/s.sock")]
    assert parse_addresses("[::1]:9") == [A("tcp", "::1", 9)]
    assert parse_addresses("::1") == [A("tcp", "::1", 7373)]
    assert parse_addresses("a:1, b:2,tls://c:3") == [A("tcp", "a", 1), A("tcp", "b", 2), A("tls", "c", 3)]
    assert parse_addresses(["a:1", "unix:///x"]) == [A("tcp", "a", 1), A("unix", path="/x")]
    assert parse_addresses(("127.0.0.1", 5)) == [A("tcp", "127.0.0.1", 5)]
    assert parse_addresses([("::1", 5)]) == [A("tcp", "::1", 5)]
    assert str(A("tcp", "::1", 5)) == "tcp://[::1]:5"
    assert str(A("unix", path="/x")) == "unix:///x"
    for bad in ("", "http://h:1", "h:0", "h:70000", "h:x", "unix://", "[::1", "[::1]x", ":7", [], "a:1,,b:2"):
        with pytest.raises(ValueError):
            parse_addresses(bad)


def test_encode_request():
    b = encode_request(7, "create", [b"\x00\xff", [1, 2]])
    assert msgpack.unpackb(b, raw=False) == [0, 7, "create", [b"\x00\xff", [1, 2]]]
    # bytes are bin (0xc4), str is str.
    assert b"\xc4\x02\x00\xff" in b
    assert msgpack.unpackb(encode_request(1, "bind", ("n", 3)), raw=False) == [0, 1, "bind", ["n", 3]]


def test_decoder_in_pieces():
    d = Decoder()
    stream = (
        msgpack.packb([1, 1, None, "pong"])
        + msgpack.packb([2, "freed", [5, "refcount"]])
        + msgpack.packb([1, 2, {"code": "NOT_FOUND", "message": "no object 9"}, None])
        + msgpack.packb([1, 3, {"code": "NOT_LEADER", "message": "ask", "leader": "tcp://h:1"}, None])
        + msgpack.packb([1, 4, {"code": "FUTURE_CODE", "message": "m"}, None])
        + msgpack.packb([1, 5, None, {"data": b"x", 1: 2}], use_bin_type=True)
    )
    got = []
    for i in range(len(stream)):  # one byte at a time
        got += d.feed(stream[i : i + 1])
    assert got[0] == ("response", 1, None, "pong")
    assert got[1] == ("notification", "freed", [5, "refcount"])
    assert got[2][:2] == ("response", 2) and isinstance(got[2][2], rcstore.NotFound)
    assert got[2][2].code == "NOT_FOUND" and got[2][2].message == "no object 9"
    assert isinstance(got[3][2], rcstore.NotLeader) and got[3][2].leader == "tcp://h:1"
    assert type(got[4][2]) is rcstore.Error and got[4][2].code == "FUTURE_CODE"
    assert got[5] == ("response", 5, None, {"data": b"x", 1: 2})
    assert d.feed(b"") == []


@pytest.mark.parametrize("junk", [b"\xc1", msgpack.packb([5, 1, 2]), msgpack.packb("hi"), msgpack.packb([1, "x", None, None])])
def test_decoder_refuses_what_is_not_rpc(junk):
    with pytest.raises(rcstore.ConnectionFailed):
        Decoder().feed(junk)


def test_decoder_bounded():
    d = Decoder(max_buffer_size=1024)
    with pytest.raises(rcstore.ConnectionFailed):
        d.feed(b"\xc6\x00\x10\x00\x00" + b"x" * 2000)  # a 1 MiB bin, arriving


def test_hello_params():
    assert hello_params() == []
    assert hello_params(ttl=60, auth="t", user="u", resume=b"r", client_name="c") == [
        {"ttl": 60, "auth": "t", "user": "u", "resume": b"r", "client": "c"}
    ]
    assert hello_params(ttl=0) == [{"ttl": 0}]
    for bad in (-1, 1.5, True, "60"):
        with pytest.raises(ValueError):
            hello_params(ttl=bad)


def test_errors():
    codes = {
        "BAD_REQUEST": rcstore.BadRequest, "UNKNOWN_METHOD": rcstore.UnknownMethod,
        "BAD_PARAMS": rcstore.BadParams, "NOT_FOUND": rcstore.NotFound, "NOT_HELD": rcstore.NotHeld,
        "NAME_NOT_FOUND": rcstore.NameNotFound, "TOO_LARGE": rcstore.TooLarge,
        "OUT_OF_MEMORY": rcstore.OutOfMemory, "QUOTA_EXCEEDED": rcstore.QuotaExceeded,
        "AUTH_REQUIRED": rcstore.AuthRequired, "AUTH_FAILED": rcstore.AuthFailed,
        "SESSION_BUSY": rcstore.SessionBusy, "SESSION_EXPIRED": rcstore.SessionExpired,
        "TOKEN_INVALID": rcstore.TokenInvalid, "INTERNAL": rcstore.Internal,
        "PERSISTENCE_FAILED": rcstore.PersistenceFailed, "NOT_LEADER": rcstore.NotLeader,
        "PERMISSION_DENIED": rcstore.PermissionDenied,
    }
    for code, cls in codes.items():
        e = rcstore.error_from_wire({"code": code, "message": "m"})
        assert type(e) is cls and e.code == code == cls.code and e.message == "m"
        assert isinstance(e, rcstore.Error)
    assert rcstore.error_from_wire({"code": "NOT_LEADER", "message": "", "leader": None}).leader is None
    assert rcstore.error_from_wire([1]).code == "BAD_RESPONSE"
    assert issubclass(rcstore.ConnectionFailed, ConnectionError)
    assert issubclass(rcstore.Timeout, TimeoutError)
    assert rcstore.ConnectionFailed("x").code == "CONNECTION_FAILED"
    assert rcstore.Timeout("x").code == "TIMEOUT"
    assert str(rcstore.NotFound("no object 1")) == "NOT_FOUND: no object 1"
    import pickle
    e = pickle.loads(pickle.dumps(rcstore.error_from_wire({"code": "NOT_LEADER", "message": "m", "leader": "tcp://a:1"})))
    assert type(e) is rcstore.NotLeader and e.leader == "tcp://a:1" and e.message == "m"


def test_connect_signatures_name_the_options():
    """help(rcstore.connect) shows SPEC section 11's parameters, for both
    clients, although they take (address, **options) and pass them on."""
    import inspect

    import rcstore
    import rcstore.aio

    for f in (rcstore.connect, rcstore.Client, rcstore.aio.connect, rcstore.aio.Client):
        params = inspect.signature(f).parameters
        assert list(params)[:5] == ["address", "ttl", "auth", "user", "tls"], f
        assert params["address"].default == "127.0.0.1:7373"
        assert params["ttl"].kind is inspect.Parameter.KEYWORD_ONLY
