/* gc_full: the simple, obviously correct collector. It marks everything
 * reachable from the roots (objects with a session hold, a name or a token)
 * through refs with an explicit stack, then frees every unmarked object as a
 * cycle. It costs O(heap) and stops the world, so the real collector (gc.c)
 * falls back to it only when running out of memory lost candidates; tests
 * check the real collector against it as their oracle. */
#ifndef RCS_SERVER_GC_FULL_H
#define RCS_SERVER_GC_FULL_H

#include "heap.h"

#include <stdint.h>

struct gc_result {
    uint64_t collected;   /* objects freed */
    uint64_t candidates;  /* objects with no external count (alive only by refs) */
    uint64_t examined;    /* objects looked at */
    uint64_t duration_us; /* wall time */
    uint64_t abandoned;   /* gc_slice: collections given up since start (see gc.h) */
    uint64_t touched;     /* gc_slice: objects requests touched during collections, ever */
};

/* Collect every unreachable object. 0, or RPC_EOUT_OF_MEMORY with nothing
 * freed. */
int gc_full(struct heap *h, struct gc_result *r);
/* Mark the objects reachable from the roots with OBJ_MARK (for tests and the
 * collector). Returns 0 or RPC_EOUT_OF_MEMORY (marks cleared). */
int gc_full_mark(struct heap *h, uint64_t *examined);
/* Clear OBJ_MARK everywhere. */
void gc_full_unmark(struct heap *h);

#endif
