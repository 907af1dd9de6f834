"""The pipelines' half of rcstore._wire, without a server: Requests (calls
encoded as they are queued) and Decoder.feed_results (a run of replies)."""

import msgpack
import pytest

import rcstore
from rcstore import _wire
from rcstore._wire import Decoder, Requests


def unpack_all(data):
    u = msgpack.Unpacker(raw=False)
    u.feed(data)
    return list(u)


def reply(msgid, result=None, error=None):
    return msgpack.packb([1, msgid, error, result], use_bin_type=True)


def test_requests_encode_in_order_with_msgids_from_1():
    r = Requests()
    assert r.add("incref", [7]) is None
    r.add("create", [b"data", [1, 2]])
    r.add("names", ["p/", 10, ""])
    assert len(r) == 3
    [(data, n)] = r.chunks()
    assert n == 3
    assert unpack_all(data) == [
        [0, 1, "incref", [7]],
        [0, 2, "create", [b"data", [1, 2]]],
        [0, 3, "names", ["p/", 10, ""]],
    ]
    # What encode_request makes, byte for byte.
    assert data == b"".join(
        _wire.encode_request(i + 1, m, p)
        for i, (m, p) in enumerate([("incref", [7]), ("create", [b"data", [1, 2]]), ("names", ["p/", 10, ""])])
    )


def test_requests_chunks():
    r = Requests()
    n = 2 * Requests.CHUNK_REQUESTS + 5
    for i in range(n):
        r.add("incref", [i + 1])
    chunks = r.chunks()
    assert [k for _, k in chunks] == [Requests.CHUNK_REQUESTS, Requests.CHUNK_REQUESTS, 5]
    msgs = [m for data, _ in chunks for m in unpack_all(data)]
    assert [m[1] for m in msgs] == list(range(1, n + 1))
    assert [m[3][0] for m in msgs] == list(range(1, n + 1))
    assert r.calls([0, 1030, n - 1]) == [("incref", [1]), ("incref", [1031]), ("incref", [n])]


def test_requests_a_call_that_cannot_be_encoded_loses_nothing_else():
    """msgpack empties its whole buffer when a pack fails: the calls queued
    before it are put back, the bad one raises and is not queued."""
    r = Requests()
    for i in range(Requests.CHUNK_REQUESTS + 3):
        r.add("incref", [i])
    with pytest.raises(TypeError):
        r.add("bind", [object(), 1])
    r.add("ping", [])
    msgs = [m for data, _ in r.chunks() for m in unpack_all(data)]
    assert len(msgs) == len(r) == Requests.CHUNK_REQUESTS + 4
    assert [m[1] for m in msgs] == list(range(1, len(r) + 1))
    assert msgs[-1] == [0, len(r), "ping", []]


def test_feed_results_plain_run():
    d = Decoder()
    data = b"".join(reply(i, i * 10) for i in range(1, 101))
    assert d.feed_results(data, 1) == ([i * 10 for i in range(1, 101)], 0, [], 101)


def test_feed_results_split_anywhere():
    data = b"".join(reply(i, [i, b"x" * i]) for i in range(5, 45))
    for cut in (1, 7, len(data) // 2, len(data) - 1):
        d = Decoder()
        a, fa, na, want = d.feed_results(data[:cut], 5)
        b, fb, nb, want = d.feed_results(data[cut:], want)
        assert a + b == [[i, b"x" * i] for i in range(5, 45)] and want == 45
        assert fa == fb == 0 and na == nb == []


def test_feed_results_errors_and_notifications_in_place():
    d = Decoder()
    parts = [reply(i, i) for i in range(1, 21)]
    parts[3] = reply(4, error={"code": "NOT_FOUND", "message": "no object 9"})
    parts[9] = reply(10, error={"code": "NOT_LEADER", "message": "follower", "leader": "tcp://h:1"})
    parts.insert(5, msgpack.packb([2, "freed", [9, "refcount"]]))
    results, failed, notes, want = d.feed_results(b"".join(parts), 1)
    assert failed == 2 and want == 21 and notes == [("freed", [9, "refcount"])]
    assert isinstance(results[3], rcstore.NotFound) and results[3].message == "no object 9"
    assert isinstance(results[9], rcstore.NotLeader) and results[9].leader == "tcp://h:1"
    assert [r for k, r in enumerate(results) if k not in (3, 9)] == [i for i in range(1, 21) if i not in (4, 10)]


@pytest.mark.parametrize("n", [3, 50])  # below and above the C passes' threshold
def test_feed_results_refuses_a_reply_out_of_order(n):
    ids = list(range(1, n + 1))
    ids[n // 2] += 1000
    with pytest.raises(rcstore.ConnectionFailed, match="msgid"):
        Decoder().feed_results(b"".join(reply(i, 0) for i in ids), 1)


def test_feed_results_refuses_what_is_not_a_reply():
    for junk in ([0, 1, "ping", []], [1, 1, None], "hello", {"a": 1}, [1, "x", None, 1]):
        data = b"".join(reply(i, 0) for i in range(1, 20)) + msgpack.packb(junk)
        with pytest.raises(rcstore.ConnectionFailed):
            Decoder().feed_results(data, 1)


def test_feed_results_msgids_wrap():
    top = _wire.MAX_MSGID
    data = b"".join(reply(i, i) for i in (top - 2, top - 1, top, 1, 2))
    assert Decoder().feed_results(data, top - 2) == ([top - 2, top - 1, top, 1, 2], 0, [], 3)


def test_requests_keeps_calls_with_an_extra_or_a_kept_method():
    r = Requests(keep=("watch",))
    r.add("incref", [1])
    r.add("watch", [1])
    r.add("create", [b"x"], "make a Ref")
    r.add("ping", [])
    assert r.kept == [(1, "watch", [1], None), (2, "create", [b"x"], "make a Ref")]
    with pytest.raises(TypeError):
        r.add("watch", [object()])  # not queued, so not kept either
    assert len(r.kept) == 2 and len(r) == 4


def test_encode_request_with_a_packer_reused():
    pk = _wire.request_packer()
    for msgid, method, params in ((1, "create", (b"d", [1])), (2, "bind", ["n", 1]), (3, "ping", [])):
        assert _wire.encode_request(msgid, method, params, pk) == _wire.encode_request(msgid, method, params)
    with pytest.raises(TypeError):
        _wire.encode_request(4, "bind", [object()], pk)
    assert _wire.encode_request(5, "ping", [], pk) == _wire.encode_request(5, "ping", [])  # not left dirty
