#!/usr/bin/env bash
# librcstore exports its API and nothing else: the global symbols defined in
# the shared library and in the static archive are exactly the functions
# rcstore.h declares (all rcs_*). A generic name such as buf_init or
# mem_alloc leaking from librcstore.a would clash with a program's own, so a
# program that defines some of those names must link with the archive and
# keep the library's behaviour. $4: the C compiler.
set -eu
SO=$1
ARCHIVE=$2
HEADER=$3
CC=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$SO" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/so"
nm -g --defined-only "$ARCHIVE" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/a"
grep -oE '^RCS_EXPORT [^(]*[^a-z0-9_]rcs_[a-z0-9_]+\(' "$HEADER" \
  | grep -oE 'rcs_[a-z0-9_]+\($' | tr -d '(' | sort -u >"$tmp/h"

status=0
test -s "$tmp/h" || { echo "FAIL: no RCS_EXPORT declaration found in $HEADER"; exit 1; }
for lib in so a; do
  if ! diff -u "$tmp/h" "$tmp/$lib" >"$tmp/diff"; then
    echo "FAIL: the $lib library's exports differ from rcstore.h (+ exported, - missing):"
    grep -E '^[-+][^-+]' "$tmp/diff" || true
    status=1
  else
    echo "ok: the $lib library exports exactly the $(wc -l <"$tmp/h") functions of rcstore.h"
  fi
done

cat >"$tmp/clash.c" <<'PROG'
#include "rcstore.h"
#include <stdio.h>
#include <string.h>
/* Names the library uses inside; the program's own must not meet them. */
int buf_init(void) { return 0; }
void *mem_alloc(size_t n) { (void)n; return NULL; }
const char *err_message(int err) { (void)err; return "the program's own"; }
int main(void)
{
    const char *s = rcs_strerror(RCS_ENOT_FOUND);
    printf("%s\n", s);
    return strcmp(s, "the program's own") == 0 ? 1 : 0;
}
PROG
if ! "$CC" -I"$(dirname "$HEADER")" "$tmp/clash.c" "$ARCHIVE" $(pkg-config --libs msgpack libssl libcrypto) \
     -o "$tmp/clash" 2>"$tmp/link.log"; then
  echo "FAIL: a program defining buf_init, mem_alloc, err_message does not link with the archive:"
  cat "$tmp/link.log"
  status=1
elif ! "$tmp/clash"; then
  echo "FAIL: the archive called the program's err_message"
  status=1
else
  echo "ok: a program with its own buf_init, mem_alloc and err_message links with the archive"
fi
exit $status
