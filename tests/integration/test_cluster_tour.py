#!/usr/bin/python3
"""docs/cluster.md's tour, run as written: its sh blocks, in order, in one
bash, with these rcstored and rcstore first on PATH. Only /tmp/rcs is
replaced (by a temporary directory); the tour's fixed ports stay, in a
network namespace of its own (unshare -n, a fresh loopback), so that other
servers on the machine neither get in its way nor see it. The output is
checked against what the page says happens: the name written is read back
through a follower, after the leader is killed (-9), and once two stopped
nodes are back; with two of three stopped, cluster status shows no leader
and the lookup fails with NOT_LEADER; the killed node restarts as a
follower. Skipped (exit 0, with the reason) where rcstore has no cluster
commands, rcstored no --node-id, or a network namespace cannot be made.

usage: test_cluster_tour.py RCSTORED RCSTORE SOURCE_DIR"""
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
    print("skip:", why)
    sys.exit(0)


h = subprocess.run([RCSTORE, "--help"], capture_output=True, text=True)
if "cluster status" not in h.stdout + h.stderr:
    skip("this rcstore has no cluster commands")
if "--node-id" not in subprocess.run([RCSTORED, "--help"], capture_output=True, text=True).stdout:
    skip("this rcstored has no --node-id")
if not tour.can_unshare_net():
    skip("cannot make a network namespace (unshare -n needs root)")

blocks = [b.text for b in tour.blocks(os.path.join(SRC, "docs/cluster.md"), "sh")]
check("the page has the tour", len(blocks) >= 5, len(blocks))
tmp = tempfile.mkdtemp()
state = os.path.join(tmp, "rcs")
try:
    bindir = tour.bindir(tmp, rcstored=RCSTORED, rcstore=RCSTORE)
    with open(os.path.join(tmp, "tour.sh"), "w") as f:
        f.write("".join(blocks).replace("/tmp/rcs", state))
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"])
    try:
        r = subprocess.run(["unshare", "-n", "sh", "-c",
                            'ip link set lo up && exec bash -x "$0"', os.path.join(tmp, "tour.sh")],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=150)
        out = r.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        check("the tour ends within 150 s", False)
    print(out)

    # The trace of a node started in the background comes whenever its
    # subshell runs: it is nobody's output and starts no step.
    steps = tour.trace_steps(out, ignore=("rcstored ",))
    lookups = [s for s in steps if s[0].startswith("rcstore ") and "lookup tour/hello" in s[0]]
    create = [s for s in steps if "create 'hello, cluster' --name tour/hello" in s[0]]
    ident = create[0][1][0].strip() if create and create[0][1] else None
    check("create printed an id", ident is not None and ident.isdigit(), create)
    check("four lookups", len(lookups) == 4, [s[0] for s in lookups])
    if len(lookups) == 4:
        for i in (0, 1, 3):
            check(f"lookup {i + 1} found the name", lookups[i][1] == [ident], lookups[i])
        check("lookup 3, with two of three stopped, failed with NOT_LEADER",
              len(lookups[2][1]) == 1 and lookups[2][1][0].startswith("rcstore: NOT_LEADER"),
              lookups[2])
    leads = [s for s in steps if s[0].startswith("echo 'node ") and s[0].endswith(" leads'")]
    check("the tour found the leader after the transfer",
          len(leads) == 1 and re.fullmatch(r"node [123] leads", leads[0][1][0] if leads[0][1]
                                           else "") is not None, leads)
    status = [s for s in steps if s[0].startswith("rcstore ") and s[0].endswith("cluster status")]
    check("four cluster status", len(status) == 4, [s[0] for s in status])
    if len(status) == 4 and leads:
        n = leads[0][1][0].split()[1]
        check("the first status names a leader", any(l.startswith("leader: node ")
                                                      for l in status[0][1]), status[0])
        check("after the kill, another node leads",
              any(l.startswith("leader: node ") and not l.startswith(f"leader: node {n} ")
                  for l in status[1][1]), status[1])
        check(f"node {n}, restarted, is a follower",
              any(l.startswith(f"node {n} (follower)") for l in status[2][1]), status[2])
        check("two of three stopped: no leader", "leader: none known" in status[3][1], status[3])
    check("the tour removed its state (its last command ran)", not os.path.exists(state))
finally:
    # A tour cut short leaves nodes running in the namespace: end them (a
    # pid is ours only while its command line names our directory).
    for n in (1, 2, 3):
        try:
            pid = int(open(os.path.join(state, f"n{n}.pid")).read())
            if state.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
    shutil.rmtree(tmp)
print("failures:", failures)
sys.exit(1 if failures else 0)
