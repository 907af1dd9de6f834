"""The package installs offline from Debian's packages alone, the way the
README says (pip install --no-build-isolation --no-index), into a venv that
sees the system's python3-msgpack; a program there imports it from the venv
and talks to a real rcstored. The source is copied first so that the build
writes nothing into the checkout."""

import os
import shutil
import subprocess
import sys
import venv

import pytest

PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"  # Debian's, with its setuptools and msgpack


def test_offline_install_in_a_venv(server, tmp_path):
    if not os.access(PYTHON, os.X_OK):
        pytest.skip("no /usr/bin/python3")
    src = tmp_path / "src"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    env.pop("PYTHONPATH", None)
    r = subprocess.run([PYTHON, "-m", "venv", "--system-site-packages", str(tmp_path / "venv")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    py = str(tmp_path / "venv" / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index", str(src)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Successfully installed rcstore-" in r.stdout
    prog = f"""
import rcstore, sys
assert rcstore.__file__.startswith({str(tmp_path / 'venv')!r}), rcstore.__file__
with rcstore.connect({server.address!r}) as c:
    r = c.new(b"installed")
    print(rcstore.__version__, r.get()["data"].decode())
"""
    r = subprocess.run([py, "-c", prog], capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0, r.stderr
    version, word = r.stdout.split()
    assert word == "installed" and version == __import__("rcstore").__version__
    assert not os.path.exists(os.path.join(PKG, "build"))
