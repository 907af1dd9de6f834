#!/usr/bin/python3
"""Writes the fuzzers' seed corpus (tests/fuzz/corpus/): valid requests of
every method for fuzz_decode, and short sessions of control byte + request
for fuzz_request (see its header). Ids in a fresh store are 1, 2, 3, ...
Run it again after changing the protocol; its output is committed."""
import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))


def req(i, method, *params):
    return msgpack.packb([0, i, method, list(params)], use_bin_type=True)


def write(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


ALL = [
    ("hello", {"client": "fuzz", "ttl": 5}), ("ping",), ("create", b"abc"),
    ("create", "s", [1]), ("get", 1), ("set_data", 1, b"zz"), ("set_refs", 1, [1, 1]),
    ("link", 1, 1), ("unlink", 1, 1), ("incref", 1), ("incref", 1, 3), ("decref", 1),
    ("decref", 1, 2), ("stat", 1), ("bind", "n/a", 1), ("unbind", "n/a"), ("lookup", "n/a"),
    ("lookup", "n/a", True), ("names", ""), ("names", "n/", 10), ("referrers", 1),
    ("referrers", 1, 5), ("watch", 1), ("release_all",), ("share", 1), ("share", 1, 30),
    ("claim", b"\0" * 16), ("why", 1), ("gc",), ("stats",), ("debug_check",),
]

for n, call in enumerate(ALL):
    write("decode", "%02d-%s" % (n, call[0]), bytes([n]) + req(n + 1, *call))
write("decode", "pipeline", b"\x03" + b"".join(req(i, *c) for i, c in enumerate(ALL)))
write("decode", "notification", b"\x00" + msgpack.packb([2, "freed", [1, "cycle"]]))


def session(*steps):
    return b"".join(bytes([ctl]) + req(i + 1, *call) for i, (ctl, call) in enumerate(steps))


# A 2-cycle dropped, then collected by a slice and by gc.
write("request", "cycle", session(
    (0, ("create", b"a")), (0, ("create", b"b", [1])), (0, ("link", 1, 2)),
    (0, ("decref", 1)), (0x04, ("decref", 2)), (0x20, ("stats",))))
# Names and holds across sessions.
write("request", "names", session(
    (0, ("create", b"x")), (0, ("bind", "a", 1)), (1, ("lookup", "a", True)),
    (0, ("release_all",)), (1, ("decref", 1)), (2, ("unbind", "a")), (2, ("get", 1))))
# A share token claimed by another session.
write("request", "share", session(
    (0, ("create", b"x")), (0, ("share", 1, 5)), (0, ("decref", 1)),
    (0x41, ("why", 1)), (1, ("stat", 1)), (0x10, ("ping",))))
# A lease: close with a ttl, resume from another slot, expire another.
write("request", "lease", session(
    (0, ("hello", {"ttl": 20})), (0, ("create", b"x")), (0x08, ("ping",)),
    (0x81, ("stat", 1)), (2, ("hello", {"ttl": 5})), (2, ("create", b"y")),
    (0x0a, ("ping",)), (0x10, ("get", 2))))
# Watches, refs and referrers.
write("request", "graph", session(
    (0, ("create", b"r")), (0, ("create", b"c", [1, 1])), (1, ("watch", 1)),
    (0, ("set_refs", 2, [2])), (0, ("referrers", 2)), (0, ("unlink", 2, 2)),
    (0, ("decref", 1)), (0x20, ("debug_check",))))
# Records for fuzz_record (server/record.h): a kind byte (0 journal, 1
# snapshot), then records of that kind back to back.
def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def record(rtype, payload):
    head = len(payload).to_bytes(4, "little") + bytes([rtype])
    return head + crc32c(payload, crc32c(head)).to_bytes(4, "little") + payload


def u64s(*vals):
    return varint(len(vals)) + b"".join(v.to_bytes(8, "little") for v in vals)


TOKEN = bytes(range(16))
JOURNAL = [
    record(1, varint(1) + varint(3) + varint(3) + b"abc" + u64s(1)),  # CREATE
    record(2, varint(3) + varint(1) + varint(2)),  # HOLD
    record(6, varint(1) + varint(1)),  # LINK
    record(8, varint(3) + b"n/a" + varint(1)),  # BIND
    record(10, TOKEN + varint(3) + varint(1) + varint(5)),  # SHARE
    record(13, varint(3) + TOKEN + varint(4) + b"fuzz"),  # SESS_NEW
    record(20, u64s(1, 2, 1 << 40 | 3)),  # GC_FREE
]
SNAPSHOT = [
    record(64, varint(42) + varint(1700000000) + varint(4)),  # SNAP_HEAD
    record(66, varint(2) + (5).to_bytes(8, "little") + (1).to_bytes(8, "little") * 3),
    record(67, varint(1) + varint(3) + varint(2) + b"hi" + u64s(1)),  # SNAP_OBJ
    record(70, varint(3) + varint(1) + (1).to_bytes(8, "little") + (2).to_bytes(8, "little")),
    record(72, varint(1) + varint(0) + varint(1) + varint(0)),  # SNAP_END
]
write("record", "journal", b"\x00" + b"".join(JOURNAL))
write("record", "snapshot", b"\x01" + b"".join(SNAPSHOT))
for i, r in enumerate(JOURNAL):
    write("record", "j%02d" % i, b"\x00" + r)

# Files for fuzz_files: a kind byte (0 raw journal segment, 2 journal
# records after a valid header, 1 snapshot), then the file.
def file_header(magic, version, a, b):
    h = bytearray(64)
    h[0:8] = magic
    h[8:12] = version.to_bytes(4, "little")
    h[16:24] = a.to_bytes(8, "little")
    h[24:32] = b.to_bytes(8, "little")
    h[60:64] = crc32c(bytes(h[0:60])).to_bytes(4, "little")
    return bytes(h)


SNAP_FILE = [
    record(64, varint(42) + varint(1700000000) + varint(4)),  # SNAP_HEAD
    record(65, varint(3) + varint(0) + varint(2)),  # SNAP_IDS
    record(66, varint(1) + (2).to_bytes(8, "little") + (1).to_bytes(8, "little")),
    record(69, varint(3) + TOKEN + varint(30) + varint(0) + varint(4) + b"fuzz"),
    record(67, varint(1) + varint(3) + varint(2) + b"hi" + u64s(1)),  # SNAP_OBJ
    record(70, varint(3) + varint(1) + (1).to_bytes(8, "little") + (2).to_bytes(8, "little")),
    record(68, varint(1) + b"a" + varint(1)),  # SNAP_NAME
    record(72, varint(1) + varint(1) + varint(1) + varint(0)),  # SNAP_END
]
write("files", "journal-records", b"\x02" + b"".join(JOURNAL) + bytes(64))
write("files", "journal-segment",
      b"\x00" + file_header(b"RCSJRNL\0", 1, 1, 1) + b"".join(JOURNAL) + bytes(32))
write("files", "journal-torn", b"\x02" + b"".join(JOURNAL) + JOURNAL[0][:7] + bytes(40))
write("files", "snapshot",
      b"\x01" + file_header(b"RCSSNAP\0", 1, 42, 1700000000) + b"".join(SNAP_FILE))


# Seeds for fuzz_tls: a first byte (bit 0: 0 server side, 1 client side;
# the rest: the size of each feed), then what the peer sends. The server
# side gets ClientHellos (TLS 1.3 and 1.2); the client side gets a server's
# first flight, made by Python's ssl for a ClientHello of its own (with a
# throwaway certificate, of which only the public part is written).
def tls_seeds():
    import ssl
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + "/k.pem",
                        "-out", d + "/c.pem", "-days", "1", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(d + "/c.pem", d + "/k.pem")
        for version in ("13", "12"):
            cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            cctx.check_hostname = False
            cctx.verify_mode = ssl.CERT_NONE
            if version == "12":
                cctx.maximum_version = ssl.TLSVersion.TLSv1_2
            cin, cout, sin, sout = (ssl.MemoryBIO() for _ in range(4))
            c = cctx.wrap_bio(cin, cout, server_hostname="localhost")
            srv = sctx.wrap_bio(sin, sout, server_side=True)
            try:
                c.do_handshake()
            except ssl.SSLWantReadError:
                pass
            hello = cout.read()
            sin.write(hello)
            try:
                srv.do_handshake()
            except ssl.SSLWantReadError:
                pass
            write("tls", "clienthello-" + version, b"\xfe" + hello)
            write("tls", "clienthello-" + version + "-bytewise", b"\x00" + hello)
            write("tls", "serverflight-" + version, b"\xff" + sout.read())


tls_seeds()
print("corpus written to", os.path.join(HERE, "corpus"), file=sys.stderr)
