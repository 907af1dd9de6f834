#!/usr/bin/python3
"""A data directory's damage and start-up (SPEC §8, docs/persistence.md):

- a torn tail at several byte offsets of the last record, both as zeros
  over the record's bytes (segments are preallocated) and as a shorter
  file: the server starts with a warning naming the segment and serves
  everything before that record;
- a bit flip in the middle of a journal segment, and of snapshot.rcs: exit
  status 3 (not a signal) and one line `rcstored: FILE: offset N: what`;
- `--check-data` on a clean, a damaged and a repaired directory, and
  `--check-data --repair` (the records before the damage survive);
- a second server on a directory in use is refused, the first serves on;
- kill -9 right after `save` (parent and snapshot child), and a stray
  snapshot.tmp: the restart recovers everything acknowledged;
- `save`, more changes, kill -9: the restart is snapshot plus journal,
  and stats.persistence says so;
- the shortest reproducers of what test_durability found: names bound
  after an unbind, share tokens (from the journal and from a snapshot), a
  session that first changes something after a save that it was connected
  before.

The end of a segment's data is found by walking its records (a 9-byte
header: u32 length LE, u8 type, u32 crc; the first all-zero header ends the
data), never from the file size. Exits 77 (skipped) while rcstored has no
--data-dir."""
import glob
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

import rcswire
from rcswire import Conn

RCSTORED = sys.argv[1]
check = rcswire.Checks()
HEADER = 64     # journal segment and snapshot headers
REC = 9         # record header

if "--data-dir" not in subprocess.run([RCSTORED, "--help"], capture_output=True,
                                      text=True).stdout:
    print("SKIP: rcstored has no --data-dir yet")
    sys.exit(77)

top = tempfile.mkdtemp(prefix="datadir-")


def start(d, *flags, keep=True):
    return rcswire.start_server(RCSTORED, "--data-dir", d, "--fsync", "always",
                                "--debug-commands", *flags, echo=False, keep=keep)


def kill(p):
    p.send_signal(signal.SIGKILL)
    p.wait()


def segments(d):
    return sorted(glob.glob(os.path.join(d, "journal-*.log")))


def records(path, start=HEADER):
    """[(offset, length)] of the records of a file, up to the first zero
    header or the end."""
    b = open(path, "rb").read()
    out, off = [], start
    while off + REC <= len(b) and b[off:off + REC] != bytes(REC):
        n = struct.unpack_from("<I", b, off)[0]
        if off + REC + n > len(b):
            break
        out.append((off, REC + n))
        off += REC + n
    return out


def refused(d, *flags):
    """Start a server that must refuse: (exit status, stderr lines)."""
    r = subprocess.run([RCSTORED, "--listen", "tcp://127.0.0.1:0", "--data-dir", d, *flags],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, [l for l in r.stderr.splitlines() if l.strip()]


def check_data(d, *flags):
    r = subprocess.run([RCSTORED, "--check-data", d, *flags], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


def copy(src, name):
    dst = os.path.join(top, name)
    shutil.copytree(src, dst)
    return dst


def damage_line(status, lines, fname):
    """Exit 3 (a damaged data directory), and one line rcstored: FILE: offset
    N: what naming fname."""
    m = [re.search(r"rcstored: (\S*%s): offset (\d+): (.+)" % re.escape(fname), l) for l in lines]
    m = [x for x in m if x]
    return status == 3 and len(lines) == 1 and bool(m), (status, lines)


try:
    # A directory: 40 objects each bound to a name by a leased session,
    # then one last change, the bind of "last": the last record.
    base = os.path.join(top, "base")
    p, addr, log = start(base)
    c = Conn(addr)
    token = bytes(c.ok("hello", {"ttl": 3600})["token"])
    ids = []
    for k in range(40):
        i = c.ok("create", b"object %d" % k)
        c.ok("bind", "n%d" % k, i)
        ids.append(i)
    seg = segments(base)[-1]
    before = records(seg)
    c.ok("bind", "last", ids[0])
    after = records(seg)
    kill(p)
    check("the last change is one more record in the newest segment",
          len(after) == len(before) + 1, (len(before), len(after)))
    last_off, last_len = after[-1]
    segname = os.path.basename(seg)

    def serves_all_before(addr, with_last):
        c = Conn(addr)
        got = [c.call("lookup", "n%d" % k) for k in range(40)]
        ok = all(e is None and v == ids[k] for k, (e, v) in enumerate(got))
        last = c.call("lookup", "last")
        ok = ok and ((last == (None, ids[0])) if with_last else
                     (last[0] or {}).get("code") == "NAME_NOT_FOUND")
        resumed = Conn(addr).call("hello", {"resume": token})
        ok = ok and resumed[0] is None and resumed[1]["resumed"]
        return ok and c.call("debug_check") == (None, "ok"), (got[:2], last, resumed[0])

    # The whole directory recovers, and says so in one line.
    d = copy(base, "whole")
    p, addr, log = start(d)
    rec = [l for l in log if re.search(r"recovered \d+ objects, \d+ names, \d+ sessions in "
                                       r"[\d.]+ ms", l)]
    check("recovery logs 'recovered N objects, M names, S sessions in T ms'", rec, log)
    check("... with the counts: 40 objects, 41 names, 1 session",
          rec and re.search(r"recovered 40 objects, 41 names, 1 sessions? ", rec[0]), rec)
    ok, why = serves_all_before(addr, True)
    check("a clean restart serves every acknowledged change", ok, why)
    kill(p)

    # A torn tail at several byte offsets of the last record.
    for cut in sorted({1, 4, 8, 9, 10, last_len // 2, last_len - 1}):
        for how in ("zeros", "shorter"):
            d = copy(base, "torn-%d-%s" % (cut, how))
            path = os.path.join(d, segname)
            with open(path, "r+b") as f:
                if how == "zeros":
                    f.seek(last_off + cut)
                    f.write(bytes(last_len - cut))
                else:
                    f.truncate(last_off + cut)
            try:
                p, addr, log = start(d)
            except RuntimeError as e:
                check("torn at byte %d of the last record (%s): starts" % (cut, how), False, e)
                continue
            warn = [l for l in log if "torn" in l and segname in l]
            check("torn at byte %d of %d of the last record (%s): starts with a warning "
                  "naming %s" % (cut, last_len, how, segname), warn, log)
            ok, why = serves_all_before(addr, False)
            check("... and serves everything before it", ok, why)
            kill(p)

    # A bit flip in the middle of the journal: damage, exit 3, file and offset.
    mid_off, mid_len = after[len(after) // 2]
    d = copy(base, "flip-journal")
    path = os.path.join(d, segname)
    with open(path, "r+b") as f:
        f.seek(mid_off + REC + (mid_len - REC) // 2 if mid_len > REC else mid_off + 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x10]))
    st, lines = refused(d)
    ok, why = damage_line(st, lines, segname)
    check("a bit flip in the middle of a segment: exit 3, one line naming the file and "
          "the offset", ok, why)
    off = re.search(r"offset (\d+)", lines[0]) if lines else None
    check("... the offset is the damaged record's (%d)" % mid_off,
          off and int(off.group(1)) == mid_off, lines)
    check("... not a signal", st > 0, st)
    st, out = check_data(d)
    check("--check-data on it: exit 1, naming the file and offset",
          st == 1 and segname in out and "offset %d" % mid_off in out, (st, out))
    st, out = check_data(d, "--repair")
    check("--check-data --repair: exit 0", st == 0, (st, out))
    st, out = check_data(d)
    check("--check-data after the repair: exit 0, one line", st == 0 and
          len(out.strip().splitlines()) == 1, (st, out))
    p, addr, log = start(d)
    c = Conn(addr)
    first = c.call("lookup", "n0")
    check("after the repair the server starts and serves the records before the damage",
          first == (None, ids[0]) and c.call("lookup", "last")[0] is not None, first)
    check("... debug_check passes", c.call("debug_check") == (None, "ok"))
    kill(p)

    st, out = check_data(copy(base, "clean"))
    check("--check-data on a clean directory: exit 0, a one-line summary",
          st == 0 and len(out.strip().splitlines()) == 1, (st, out))

    # save, more changes, kill -9: snapshot plus journal.
    d = copy(base, "snap")
    p, addr, _ = start(d)
    c = Conn(addr)
    check("a leased session resumes", c.ok("hello", {"resume": token})["resumed"])
    saved = c.ok("save")
    check("save answers snapshot_bytes and duration_ms",
          isinstance(saved, dict) and saved.get("snapshot_bytes", 0) > 0
          and "duration_ms" in saved, saved)
    check("... snapshot.rcs is there", os.path.exists(os.path.join(d, "snapshot.rcs")))
    pers = c.ok("stats").get("persistence", {})
    check("stats.persistence: enabled, fsync, journal_bytes, records, last_snapshot_unix, "
          "snapshot_in_progress, last_error",
          pers.get("enabled") is True and pers.get("fsync") == "always" and
          pers.get("last_snapshot_unix", 0) > 0 and
          {"journal_bytes", "records", "snapshot_in_progress", "last_error"} <= set(pers), pers)
    more = [c.ok("create", b"after save %d" % k) for k in range(10)]
    c.ok("set_data", ids[1], b"changed after the save")
    c.ok("unbind", "n2")
    c.ok("link", more[0], ids[3])
    kill(p)
    p, addr, _ = start(d)
    c = Conn(addr)
    h = c.call("hello", {"resume": token})
    check("after save + changes + kill -9: the session resumes", h[0] is None, h)
    got = [c.call("get", i) for i in more]
    check("... the objects made after the save are there",
          all(e is None and bytes(g["data"]) == b"after save %d" % k
              for k, (e, g) in enumerate(got)), got[:2])
    check("... a change after the save", bytes(c.ok("get", ids[1])["data"]) ==
          b"changed after the save")
    check("... an unbind after the save", c.code("lookup", "n2") == "NAME_NOT_FOUND")
    check("... a link after the save", c.ok("get", more[0])["refs"] == [ids[3]])
    check("... names before it", c.call("lookup", "n5") == (None, ids[5]))
    check("... debug_check passes", c.call("debug_check") == (None, "ok"))

    # A second server on the same directory, while the first runs.
    st, lines = refused(d)
    want = "rcstored: data directory %s is in use by another rcstored (%s/LOCK is locked)" % (d, d)
    check("a second server on the directory: exit 1 and the one line", st == 1 and
          lines == [want], (st, lines))
    check("... the first serves on", Conn(addr).ok("ping") == "pong")
    kill(p)

    # kill -9 right after save: the parent and the snapshot child.
    p, addr, _ = start(d)
    c = Conn(addr)
    c.ok("hello", {"resume": token})
    mark = c.ok("create", b"before the killed save")
    c.send("save")
    # the child, if it is there yet: /proc/PID/task/PID/children
    try:
        kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
    except OSError:
        kids = []
    kill(p)
    for k in kids:
        try:
            os.kill(int(k), signal.SIGKILL)
        except ProcessLookupError:
            pass
    p, addr, _ = start(d)
    c = Conn(addr)
    check("a restart after kill -9 during save: the session resumes",
          c.call("hello", {"resume": token})[0] is None)
    check("... with what was acknowledged before it",
          bytes(c.ok("get", mark)["data"]) == b"before the killed save")
    kill(p)

    # A stray, half-written snapshot.tmp (a crash before the rename) is never read.
    snap = open(os.path.join(d, "snapshot.rcs"), "rb").read()
    with open(os.path.join(d, "snapshot.tmp"), "wb") as f:
        f.write(snap[:len(snap) // 2])
    p, addr, _ = start(d)
    c = Conn(addr)
    check("a stray half snapshot.tmp: the restart recovers",
          c.call("hello", {"resume": token})[0] is None and
          bytes(c.ok("get", mark)["data"]) == b"before the killed save")
    check("... debug_check passes", c.call("debug_check") == (None, "ok"))
    kill(p)

    # A bit flip in the middle of snapshot.rcs.
    d2 = copy(d, "flip-snapshot")
    path = os.path.join(d2, "snapshot.rcs")
    recs = records(path)
    off, n = recs[len(recs) // 2]
    with open(path, "r+b") as f:
        f.seek(off + n // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x01]))
    st, lines = refused(d2)
    ok, why = damage_line(st, lines, "snapshot.rcs")
    check("a bit flip in the middle of snapshot.rcs: exit 3, one line naming the file and "
          "the offset", ok, why)
    st, out = check_data(d2)
    check("--check-data on it: exit 1 naming snapshot.rcs", st == 1 and "snapshot.rcs" in out,
          (st, out))
    st, out = check_data(d2, "--repair")
    check("--repair does not 'repair' a damaged snapshot: exit 1", st == 1, (st, out))

    # Defects test_durability found, each as the shortest sequence that
    # shows it: a restart must serve what was acknowledged before it.
    def restarted(name, steps, after):
        d = os.path.join(top, name)
        p, addr, _ = start(d)
        c = Conn(addr)
        state = steps(addr, c)
        kill(p)
        try:
            p, addr, _ = start(d)
        except RuntimeError as e:
            check(name + ": the restart starts", False, str(e).strip())
            return
        try:
            after(Conn(addr), state)
            check(name + ": debug_check passes", Conn(addr).call("debug_check") == (None, "ok"))
        finally:
            kill(p)

    def names_unbind(addr, c):
        i = c.ok("create", b"x")
        c.ok("bind", "keep", i)
        c.ok("bind", "gone", i)
        c.ok("unbind", "gone")
        for k in range(3):
            c.ok("bind", "n%d" % k, i)
        c.ok("save")
        return i

    def names_after(c, i):
        got = [c.call("lookup", n) for n in ("keep", "n0", "n1", "n2")]
        check("names bound after an unbind, then save: all in the snapshot",
              all(g == (None, i) for g in got), got)
    restarted("names-after-unbind", names_unbind, names_after)

    def token(save):
        def steps(addr, c):
            i = c.ok("create", b"x")
            t = c.ok("share", i, 3600)
            if save:
                c.ok("save")
            return i, t

        def after(c, st):
            i, t = st
            check("a share token (%s) is claimable after the restart" % (
                "in the snapshot" if save else "in the journal"),
                c.call("claim", t) == (None, i), c.call("stat", i))
        return steps, after
    restarted("token-journal", *token(False))
    restarted("token-snapshot", *token(True))

    def late_session(addr, c):
        c.ok("ping")
        c2 = Conn(addr)   # connected, nothing changed yet
        c.ok("save")
        return c2.ok("create", b"made after the save")

    def late_after(c, i):
        check("a connection made before a save that first changes something after it",
              c.call("get", i)[0] is not None)   # unleased: its object is released
    restarted("session-before-save", late_session, late_after)
finally:
    shutil.rmtree(top, ignore_errors=True)

print("%d failed" % check.failures if check.failures else "all passed")
sys.exit(1 if check.failures else 0)
