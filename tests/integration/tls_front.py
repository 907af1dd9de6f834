"""tls_front: a TLS front for a plaintext rcstored, with Python's ssl module,
for the clients' TLS tests: a second, independent TLS implementation on the
server side. It listens on 127.0.0.1 (port 0), prints "listening on
tls://127.0.0.1:PORT", and relays each TLS connection's plaintext to the
backend. Like rcstored's tls:// listeners (SPEC section 10) it answers a
connection whose first byte is not a TLS handshake record (0x16) with one
plaintext msgpack-RPC error (msgid 0, BAD_REQUEST, "this port speaks TLS:
use tls://HOST:PORT") and closes it; with CA it requires a client
certificate signed by it (mutual TLS). With --follower LEADER instead of a
backend it plays a cluster follower over TLS: hello and ping answered,
every other request NOT_LEADER naming LEADER. It serves until stdin closes.

usage: tls_front.py BACKEND_HOST:PORT CERT KEY [CA]
       tls_front.py --follower LEADER CERT KEY"""
import os
import socket
import ssl
import sys
import threading

import msgpack


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def follower(tls, leader):
    """Answer as a follower whose leader is at leader."""
    unpacker = msgpack.Unpacker(raw=False)
    try:
        while True:
            data = tls.recv(65536)
            if not data:
                return
            unpacker.feed(data)
            for msg in unpacker:
                _, msgid, method, _ = msg
                if method == "hello":
                    reply = [1, msgid, None, {"protocol": 1, "session": 1, "token": b"t" * 16,
                                              "resumed": False, "limits": {}}]
                elif method == "ping":
                    reply = [1, msgid, None, "pong"]
                else:
                    reply = [1, msgid, {"code": "NOT_LEADER", "message": "not the leader",
                                        "leader": leader}, None]
                tls.sendall(msgpack.packb(reply))
    except (OSError, ValueError):
        pass
    finally:
        tls.close()


def serve(conn, ctx, backend, port):
    try:
        first = conn.recv(1, socket.MSG_PEEK)
        if first and first[0] != 0x16:
            conn.sendall(msgpack.packb([1, 0, {
                "code": "BAD_REQUEST",
                "message": "this port speaks TLS: use tls://127.0.0.1:%d" % port}, None]))
            conn.close()
            return
        if not first:
            conn.close()
            return
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    if isinstance(backend, str):
        follower(tls, backend)
        return
    back = socket.create_connection(backend)
    threading.Thread(target=pipe, args=(back, tls), daemon=True).start()
    pipe(tls, back)


def main():
    if sys.argv[1] == "--follower":
        del sys.argv[1]
        backend = sys.argv[1]
    else:
        host, port = sys.argv[1].rsplit(":", 1)
        backend = (host, int(port))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    if len(sys.argv) > 4:
        ctx.load_verify_locations(sys.argv[4])
        ctx.verify_mode = ssl.CERT_REQUIRED
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    me = ls.getsockname()[1]

    def accept():
        while True:
            try:
                conn, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn, ctx, backend, me), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("listening on tls://127.0.0.1:%d" % me, flush=True)
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
