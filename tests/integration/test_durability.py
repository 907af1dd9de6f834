#!/usr/bin/python3
"""Randomized crash consistency (SPEC §8, issue 15): several sessions apply
random changes over every changing method while an oracle models each
acknowledged one; the server is killed with SIGKILL at random points, with
one unacknowledged request in flight on several connections and long
pipelines in flight on the load connections, and restarted on the same data
directory, with --fsync always and everysec. After each restart the heap
must be exactly one the oracle allows:

- every object the oracle says is alive (reachable from a hold, a name or a
  token) has its id, data, refs and refcount (holds, names, internal,
  tokens), after a `gc` has freed any cycle that was waiting;
- every name; every leased session resumable with its token, holding on
  each object exactly what the oracle says (incref answers n + 1, decref of
  n + 1 is NOT_HELD); the holds of sessions without a lease gone;
- every unexpired share token claimable; a fresh create never returns an id
  seen before; stats.heap.objects counts nothing the oracle does not know;
  debug_check passes.

The oracle and the uncertainty: a request whose reply was not read may or
may not have been applied. A connection's requests apply in order, so each
load connection (a pipeline of set_data "k" / incref pairs on its own
object) has applied some prefix of what it sent, read back from the data
and the holds; the other connections have at most one request in flight,
chosen so that no two of them touch the same object, name, token or
session (their footprints in the model are disjoint, so they commute), and
every subset of them is a candidate state: the heap must equal one.

Environment: RCS_DURABILITY_SEED (a run's seed; printed at the start and
with every failure), RCS_DURABILITY_ROUNDS (kills per fsync mode; default
40), RCS_DURABILITY_OPS (random operations between two kills; default 150),
RCS_DURABILITY_LONG=1 (400 kills of 400 operations per mode: tens of
minutes, more with save skipped, as every restart then replays the whole
journal),
RCS_DURABILITY_SKIP (methods left out, e.g. share,claim,save: to narrow
down a failure), RCS_DURABILITY_TRACE=FILE (every acknowledged request,
save, close and restart, written as it happens).

Not covered: leases and tokens that expire (every ttl here is 3600 s, so
that nothing expires between two checks; their restart at full ttl is not
checked), watches, and power loss (a kill -9 loses nothing written to the
kernel, so everysec is held to the same standard as always).

Without --data-dir in `rcstored --help` (the wiring is not there yet) the
oracle is checked against a live in-memory server at every point a kill
would be, and the test exits 77 (ctest: skipped)."""
import copy
import os
import random
import subprocess
import sys
import tempfile
import time
import shutil
from collections import Counter

import msgpack

import rcswire
from rcswire import Conn

check = rcswire.Checks()

LONG = os.environ.get("RCS_DURABILITY_LONG") == "1"
SEED = int(os.environ.get("RCS_DURABILITY_SEED", random.randrange(1 << 31)))
ROUNDS = int(os.environ.get("RCS_DURABILITY_ROUNDS", 400 if LONG else 40))
OPS = int(os.environ.get("RCS_DURABILITY_OPS", 400 if LONG else 150))
TTL = 3600          # leases and tokens outlive any run
NAMES = ["n%d" % i for i in range(16)]
MAX_CONNS = 6
LOAD_CONNS = 2
LOAD_DEPTH = 64     # load ops kept in flight per load connection
# methods left out, to narrow down a failure: RCS_DURABILITY_SKIP=share,claim,save
SKIP = set(filter(None, os.environ.get("RCS_DURABILITY_SKIP", "").split(",")))
# every acknowledged request, save, close and restart, to a file
TRACE = open(os.environ["RCS_DURABILITY_TRACE"], "w") if os.environ.get(
    "RCS_DURABILITY_TRACE") else None


def trace(*what):
    if TRACE:
        print(*what, file=TRACE, flush=True)

# Run as a program, the server to test is argv[1]. Imported (by
# test_cluster.py, whose nemesis test drives a cluster with this Driver),
# the importer starts its own servers and sets SEED, SKIP and check.
if __name__ == "__main__":
    RCSTORED = sys.argv[1]
    WIRED = "--data-dir" in subprocess.run([RCSTORED, "--help"], capture_output=True,
                                           text=True).stdout
else:
    RCSTORED, WIRED = None, True


class Failure(Exception):
    pass


def fail(what):
    raise Failure("%s (seed %d: rerun with RCS_DURABILITY_SEED=%d)" % (what, SEED, SEED))


# ---------------------------------------------------------------- the oracle

class Sess:
    def __init__(self, sid, token, ttl):
        self.sid, self.token, self.ttl = sid, token, ttl
        self.holds = Counter()


class Model:
    """What the acknowledged requests made: objects (id -> [data, refs]),
    sessions (sid -> Sess), names, share tokens (token -> id). Objects
    freed by refcount leave at once, as in the server; garbage cycles stay
    until a gc (the server's collector may free them earlier: nothing
    compares an unreachable object)."""

    def __init__(self):
        self.objs, self.sess, self.names, self.tokens = {}, {}, {}, {}

    def clone(self):
        return copy.deepcopy(self)

    def refcounts(self):
        rc = Counter()
        for s in self.sess.values():
            rc.update(+s.holds)
        for i in self.names.values():
            rc[i] += 1
        for i in self.tokens.values():
            rc[i] += 1
        for _, refs in self.objs.values():
            for r in refs:
                rc[r] += 1
        return rc

    def settle(self):
        """Free what has no reference left (and what that frees)."""
        while True:
            rc = self.refcounts()
            dead = [i for i in self.objs if rc[i] == 0]
            if not dead:
                return
            for i in dead:
                del self.objs[i]

    def reachable(self):
        seen = set()
        stack = [i for s in self.sess.values() for i, n in s.holds.items() if n > 0]
        stack += list(self.names.values()) + list(self.tokens.values())
        while stack:
            i = stack.pop()
            if i in seen or i not in self.objs:
                continue
            seen.add(i)
            stack.extend(self.objs[i][1])
        return seen

    def gc(self):
        live = self.reachable()
        for i in list(self.objs):
            if i not in live:
                del self.objs[i]

    def end_session(self, sid):
        del self.sess[sid]
        self.settle()

    def restart(self):
        """A restart ends the sessions without a lease, as a close does."""
        for sid in [sid for sid, s in self.sess.items() if s.ttl == 0]:
            del self.sess[sid]
        self.settle()

    # One request: (method, params) -> (error code or None, result). Every
    # precondition the driver relies on is checked, so the model's answer can
    # be compared with the server's.
    def apply(self, sid, method, params):
        s = self.sess[sid]
        o = self.objs
        if method == "create":
            data, refs = params[0], (params[1] if len(params) > 1 else [])
            if any(r not in o for r in refs):
                return "NOT_FOUND", None
            return None, ("new", data, list(refs))   # the id comes from the server
        if method == "incref":
            i, n = params[0], (params[1] if len(params) > 1 else 1)
            if i not in o:
                return "NOT_FOUND", None
            s.holds[i] += n
            return None, s.holds[i]
        if method == "decref":
            i, n = params[0], (params[1] if len(params) > 1 else 1)
            if s.holds[i] < n:
                return ("NOT_HELD" if i in o else "NOT_FOUND"), None
            s.holds[i] -= n
            left = s.holds[i]
            if left == 0:
                del s.holds[i]
            self.settle()
            return None, left
        if method == "set_data":
            if params[0] not in o:
                return "NOT_FOUND", None
            o[params[0]][0] = params[1]
            return None, None
        if method == "set_refs":
            i, refs = params
            if i not in o or any(r not in o for r in refs):
                return "NOT_FOUND", None
            o[i][1] = list(refs)
            self.settle()
            return None, None
        if method == "link":
            i, t = params
            if i not in o or t not in o:
                return "NOT_FOUND", None
            o[i][1].append(t)
            return None, len(o[i][1])
        if method == "unlink":
            i, t = params
            if i not in o or t not in o[i][1]:
                return "NOT_FOUND", None
            o[i][1].remove(t)
            self.settle()
            return None, len(o[i][1])
        if method == "bind":
            name, i = params
            if i not in o:
                return "NOT_FOUND", None
            self.names[name] = i
            self.settle()
            return None, None
        if method == "unbind":
            if params[0] not in self.names:
                return "NAME_NOT_FOUND", None
            del self.names[params[0]]
            self.settle()
            return None, None
        if method == "lookup":
            if params[0] not in self.names:
                return "NAME_NOT_FOUND", None
            i = self.names[params[0]]
            if len(params) > 1 and params[1]:
                s.holds[i] += 1
            return None, i
        if method == "share":
            if params[0] not in o:
                return "NOT_FOUND", None
            return None, ("token", params[0])        # the bytes come from the server
        if method == "claim":
            t = bytes(params[0])
            if t not in self.tokens:
                return "TOKEN_INVALID", None
            i = self.tokens.pop(t)
            s.holds[i] += 1
            return None, i
        if method == "release_all":
            n = sum(s.holds.values())
            s.holds.clear()
            self.settle()
            return None, n
        if method == "hello":
            s.ttl = params[0]["ttl"]
            return None, None
        if method == "get":
            i = params[0]
            if i not in o:
                return "NOT_FOUND", None
            return None, {"id": i, "data": o[i][0], "refs": list(o[i][1])}
        raise AssertionError(method)

    def learn(self, sid, method, params, result):
        """Record what the server decided for a create or a share."""
        if method == "create":
            data, refs = params[0], (params[1] if len(params) > 1 else [])
            self.objs[result] = [data, list(refs)]
            self.sess[sid].holds[result] += 1
        elif method == "share":
            self.tokens[bytes(result)] = params[0]

    def footprint(self, sid, method, params):
        """What one request reads or changes: object ids, names, tokens,
        the session. Two requests with disjoint footprints commute."""
        before = self.clone()
        err, _ = before.apply(sid, method, params)
        fp = {("sess", sid)}
        for p in params:
            if isinstance(p, int):
                fp.add(("obj", p))
            elif isinstance(p, list):
                fp.update(("obj", x) for x in p if isinstance(x, int))
            elif isinstance(p, str):
                fp.add(("name", p))
                if p in self.names:
                    fp.add(("obj", self.names[p]))
            elif isinstance(p, bytes) and method == "claim":
                fp.add(("tok", p))
                if p in self.tokens:
                    fp.add(("obj", self.tokens[p]))
        for i in set(self.objs) | set(before.objs):
            if self.objs.get(i) != before.objs.get(i):
                fp.add(("obj", i))
        for i in set(self.sess[sid].holds) | set(before.sess[sid].holds):
            if self.sess[sid].holds[i] != before.sess[sid].holds[i]:
                fp.add(("obj", i))
        # a freed object changes the refcount of what it referenced
        for i in set(self.objs) - set(before.objs):
            fp.update(("obj", r) for r in self.objs[i][1])
        return err, fp

    def expected(self):
        """What `stat` must say of each live object (after a gc)."""
        rc_names, rc_toks, rc_int, rc_holds = Counter(), Counter(), Counter(), Counter()
        for s in self.sess.values():
            rc_holds.update(+s.holds)
        for i in self.names.values():
            rc_names[i] += 1
        for i in self.tokens.values():
            rc_toks[i] += 1
        for _, refs in self.objs.values():
            for r in refs:
                rc_int[r] += 1
        out = {}
        for i, (data, refs) in self.objs.items():
            out[i] = {"data": bytes(data), "refs": list(refs), "holds": rc_holds[i],
                      "names": rc_names[i], "internal": rc_int[i], "tokens": rc_toks[i],
                      "refcount": rc_holds[i] + rc_names[i] + rc_int[i] + rc_toks[i]}
        return out


# ---------------------------------------------------------------- the driver

def pipeline(conn, calls):
    """Send calls [(method, params)] in one write; return [(err, result)]."""
    data = b""
    for m, p in calls:
        conn.msgid += 1
        data += msgpack.packb([0, conn.msgid, m, p], use_bin_type=True)
    conn.send_raw(data)
    out = []
    for _ in calls:
        r = conn.reply()
        out.append((r[2]["code"] if r[2] else None, r[3]))
    return out


class Client:
    """A driver connection and the session it is attached to."""

    def __init__(self, addr, sid=None, conn=None):
        self.conn = conn or Conn(addr)
        self.sid = sid
        self.inflight = None        # (method, params) sent, reply not read


class LoadClient:
    """A leased session pipelining set_data(obj, "k") / incref(obj) pairs on
    its own object: after a kill, the data says how many were applied."""

    def __init__(self, conn, sid, obj):
        self.conn, self.sid, self.obj = conn, sid, obj
        self.applied = 0            # ops the model has applied
        self.sent = 0               # ops sent (acked: applied or read)
        self.acked = 0

    @staticmethod
    def op(j):
        return ("set_data", [None, b"%d" % (j // 2 + 1)]) if j % 2 == 0 else ("incref", [None, 1])

    def send(self, n):
        data = b""
        for _ in range(n):
            m, p = self.op(self.sent)
            p[0] = self.obj
            self.conn.msgid += 1
            data += msgpack.packb([0, self.conn.msgid, m, p], use_bin_type=True)
            self.sent += 1
        self.conn.send_raw(data)

    def read(self, n, model):
        for _ in range(n):
            r = self.conn.reply()
            if r[2] is not None:
                fail("load op %d on object %d: %s" % (self.acked, self.obj, r[2]))
            self.acked += 1
        self.advance(model, self.acked)

    def advance(self, model, upto):
        for j in range(self.applied, upto):
            m, p = self.op(j)
            p[0] = self.obj
            err, _ = model.apply(self.sid, m, p)
            assert err is None
        self.applied = upto


class Driver:
    def __init__(self, rng, fsync):
        self.rng, self.fsync = rng, fsync
        self.model = Model()
        self.clients, self.loads = [], []
        self.tokens = {}            # sid -> resume token, every session seen
        self.seen_ids = set()
        self.proc = self.addr = None
        self.dir = tempfile.mkdtemp(prefix="durability-")
        self.restarts = 0
        self.saves = 0
        # what the kills caught: in-flight requests applied or not; load
        # requests applied without a reply, and lost
        self.caught = Counter()

    # --- the server
    def start(self):
        flags = ["--debug-commands"]
        if WIRED:
            # Compaction and the collector's sweeps run on their own, often,
            # between and during the requests and the kills.
            flags += ["--data-dir", self.dir, "--fsync", self.fsync,
                      "--compact-journal-bytes", "48k", "--gc-interval-ms", "20"]
        self.proc, self.addr, lines = rcswire.start_server(RCSTORED, *flags, echo=False)
        self.checker = Conn(self.addr)
        return lines

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- sessions
    def new_client(self, ttl=None):
        c = Client(self.addr)
        h = c.conn.ok("hello", {"ttl": ttl} if ttl is not None else {})
        c.sid = h["session"]
        self.tokens[c.sid] = bytes(h["token"])
        self.model.sess[c.sid] = Sess(c.sid, bytes(h["token"]), h["ttl"])
        self.clients.append(c)
        return c

    def resume(self, sid):
        """A new connection resumes sid (its old connection was closed; the
        server may not have seen that close yet: SESSION_BUSY, try again)."""
        conn = Conn(self.addr)
        for _ in range(500):
            err, h = conn.call("hello", {"resume": self.tokens[sid]})
            if not err or err["code"] != "SESSION_BUSY":
                break
            time.sleep(0.01)   # no event tells a client that a close was served
        if err:
            fail("resume of session %d: %s" % (sid, err))
        if h["session"] != sid or not h["resumed"]:
            fail("resume of session %d gave %s" % (sid, h))
        return Client(self.addr, sid, conn)

    def attached(self):
        return {c.sid for c in self.clients} | {l.sid for l in self.loads}

    def detached(self):
        return [sid for sid, s in self.model.sess.items()
                if s.ttl > 0 and sid not in self.attached()]

    def close(self, c):
        trace("close session", c.sid)
        self.clients.remove(c)
        c.conn.close()
        if self.model.sess[c.sid].ttl == 0:
            self.model.end_session(c.sid)

    # --- random requests, from the model
    def live(self, exclude=()):
        return [i for i in self.model.reachable()
                if i not in exclude and i not in {l.obj for l in self.loads}]

    def random_request(self, c, avoid_unknown=False):
        """A request for client c that the model says succeeds (or a
        decref past the holds, which must fail and change nothing)."""
        r, m = self.rng, self.model
        s = m.sess[c.sid]
        live = self.live()
        held = [i for i, n in s.holds.items() if n > 0 and i not in {l.obj for l in self.loads}]
        data = bytes(r.randrange(256) for _ in range(r.randrange(0, 24)))
        choices = ["create"] * 4 + ["incref"] * 3 + ["decref"] * 4 + ["set_data"] * 2 + \
            ["set_refs", "link", "link", "unlink", "unlink", "bind", "bind", "unbind",
             "lookup", "share", "claim", "release_all", "hello", "get"]
        choices = [x for x in choices if x not in SKIP]
        if avoid_unknown:
            # a create by a leased session or a share, applied without its
            # reply, leaves what the model cannot name
            choices = [x for x in choices if x != "share" and not (x == "create" and s.ttl > 0)]
        for _ in range(20):
            k = r.choice(choices)
            if k == "create":
                refs = [r.choice(live) for _ in range(r.randrange(3))] if live else []
                return "create", [data, refs] if refs or r.random() < 0.5 else [data]
            if k == "incref" and live:
                return "incref", [r.choice(live), r.choice([1, 1, 2])]
            if k == "decref" and held:
                i = r.choice(held)
                n = s.holds[i] + (1 if r.random() < 0.1 else 0)   # sometimes NOT_HELD
                return "decref", [i, r.randint(1, n) if n <= s.holds[i] else n]
            if k == "set_data" and live:
                return "set_data", [r.choice(live), data]
            if k == "set_refs" and live:
                return "set_refs", [r.choice(live), [r.choice(live) for _ in range(r.randrange(3))]]
            if k == "link" and live:
                return "link", [r.choice(live), r.choice(live)]
            if k == "unlink":
                cand = [i for i in live if m.objs[i][1]]
                if cand:
                    i = r.choice(cand)
                    return "unlink", [i, r.choice(m.objs[i][1])]
            if k == "bind" and live:
                return "bind", [r.choice(NAMES), r.choice(live)]
            if k == "unbind" and m.names:
                return "unbind", [r.choice(sorted(m.names))]
            if k == "lookup" and m.names:
                return "lookup", [r.choice(sorted(m.names)), True]
            if k == "share" and live:
                return "share", [r.choice(live), TTL]
            if k == "claim" and m.tokens:
                return "claim", [r.choice(sorted(m.tokens))]
            if k == "release_all" and r.random() < 0.3:
                return "release_all", []
            if k == "hello":
                return "hello", [{"ttl": r.choice([0, TTL, TTL])}]
            if k == "get" and live:
                return "get", [r.choice(live)]
        return ("get", [r.choice(live)]) if live else ("release_all", [])

    def do(self, c, method, params):
        """One acknowledged request: the server's answer must be the model's."""
        err, res = c.conn.call(method, *params)
        return self.answer(c, method, params, err, res)

    def answer(self, c, method, params, err, res):
        """The server's answer to an acknowledged request against the model."""
        code = err["code"] if err else None
        trace("session", c.sid, method, params, "->", code or res)
        merr, mres = self.model.apply(c.sid, method, params)
        if code != merr:
            fail("%s%s by session %d: server %s, model %s" % (method, params, c.sid, err, merr))
        if code:
            return None
        self.expect_result(c, method, params, res, mres)
        return res

    def expect_result(self, c, method, params, res, mres):
        if method == "create":
            if res in self.seen_ids:
                fail("create returned id %d, handed out before" % res)
            self.seen_ids.add(res)
            self.model.learn(c.sid, method, params, res)
        elif method == "share":
            self.model.learn(c.sid, method, params, res)
        elif method == "hello":
            if res["session"] != c.sid or res["ttl"] != params[0]["ttl"]:
                fail("hello %s on session %d: %s" % (params, c.sid, res))
        elif method == "get":
            got = {"id": res["id"], "data": bytes(res["data"]), "refs": list(res["refs"])}
            if got != mres:
                fail("get %d: server %s, model %s" % (params[0], got, mres))
        elif res != mres:
            fail("%s%s by session %d: server %s, model %s" % (method, params, c.sid, res, mres))

    def cycle(self, c):
        """Garbage: a ring of 2-4 objects that nothing outside holds."""
        ring = []
        for _ in range(self.rng.randint(1, 4)):
            ring.append(self.do(c, "create", [b"ring", ring[-1:]]))
        self.do(c, "link", [ring[0], ring[-1]])
        for i in ring:
            self.do(c, "decref", [i, self.model.sess[c.sid].holds[i]])

    def step(self):
        r = self.rng
        x = r.random()
        if (x < 0.04 or not self.clients) and len(self.clients) < MAX_CONNS:
            self.new_client(r.choice([None, 0, TTL]))
        elif x < 0.07 and len(self.clients) > 1:
            self.close(r.choice(self.clients))
        elif x < 0.10 and self.detached() and len(self.clients) < MAX_CONNS:
            self.clients.append(self.resume(r.choice(self.detached())))
        elif x < 0.12:
            self.cycle(r.choice(self.clients))
        elif x < 0.13:
            err, res = self.clients[0].conn.call("gc")
            if err:
                fail("gc: %s" % err)
            self.model.gc()
        elif x < 0.135 and WIRED and "save" not in SKIP:
            # a snapshot while the load connections' pipelines mutate the heap
            trace("save")
            err, res = self.clients[0].conn.call("save")
            if err:
                fail("save: %s" % err)
            self.saves += 1
        else:
            c = r.choice(self.clients)
            self.do(c, *self.random_request(c))
        for l in self.loads:      # keep the load pipelines full
            if l.sent - l.acked >= 2 * LOAD_DEPTH:
                l.read(LOAD_DEPTH, self.model)
            l.send(LOAD_DEPTH // 4)

    def start_loads(self):
        for k in range(LOAD_CONNS):
            conn = Conn(self.addr)
            h = conn.ok("hello", {"ttl": TTL, "client": "load%d" % k})
            sid = h["session"]
            self.tokens[sid] = bytes(h["token"])
            self.model.sess[sid] = Sess(sid, bytes(h["token"]), TTL)
            obj = conn.ok("create", b"0")
            self.seen_ids.add(obj)
            self.model.learn(sid, "create", [b"0"], obj)
            self.loads.append(LoadClient(conn, sid, obj))

    # --- the crash
    def burst(self):
        """One request in flight on several connections (disjoint
        footprints), the load pipelines full; returns what is in flight."""
        used, flights = set(), []
        # at most 5: every subset of them is a candidate state
        for c in self.rng.sample(self.clients, self.rng.randint(1, min(5, len(self.clients)))):
            for _ in range(10):
                method, params = self.random_request(c, avoid_unknown=True)
                _, fp = self.model.footprint(c.sid, method, params)
                if not fp & used:
                    used |= fp
                    flights.append((c, method, params))
                    break
        for c, method, params in flights:
            c.conn.send(method, *params)
        for l in self.loads:
            l.send(4 * LOAD_DEPTH)
        return flights

    def crash(self):
        flights = self.burst()
        # Half the time kill at once, while the server is still reading the
        # pipelines; else read a random part of the replies first. Some
        # in-flight requests are acknowledged, some applied without a
        # reply, some never applied.
        at_once = WIRED and self.rng.random() < 0.5
        done = []
        for c, method, params in flights:
            if not at_once and self.rng.random() < 0.3:
                r = c.conn.reply()
                code = r[2]["code"] if r[2] else None
                merr, mres = self.model.apply(c.sid, method, params)
                if code != merr:
                    fail("%s%s: server %s, model %s" % (method, params, r[2], merr))
                if not code:
                    self.expect_result(c, method, params, r[3], mres)
                done.append(c)
        for l in self.loads:
            l.read(0 if at_once else self.rng.randint(0, l.sent - l.acked), self.model)
        pending = [(c.sid, m, p) for c, m, p in flights if c not in done]
        if not WIRED and self.rng.random() < 0.5:
            # the in-memory server, as a restart would leave it: every
            # connection closed (leases detach, the rest end), the server
            # keeps running; checks the restart path of this test itself
            for c in self.clients + self.loads:
                c.conn.close()
            for _ in range(1000):
                if self.checker.ok("stats")["sessions"]["attached"] == 1:
                    break
                time.sleep(0.005)   # no event says the server served a close
            self.restart(pending, fake=True)
            return
        if not WIRED:
            # the in-memory server: every reply is read, the model is exact
            self.read_flights(flights, done)
            return
        self.kill()
        for c in self.clients:
            c.conn.close()
        for l in self.loads:
            l.conn.close()
        self.restart(pending)

    def respawn(self):
        """The server again after a kill: here the same one restarted on its
        data directory (test_cluster's driver waits for a new leader)."""
        lines = self.start()
        recovered = [l for l in lines if "recovered " in l]
        check_quiet("restart %d logs its recovery" % self.restarts, recovered, "".join(lines))

    def read_flights(self, flights, done):
        """Read every reply of flights not in done, and of the load
        pipelines: the server lost nothing, the model is exact."""
        for c, method, params in flights:
            if c not in done:
                r = c.conn.reply()
                code = r[2]["code"] if r[2] else None
                merr, mres = self.model.apply(c.sid, method, params)
                if code != merr:
                    fail("%s%s: server %s, model %s" % (method, params, r[2], merr))
                if not code:
                    self.expect_result(c, method, params, r[3], mres)
        for l in self.loads:
            l.read(l.sent - l.acked, self.model)

    def restart(self, pending, fake=False):
        self.restarts += 1
        trace("kill -9 and restart", self.restarts, "in flight:", pending)
        if not fake:
            self.respawn()
        cands = []
        for k in range(1 << len(pending)):
            m = self.model.clone()
            for b, (sid, method, params) in enumerate(pending):
                if k >> b & 1:
                    m.apply(sid, method, params)
            m.restart()
            m.gc()          # the server's was called before anything is compared
            cands.append((k, m))
        self.model.restart()
        chk = self.checker
        if chk.code("gc"):
            fail("gc after restart")
        # the load objects: a prefix of each pipeline
        loads, self.loads = self.loads, []
        obs_load = {}
        for l in loads:
            err, g = chk.call("get", l.obj)
            if err:
                fail("load object %d lost: %s" % (l.obj, err))
            d = int(bytes(g["data"]))
            obs_load[l.sid] = d
        self.clients = []
        # every session any candidate keeps: resume it (and find its holds)
        sids = sorted({sid for _, m in cands for sid in m.sess})
        held = {}
        resumed = {}
        for sid in sids:
            conn = Conn(self.addr)
            err, h = conn.call("hello", {"resume": self.tokens[sid]})
            if err:
                conn.close()
                resumed[sid] = None
                continue
            if h["session"] != sid:
                fail("resume of %d gave session %d" % (sid, h["session"]))
            resumed[sid] = Client(self.addr, sid, conn)
            ids = sorted({i for _, m in cands if sid in m.sess for i in m.sess[sid].holds}
                         | set(self.model.objs))
            ids = [i for i in ids if i]
            calls = [x for i in ids for x in (("incref", [i, 1]), ("decref", [i, 1]))]
            res = pipeline(conn, calls)
            held[sid] = {i: res[2 * k][1] - 1 for k, i in enumerate(ids)
                         if res[2 * k][0] is None and res[2 * k][1] > 1}
        # the load pipelines: the prefix the data and the holds say
        for l in loads:
            d = obs_load[l.sid]
            h = held.get(l.sid, {}).get(l.obj, 0)
            # after p of its ops: data (p + 1) // 2, holds base + p // 2
            base = self.model.sess[l.sid].holds[l.obj] - l.applied // 2
            p = 2 * d if h - base == d else 2 * d - 1 if h - base == d - 1 else -1
            if not l.acked <= p <= l.sent:
                fail("load session %d: data %d, holds %d: not a prefix of its %d ops "
                     "(%d acknowledged)" % (l.sid, d, h, l.sent, l.acked))
            self.caught["load applied unanswered"] += p - l.acked
            self.caught["load lost"] += l.sent - p
            for _, m in cands:
                for j in range(l.applied, p):
                    mm, pp = LoadClient.op(j)
                    pp[0] = l.obj
                    m.apply(l.sid, mm, pp)
            l.advance(self.model, p)
        # the heap as the server has it
        ids = sorted(set().union(*[set(m.objs) for _, m in cands]) | self.seen_ids)
        stats = pipeline(chk, [("stat", [i]) for i in ids] + [("get", [i]) for i in ids])
        names = {n: r for n, r in zip(NAMES, pipeline(chk, [("lookup", [n]) for n in NAMES]))}
        heap_objects = chk.ok("stats")["heap"]["objects"]

        def diff(m):
            exp = m.expected()
            out = []
            for k, i in enumerate(ids):
                (serr, st), (gerr, g) = stats[k], stats[len(ids) + k]
                if i not in exp:
                    if serr is None:
                        out.append("object %d is alive, the oracle has it freed: %s" % (i, st))
                    continue
                if serr or gerr:
                    out.append("object %d lost (%s)" % (i, serr))
                    continue
                e = exp[i]
                got = {"data": bytes(g["data"]), "refs": list(g["refs"])}
                got.update({k2: st[k2] for k2 in ("holds", "names", "internal", "tokens",
                                                  "refcount")})
                if got != e:
                    out.append("object %d: server %s, oracle %s" % (i, got, e))
            for n in NAMES:
                err, v = names[n]
                want = m.names.get(n)
                if (None if err else v) != want:
                    out.append("name %s: server %s, oracle %s" % (n, err or v, want))
            for sid in sids:
                if (resumed[sid] is None) != (sid not in m.sess):
                    out.append("session %d: %s, oracle %s" % (
                        sid, "gone" if resumed[sid] is None else "resumable",
                        "keeps it" if sid in m.sess else "ended it"))
                elif resumed[sid] is not None:
                    want = {i: n for i, n in m.sess[sid].holds.items() if n > 0}
                    if held[sid] != want:
                        out.append("session %d holds %s, oracle %s" % (sid, held[sid], want))
            if heap_objects != len(m.objs):
                out.append("stats.heap.objects %d, oracle %d" % (heap_objects, len(m.objs)))
            return out

        results = [(diff(m), k, m) for k, m in cands]
        good = [x for x in results if not x[0]]
        if not good:
            best = min(results, key=lambda x: len(x[0]))
            fail("restart %d (fsync %s): the heap is no state the oracle allows; in flight: %s; "
                 "closest (applied %s):\n  %s" % (
                     self.restarts, self.fsync, [(s, mm, pp) for s, mm, pp in pending],
                     bin(best[1]), "\n  ".join(best[0][:20])))
        _, k, m = good[0]
        self.caught["in flight applied"] += bin(k).count("1")
        self.caught["in flight not applied"] += len(pending) - bin(k).count("1")
        if len(good) > 1:
            self.caught["ambiguous"] += 1   # several subsets give the same heap
        # learn what the applied in-flight requests decided: none names
        # anything new (no create by a leased session, no share in flight)
        self.model = m
        self.model.gc()
        for sid, c in resumed.items():
            if c is None:
                continue
            # decref of one more than held is NOT_HELD and changes nothing
            for i, n in list(held[sid].items())[:3]:
                if c.conn.code("decref", i, n + 1) != "NOT_HELD":
                    fail("session %d: decref %d x%d succeeded past its holds" % (sid, i, n + 1))
            if sid in {l.sid for l in loads}:
                l = next(x for x in loads if x.sid == sid)
                self.loads.append(LoadClient(c.conn, sid, l.obj))
                self.loads[-1].applied = self.loads[-1].sent = self.loads[-1].acked = 0
                # a fresh counter of ops: the data restarts its numbering
                self.rebase_load(self.loads[-1])
            else:
                self.clients.append(c)
        # leased sessions beyond MAX_CONNS go back to waiting, detached
        while len(self.clients) > MAX_CONNS:
            self.close(self.rng.choice(self.clients))
        # unexpired tokens are claimable: claim about half
        if self.clients:
            for t in sorted(self.model.tokens):
                if self.rng.random() < 0.5:
                    self.do(self.rng.choice(self.clients), "claim", [t])
        err, res = chk.call("debug_check")
        if err or res != "ok":
            fail("debug_check after restart %d: %s" % (self.restarts, err))
        c = self.clients[0] if self.clients else self.new_client()
        self.do(c, "create", [b"fresh"])
        check_quiet("restart %d: the heap is one the oracle allows (%d of %d in-flight "
                    "requests applied)" % (self.restarts, bin(k).count("1"), len(pending)),
                    True)

    def rebase_load(self, l):
        """Load ops count from the object's current data and holds again."""
        d = int(self.model.objs[l.obj][0])
        self.model.objs[l.obj][0] = b"%d" % d
        # op j sets data j//2 + 1: start numbering after d, on an even op
        l.applied = l.sent = l.acked = 2 * d

    def verify_live(self):
        """In-memory mode: the live server against the exact model."""
        chk = self.checker
        want_att = len(self.clients) + len(self.loads) + 1
        want_det = len(self.detached())
        for _ in range(1000):
            s = chk.ok("stats")["sessions"]
            if s["attached"] == want_att and s["detached"] == want_det:
                break
            time.sleep(0.005)   # no event says the server served a close
        else:
            fail("sessions: server %s, oracle attached %d detached %d" % (s, want_att, want_det))
        if chk.code("gc"):
            fail("gc")
        self.model.gc()
        exp = self.model.expected()
        ids = sorted(self.seen_ids)
        res = pipeline(chk, [("stat", [i]) for i in ids] + [("get", [i]) for i in ids])
        for k, i in enumerate(ids):
            (serr, st), (gerr, g) = res[k], res[len(ids) + k]
            if i not in exp:
                if serr is None:
                    fail("object %d alive, oracle: freed (%s)" % (i, st))
                continue
            if serr or gerr:
                fail("object %d lost (%s), oracle: alive" % (i, serr or gerr))
            got = {"data": bytes(g["data"]), "refs": list(g["refs"])}
            got.update({k2: st[k2] for k2 in ("holds", "names", "internal", "tokens",
                                              "refcount")})
            if got != exp[i]:
                fail("object %d: server %s, oracle %s" % (i, got, exp[i]))
        if chk.ok("stats")["heap"]["objects"] != len(exp):
            fail("stats.heap.objects: server %d, oracle %d" % (
                chk.ok("stats")["heap"]["objects"], len(exp)))
        for c in self.clients + [l for l in self.loads]:
            sess = self.model.sess[c.sid]
            calls = [x for i in sorted(sess.holds) for x in (("incref", [i, 1]),
                                                            ("decref", [i, 1]))]
            got = pipeline(c.conn, calls)
            for k, i in enumerate(sorted(sess.holds)):
                if got[2 * k] != (None, sess.holds[i] + 1):
                    fail("session %d holds on %d: server %s, oracle %d" % (
                        c.sid, i, got[2 * k], sess.holds[i]))
        if chk.call("debug_check") != (None, "ok"):
            fail("debug_check")


def check_quiet(name, cond, detail=""):
    if not cond:
        check(name, cond, detail)


def run(fsync, rng):
    d = Driver(rng, fsync)
    try:
        d.start()
        d.start_loads()
        for _ in range(3):
            d.new_client(rng.choice([None, TTL]))
        for rnd in range(ROUNDS):
            for _ in range(OPS):
                d.step()
            d.crash()
            if (rnd + 1) % 50 == 0:
                print("     fsync %s: %d kills, %d saves, %d objects alive" % (
                    fsync, rnd + 1, d.saves, len(d.model.objs)), flush=True)
            if not WIRED:
                d.verify_live()
                if check.failures:
                    break
        check("fsync %s: %d kills, %d restarts, %d saves; every restart a state the oracle "
              "allows, %d ids handed out once; the kills caught: %s" % (
                  fsync, ROUNDS, d.restarts, d.saves, len(d.seen_ids),
                  ", ".join("%s %d" % kv for kv in sorted(d.caught.items()))), True)
    except Failure as e:
        check("fsync %s" % fsync, False, str(e))
    except Exception as e:   # a connection the server dropped, a bad reply
        import traceback
        traceback.print_exc()
        check("fsync %s" % fsync, False, "%r (seed %d)" % (e, SEED))
    finally:
        d.stop()


def main():
    print("test_durability: seed %d (RCS_DURABILITY_SEED=%d to repeat), %d rounds of %d ops%s"
          % (SEED, SEED, ROUNDS, OPS, "" if WIRED else "; rcstored has no --data-dir: oracle "
             "checked against a live in-memory server only"))
    for i, mode in enumerate(["always", "everysec"]):
        run(mode, random.Random(SEED * 2 + i))
        if not WIRED:
            break
    if check.failures:
        print("%d failed (seed %d)" % (check.failures, SEED))
        sys.exit(1)
    if not WIRED:
        print("SKIP: rcstored has no --data-dir yet; no kill was tested")
        sys.exit(77)


if __name__ == "__main__":
    main()
