#!/usr/bin/python3
"""docs/security.md's worked example, run as written, so that the page
cannot rot: its sh blocks, in order, in one bash, with these rcstored and
rcstore first on PATH. Only /tmp/rcs-tls is replaced (by a temporary
directory); the example's fixed port 7373 stays, in a network namespace of
its own (unshare -n, a fresh loopback) where one can be made, and is
replaced by a free port where not. The output is checked against what the
page says happens: the users file `rcstore user-hash` made holds the
tokens' SHA-256 and nothing else of them; over TLS `ops` and `jobs` log in
with their tokens, `jobs` is confined to `jobs/` (lookup outside it and gc
answer PERMISSION_DENIED, names lists its own only); a client without the
CA, a plaintext client at the TLS port and a wrong token each fail with
their own clear error; no token reaches the log; with mutual TLS a client
without a certificate is refused and `app-reader`'s certificate logs in the
read-only user `reader` without a token; after SIGHUP new handshakes show
the new certificate and the server still serves. Fails at once if rcstored
or rcstore lacks one of the TLS and users options it uses.

usage: test_security_tour.py RCSTORED RCSTORE SOURCE_DIR"""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tour  # noqa: E402

RCSTORED, RCSTORE, SRC = sys.argv[1:4]
failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok  " if cond else "FAIL"), name, "" if cond else detail)
    failures += not cond


def skip(why):
    # The options are part of the product now: their absence is a failure,
    # not a reason to skip.
    print("FAIL:", why)
    sys.exit(1)


def helptext(prog):
    r = subprocess.run([prog, "--help"], capture_output=True, text=True)
    return r.stdout + r.stderr


h = helptext(RCSTORED)
for opt in ("--tls-cert-file", "--tls-key-file", "--tls-ca-file", "--users-file"):
    if opt not in h:
        skip(f"this rcstored has no {opt}")
h = helptext(RCSTORE)
for opt in ("--cacert", "--cert", "--key", "--user", "user-hash"):
    if opt not in h:
        skip(f"this rcstore has no {opt}")
if not shutil.which("openssl"):
    skip("no openssl command")

text = open(os.path.join(SRC, "docs/security.md")).read()
blocks = [b.text for b in tour.blocks(os.path.join(SRC, "docs/security.md"), "sh")]
check("the page has the worked example", len(blocks) >= 7, len(blocks))
tmp = tempfile.mkdtemp()
state = os.path.join(tmp, "rcs-tls")
keep = os.path.join(tmp, "keep")
os.mkdir(keep)
port = 7373
try:
    bindir = tour.bindir(tmp, rcstored=RCSTORED, rcstore=RCSTORE)
    netns = tour.can_unshare_net()
    if not netns:
        port = tour.free_port()
        print(f"no network namespace (unshare -n needs root): port {port} instead of 7373")
    # Before the last block (which removes the directory), keep what the
    # checks below read: the tokens, the users file, the server's log.
    script = "".join(blocks[:-1]) + f'cp *.token users.ini rcstored.log "{keep}"/\n' + blocks[-1]
    script = script.replace("/tmp/rcs-tls", state).replace("7373", str(port))
    with open(os.path.join(tmp, "tour.sh"), "w") as f:
        f.write(script)
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"])
    cmd = ["bash", "-x", os.path.join(tmp, "tour.sh")]
    if netns:
        cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec bash -x "$0"',
               os.path.join(tmp, "tour.sh")]
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=120)
        out = r.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        check("the example ends within 120 s", False)
    print(out)

    steps = tour.trace_steps(out)

    def runs(pattern):
        """The outputs (a list of lines each) of the rcstore commands whose
        traced line matches pattern, in order."""
        return [s[1] for s in steps if s[0].startswith("rcstore ") and re.search(pattern, s[0])]

    def one(outs, i=0):
        return "\n".join(outs[i]) if len(outs) > i else "(not run)"

    tls = rf"-H tls://localhost:{port} --cacert ca\.pem"
    ops = tls + r" --user ops --auth-file ops\.token"
    jobs = tls + r" --user jobs --auth-file jobs\.token"
    mutual = tls + r" --cert app-reader\.pem --key app-reader\.key"

    # The users file: each token's SHA-256 (trailing newline stripped, as
    # --auth-file reads it), and nothing else of the tokens.
    try:
        users = open(os.path.join(keep, "users.ini")).read()
        tokens = {u: open(os.path.join(keep, f"{u}.token")).read().rstrip("\n")
                  for u in ("ops", "jobs")}
        log = open(os.path.join(keep, "rcstored.log")).read()
    except OSError as e:
        users, tokens, log = "", {}, ""
        check("the example left its users file, tokens and log", False, e)
    sections = {}
    for m in re.finditer(r"^\[user (\S+)\]\n((?:[^\[\n].*\n?|\n)*)", users, re.M):
        sections[m.group(1)] = dict(
            (k.strip(), v.split(";")[0].strip())
            for k, _, v in (l.partition("=") for l in m.group(2).splitlines() if "=" in l))
    check("users.ini: ops, jobs and reader", sorted(sections) == ["jobs", "ops", "reader"],
          users)
    for u, role in (("ops", "admin"), ("jobs", "write")):
        tok = tokens.get(u, "")
        sec = sections.get(u, {})
        check(f"users.ini: {u}'s token-sha256 is its token's SHA-256 and its role {role}",
              len(tok) == 64 and sec.get("token-sha256") == hashlib.sha256(tok.encode()).hexdigest()
              and sec.get("role") == role, sec)
        check(f"users.ini: {u}'s token is not in it", tok and tok not in users)
    check("users.ini: jobs is confined to jobs/", sections.get("jobs", {}).get("names") == "jobs/")
    check("users.ini: reader is read-only, by certificate",
          sections.get("reader", {}) == {"role": "read", "cert-cn": "app-reader"},
          sections.get("reader"))

    pings = runs(tls + r" ping$")
    check("TLS ping with --cacert: pong", one(pings) == "pong", one(pings))
    made = runs(ops + r" create settings --name config/main")
    check("ops creates config/main over TLS", re.fullmatch(r"\d+", one(made)) is not None,
          one(made))
    made = runs(jobs + r" create 'job 1' --name jobs/1")
    check("jobs creates jobs/1 over TLS", re.fullmatch(r"\d+", one(made)) is not None, one(made))
    o = one(runs(jobs + r" lookup config/main"))
    check("jobs may not look up config/main: PERMISSION_DENIED", "PERMISSION_DENIED" in o, o)
    o = runs(jobs + r" names$")
    check("jobs lists jobs/1 only", len(o) == 1 and any("jobs/1" in l for l in o[0]) and
          not any("config/main" in l for l in o[0]), o)
    o = runs(ops + r" names$")
    check("ops lists both names", len(o) == 1 and any("jobs/1" in l for l in o[0]) and
          any("config/main" in l for l in o[0]), o)
    o = one(runs(jobs + r" gc$"))
    check("jobs may not gc: PERMISSION_DENIED", "PERMISSION_DENIED" in o, o)

    o = one(runs(rf"^rcstore -H tls://localhost:{port} ping$"))
    check("without the CA: certificate verify failed",
          "verify failed" in o and "pong" not in o, o)
    o = one(runs(rf"^rcstore -H 127\.0\.0\.1:{port} ping$"))
    check("plaintext at the TLS port: the server says it speaks TLS",
          "speaks TLS" in o and "pong" not in o, o)
    shown = re.search(r"^rcstore: .*this port speaks TLS.*$", text, re.M)
    shown = shown.group(0).replace("7373", str(port)) if shown else "(not in the page)"
    check("plaintext at the TLS port: the line the page shows", o == shown, (shown, o))
    o = one(runs(tls + r" --user jobs --auth-file ops\.token ping$"))
    check("a wrong token: AUTH_FAILED", "AUTH_FAILED" in o, o)
    greps = [s[1] for s in steps if s[0].startswith("grep -c ")]
    check("grep finds no token in the log", greps == [["0"]], greps)
    for u, tok in tokens.items():
        check(f"{u}'s token is nowhere in the log", tok and tok not in log)
    check("the log names the refused user and the peer",
          any("jobs" in l and "127.0.0.1" in l for l in log.splitlines()), log)

    made = runs(r"^rcstore -s \S+ --user ops --auth-file ops\.token create settings")
    check("mutual TLS: ops makes config/main again through the unix socket",
          re.fullmatch(r"\d+", one(made)) is not None, one(made))
    check("mutual TLS: a client without a certificate is refused",
          len(pings) == 2 and pings[1] != ["pong"] and pings[1], pings)
    o = one(runs(mutual + r" lookup config/main$"))
    check("mutual TLS: app-reader's certificate looks up config/main without a token",
          re.fullmatch(r"\d+", o) is not None, o)
    o = runs(mutual + r" names$")
    check("mutual TLS: reader lists config/main (before and after the reload)",
          len(o) == 2 and all(any("config/main" in l for l in x) for x in o), o)
    o = one(runs(mutual + r" create 'not allowed'$"))
    check("mutual TLS: reader may not create: PERMISSION_DENIED", "PERMISSION_DENIED" in o, o)

    serials = [l for l in out.splitlines() if l.startswith("serial=")]
    check("rotation: after SIGHUP new handshakes show the new certificate",
          len(serials) == 2 and serials[0] != serials[1], serials)
    check("the example removed its state (its last command ran)", not os.path.exists(state))
finally:
    # An example cut short leaves its server running: end it (a pid is ours
    # only while its command line names our directory).
    try:
        pid = int(open(os.path.join(state, "rcstored.pid")).read())
        if state.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
    shutil.rmtree(tmp)
print("failures:", failures)
sys.exit(1 if failures else 0)
