"""docs/python.md's tour, run as written against a server of its own (its
address in place of 127.0.0.1:7373), in a fresh interpreter."""

import os
import re
import subprocess
import sys

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs", "python.md")
PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tour():
    text = open(DOC, encoding="utf-8").read()
    section = text.split("## A tour", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_tour_runs(server):
    code = tour()
    assert "127.0.0.1:7373" in code
    code = code.replace("127.0.0.1:7373", server.address.removeprefix("tcp://"))
    env = dict(os.environ, PYTHONPATH=PKG)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "1 {'id': 1, 'data': b'job 17', 'refs': [], 'refcount': 3}"
    assert out[1] == "b'chunk'"
    assert out[-2] == "freed [1, 'refcount']"
    assert out[-1] == "NOT_FOUND no object 1"
