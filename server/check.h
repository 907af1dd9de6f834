/* check: one function that recomputes every count the server keeps and
 * compares: each object's holds (session hold maps and owner tags), names,
 * tokens and internal count (refs of live objects), every ref naming a live
 * object, the id table's free list, the heap's totals, each session's hold
 * total, the candidate buffer against the buffered flags, colors and
 * traversal flags between collections, and watches. Used by the fuzzers, by
 * the randomized tests, and by the server on demand when started with
 * --debug-commands (the "debug_check" method). */
#ifndef RCS_SERVER_CHECK_H
#define RCS_SERVER_CHECK_H

#include "store.h"

#include <stddef.h>

/* 0 if every invariant holds; RPC_EINTERNAL with the first violation described in err
 * (errlen bytes). Only between requests: not during a collection. */
int store_check(const struct store *st, char *err, size_t errlen);
/* The heap's part alone (for tests of the heap and collector without a
 * store): the id table, totals, refs, internal counts, flags, colors and the
 * candidate buffer. store_check includes it. */
int heap_check(const struct heap *h, char *err, size_t errlen);

#endif
