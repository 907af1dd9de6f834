"""The rcstore CLI as a redis-cli user tries it (issue 18), against real
rcstored processes on free ports:
- redis-cli's flags: -h HOST -p PORT (a host name too), -s SOCKET, -a TOKEN
  (with its warning, and --no-auth-warning), --user, --help; -h alone is an
  error with a hint; the server named twice is an error;
- a host that does not resolve is reported in the resolver's words;
- data over the server's max_data_bytes fails with TOO_LARGE before it is
  sent (the server never sees the request, the connection stays up);
- exit statuses: 1 server error, 2 usage or connection, 3 a timeout;
- session status and hello hide the resume token unless --show-token;
- --json: data always base64, errors as {"error": {...}} on stdout with
  nothing on stderr and the exit status unchanged;
- the shell: after a server restart the next command reconnects and runs,
  resuming a --ttl shell's lease on a --data-dir server ("reconnected;
  session N resumed") or saying the old session's holds are gone; while the
  server is down a command fails with a clear line and the next one tries
  again; help CMD and CMD --help print that command's help only; in a
  terminal (a pty) Tab completes command names and the history file holds
  each command as soon as it ran (the shell is then killed, not quit).
Every wait is for an event (a line of output, a server's ready line) with a
timeout, never a sleep.
Usage: test_cli_habits.py RCSTORED RCSTORE"""
import atexit
import base64
import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from rcswire import Checks, Conn, start_server  # noqa: E402

RCSTORED, RCSTORE = sys.argv[1:3]
WAIT = float(os.environ.get("RCS_TEST_WAIT", "30"))  # seconds for any one line
check = Checks()
tmp = tempfile.TemporaryDirectory(prefix="rcs-cli-habits-")
T = tmp.name
servers = []


@atexit.register
def cleanup():  # on a failure or an exception too: no server is left running
    for p in servers:
        if p.poll() is None:
            p.kill()
            p.wait()
    tmp.cleanup()


def path(name):
    return os.path.join(T, name)


def server(*flags):
    p, addr, _ = start_server(RCSTORED, *flags, echo=False)
    servers.append(p)
    return p, addr


def serve_at(port, *flags):
    """rcstored again on a known port (a restart): waits for its ready line."""
    p = subprocess.Popen([RCSTORED, "--listen", "tcp://127.0.0.1:%d" % port, *flags],
                         stderr=subprocess.PIPE, text=True)
    servers.append(p)
    lines = []
    for line in p.stderr:
        lines.append(line)
        if " ready (pid " in line:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p
    raise RuntimeError("rcstored did not start again: " + "".join(lines))


def js(text):
    """The JSON document printed, or None (a check then fails, not the test)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def b64(text):
    """The bytes of a base64 string (RFC 4648, padded), or None."""
    try:
        return base64.b64decode(text, validate=True) if isinstance(text, str) else None
    except ValueError:
        return None


def stop(p):
    p.terminate()
    p.wait()


def env(**extra):
    e = dict(os.environ)
    for k in ("RCSTORE_ADDRESS", "RCSTORE_AUTH_FILE", "RCSTORE_USER", "RCSTORE_CACERT",
              "RCSTORE_CERT", "RCSTORE_KEY"):
        e.pop(k, None)
    e["HOME"] = T
    e["RCSTORE_SESSION_FILE"] = path("no-session")
    e.update(extra)
    return e


def cli(*args, stdin=None, **extra):
    try:
        p = subprocess.run([RCSTORE, *args], input=stdin, capture_output=True, text=True,
                           timeout=60, env=env(**extra))
    except subprocess.TimeoutExpired:
        return "timeout", "", ""
    return p.returncode, p.stdout, p.stderr


srv, (host, port) = server("--listen", "unix://" + path("s.sock"), "--max-data-bytes", "1000",
                           "--slowlog-log-slower-than-us", "0")  # every request in slowlog
A = "%s:%d" % (host, port)

# ---- redis-cli's flags ----
rc, out, err = cli("-h", "127.0.0.1", "-p", str(port), "ping")
check("-h HOST -p PORT ping pings", (rc, out, err) == (0, "pong\n", ""), (rc, out, err))
rc, out, err = cli("-h", "localhost", "-p", str(port), "ping")
check("-h takes a host name", (rc, out) == (0, "pong\n"), (rc, out, err))
rc, out, err = cli("-p", str(port), "ping")
check("-p alone: 127.0.0.1", (rc, out) == (0, "pong\n"), (rc, out, err))
rc, out, err = cli("-s", path("s.sock"), "ping")
check("-s SOCKET", (rc, out) == (0, "pong\n"), (rc, out, err))
rc, out, err = cli("--help")
check("--help prints help, exit 0", rc == 0 and out.startswith("Usage: rcstore") and
      "-h HOST, -p PORT" in out and "3 a timeout elapsed" in out, (rc, err))
rc, out, err = cli("-h")
check("-h alone: exit 2, one line with a hint", rc == 2 and out == "" and
      err.count("\n") == 1 and "--help" in err, (rc, out, err))
rc, out, err = cli("-h", "--raw", "ping")
check("-h before another option: the same hint", rc == 2 and "--help" in err, (rc, out, err))
rc, out, err = cli("-H", A, "-p", str(port), "ping")
check("-H and -p together: exit 2", rc == 2 and "named twice" in err, (rc, out, err))
rc, out, err = cli("-p", "0", "ping")
check("-p 0: exit 2", rc == 2 and "port" in err, (rc, out, err))

# -a TOKEN and --user against a server with a token.
with open(path("tok"), "w") as f:
    f.write("s3cret\n")
os.chmod(path("tok"), 0o600)
asrv, (ahost, aport) = server("--auth-token-file", path("tok"))
AA = "%s:%d" % (ahost, aport)
rc, out, err = cli("-H", AA, "create", "x")
check("auth server: refused without a token", rc == 1 and "AUTH_REQUIRED" in err, (rc, out, err))
check("... and a line of its own saying what to give", err.endswith(
    "\ngive --user NAME --auth-file FILE (or RCSTORE_USER and RCSTORE_AUTH_FILE)\n"), err)
rc, out, err = cli("-H", AA, "--json", "create", "x")
check("... not with --json (the error on stdout, stderr empty)", rc == 1 and err == "" and
      (js(out) or {}).get("error", {}).get("code") == "AUTH_REQUIRED", (rc, out, err))
rc, out, err = cli("-H", AA, "ping")
check("auth server: ping without a token still answers", (rc, out) == (0, "pong\n"), (rc, err))
rc, out, err = cli("-H", AA, "-a", "s3cret", "create", "x")
check("-a TOKEN logs in", rc == 0 and out.strip().isdigit(), (rc, out, err))
check("-a warns on stderr, one line", err.count("\n") == 1 and "warning" in err and
      "--auth-file" in err, err)
rc, out, err = cli("-H", AA, "-a", "s3cret", "--no-auth-warning", "ping")
check("--no-auth-warning", (rc, out, err) == (0, "pong\n", ""), (rc, out, err))
rc, out, err = cli("-h", ahost, "-p", str(aport), "-a", "s3cret", "--user", "default",
                   "--no-auth-warning", "--json", "hello")
check("--user with -a", rc == 0 and (js(out) or {}).get("role") == "admin", (rc, out, err))
rc, out, err = cli("-H", AA, "-a", "wrong", "--no-auth-warning", "ping")
check("-a with a wrong token: exit 1", rc == 1 and "AUTH_FAILED" in err, (rc, out, err))

# ---- a name that does not resolve: the resolver's own words ----
try:
    socket.getaddrinfo("nohost.invalid", 7373, type=socket.SOCK_STREAM)
    gai = None
except socket.gaierror as e:
    gai = e.args[1]
rc, out, err = cli("-H", "nohost.invalid:7373", "ping")
check("unresolvable host: exit 2, the resolver's error",
      rc == 2 and gai is not None and err == "rcstore: cannot resolve nohost.invalid: %s\n" % gai,
      (rc, err, gai))
rc, out, err = cli("-h", "nohost.invalid", "--json", "ping")
check("unresolvable host, --json", rc == 2 and err == "" and js(out) == {
    "error": {"code": "CONNECTION_FAILED", "message": "cannot resolve nohost.invalid: %s" % gai}},
    (rc, out, err))
rc, out, err = cli("-H", "127.0.0.1:1", "ping")
check("connection refused: exit 2, errno's words", rc == 2 and
      err == "rcstore: cannot connect to 127.0.0.1:1: Connection refused\n", (rc, err))

# ---- TOO_LARGE before sending ----
c = Conn((host, port))


def creates():
    return c.ok("stats")["ops"].get("create", 0)


before = creates()
with open(path("big"), "wb") as f:  # past what the server reads before cutting one off
    f.write(b"x" * 100000)
with open(path("fits"), "wb") as f:
    f.write(b"y" * 1000)
rc, out, err = cli("-H", A, "create", "--file", path("big"))
check("create over max_data_bytes: exit 1, TOO_LARGE naming both sizes",
      rc == 1 and err == "rcstore: TOO_LARGE: create: data of 100000 bytes is over the server's "
      "max_data_bytes (1000); nothing was sent\n", (rc, out, err))
check("... and the server never saw it", creates() == before, creates())
rc, out, err = cli("-H", A, "--json", "create", "--file", path("big"))
check("TOO_LARGE with --json", rc == 1 and err == "" and
      (js(out) or {}).get("error", {}).get("code") == "TOO_LARGE", (rc, out, err))
rc, out, err = cli("-H", A, "create", "--file", path("fits"), "--name", "fits")
check("exactly max_data_bytes is created", rc == 0 and out.strip().isdigit(), (rc, out, err))
fid = out.strip()
rc, out, err = cli("-H", A, "set-data", fid, "--file", path("big"))
check("set-data over max_data_bytes: TOO_LARGE", rc == 1 and
      "TOO_LARGE: set_data: data of 100000" in err, (rc, out, err))
# In the shell the connection stays up after the refusal, nothing was sent:
# the session is the same one before and after.
rc, out, err = cli("-H", A, stdin="hello\ncreate --file %s\nhello\n" %
                   path("big"))
sessions = re.findall(r"^session: +(\d+)$", out, re.M)
check("shell: TOO_LARGE, and the same connection (session) goes on",
      len(sessions) == 2 and sessions[0] == sessions[1] and "TOO_LARGE" in err and
      "reconnect" not in err, (rc, out, err))

# ---- exit statuses, --json ----
rc, out, err = cli("-H", A, "watch", fid, "--timeout", "1")
check("watch --timeout with no free: exit 3", rc == 3 and "not freed within" in err, (rc, err))
check("... named TIMEOUT as in JSON (one name per condition)",
      err.startswith("rcstore: TIMEOUT: object "), err)
rc, out, err = cli("-H", A, "--json", "watch", fid, "--timeout", "1")
check("watch --timeout --json: TIMEOUT on stdout, exit 3", rc == 3 and err == "" and
      (js(out) or {}).get("error", {}).get("code") == "TIMEOUT", (rc, out, err))
rc, out, err = cli("-H", A, "--json", "get", "99999")
check("--json server error: stdout, exit 1", rc == 1 and err == "" and js(out) == {
    "error": {"code": "NOT_FOUND", "message": "no object 99999"}}, (rc, out, err))
rc, out, err = cli("-H", A, "--json", "get", "notanid")
check("--json usage error: stdout, exit 2", rc == 2 and err == "" and
      (js(out) or {}).get("error", {}).get("code") == "USAGE", (rc, out, err))
rc, out, err = cli("--json", "--frobnicate")
check("--json bad option: stdout, exit 2", rc == 2 and err == "" and
      (js(out) or {}).get("error", {}).get("code") == "USAGE", (rc, out, err))
rc, out, err = cli("-H", "127.0.0.1:1", "--json", "ping")
check("--json connection refused: exit 2", rc == 2 and err == "" and
      (js(out) or {}).get("error", {}).get("code") == "CONNECTION_FAILED", (rc, out, err))
for name, data in (("text", b"hello"), ("binary", b"\x00\xff\xfe bytes"), ("empty", b"")):
    with open(path("d"), "wb") as f:
        f.write(data)
    rc, out, err = cli("-H", A, "create", "--file", path("d"), "--name", "j/" + name)
    rc, out, err = cli("-H", A, "--json", "get", out.strip())
    doc = (js(out) or {}) if rc == 0 else {}
    check("--json get: %s data is base64" % name, b64(doc.get("data")) == data, (rc, out, err))

# share --json prints its token as every bin, base64; claim takes that too.
rc, out, err = cli("-H", A, "--json", "share", fid)
tok = js(out)
check("share --json: the token in base64", rc == 0 and b64(tok) is not None and
      len(b64(tok)) >= 16, (rc, out, err))
rc, out, err = cli("-H", A, "claim", tok if isinstance(tok, str) else "x")
check("claim takes share --json's base64 token", (rc, out.strip()) == (0, fid), (rc, out, err))
rc, out, err = cli("-H", A, "claim", "not/a/token")
check("claim of neither hex nor base64: exit 2", rc == 2 and "share" in err, (rc, out, err))

# ---- slowlog --json: no user is null, as in hello ----
rc, out, err = cli("-H", A, "--json", "hello")
check("hello --json: user null where nobody logs in", rc == 0 and
      "user" in (js(out) or {}) and js(out)["user"] is None, out)
rc, out, err = cli("-H", A, "--json", "slowlog", "100")
check("slowlog --json: user null too", rc == 0 and isinstance(js(out), list) and
      len(js(out)) > 0 and all("user" in e and e["user"] is None for e in js(out)), (rc, out, err))

# ---- the resume token is shown only when asked ----
sf = path("session")
rc, out, err = cli("-H", A, "session", "start", "--ttl", "5m", RCSTORE_SESSION_FILE=sf)
started = re.match(r"session (\d+) started", out)
with open(sf) as f:
    token = f.read().strip()
# session status: the session just resumed, as a user wants to see it.
rc, out, err = cli("-H", A, "session", "status", RCSTORE_SESSION_FILE=sf)
check("session status: the session started, resumed, its lease, the file",
      rc == 0 and started and re.search(r"^session: +%s$" % started.group(1), out, re.M) and
      re.search(r"^resumed: +true$", out, re.M) and re.search(r"^ttl: +300$", out, re.M) and
      re.search(r'^session_file: +"%s"$' % re.escape(sf), out, re.M), (rc, out, err))
rc, out, err = cli("-H", A, "--json", "session", "status", RCSTORE_SESSION_FILE=sf)
check("session status --json: the same",
      rc == 0 and started and js(out) == {"session": int(started.group(1)), "resumed": True,
                                          "ttl": 300, "session_file": sf}, (rc, out, err))
rc, out, err = cli("-H", A, "session", "status", RCSTORE_SESSION_FILE=sf)
check("session status: no token", rc == 0 and "session:" in out and token not in out and
      not re.search(r"^token:", out, re.M), (rc, out))
rc, out, err = cli("-H", A, "--json", "session", "status", RCSTORE_SESSION_FILE=sf)
check("session status --json: no token", rc == 0 and js(out) is not None and "token" not in js(out), out)
rc, out, err = cli("-H", A, "session", "status", "--show-token", RCSTORE_SESSION_FILE=sf)
check("session status --show-token: the hex token", rc == 0 and
      re.search(r"^token: +%s$" % token, out, re.M), (rc, out))
rc, out, err = cli("-H", A, "--json", "session", "status", "--show-token",
                   RCSTORE_SESSION_FILE=sf)
check("--json --show-token: base64 of the token",
      rc == 0 and (b64((js(out) or {}).get("token")) or b"").hex() == token, out)
rc, out, err = cli("-H", A, "hello")
check("hello: no token either", rc == 0 and not re.search(r"^token:", out, re.M), out)
cli("-H", A, "session", "end", RCSTORE_SESSION_FILE=sf)

# ---- help for one command ----
rc, out, err = cli("help", "get")
check("help get: that command only", rc == 0 and out.startswith("Usage: get ID [--raw]\n") and
      len(out.splitlines()) == 3, out)
rc, out2, err = cli("get", "--help")
check("get --help: the same", rc == 0 and out2 == out, out2)
rc, out, err = cli("cluster", "--help")
check("cluster --help: its subcommands", rc == 0 and "cluster transfer [ID]" in out and
      "Usage: get" not in out and len(out.splitlines()) == 9, out)
rc, out, err = cli("help", "frobnicate")
check("help of an unknown command: exit 2", rc == 2 and "unknown command" in err, (rc, err))
rc, out, err = cli("-H", A, stdin="help watch\nping --help\nping\n")
check("shell: help CMD and CMD --help", rc == 0 and out.splitlines()[0] ==
      "Usage: watch ID [--timeout SECS]" and "Usage: ping\n" in out and out.endswith("pong\n") and
      "Commands" not in out, out)


# ---- the shell across a server restart ----
class Shell:
    """rcstore's shell on pipes; stdout and stderr lines are read by
    threads into queues, so that a test waits for the line it expects."""

    def __init__(self, *args):
        self.p = subprocess.Popen([RCSTORE, *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  bufsize=1, env=env())
        self.out, self.err = queue.Queue(), queue.Queue()
        for stream, q in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=lambda s=stream, q=q: [q.put(l) for l in s],
                             daemon=True).start()

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def line(self, q):
        try:
            return q.get(timeout=WAIT).rstrip("\n")
        except queue.Empty:
            return "(nothing in time)"

    def close(self):
        self.p.stdin.close()
        try:
            return self.p.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return "hung"


def session_of(sh):
    sh.send("session status")
    for _ in range(20):
        m = re.match(r"session: +(\d+)$", sh.line(sh.out))
        if m:
            return int(m.group(1))
    return None


def drain(sh):
    """Read the rest of session status's lines: up to its last (limits)."""
    sh.send("ping")
    while sh.line(sh.out) not in ("pong", "(nothing in time)"):
        pass


# A --ttl shell on a --data-dir server: the lease is resumed, holds intact.
dsrv, (dhost, dport) = server("--data-dir", path("data"))
D = "%s:%d" % (dhost, dport)
sh = Shell("-H", D, "--ttl", "60")
sh.send("create kept")
oid = sh.line(sh.out)
sid = session_of(sh)
drain(sh)
stop(dsrv)
sh.send("ping")
down = sh.line(sh.err)
check("server down: the command fails with a clear line",
      down.startswith("rcstore: ") and ("cannot connect to %s: Connection refused" % D in down or
                                        "connection" in down.lower()), down)
if "Connection refused" not in down:  # the ping met the closing connection: once more
    sh.send("ping")
    down = sh.line(sh.err)
check("... saying it cannot connect, and that the next one tries again",
      down.startswith("rcstore: CONNECTION_FAILED: ") and "cannot connect to %s: Connection refused; the next request reconnects" % D in down, down)
dsrv = serve_at(dport, "--data-dir", path("data"))
sh.send("stat " + oid)
note = sh.line(sh.err)
check("restarted: the next command reconnects and resumes the lease",
      note == "reconnected; session %s resumed" % sid, (note, sid))
lines = [sh.line(sh.out) for _ in range(2)]
check("... and runs, the session's hold intact", lines == ["refcount:   1", "holds:      1"],
      lines)
check("the shell outlived it all", sh.close() == 0)

# A shell without a lease: a new session, said so.
sh = Shell("-H", D)
sh.send("create gone")
gone = sh.line(sh.out)
sid = session_of(sh)
drain(sh)
stop(dsrv)
dsrv = serve_at(dport, "--data-dir", path("data"))
sh.send("get " + gone)
note = sh.line(sh.err)
m = re.match(r"reconnected; new session (\d+) \(the old one's holds are gone\)$", note)
check("no lease: a new session, said so", m and int(m.group(1)) != sid, (note, sid))
err = sh.line(sh.err)
check("... and the command ran in it (the object went with the old one)",
      "NOT_FOUND" in err, err)
sh.close()
stop(dsrv)

# A --ttl shell on a server that lost everything (no --data-dir): the lease
# cannot be resumed; a new session, with a lease again.
msrv, (mhost, mport) = server()
M = "%s:%d" % (mhost, mport)
sh = Shell("-H", M, "--ttl", "60")
sid = session_of(sh)
drain(sh)
stop(msrv)
msrv = serve_at(mport)
sh.send("session status")
note = sh.line(sh.err)
m = re.match(r"reconnected; new session (\d+) \(the old one's holds are gone\)$", note)
check("lease lost by the server: a new session, said so", m is not None, note)
status = [sh.line(sh.out) for _ in range(9)]
check("... with a lease of its own again", "ttl:       60" in status, status)
sh.close()
stop(msrv)

# ---- in a terminal: Tab completion and history ----


class Pty:
    def __init__(self, *args, **extra):
        self.m, s = os.openpty()
        self.p = subprocess.Popen([RCSTORE, *args], stdin=s, stdout=s, stderr=s,
                                  env=env(TERM="xterm", **extra), start_new_session=True)
        os.close(s)
        self.buf = b""

    def wait_for(self, pat, t=WAIT):
        """Until the output read so far matches pat (bytes, a regex)."""
        end = time.time() + t
        while not re.search(pat, self.buf):
            r, _, _ = select.select([self.m], [], [], max(0, end - time.time()))
            if not r:
                return False
            try:
                self.buf += os.read(self.m, 4096)
            except OSError:
                return False
        return True

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        os.close(self.m)


hist = path("hist")
t = Pty("-H", A, RCSTORE_HISTFILE=hist)
check("pty: the shell starts", t.wait_for(b"> "), t.buf)
t.buf = b""
os.write(t.m, b"pin\t\r")
check("Tab completes a command name (pin -> ping)", t.wait_for(b"pong"), t.buf)
t.buf = b""
os.write(t.m, b"create --name hist-probe data\r")
check("pty: create ran", t.wait_for(rb"\r\n\d+\r\n.*> "), t.buf)


def history():
    try:
        with open(hist) as f:
            return f.read()
    except OSError as e:
        return str(e)


h = history()
check("history holds each command once it ran, before any quit",
      "ping" in h and "hist-probe" in h, h)
check("the history file is private", os.path.exists(hist) and
      os.stat(hist).st_mode & 0o777 == 0o600)
t.kill()
check("... and keeps them after the shell is killed", "hist-probe" in history())
t = Pty("-H", A, RCSTORE_HISTFILE=hist)
t.wait_for(b"> ")
t.buf = b""
os.write(t.m, b"\x1b[A")  # up arrow: the last command of the killed shell
check("a new shell reads that history", t.wait_for(b"hist-probe"), t.buf)
t.kill()

# ---- a shell started while the server is down: "not connected>" ----
# A free port (the kernel's), nobody listening on it yet.
ps = socket.socket()
ps.bind(("127.0.0.1", 0))
nport = ps.getsockname()[1]
ps.close()
rc, out, err = cli("-p", str(nport), "ping")
check("one-shot with the server down: still exit 2", rc == 2, (rc, out, err))
t = Pty("-p", str(nport), "--ttl", "60")
check("the shell opens with the server down, prompt 'not connected>'",
      t.wait_for(b"not connected> "), t.buf)
t.buf = b""
os.write(t.m, b"ping\r")
check("... a command then fails saying it cannot connect, the prompt unchanged",
      t.wait_for(rb"cannot connect to .*Connection refused.*\r\nnot connected> "), t.buf)
nsrv = serve_at(nport)
t.buf = b""
os.write(t.m, b"create up\r")
check("server up: the next command connects and runs, the prompt names the server",
      t.wait_for(rb"\r\n\d+\r\n127\.0\.0\.1:%d> " % nport), t.buf)
t.buf = b""
os.write(t.m, b"session status\r")
check("... with the start-up hello sent then (--ttl's lease)",
      t.wait_for(rb"ttl: +60\r\n"), t.buf)
t.kill()
stop(nsrv)

sys.exit(1 if check.failures else 0)
