"""rcstore-bench at a cluster whose nodes hand out host names, against
fake_cluster.py (three fake nodes in this process): a connection at a
follower is answered NOT_LEADER naming the leader as tcp://localhost:PORT,
resolves the name (uv_getaddrinfo, off the loop) and runs its test on the
leader; a leader named by a name that does not resolve ends the run after
the failover timeout, with status 2 and what was tried.
Usage: test_bench_cluster.py RCSTORE_BENCH"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_cluster  # noqa: E402
from rcswire import Checks  # noqa: E402

BENCH = sys.argv[1]
check = Checks()

cl = fake_cluster.Cluster()
cl.advertise_host = "localhost"
A = ["127.0.0.1:%d" % p for p in cl.ports]  # node 0 leads

r = subprocess.run([BENCH, "-H", A[1], "-c", "2", "-n", "200", "-r", "10", "-t", "incref", "--json"],
                   capture_output=True, text=True, timeout=60)
rows = json.loads(r.stdout) if r.returncode == 0 else []
check("incref at a follower whose NOT_LEADER names localhost:PORT runs on the leader",
      r.returncode == 0 and [(x["test"], x["requests"], x["errors"], x["lost"]) for x in rows] ==
      [("incref", 200, 0, 0)], (r.returncode, r.stdout, r.stderr))
check("each connection moved once", bool(rows) and rows[0]["reconnects"] == 2, rows)
with cl.lock:
    increfs = {e[0] for e in cl.log if e[1] == "incref" and e[2]}
check("the increfs were answered by the leader (node 0) only", increfs == {0}, increfs)

cl.advertise_host = "nohost.invalid"
r = subprocess.run([BENCH, "-H", A[1], "-c", "1", "-n", "10", "-t", "incref"], capture_output=True,
                   text=True, timeout=60)
check("a leader whose name does not resolve: status 2 once the failover time is out",
      r.returncode == 2 and "no node served a connection within 10 s" in r.stderr,
      (r.returncode, r.stderr))
sys.exit(1 if check.failures else 0)
