"""The examples of README.md and docs/*.md as the tests read them: the
fenced blocks of a page with the `<!-- tour: ... -->` directives above
them, the `$ ` transcripts inside them (a command, then what it prints,
with `...` for what varies), a terminal to type them into (bash on a
pseudo-terminal, as a reader pastes them), and the pairing of a `bash -x`
trace with what each command printed (the security and cluster tours run
their blocks as one script). Not a test by itself: test_readme_tour.py,
test_security_tour.py and test_cluster_tour.py import it.

The rules the pages follow are in docs/testing.md, "The tours"."""
import os
import pty
import re
import select
import signal
import socket
import subprocess
import termios
import time
from collections import namedtuple

Block = namedtuple("Block", "path line lang text directives")
Step = namedtuple("Step", "line command expected")

FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*tour:\s*(.*?)\s*-->\s*$")
# A line of the interactive shell's transcript: its prompt, then what was
# typed. Prompts are an address (tcp://127.0.0.1:7373, a socket path...).
SHELL_PROMPT = re.compile(r"^((?:tcp|tls|unix)://[^\s>]+|[\w.\[\]:-]+:\d+|/\S+)> (.*)$")


def blocks(path, lang=None):
    """The fenced blocks of the page at path, in order (of language lang
    only, when given: "sh" for ```sh). A block's directives are the words
    of the `<!-- tour: ... -->` comments right above its fence (blank
    lines may come between)."""
    out = []
    lines = open(path).read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        directives = []
        k = start - 1
        while k >= 0 and (not lines[k].strip() or DIRECTIVE.match(lines[k])):
            d = DIRECTIVE.match(lines[k])
            if d:
                directives = d.group(1).split() + directives
            k -= 1
        if lang is None or m.group(1) == lang:
            out.append(Block(path, start + 1, m.group(1), "\n".join(lines[start + 1:j]) + "\n",
                             directives))
        i = j + 1
    return out


def sh_text(path):
    """The ```sh blocks of a page joined into one script, in order."""
    return "".join(b.text for b in blocks(path, "sh"))


def transcript(block):
    """The `$ ` steps of a block: each command with the lines it is shown
    to print (up to the next `$ ` line). Lines before the first `$ ` are
    not part of any step (there are none in a transcript block)."""
    steps = []
    for n, line in enumerate(block.text.rstrip("\n").split("\n")):
        if line.startswith("$ "):
            steps.append(Step(block.line + 1 + n, line[2:], []))
        elif steps:
            steps[-1].expected.append(line)
    return steps


def is_transcript(block):
    return any(l.startswith("$ ") for l in block.text.split("\n"))


def line_matches(pattern, line):
    """Whether an output line is the expected one; `...` in the expected
    line stands for any text (none included)."""
    parts = [re.escape(p) for p in pattern.rstrip().split("...")]
    return re.fullmatch(".*?".join(parts), line.rstrip(), re.S) is not None


def lines_match(expected, actual):
    """Whether the output lines are the expected ones, in order; an
    expected line that is `...` alone stands for any number of lines
    (none included)."""
    memo = {}

    def go(i, j):
        if (i, j) in memo:
            return memo[i, j]
        if i == len(expected):
            r = j == len(actual)
        elif expected[i].strip() == "...":
            r = any(go(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            r = j < len(actual) and line_matches(expected[i], actual[j]) and go(i + 1, j + 1)
        memo[i, j] = r
        return r

    return go(0, 0)


def trace_steps(out, ignore=()):
    """Each command of a `bash -x` trace with the lines it printed. `++`
    lines (command substitutions) start no step and are nobody's output;
    neither are traced lines starting with one of the prefixes in ignore
    (a node started in the background traces whenever its subshell runs)."""
    steps, cur = [], None
    for line in out.splitlines():
        if line.startswith("+ ") and line[2:].startswith(tuple(ignore)):
            continue
        if line.startswith("+ ") and not line.startswith("++ "):
            cur = [line[2:], []]
            steps.append(cur)
        elif not line.startswith("++") and cur:
            cur[1].append(line)
    return steps


def bindir(tmp, **programs):
    """A directory in tmp with a symlink NAME -> path for each program
    (rcstored=..., rcstore=...): put first on PATH, the page's commands run
    the programs under test. Returns its path."""
    d = os.path.join(tmp, "bin")
    os.makedirs(d, exist_ok=True)
    for name, path in programs.items():
        os.symlink(os.path.abspath(path), os.path.join(d, name.replace("_", "-")))
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def can_unshare_net():
    """Whether a network namespace of our own can be made (root, usually)."""
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


class Terminal:
    """An interactive bash on a pseudo-terminal, in cwd with env, as a
    reader's terminal: commands typed into it run with a tty for stdin,
    stdout and stderr (so the CLI's interactive shell prints its banner and
    prompts), and what it shows comes back with carriage returns removed.
    The terminal echoes what is typed, where it is typed, as on a screen;
    bash's prompt is a marker that ends each command's output. TERM is
    dumb: no escape sequences, the same text on the screen."""

    MARK = "<<tour-ready>>"

    def __init__(self, cwd, env):
        env = dict(env, PS1=self.MARK, PS2="", TERM="dumb")
        env.pop("PROMPT_COMMAND", None)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.chdir(cwd)
                os.execvpe("bash", ["bash", "--norc", "--noprofile", "--noediting", "-i"], env)
            finally:
                os._exit(127)
        self.buf = ""
        self.wait_for(lambda b: self.MARK in b, 20)
        self.buf = self.buf[self.buf.index(self.MARK) + len(self.MARK):]

    def read_some(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            raise EOFError("the terminal closed")
        self.buf += data.decode("utf-8", "replace").replace("\r", "")
        return True

    def wait_for(self, cond, timeout):
        """Read until cond(what came so far) holds; False at the timeout."""
        end = time.monotonic() + timeout
        while not cond(self.buf):
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.read_some(left)
        return True

    def editing(self, timeout):
        """Waits until a line editor reads the terminal (raw mode: the CLI's
        libedit prints its prompt a moment before it sets the mode, and
        what is typed in between is echoed twice, on a screen too). False
        at the timeout: no line editor (a CLI built without libedit)."""
        end = time.monotonic() + timeout
        while termios.tcgetattr(self.fd)[3] & termios.ICANON:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True

    def take(self, upto):
        out, self.buf = self.buf[:upto], self.buf[upto:]
        return out

    def type(self, line):
        os.write(self.fd, (line + "\n").encode())

    def command(self, line):
        """Types a command for bash and takes its echo: what comes next is
        the command's."""
        self.type(line)
        if self.wait_for(lambda b: "\n" in b, 10) and self.buf.startswith(line + "\n"):
            self.take(len(line) + 1)

    def finish(self, timeout):
        """What the command typed last printed, once bash prompts again
        (None at the timeout, with what came kept for take_all)."""
        if not self.wait_for(lambda b: self.MARK in b, timeout):
            return None
        out = self.take(self.buf.index(self.MARK))
        self.take(len(self.MARK))
        return out

    def take_all(self):
        return self.take(len(self.buf))

    def close(self):
        """Hang up: bash passes SIGHUP on to its jobs (a command still
        waiting, say) and exits; SIGKILL if it has not after 5 s."""
        try:
            os.kill(self.pid, signal.SIGHUP)
            end = time.monotonic() + 5
            while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > end:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    break
                time.sleep(0.05)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)
