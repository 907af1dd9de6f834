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

/* Collect every garbage cycle reachable from the candidates (all garbage
 * there is: see docs/gc.md), synchronously, after finishing or giving up
 * the work of periodic slices under way. 0, or RPC_EOUT_OF_MEMORY with
 * every count intact. */
int gc_collect(struct heap *h, struct gc_result *r);
/* One slice of a periodic sweep: about budget_us of work (at least one
 * step), then it returns, whatever the size of the subgraph or of the
 * garbage under way. A collection takes every candidate buffered when it
 * starts (one per unit of work), runs across as many slices as it needs and changes no count (its
 * trial counts are its own); an object that requests change meanwhile is alive for it and a
 * candidate again afterwards (see docs/gc.md for the rule and why it is
 * correct); garbage it finds is freed a chunk at a time, and once the
 * sweep's work is done its trial array is given back 2 MiB a step. Returns
 * 1 if work remains (that included), 0 if none, or RPC_EOUT_OF_MEMORY (the
 * collection under way is given up and its roots are candidates again). */
int gc_slice(struct heap *h, uint64_t budget_us, struct gc_result *r);
/* Garbage found by gc_slice and not yet freed (hidden from requests). */
uint64_t gc_pending(const struct heap *h);
/* Collector scratch memory that common/mem does not count: the resident
 * pages of the periodic sweep's trial array (mapped, so only the pages a
 * sweep touches take memory; given back when the sweep ends, then 0).
 * The collector's stacks are allocated through common/mem and counted
 * there. For stats.memory.gc_scratch_bytes and /metrics. */
uint64_t gc_scratch_bytes(const struct heap *h);

#endif
