/* Unit tests for common/mem's huge blocks: MEM_HEAP blocks of 2 MiB and more
 * live in mappings of their own, aligned to 2 MiB and advised
 * MADV_HUGEPAGE (a fork copies one page-table entry per 2 MiB of them), and
 * keep their bytes through every resize (in place, moved, to and from the
 * system allocator's sizes). Sanitizer builds (RCS_NO_POOL) send every
 * block to the system allocator: these tests skip there. */
#include "cmocka_pre.h"

#include "mem.h"
#include "vmflags.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

/* A byte in every page (a stride of 4095 lands on every offset in turn),
 * each its own value: a page moved to the wrong place shows. */
static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 4095)
        p[i] = (unsigned char)(seed + i / 4095);
}

static void check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 4095)
        assert_int_equal(p[i], (unsigned char)(seed + i / 4095));
}

static void skip_without_huge_blocks(void)
{
#ifdef RCS_NO_POOL
    skip();
#endif
}

static void huge_blocks_are_aligned_and_advised(void **state)
{
    size_t large0 = mem_large_bytes(), used0 = mem_used();
    unsigned char *p;
    (void)state;
    skip_without_huge_blocks();
    p = mem_alloc(3 * MIB + 5);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % (2 * MIB), 0);
    if (thp_in_kernel())
        assert_int_equal(vma_has_flag(p, "hg"), 1);
    assert_int_equal(mem_large_bytes() - large0, 3 * MIB + 5);
    assert_int_equal(mem_used() - used0, 3 * MIB + 5);
    fill(p, 3 * MIB + 5, 3);
    check(p, 3 * MIB + 5, 3);
    mem_free(p, 3 * MIB + 5);
    assert_int_equal(mem_large_bytes(), large0);
    assert_int_equal(mem_used(), used0);
}

/* Growing where the address space after the block is taken moves the
 * pages to an aligned place (and leaves the neighbour alone); shrinking
 * stays in place; crossing 2 MiB either way goes through the system
 * allocator with the bytes copied. */
static void huge_resize_keeps_the_bytes(void **state)
{
    size_t large0 = mem_large_bytes();
    unsigned char *p, *q, *guard;
    (void)state;
    skip_without_huge_blocks();
    p = mem_alloc(2 * MIB);
    assert_non_null(p);
    fill(p, 2 * MIB, 7);
    guard = mmap(p + 2 * MIB, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (guard == MAP_FAILED)
        guard = NULL; /* taken already: the move is forced all the same */
    else
        guard[0] = 42;
    q = mem_realloc(p, 2 * MIB, 9 * MIB);
    assert_non_null(q);
    assert_ptr_not_equal(q, p);
    assert_int_equal((uintptr_t)q % (2 * MIB), 0);
    if (thp_in_kernel())
        assert_int_equal(vma_has_flag(q + 8 * MIB, "hg"), 1);
    check(q, 2 * MIB, 7);
    fill(q, 9 * MIB, 9); /* the new part is writable to the end */
    q[9 * MIB - 1] = 1;
    if (guard) {
        assert_int_equal(guard[0], 42);
        munmap(guard, 4096);
    }
    p = mem_realloc(q, 9 * MIB, 2 * MIB + 1); /* shrinks in place */
    assert_ptr_equal(p, q);
    check(p, 2 * MIB, 9);
    q = mem_realloc(p, 2 * MIB + 1, 100000); /* to the system allocator */
    assert_non_null(q);
    check(q, 100000, 9);
    p = mem_realloc(q, 100000, 5 * MIB); /* and back */
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % (2 * MIB), 0);
    check(p, 100000, 9);
    assert_int_equal(mem_large_bytes() - large0, 5 * MIB);
    mem_free(p, 5 * MIB);
    assert_int_equal(mem_large_bytes(), large0);
}

/* A block of 3 MiB and a bit that must move to grow: its whole 2 MiB piece
 * moves, the rest is copied, so no mapping boundary cuts the 2 MiB piece
 * after it (which could then never be a huge page). */
static void huge_move_keeps_pieces_whole(void **state)
{
    const size_t old = 3 * MIB + 5;
    unsigned char *p, *q, *guard;
    uintptr_t lo, hi;
    (void)state;
    skip_without_huge_blocks();
    p = mem_alloc(old);
    assert_non_null(p);
    fill(p, old, 11);
    guard = mmap(p + 3 * MIB + 4096, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    q = mem_realloc(p, old, 8 * MIB);
    assert_non_null(q);
    assert_ptr_not_equal(q, p);
    check(q, old, 11);
    assert_int_equal(vma_bounds(q + 2 * MIB, &lo, &hi), 0);
    assert_true(lo <= (uintptr_t)q + 2 * MIB && hi >= (uintptr_t)q + 4 * MIB);
    if (thp_in_kernel())
        assert_int_equal(vma_has_flag(q + 2 * MIB, "hg"), 1);
    if (guard != MAP_FAILED)
        munmap(guard, 4096);
    mem_free(q, 8 * MIB);
}

/* A fresh mapping is zero: mem_calloc does not write it, so an array
 * reserved large costs no memory until used. */
static void huge_calloc_touches_no_page(void **state)
{
    enum { PAGES = 8 * 256 };
    static unsigned char vec[PAGES];
    unsigned char *p;
    (void)state;
    skip_without_huge_blocks();
    assert_int_equal(sysconf(_SC_PAGESIZE), 4096);
    p = mem_calloc(8 * MIB);
    assert_non_null(p);
    assert_int_equal(mincore(p, 8 * MIB, vec), 0);
    for (int i = 0; i < PAGES; i++)
        assert_int_equal(vec[i] & 1, 0);
    for (size_t i = 0; i < 8 * MIB; i += 4096)
        assert_int_equal(p[i], 0);
    mem_free(p, 8 * MIB);
}

static void injected_failure_applies(void **state)
{
    (void)state;
    mem_fail_after(0);
    assert_null(mem_alloc(4 * MIB));
    mem_fail_after(-1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(huge_blocks_are_aligned_and_advised),
        cmocka_unit_test(huge_resize_keeps_the_bytes),
        cmocka_unit_test(huge_move_keeps_pieces_whole),
        cmocka_unit_test(huge_calloc_touches_no_page),
        cmocka_unit_test(injected_failure_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
