"""The rcstore CLI at a cluster, against fake_cluster.py (three fake nodes
in this process): -H with a list, a command at a follower runs on the
leader, waiting while there is none, giving up at --failover-timeout;
`cluster status|add|remove|transfer` (table and --json); the shell follows
a leader change; a session's lease is resumed on a new leader.
Usage: test_cli_cluster.py RCSTORE"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_cluster  # noqa: E402
from rcswire import Checks  # noqa: E402

RCSTORE = sys.argv[1]
check = Checks()


def rcstore(*args, stdin=None):
    p = subprocess.run([RCSTORE, *args], input=stdin, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def answered(cl, method):
    with cl.lock:
        return sum(1 for e in cl.log if e[1] == method and e[2])


def refused(cl, method):
    with cl.lock:
        return sum(1 for e in cl.log if e[1] == method and not e[2])


cl = fake_cluster.Cluster()
A = ["127.0.0.1:%d" % p for p in cl.ports]  # node i at A[i]; node 0 leads

# A command at a follower runs once, on the leader.
rc, out, err = rcstore("-H", ",".join([A[1], A[0], A[2]]), "create", "hello")
check("create at a follower: done on the leader", rc == 0 and out.strip() == "1", (rc, out, err))
check("create refused once, done once", refused(cl, "create") == 1 and answered(cl, "create") == 1,
      cl.log)

# cluster status at a follower: its view, as a table and as JSON.
rc, out, err = rcstore("-H", A[1], "cluster", "status")
check("cluster status at a follower", rc == 0 and "node 2 (follower)" in out and
      "leader: node 1 at tcp://" + A[0] in out and
      all("tcp://" + a in out for a in A), (rc, out, err))
rows = [l.split() for l in out.splitlines() if l[:1].isdigit()]
# A follower knows its own role and the leader; node 3 it knows only as a
# voter (it may be down: it must not look like a healthy follower).
check("one row per member, roles", [r[:2] for r in rows] ==
      [["1", "leader"], ["2", "follower"], ["3", "voter"]], rows)
rc, out, err = rcstore("-H", A[0], "cluster", "status")
rows = [l.split() for l in out.splitlines() if l[:1].isdigit()]
check("the leader's rows: its followers", [r[:2] for r in rows] ==
      [["1", "leader"], ["2", "follower"], ["3", "follower"]], rows)
check("lags on the leader", rc == 0 and any(r[-2:] == ["41", "1"] for r in
                                            (l.split() for l in out.splitlines())), out)
rc, out, err = rcstore("-H", A[2], "--json", "cluster", "status")
doc = json.loads(out) if rc == 0 else {}
check("cluster status --json", doc.get("node_id") == 3 and len(doc.get("members", [])) == 3 and
      doc.get("leader") == "tcp://" + A[0], (rc, out, err))
rc, out, err = rcstore("-H", A[1], "cluster", "bogus")
check("cluster with an unknown subcommand: usage", rc == 2 and "usage: cluster" in err, err)

# Leader-only cluster methods follow NOT_LEADER too.
rc, out, err = rcstore("-H", ",".join([A[1], A[2]]), "cluster", "add", "4", "127.0.0.1:9003",
                       "tcp://127.0.0.1:7004")
check("cluster add at a follower", rc == 0 and answered(cl, "cluster_add") == 1, (rc, out, err))
rc, out, err = rcstore("-H", ",".join([A[1], A[2]]), "cluster", "transfer", "3")
check("cluster transfer", rc == 0 and out.strip() == "leader is now node 3", (rc, out, err))
check("node 3 leads", cl.leader == 2)
rc, out, err = rcstore("-H", A[0], "cluster", "remove", "4")
check("cluster remove at the old leader", rc == 0 and answered(cl, "cluster_remove") == 1,
      (rc, out, err))

# No leader for a while: the command waits for one.
cl.control("fake_leader", [1, 400])
rc, out, err = rcstore("-H", ",".join(A), "create", "x")
check("create waits for a leader", rc == 0 and out.strip().isdigit(), (rc, out, err))
check("created on node 2", cl.leader == 1)

# No leader at all: --failover-timeout ends it, with the error.
cl.set_leader(-1)
rc, out, err = rcstore("-H", ",".join(A), "--failover-timeout", "1", "create", "x")
check("no leader: NOT_LEADER after --failover-timeout", rc == 1 and "NOT_LEADER" in err and
      "no leader known" in err, (rc, out, err))
cl.set_leader(0)

# The shell follows a leader change between two commands, and says that
# its session (with no lease) is a new one there.
rc, out, err = rcstore("-H", ",".join(A), stdin="create a\ncluster transfer 2\ncreate b\n")
lines = out.splitlines()
check("shell: create, transfer, create", rc == 0 and len(lines) == 3 and
      lines[1] == "leader is now node 2" and lines[2].isdigit() and cl.leader == 1 and
      re.fullmatch(r"reconnected; new session \d+ \(the old one's holds are gone\)\n", err),
      (rc, out, err))

# A session with a lease survives the death of its leader.
with tempfile.TemporaryDirectory() as d:
    sf = os.path.join(d, "session")
    hosts = ",".join(A)
    rc, out, err = rcstore("-H", hosts, "--session-file", sf, "session", "start", "--ttl", "60")
    check("session start", rc == 0 and "started" in out, (rc, out, err))
    rc, out, err = rcstore("-H", hosts, "--session-file", sf, "create", "kept")
    oid = out.strip()
    check("create in the session", rc == 0 and oid.isdigit(), (rc, out, err))
    cl.stop(1)  # the leader dies
    cl.set_leader(2)
    rc, out, err = rcstore("-H", hosts, "--session-file", sf, "incref", oid)
    check("incref on the new leader: the session's hold is there", rc == 0 and
          out.strip() == "2", (rc, out, err))

sys.exit(1 if check.failures else 0)
