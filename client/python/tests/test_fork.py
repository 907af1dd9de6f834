"""A client in a child of os.fork() (docs/python.md, "Processes and fork"):
the child never touches the socket it shares with its parent. A child that
drops its copy of a Ref and exits normally (atexit, finalisers, flusher)
frees nothing of the parent's, and any call there raises ConnectionFailed.
Each case runs in its own interpreter: the child must end through
sys.exit and the interpreter's exit, which a pytest process cannot do."""

import os
import subprocess
import sys
import textwrap

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork here")


def run_script(body, address):
    env = dict(os.environ, PYTHONPATH=PACKAGE)
    p = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body), address],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


SYNC = """
    import gc, os, signal, sys
    import rcstore
    c = rcstore.connect(sys.argv[1])
    r = c.new(b"parent's")
    kept = r.id
    spare = c.new(b"a second Ref")

    def child(body):
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)  # a hang fails the parent's check
            body()
            sys.exit(0)  # the interpreter's exit: atexit, finalisers
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status

    def drop_and_exit():  # the child never uses the client
        global r, spare
        del r, spare  # finalisers: nothing queued
        gc.collect()

    def call():
        try:
            c.ping()
        except rcstore.ConnectionFailed as e:
            assert "child process" in str(e) and str(os.getppid()) in str(e), e
        else:
            raise AssertionError("a call in the child went through")
        c.close()  # this process's copy of the fd only

    for body in (drop_and_exit, call):
        child(body)
        assert c.get(kept)["data"] == b"parent's"
        assert c.stat(kept)["holds"] == 1 and c.stat(spare)["holds"] == 1
        assert c.ping() == "pong"
    c.close()
    print("ok")
"""


def test_child_of_fork_leaves_the_parents_client_alone(server):
    assert run_script(SYNC, server.address).strip() == "ok"


AIO = """
    import asyncio, gc, os, signal, sys
    import rcstore, rcstore.aio as aio

    async def main():
        c = await aio.connect(sys.argv[1])
        r = await c.new(b"parent's")
        kept = r.id
        pid = os.fork()
        if pid == 0:
            # The child never runs the parent's loop again (asyncio's own
            # state is shared with the parent): checks, then _exit.
            signal.alarm(20)
            code = 0
            try:
                await c.ping()
                code = 3
            except rcstore.ConnectionFailed as e:
                code = 0 if "child process" in str(e) else 4
            try:
                await r.release()
                code = code or 5
            except rcstore.ConnectionFailed:
                pass
            del r
            gc.collect()
            c._flush_tick()  # the loop's timer, had it turned: nothing sent
            await c.close()  # the fd copy only
            sys.stdout.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert (await c.get(kept))["data"] == b"parent's"
        assert (await c.stat(kept))["holds"] == 1 and await c.ping() == "pong"
        await c.close()
        print("ok")

    asyncio.run(main())
"""


def test_aio_child_of_fork_leaves_the_parents_client_alone(server):
    assert run_script(AIO, server.address).strip() == "ok"
