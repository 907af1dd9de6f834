"""Fixtures of the rcstore Python client's tests: real rcstored processes.

``server`` is a fresh rcstored (the path in the environment variable
RCSTORED, which CTest sets; else ./build/server/rcstored of this checkout) on
127.0.0.1 at a port the kernel picked, with a unix socket beside it and a
temporary ``--data-dir``; it can be stopped, killed and restarted on the same
addresses and data. ``server_factory(*flags, ...)`` makes more (extra flags,
no data dir, ...). Every server is stopped when its test ends.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
# The package under test is the one in this checkout, not an installed one.
sys.path.insert(0, str(HERE.parent))


def rcstored_path():
    p = os.environ.get("RCSTORED") or str(REPO / "build" / "server" / "rcstored")
    return p if os.access(p, os.X_OK) else None


class Server:
    """One rcstored. ``address`` is ``"tcp://127.0.0.1:PORT"``,
    ``unix_address`` ``"unix:///.../rcstored.sock"`` (None without unix),
    ``data_dir`` the data directory (None without one), ``log`` the lines it
    wrote to stderr so far. The port is the kernel's pick at the first start
    and kept across restarts."""

    READY_TIMEOUT = 30

    def __init__(self, rcstored, flags=(), data_dir=True, unix=True, tls=None):
        self.rcstored = rcstored
        self.flags = list(flags)
        self.dir = tempfile.mkdtemp(prefix="rcspy")  # short: unix socket paths
        self.data_dir = os.path.join(self.dir, "data") if data_dir else None
        self.sock = os.path.join(self.dir, "rcstored.sock") if unix else None
        self.tls = tls  # (certfile, keyfile) for a tls:// listener, or None
        self.port = 0
        self.tls_port = 0
        self.proc = None
        self.log = []
        self._lock = threading.Lock()

    @property
    def address(self):
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def unix_address(self):
        return f"unix://{self.sock}" if self.sock else None

    @property
    def tls_address(self):
        return f"tls://127.0.0.1:{self.tls_port}" if self.tls else None

    def start(self):
        assert self.proc is None, "already running"
        args = [self.rcstored, "--listen", f"tcp://127.0.0.1:{self.port}"]
        if self.sock:
            args += ["--listen", f"unix://{self.sock}"]
        if self.tls:
            args += ["--listen", f"tls://127.0.0.1:{self.tls_port}",
                     "--tls-cert-file", self.tls[0], "--tls-key-file", self.tls[1]]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        args += self.flags
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        ready = threading.Event()
        proc = self.proc

        def drain():
            for line in proc.stderr:
                with self._lock:
                    self.log.append(line)
                if "listening on tcp://" in line and not self.port:
                    self.port = int(line.rsplit(":", 1)[1])
                if "listening on tls://" in line and not self.tls_port:
                    self.tls_port = int(line.rsplit(":", 1)[1])
                if " ready (pid " in line:
                    ready.set()
            ready.set()  # exited: start() reports it

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(self.READY_TIMEOUT) or proc.poll() is not None:
            self.stop()
            raise RuntimeError("rcstored did not start:\n" + "".join(self.log[-20:]))
        return self

    def stop(self, sig=signal.SIGTERM):
        """Stop it (SIGTERM, or sig) and wait for the exit. Returns the
        exit status (None if it was not running)."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def kill(self):
        """SIGKILL, as a crash."""
        return self.stop(signal.SIGKILL)

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        return self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def rcstored():
    p = rcstored_path()
    if p is None:
        pytest.skip("no rcstored: build it (make build) or set RCSTORED to its path")
    return p


@pytest.fixture
def server_factory(rcstored):
    made = []

    def make(*flags, data_dir=True, unix=True, tls=None, start=True):
        s = Server(rcstored, flags, data_dir=data_dir, unix=unix, tls=tls)
        made.append(s)
        return s.start() if start else s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def server(server_factory):
    """A running rcstored with a data directory and the debug methods."""
    return server_factory("--debug-commands")
