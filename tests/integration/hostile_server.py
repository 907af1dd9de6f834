#!/usr/bin/python3
"""A fake rcstored that answers hello and then misbehaves, for the client
library's defences (test_client_hostile.py). Usage: hostile_server.py MODE;
prints its port on stdout, then serves each connection in a thread:
  trickle  a "freed" notification every 50 ms, never a reply
  flood    notifications as fast as the socket takes them, never a reply
  bigbin   a reply whose bin header claims 300 MiB, then the bytes
"""
import socket
import struct
import sys
import threading
import time

import msgpack

LIMITS = {"max_data_bytes": 0, "max_refs": 0, "max_message_bytes": 0,
          "max_session_ttl": 0, "max_tokens_per_session": 0}


def hello_reply(msgid):
    return msgpack.packb([1, msgid, None, {
        "protocol": 1, "server": "hostile", "session": 1, "token": b"t" * 16,
        "resumed": False, "ttl": 0, "user": None, "role": "leader",
        "user_role": "admin", "limits": LIMITS}], use_bin_type=True)


def misbehave(conn, mode, msgid):
    note = msgpack.packb([2, "freed", [1, "refcount"]])
    if mode == "trickle":
        while True:
            conn.sendall(note)
            time.sleep(0.05)
    elif mode == "flood":
        burst = note * 1000
        while True:
            conn.sendall(burst)
    elif mode == "bigbin":
        conn.sendall(b"\x94\x01" + msgpack.packb(msgid) + b"\xc0\xc6" + struct.pack(">I", 300 << 20))
        chunk = b"x" * (1 << 20)
        for _ in range(300):
            conn.sendall(chunk)


def serve(conn, mode):
    u = msgpack.Unpacker(raw=False)
    try:
        while True:
            d = conn.recv(65536)
            if not d:
                return
            u.feed(d)
            for m in u:
                if m[2] == "hello":
                    conn.sendall(hello_reply(m[1]))
                else:
                    misbehave(conn, mode, m[1])
    except OSError:
        pass  # the client gave up on us: that is the point
    finally:
        conn.close()


def main():
    mode = sys.argv[1]
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    print(ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c, mode), daemon=True).start()


if __name__ == "__main__":
    main()
