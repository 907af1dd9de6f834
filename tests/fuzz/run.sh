#!/usr/bin/env bash
# Runs each fuzz target for SECONDS seconds from the committed seed corpus
# (tests/fuzz/corpus/KIND) plus what earlier runs found (build-fuzz/corpus/),
# and prints libFuzzer's execution count. A finding (crash, leak, UB, a broken
# invariant) stops the run with status 1 and leaves the input in build-fuzz/.
# usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -uo pipefail
BUILD=$1
SECONDS_EACH=$2
SRC=$(cd "$(dirname "$0")" && pwd)
status=0
for pair in fuzz_decode:decode fuzz_request:request fuzz_record:record fuzz_files:files fuzz_tls:tls; do
    t=${pair%%:*}
    kind=${pair##*:}
    mkdir -p "$BUILD/corpus/$t"
    "$BUILD/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -max_len=4096 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$BUILD/$t-" \
        "$BUILD/corpus/$t" "$SRC/corpus/$kind" >"$BUILD/$t.log" 2>&1
    rc=$?
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$BUILD/$t.log" | tail -1)
    if [ $rc -ne 0 ]; then
        echo "fuzz: $t FOUND A PROBLEM (status $rc); see $BUILD/$t.log:"
        grep -E 'ERROR|SUMMARY|invariant|outlived|runtime error' "$BUILD/$t.log" | head -5
        status=1
    else
        echo "fuzz: $t: ${runs:-?}s without a finding (corpus: $(ls "$BUILD/corpus/$t" | wc -l) found + $(ls "$SRC/corpus/$kind" | wc -l) seeds)"
    fi
done
exit $status
