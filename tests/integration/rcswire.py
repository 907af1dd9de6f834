"""rcswire: what the Python tests and the soak share to talk to rcstored
over its wire protocol with Debian's python3-msgpack: start a server on a
free port, and a connection that sends requests and reads replies, keeping
the notifications that arrive in between."""
import socket
import struct
import subprocess
import sys
import threading
import time

import msgpack


class Checks:
    """A test's checks: check(name, cond, detail) prints an ok or FAIL line
    with the seconds since the start, and counts the failures."""

    def __init__(self):
        self.failures = 0
        self.t0 = time.time()

    def __call__(self, name, cond, detail=""):
        if cond:
            print("ok  ", name, round(time.time() - self.t0, 1))
        else:
            self.failures += 1
            print("FAIL", name, detail)
        return cond


def start_server(rcstored, *flags, echo=True, keep=False):
    """Start rcstored on 127.0.0.1 port 0 with flags; wait for its "ready"
    line. Returns (process, (host, port), the log lines up to ready; with
    keep, every later line is appended to that list as it is drained). Its
    log keeps being drained (to stderr when echo) so it never blocks."""
    p = subprocess.Popen([rcstored, "--listen", "tcp://127.0.0.1:0", *flags],
                         stderr=subprocess.PIPE, text=True)
    addr, lines = None, []
    for line in p.stderr:
        lines.append(line)
        if "listening on tcp://" in line and addr is None:
            host, port = line.rsplit("tcp://", 1)[1].strip().rsplit(":", 1)
            addr = (host, int(port))
        if " ready (pid " in line:
            sink = sys.stderr.write if echo else (lambda _: None)

            def drain():
                for l in p.stderr:
                    if keep:
                        lines.append(l)
                    sink(l)
            threading.Thread(target=drain, daemon=True).start()
            return p, addr, lines
    raise RuntimeError("rcstored did not start: " + "".join(lines))


class Conn:
    def __init__(self, addr):
        self.s = socket.create_connection(addr)
        self.s.settimeout(30)
        self.u = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.msgid = 0
        self.notes = []

    def send_raw(self, data):
        self.s.sendall(data)

    def send(self, method, *params):
        """Send a request without waiting (pipelining); reply() reads it."""
        self.msgid += 1
        self.send_raw(msgpack.packb([0, self.msgid, method, list(params)], use_bin_type=True))

    def read(self):
        """The next message, or None once the server closed."""
        while True:
            for o in self.u:
                return o
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.u.feed(chunk)

    def reply(self):
        """The next response; notifications before it go to self.notes."""
        while True:
            o = self.read()
            if o is None:
                raise ConnectionError("closed by the server")
            if o[0] == 1:
                return o
            self.notes.append(o)

    def call(self, method, *params):
        self.send(method, *params)
        r = self.reply()
        assert r[1] == self.msgid, r
        return r[2], r[3]

    def ok(self, method, *params):
        err, res = self.call(method, *params)
        if err is not None:
            raise AssertionError(f"{method}{params}: {err}")
        return res

    def code(self, method, *params):
        err, _ = self.call(method, *params)
        return err["code"] if err else None

    def closed(self):
        """True once the server has closed this connection."""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def reset(self):
        """Close with a TCP reset, as a killed process would."""
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()

    def close(self):
        self.s.close()
