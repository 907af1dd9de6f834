"""PersistenceFailed raised for real: rcstored's data directory on a small
tmpfs that this test mounts (as root; skipped otherwise), filled up while a
client writes, as tests/integration/test_disk_full.py does it."""

import os
import subprocess
import tempfile
import threading
import time

import pytest

import rcstore

MiB = 1 << 20
DATA = b"x" * 1000000


@pytest.fixture
def tmpfs():
    if os.geteuid() != 0:
        pytest.skip("a tmpfs must be mounted, which needs root")
    mnt = tempfile.mkdtemp(prefix="rcspy-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        pytest.skip("mount -t tmpfs refused here: " + r.stderr.strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


def poll(cond, seconds=120):
    """Wait for a state the server reports in stats (no event announces it)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("not within %d s" % seconds)


def test_persistence_failed(rcstored, tmpfs):
    from conftest import Server

    s = Server(rcstored, ["--compact-journal-bytes", "0"], data_dir=False)
    s.data_dir = os.path.join(tmpfs, "data")
    s.start()
    try:
        filler = os.path.join(tmpfs, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(bytes(MiB))
                    f.flush()
            except OSError:
                pass
        writer = rcstore.connect(s.address)
        stop = threading.Event()

        def write():
            try:
                while not stop.is_set():
                    writer.create(DATA)
            except rcstore.Error:
                pass

        t = threading.Thread(target=write, daemon=True)
        t.start()
        with rcstore.connect(s.address) as other:
            poll(lambda: other.stats()["persistence"]["last_error"])
            with pytest.raises(rcstore.PersistenceFailed) as e:
                other.create(b"refused")
            assert e.value.code == "PERSISTENCE_FAILED"
            assert other.ping() == "pong"  # reads keep working
            stop.set()
            os.remove(filler)  # the disk takes records again
            poll(lambda: not other.stats()["persistence"]["last_error"])
            t.join(120)
            assert not t.is_alive()
            assert other.create(b"accepted") > 0
        writer.close()
    finally:
        s.close()
