#!/usr/bin/python3
"""A full disk (SPEC §8 "Disk failure"): the data directory on a small
tmpfs that this test mounts (as root). The first journal segment is
preallocated (64 MiB); a filler file takes the rest of the tmpfs, so when
creates of 1 MB fill the segment the next one cannot be made. Then:

- changes answer PERSISTENCE_FAILED and change nothing (a create adds no
  object, a bind no name); stats.persistence.last_error says why;
- reads and ping keep working;
- the filler is deleted and writes resume by themselves, without a
  restart; a change held while the disk was full is answered then;
- everything acknowledged survives a kill -9 and a restart.

Skipped (exit 77, with the reason) when not root or when mount is refused.
The tmpfs is unmounted in every outcome."""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import rcswire
from rcswire import Conn

RCSTORED = sys.argv[1]
check = rcswire.Checks()
MiB = 1 << 20
DATA = 1000000          # under the default max_data_bytes (1 MiB)
TMPFS = "160m"          # two segments fit, once the filler is gone


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


if "--data-dir" not in subprocess.run([RCSTORED, "--help"], capture_output=True,
                                      text=True).stdout:
    skip("rcstored has no --data-dir yet")
if os.geteuid() != 0:
    skip("a tmpfs must be mounted, which needs root")
mnt = tempfile.mkdtemp(prefix="diskfull-")
r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS, "tmpfs", mnt],
                   capture_output=True, text=True)
if r.returncode != 0:
    os.rmdir(mnt)
    skip("mount -t tmpfs refused here: " + r.stderr.strip())


def poll(what, cond, seconds=60):
    """Wait for a state the server reports (no event announces it)."""
    end = time.time() + seconds
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    return check(what, False, "not within %d s" % seconds)


def data(k):
    return bytes([k % 251]) * DATA


proc = None
try:
    d = os.path.join(mnt, "data")
    flags = ["--data-dir", d, "--compact-journal-bytes", "0", "--max-message-bytes", "4m",
             "--debug-commands"]
    proc, addr, _ = rcswire.start_server(RCSTORED, *flags, echo=False)
    # The filler takes every byte the segment left.
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(bytes(MiB))
                f.flush()
        except OSError:
            pass
    check("the tmpfs is full but for the preallocated segment",
          shutil.disk_usage(mnt).free < MiB, shutil.disk_usage(mnt))

    # A writer creates 1 MB objects until a change is refused; the one
    # whose record opened the failure may be held until the disk takes it.
    acked, refused, writer = [], [], Conn(addr)
    token = writer.ok("hello", {"ttl": 3600})["token"]

    stop = threading.Event()

    def write():
        for k in range(200):
            if stop.is_set():
                return
            err, res = writer.call("create", data(k))
            if err:
                refused.append(err)
                return
            acked.append((res, k))
    t = threading.Thread(target=write, daemon=True)
    t.start()
    other = Conn(addr)
    err = poll("the journal reports the full disk",
               lambda: other.ok("stats")["persistence"]["last_error"], 120)
    stop.set()
    check("stats.persistence.last_error says why: %r" % err, err and "space" in str(err), err)
    before = other.ok("stats")["heap"]["objects"]
    check("a create answers PERSISTENCE_FAILED",
          other.code("create", b"refused") == "PERSISTENCE_FAILED")
    check("... and adds no object", other.ok("stats")["heap"]["objects"] == before)
    first = acked[0][0] if acked else None
    check("a bind answers PERSISTENCE_FAILED",
          first is not None and other.code("bind", "refused", first) == "PERSISTENCE_FAILED")
    check("... and binds nothing", other.code("lookup", "refused") == "NAME_NOT_FOUND")
    check("ping keeps working", other.ok("ping") == "pong")
    check("get keeps working", first is not None and bytes(other.ok("get", first)["data"]) ==
          data(0))
    check("stat keeps working", first is not None and other.call("stat", first)[0] is None)

    os.remove(filler)
    ok = poll("writes resume by themselves once the filler is gone",
              lambda: other.call("create", b"after the disk came back")[0] is None)
    check("writes resume by themselves once the filler is gone, without a restart", ok)
    after = other.ok("create", b"acknowledged after")
    other.ok("bind", "after", after)
    t.join(60)
    check("the writer's last change was answered (held, then acknowledged, or refused)",
          not t.is_alive())
    check("stats.persistence.last_error is clear again",
          not other.ok("stats")["persistence"]["last_error"])
    check("%d creates of 1 MB acknowledged, %d refused" % (len(acked), len(refused)),
          len(acked) > 30 and len(refused) <= 1, (len(acked), refused))

    proc.kill()
    proc.wait()
    proc, addr, _ = rcswire.start_server(RCSTORED, *flags, echo=False)
    c = Conn(addr)
    w = Conn(addr)
    check("after kill -9 and a restart: the writer's leased session resumes",
          w.call("hello", {"resume": token})[0] is None)
    got = [w.call("get", i) for i, _ in acked]
    check("... with every create acknowledged before and after the full disk (%d)" % len(acked),
          all(e is None and bytes(g["data"]) == data(k)
              for (e, g), (_, k) in zip(got, acked)), [e for e, _ in got if e][:3])
    check("after kill -9 and a restart: the name bound after the disk came back",
          c.call("lookup", "after") == (None, after))
    check("... its object", bytes(c.ok("get", after)["data"]) == b"acknowledged after")
    fresh = c.ok("create", b"fresh")
    check("... a fresh create gets an id none of the acknowledged ones had",
          fresh not in {i for i, _ in acked} | {after})
    check("... debug_check passes", c.call("debug_check") == (None, "ok"))
finally:
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()
    subprocess.run(["umount", mnt])
    os.rmdir(mnt)

print("%d failed" % check.failures if check.failures else "all passed")
sys.exit(1 if check.failures else 0)
