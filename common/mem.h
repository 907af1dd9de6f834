/* mem: the one door through which rcstore allocates memory. It counts the
 * bytes in use (for stats and maxmemory) and lets tests inject failures. It is
 * not an allocator itself: small blocks come from pool.h, large ones from the
 * system. Callers pass the size back on free and realloc, which is what a
 * size-class pool needs (it keeps no per-block header).
 *
 * Two builds implement it. mem.c (the server's, in rcs_common) counts and
 * pools, with process-wide state that is not thread-safe. mem_libc.c
 * (librcstore's, in rcs_common_client) is plain malloc and free with no
 * state, so any number of threads may use it; it provides only the four
 * allocation calls. */
#ifndef RCS_COMMON_MEM_H
#define RCS_COMMON_MEM_H

#include <stddef.h>

/* Return n bytes, or NULL when the system (or an injected failure) refuses. */
void *mem_alloc(size_t n);
/* Return n zeroed bytes, or NULL. */
void *mem_calloc(size_t n);
/* Resize p from old to n bytes; on failure p is untouched and NULL returned. */
void *mem_realloc(void *p, size_t old, size_t n);
/* Release p, which was allocated with size n. NULL is ignored. */
void mem_free(void *p, size_t n);
/* Bytes currently allocated through this interface, as requested. */
size_t mem_used(void);
/* Of those, the bytes in blocks from the system allocator (the rest are in
 * pool blocks: see pool_get_stats for what they occupy). */
size_t mem_large_bytes(void);
/* What those allocations occupy: the pools in use (whole 16 KiB pools) plus
 * large blocks. This is what --maxmemory bounds. */
size_t mem_heap_bytes(void);
/* The process's resident set (from /proc/self/statm), or 0 if unknown. */
size_t mem_rss_bytes(void);
/* Test hook: make the allocation after the next n succeed-ones fail; -1 turns
 * injection off. Counts only mem_alloc, mem_calloc and growing mem_realloc. */
void mem_fail_after(long n);

#endif
