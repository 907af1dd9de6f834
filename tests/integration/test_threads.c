/* Integration test: librcstore from several threads at once, one client per
 * thread (what rcstore.h promises is safe), against a real rcstored. Each
 * thread builds a chain of objects with create, incref, decref, get, stat,
 * bind and a pipeline with an error in the middle, and checks every reply
 * against what its own session must see. Built with the tsan preset it is the
 * library's data-race test (make test-tsan). cmocka's asserts may only run on
 * the main thread, so the workers record their first failure and the main
 * thread asserts on it after joining them. */
#include "../unit/cmocka_pre.h"

#include "harness.h"
#include "rcstore.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { NTHREADS = 4, ROUNDS = 150, PIPE = 8 };

static struct server_proc srv;
static pthread_barrier_t go;

struct worker {
    int index;
    pthread_t thread;
    int rounds_done;
    int failed_line; /* 0 while every check held */
    int failed_rc;
    char failed_msg[256];
};

/* Record the first failed check of worker w and leave its loop. */
#define CHECK(w, c, cond, rc)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            (w)->failed_line = __LINE__;                                                           \
            (w)->failed_rc = (rc);                                                                 \
            snprintf((w)->failed_msg, sizeof((w)->failed_msg), "%s (%s)", #cond,                   \
                     (c) ? rcs_last_error(c) : "no client");                                       \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* One call that must succeed. */
#define OK(w, c, call)                                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(w, c, rc_ == 0, rc_);                                                                \
    } while (0)

static void *work(void *arg)
{
    struct worker *w = arg;
    rcs_client *c = NULL;
    rcs_object *o = NULL;
    rcs_value *v = NULL;
    rcs_stat st;
    uint64_t id, prev = 0, n;
    char data[32], name[32];
    int rc;

    snprintf(name, sizeof(name), "threads/%d", w->index);
    pthread_barrier_wait(&go); /* all threads connect and start together */
    OK(w, c, rcs_connect(srv.address, &c));
    rcs_set_timeout(c, 60000);
    OK(w, c, rcs_hello(c, name, NULL));

    for (int r = 0; r < ROUNDS; r++) {
        int len = snprintf(data, sizeof(data), "t%d/r%d", w->index, r);

        OK(w, c, rcs_create(c, data, (size_t)len, prev ? &prev : NULL, prev ? 1 : 0, &id));
        OK(w, c, rcs_incref(c, id, 2, &n));
        CHECK(w, c, n == 3, 0);
        OK(w, c, rcs_get(c, id, &o));
        CHECK(w, c, o->id == id && o->len == (size_t)len && memcmp(o->data, data, o->len) == 0, 0);
        CHECK(w, c, o->nrefs == (prev ? 1u : 0u) && (!prev || o->refs[0] == prev), 0);
        CHECK(w, c, o->refcount == 3, 0);
        rcs_object_free(o);
        o = NULL;

        /* A pipeline with an error in the middle: replies come back in order. */
        for (int k = 0; k < PIPE; k++) {
            OK(w, c, rcs_send(c, "incref", "u", id));
            OK(w, c, rcs_send(c, "get", "u", id));
            OK(w, c, rcs_send(c, "decref", "uu", id, (uint64_t)100)); /* NOT_HELD */
            OK(w, c, rcs_send(c, "decref", "u", id));
            OK(w, c, rcs_send(c, "ping", ""));
        }
        CHECK(w, c, rcs_pending(c) == 5 * PIPE, 0);
        OK(w, c, rcs_flush(c));
        for (int k = 0; k < PIPE; k++) {
            OK(w, c, rcs_recv(c, &v));
            CHECK(w, c, rcs_value_uint(v, 0) == 4, 0);
            rcs_value_free(v);
            OK(w, c, rcs_recv(c, &v));
            CHECK(w, c, rcs_value_uint(rcs_map_get(v, "id"), 0) == id, 0);
            CHECK(w, c, rcs_value_uint(rcs_map_get(v, "refcount"), 0) == 4, 0);
            rcs_value_free(v);
            v = NULL;
            rc = rcs_recv(c, NULL);
            CHECK(w, c, rc == RCS_ENOT_HELD, rc);
            OK(w, c, rcs_recv(c, &v));
            CHECK(w, c, rcs_value_uint(v, 0) == 3, 0);
            rcs_value_free(v);
            OK(w, c, rcs_recv(c, &v));
            CHECK(w, c, v && v->type == RCS_STR && strcmp(v->via.bytes.ptr, "pong") == 0, 0);
            rcs_value_free(v);
            v = NULL;
        }
        CHECK(w, c, rcs_pending(c) == 0, 0);

        OK(w, c, rcs_decref(c, id, 2, &n));
        CHECK(w, c, n == 1, 0);
        OK(w, c, rcs_bind(c, name, id)); /* rebinding drops prev's name */
        OK(w, c, rcs_lookup(c, name, 0, &n));
        CHECK(w, c, n == id, 0);
        if (prev) {
            /* The previous link stays alive through id's ref alone. */
            OK(w, c, rcs_decref(c, prev, 1, &n));
            CHECK(w, c, n == 0, 0);
            OK(w, c, rcs_stat_object(c, prev, &st));
            CHECK(w, c, st.refcount == 1 && st.internal == 1 && st.holds == 0, 0);
        }
        prev = id;
        w->rounds_done++;
    }

    /* Unbind and drop the last hold: the whole chain goes in one request. */
    OK(w, c, rcs_unbind(c, name));
    OK(w, c, rcs_release_all(c, &n));
    CHECK(w, c, n == 1, 0);
    rc = rcs_get(c, prev, &o);
    CHECK(w, c, rc == RCS_ENOT_FOUND, rc);
out:
    rcs_object_free(o);
    rcs_value_free(v);
    rcs_close(c);
    return NULL;
}

static uint64_t stat_u(rcs_client *c, const char *section, const char *key)
{
    rcs_value *v;
    uint64_t r;
    assert_int_equal(rcs_stats(c, &v), 0);
    r = rcs_value_uint(rcs_map_get(rcs_map_get(v, section), key), UINT64_MAX);
    rcs_value_free(v);
    assert_true(r != UINT64_MAX);
    return r;
}

static void clients_on_threads(void **state)
{
    struct worker w[NTHREADS];
    rcs_client *c;
    (void)state;

    memset(w, 0, sizeof(w));
    assert_int_equal(pthread_barrier_init(&go, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].index = i;
        assert_int_equal(pthread_create(&w[i].thread, NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
    pthread_barrier_destroy(&go);

    for (int i = 0; i < NTHREADS; i++) {
        if (w[i].failed_line)
            fail_msg("thread %d, round %d, line %d, rc %d: %s", i, w[i].rounds_done,
                     w[i].failed_line, w[i].failed_rc, w[i].failed_msg);
        assert_int_equal(w[i].rounds_done, ROUNDS);
    }

    /* Oracle: every thread created ROUNDS objects and freed them all. */
    assert_int_equal(rcs_connect(srv.address, &c), 0);
    rcs_set_timeout(c, 60000);
    assert_int_equal(stat_u(c, "ops", "create"), (uint64_t)NTHREADS * ROUNDS);
    assert_int_equal(stat_u(c, "heap", "objects"), 0);
    rcs_close(c);
}

static int start(void **state)
{
    (void)state;
    return server_start(&srv, NULL);
}

static int stop(void **state)
{
    (void)state;
    return server_stop(&srv) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clients_on_threads),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
