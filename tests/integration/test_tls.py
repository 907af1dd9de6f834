#!/usr/bin/python3
"""TLS listeners (SPEC section 10, issue 17), from a client that is not ours:
Python's ssl module. Certificates are made at test time with the openssl
command (an expired one with python3-cryptography) in a temporary directory:
never committed keys. Checked: a round trip over TLS (a 1 MiB object each
way); the wrong CA, an expired certificate, a client certificate required
and missing: each a clear error for that client and nothing else affected;
plaintext sent to a TLS port gets one BAD_REQUEST; a ClientHello on a
plaintext port is closed; a stalled handshake is cut by --idle-timeout;
SIGHUP with a live connection (it keeps working, new handshakes see the new
certificate) and with a bad pair (logged, the old one stays); many
handshakes at once do not stop a plaintext client from being answered; a
TLS client that never reads is cut off at --max-output-bytes; the start-up
errors; the stats counters."""
import datetime
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import msgpack

import rcswire
from rcswire import Conn

RCSTORED = sys.argv[1]
check = rcswire.Checks()
tmp = tempfile.mkdtemp(prefix="test_tls.")


def path(name):
    return os.path.join(tmp, name)


def openssl(*args):
    subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)


KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_ca(name, cn):
    openssl("req", "-x509", *KEY, "-keyout", name + ".key", "-out", name + ".pem",
            "-days", "2", "-subj", "/CN=" + cn)


def make_cert(name, cn, serial, ca="ca", san=True):
    """A certificate for cn signed by ca, with the given serial number."""
    openssl("req", *KEY, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
    ext = []
    if san:
        with open(path("san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        ext = ["-extfile", "san.ext"]
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-set_serial", str(serial), "-days", "2", *ext, "-out", name + ".pem")


def make_expired(name, serial):
    """A server certificate the CA signed that expired yesterday."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import ipaddress
    ca_key = serialization.load_pem_private_key(open(path("ca.key"), "rb").read(), None)
    ca = x509.load_pem_x509_certificate(open(path("ca.pem"), "rb").read())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(days=3))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    with open(path(name + ".pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path(name + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


make_ca("ca", "rcstore test CA")
make_ca("other", "another CA")
make_cert("srv1", "localhost", 1001)
make_cert("srv2", "localhost-2", 1002)
make_cert("alice", "alice", 2001, san=False)
make_cert("mallory", "mallory", 3001, ca="other", san=False)
make_expired("expired", 1003)
# What the server is given; SIGHUP re-reads these two paths.
shutil.copy(path("srv1.pem"), path("server.pem"))
shutil.copy(path("srv1.key"), path("server.key"))


def start(*flags, cert="server", keep=True):
    """rcstored with a plaintext and a TLS listener. Returns (process,
    plaintext address, TLS address, log lines: kept growing)."""
    proc, addr, lines = rcswire.start_server(
        RCSTORED, "--listen", "tls://127.0.0.1:0", "--tls-cert-file", path(cert + ".pem"),
        "--tls-key-file", path(cert + ".key"), *flags, keep=keep)
    tls = None
    for l in lines:
        if "listening on tls://" in l:
            host, port = l.rsplit("tls://", 1)[1].strip().rsplit(":", 1)
            tls = (host, int(port))
    return proc, addr, tls, lines


def stop(proc, what):
    proc.terminate()
    check(what + ": the server exits 0", proc.wait(timeout=30) == 0)


def client_ctx(ca="ca", cert=None):
    ctx = ssl.create_default_context(cafile=path(ca + ".pem"))
    if cert:
        ctx.load_cert_chain(path(cert + ".pem"), path(cert + ".key"))
    return ctx


class TLSConn(Conn):
    """rcswire's connection over TLS (the handshake done in the constructor)."""

    def __init__(self, addr, ctx, host="localhost"):
        raw = socket.create_connection(addr)
        raw.settimeout(30)
        try:
            self.s = ctx.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self.u = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.msgid = 0
        self.notes = []

    def closed(self):
        try:
            return super().closed()
        except (ssl.SSLError, OSError):
            return True

    def serial(self):
        return int(self.s.getpeercert()["serialNumber"], 16)


def tls_error(addr, ctx, host="localhost", request=True):
    """What a TLS client gets: None if a ping is answered, else the error
    (the handshake's, or the first read's: a TLS 1.3 server refuses a
    client certificate after the client's side of the handshake is done)."""
    try:
        c = TLSConn(addr, ctx, host)
    except (ssl.SSLError, OSError) as e:
        return e
    try:
        if request:
            c.call("ping")
        return None
    except (ssl.SSLError, OSError) as e:
        return e
    finally:
        c.close()


def log_has(lines, text, timeout=20):
    """Whether a log line with text appears (the server logs as it goes:
    the line is the event waited for)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(text in l for l in list(lines)):
            return True
        time.sleep(0.05)
    return False


def stats(addr):
    c = Conn(addr)
    try:
        return c.ok("stats")["server"]
    finally:
        c.close()


# ---- round trips, errors that affect only their client ----
proc, plain, tls, lines = start()
check("a tls:// listener is logged with its port", tls is not None and tls[1] > 0)
c = TLSConn(tls, client_ctx())
check("round trip over TLS: ping", c.call("ping") == (None, "pong"))
check("TLS 1.2 or later", c.s.version() in ("TLSv1.2", "TLSv1.3"), c.s.version())
big = os.urandom(1 << 20)
oid = c.ok("create", big)
got = c.ok("get", oid)
check("round trip over TLS: a 1 MiB object each way", got.get("data") == big)
pipelined = 200
for i in range(pipelined):
    c.send("ping")
replies = [c.reply() for _ in range(pipelined)]
check("round trip over TLS: 200 pipelined requests answered in order",
      [r[1] for r in replies] == list(range(c.msgid - pipelined + 1, c.msgid + 1)))
c12 = ssl.create_default_context(cafile=path("ca.pem"))
c12.maximum_version = ssl.TLSVersion.TLSv1_2
check("TLS 1.2 works too", tls_error(tls, c12) is None)
c11 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
c11.load_verify_locations(path("ca.pem"))
try:
    c11.minimum_version = ssl.TLSVersion.TLSv1
    c11.maximum_version = ssl.TLSVersion.TLSv1_1
    c11.set_ciphers("ALL:@SECLEVEL=0")
    e = tls_error(tls, c11)
    check("TLS 1.1 is refused", e is not None, repr(e))
except (ValueError, ssl.SSLError) as e:
    print("     (this Python cannot offer TLS 1.1:", e, ")")
check("the server certificate's IP SAN verifies for 127.0.0.1",
      tls_error(tls, client_ctx(), host="127.0.0.1") is None)

e = tls_error(tls, client_ctx("other"))
check("wrong CA: the client's handshake fails verifying the certificate",
      isinstance(e, ssl.SSLCertVerificationError), repr(e))
check("wrong CA: the server logs the failed handshake with the peer and the reason",
      log_has(lines, "TLS handshake failed: tlsv1 alert unknown ca"))
wrong = [l for l in lines if "alert unknown ca" in l]
check("... the line is at info and names the peer 127.0.0.1:PORT",
      wrong and " info " in wrong[0] and "127.0.0.1:" in wrong[0], repr(wrong))
check("wrong CA: the live TLS connection still works", c.call("ping") == (None, "pong"))
check("wrong CA: a new TLS client still works", tls_error(tls, client_ctx()) is None)
p = Conn(plain)
check("wrong CA: a plaintext client still works", p.call("ping") == (None, "pong"))

# ---- plaintext to the TLS port, TLS to the plaintext port ----
objects = c.ok("stats")["heap"]["objects"]
s = socket.create_connection(tls)
s.settimeout(30)
s.sendall(msgpack.packb([0, 7, "create", [b"x"]]))
u = msgpack.Unpacker(raw=False)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
u.feed(data)
msgs = list(u)
check("plaintext to a TLS port: one response, msgid 0, BAD_REQUEST, then closed",
      len(msgs) == 1 and msgs[0][0] == 1 and msgs[0][1] == 0 and
      msgs[0][2]["code"] == "BAD_REQUEST" and msgs[0][3] is None, repr(msgs))
check("plaintext to a TLS port: the message says where to go",
      len(msgs) == 1 and msgs[0][2]["message"] == "this port speaks TLS: use tls://HOST:PORT",
      repr(msgs))
check("plaintext to a TLS port: logged at info with the peer",
      log_has(lines, "sent plaintext to a TLS port"))
check("plaintext to a TLS port: the request was not served (no object made)",
      c.ok("stats")["heap"]["objects"] == objects)
s.close()
e = tls_error(plain, client_ctx())
check("TLS to a plaintext port: the client's handshake fails (closed)", e is not None, repr(e))
check("TLS to a plaintext port: logged", log_has(lines, "TLS handshake on a plaintext port"))
check("after both: the live TLS connection still works", c.call("ping") == (None, "pong"))
check("after both: the plaintext one too", p.call("ping") == (None, "pong"))
# No plaintext byte of a TLS connection in the log: the object's data and a
# marker sent over TLS.
c.ok("create", b"SECRET-MARKER-0123456789")
check("no plaintext of a TLS connection in the log",
      not any("SECRET-MARKER" in l for l in lines))

# ---- SIGHUP: a new pair, then a bad one ----
check("before SIGHUP: the first certificate (serial 1001)", c.serial() == 1001)
shutil.copy(path("srv2.pem"), path("server.pem"))
shutil.copy(path("srv2.key"), path("server.key"))
proc.send_signal(signal.SIGHUP)
check("SIGHUP: reload logged", log_has(lines, "SIGHUP: reloaded the TLS certificate"))
check("SIGHUP: the live connection still works", c.call("ping") == (None, "pong"))
check("SIGHUP: it still has the first certificate", c.serial() == 1001)
n = TLSConn(tls, client_ctx())
check("SIGHUP: a new handshake gets the new certificate (serial 1002, CN localhost-2)",
      n.serial() == 1002 and ((("commonName", "localhost-2"),),) == n.s.getpeercert()["subject"],
      repr(n.s.getpeercert()))
n.close()
# A bad pair: the first certificate with the second's key.
shutil.copy(path("srv1.pem"), path("server.pem"))
proc.send_signal(signal.SIGHUP)
check("SIGHUP with a bad pair: logged, naming the key file",
      log_has(lines, "does not match the certificate"))
bad = [l for l in lines if "does not match the certificate" in l]
check("SIGHUP with a bad pair: the line is a warning and names server.key",
      bad and " warn " in bad[-1] and path("server.key") in bad[-1], repr(bad))
n = TLSConn(tls, client_ctx())
check("SIGHUP with a bad pair: the loaded certificate stays (serial 1002)", n.serial() == 1002)
n.close()
check("SIGHUP with a bad pair: the live connection still works", c.call("ping") == (None, "pong"))
with open(path("server.pem"), "w") as f:
    f.write("not a certificate\n")
proc.send_signal(signal.SIGHUP)
check("SIGHUP with a file that is not PEM: logged", log_has(lines, "cannot load the certificate"))
check("... and the server still answers over TLS", tls_error(tls, client_ctx()) is None)
shutil.copy(path("srv1.pem"), path("server.pem"))
shutil.copy(path("srv1.key"), path("server.key"))

# ---- many handshakes at once; a plaintext client's pings are answered ----
# Raw ClientHellos (made by Python's ssl over memory BIOs), sent on many
# sockets at once: the server must do a key exchange and a signature for
# each, a ration per loop iteration.
def client_hello():
    out = ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


floods = []
for i in range(300):
    s = socket.create_connection(tls)
    s.setblocking(False)
    floods.append(s)
hello = client_hello()
for s in floods:
    s.send(hello)
answered = 0
for i in range(30):
    if p.call("ping") == (None, "pong"):
        answered += 1
check("300 handshakes at once: a plaintext client's 30 pings are all answered", answered == 30)
# Every one of them got its ServerHello (read until each has something).
got = 0
for s in floods:
    s.setblocking(True)
    s.settimeout(30)
    try:
        if s.recv(1)[:1] == b"\x16":
            got += 1
    except OSError:
        pass
    s.close()
check("300 handshakes at once: each got the server's answer", got == 300, got)
check("the live TLS connection still works", c.call("ping") == (None, "pong"))

st = stats(plain)
check("stats: tls_connections counts the open TLS connection", st["tls_connections"] >= 1, st)
check("stats: tls_handshakes counts the completed ones (7 above, the last may lag)",
      st["tls_handshakes"] >= 6, st)
check("stats: tls_handshakes_failed counted (wrong CA, plaintext)",
      st["tls_handshakes_failed"] >= 2, st)
c.close()
p.close()
stop(proc, "round trips")

# ---- an expired server certificate ----
proc, plain, tls, lines = start(cert="expired")
e = tls_error(tls, client_ctx())
check("expired certificate: the client's handshake fails saying so",
      isinstance(e, ssl.SSLCertVerificationError) and "expired" in str(e), repr(e))
check("expired certificate: the server still answers plaintext",
      stats(plain)["connections"] >= 1)
stop(proc, "expired")

# ---- mutual TLS ----
proc, plain, tls, lines = start("--tls-ca-file", path("ca.pem"))
e = tls_error(tls, client_ctx())
check("mutual TLS: a client without a certificate is refused", e is not None, repr(e))
check("mutual TLS: the server logs why",
      log_has(lines, "TLS handshake failed: peer did not return a certificate"))
e = tls_error(tls, client_ctx(cert="mallory"))
check("mutual TLS: a certificate from another CA is refused", e is not None, repr(e))
check("mutual TLS: ... logged", log_has(lines, "certificate verify failed"))
a = TLSConn(tls, client_ctx(cert="alice"))
check("mutual TLS: alice's certificate is accepted", a.call("ping") == (None, "pong"))
a.close()
stop(proc, "mutual TLS")

# ---- a stalled handshake is cut by --idle-timeout ----
proc, plain, tls, lines = start("--idle-timeout", "1")
s = socket.create_connection(tls)
s.settimeout(60)
s.sendall(client_hello()[:20])  # part of a ClientHello, then nothing
try:
    cut = s.recv(1) == b""
except OSError:
    cut = True
check("a stalled handshake is closed by --idle-timeout", cut)
s.close()
s = socket.create_connection(tls)  # nothing at all
s.settimeout(60)
try:
    cut = s.recv(1) == b""
except OSError:
    cut = True
check("a TLS connection that never starts its handshake is closed too", cut)
s.close()
check("stats: connections_timed_out counts both", stats(plain)["connections_timed_out"] >= 2)
c = TLSConn(tls, client_ctx())
check("a finished handshake is idle, not stalled: still open after the cut",
      c.call("ping") == (None, "pong"))
c.close()
stop(proc, "idle timeout")

# ---- a TLS client that never reads is cut off at --max-output-bytes ----
proc, plain, tls, lines = start("--max-output-bytes", "256k")
c = TLSConn(tls, client_ctx())
big = c.ok("create", b"z" * 60000)
c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
req = msgpack.packb([0, 1, "get", [big]])
try:
    for _ in range(2000):
        c.send_raw(req)
except (OSError, ssl.SSLError):
    pass
check("a TLS client that never reads: cut off past max_output_bytes",
      log_has(lines, "passed max_output_bytes"))
check("... and others are unaffected", tls_error(tls, client_ctx()) is None)
c.close()
stop(proc, "non-reader")

# ---- start-up errors ----
def start_fails(*flags):
    r = subprocess.run([RCSTORED, "--listen", "tls://127.0.0.1:0", *flags],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stderr


rc, err = start_fails()
check("a tls:// listener without a certificate: exit 2, saying what is missing",
      rc == 2 and "--tls-cert-file and --tls-key-file" in err, (rc, err))
rc, err = start_fails("--tls-cert-file", path("srv1.pem"), "--tls-key-file", path("srv2.key"))
check("a key that does not match: exit 2, naming the file",
      rc == 2 and "does not match the certificate" in err and path("srv2.key") in err, (rc, err))
rc, err = start_fails("--tls-cert-file", path("missing.pem"), "--tls-key-file", path("srv1.key"))
check("a missing certificate file: exit 2, naming it and the reason",
      rc == 2 and path("missing.pem") in err and "No such file" in err, (rc, err))
rc, err = start_fails("--tls-cert-file", path("srv1.pem"), "--tls-key-file", path("srv1.key"),
                      "--tls-ca-file", path("nothing.pem"))
check("a missing CA file: exit 2", rc == 2 and path("nothing.pem") in err, (rc, err))

shutil.rmtree(tmp)
sys.exit(1 if check.failures else 0)
