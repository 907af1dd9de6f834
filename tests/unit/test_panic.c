/* Unit tests for common/panic and the invariants it guards in every build,
 * release (NDEBUG) included: a refcount that would wrap in the heap, a
 * session dropping holds it does not count, a pool block freed twice, freed
 * as the wrong size or not from the pool at all. Each case runs in a forked
 * child, which must die of SIGABRT after printing a PANIC line that names
 * the object or block. */
#include "cmocka_pre.h"

#include "heap.h"
#include "panic.h"
#include "pool.h"
#include "store.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn(arg) in a child with stderr into a pipe; it must abort, and its
 * stderr must hold one PANIC line containing want (and want2, if given). */
static void expect_panic(void (*fn)(void *), void *arg, const char *want, const char *want2)
{
    char out[4096];
    size_t n = 0;
    ssize_t r;
    int fds[2], status;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0); /* the invariant held: the parent reports it */
    }
    close(fds[1]);
    while (n < sizeof(out) - 1 && (r = read(fds[0], out + n, sizeof(out) - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status))
        fail_msg("expected a panic with \"%s\"; the child exited with status %d instead; "
                 "stderr: %s",
                 want, WEXITSTATUS(status), out);
    assert_int_equal(WTERMSIG(status), SIGABRT);
    if (!strstr(out, " PANIC ") || !strstr(out, want) || (want2 && !strstr(out, want2)))
        fail_msg("expected a PANIC line with \"%s\" and \"%s\", got: %s", want, want2 ? want2 : "",
                 out);
    /* One line: the message and its newline, nothing else. */
    assert_ptr_equal(strchr(out, '\n'), out + n - 1);
}

static void call_panic_if(void *arg)
{
    int x = *(int *)arg;
    PANIC_IF(x != 1, "x is %d, not 1", x);
}

static void panic_if_prints_and_aborts(void **state)
{
    int one = 1, two = 2;
    (void)state;
    call_panic_if(&one); /* holds: returns */
    expect_panic(call_panic_if, &two, "test_panic.c:", "x is 2, not 1");
}

static void noop(void *ud, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)id;
    (void)why;
}

/* A heap with one object held twice; id of it in *id. */
static void one_object(struct heap *h, uint64_t *id)
{
    heap_init(h, noop, NULL);
    assert_int_equal(heap_create(h, "x", 1, NULL, 0, id), 0);
    heap_incr(h, *id, CNT_HOLDS, 2);
}

static void holds_underflow(void *arg)
{
    struct heap h;
    uint64_t id;
    (void)arg;
    one_object(&h, &id);
    heap_decr(&h, id, CNT_HOLDS, 3);
}

static void internal_underflow(void *arg)
{
    struct heap h;
    uint64_t id;
    (void)arg;
    one_object(&h, &id);
    heap_decr(&h, id, CNT_INTERNAL, 1);
}

static void names_underflow(void *arg)
{
    struct heap h;
    uint64_t id;
    (void)arg;
    one_object(&h, &id);
    heap_decr(&h, id, CNT_NAMES, 1);
}

static void holds_overflow(void *arg)
{
    struct heap h;
    uint64_t id;
    (void)arg;
    one_object(&h, &id);
    heap_incr(&h, id, CNT_HOLDS, UINT32_MAX - 1);
}

static void tokens_overflow(void *arg)
{
    struct heap h;
    uint64_t id;
    (void)arg;
    one_object(&h, &id);
    assert_int_equal(heap_can_incr(&h, id, CNT_TOKENS, 1), 0);
    heap_incr(&h, id, CNT_TOKENS, 1);
    heap_incr(&h, id, CNT_TOKENS, UINT32_MAX);
}

static void heap_counts_never_wrap(void **state)
{
    char want[64];
    struct heap h;
    uint64_t id;
    (void)state;
    /* The same id the children get: the heap hands out ids in order. */
    one_object(&h, &id);
    heap_decr(&h, id, CNT_HOLDS, 2);
    heap_close(&h);
    snprintf(want, sizeof(want), "object %llu: ", (unsigned long long)id);
    expect_panic(holds_underflow, NULL, want, "decr holds by 3 would wrap (holds 2, internal 0");
    expect_panic(internal_underflow, NULL, want, "decr internal by 1");
    expect_panic(names_underflow, NULL, want, "decr names by 1");
    expect_panic(holds_overflow, NULL, want, "incr holds by 4294967294");
    expect_panic(tokens_overflow, NULL, want,
                 "incr tokens by 4294967295 would wrap (holds 2, internal 0, names 0, tokens 1)");
}

static void session_drops_more_than_it_counts(void *arg)
{
    struct store_limits lim = {0};
    struct store st;
    struct sess *s;
    uint64_t id, after;
    (void)arg;
    lim.max_data_bytes = 1024;
    lim.max_refs = 16;
    lim.max_session_holds = 100;
    assert_int_equal(store_init(&st, &lim, NULL, NULL), 0);
    assert_int_equal(sess_new(&st, &s), 0);
    assert_int_equal(heap_create(&st.heap, "x", 1, NULL, 0, &id), 0);
    assert_int_equal(sess_incref(&st, s, id, 1, &after), 0);
    s->nholds = 0; /* the session's total lost count of its hold */
    sess_decref(&st, s, id, 1, &after);
}

static void session_counts_never_wrap(void **state)
{
    (void)state;
    expect_panic(session_drops_more_than_it_counts, NULL, "session ", "drops 1 holds on object");
}

static void pool_double_free(void *arg)
{
    void *b = pool_alloc(40);
    (void)arg;
    pool_free_sized(b, 40);
    pool_free_sized(b, 40);
}

static void pool_wrong_size(void *arg)
{
    void *b = pool_alloc(40), *fill[POOL_CACHE_SLOTS];
    (void)arg;
    /* Release builds check the class once the cache is full: fill it. */
    for (int i = 0; i < POOL_CACHE_SLOTS; i++)
        fill[i] = pool_alloc(200);
    for (int i = 0; i < POOL_CACHE_SLOTS; i++)
        pool_free_sized(fill[i], 200);
    pool_free_sized(b, 200);
}

static void pool_foreign(void *arg)
{
    /* A block of a pool-sized, pool-aligned region the allocator never saw. */
    char *region = aligned_alloc(POOL_POOL_BYTES, POOL_POOL_BYTES);
    (void)arg;
    memset(region, 0, POOL_POOL_BYTES);
    pool_free(region + POOL_HEADER_BYTES);
}

static void pool_checks_hold(void **state)
{
    (void)state;
    expect_panic(pool_double_free, NULL, "pool_free: block 0x", "freed twice");
    expect_panic(pool_wrong_size, NULL, "of size class", "but was freed as class");
    expect_panic(pool_foreign, NULL, "not a block of the pool allocator", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(panic_if_prints_and_aborts),
        cmocka_unit_test(heap_counts_never_wrap),
        cmocka_unit_test(session_counts_never_wrap),
        cmocka_unit_test(pool_checks_hold),
    };
#ifdef NDEBUG
    printf("# NDEBUG build: the checks above are the always-on ones\n");
#endif
    return cmocka_run_group_tests(tests, NULL, NULL);
}
