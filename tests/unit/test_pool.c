/* Unit tests for common/pool: size classes, alignment, address masking, a
 * long random alloc/free run checked against a shadow model (every live
 * block keeps a pattern no other block may overwrite), pools moving between
 * classes, and arenas going back to the operating system. */
#include "cmocka_pre.h"

#include "pool.h"
#include "thp.h"
#include "vmflags.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void churn_reuses_one_pool(void **state)
{
    struct pool_stats a, b;
    (void)state;
    pool_trim();
    pool_get_stats(&a);
    for (int i = 0; i < 100000; i++)
        pool_free(pool_alloc(40)); /* the only block of its pool, every time */
    pool_get_stats(&b);
    assert_int_equal(b.cls[4].pools, 1); /* reused, not churned */
    assert_int_equal(b.cls[4].used, 0);
    assert_int_equal(b.arenas, a.arenas > 0 ? a.arenas : 1);
    pool_trim();
    pool_get_stats(&b);
    assert_int_equal(b.cls[4].pools, 0);
}

static void classes(void **state)
{
    (void)state;
    assert_int_equal(pool_class_size(1), 8);
    assert_int_equal(pool_class_size(8), 8);
    assert_int_equal(pool_class_size(9), 16);
    assert_int_equal(pool_class_size(128), 128);
    assert_int_equal(pool_class_size(129), 144);
    assert_int_equal(pool_class_size(256), 256);
    assert_int_equal(pool_class_size(257), 288);
    assert_int_equal(pool_class_size(4096), 4096);
    /* Never more than 1/8 (12.5%) wasted above 256 bytes. */
    for (size_t n = 257; n <= POOL_MAX_SMALL; n++)
        assert_true(pool_class_size(n) - n < n / 8 + 1);
}

static void alignment_and_masking(void **state)
{
    void *p[POOL_MAX_SMALL + 1];
    (void)state;
    for (size_t n = 1; n <= POOL_MAX_SMALL; n++) {
        p[n] = pool_alloc(n);
        assert_non_null(p[n]);
        assert_int_equal((uintptr_t)p[n] % 8, 0);
        if (pool_class_size(n) % 16 == 0)
            assert_int_equal((uintptr_t)p[n] % 16, 0);
        assert_int_equal(pool_block_size(p[n]), pool_class_size(n));
        /* The block lies inside its pool, past the header. */
        uintptr_t pool = (uintptr_t)p[n] & ~(uintptr_t)(POOL_POOL_BYTES - 1);
        assert_true((uintptr_t)p[n] >= pool + POOL_HEADER_BYTES);
        assert_true((uintptr_t)p[n] + pool_class_size(n) <= pool + POOL_POOL_BYTES);
        memset(p[n], 0xab, n);
    }
    for (size_t n = 1; n <= POOL_MAX_SMALL; n++)
        pool_free(p[n]);
}

#define SLOTS 20000

struct shadow {
    unsigned char *p;
    size_t n;
    unsigned char fill;
};

static void check_block(const struct shadow *s)
{
    for (size_t i = 0; i < s->n; i++)
        assert_int_equal(s->p[i], s->fill);
}

static void random_against_shadow(void **state)
{
    static struct shadow sh[SLOTS];
    struct pool_stats st;
    unsigned seed = 4242;
    uint64_t live = 0;
    (void)state;
    memset(sh, 0, sizeof(sh));
    for (long step = 0; step < 2000000; step++) {
        struct shadow *s = &sh[rand_r(&seed) % SLOTS];
        if (s->p) {
            check_block(s);
            pool_free(s->p);
            s->p = NULL;
            live--;
        } else {
            /* Mostly small objects, some large, like the heap's mix. */
            int r = rand_r(&seed) % 100;
            s->n = r < 70   ? 1 + (size_t)(rand_r(&seed) % 64)
                   : r < 95 ? 1 + (size_t)(rand_r(&seed) % 512)
                            : 1 + (size_t)(rand_r(&seed) % POOL_MAX_SMALL);
            s->p = pool_alloc(s->n);
            assert_non_null(s->p);
            s->fill = (unsigned char)(step & 0xff);
            memset(s->p, s->fill, s->n);
            live++;
        }
        if (step % 20011 == 0)
            pool_trim(); /* empty pools leave, released pages come back zeroed */
        if (step % 250000 == 0) {
            uint64_t used = 0;
            pool_get_stats(&st);
            for (int c = 0; c < POOL_NCLASSES; c++)
                used += st.cls[c].used;
            assert_int_equal(used, live);
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (sh[i].p) {
            check_block(&sh[i]);
            pool_free(sh[i].p);
        }
    }
    pool_trim();
    pool_get_stats(&st);
    assert_int_equal(st.bytes_used, 0);
    assert_int_equal(st.pools_used, 0);
    assert_true(st.arenas <= 1); /* at most the one spare */
}

static void arenas_return_to_the_os(void **state)
{
    enum { N = 200000 };
    static void *p[N];
    struct pool_stats before, full, after;
    (void)state;
    pool_get_stats(&before);
    for (int i = 0; i < N; i++)
        p[i] = pool_alloc(48); /* ~9.4 MB: about ten arenas */
    pool_get_stats(&full);
    assert_true(full.arenas >= 9);
    assert_int_equal(full.cls[5].used - before.cls[5].used, N); /* class 5 = 48 bytes */
    for (int i = 0; i < N; i++)
        pool_free(p[i]);
    pool_get_stats(&after);
    /* No free unmaps: that waits for the trim, a bounded step at a time. */
    assert_int_equal(after.arenas_returned, before.arenas_returned);
    assert_int_equal(after.arenas, full.arenas);
    assert_int_equal(pool_trim_step(128), 1);
    pool_get_stats(&after);
    assert_int_equal(after.arenas_returned, before.arenas_returned + 2); /* 128 pools: 2 arenas */
    pool_trim();
    pool_get_stats(&after);
    assert_true(after.arenas <= 1); /* the last arena with room may stay */
    assert_true(after.arenas_returned >= before.arenas_returned + full.arenas - 1);
}

/* A heap that shrinks to a few scattered blocks keeps its arenas, but the
 * pages of its free pools go back to the system at the next trim: mincore
 * finds none of them resident, while the survivors keep their bytes. */
static void free_pools_release_their_pages(void **state)
{
    enum { N = 100000, KEEP = 5000 };
    static char *p[N];
    unsigned char vec[POOL_ARENA_BYTES / 4096];
    long page = sysconf(_SC_PAGESIZE);
    (void)state;
    assert_true(page == 4096);
    for (int i = 0; i < N; i++) {
        p[i] = pool_alloc(64);
        memset(p[i], (char)i, 64);
    }
    for (int i = 0; i < N; i++)
        if (i % KEEP)
            pool_free(p[i]);
    pool_trim();
    for (int i = 0; i < N; i += KEEP) {
        char *arena = (char *)((uintptr_t)p[i] & ~(uintptr_t)(POOL_ARENA_BYTES - 1));
        int resident_elsewhere = 0;
        assert_int_equal(mincore(arena, POOL_ARENA_BYTES, vec), 0);
        for (size_t pg = 0; pg < sizeof(vec); pg++) {
            char *at = arena + pg * 4096;
            int mine = 0;
            for (int j = 0; j < N; j += KEEP) /* pools of other survivors */
                mine |= at >= (char *)((uintptr_t)p[j] & ~(uintptr_t)(POOL_POOL_BYTES - 1)) &&
                        at < (char *)((uintptr_t)p[j] & ~(uintptr_t)(POOL_POOL_BYTES - 1)) +
                                 POOL_POOL_BYTES;
            if (!mine && (vec[pg] & 1))
                resident_elsewhere++;
        }
        assert_int_equal(resident_elsewhere, 0);
        for (int b = 0; b < 64; b++)
            assert_int_equal(p[i][b], (char)i);
    }
    for (int i = 0; i < N; i += KEEP) /* released pools serve again */
        pool_free(p[i]);
    for (int i = 0; i < 1000; i++) {
        p[i] = pool_alloc(64);
        memset(p[i], 7, 64);
    }
    for (int i = 0; i < 1000; i++)
        pool_free(p[i]);
    pool_trim();
}

static void empty_pools_serve_other_classes(void **state)
{
    enum { N = 3000, M = 60 };
    static void *p[N];
    struct pool_stats a, b, c;
    (void)state;
    pool_get_stats(&a);
    for (int i = 0; i < N; i++)
        p[i] = pool_alloc(24); /* about five pools of class 24 */
    pool_get_stats(&b);
    assert_true(b.cls[2].pools >= 4);
    for (int i = 0; i < N; i += 2) /* half: pools stay in use */
        pool_free(p[i]);
    for (int i = 1; i < N; i += 2) /* the rest: the pools empty */
        pool_free(p[i]);
    pool_get_stats(&c);
    /* A few kept empty until the trim, and the pool of the 31 blocks that
     * wait in the class's cache (the first ones freed). */
    assert_true(c.cls[2].pools >= 1 && c.cls[2].pools <= 5);
    pool_trim();
    pool_get_stats(&c);
    assert_int_equal(c.cls[2].pools, 0);
    assert_true(c.pools_free >= b.cls[2].pools);
    /* Another class takes those pools: no new arena is mapped. */
    for (int i = 0; i < M; i++)
        p[i] = pool_alloc(1000);
    pool_get_stats(&b);
    assert_int_equal(b.arenas, c.arenas);
    for (int k = 0; k < POOL_NCLASSES; k++)
        if (b.cls[k].size == pool_class_size(1000))
            assert_true(b.cls[k].pools >= 4); /* 15 blocks of 1 KiB a pool */
    for (int i = 0; i < M; i++)
        pool_free(p[i]);
    (void)a;
}

/* Freed blocks wait in their class's cache: the next allocation of the
 * class gets the newest, stats count them free, the trim sends them back
 * so their pools can leave; sized and unsized frees are the same block. */
static void cache_returns_newest_first(void **state)
{
    enum { N = 100 };
    void *p[N], *q;
    struct pool_stats a, b;
    (void)state;
    pool_trim();
    pool_get_stats(&a);
    for (int i = 0; i < N; i++)
        p[i] = pool_alloc(56);
    pool_free(p[10]);
    pool_free_sized(p[20], 50); /* any size of the class will do */
    q = pool_alloc(49);
    assert_ptr_equal(q, p[20]);
    q = pool_alloc(56);
    assert_ptr_equal(q, p[10]);
    for (int i = 0; i < N; i++)
        pool_free_sized(p[i], 56);
    pool_get_stats(&b);
    assert_int_equal(b.cls[6].size, 56);
    assert_int_equal(b.cls[6].used, a.cls[6].used); /* cached blocks are not in use */
    pool_trim();
    pool_get_stats(&b);
    assert_int_equal(b.cls[6].pools, 0); /* the cache held its pool back only until now */
}

/* Arenas come two at a time from one chunk of 2 MiB aligned to 2 MiB and
 * advised MADV_HUGEPAGE, so that one transparent huge page can back the
 * pair (a fork copies one page-table entry for it, not 512). */
static void arenas_pair_in_huge_page_chunks(void **state)
{
    enum { N = 80000, MAXA = 64 }; /* 64-byte blocks: about five arenas */
    static char *p[N];
    uintptr_t arena[MAXA];
    int narenas = 0, pairs = 0, huge = 0;
    (void)state;
    pool_trim();
    for (int i = 0; i < N; i++) {
        uintptr_t a;
        int seen = 0;
        p[i] = pool_alloc(64);
        memset(p[i], 1, 64);
        a = (uintptr_t)p[i] & ~(uintptr_t)(POOL_ARENA_BYTES - 1);
        for (int k = 0; k < narenas; k++)
            seen |= arena[k] == a;
        if (!seen && narenas < MAXA)
            arena[narenas++] = a;
    }
    assert_true(narenas >= 4);
    for (int k = 0; k < narenas; k++) {
        /* Advised, unless an arena kept from an earlier test gave pages
         * back (then MADV_NOHUGEPAGE: sparse_arenas_leave_huge_pages). */
        if (thp_in_kernel())
            huge += vma_has_flag((void *)arena[k], "hg") == 1;
        /* A first half (aligned to 2 MiB) whose second half serves too. */
        for (int m = 0; m < narenas; m++)
            pairs +=
                arena[k] % (2 * POOL_ARENA_BYTES) == 0 && arena[m] == arena[k] + POOL_ARENA_BYTES;
    }
    assert_true(pairs >= 2);
    if (thp_in_kernel())
        assert_true(huge >= narenas - 1);
    for (int i = 0; i < N; i++)
        pool_free(p[i]);
    pool_trim();
}

/* An arena whose free pools gave their pages back is advised
 * MADV_NOHUGEPAGE, so that khugepaged cannot bring them back inside a huge
 * page (nor make the loop wait while it copies one), and stays so once
 * refilled. */
static void sparse_arenas_leave_huge_pages(void **state)
{
    enum { N = 100000, KEEP = 5000 };
    static char *p[N], *more[2 * N];
    (void)state;
    if (!thp_in_kernel())
        skip();
    for (int i = 0; i < N; i++)
        p[i] = pool_alloc(64);
    for (int i = 0; i < N; i++)
        if (i % KEEP)
            pool_free(p[i]);
    pool_trim();
    for (int i = 0; i < N; i += KEEP)
        assert_int_equal(vma_has_flag(p[i], "nh"), 1);
    for (int i = 0; i < 2 * N; i++) /* refills the arenas with room first */
        more[i] = pool_alloc(64);
    for (int i = 0; i < N; i += KEEP)
        assert_int_equal(vma_has_flag(p[i], "nh"), 1);
    for (int i = 0; i < 2 * N; i++)
        pool_free(more[i]);
    for (int i = 0; i < N; i += KEEP)
        pool_free(p[i]);
    pool_trim();
}

/* The helper's chunks are aligned, advised and resident before the pool
 * takes them: the loop does not fault a huge page in. */
static void helper_chunks_are_made_ahead(void **state)
{
    enum { PAGES = THP_BYTES / 4096 };
    static unsigned char vec[PAGES];
    char *c = NULL;
    (void)state;
    thp_step(); /* the helper's work, on this thread: a chunk is ready after it */
    /* thp_chunk_take only tries the mutex: the helper thread (started by
     * earlier tests) may hold it for a few instructions. */
    for (int tries = 0; tries < 1000000 && !c; tries++)
        c = thp_chunk_take();
    assert_non_null(c);
    assert_int_equal((uintptr_t)c % THP_BYTES, 0);
    if (thp_in_kernel())
        assert_int_equal(vma_has_flag(c, "hg"), 1);
    assert_int_equal(mincore(c, THP_BYTES, vec), 0);
    for (int i = 0; i < PAGES; i++)
        assert_int_equal(vec[i] & 1, 1);
    munmap(c, THP_BYTES);
}

/* A forked child (the snapshot writer) has no helper and may find its
 * mutex held forever: it takes no chunk, and the pool maps its own. */
static void forked_child_takes_no_chunk(void **state)
{
    pid_t pid;
    int status;
    (void)state;
    thp_step();
    (void)thp_chunk_take(); /* the helper runs in this process */
    thp_step();             /* and a chunk is ready at the fork */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *b[40000];
        int ok = thp_chunk_take() == NULL;
        for (int i = 0; i < 40000; i++) /* new arenas, from the child's own chunks */
            ok &= (b[i] = pool_alloc(256)) != NULL;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Held (before a fork), the helper starts no chunk and is soon not busy;
 * let go, it makes one again. */
static void held_helper_makes_no_chunk(void **state)
{
    char *c;
    (void)state;
    thp_hold(1);
    for (long tries = 0; tries < 100000000 && thp_busy(); tries++)
        ; /* the helper thread may be finishing a chunk it began */
    assert_int_equal(thp_busy(), 0);
    for (int tries = 0; tries < 1000; tries++) /* what was ready (a NULL may be a busy mutex) */
        if ((c = thp_chunk_take()) != NULL)
            munmap(c, THP_BYTES);
    thp_step(); /* the helper's work: nothing, held */
    for (int tries = 0; tries < 1000; tries++)
        assert_null(thp_chunk_take());
    thp_hold(0);
    thp_step();
    c = NULL;
    for (long tries = 0; tries < 100000000 && !c; tries++)
        c = thp_chunk_take();
    assert_non_null(c);
    munmap(c, THP_BYTES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(classes),
        cmocka_unit_test(alignment_and_masking),
        cmocka_unit_test(random_against_shadow),
        cmocka_unit_test(arenas_return_to_the_os),
        cmocka_unit_test(free_pools_release_their_pages),
        cmocka_unit_test(empty_pools_serve_other_classes),
        cmocka_unit_test(churn_reuses_one_pool),
        cmocka_unit_test(cache_returns_newest_first),
        cmocka_unit_test(arenas_pair_in_huge_page_chunks),
        cmocka_unit_test(sparse_arenas_leave_huge_pages),
        cmocka_unit_test(helper_chunks_are_made_ahead),
        cmocka_unit_test(forked_child_takes_no_chunk),
        cmocka_unit_test(held_helper_makes_no_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
