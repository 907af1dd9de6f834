#!/usr/bin/python3
"""README.md's tour, and every other `$ ` example of docs/*.md, typed into a
terminal as a reader pastes them, each command's output compared line by
line with what the page shows. So that no page can drift from the programs
again.

Which examples: the ```sh blocks with a `$ ` line, in README.md and
docs/*.md, and the ```python blocks marked to run (below) (pages without one are left to their own tests: security.md and
cluster.md run as scripts in test_security_tour.py and
test_cluster_tour.py). Each page gets a fresh server, started as `make run`
starts it (the Makefile's `run:` command line, read from the Makefile), in
a fresh directory holding build/server/rcstored and build/client/rcstore
(the programs under test), which are also first on PATH. The commands are
typed, in the page's order, into an interactive bash on a pseudo-terminal
(`HOME` the fresh directory, no `XDG_RUNTIME_DIR` and no `RCSTORE_*` from
the environment): so the CLI's interactive shell has a terminal, and prints
its banner and prompts as on a screen. A `$ ` line is a command; the lines
under it are what it prints (stdout and stderr, as a terminal shows them),
where `...` in a line stands for any text and a line `...` alone for any
lines. In the output of a command that starts the interactive shell, a line
that begins with a prompt (`tcp://127.0.0.1:7373> `) is typed into it,
after that prompt has appeared.

The address: where a network namespace can be made (unshare -n, root), the
test runs in one of its own and the server listens on 127.0.0.1:7373 as
written, the CLI finding it by its default. Elsewhere the server takes a
free port, the terminal gets RCSTORE_ADDRESS=tcp://127.0.0.1:PORT,
7373 in a command is typed as PORT, and `127.0.0.1:PORT` is read as
`127.0.0.1:7373` in the output (force this
with RCS_TOUR_NETNS=0 in the environment).

Directives, an HTML comment on the line(s) above a block (docs/testing.md,
"The tours"):
  <!-- tour: restart -->     kill -9 the server and start it again on the
                             same data directory before the block
  <!-- tour: background watch -->
                             type the block's command into a second
                             terminal, go on once the server has answered
                             one more `watch` request (its metrics say),
                             and compare its output after the next block
  <!-- tour: skip -->        not run (say why beside it)
  <!-- tour: python -->      (on a ```python block) run by /usr/bin/python3
                             against the page's server; each `print(...)  # X`
                             line's X is what it prints

usage: test_readme_tour.py RCSTORED RCSTORE SOURCE_DIR"""
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tour  # noqa: E402

RCSTORED, RCSTORE, SRC = sys.argv[1:4]

# A network namespace of our own, where one can be made: port 7373 as the
# pages say, and nothing else on the machine in the way. The script runs
# again inside it, told so by a fifth argument.
NETNS = sys.argv[4:5] == ["in-netns"]
if not NETNS and os.environ.get("RCS_TOUR_NETNS") != "0" and tour.can_unshare_net():
    os.execvp("unshare", ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                          sys.executable, os.path.abspath(__file__)] + sys.argv[1:4] +
              ["in-netns"])

failures = 0
STEP_TIMEOUT = 30


def check(name, cond, detail=""):
    global failures
    print(("ok  " if cond else "FAIL"), name, "" if cond else detail)
    failures += not cond
    return cond


def make_run_command():
    """`make run`'s command line, from the Makefile."""
    m = re.search(r"^run:.*\n\t(.*)$", open(os.path.join(SRC, "Makefile")).read(), re.M)
    return shlex.split(m.group(1)) if m else None


class Server:
    """rcstored as `make run` starts it, in cwd (its data directory there),
    at port (7373 in the namespace), with a metrics listener beside it."""

    def __init__(self, cwd, argv, port):
        self.cwd, self.port, self.mport = cwd, port, tour.free_port()
        self.argv = [a.replace("127.0.0.1:7373", f"127.0.0.1:{port}") for a in argv]
        self.argv += ["--metrics-listen", f"tcp://127.0.0.1:{self.mport}"]
        self.proc, self.starts = None, 0

    def start(self):
        self.starts += 1
        self.log = os.path.join(self.cwd, f"rcstored.{self.starts}.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=log, stderr=log)
        # Ready when it says so (after recovery, its sockets listening).
        end = time.monotonic() + 30
        while time.monotonic() < end and self.proc.poll() is None:
            if " ready (pid " in open(self.log).read():
                return True
            time.sleep(0.02)
        print(open(self.log).read())
        return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def requests(self, method):
        """How many `method` requests the server has answered (metrics)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.mport}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(r'^rcstore_requests_total\{method="%s"\} (\d+)' % method, text, re.M)
        return int(m.group(1)) if m else 0


def rewrite(out, port):
    """The output as the page's reader would see it: without the test's own
    port."""
    if port != 7373:
        out = out.replace(f"127.0.0.1:{port}", "127.0.0.1:7373")
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def run_step(term, step, port):
    """Types step's command (and, into an interactive shell, the lines its
    transcript shows typed at a prompt). Returns what it printed, or None
    with what came so far at a timeout."""
    inputs = [m.group(2) for m in map(tour.SHELL_PROMPT.match, step.expected) if m]
    term.command(step.command if port == 7373 else step.command.replace("7373", str(port)))
    pos = 0
    for line in inputs:
        # The shell's next prompt, after what came before (its last line).
        if not term.wait_for(lambda b: re.search(r"(?:^|\n)[^\n]*\S> $", b[pos:]), STEP_TIMEOUT):
            return None, term.take_all()
        term.editing(2)
        term.type(line)
        pos = len(term.buf)
    out = term.finish(STEP_TIMEOUT)
    return (out, None) if out is not None else (None, term.take_all())


def compare(page, step, out, partial, port):
    where = f"{os.path.relpath(page, SRC)}:{step.line}: $ {step.command}"
    if out is None:
        return check(where, False, "\n  timed out; it printed:\n    " +
                     "\n    ".join(rewrite(partial, port)))
    actual = rewrite(out, port)
    return check(where, tour.lines_match(step.expected, actual),
                 "\n  the page shows:\n    " + "\n    ".join(step.expected) +
                 "\n  it printed:\n    " + "\n    ".join(actual))


def run_python(page, b, cwd, port):
    """A ```python block marked `<!-- tour: python -->`: run by
    /usr/bin/python3 against the page's server; each `print(...)  # X`
    line's X is what it prints, in order."""
    expected = [m.group(1) for m in re.finditer(r"^.*print\(.*\)\s+# (.*)$", b.text, re.M)]
    code = b.text if port == 7373 else b.text.replace("7373", str(port))
    r = subprocess.run(["/usr/bin/python3", "-c", code], cwd=cwd, capture_output=True,
                       text=True, timeout=STEP_TIMEOUT)
    actual = rewrite(r.stdout + r.stderr, port)
    return check(f"{os.path.relpath(page, SRC)}:{b.line}: the Python example",
                 r.returncode == 0 and expected and tour.lines_match(expected, actual),
                 "\n  the page shows:\n    " + "\n    ".join(expected) +
                 "\n  it printed:\n    " + "\n    ".join(actual))


def run_page(page, make_run):
    blocks = [b for b in tour.blocks(page) if b.lang == "sh" and tour.is_transcript(b) or
              b.lang == "python" and "python" in b.directives]
    if not blocks:
        return 0
    tmp = tempfile.mkdtemp(prefix="rcs-tour-")
    server = term = term2 = None
    nsteps = 0
    try:
        os.makedirs(os.path.join(tmp, "build/server"))
        os.makedirs(os.path.join(tmp, "build/client"))
        os.symlink(os.path.abspath(RCSTORED), os.path.join(tmp, "build/server/rcstored"))
        os.symlink(os.path.abspath(RCSTORE), os.path.join(tmp, "build/client/rcstore"))
        bench = os.path.join(os.path.dirname(os.path.abspath(RCSTORE)), "rcstore-bench")
        progs = dict(rcstored=RCSTORED, rcstore=RCSTORE)
        if os.path.exists(bench):
            os.symlink(bench, os.path.join(tmp, "build/client/rcstore-bench"))
            progs["rcstore_bench"] = bench
        bindir = tour.bindir(os.path.join(tmp, ".tour"), **progs)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RCSTORE_", "RCSTORED_")) and k != "XDG_RUNTIME_DIR"}
        env.update(HOME=tmp, PATH=bindir + ":" + os.environ["PATH"], LC_ALL="C.UTF-8")
        port = 7373 if NETNS else tour.free_port()
        if port != 7373:
            env["RCSTORE_ADDRESS"] = f"tcp://127.0.0.1:{port}"
        server = Server(tmp, make_run, port)
        if not check(f"{os.path.relpath(page, SRC)}: the server starts", server.start()):
            return 0
        term = tour.Terminal(tmp, env)
        background = None  # (block, step) typed into the second terminal
        for b in blocks:
            d = b.directives
            if "skip" in d:
                continue
            if "restart" in d:
                server.kill()
                if not check(f"{os.path.relpath(page, SRC)}:{b.line}: the server restarts",
                             server.start()):
                    return nsteps
            if b.lang == "python":
                run_python(page, b, tmp, port)
                nsteps += 1
                continue
            steps = tour.transcript(b)
            if "background" in d:
                # All but the last command run to the end; the last is left
                # waiting once the server has answered its request.
                method = d[d.index("background") + 1]
                term2 = term2 or tour.Terminal(tmp, env)
                for s in steps[:-1]:
                    out, partial = run_step(term2, s, port)
                    compare(page, s, out, partial, port)
                    nsteps += 1
                before = server.requests(method)
                term2.command(steps[-1].command)
                end = time.monotonic() + STEP_TIMEOUT
                while server.requests(method) == before and time.monotonic() < end:
                    time.sleep(0.02)
                check(f"{os.path.relpath(page, SRC)}:{b.line}: the server answered its {method}",
                      server.requests(method) > before)
                background = steps[-1]
                continue
            for s in steps:
                out, partial = run_step(term, s, port)
                compare(page, s, out, partial, port)
                nsteps += 1
            if background:
                out = term2.finish(STEP_TIMEOUT)
                compare(page, background, out, None if out is not None else term2.take_all(),
                        port)
                nsteps += 1
                background = None
        return nsteps
    finally:
        for t in (term, term2):
            if t:
                t.close()
        if server:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


make_run = make_run_command()
check("the Makefile's run target starts ./build/server/rcstored",
      make_run is not None and make_run[0] == "./build/server/rcstored", make_run)
if make_run:
    print("the server:", " ".join(make_run), "(in a fresh directory per page)",
          "in a network namespace" if NETNS else "at a free port, RCSTORE_ADDRESS")
    pages = [os.path.join(SRC, "README.md")] + sorted(glob.glob(os.path.join(SRC, "docs/*.md")))
    for page in pages:
        n = run_page(page, make_run)
        if n:
            print(f"{os.path.relpath(page, SRC)}: {n} commands")
        if page.endswith("README.md"):
            check("README.md has its tour", n >= 20, n)
print("failures:", failures)
sys.exit(1 if failures else 0)
