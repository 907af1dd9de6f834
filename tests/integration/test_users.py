#!/usr/bin/python3
"""Users and roles on the wire (SPEC section 10), against a real rcstored
with --users-file and --auth-token-file: a users file open to others or
unparsable refuses the start; every method under every role (allowed, or
PERMISSION_DENIED with nothing changed: the debug_digest is the oracle);
names-prefix confinement for bind, unbind, lookup, names and why; the v1
token as the admin user "default"; failed logins (AUTH_FAILED, closed,
logged with peer and user, never the token, rate limited); SIGHUP reloading
the users file (a user added, a role changed, a user removed with a live
connection, a bad file that keeps the old table); with mutual TLS, a client
certificate whose CN is a user's cert-cn logs in as that user (certificates
made at test time with the openssl command)."""
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time

import rcswire
from rcswire import Conn

RCSTORED = sys.argv[1]
check = rcswire.Checks()
tmp = tempfile.mkdtemp(prefix="test_users.")

TOKENS = {"reader": "read-token-Q1", "writer": "write-token-Q2", "boss": "admin-token-Q3",
          "jobber": "jobs-token-Q4", "newbie": "new-token-Q5"}
V1_TOKEN = "v1-default-token-Q6"


def sha(tok):
    return hashlib.sha256(tok.encode()).hexdigest()


def users_text(*sections):
    return "".join("[user %s]\ntoken-sha256 = %s\nrole = %s\n%s\n" %
                   (name, sha(TOKENS[name]), role, "names = %s\n" % names if names else "")
                   for name, role, names in sections)


BASE = [("reader", "read", None), ("writer", "write", None), ("boss", "admin", None),
        ("jobber", "write", "jobs/")]


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


users_path = os.path.join(tmp, "users.ini")
token_path = os.path.join(tmp, "token")
write(token_path, V1_TOKEN + "\n")

# ---- start-up refusals: exit 2, one line naming the file ----
write(users_path, users_text(*BASE), 0o644)
r = subprocess.run([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--users-file", users_path],
                   capture_output=True, text=True, timeout=30)
check("users file 0644: start refused with status 2", r.returncode == 2, (r.returncode, r.stderr))
check("users file 0644: says chmod 600", "chmod 600" in r.stderr and users_path in r.stderr,
      r.stderr)
write(users_path, users_text(*BASE) + "[user x]\nrole = root\ncert-cn = x\n")
r = subprocess.run([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--users-file", users_path],
                   capture_output=True, text=True, timeout=30)
nlines = users_text(*BASE).count("\n")
check("unparsable users file: status 2, file:line", r.returncode == 2 and
      ("%s:%d:" % (users_path, nlines + 2)) in r.stderr, (r.returncode, r.stderr))
write(users_path, users_text(*BASE) + "[user default]\nrole = read\ncert-cn = d\n")
r = subprocess.run([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--users-file", users_path,
                    "--auth-token-file", token_path], capture_output=True, text=True, timeout=30)
check("user default beside --auth-token-file: status 2", r.returncode == 2 and
      "default" in r.stderr, (r.returncode, r.stderr))

# cert-cn users on a server without a tls:// listener: a warning naming them.
write(users_path, users_text(*BASE) + "[user dash]\nrole = read\ncert-cn = dash.example\n")
proc, addr, log = rcswire.start_server(RCSTORED, "--users-file", users_path)
proc.terminate()
proc.wait(timeout=30)
check("cert-cn without a tls:// listener: one warning naming the user", len(
    [l for l in log if "user dash has cert-cn but there is no tls:// listener" in l and
     "only with a token" in l]) == 1, log)

write(users_path, users_text(*BASE))
proc, addr, log = rcswire.start_server(RCSTORED, "--users-file", users_path, "--auth-token-file",
                                       token_path, "--debug-commands", keep=True)


def login(name, tok=None):
    c = Conn(addr)
    h = c.ok("hello", {"user": name, "auth": tok or TOKENS[name]})
    return c, h


def wait_for(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def log_has(text):
    return any(text in l for l in log)


try:
    # ---- logging in ----
    anon = Conn(addr)
    check("no login: create is AUTH_REQUIRED", anon.code("create", b"x") == "AUTH_REQUIRED")
    check("no login: ping works", anon.ok("ping") == "pong")
    admin, h = login("boss")
    check("hello says user and role", h["user"] == "boss" and h["role"] == "admin" and
          h["user_role"] == "admin", h)
    _, h = login("reader")
    check("a read user's hello", h["user"] == "reader" and h["role"] == "read", h)
    v1 = Conn(addr)
    h = v1.ok("hello", {"auth": V1_TOKEN})
    check("v1 --auth-token-file: user default, admin", h["user"] == "default" and
          h["role"] == "admin", h)
    check("v1 token: an admin call works", v1.code("gc") is None)
    v1b = Conn(addr)
    h = v1b.ok("hello", {"user": "default", "auth": V1_TOKEN})
    check("v1 token with user default", h["user"] == "default", h)

    # ---- a leased session is its user's: its token alone does not resume it ----
    def detached():
        return admin.ok("stats")["sessions"]["detached"]

    lw = Conn(addr)
    h = lw.ok("hello", {"user": "writer", "auth": TOKENS["writer"], "ttl": 600})
    lease_tok, lease_sid = h["token"], h["session"]
    lease_obj = lw.ok("create", b"leased")  # its hold is the session's
    before = detached()
    lw.s.close()
    check("lease: the writer's session detaches", wait_for(lambda: detached() == before + 1))
    mark = len(log)
    for name in ("reader", "jobber"):
        other, _ = login(name)
        err, _ = other.call("hello", {"resume": lease_tok})
        check("lease: %s resuming the writer's session is PERMISSION_DENIED" % name,
              err and err["code"] == "PERMISSION_DENIED" and
              ("session %d belongs to user writer" % lease_sid) in err["message"], err)
        check("lease: ... and %s keeps its own session" % name,
              other.ok("hello")["session"] != lease_sid)
    check("lease: the refusal is logged with the user",
          wait_for(lambda: any("belongs to user writer" in l and "user jobber" in l
                               for l in log[mark:])))
    check("lease: nothing changed: still detached, its object held",
          detached() == before + 1 and admin.ok("stat", lease_obj)["refcount"] == 1)
    adm2, _ = login("boss")
    h = adm2.ok("hello", {"resume": lease_tok})
    check("lease: an admin resumes any user's session", h["resumed"] and
          h["session"] == lease_sid and h["user"] == "boss", h)
    adm2.s.close()
    check("lease: ... and leaves it detached again", wait_for(lambda: detached() == before + 1))
    lw2, _ = login("writer")
    h = lw2.ok("hello", {"resume": lease_tok})
    check("lease: its own user still resumes it after the admin did",
          h["resumed"] and h["session"] == lease_sid, h)
    check("lease: ... with its holds", lw2.ok("decref", lease_obj) == 0)

    # ---- every method under every role ----
    ops = admin.ok("stats")["ops"]
    methods = set(ops)
    READ = {"hello", "ping", "get", "stat", "lookup", "names", "referrers", "why", "watch",
            "stats", "cluster"}
    ADMIN = {"gc", "save", "cluster_add", "cluster_remove", "cluster_transfer", "debug_check",
             "debug_digest", "slowlog", "slowlog_reset"}
    WRITE = methods - READ - ADMIN
    check("the role table knows every method", READ | ADMIN <= methods and
          WRITE == {"create", "set_data", "set_refs", "link", "unlink", "incref", "decref",
                    "bind", "unbind", "release_all", "share", "claim"}, sorted(methods))
    RANK = {"read": 1, "write": 2, "admin": 3}
    NEED = {m: 1 if m in READ else 3 if m in ADMIN else 2 for m in methods}

    def fixture(tag):
        """Objects and a name the calls below act on, made by the admin."""
        a = admin.ok("create", b"a")
        b = admin.ok("create", b"b", [a])
        admin.ok("bind", "fx/" + tag, b)
        tok = admin.ok("share", a, 60)
        return {"a": a, "b": b, "name": "fx/" + tag, "tok": tok}

    def params(m, f):
        return {
            "hello": [], "ping": [], "create": [b"new"], "get": [f["a"]], "set_data": [f["a"], b"z"],
            "set_refs": [f["b"], [f["a"], f["a"]]], "link": [f["b"], f["a"]],
            "unlink": [f["b"], f["a"]], "incref": [f["a"]], "decref": [f["a"]], "stat": [f["a"]],
            "bind": ["fx/new-" + str(f["a"]), f["a"]], "unbind": [f["name"]],
            "lookup": [f["name"]], "names": ["fx/"], "referrers": [f["a"]], "watch": [f["a"]],
            "release_all": [], "share": [f["a"]], "claim": [f["tok"]], "why": [f["b"]], "gc": [],
            "stats": [], "debug_check": [], "save": [], "cluster": [],
            "cluster_add": [9, "127.0.0.1:1", "tcp://127.0.0.1:2"], "cluster_remove": [9],
            "cluster_transfer": [], "debug_digest": [], "slowlog": [], "slowlog_reset": [],
        }[m]

    def digest():
        return admin.ok("debug_digest")

    bad = []
    for role, user in (("read", "reader"), ("write", "writer"), ("admin", "boss")):
        c, _ = login(user)
        for m in sorted(methods):
            f = fixture(role + "-" + m)
            before = digest()
            code = c.code(m, *params(m, f))
            allowed = RANK[role] >= NEED[m]
            if allowed and code == "PERMISSION_DENIED":
                bad.append((role, m, "refused"))
            if not allowed:
                after = digest()
                if code != "PERMISSION_DENIED":
                    bad.append((role, m, code))
                elif after != before:
                    bad.append((role, m, "changed the state"))
        c.close()
    check("every method under every role: allowed or PERMISSION_DENIED, nothing changed",
          not bad, bad)

    rd, _ = login("reader")
    wr, _ = login("writer")
    f = fixture("acq")
    before = digest()
    check("read: lookup with acquire is PERMISSION_DENIED",
          rd.code("lookup", f["name"], True) == "PERMISSION_DENIED")
    check("read: ... and took no hold", digest() == before)
    check("read: lookup without acquire works", rd.ok("lookup", f["name"]) == f["b"])
    check("write: lookup with acquire works", wr.ok("lookup", f["name"], True) == f["b"])
    check("read: a refused call says so before its parameters",
          rd.code("create") == "PERMISSION_DENIED")
    check("refused calls are logged with peer and user",
          wait_for(lambda: log_has("refused a call from 127.0.0.1:") and
                   log_has("(user reader)")))

    # ---- names prefix: jobber may only touch jobs/ ----
    jb, h = login("jobber")
    x = admin.ok("create", b"x")
    admin.ok("bind", "other/x", x)
    admin.ok("bind", "jobs/x", x)
    mine = jb.ok("create", b"mine")
    before = digest()
    check("prefix: bind outside is PERMISSION_DENIED",
          jb.code("bind", "other/y", mine) == "PERMISSION_DENIED")
    check("prefix: unbind outside is PERMISSION_DENIED",
          jb.code("unbind", "other/x") == "PERMISSION_DENIED")
    check("prefix: lookup outside is PERMISSION_DENIED",
          jb.code("lookup", "other/x") == "PERMISSION_DENIED")
    check("prefix: lookup of an unbound name outside is PERMISSION_DENIED too",
          jb.code("lookup", "other/none") == "PERMISSION_DENIED")
    check("prefix: the refusals changed nothing", digest() == before and
          admin.ok("lookup", "other/x") == x)
    # (the lines themselves may be suppressed by the rate limit by now)
    check("prefix: a refused name is never logged as sent",
          not any("other/none" in l or "other/y" in l for l in log))
    check("prefix: bind inside works", jb.ok("bind", "jobs/mine", mine) is None)
    check("prefix: lookup inside works", jb.ok("lookup", "jobs/x") == x)
    check("prefix: unbind inside works", jb.ok("unbind", "jobs/x") is None)
    everything = [n for n, _ in admin.ok("names", "")]
    check("prefix: names lists only jobs/", jb.ok("names", "") == [["jobs/mine", mine]] and
          "other/x" in everything, jb.ok("names", ""))
    check("prefix: names of a prefix outside is empty", jb.ok("names", "other/") == [])
    check("prefix: names of a shorter prefix is narrowed", jb.ok("names", "jo") ==
          [["jobs/mine", mine]])
    check("prefix: names of a longer prefix inside", jb.ok("names", "jobs/m") ==
          [["jobs/mine", mine]] and jb.ok("names", "jobs/z") == [])
    page = jb.ok("names", "", 10, "")
    check("prefix: names paged", page == {"names": [["jobs/mine", mine]], "next": None}, page)
    check("prefix: names paged outside", jb.ok("names", "zz", 10, "") ==
          {"names": [], "next": None})
    admin.ok("decref", x)  # only the name other/x keeps it
    w = jb.ok("why", x)
    check("prefix: why hides a root name outside", w["root"] == "name" and
          w["name"] == "(hidden)" and w["path"] == [x], w)
    check("prefix: admin's why shows it", admin.ok("why", x)["name"] == "other/x")
    w = jb.ok("why", mine)
    check("prefix: why shows a root name inside", w["root"] in ("name", "session"), w)
    ref = admin.ok("create", b"ref", [x])
    check("prefix: referrers answers ids as for anyone",
          jb.ok("referrers", x) == admin.ok("referrers", x) == [ref])

    # A read user's hello may not take a lease: it would change the journal
    # and keep a session after the connection.
    before = digest()
    rd = Conn(addr)
    err, _ = rd.call("hello", {"user": "reader", "auth": TOKENS["reader"], "ttl": 60})
    check("read: hello with a ttl is PERMISSION_DENIED", err and
          err["code"] == "PERMISSION_DENIED", err)
    after = digest()
    # (an earlier connection's session may end meanwhile: no session more)
    check("read: the refused lease changed nothing",
          after["sessions"] <= before["sessions"] and
          all(after["parts"][k] == before["parts"][k] for k in ("objects", "holds", "names",
                                                                "tokens")), (before, after))
    rd.close()
    # A hello that fails after a good login keeps the user from before: a
    # writer's connection that logs in as reader with a bogus resume is
    # still the writer.
    wr, _ = login("writer")
    err, _ = wr.call("hello", {"user": "reader", "auth": TOKENS["reader"],
                               "resume": b"\0" * 16})
    check("a failed hello: its error", err and err["code"] == "SESSION_EXPIRED", err)
    h = wr.ok("hello")
    check("a failed hello leaves the user from before", h.get("user") == "writer", h)
    check("... who may still create", wr.code("create", b"still") is None)
    wr.close()

    # ---- failed logins ----
    start = len(log)
    c = Conn(addr)
    err, _ = c.call("hello", {"user": "writer", "auth": "not-the-token-ZZ9"})
    check("wrong token: AUTH_FAILED", err and err["code"] == "AUTH_FAILED", err)
    check("wrong token: connection closed", c.closed())
    c = Conn(addr)
    err, _ = c.call("hello", {"user": "nobody", "auth": "unknown-user-token-ZZ8"})
    check("unknown user: AUTH_FAILED", err and err["code"] == "AUTH_FAILED", err)
    check("unknown user: connection closed", c.closed())
    c = Conn(addr)
    err, _ = c.call("hello", {"auth": "wrong-v1-token-ZZ7"})
    check("wrong v1 token: AUTH_FAILED, closed", err and err["code"] == "AUTH_FAILED" and
          c.closed(), err)
    c = Conn(addr)
    err, _ = c.call("hello", {"user": "evil\nFORGED line", "auth": "x"})
    check("a user name with a newline: AUTH_FAILED", err and err["code"] == "AUTH_FAILED", err)
    check("failed logins logged with peer and user",
          wait_for(lambda: log_has('failed login from 127.0.0.1:') and
                   log_has('as an unknown user (a name of 6 bytes)') and
                   log_has('as user "writer"') and
                   log_has('as an unknown user (a name of 16 bytes)')))
    # An unknown user's name is the client's bytes (maybe a token typed in
    # the wrong field): it is not logged at all.
    check("an unknown user's name is not logged",
          not any("nobody" in l or "FORGED" in l for l in log))
    joined = "".join(log)
    check("no token in the log", all(t not in joined for t in
                                      ["not-the-token-ZZ9", "unknown-user-token-ZZ8",
                                       "wrong-v1-token-ZZ7", V1_TOKEN] + list(TOKENS.values())))

    # Many failures: at most 5 lines a second, the rest counted.
    start = len(log)
    t0 = time.time()
    N = 40
    for i in range(N):
        c = Conn(addr)
        c.send("hello", {"user": "flooder", "auth": "flood-%d" % i})
        c.closed()
    elapsed = time.time() - t0

    def counted():
        lines = [l for l in log[start:] if 'as an unknown user (a name of 7 bytes)' in l]
        supp = 0
        for l in log[start:]:
            if "more failed-login lines suppressed" in l:
                supp += int(l.split(" more failed-login")[0].rsplit(" ", 1)[1])
        return lines, supp

    check("flood: the suppressed count is reported",
          wait_for(lambda: len(counted()[0]) + counted()[1] == N, 10), counted())
    lines, supp = counted()
    check("flood: at most 5 lines a second", len(lines) <= 5 * (int(elapsed) + 2) and supp > 0,
          (len(lines), supp, elapsed))

    # ---- SIGHUP: reload ----
    wr2, _ = login("writer")
    jb2, _ = login("jobber")
    check("before reload: writer creates", wr2.code("create", b"w") is None)
    c = Conn(addr)
    err, _ = c.call("hello", {"user": "newbie", "auth": TOKENS["newbie"]})
    check("before reload: newbie unknown", err and err["code"] == "AUTH_FAILED")
    # writer becomes read, jobber is removed, newbie added.
    write(users_path, users_text(("reader", "read", None), ("writer", "read", None),
                                 ("boss", "admin", None), ("newbie", "write", "new/")))
    mark = len(log)
    proc.send_signal(signal.SIGHUP)
    check("reload logged", wait_for(lambda: any("SIGHUP: read 4 user(s)" in l
                                                for l in log[mark:])))
    check("reload: a removed user's live connection is closed", jb2.closed())
    check("reload: a changed role applies to the next call",
          wr2.code("create", b"w") == "PERMISSION_DENIED" and wr2.ok("ping") == "pong")
    nb, h = login("newbie")
    check("reload: an added user logs in", h["user"] == "newbie" and h["role"] == "write")
    check("reload: its prefix applies", nb.code("bind", "jobs/n", mine) == "PERMISSION_DENIED")
    c = Conn(addr)
    err, _ = c.call("hello", {"user": "jobber", "auth": TOKENS["jobber"]})
    check("reload: a removed user cannot log in", err and err["code"] == "AUTH_FAILED")
    check("reload: the v1 user is untouched", v1.code("gc") is None)

    # A bad file: logged, the old table stays.
    write(users_path, "[user broken]\nrole = sometimes\n")
    mark = len(log)
    proc.send_signal(signal.SIGHUP)
    check("bad reload: logged with file:line", wait_for(lambda: any(
        "SIGHUP: " in l and users_path + ":2:" in l and "stay" in l for l in log[mark:])))
    _, h = login("newbie")
    check("bad reload: the old users still log in", h["user"] == "newbie")
    check("bad reload: live connections stay", nb.ok("ping") == "pong")
    write(users_path, users_text(*BASE), 0o644)
    mark = len(log)
    proc.send_signal(signal.SIGHUP)
    check("reload of a file others may read: refused", wait_for(lambda: any(
        "SIGHUP: " in l and "chmod 600" in l for l in log[mark:])))
    check("... and the old users stay", login("newbie")[1]["user"] == "newbie")
finally:
    proc.terminate()
    proc.wait(timeout=30)

# ---- a client certificate's CN logs in as the user with that cert-cn ----
def openssl(*args):
    subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)


KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
openssl("req", "-x509", *KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=users test CA")
with open(os.path.join(tmp, "san.ext"), "w") as f:
    f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
for serial, (name, cn, ext) in enumerate((("srv", "localhost", ["-extfile", "san.ext"]),
                                          ("cli", "dash.example", []),
                                          ("anon", "nobody.example", [])), 1001):
    openssl("req", *KEY, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", str(serial), "-days", "2", *ext,
            "-out", name + ".pem")

# ---- warnings, not refusals: cert-cn users without --tls-ca-file, a key
# file group or others may read, an expired certificate (made here with
# python3-cryptography: openssl x509 cannot backdate) ----
def expired_pair(cert, key):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(k.public_key()).serial_number(7)
         .not_valid_before(datetime.datetime(2020, 1, 1))
         .not_valid_after(datetime.datetime(2020, 1, 2, 3, 4, 5))
         .sign(k, hashes.SHA256()))
    write(cert, c.public_bytes(serialization.Encoding.PEM).decode())
    write(key, k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode())


wcert, wkey = os.path.join(tmp, "w.pem"), os.path.join(tmp, "w.key")
with open(os.path.join(tmp, "srv.pem")) as f:
    write(wcert, f.read())
with open(os.path.join(tmp, "srv.key")) as f:
    write(wkey, f.read(), 0o644)
write(users_path, users_text(*BASE) + "[user dash]\nrole = read\ncert-cn = dash.example\n"
      "[user bot]\nrole = write\ncert-cn = bot.example\n")
proc, addr, log = rcswire.start_server(
    RCSTORED, "--users-file", users_path, "--listen", "tls://127.0.0.1:0",
    "--tls-cert-file", wcert, "--tls-key-file", wkey, keep=True)
try:
    NO_CA = "users dash, bot have cert-cn but there is no --tls-ca-file"
    check("start-up: cert-cn users without --tls-ca-file: one warning naming them",
          len([l for l in log if NO_CA in l and "only with a token" in l]) == 1, log)
    check("start-up: a key file others may read: a warning, and the server runs",
          log_has("--tls-key-file %s is readable by group or others (mode 644): chmod 600 it"
                  % wkey) and Conn(addr).ok("ping") == "pong", log)
    check("start-up: a valid certificate: no expiry warning", not log_has("expired"))
    expired_pair(wcert, wkey)
    mark = len(log)
    proc.send_signal(signal.SIGHUP)
    check("reload: an expired certificate: a warning with its notAfter", wait_for(lambda: any(
        ("--tls-cert-file %s expired on 2020-01-02 03:04:05 UTC" % wcert) in l
        for l in log[mark:])), log[mark:])
    check("reload: the cert-cn warning again", wait_for(lambda: any(
        NO_CA in l for l in log[mark:])), log[mark:])
    check("reload: a key file now 600: no key warning",
          not any("chmod 600" in l for l in log[mark:]), log[mark:])
    check("reload: the server still serves", Conn(addr).ok("ping") == "pong")
finally:
    proc.terminate()
    proc.wait(timeout=30)

write(users_path, users_text(*BASE) + "[user dash]\nrole = read\ncert-cn = dash.example\n")
proc, addr, log = rcswire.start_server(
    RCSTORED, "--users-file", users_path, "--listen", "tls://127.0.0.1:0",
    "--tls-cert-file", os.path.join(tmp, "srv.pem"), "--tls-key-file",
    os.path.join(tmp, "srv.key"), "--tls-ca-file", os.path.join(tmp, "ca.pem"),
    "--log-level", "debug", keep=True)
tls_addr = [l.rsplit("tls://", 1)[1].strip().rsplit(":", 1) for l in log
            if "listening on tls://" in l][0]
tls_addr = (tls_addr[0], int(tls_addr[1]))


class TLSConn(Conn):
    def __init__(self, cert):
        import socket
        import ssl
        import msgpack
        ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca.pem"))
        ctx.load_cert_chain(os.path.join(tmp, cert + ".pem"), os.path.join(tmp, cert + ".key"))
        raw = socket.create_connection(tls_addr)
        raw.settimeout(30)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        self.u = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.msgid = 0
        self.notes = []


try:
    adm, _ = login("boss")
    obj = adm.ok("create", b"o")
    adm.ok("bind", "dash/o", obj)
    d = TLSConn("cli")
    check("mutual TLS: no cert-cn warning", not any("cert-cn but" in l for l in log), log)
    check("cert-cn: logged in by the certificate, no hello needed",
          d.ok("lookup", "dash/o") == obj)
    check("cert-cn: the user's role applies", d.code("create", b"x") == "PERMISSION_DENIED")
    h = d.ok("hello")
    check("cert-cn: hello without auth keeps the user", h["user"] == "dash" and
          h["role"] == "read", h)
    a = TLSConn("anon")
    check("a certificate no user claims: login needed",
          a.code("lookup", "dash/o") == "AUTH_REQUIRED")
    h = a.ok("hello", {"user": "writer", "auth": TOKENS["writer"]})
    check("... then hello with a token works over TLS", h["user"] == "writer", h)
    peer = "%s:%d" % a.s.getsockname()[:2]
    check("debug: a certificate login is logged with peer and user",
          wait_for(lambda: log_has("logged in as dash by its certificate")), log)
    check("debug: a hello login is logged with peer and user", wait_for(lambda: any(
        peer in l and "logged in as writer by hello" in l for l in log)), log)
    check("debug: no token in any line", not any(t in l for t in TOKENS.values() for l in log))

    def reload(text, nusers):
        write(users_path, text)
        mark = len(log)
        proc.send_signal(signal.SIGHUP)
        return wait_for(lambda: any("SIGHUP: read %d user(s)" % nusers in l
                                    for l in log[mark:]))

    # The user stays but no longer claims the certificate's CN: the
    # certificate is revoked, its connection closed; a token login stays.
    check("cert-cn removed: reload logged", reload(
        users_text(*BASE) + "[user dash]\nrole = read\ntoken-sha256 = %s\n" % sha("dash-tok"),
        5))
    check("cert-cn removed on reload: the certificate's connection closed", d.closed())
    check("... a token login over TLS stays", a.ok("ping") == "pong")
    check("cert-cn back: reload logged", reload(users_text(*BASE) +
          "[user dash]\nrole = read\ncert-cn = dash.example\n", 5))
    d = TLSConn("cli")
    check("cert-cn back: the certificate logs in again", d.ok("lookup", "dash/o") == obj)
    check("cert-cn: reload logged", reload(users_text(*BASE), 4))
    check("cert-cn: its user removed on reload: connection closed", d.closed())
finally:
    proc.terminate()
    proc.wait(timeout=30)
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)

print("failures:", check.failures)
sys.exit(1 if check.failures else 0)
