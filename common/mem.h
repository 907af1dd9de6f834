/* mem: the one door through which rcstore allocates memory. It counts the
 * bytes in use per budget (for stats, --maxmemory and --max-client-buffers)
 * and lets tests inject failures. It is not an allocator itself: small heap
 * blocks come from pool.h, everything else from the system. Callers pass the
 * size back on free and realloc, which is what a size-class pool needs (it
 * keeps no per-block header).
 *
 * Two builds implement it. mem.c (the server's, in rcs_common) counts and
 * pools, with process-wide state that is not thread-safe. mem_libc.c
 * (librcstore's, in rcs_common_client) is plain malloc and free with no
 * state, so any number of threads may use it; it provides only the
 * allocation calls (plain and _in). */
#ifndef RCS_COMMON_MEM_H
#define RCS_COMMON_MEM_H

#include <stddef.h>

/* What an allocation is spent on; each budget is counted apart. MEM_HEAP is
 * what --maxmemory bounds (objects, names, sessions, and whatever else the
 * plain calls below allocate). MEM_CLIENT is connections: their state and
 * their input and output buffers, bounded by --max-client-buffers instead.
 * MEM_CLIENT blocks always come from the system allocator, never from a pool,
 * so that they cannot hold heap pools (counted whole in mem_heap_bytes). */
enum mem_budget { MEM_HEAP = 0, MEM_CLIENT = 1, MEM_NBUDGETS };

/* The calls below with an _in suffix take the budget; a block must be freed
 * and resized in the budget it was allocated in. */
void *mem_alloc_in(enum mem_budget b, size_t n);
void *mem_calloc_in(enum mem_budget b, size_t n);
void *mem_realloc_in(enum mem_budget b, void *p, size_t old, size_t n);
void mem_free_in(enum mem_budget b, void *p, size_t n);
/* Bytes currently allocated in budget b, as requested. */
size_t mem_budget_bytes(enum mem_budget b);

/* Return n bytes of MEM_HEAP, or NULL when the system (or an injected
 * failure) refuses. */
void *mem_alloc(size_t n);
/* Return n zeroed bytes, or NULL. */
void *mem_calloc(size_t n);
/* Resize p from old to n bytes; on failure p is untouched and NULL returned. */
void *mem_realloc(void *p, size_t old, size_t n);
/* Release p, which was allocated with size n. NULL is ignored. */
void mem_free(void *p, size_t n);
/* Bytes currently allocated in MEM_HEAP, as requested. */
size_t mem_used(void);
/* Of those, the bytes in blocks from the system allocator (the rest are in
 * pool blocks: see pool_get_stats for what they occupy). */
size_t mem_large_bytes(void);
/* What MEM_HEAP allocations occupy: the pools in use (whole 16 KiB pools)
 * plus large blocks. This is what --maxmemory bounds. */
size_t mem_heap_bytes(void);
/* The process's resident set (from /proc/self/statm), or 0 if unknown. */
size_t mem_rss_bytes(void);
/* Test hook: make the allocation after the next n succeed-ones fail; -1 turns
 * injection off. Counts allocations and growing reallocations in every budget. */
void mem_fail_after(long n);

#endif
