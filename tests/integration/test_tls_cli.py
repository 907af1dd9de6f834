"""The rcstore CLI and rcstore-bench over TLS (SPEC section 10), with
certificates made at test time (make_certs.sh), against two kinds of TLS
server: rcstored's own tls:// listeners (mutual TLS with --tls-ca-file),
and tls_front.py (Python's ssl module before a real plaintext rcstored).
Checked for each: ping by IP
and by name, the CA from --cacert or RCSTORE_CACERT, --tls for a bare
HOST:PORT, mutual TLS with --cert/--key, and each refusal as one clear line
and exit status 2, never a hang (every run has a timeout): a wrong CA, a
name the certificate does not carry, a missing client certificate, TLS to a
plaintext port, plaintext to a TLS port; a server that offers only TLS 1.1
(openssl s_server) is refused. The one-shot CLI's lines are the ones
rcstore(1) shows (no "; the next request reconnects": there is no next
request), the shell's keep it. The bench runs its tests over TLS (with and
without a client certificate) and reports 0 errors. TLS options on the
command line with a plaintext address (tcp://, a unix socket) print one
warning and the command runs in plaintext (CLI and bench); the same from
the environment, nothing.
Usage: test_tls_cli.py RCSTORED RCSTORE RCSTORE_BENCH"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from rcswire import Checks, start_server  # noqa: E402

RCSTORED, RCSTORE, BENCH = sys.argv[1:4]
checked = Checks()
tmp = tempfile.mkdtemp(prefix="rcs-tls-cli-")
subprocess.run(["bash", os.path.join(HERE, "make_certs.sh"), tmp], check=True)


def f(name):
    return os.path.join(tmp, name)


def front(*files):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "tls_front.py"),
                          "%s:%d" % srv_addr, *files], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    return p, line.strip().rsplit(":", 1)[1]


def run(prog, *args, env=None):
    e = dict(os.environ)
    for k in ("RCSTORE_CACERT", "RCSTORE_CERT", "RCSTORE_KEY", "RCSTORE_ADDRESS"):
        e.pop(k, None)
    e.update(env or {})
    try:
        p = subprocess.run([prog, *args], capture_output=True, text=True, timeout=30, env=e)
    except subprocess.TimeoutExpired:
        return "timeout", "", "timed out after 30 s"
    return p.returncode, p.stdout, p.stderr


def real(*flags):
    """An rcstored with a tls:// listener: (process, its TLS port)."""
    p, _, lines = start_server(RCSTORED, "--listen", "tls://127.0.0.1:0", "--tls-cert-file",
                               f("srv.pem"), "--tls-key-file", f("srv.key"), *flags, echo=False)
    port = [l.rsplit(":", 1)[1].strip() for l in lines if "listening on tls://" in l][0]
    return p, port


SOCK = f("plain.sock")
srv, srv_addr, _ = start_server(RCSTORED, "--listen", "unix://" + SOCK, echo=False)
plain = "127.0.0.1:%d" % srv_addr[1]
fronts, reals = [], []


def side(kind):
    if kind == "tls_front":
        p, port = front(f("srv.pem"), f("srv.key"))
        mp, mport = front(f("srv.pem"), f("srv.key"), f("ca.pem"))
        fronts.extend([p, mp])
    else:
        p, port = real()
        mp, mport = real("--tls-ca-file", f("ca.pem"))
        reals.extend([p, mp])
    return port, mport


def checks(kind):
    port, mport = side(kind)
    T, TN, M = "tls://127.0.0.1:" + port, "tls://localhost:" + port, "tls://127.0.0.1:" + mport

    def check(name, cond, detail=""):
        return checked(kind + ": " + name, cond, detail)

    def cli_ok(name, *args, env=None):
        rc, out, err = run(RCSTORE, *args, "ping", env=env)
        check(name, rc == 0 and out.strip() == "pong", (rc, out, err))

    def cli_refused(name, words, *args, env=None):
        rc, out, err = run(RCSTORE, *args, "ping", env=env)
        check(name, rc == 2 and all(w in err for w in words) and err.count("\n") == 1,
              (rc, out, err))

    cli_ok("CLI ping over TLS by IP", "-H", T, "--cacert", f("ca.pem"))
    cli_ok("CLI ping over TLS by name", "-H", TN, "--cacert", f("ca.pem"))
    cli_ok("RCSTORE_CACERT", "-H", T, env={"RCSTORE_CACERT": f("ca.pem")})
    cli_ok("--tls makes HOST:PORT TLS", "--tls", "-H", "127.0.0.1:" + port,
           env={"RCSTORE_CACERT": f("ca.pem")})
    cli_ok("RCSTORE_ADDRESS tls://", "--cacert", f("ca.pem"), env={"RCSTORE_ADDRESS": T})
    cli_ok("mutual TLS with --cert/--key", "-H", M, "--cacert", f("ca.pem"),
           "--cert", f("cli.pem"), "--key", f("cli.key"))
    cli_ok("mutual TLS with RCSTORE_CERT/KEY", "-H", M, "--cacert", f("ca.pem"),
           env={"RCSTORE_CERT": f("cli.pem"), "RCSTORE_KEY": f("cli.key")})
    cli_ok("--insecure: a wrong CA and name ignored", "-H", T, "--cacert", f("other.pem"),
           "--sni", "db.example.com", "--insecure")
    cli_refused("wrong CA", ["TLS: certificate verify failed", "unable to get local issuer"],
                "-H", T, "--cacert", f("other.pem"))
    cli_refused("the system's store does not know the test CA",
                ["TLS: certificate verify failed"], "-H", T)
    cli_refused("name mismatch", ["hostname mismatch", "db.example.com"], "-H", T,
                "--cacert", f("ca.pem"), "--sni", "db.example.com")
    cli_refused("client certificate missing",
                ["rcstore: CONNECTION_FAILED: TLS: the server requires a client certificate (tlsv13 alert "
                 "certificate required) (%s)\n" % M], "-H", M, "--cacert", f("ca.pem"))
    cli_refused("CA file missing", ["CA file", "nope.pem"], "-H", T, "--cacert", f("nope.pem"))
    cli_refused("key without certificate", ["needs its key"], "-H", T, "--key", f("cli.key"))
    cli_refused("TLS to a plaintext port", ["rcstore: TLS: the server closed the connection "
                "during the handshake (is the port plaintext?) (tls://%s)\n" % plain],
                "-H", "tls://" + plain, "--cacert", f("ca.pem"))
    cli_refused("plaintext to a TLS port", ["rcstore: CONNECTION_FAILED: the server refused the connection: "
                "this port speaks TLS: use tls://", " (127.0.0.1:%s)\n" % port],
                "-H", "127.0.0.1:" + port)
    for name, args in (("plaintext to a TLS port", ["-H", "127.0.0.1:" + port]),
                       ("client certificate missing", ["-H", M, "--cacert", f("ca.pem")])):
        rc, out, err = run(RCSTORE, *args, "ping")
        check(name + ": one-shot, no 'next request'", rc == 2 and "next request" not in err,
              (rc, out, err))
        try:
            p = subprocess.run([RCSTORE, *args], input="ping\n", capture_output=True, text=True,
                               timeout=30)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            rc, out, err = "timeout", "", ""
        check(name + ": the shell says the next request reconnects",
              "; the next request reconnects" in err, (rc, out, err))
    rc, out, err = run(RCSTORE, "-H", plain, "ping")
    check("the plaintext port still serves", rc == 0 and out.strip() == "pong", (rc, out, err))

    def bench(*args):
        rc, out, err = run(BENCH, "-c", "4", "-P", "8", "-n", "2000", "-r", "64", "--json",
                           *args)
        try:
            return rc, json.loads(out), err
        except ValueError:
            return rc, None, err

    rc, doc, err = bench("-H", T, "--cacert", f("ca.pem"), "-t", "ping,create,incref,cycle")
    check("bench over TLS: 0 errors", rc == 0 and doc and len(doc) == 4 and
          all(t["errors"] == 0 and t["lost"] == 0 and t["requests"] >= 2000 for t in doc),
          (rc, doc, err))
    rc, doc, err = bench("-h", "127.0.0.1", "-p", mport, "--cacert", f("ca.pem"), "--cert",
                         f("cli.pem"), "--key", f("cli.key"), "--threads", "2", "-t", "get")
    check("bench with a client certificate, 2 threads: 0 errors", rc == 0 and doc and
          doc[0]["errors"] == 0 and doc[0]["requests"] >= 2000, (rc, doc, err))

    def bench_refused(name, words, *args):
        rc, out, err = run(BENCH, "-c", "4", "-n", "100", "-t", "ping", *args)
        check(name, rc == 2 and all(w in err for w in words), (rc, out, err))

    bench_refused("bench: wrong CA", ["TLS: certificate verify failed"], "-H", T,
                  "--cacert", f("other.pem"))
    bench_refused("bench: client certificate missing", ["TLS:", "certificate required"],
                  "-H", M, "--cacert", f("ca.pem"))
    bench_refused("bench: TLS to a plaintext port", ["TLS:", "plaintext"], "-H", "tls://" + plain,
                  "--cacert", f("ca.pem"))
    bench_refused("bench: plaintext to a TLS port", ["this port speaks TLS"],
                  "-H", "127.0.0.1:" + port)
    bench_refused("bench: tls:// and tcp:// mixed", ["mixes"], "-H", T + ",tcp://" + plain)


def plaintext_warnings():
    """TLS options with an address that is plaintext whatever they say."""
    tcp = "tcp://" + plain

    def cli(name, want_err, *args, env=None):
        rc, out, err = run(RCSTORE, *args, "ping", env=env)
        checked(name, rc == 0 and out.strip() == "pong" and err == want_err, (rc, out, err))

    cli("--cacert with tcp://: one warning, runs in plaintext",
        "rcstore: warning: --cacert applies only to TLS; %s is plaintext\n" % tcp,
        "-H", tcp, "--cacert", f("ca.pem"))
    cli("--cert/--key with -s: one warning, runs in plaintext",
        "rcstore: warning: --cert/--key apply only to TLS; unix://%s is plaintext\n" % SOCK,
        "-s", SOCK, "--cert", f("cli.pem"), "--key", f("cli.key"))
    cli("RCSTORE_CACERT with tcp://: no warning", "", "-H", tcp,
        env={"RCSTORE_CACERT": f("ca.pem")})
    cli("--cacert with tls:// and tcp:// listed: no warning", "", "-H", tcp + ",tls://" + plain,
        "--cacert", f("ca.pem"))

    def bench(name, want_err, *args, env=None):
        rc, out, err = run(BENCH, "-c", "2", "-n", "200", "-t", "ping", "-q", *args, env=env)
        checked(name, rc == 0 and "PING" in out and err == want_err, (rc, out, err))

    bench("bench: --cacert with -s: one warning, runs in plaintext",
          "rcstore-bench: warning: --cacert applies only to TLS; unix://%s is plaintext\n" % SOCK,
          "-s", SOCK, "--cacert", f("ca.pem"))
    bench("bench: --tls/--insecure with tcp://: one warning, runs in plaintext",
          "rcstore-bench: warning: --tls/--insecure apply only to TLS; %s is plaintext\n" % tcp,
          "-H", tcp, "--tls", "--insecure")
    bench("bench: RCSTORE_CACERT with -s: no warning", "", "-s", SOCK,
          env={"RCSTORE_CACERT": f("ca.pem")})


def tls11_refused():
    """A server that speaks at most TLS 1.1 (openssl s_server): the client
    offers 1.2 and later only, so the handshake fails, saying so."""
    s = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", f("srv.pem"),
                          "-key", f("srv.key"), "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        port = None
        for line in s.stdout:  # "ACCEPT 127.0.0.1:PORT" (OpenSSL 3)
            if line.startswith("ACCEPT"):
                port = line.strip().rsplit(":", 1)[1]
                break
        if port is None:
            print("skip TLS 1.1 server: openssl s_server did not start")
            return
        rc, out, err = run(RCSTORE, "-H", "tls://127.0.0.1:" + port, "--cacert", f("ca.pem"),
                           "ping")
        checked("TLS 1.1 only server refused (TLS 1.2 minimum)",
                rc == 2 and "TLS:" in err and "protocol version" in err, (rc, out, err))
    finally:
        s.kill()
        s.wait()


try:
    checks("rcstored")
    checks("tls_front")
    plaintext_warnings()
    tls11_refused()
finally:
    for p in fronts:
        p.stdin.close()
        p.wait()
    for p in reals + [srv]:
        p.terminate()
        p.wait()
    shutil.rmtree(tmp)
sys.exit(1 if checked.failures else 0)
