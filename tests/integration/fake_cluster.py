"""fake_cluster: three fake rcstored nodes on loopback that play a cluster's
client-facing part (SPEC section 9), for the tests of the clients' failover
without the Raft core: one node at a time is the leader and serves a tiny
heap shared by all (as if replicated); the others answer ping, stats,
cluster and a plain hello themselves and everything else NOT_LEADER with
the leader's address (or nil). Test-only methods, answered by every node,
steer it (a hello's entry in the log also has "USER:AUTH", what it logged
in with, "None" for one not given): fake_leader [i, after_ms] (i = -1: none; with after_ms the change
waits), fake_drop [method] (the leader does the next such request, then
closes its connection without answering; cluster_transfer closes the old
leader's connections after its reply, as rcstored's re-exec does), fake_stop [i] (close node i's
listener and connections, as kill -9 would), fake_log [] (the [node,
method, answered] of every request). Run as a program it prints "ports P0
P1 P2" and serves until stdin closes."""
import os
import socket
import sys
import threading

import msgpack

NODES = 3


class Cluster:
    def __init__(self, nodes=NODES):
        self.lock = threading.Lock()
        self.leader = 0
        self.listeners = []
        self.ports = []
        self.conns = [set() for _ in range(nodes)]
        self.log = []
        self.drop = None
        self.next_id = 1
        self.objects = {}  # id -> data
        self.sessions = {}  # token -> {"id", "ttl", "holds": {id: n}}
        self.next_session = 1
        for i in range(nodes):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            self.listeners.append(s)
            self.ports.append(s.getsockname()[1])
            threading.Thread(target=self.accept, args=(i,), daemon=True).start()

    # The host of the addresses the nodes hand out (NOT_LEADER, cluster):
    # a test may make it a name, as a cluster advertising DNS names does.
    advertise_host = "127.0.0.1"

    def addr(self, i):
        return "tcp://%s:%d" % (self.advertise_host, self.ports[i])

    def accept(self, i):
        s = self.listeners[i]
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            with self.lock:
                if self.listeners[i] is None:
                    conn.close()
                    return
                self.conns[i].add(conn)
            threading.Thread(target=self.serve, args=(i, conn), daemon=True).start()

    def set_leader(self, i):
        with self.lock:
            self.leader = None if i < 0 else i

    def stop(self, i):
        with self.lock:
            s, self.listeners[i] = self.listeners[i], None
            conns, self.conns[i] = self.conns[i], set()
            if self.leader == i:
                self.leader = None
        if s:
            s.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def drop_connections(self, i):
        with self.lock:
            conns, self.conns[i] = self.conns[i], set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(self, i, conn):
        u = msgpack.Unpacker(raw=False, strict_map_key=False)
        state = {"session": {"id": 0, "ttl": 0, "holds": {}, "token": b""}}
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                u.feed(chunk)
                for msg in u:
                    if not (isinstance(msg, list) and len(msg) == 4 and msg[0] == 0):
                        return
                    _, msgid, method, params = msg
                    out = self.handle(i, state, method, params)
                    if out is None:  # fake_drop: done, then the connection goes
                        return
                    err, res = out
                    conn.sendall(msgpack.packb([1, msgid, err, res], use_bin_type=True))
                    if state.pop("close_all", False):
                        self.drop_connections(i)
        except OSError:
            return
        finally:
            with self.lock:
                self.conns[i].discard(conn)
            conn.close()

    def handle(self, i, state, method, params):
        with self.lock:
            leader = self.leader
            is_leader = leader == i
            self.log.append([i, method, True])
            entry = self.log[-1]
            if method == "hello":
                o = params[0] if params and isinstance(params[0], dict) else {}
                auth = o.get("auth")
                entry.append("%s:%s" % (o.get("user"), auth.decode() if isinstance(auth, bytes)
                                        else auth))
            if method.startswith("fake_"):
                return self.control(method, params)
            if method == "cluster":
                return (None, self.status(i, leader))
            opts = params[0] if method == "hello" and params and isinstance(params[0], dict) else {}
            plain_hello = method == "hello" and not opts.get("ttl") and "resume" not in opts
            if not is_leader and not (method in ("ping", "stats", "cluster") or plain_hello):
                entry[2] = False
                return ({"code": "NOT_LEADER", "message": "this node is not the cluster's leader",
                         "leader": None if leader is None else self.addr(leader)}, None)
            if not is_leader and method == "hello":
                return (None, {"protocol": 1, "server": "fake", "session": 0, "token": b"",
                               "resumed": False, "role": "follower",
                               "leader": None if leader is None else self.addr(leader)})
            if self.drop == method:
                self.drop = None
                self.apply(state, method, params)
                return None
            if method == "cluster_transfer":  # the old leader restarts: its clients go
                state["close_all"] = True
            return self.apply(state, method, params)

    def control(self, method, params):
        if method == "fake_leader":
            i, after = params[0], params[1] if len(params) > 1 else 0
            if after:
                self.leader = None
                threading.Timer(after / 1000.0, self.set_leader, (i,)).start()
            else:
                self.leader = None if i < 0 else i
            return (None, None)
        if method == "fake_drop":
            self.drop = params[0]
            return (None, None)
        if method == "fake_stop":
            threading.Thread(target=self.stop, args=(params[0],)).start()
            return (None, None)
        if method == "fake_log":
            return (None, [e for e in self.log if not e[1].startswith("fake_")])
        return ({"code": "UNKNOWN_METHOD", "message": method}, None)

    def apply(self, state, method, params):
        sess = state["session"]
        if method == "ping":
            return (None, "pong")
        if method == "hello":
            opts = params[0] if params and isinstance(params[0], dict) else {}
            resumed = False
            if "resume" in opts:
                found = self.sessions.get(bytes(opts["resume"]))
                if not found:
                    return ({"code": "SESSION_EXPIRED", "message": "session expired or unknown"},
                            None)
                state["session"] = sess = found
                resumed = True
            if opts.get("ttl"):
                if not sess["token"]:
                    sess["id"] = sess["id"] or self.new_session()
                    sess["token"] = os.urandom(16)
                    self.sessions[sess["token"]] = sess
                sess["ttl"] = opts["ttl"]
            sess["id"] = sess["id"] or self.new_session()
            return (None, {"protocol": 1, "server": "fake", "session": sess["id"],
                           "token": sess["token"], "resumed": resumed, "ttl": sess["ttl"],
                           "limits": {"max_data_bytes": 1 << 20, "max_refs": 65536,
                                      "max_message_bytes": 1 << 24, "max_session_ttl": 3600}})
        if method == "create":
            oid = self.next_id
            self.next_id += 1
            self.objects[oid] = params[0]
            sess["holds"][oid] = 1
            return (None, oid)
        if method == "incref":
            oid = params[0]
            if oid not in self.objects:
                return ({"code": "NOT_FOUND", "message": "no such object"}, None)
            sess["holds"][oid] = sess["holds"].get(oid, 0) + (params[1] if len(params) > 1 else 1)
            return (None, sess["holds"][oid])
        if method == "decref":
            oid, n = params[0], params[1] if len(params) > 1 else 1
            if sess["holds"].get(oid, 0) < n:
                return ({"code": "NOT_HELD", "message": "not held"}, None)
            sess["holds"][oid] -= n
            return (None, sess["holds"][oid])
        if method == "stats":
            return (None, {"server": {"version": "fake"}})
        if method in ("cluster_add", "cluster_remove"):
            return (None, True if method == "cluster_add" else None)
        if method == "cluster_transfer":
            want = params[0] if params else 0
            self.leader = (want - 1) if want else (self.leader + 1) % len(self.ports)
            return (None, {"leader": self.leader + 1})
        return ({"code": "UNKNOWN_METHOD", "message": "unknown method"}, None)

    def new_session(self):
        self.next_session += 1
        return self.next_session - 1

    def status(self, i, leader):
        m = {"node_id": i + 1,
             "role": "leader" if leader == i else "follower",
             "leader": None if leader is None else self.addr(leader),
             "leader_id": 0 if leader is None else leader + 1,
             "term": 7, "commit_index": 42, "applied_index": 42, "ready": leader == i,
             "members": [{"id": j + 1, "raft_address": "127.0.0.1:%d" % (9000 + j),
                          "client_address": self.addr(j), "voter": True}
                         for j in range(len(self.ports))]}
        if leader == i:
            m["followers"] = [{"id": j + 1, "match_index": 40 + j, "lag": 2 - j}
                              for j in range(len(self.ports)) if j != leader]
        return m


def main():
    c = Cluster()
    print("ports", *c.ports, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    os._exit(0)


if __name__ == "__main__":
    main()
