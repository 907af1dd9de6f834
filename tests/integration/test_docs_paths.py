#!/usr/bin/python3
"""The pages name the repository as it is: every relative link of README.md
and docs/*.md points inside the repository, at something that exists (the
repository does not link outside itself; a page elsewhere is named in
words); and every repository path a page names, in `backticks` or as a
word of a code block (a path whose first part is one of the repository's
top-level directories, such as `deploy/rcstored.conf` or
`tests/integration/test_install.sh`), exists: as a file, a directory, or a
module's .c/.h (`server/record` is server/record.c). Paths under build*/
and data/ are what a build or a run makes, and are not checked.

usage: test_docs_paths.py SOURCE_DIR"""
import glob
import os
import re
import sys

SRC = os.path.abspath(sys.argv[1])
failures = 0


def check(name, cond, detail=""):
    global failures
    print(("ok  " if cond else "FAIL"), name, "" if cond else detail)
    failures += not cond


TOP = sorted(d for d in os.listdir(SRC) if os.path.isdir(os.path.join(SRC, d)) and
             not d.startswith(("build", ".git", "data", "Testing")))
PATH = re.compile(r"(?:\./)?(?:%s)/[\w.@/+-]*" % "|".join(re.escape(d) for d in TOP))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def exists(rel):
    p = os.path.join(SRC, rel.rstrip("/"))
    return os.path.exists(p) or os.path.exists(p + ".c") or os.path.exists(p + ".h")


pages = [os.path.join(SRC, "README.md")] + sorted(glob.glob(os.path.join(SRC, "docs/*.md")))
nlinks = npaths = 0
for page in pages:
    rel_page = os.path.relpath(page, SRC)
    text = open(page).read()
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor of the page
        path = os.path.normpath(os.path.join(os.path.dirname(page), target.split("#")[0]))
        inside = path == SRC or path.startswith(SRC + os.sep)
        check(f"{rel_page}: link {target} stays inside the repository and exists",
              inside and os.path.exists(path), path)
        nlinks += 1
    # Paths in `code` spans, and words of fenced blocks.
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    words = [w for b in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
             for w in b.split()]
    seen = set()
    for token in spans + words:
        for m in PATH.finditer(token):
            if m.start() and token[m.start() - 1] not in " =\"'(:":
                continue  # part of a longer path (/usr/share/doc/rcstore/...)
            if token[m.end():m.end() + 1] in ("*", "?", "[", "{", "<", "$"):
                continue  # a pattern (deploy/cluster/node*.conf)
            p = m.group(0).rstrip(".,;:)").removeprefix("./")
            if p in seen:
                continue
            seen.add(p)
            check(f"{rel_page}: {p} exists", exists(p))
            npaths += 1
print(f"{nlinks} links, {npaths} paths")
print("failures:", failures)
sys.exit(1 if failures else 0)
