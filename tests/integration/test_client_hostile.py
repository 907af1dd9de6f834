#!/usr/bin/python3
"""librcstore against a hostile server (issue 18's attack review): the CLI's
--timeout is a deadline that a stream of notifications cannot push back; the
notifications queued while a reply is owed are bounded (past the bound the
connection fails with a clear error); a reply larger than the library needs
is refused from its header. Each case ran without end (or grew the client
to gigabytes) before its fix. Usage: test_client_hostile.py RCSTORE_CLI."""
import os
import resource
import subprocess
import sys

import rcswire

CLI = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
check = rcswire.Checks()


def hostile(mode):
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "hostile_server.py"), mode],
                         stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline())


def cap_memory():
    """1 GiB of address space for the CLI, so a client that grows without
    bound fails here rather than taking the machine's memory (not under
    ASan, which reserves terabytes of address space)."""
    if not os.environ.get("RCS_SANITIZED"):
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def cli(port, *args, limit=60):
    """Run the CLI at the fake server; a hang past limit is a failure (the
    limit is a safety net, not the assertion). Returns (status, stderr)."""
    try:
        r = subprocess.run([CLI, "-h", "127.0.0.1", "-p", str(port), *args],
                           capture_output=True, text=True, timeout=limit,
                           preexec_fn=cap_memory)
        return r.returncode, r.stderr.strip()
    except subprocess.TimeoutExpired:
        return None, "still running after %d s" % limit


for mode, timeout, want_status, want_text in (
        # A notification every 50 ms, never the reply: before the fix each
        # one restarted the 1 s wait, so ping never timed out.
        ("trickle", "1", 3, "timed out"),
        # Notifications as fast as the socket goes: before the fix they were
        # queued without bound (gigabytes in seconds). A long timeout: the
        # cap, not the clock, must end this one.
        ("flood", "30", 2, "without the client reading them"),
        # A 300 MiB bin in the reply to ping (the hello said max_data_bytes
        # 0): the client read it all and answered before the fix.
        ("bigbin", "30", 2, "larger than the client accepts"),):
    proc, port = hostile(mode)
    try:
        status, err = cli(port, "--timeout", timeout, "ping")
        check("%s: ping exits %d" % (mode, want_status), status == want_status,
              "status %r: %s" % (status, err))
        check("%s: the error says %r" % (mode, want_text), want_text in err, err)
    finally:
        proc.kill()
        proc.wait()

print("failures:", check.failures)
sys.exit(1 if check.failures else 0)
