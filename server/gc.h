/* gc: the cycle collector. It follows Bacon and Rajan's synchronous
 * algorithm ("Concurrent Cycle Collection in Reference Counted Systems",
 * ECOOP 2001): the heap buffers candidate roots (objects a decrement left
 * referenced, that have refs), and a collection looks only at the subgraphs
 * reachable from them: trial deletion of internal edges (MarkGray), then
 * objects still referenced from outside are restored (Scan / ScanBlack), and
 * what stays white is garbage (CollectWhite). Its cost follows the work
 * since the last collection, not the size of the heap. Every traversal uses
 * an explicit stack. gc_full remains the simple oracle that tests compare
 * it with, and the fallback when the candidate buffer could not grow. */
#ifndef RCS_SERVER_GC_H
#define RCS_SERVER_GC_H

#include "gc_full.h"
#include "heap.h"

/* Candidates a slice takes at a time: the unit of work between time checks. */
#define GC_BATCH 32

/* Collect every garbage cycle reachable from the candidates (all garbage
 * there is: see docs/gc.md), synchronously. 0, or RPC_EOUT_OF_MEMORY with
 * every count intact and nothing freed. */
int gc_collect(struct heap *h, struct gc_result *r);
/* One slice of a periodic sweep: collect batches of GC_BATCH candidates,
 * each batch complete in itself, while another batch as costly as the last
 * one still fits in budget_us (at least one batch), or until none are
 * left. Requests may change the graph between slices (see docs/gc.md for
 * why that is safe). Returns 1 if candidates remain, 0 if none, or
 * RPC_EOUT_OF_MEMORY (counts repaired; the next run is full). */
int gc_slice(struct heap *h, uint64_t budget_us, struct gc_result *r);

#endif
