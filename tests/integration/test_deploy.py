#!/usr/bin/python3
"""Deployment files against what can be checked here (no Docker engine, no
running systemd, no Kubernetes): the installed units (rcstored.service and
the cluster template rcstored@.service, with the same hardening) pass
`systemd-analyze verify` when that tool is present; rcstored tells a notify
socket READY=1 once it listens and STOPPING=1 when it stops (Type=notify);
rcstored's own parser accepts every key of the example configurations
(deploy/rcstored.conf, deploy/cluster/node*.conf, their /etc/rcstore files
made here: certificates from openssl, a users file) and the three node
files agree with each other; the units run as the system user that the
installed sysusers.d file creates, and reload with SIGHUP; rcstored.conf,
started as written but for its paths and ports, serves TLS (a client with
the CA pings and logs in), its unix socket, and SIGHUP; the Kubernetes
manifests parse and carry probes, limits and a non-root user, mount the TLS
and users Secrets without giving others any access, and the single pod,
played here (the init container's copy, rcstored with the pod's
environment), answers its probes (GET /readyz and /healthz on the metrics
listener), its unix socket and TLS;
the StatefulSet's start script, run with a stub rcstored, gives each pod
its node id, its names and the peer lines, which rcstored accepts; the Raft
port is open to the cluster's own pods only (NetworkPolicy); the Dockerfile
is multi-stage, Debian 12 based, non-root, listens with TLS, with a
healthcheck on its unix socket; .dockerignore keeps .git, the build
directories, data/ and tests/ out of its context, and what it leaves
configures as the Dockerfile's build does.

usage: test_deploy.py BUILD_DIR SOURCE_DIR"""
import hashlib
import ipaddress
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import yaml

from tour import free_port  # the tours' free port, in this directory

BUILD, SRC = sys.argv[1], sys.argv[2]
failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok  " if cond else "FAIL"), name, "" if cond else detail)
    failures += not cond


def unit_lines(text):
    """The settings of a unit file, comments and blank lines left out."""
    return [l for l in text.splitlines() if l.strip() and not l.startswith(("#", ";"))]


def unit_root(root):
    """Make the DESTDIR tree root a system systemd-analyze --root can
    verify units in, as a Debian 12 host would: merged /usr (/bin, /lib,
    /sbin links), the host's own units (targets, sockets: what a unit's
    dependencies name) beside the installed ones, and /bin/kill for
    ExecReload. What was installed is left as it is."""
    for d in ("bin", "lib", "sbin"):
        if not os.path.lexists(os.path.join(root, d)):
            os.makedirs(os.path.join(root, "usr", d), exist_ok=True)
            os.symlink("usr/" + d, os.path.join(root, d))
    host = next((d for d in ("/usr/lib/systemd/system", "/lib/systemd/system")
                 if os.path.isdir(d)), None)
    if host:
        # cp -n: the installed units stay the installed ones.
        subprocess.run(["cp", "-rn", host + "/.", os.path.join(root, "usr/lib/systemd/system")],
                       check=True)
    kill = os.path.realpath("/bin/kill")
    if os.path.exists(kill) and not os.path.exists(os.path.join(root, "usr/bin/kill")):
        shutil.copy2(kill, os.path.join(root, "usr/bin/kill"))


def verify_unit(root, name):
    """systemd-analyze verify the installed unit NAME (an instance name
    loads the template) inside root, the DESTDIR tree, with the real prefix:
    systemd reads the installed file, and its ExecStart binary must be
    there. Documentation=man:rcstored(8) is looked up in the installed man
    pages when man is there to look."""
    env = dict(os.environ, MANPATH=os.path.join(root, "usr/share/man"))
    man = [] if shutil.which("man") else ["--man=no"]
    r = subprocess.run(["systemd-analyze", "verify", "--root=" + root, *man, name], env=env,
                       capture_output=True, text=True)
    check("systemd-analyze verify --root=DESTDIR " + name + " (installed, prefix /usr)",
          r.returncode == 0 and not r.stderr.strip(), r.stderr.strip())
    return r


def read_conf(path):
    """An rcstored config file as (key, value) pairs in order, the way inih
    reads it: [rcstored] or no section, ';' or '#' comments, inline ones
    after a space."""
    pairs = []
    for raw in open(path):
        line = re.split(r"\s[;#]", raw, 1)[0].strip()
        if not line or line.startswith((";", "#", "[")):
            continue
        key, _, value = line.partition("=")
        pairs.append((key.strip(), value.strip()))
    return pairs


# The sentinel: a value rcstored refuses, given on the command line. The
# command line is applied after the config file and the environment have
# been read and checked, so exit 2 naming this option (and nothing else)
# means rcstored took every key and value before it; nothing is started.
SENTINEL = ["--max-connections", "0"]


def accepts(rcstored, args, env=None, what=""):
    r = subprocess.run([rcstored, *args, *SENTINEL], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})), timeout=20)
    err = r.stderr.strip()
    check("rcstored accepts " + what,
          r.returncode == 2 and err.startswith("rcstored: --max-connections 0:"), err)


def help_of(prog):
    r = subprocess.run([prog, "--help"], capture_output=True, text=True)
    return r.stdout + r.stderr


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(d):
    """What docs/security.md makes, in d: a CA (ca.pem), a server
    certificate for localhost and 127.0.0.1 (server.pem, server.key), a
    users file (users.ini, mode 0600) with the admin ops, whose token is in
    ops.token. Returns the token."""
    os.makedirs(d, exist_ok=True)
    old = os.umask(0o077)
    try:
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
        with open(f"{d}/server.ext", "w") as f:
            f.write("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
        openssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey",
                f"{d}/ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/server.ext",
                "-out", f"{d}/server.pem")
        token = os.urandom(16).hex()
        with open(f"{d}/ops.token", "w") as f:
            f.write(token + "\n")
        with open(f"{d}/users.ini", "w") as f:
            f.write(f"[user ops]\ntoken-sha256 = {hashlib.sha256(token.encode()).hexdigest()}\n"
                    "role = admin\n")
    finally:
        os.umask(old)
    return token




tmp = tempfile.mkdtemp()
try:
    # Installed as a package build would: the real prefix /usr, into a
    # DESTDIR. Everything below runs what landed there.
    REAL_PREFIX = "/usr"
    root = os.path.join(tmp, "root")
    prefix = root + REAL_PREFIX
    subprocess.run(["cmake", "--install", BUILD, "--prefix", REAL_PREFIX], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, DESTDIR=root))
    unit = os.path.join(prefix, "lib/systemd/system/rcstored.service")
    check("unit installed", os.path.exists(unit))
    text = open(unit).read()
    for key in ("Type=notify", "User=rcstore", "ProtectSystem=strict", "NoNewPrivileges=yes",
                "RuntimeDirectory=rcstore", "ExecReload=/bin/kill -HUP $MAINPID"):
        check("unit has " + key, key in unit_lines(text))
    # Not a DynamicUser: the TLS key and the users file, read again on
    # SIGHUP, belong to a user that exists before the service starts.
    check("unit has no DynamicUser", not any(l.startswith("DynamicUser=") for l in
                                               unit_lines(text)))
    sysusers = os.path.join(prefix, "lib/sysusers.d/rcstore.conf")
    check("sysusers.d/rcstore.conf installed, creating the units' user rcstore",
          os.path.exists(sysusers) and
          any(l.split()[:2] == ["u", "rcstore"] for l in unit_lines(open(sysusers).read())))
    check("unit starts the installed rcstored, under the real prefix, with the config file",
          f"ExecStart={REAL_PREFIX}/bin/rcstored --config /etc/rcstore/rcstored.conf"
          in unit_lines(text) and os.access(os.path.join(prefix, "bin/rcstored"), os.X_OK),
          [l for l in unit_lines(text) if l.startswith("ExecStart=")])

    # The cluster's template unit: one node per instance, %i its name.
    tunit = os.path.join(prefix, "lib/systemd/system/rcstored@.service")
    check("template unit installed", os.path.exists(tunit))
    ttext = open(tunit).read()
    tlines = unit_lines(ttext)
    check("template unit starts the installed rcstored with /etc/rcstore/%i.conf",
          f"ExecStart={REAL_PREFIX}/bin/rcstored --config /etc/rcstore/%i.conf" in tlines,
          [l for l in tlines if l.startswith("ExecStart=")])
    for key in ("StateDirectory=rcstore/%i", "RuntimeDirectory=rcstore/%i"):
        check("template unit has " + key, key in tlines)
    # Same hardening as the single unit: every setting of rcstored.service
    # but its per-instance ones is in the template, word for word.
    own = ("ExecStart=", "StateDirectory=", "RuntimeDirectory=", "Description=", "After=")
    missing = [l for l in unit_lines(text) if not l.startswith(own) and l not in tlines]
    check("template unit has every setting of rcstored.service", not missing, missing)

    if shutil.which("systemd-analyze"):
        unit_root(root)
        verify_unit(root, "rcstored.service")
        verify_unit(root, "rcstored@node1.service")
        # The verify looks at the binary: without it, it fails (the check
        # above is not vacuous).
        os.rename(os.path.join(prefix, "bin/rcstored"), os.path.join(tmp, "rcstored.away"))
        r = subprocess.run(["systemd-analyze", "verify", "--root=" + root, "--man=no",
                            "rcstored.service"], capture_output=True, text=True)
        os.rename(os.path.join(tmp, "rcstored.away"), os.path.join(prefix, "bin/rcstored"))
        check("systemd-analyze verify fails when ExecStart's binary is missing",
              r.returncode != 0 and f"{REAL_PREFIX}/bin/rcstored" in r.stderr, r.stderr.strip())
    else:
        print("skip systemd-analyze verify: not installed")

    # The example configurations: installed, and every key and value is
    # one rcstored takes.
    rcstored = os.path.join(prefix, "bin/rcstored")
    rcstore = os.path.join(prefix, "bin/rcstore")
    docdir = os.path.join(prefix, "share/doc/rcstore")
    check("rcstored.conf installed", os.path.exists(os.path.join(docdir, "rcstored.conf")))
    help_text = help_of(rcstored)
    tls_server = "--tls-cert-file" in help_text and "--users-file" in help_text
    tls_client = "--cacert" in help_of(rcstore) and "--user " in help_of(rcstore)
    cluster_server = "--node-id" in help_text

    # The files the examples name under /etc/rcstore, made here (the
    # certificates, the users file) in a directory that stands for it.
    etc = os.path.join(tmp, "etc-rcstore")
    token = make_pki(os.path.join(etc, "tls"))
    shutil.move(os.path.join(etc, "tls", "users.ini"), os.path.join(etc, "users.ini"))
    for n in (1, 2, 3):
        for ext in ("pem", "key"):
            shutil.copy(os.path.join(etc, "tls", f"server.{ext}"),
                        os.path.join(etc, "tls", f"node{n}.{ext}"))

    def localize(path, out, subst=()):
        """A copy of config file path with /etc/rcstore/ replaced by etc
        and the pairs of subst replaced."""
        text = open(path).read().replace("/etc/rcstore/", etc + "/")
        for a, b in subst:
            text = text.replace(a, b)
        with open(out, "w") as f:
            f.write(text)
        return out

    conf = read_conf(os.path.join(SRC, "deploy/rcstored.conf"))
    keys = dict(conf)
    check("rcstored.conf: the network listener is TLS, beside a unix socket",
          [v.split(":")[0] for k, v in conf if k == "listen"] == ["tls", "unix"], conf)
    check("rcstored.conf: certificate, key and users file under /etc/rcstore",
          keys.get("tls-cert-file", "").startswith("/etc/rcstore/tls/") and
          keys.get("tls-key-file", "").startswith("/etc/rcstore/tls/") and
          keys.get("users-file") == "/etc/rcstore/users.ini", keys)
    nodes = [os.path.join(SRC, f"deploy/cluster/node{n}.conf") for n in (1, 2, 3)]
    check("cluster configs installed",
          all(os.path.exists(os.path.join(docdir, "cluster", os.path.basename(p))) for p in nodes))
    if tls_server:
        accepts(rcstored, ["--config", localize(os.path.join(SRC, "deploy/rcstored.conf"),
                                                os.path.join(tmp, "rcstored.conf"))],
                what="deploy/rcstored.conf")
        if cluster_server:
            for p in nodes:
                accepts(rcstored, ["--config", localize(p, os.path.join(tmp, os.path.basename(p)))],
                        what="deploy/cluster/" + os.path.basename(p))
        else:
            print("skip rcstored accepts deploy/cluster/*.conf: this rcstored has no --node-id")
    else:
        print("skip rcstored accepts the example configurations: this rcstored has no TLS "
              "or users options")

    # The installed unit's own command line, run for real without systemd:
    # ExecStart as installed (the real prefix mapped into the DESTDIR), its
    # --config the installed rcstored.conf as written but for its paths
    # and ports, under the unit's UMask, in directories made as the unit's
    # RuntimeDirectory= and StateDirectory= would make them. It starts (a
    # notify socket hears READY=1); its unix socket has the configuration's
    # mode (not the srwx------ UMask=0077 leaves) and answers ping without a
    # login; its TLS port answers a client that knows the CA and logs in
    # ops, and SIGHUP (the units' ExecReload) keeps it serving.
    settings = {}
    for l in unit_lines(text):
        k, _, v = l.partition("=")
        settings.setdefault(k, v)
    argv = shlex.split(settings.get("ExecStart", ""))
    check("unit's ExecStart runs the installed binary with --config FILE",
          argv[:1] == [REAL_PREFIX + "/bin/rcstored"] and argv[1:2] == ["--config"] and
          len(argv) == 3, argv)
    umask = int(settings.get("UMask", "0022"), 8)
    conf_mode = dict(read_conf(os.path.join(docdir, "rcstored.conf"))).get("unix-socket-mode")
    check("the installed rcstored.conf sets unix-socket-mode 0660 (the group rcstore may "
          "connect)", conf_mode == "0660", conf_mode)
    if tls_server and len(argv) == 3:
        port, mport = free_port(), free_port()
        run = os.path.join(tmp, "run")
        os.makedirs(run)
        rundir = os.path.join(run, settings.get("RuntimeDirectory", "rcstore"))
        os.mkdir(rundir, int(settings.get("RuntimeDirectoryMode", "0755"), 8))
        state = os.path.join(tmp, "state")
        os.mkdir(state, int(settings.get("StateDirectoryMode", "0755"), 8))
        live = localize(os.path.join(docdir, "rcstored.conf"), os.path.join(etc, "rcstored.conf"),
                        [("tls://0.0.0.0:7373", f"tls://127.0.0.1:{port}"),
                         ("unix:///run/", f"unix://{run}/"),
                         ("tcp://127.0.0.1:9373", f"tcp://127.0.0.1:{mport}"),
                         ("/var/lib/rcstore", state)])
        # /usr/bin/rcstored in the DESTDIR; /etc/rcstore/... in etc.
        cmd = [root + argv[0]] + [a.replace("/etc/rcstore/", etc + "/") for a in argv[1:]]
        check("the unit's --config is the localized copy of the installed rcstored.conf",
              cmd[2] == live, cmd)
        ns = os.path.join(tmp, "notify-live")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(ns)
        sock.settimeout(20)
        p = subprocess.Popen(cmd, env=dict(os.environ, NOTIFY_SOCKET=ns),
                             preexec_fn=lambda: os.umask(umask))
        try:
            try:
                ready = "READY=1" in sock.recv(4096).decode().split("\n")
            except socket.timeout:
                ready = False
            check("the unit's ExecStart with rcstored.conf (paths and ports localized) starts",
                  ready)
            usock = os.path.join(rundir, "rcstored.sock")
            mode = os.stat(usock).st_mode if os.path.exists(usock) else 0
            check(f"the unix socket is a socket of mode 0660 under the unit's UMask {umask:04o}",
                  stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660, oct(mode))
            r = subprocess.run([rcstore, "-s", usock, "ping"],
                               capture_output=True, text=True, timeout=20)
            check("rcstored.conf: the unix socket answers ping without a login",
                  r.stdout.strip() == "pong", r.stdout + r.stderr)
            if tls_client:
                tlsargs = ["-H", f"tls://localhost:{port}", "--cacert", f"{etc}/tls/ca.pem"]
                login = ["--user", "ops", "--auth-file", f"{etc}/tls/ops.token"]
                r = subprocess.run([rcstore, *tlsargs, *login, "create", "x", "--name", "d/x"],
                                   capture_output=True, text=True, timeout=20)
                check("rcstored.conf: ops logs in over TLS and creates",
                      r.returncode == 0 and r.stdout.strip().isdigit(), r.stdout + r.stderr)
                p.send_signal(signal.SIGHUP)
                r = subprocess.run([rcstore, *tlsargs, *login, "lookup", "d/x"],
                                   capture_output=True, text=True, timeout=20)
                check("rcstored.conf: after SIGHUP, TLS and the login still work",
                      r.returncode == 0 and r.stdout.strip().isdigit() and p.poll() is None,
                      r.stdout + r.stderr)
                r = subprocess.run([rcstore, "-H", f"127.0.0.1:{port}", "ping"],
                                   capture_output=True, text=True, timeout=20)
                check("rcstored.conf: its network port speaks TLS only",
                      r.returncode != 0 and "pong" not in r.stdout, r.stdout + r.stderr)
            else:
                print("skip the TLS client checks: this rcstore has no --cacert or --user")
            check("the token is not in what rcstore printed", token not in r.stdout + r.stderr)
        finally:
            p.send_signal(signal.SIGTERM)
            check("rcstored.conf: clean exit", p.wait(timeout=20) == 0)
            sock.close()

    # The three node files as written, but for their addresses (loopback,
    # free ports) and paths: a cluster that elects a leader, where a TLS
    # client given any one node gets its write done (a follower's
    # NOT_LEADER names the leader's tcp:// advertise address, which a TLS
    # client dials with TLS).
    if tls_server and tls_client and cluster_server:
        subst, ports = [], {}
        for n in (1, 2, 3):
            ports[n] = (free_port(), free_port(), free_port())  # client, Raft, metrics
            subst += [(f"192.0.2.1{n}:7373", f"127.0.0.1:{ports[n][0]}"),
                      (f"192.0.2.1{n}:7374", f"127.0.0.1:{ports[n][1]}")]
        procs, socks = [], []
        try:
            for n in (1, 2, 3):
                d = os.path.join(tmp, f"node{n}")
                os.makedirs(d)
                conf = localize(nodes[n - 1], os.path.join(d, "node.conf"), subst + [
                    ("tls://0.0.0.0:7373", f"tls://127.0.0.1:{ports[n][0]}"),
                    (f"unix:///run/rcstore/node{n}/", f"unix://{d}/"),
                    (f"/var/lib/rcstore/node{n}", os.path.join(d, "data")),
                    ("tcp://0.0.0.0:9373", f"tcp://127.0.0.1:{ports[n][2]}")])
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(os.path.join(d, "notify"))
                sock.settimeout(20)
                socks.append(sock)
                procs.append(subprocess.Popen(
                    [rcstored, "--config", conf, "--log-level", "warn"],
                    env=dict(os.environ, NOTIFY_SOCKET=os.path.join(d, "notify"))))
            for n, sock in enumerate(socks, 1):
                try:
                    ready = "READY=1" in sock.recv(4096).decode().split("\n")
                except socket.timeout:
                    ready = False
                check(f"deploy/cluster/node{n}.conf (addresses and paths localized) starts", ready)
            for n in (1, 2, 3):
                r = subprocess.run([rcstore, "-H", f"tls://127.0.0.1:{ports[n][0]}", "--cacert",
                                    f"{etc}/tls/ca.pem", "--user", "ops", "--auth-file",
                                    f"{etc}/tls/ops.token", "create", "x", "--name", f"n/{n}"],
                                   capture_output=True, text=True, timeout=60)
                check(f"cluster: a TLS client given node {n} alone gets its write done",
                      r.returncode == 0 and r.stdout.strip().isdigit(), r.stdout + r.stderr)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for sock in socks:
                sock.close()
    else:
        print("skip starting deploy/cluster/*.conf: no TLS, users or cluster in these programs")

    # The three node files describe one cluster: the same peer lines, each
    # node's id, Raft address and client address its own peer line's, data
    # in the template unit's StateDirectory, the same election timeout.
    confs = [read_conf(p) for p in nodes]
    peer_sets = [[v for k, v in c if k == "peer"] for c in confs]
    check("cluster configs: the same three peer lines in every file",
          len(peer_sets[0]) == 3 and all(s == peer_sets[0] for s in peer_sets), peer_sets)
    peers = {}
    for line in peer_sets[0]:
        pid, raft, client = line.split("=", 2)
        peers[int(pid)] = (raft, client)
    check("cluster configs: peer ids 1, 2, 3", sorted(peers) == [1, 2, 3], peers)
    for n, c in enumerate(confs, 1):
        d = {}
        for k, v in c:
            d.setdefault(k, v)
        raft, client = peers.get(n, ("", ""))
        check(f"node{n}.conf: node-id {n}", d.get("node-id") == str(n), d.get("node-id"))
        check(f"node{n}.conf: raft-listen and advertise are its peer line's",
              d.get("raft-listen") == raft and d.get("advertise") == client,
              (d.get("raft-listen"), d.get("advertise"), raft, client))
        check(f"node{n}.conf: data in /var/lib/rcstore/node{n} (StateDirectory rcstore/%i)",
              d.get("data-dir") == f"/var/lib/rcstore/node{n}", d.get("data-dir"))
        check(f"node{n}.conf: unix socket in /run/rcstore/node{n} (RuntimeDirectory rcstore/%i)",
              all(v.startswith(f"unix:///run/rcstore/node{n}/")
                  for k, v in c if k == "listen" and v.startswith("unix:")))
        check(f"node{n}.conf: election-timeout-ms as node1's",
              d.get("election-timeout-ms") == dict(confs[0]).get("election-timeout-ms"))
    # libraft 0.15 parses Raft addresses with uv_ip4_addr: IPv4 only.
    for pid, (raft, client) in peers.items():
        host, _, port = raft.rpartition(":")
        try:
            ipaddress.IPv4Address(host)
            ok = port.isdigit()
        except ValueError:
            ok = False
        check(f"peer {pid}: Raft address {raft} is IPv4:PORT", ok)
        check(f"peer {pid}: client address {client} is tcp://HOST:PORT",
              re.fullmatch(r"tcp://[^:/]+:\d+", client) is not None)

    # Type=notify readiness, without systemd: a datagram socket of our own.
    ns = os.path.join(tmp, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(ns)
    sock.settimeout(20)
    p = subprocess.Popen([os.path.join(prefix, "bin/rcstored"), "--listen", "tcp://127.0.0.1:0",
                          "--log-level", "warn"], env=dict(os.environ, NOTIFY_SOCKET=ns))
    msg = sock.recv(4096).decode()
    check("sd_notify READY=1", "READY=1" in msg.split("\n"), msg)
    p.send_signal(signal.SIGTERM)
    msg = sock.recv(4096).decode()
    check("sd_notify STOPPING=1 on SIGTERM", "STOPPING=1" in msg, msg)
    check("clean exit", p.wait(timeout=20) == 0)
finally:
    shutil.rmtree(tmp)

docs = []
for name in ("deployment.yaml", "service.yaml"):
    with open(os.path.join(SRC, "deploy/kubernetes", name)) as f:
        docs += [d for d in yaml.safe_load_all(f) if d]
kinds = {d["kind"]: d for d in docs}
check("k8s: a Deployment and a Service", set(kinds) == {"Deployment", "Service"}, list(kinds))
dep = kinds["Deployment"]["spec"]
c = dep["template"]["spec"]["containers"][0]
check("k8s: one replica, recreated", dep["replicas"] == 1 and dep["strategy"]["type"] == "Recreate")
check("k8s: probes", "readinessProbe" in c and "livenessProbe" in c)
check("k8s: resource limits", "limits" in c["resources"] and "requests" in c["resources"])
check("k8s: non-root", dep["template"]["spec"]["securityContext"]["runAsNonRoot"] is True)
ports = {p["name"] for p in kinds["Service"]["spec"]["ports"]}
check("k8s: service ports match", ports == {p["name"] for p in c["ports"]})


def pod_tls(pod, c, what):
    """TLS and users in a pod spec: the listeners, the Secrets mounted
    read-only with no access for others, the users file copied (mode 0600)
    by an init container into a volume of the pod, the readiness probe on
    the unix socket. Returns the mounts: volume name -> (path, volume)."""
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    env = {d["name"]: d.get("value", "") for d in c.get("env", [])}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    inits = pod.get("initContainers", [])
    unknown = [m["name"] for x in [c, *inits] for m in x.get("volumeMounts", [])
               if m["name"] not in vols and m["name"] not in ("data",)]
    check(f"{what}: every mount names a volume", not unknown, unknown)
    listen = env.get("RCSTORED_LISTEN", "").split()
    check(f"{what}: listens with TLS and on a unix socket",
          any(a.startswith("tls://") for a in listen) and
          any(a.startswith("unix://") for a in listen) and
          not any(a.startswith("tcp://") for a in listen), listen)

    def under(path, kind):
        return any(path.startswith(m["mountPath"] + "/") and kind in vols.get(n, {})
                   for n, m in mounts.items())

    for key in ("RCSTORED_TLS_CERT_FILE", "RCSTORED_TLS_KEY_FILE"):
        check(f"{what}: {key} is in a mounted Secret", under(env.get(key, ""), "secret"),
              env.get(key))
    secrets = [v for v in vols.values() if "secret" in v]
    check(f"{what}: Secrets give others no access",
          secrets and all(v["secret"].get("defaultMode", 0o644) & 0o007 == 0 for v in secrets),
          secrets)
    check(f"{what}: Secrets mounted read-only",
          all(m.get("readOnly") for n, m in mounts.items() if "secret" in vols.get(n, {})))
    users = env.get("RCSTORED_USERS_FILE", "")
    check(f"{what}: the users file is in a volume of the pod (not a Secret's mount)",
          under(users, "emptyDir"), users)
    cmds = [x.get("command", []) for x in inits]
    check(f"{what}: an init container copies the users file there, mode 0600",
          any(cm[:3] == ["install", "-m", "0600"] and cm[-1] == users for cm in cmds), cmds)
    sockets = [a[len("unix://"):] for a in listen if a.startswith("unix://")]
    check(f"{what}: the unix socket is in a volume of the pod",
          sockets and under(sockets[0], "emptyDir"), sockets)
    # The metrics listener's probes (issue 18): readiness /readyz, liveness
    # and start-up /healthz, on the container's metrics port, which
    # RCSTORED_METRICS_LISTEN opens.
    http = {k: c.get(k, {}).get("httpGet", {}) for k in
            ("readinessProbe", "livenessProbe", "startupProbe")}
    mport = [p["containerPort"] for p in c["ports"] if p["name"] == "metrics"]
    check(f"{what}: probes GET /readyz, /healthz and /healthz (start-up) on the metrics port",
          [h.get("path") for h in http.values()] == ["/readyz", "/healthz", "/healthz"] and
          all(h.get("port") == "metrics" for h in http.values()) and mport and
          env.get("RCSTORED_METRICS_LISTEN", "").endswith(":%d" % mport[0]), http)
    return {n: (m["mountPath"], vols.get(n, {})) for n, m in mounts.items()}


dpod = dep["template"]["spec"]
dmounts = pod_tls(dpod, c, "k8s")
check("k8s: fsGroup is the pod's group (the Secrets' files are readable by it)",
      dpod["securityContext"].get("fsGroup") == dpod["securityContext"]["runAsGroup"])

# The pod, played here: each volume a directory (the Secrets' files made
# with openssl, with the Secret's mode), the init container's command, then
# rcstored with the container's arguments and environment (its ports free
# ones on loopback); the readiness probe's command must answer pong, a TLS
# client with the CA too, and after the documented rotation (the copy
# again, SIGHUP to rcstored) it still serves.
RCSTORED_BIN = os.path.join(BUILD, "server/rcstored")
RCSTORE_BIN = os.path.join(BUILD, "client/rcstore")
pod_tls_server = "--tls-cert-file" in help_of(RCSTORED_BIN)
if not pod_tls_server:
    print("skip playing the pod: this rcstored has no TLS options")
else:
    tmp = tempfile.mkdtemp()
    proc = None
    try:
        pki = os.path.join(tmp, "pki")
        token = make_pki(pki)
        local = {}
        for name, (path, vol) in dmounts.items():
            d = os.path.join(tmp, "vol", name)
            os.makedirs(d)
            local[path] = d
            sec = vol.get("secret", {})
            files = {"rcstore-tls": {"tls.crt": "server.pem", "tls.key": "server.key",
                                     "ca.crt": "ca.pem"},
                     "rcstore-users": {"users.ini": "users.ini"}}.get(sec.get("secretName"), {})
            for dst, src in files.items():
                shutil.copy(os.path.join(pki, src), os.path.join(d, dst))
                os.chmod(os.path.join(d, dst), sec.get("defaultMode", 0o644))

        def here(v):
            for path in sorted(local, key=len, reverse=True):
                v = v.replace(path + "/", local[path] + "/")
            return v

        port, mport = free_port(), free_port()
        for init in dpod.get("initContainers", []):
            r = subprocess.run([here(a) for a in init["command"]], capture_output=True, text=True)
            check(f"k8s: init container {init['name']} runs", r.returncode == 0, r.stderr)
        env = {d["name"]: here(d["value"]) for d in c["env"] if "value" in d}
        env["RCSTORED_LISTEN"] = env["RCSTORED_LISTEN"].replace("tls://0.0.0.0:7373",
                                                                f"tls://127.0.0.1:{port}")
        env["RCSTORED_METRICS_LISTEN"] = f"tcp://127.0.0.1:{mport}"
        users = env.get("RCSTORED_USERS_FILE", "")
        check("k8s: the users file's copy is mode 0600",
              os.path.exists(users) and os.stat(users).st_mode & 0o777 == 0o600)
        ns = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(ns)
        sock.settimeout(20)
        proc = subprocess.Popen([RCSTORED_BIN, *c.get("args", []), "--log-level", "warn"],
                                env=dict(os.environ, NOTIFY_SOCKET=ns, **env))
        try:
            ready = "READY=1" in sock.recv(4096).decode().split("\n")
        except socket.timeout:
            ready = False
        check("k8s: rcstored starts with the pod's arguments and environment", ready)
        sockets = [here(a[len("unix://"):]) for a in env["RCSTORED_LISTEN"].split()
                   if a.startswith("unix://")]

        def probe(kind):
            """(status, body) of the pod's probe of that kind."""
            path = c[kind]["httpGet"]["path"]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{mport}{path}", timeout=20) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        def ping_checks(when):
            check(f"k8s: the readiness probe answers 200 ready{when}",
                  probe("readinessProbe") == (200, "ready\n"), probe("readinessProbe"))
            check(f"k8s: the liveness probe answers 200 ok{when}",
                  probe("livenessProbe") == (200, "ok\n"), probe("livenessProbe"))
            r = subprocess.run([RCSTORE_BIN, "-s", sockets[0], "ping"], capture_output=True,
                               text=True, timeout=20)
            check(f"k8s: the unix socket answers pong{when}",
                  r.stdout.strip() == "pong", r.stdout + r.stderr)
            if "--cacert" in help_of(RCSTORE_BIN):
                r = subprocess.run([RCSTORE_BIN, "-H", f"tls://localhost:{port}", "--cacert",
                                    os.path.join(pki, "ca.pem"), "--user", "ops", "--auth-file",
                                    os.path.join(pki, "ops.token"), "names"],
                                   capture_output=True, text=True, timeout=20)
                check(f"k8s: a TLS client with the CA logs in as ops{when}",
                      r.returncode == 0, r.stdout + r.stderr)

        ping_checks("")
        # The rotation of deployment.yaml's header: the copy again, SIGHUP.
        for init in dpod.get("initContainers", []):
            subprocess.run([here(a) for a in init["command"]], check=True)
        proc.send_signal(signal.SIGHUP)
        ping_checks(" after the rotation (copy, SIGHUP)")
        check("k8s: rcstored still runs after SIGHUP", proc.poll() is None)
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        shutil.rmtree(tmp)

# The cluster: a StatefulSet of three behind a headless Service.
docs = []
for name in ("statefulset.yaml", "service.yaml", "pdb.yaml"):
    with open(os.path.join(SRC, "deploy/kubernetes/cluster", name)) as f:
        docs += [d for d in yaml.safe_load_all(f) if d]
check("k8s cluster: a StatefulSet, five Services, a PodDisruptionBudget",
      sorted(d["kind"] for d in docs) ==
      ["PodDisruptionBudget"] + ["Service"] * 5 + ["StatefulSet"], [d["kind"] for d in docs])
sts = next(d for d in docs if d["kind"] == "StatefulSet")
svcs = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")["spec"]
spec = sts["spec"]
pod = spec["template"]["spec"]
c = pod["containers"][0]
labels = spec["template"]["metadata"]["labels"]
check("k8s cluster: StatefulSet rcstore of 3 (pods rcstore-0..2)",
      sts["metadata"]["name"] == "rcstore" and spec["replicas"] == 3)
check("k8s cluster: pods start in parallel", spec.get("podManagementPolicy") == "Parallel")
check("k8s cluster: pods are replaced one by one by hand (OnDelete)",
      spec.get("updateStrategy", {}).get("type") == "OnDelete")
check("k8s cluster: the selector matches the pods",
      spec["selector"]["matchLabels"].items() <= labels.items())
headless = svcs.get(spec["serviceName"], {})
check("k8s cluster: serviceName is a headless Service publishing unready pods",
      headless.get("clusterIP") == "None" and headless.get("publishNotReadyAddresses") is True)
cports = {p["name"]: p["containerPort"] for p in c["ports"]}
check("k8s cluster: the headless Service has the Raft and client ports",
      {p["targetPort"] for p in headless.get("ports", [])} == {"raft", "rcstore"})
client_svc = svcs.get("rcstore", {})
check("k8s cluster: a client Service rcstore without the Raft port",
      client_svc.get("clusterIP") != "None" and
      {p["targetPort"] for p in client_svc.get("ports", [])} == {"rcstore", "metrics"})
# Raft addresses are IPv4 and stay in the Raft log: each initial node's is
# the ClusterIP of a Service of its own, which outlives its pods.
for i in range(3):
    s = svcs.get(f"rcstore-raft-{i}", {})
    check(f"k8s cluster: Service rcstore-raft-{i} sends the Raft port to pod rcstore-{i} only",
          s.get("clusterIP") != "None" and s.get("publishNotReadyAddresses") is True and
          s.get("selector", {}).get("statefulset.kubernetes.io/pod-name") == f"rcstore-{i}" and
          [p["targetPort"] for p in s.get("ports", [])] == ["raft"], s)
check("k8s cluster: the Services' ports are the container's",
      all(p["targetPort"] in cports for s in svcs.values() for p in s["ports"]))
# (statefulset.kubernetes.io/pod-name is the label the controller gives each pod.)
check("k8s cluster: the Services select the pods",
      all({k: v for k, v in s["selector"].items()
           if k != "statefulset.kubernetes.io/pod-name"}.items() <= labels.items() and
          s["selector"].get("app") == labels["app"] for s in svcs.values()))
claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
check("k8s cluster: one PersistentVolumeClaim per pod, mounted",
      len(claims) == 1 and claims[0] in mounts, (claims, mounts))
check("k8s cluster: probes", "readinessProbe" in c and "livenessProbe" in c)
probe_ports = [p[k]["port"] for p in (c["readinessProbe"], c["livenessProbe"])
               for k in ("tcpSocket", "httpGet") if k in p]
check("k8s cluster: probes name a container port", all(p in cports for p in probe_ports))
check("k8s cluster: resource limits", "limits" in c["resources"] and "requests" in c["resources"])
pod_tls(pod, c, "k8s cluster")
with open(os.path.join(SRC, "deploy/kubernetes/cluster/networkpolicy.yaml")) as f:
    pols = [d for d in yaml.safe_load_all(f) if d]
check("k8s cluster: a NetworkPolicy", [d["kind"] for d in pols] == ["NetworkPolicy"], pols)
if pols:
    pol = pols[0]["spec"]
    check("k8s cluster: the NetworkPolicy selects the pods",
          pol["podSelector"]["matchLabels"].items() <= labels.items())
    raft_rules = [r for r in pol.get("ingress", [])
                  if any(p.get("port") in ("raft", cports.get("raft")) for p in r.get("ports", []))]
    # The Raft port has no TLS and no authentication: the pods themselves
    # only (the pods' label); every other rule leaves it out.
    check("k8s cluster: the Raft port admits the cluster's own pods only",
          len(raft_rules) == 1 and raft_rules[0].get("from") and
          all(list(f) == ["podSelector"] and
              f["podSelector"]["matchLabels"].items() <= labels.items()
              for f in raft_rules[0]["from"]) and
          all(r.get("ports") for r in pol.get("ingress", [])), raft_rules)
check("k8s cluster: non-root, volume writable by its group",
      pod["securityContext"]["runAsNonRoot"] is True and
      pod["securityContext"].get("fsGroup") == pod["securityContext"]["runAsGroup"])
check("k8s cluster: the disruption budget keeps a majority",
      pdb.get("maxUnavailable") == 1 and pdb["selector"]["matchLabels"].items() <= labels.items())

# The start script, run as each pod would run it, with a stub rcstored that
# prints its arguments: the node id from the ordinal, the names under the
# headless Service, the peer lines for the initial members only.
script = c["command"][-1]
check("k8s cluster: the container runs a sh script", c["command"][:2] == ["/bin/sh", "-c"])
check("k8s cluster: the script has no $(NAME) for Kubernetes to expand",
      re.search(r"\$\([A-Za-z_]", script) is None)
tmp = tempfile.mkdtemp()
try:
    with open(os.path.join(tmp, "rcstored"), "w") as f:
        f.write('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    # The cluster's DNS: rcstore-raft-N.prod.svc is 10.96.0.1N (as
    # `getent ahostsv4` prints it), anything else unknown.
    with open(os.path.join(tmp, "getent"), "w") as f:
        f.write('#!/bin/sh\ncase "$1 $2" in\n'
                '"ahostsv4 rcstore-raft-"[0-9]".prod.svc")\n'
                '  n=${2#rcstore-raft-}; n=${n%%.*}\n'
                '  for t in STREAM DGRAM RAW; do echo "10.96.0.1$n    $t $2"; done ;;\n'
                '*) exit 2 ;;\nesac\n')
    for stub in ("rcstored", "getent"):
        os.chmod(os.path.join(tmp, stub), 0o755)
    env = {d["name"]: d["value"] for d in c["env"] if "value" in d}
    ns, ip = "prod", "10.2.3.4"
    dom = f"{spec['serviceName']}.{ns}.svc"

    def start(hostname):
        return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                              env=dict(env, PATH=tmp + ":/usr/bin:/bin", HOSTNAME=hostname,
                                       POD_NAMESPACE=ns, POD_IP=ip))

    expect_peers = [f"{i + 1}=10.96.0.1{i}:{cports['raft']}="
                    f"tcp://rcstore-{i}.{dom}:{cports['rcstore']}" for i in range(3)]
    runs = {}
    for ordinal in range(4):
        r = start(f"rcstore-{ordinal}")
        args = r.stdout.splitlines()
        runs[ordinal] = args
        opts = {args[i]: args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("--")}
        peers = [args[i + 1] for i in range(len(args) - 1) if args[i] == "--peer"]
        check(f"k8s cluster: rcstore-{ordinal} starts as node {ordinal + 1}",
              r.returncode == 0 and opts.get("--node-id") == str(ordinal + 1), (r.returncode, r.stderr, args))
        check(f"k8s cluster: rcstore-{ordinal} advertises its stable name",
              opts.get("--advertise") == f"tcp://rcstore-{ordinal}.{dom}:{cports['rcstore']}",
              opts.get("--advertise"))
        check(f"k8s cluster: rcstore-{ordinal} keeps its data on the volume",
              opts.get("--data-dir") == mounts.get("data"))
        check(f"k8s cluster: rcstore-{ordinal} listens for Raft on the pod's IP and port",
              opts.get("--raft-listen") == f"{ip}:{cports['raft']}", opts.get("--raft-listen"))
        if ordinal < 3:
            check(f"k8s cluster: rcstore-{ordinal} names the three initial members",
                  peers == expect_peers, peers)
        else:
            check("k8s cluster: a fourth pod has no peer lines (it waits for cluster add)",
                  peers == [], peers)
    r = start("rcstore")
    check("k8s cluster: a host name without an ordinal stops the script",
          r.returncode == 2 and not r.stdout and "ordinal" in r.stderr, (r.returncode, r.stdout, r.stderr))
finally:
    shutil.rmtree(tmp)
# What the script starts, and the environment it sets, is what rcstored
# takes (once this rcstored is a cluster server).
# The environment's files (the Secrets' certificate and key, the users
# file's copy) are made here and named by their local paths.
if cluster_server and pod_tls_server:
    tmp = tempfile.mkdtemp()
    try:
        make_pki(tmp)
        files = {"/etc/rcstore/tls/tls.crt": "server.pem", "/etc/rcstore/tls/tls.key": "server.key",
                 "/etc/rcstore/tls/ca.crt": "ca.pem", "/run/rcstore/users.ini": "users.ini"}
        lenv = {k: os.path.join(tmp, files[v]) if v in files else v for k, v in env.items()}
        lenv["RCSTORED_LISTEN"] = lenv["RCSTORED_LISTEN"].replace("/run/rcstore/", tmp + "/")
        for ordinal in (0, 3):
            accepts(os.path.join(BUILD, "server/rcstored"), runs[ordinal], env=lenv,
                    what=f"rcstore-{ordinal}'s arguments and environment")
    finally:
        shutil.rmtree(tmp)
else:
    print("skip rcstored accepts the StatefulSet's arguments: this rcstored has no --node-id "
          "or no TLS options")

df = open(os.path.join(SRC, "deploy/Dockerfile")).read().splitlines()
froms = [l for l in df if l.startswith("FROM ")]
check("Dockerfile: multi-stage on Debian 12",
      len(froms) == 2 and all(" debian:12" in l for l in froms), froms)
user = [l for l in df if l.startswith("USER ")]
check("Dockerfile: runs as non-root", user and not user[-1].split()[1].startswith(("0", "root")))
# Instructions whole (continued lines joined), comments left out.
instrs, cur = [], ""
for l in df:
    if l.startswith("#") and not cur:
        continue
    cur += l.rstrip("\\").strip() + " "
    if not l.rstrip().endswith("\\"):
        instrs.append(cur.strip())
        cur = ""
health = [i for i in instrs if i.startswith("HEALTHCHECK")]
check("Dockerfile: healthcheck pings", len(health) == 1 and "ping" in health[0], health)
denv = dict(re.findall(r'(RCSTORED_\w+)=("[^"]*"|\S+)', " ".join(i for i in instrs
                                                                if i.startswith("ENV "))))
dlisten = denv.get("RCSTORED_LISTEN", "").strip('"').split()
check("Dockerfile: listens with TLS, and on a unix socket, not in plaintext on the network",
      any(a.startswith("tls://") for a in dlisten) and
      any(a.startswith("unix://") for a in dlisten) and
      not any(a.startswith("tcp://") for a in dlisten), dlisten)
check("Dockerfile: names the certificate and key",
      "RCSTORED_TLS_CERT_FILE" in denv and "RCSTORED_TLS_KEY_FILE" in denv, denv)
# Closed by default: a users file is named, so an image run without one
# stops at start-up rather than serving every client as admin.
check("Dockerfile: requires a users file", "RCSTORED_USERS_FILE" in denv, denv)
check("Dockerfile: the user's group is gid 10001 too (USER 10001:10001 names it)",
      any("groupadd" in i and "--gid 10001" in i and "useradd" in i and "--gid 10001" in i
          for i in instrs), [i for i in instrs if "useradd" in i])
sockpaths = [a[len("unix://"):] for a in dlisten if a.startswith("unix://")]
check("Dockerfile: the healthcheck pings the unix socket, whose directory uid 10001 owns",
      health and sockpaths and f'"-s", "{sockpaths[0]}"' in health[0] and
      any(f"-o 10001" in i and os.path.dirname(sockpaths[0]) in i for i in instrs),
      (health, sockpaths))


def stage_packages(lines):
    """The words of a stage's apt-get install command (continued lines)."""
    words, on = set(), False
    for l in lines:
        if "apt-get install" in l:
            on = True
        if on:
            words |= {w for w in l.replace("\\", " ").split() if not w.startswith("-")}
            if not l.rstrip().endswith("\\"):
                on = False
    return words


cut = [i for i, l in enumerate(df) if l.startswith("FROM ")]
build_pkgs = stage_packages(df[cut[0]:cut[1]]) if len(cut) == 2 else set()
run_pkgs = stage_packages(df[cut[1]:]) if len(cut) == 2 else set()
# The build stage has the -dev packages `make deps` installs to build (the
# test-only ones aside).
make = open(os.path.join(SRC, "Makefile")).read()
make_pkgs = set(re.search(r"^PACKAGES\s*:=(.*?)(?<!\\)\n", make, re.M | re.S).group(1)
                .replace("\\", " ").split())
need = {p for p in make_pkgs if p.endswith("-dev") and p != "libcmocka-dev"}
check("Dockerfile: the build stage installs the build's -dev packages", need <= build_pkgs,
      sorted(need - build_pkgs))
# The runtime stage has the package of every library the installed
# programs link (their DT_NEEDED, found with ldd, owned per dpkg -S).
if shutil.which("readelf") and shutil.which("dpkg"):
    missing = set()
    for prog in ("server/rcstored", "client/rcstore", "client/rcstore-bench"):
        path = os.path.join(BUILD, prog)
        needed = re.findall(r"\(NEEDED\).*\[(.*)\]",
                            subprocess.run(["readelf", "-d", path], capture_output=True,
                                           text=True).stdout)
        where = dict(re.findall(r"^\s*(\S+) => (\S+)",
                                subprocess.run(["ldd", path], capture_output=True,
                                               text=True).stdout, re.M))
        for so in needed:
            if so.startswith(("libc.so", "libm.so", "ld-linux")) or so not in where:
                continue
            pkg = ""
            for f in (where[so], os.path.realpath(where[so])):
                r = subprocess.run(["dpkg", "-S", f], capture_output=True, text=True)
                if r.returncode == 0:
                    pkg = r.stdout.split(":")[0]
                    break
            if pkg and pkg not in run_pkgs:
                missing.add(f"{pkg} ({so}, {prog})")
    check("Dockerfile: the runtime stage installs every library the programs link",
          not missing, sorted(missing))
else:
    print("skip Dockerfile's runtime libraries: no readelf or dpkg")


# .dockerignore: what `COPY . .` sends of the repository (the context of
# `docker build -f deploy/Dockerfile .`). Docker's rules: patterns relative
# to the context, * and ? within a path element, ** across them, a pattern
# that matches a directory leaves out all under it, the last matching
# pattern wins and ! brings a path back.
def glob_re(pat):
    out, i = "", 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pat.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pat[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pat[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pat[i]), i + 1
    return re.compile(out + r"\Z")


def docker_ignored(path, patterns):
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for neg, rx in patterns:
        if any(rx.match(p) for p in prefixes):
            ignored = not neg
    return ignored


di_path = os.path.join(SRC, ".dockerignore")
check(".dockerignore: present beside the context's top", os.path.exists(di_path))
if os.path.exists(di_path):
    patterns = []
    for l in open(di_path).read().splitlines():
        l = l.strip()
        if l and not l.startswith("#"):
            neg = l.startswith("!")
            patterns.append((neg, glob_re(os.path.normpath(l.lstrip("!").strip()).lstrip("/"))))
    for path in (".git/HEAD", ".git", "build/CMakeCache.txt", "build-asan/server/rcstored",
                 "build-tsan/x", "data/journal.000001", "data", "tests/CMakeLists.txt"):
        check(f".dockerignore: {path} stays out of the image's context",
              docker_ignored(path, patterns))
    r = subprocess.run(["git", "-C", SRC, "ls-files"], capture_output=True, text=True)
    if r.returncode == 0:
        files = r.stdout.splitlines()
    else:  # not a git checkout: what is there
        files = [os.path.relpath(os.path.join(d, f), SRC) for d, _, fs in os.walk(SRC) for f in fs]
    kept = [f for f in files if not docker_ignored(f, patterns)]
    need = [f for f in files if f == "CMakeLists.txt" or
            f.startswith(("common/", "protocol/", "server/", "client/", "perf/", "docs/man/",
                          "deploy/"))]
    check(".dockerignore: keeps every source, man page and deploy file the build installs",
          set(need) <= set(kept), sorted(set(need) - set(kept)))
    # The context as Docker would send it configures as the Dockerfile does.
    tmp = tempfile.mkdtemp()
    try:
        for f in kept:
            if os.path.isfile(os.path.join(SRC, f)):
                os.makedirs(os.path.dirname(os.path.join(tmp, "ctx", f)), exist_ok=True)
                shutil.copy2(os.path.join(SRC, f), os.path.join(tmp, "ctx", f))
        r = subprocess.run(["cmake", "-S", os.path.join(tmp, "ctx"), "-B", os.path.join(tmp, "b"),
                            "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DRCS_BUILD_TESTS=OFF",
                            "-DCMAKE_INSTALL_PREFIX=/usr"], capture_output=True, text=True)
        check(".dockerignore: what is left configures as the Dockerfile's build stage does",
              r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:])
    finally:
        shutil.rmtree(tmp)

print("failures:", failures)
sys.exit(1 if failures else 0)
