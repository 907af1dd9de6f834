/* mem: accounting front of the allocators (see mem.h). MEM_HEAP blocks up
 * to POOL_MAX_SMALL bytes come from the pool allocator; blocks of HUGE_BYTES
 * and more (the id and owner tables, large hash maps: arrays that grow with
 * the heap) get mappings of their own, aligned to 2 MiB and advised
 * MADV_HUGEPAGE; the rest, and all MEM_CLIENT blocks, come from the system
 * allocator. Sanitizer builds define RCS_NO_POOL so that ASan and valgrind
 * see every block. */
#define _GNU_SOURCE /* mremap */
#include "mem.h"
#include "panic.h"
#include "pool.h"

#include <stdio.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static size_t used[MEM_NBUDGETS], used_large;

/* A transparent huge page (x86-64, arm64 with 4 KiB pages). */
#define HUGE_BYTES ((size_t)2 << 20)

#ifdef RCS_NO_POOL
#define IS_SMALL(n) 0
#define IS_HUGE(n)  0
#else
#define IS_SMALL(n) ((n) <= POOL_MAX_SMALL)
#define IS_HUGE(n)  ((n) >= HUGE_BYTES)
#endif

/* ---- huge blocks ----
 *
 * Why their own mappings: a fork() (the background snapshot) copies the
 * page tables of the whole heap while the loop waits, one entry per 4 KiB
 * page; memory backed by transparent huge pages costs one entry per 2 MiB.
 * glibc's malloc would map these blocks too, but not aligned to 2 MiB, and
 * its realloc moves them (mremap) to wherever the kernel finds room, which
 * splits huge pages. Here a block is one mapping of its size rounded to
 * pages, at an address aligned to 2 MiB, advised MADV_HUGEPAGE. The kernel
 * backs a 2 MiB piece with a huge page only when all of it lies inside the
 * mapping, so the block's last part (less than 2 MiB) stays in 4 KiB pages
 * and a block costs no more memory than with 4 KiB pages: a 3 MiB object is
 * one huge page and 1 MiB of small ones, never two huge pages. The advice
 * goes on the whole mapping (one VMA: mremap needs that); growing moves the
 * whole 2 MiB pieces' page tables (mremap) and copies at most the last
 * 2 MiB (huge_resize). Huge pages of these blocks are faulted in by the
 * loop (about 0.25 ms each, 1-5 ms on fresh VM memory: see thp.h; the
 * tables grow by a piece per 262,144 objects or more). The mapping's length
 * follows from the block's size, which the caller passes back, so nothing
 * is stored. */

static size_t page_len(size_t n)
{
    static size_t page;
    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) & ~(page - 1);
}

/* Fresh zero pages for n bytes (IS_HUGE), at an address aligned to
 * HUGE_BYTES, advised; NULL when the address space cannot be had. */
static void *huge_map(size_t n)
{
    size_t len = page_len(n), raw_len = len + HUGE_BYTES;
    char *raw, *base;
    raw = mmap(NULL, raw_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    base = (char *)(((uintptr_t)raw + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    if (raw + raw_len > base + len)
        munmap(base + len, (size_t)(raw + raw_len - (base + len)));
    /* Without THP in the kernel, madvise fails and 4 KiB pages serve. */
    (void)madvise(base, len, MADV_HUGEPAGE);
    return base;
}

/* Resize a huge block of old bytes to n (both IS_HUGE): shrink in place,
 * grow in place if the address space after it is free (one mapping still),
 * else map an aligned place, move the block's whole 2 MiB pieces there
 * (mremap moves page-table entries, one per huge page; no byte is copied)
 * and copy the rest, less than 2 MiB. Moving the rest too would leave a
 * mapping boundary in the middle of a 2 MiB piece (a moved mapping never
 * merges with the new one), and no piece across it could be a huge page.
 * NULL (p untouched) when the address space cannot be had. */
static void *huge_resize(void *p, size_t old, size_t n)
{
    size_t ol = page_len(old), nl = page_len(n), whole = old & ~(HUGE_BYTES - 1);
    char *q = p;
    if (nl < ol) {
        munmap(q + nl, ol - nl);
    } else if (nl > ol && mremap(p, ol, nl, 0) == MAP_FAILED) {
        if (!(q = huge_map(n)))
            return NULL;
        if (mremap(p, whole, whole, MREMAP_MAYMOVE | MREMAP_FIXED, q) == MAP_FAILED) {
            munmap(q, nl);
            return NULL;
        }
        memcpy(q + whole, (char *)p + whole, old - whole);
        if (ol > whole)
            munmap((char *)p + whole, ol - whole);
    }
    return q; /* a mapping grown in place or moved keeps its advice */
}

static void *raw_alloc(size_t n)
{
    void *p;
    if (n == 0)
        n = 1;
    if (IS_SMALL(n))
        return pool_alloc(n);
    if (IS_HUGE(n))
        p = huge_map(n);
    else
        p = malloc(n);
    if (p)
        used_large += n;
    return p;
}

static void raw_free(void *p, size_t n)
{
    if (n == 0)
        n = 1;
    if (IS_SMALL(n)) {
        pool_free_sized(p, n);
        return;
    }
    used_large -= n;
    if (IS_HUGE(n)) {
        /* Every huge block is aligned; a size that does not match the
         * block would unmap the wrong range. */
        PANIC_IF((uintptr_t)p & (HUGE_BYTES - 1),
                 "mem_free: %p freed as a block of %zu bytes, which it is not", p, n);
        munmap(p, page_len(n));
    } else {
        free(p);
    }
}
static long fail_countdown = -1;

static int injected_failure(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown == 0)
        return 1;
    fail_countdown--;
    return 0;
}

void *mem_alloc_in(enum mem_budget b, size_t n)
{
    void *p;
    if (injected_failure())
        return NULL;
    if (b != MEM_HEAP)
        p = malloc(n ? n : 1);
    else
        p = raw_alloc(n);
    if (p)
        used[b] += n;
    return p;
}

void *mem_calloc_in(enum mem_budget b, size_t n)
{
    void *p = mem_alloc_in(b, n);
    if (p && !(b == MEM_HEAP && IS_HUGE(n))) /* a fresh mapping is zero already */
        memset(p, 0, n);
    return p;
}

void *mem_realloc_in(enum mem_budget b, void *p, size_t old, size_t n)
{
    void *q;
    if (!p)
        return mem_alloc_in(b, n);
    if (n > old && injected_failure())
        return NULL;
    if (b != MEM_HEAP) {
        if ((q = realloc(p, n ? n : 1)) != NULL)
            used[b] = used[b] - old + n;
        return q;
    }
    if (IS_SMALL(old ? old : 1) && IS_SMALL(n ? n : 1) &&
        pool_class_size(old ? old : 1) == pool_class_size(n ? n : 1)) {
        used[b] = used[b] - old + n; /* same block still fits */
        return p;
    }
    if (IS_HUGE(old) && IS_HUGE(n)) {
        q = huge_resize(p, old, n);
        if (q) {
            used_large = used_large - old + n;
            used[b] = used[b] - old + n;
        }
        return q;
    }
    if (!IS_SMALL(old ? old : 1) && !IS_SMALL(n ? n : 1) && !IS_HUGE(old) && !IS_HUGE(n)) {
        q = realloc(p, n);
        if (q) {
            used_large = used_large - old + n;
            used[b] = used[b] - old + n;
        }
        return q;
    }
    q = raw_alloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    raw_free(p, old);
    used[b] = used[b] - old + n;
    return q;
}

void mem_free_in(enum mem_budget b, void *p, size_t n)
{
    if (!p)
        return;
    used[b] -= n;
    if (b != MEM_HEAP)
        free(p);
    else
        raw_free(p, n);
}

void *mem_alloc(size_t n)
{
    return mem_alloc_in(MEM_HEAP, n);
}

void *mem_calloc(size_t n)
{
    return mem_calloc_in(MEM_HEAP, n);
}

void *mem_realloc(void *p, size_t old, size_t n)
{
    return mem_realloc_in(MEM_HEAP, p, old, n);
}

void mem_free(void *p, size_t n)
{
    mem_free_in(MEM_HEAP, p, n);
}

size_t mem_budget_bytes(enum mem_budget b)
{
    return used[b];
}

size_t mem_used(void)
{
    return used[MEM_HEAP];
}

size_t mem_large_bytes(void)
{
    return used_large;
}

size_t mem_heap_bytes(void)
{
#ifdef RCS_NO_POOL
    return used[MEM_HEAP];
#else
    return (size_t)pool_bytes_used() + used_large;
#endif
}

void mem_fail_after(long n)
{
    fail_countdown = n;
}

size_t mem_rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}
