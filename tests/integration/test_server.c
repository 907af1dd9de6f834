/* Integration tests: a real rcstored on 127.0.0.1 (port 0) driven through
 * librcstore. Every method, the error codes this server can produce, deep
 * pipelines, 500 simultaneous connections, holds released when connections
 * close, and a million-long chain freed in one request. Waiting is always on
 * an event (a reply or a "freed" notification), never on a sleep. */
#include "../unit/cmocka_pre.h"

#include "harness.h"
#include "rcstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct server_proc srv;

static int start(void **state)
{
    static const char *const flags[] = {"--max-data-bytes",  "1024", "--max-refs", "1000",
                                        "--max-connections", "900",  NULL};
    (void)state;
    return server_start(&srv, flags);
}

static int stop(void **state)
{
    (void)state;
    /* SIGTERM must stop it cleanly: exit status 0. */
    return server_stop(&srv) == 0 ? 0 : -1;
}

static rcs_client *client(void)
{
    rcs_client *c;
    assert_int_equal(rcs_connect(srv.address, &c), 0);
    rcs_set_timeout(c, 60000);
    return c;
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

/* Poll stats until section.key reaches at least want: for what the server
 * does on its own after a peer's close, of which no client hears. Fails the
 * test after 30 s instead of hanging until ctest's timeout. */
static void wait_stat_at_least(rcs_client *c, const char *section, const char *key, uint64_t want)
{
    struct timespec t0, t, nap = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (stat_u(c, section, key) < want) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 30)
            fail_msg("stats.%s.%s stayed below %llu for 30 s", section, key,
                     (unsigned long long)want);
        nanosleep(&nap, NULL);
    }
}

/* Wait for the "freed" notification of id; returns its reason. */
static const char *wait_freed(rcs_client *c, uint64_t id)
{
    static char reason[16];
    rcs_notification *n;
    assert_int_equal(rcs_next_notification(c, 60000, &n), 0);
    assert_string_equal(n->method, "freed");
    assert_int_equal(n->params->via.array.len, 2);
    assert_int_equal(rcs_value_uint(&n->params->via.array.items[0], 0), id);
    snprintf(reason, sizeof(reason), "%s", n->params->via.array.items[1].via.bytes.ptr);
    rcs_notification_free(n);
    return reason;
}

static void every_method(void **state)
{
    rcs_client *c = client(), *w = client();
    rcs_hello_info info;
    rcs_object *o;
    rcs_stat st;
    rcs_gc_result g;
    rcs_value *v;
    uint64_t a, b, n, *ids;
    size_t nids;
    (void)state;

    assert_int_equal(rcs_hello(c, "test", &info), 0);
    assert_int_equal(info.protocol, 1);
    assert_true(info.session > 0);
    assert_true(info.token_len >= 16);
    assert_false(info.resumed);
    assert_int_equal(info.max_data_bytes, 1024);
    assert_int_equal(info.max_refs, 1000);
    assert_int_equal(rcs_ping(c), 0);

    assert_int_equal(rcs_create(c, "alpha", 5, NULL, 0, &a), 0);
    assert_int_equal(rcs_create(c, "beta", 4, &a, 1, &b), 0);
    assert_int_equal(rcs_get(c, b, &o), 0);
    assert_int_equal(o->id, b);
    assert_string_equal(o->data, "beta");
    assert_int_equal(o->nrefs, 1);
    assert_int_equal(o->refs[0], a);
    assert_int_equal(o->refcount, 1);
    rcs_object_free(o);

    assert_int_equal(rcs_set_data(c, a, "ALPHA!", 6), 0);
    assert_int_equal(rcs_link(c, b, a, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rcs_unlink(c, b, a, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rcs_stat_object(c, a, &st), 0);
    assert_int_equal(st.refcount, 2);
    assert_int_equal(st.holds, 1);
    assert_int_equal(st.internal, 1);
    assert_int_equal(st.data_bytes, 6);

    assert_int_equal(rcs_incref(c, a, 2, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(rcs_decref(c, a, 3, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(rcs_referrers(c, a, 10, &ids, &nids), 0);
    assert_int_equal(nids, 1);
    assert_int_equal(ids[0], b);
    free(ids);

    assert_int_equal(rcs_bind(c, "it/b", b), 0);
    assert_int_equal(rcs_lookup(w, "it/b", 1, &n), 0);
    assert_int_equal(n, b);
    assert_int_equal(rcs_names(c, "it/", UINT64_MAX, &v), 0);
    assert_int_equal(v->via.array.len, 1);
    assert_string_equal(v->via.array.items[0].via.array.items[0].via.bytes.ptr, "it/b");
    rcs_value_free(v);

    /* w watches a; set_refs drops b's ref to a, the last one: freed. */
    assert_int_equal(rcs_watch(w, a), 0);
    assert_int_equal(rcs_set_refs(c, b, NULL, 0), 0);
    assert_string_equal(wait_freed(w, a), "refcount");

    assert_int_equal(rcs_release_all(c, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rcs_unbind(c, "it/b"), 0);
    assert_int_equal(rcs_release_all(w, &n), 0);
    assert_int_equal(n, 1);

    assert_int_equal(rcs_gc(c, &g), 0);
    assert_int_equal(rcs_stats(c, &v), 0);
    assert_non_null(rcs_map_get(rcs_map_get(v, "server"), "uptime_s"));
    assert_non_null(rcs_map_get(rcs_map_get(v, "memory"), "rss_bytes"));
    assert_non_null(rcs_map_get(rcs_map_get(v, "sessions"), "attached"));
    assert_true(rcs_value_uint(rcs_map_get(rcs_map_get(v, "ops"), "create"), 0) >= 2);
    rcs_value_free(v);
    rcs_close(c);
    rcs_close(w);
}

static void error_codes(void **state)
{
    rcs_client *c = client();
    char big[2048];
    uint64_t a, x, n;
    rcs_value *v;
    (void)state;
    memset(big, 'x', sizeof(big));
    assert_int_equal(rcs_call(c, NULL, "frobnicate", ""), RCS_EUNKNOWN_METHOD);
    assert_int_equal(rcs_call(c, NULL, "get", "s", "seven"), RCS_EBAD_PARAMS);
    assert_int_equal(rcs_call(c, NULL, "get", ""), RCS_EBAD_PARAMS);
    assert_int_equal(rcs_get(c, 987654, (rcs_object **)&v), RCS_ENOT_FOUND);
    assert_int_equal(rcs_create(c, big, sizeof(big), NULL, 0, &x), RCS_ETOO_LARGE);
    assert_int_equal(rcs_create(c, "a", 1, NULL, 0, &a), 0);
    assert_int_equal(rcs_decref(c, a, 2, &n), RCS_ENOT_HELD);
    assert_int_equal(rcs_lookup(c, "no such name", 0, &x), RCS_ENAME_NOT_FOUND);
    assert_int_equal(rcs_incref(c, a, UINT32_MAX, &n), RCS_EQUOTA_EXCEEDED);
    assert_int_equal(rcs_call(c, NULL, "hello", "{sy}", "resume", "0123456789abcdef", (size_t)16),
                     RCS_ESESSION_EXPIRED);
    assert_non_null(strstr(rcs_last_error(c), "session"));
    /* The connection is still perfectly usable after every error. */
    assert_int_equal(rcs_ping(c), 0);
    rcs_close(c);
}

static void deep_pipeline(void **state)
{
    enum { N = 20000 };
    rcs_client *c = client();
    static uint64_t ids[N];
    rcs_value *v;
    (void)state;
    for (int i = 0; i < N; i++)
        assert_int_equal(rcs_send(c, "create", "y", "p", (size_t)1), 0);
    assert_int_equal(rcs_pending(c), N);
    assert_int_equal(rcs_flush(c), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rcs_recv(c, &v), 0);
        ids[i] = rcs_value_uint(v, 0);
        rcs_value_free(v);
        if (i > 0)
            assert_true(ids[i] != ids[i - 1]);
    }
    /* Errors in the middle of a pipeline stay in order. */
    for (int i = 0; i < N; i++) {
        rcs_send(c, "decref", "u", ids[i]);
        if (i % 1000 == 0)
            rcs_send(c, "decref", "u", ids[i]); /* second drop: NOT_HELD */
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(rcs_recv(c, NULL), 0);
        if (i % 1000 == 0)
            assert_int_equal(rcs_recv(c, NULL), RCS_ENOT_FOUND);
    }
    assert_int_equal(rcs_pending(c), 0);
    rcs_close(c);
}

static void closing_releases_holds(void **state)
{
    rcs_client *owner = client(), *w = client();
    uint64_t a, b;
    (void)state;
    assert_int_equal(rcs_create(owner, "x", 1, NULL, 0, &a), 0);
    assert_int_equal(rcs_create(owner, "y", 1, &a, 1, &b), 0);
    assert_int_equal(rcs_incref(owner, b, 5, NULL), 0);
    assert_int_equal(rcs_watch(w, a), 0);
    assert_int_equal(rcs_watch(w, b), 0);
    rcs_close(owner); /* no lease: everything it held goes */
    assert_string_equal(wait_freed(w, b), "refcount");
    assert_string_equal(wait_freed(w, a), "refcount");
    rcs_close(w);
}

static void five_hundred_connections(void **state)
{
    enum { N = 500 };
    static rcs_client *cs[N];
    static uint64_t ids[N];
    rcs_client *w = client();
    uint64_t before = stat_u(w, "heap", "objects");
    (void)state;
    for (int i = 0; i < N; i++)
        cs[i] = client();
    /* All open at once, each with its own session and object. */
    for (int i = 0; i < N; i++) {
        char d[16];
        snprintf(d, sizeof(d), "c%d", i);
        assert_int_equal(rcs_send(cs[i], "create", "y", d, strlen(d)), 0);
        assert_int_equal(rcs_flush(cs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        rcs_value *v;
        assert_int_equal(rcs_recv(cs[i], &v), 0);
        ids[i] = rcs_value_uint(v, 0);
        rcs_value_free(v);
        assert_int_equal(rcs_watch(w, ids[i]), 0);
    }
    assert_true(stat_u(w, "server", "connections") >= N + 1);
    assert_int_equal(stat_u(w, "heap", "objects"), before + N);
    for (int i = 0; i < N; i++)
        rcs_close(cs[i]);
    for (int i = 0; i < N; i++) {
        rcs_notification *n;
        assert_int_equal(rcs_next_notification(w, 60000, &n), 0);
        rcs_notification_free(n);
    }
    assert_int_equal(stat_u(w, "heap", "objects"), before);
    rcs_close(w);
}

static void million_chain(void **state)
{
    enum { N = 1000000, BATCH = 10000 };
    rcs_client *c = client(), *w = client();
    uint64_t prev, first, freed_before;
    rcs_value *v;
    (void)state;
    freed_before = stat_u(w, "heap", "freed_refcount");
    assert_int_equal(rcs_create(c, "0", 1, NULL, 0, &first), 0);
    prev = first;
    /* Each new object refers to the previous one, whose own hold is then
     * dropped: only the newest is held and the chain is a million deep. Built
     * in pipelined batches: the creates, then the links and decrefs. */
    static uint64_t ids[BATCH];
    for (int done = 1; done < N; done += BATCH) {
        int n = N - done < BATCH ? N - done : BATCH;
        for (int i = 0; i < n; i++)
            assert_int_equal(rcs_send(c, "create", "y", "", (size_t)0), 0);
        for (int i = 0; i < n; i++) {
            assert_int_equal(rcs_recv(c, &v), 0);
            ids[i] = rcs_value_uint(v, 0);
            rcs_value_free(v);
        }
        for (int i = 0; i < n; i++) {
            uint64_t target = i == 0 ? prev : ids[i - 1];
            assert_int_equal(rcs_send(c, "link", "uu", ids[i], target), 0);
            assert_int_equal(rcs_send(c, "decref", "u", target), 0);
        }
        for (int i = 0; i < 2 * n; i++)
            assert_int_equal(rcs_recv(c, NULL), 0);
        prev = ids[n - 1];
    }
    assert_int_equal(rcs_watch(w, first), 0);
    assert_true(stat_u(w, "heap", "objects") >= N);
    assert_int_equal(rcs_decref(c, prev, 1, NULL), 0); /* frees all of it */
    assert_string_equal(wait_freed(w, first), "refcount");
    assert_int_equal(stat_u(w, "heap", "freed_refcount") - freed_before, N);
    assert_int_equal(rcs_ping(w), 0);
    rcs_close(c);
    rcs_close(w);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* More objects than one referrers request may examine (65,536 steps): the
 * plain request is refused, and rcs_referrers pages by itself to the same
 * answer, in full and up to a limit; rcs_referrers_page walks it by hand. */
static void referrers_past_the_budget(void **state)
{
    enum { N = 150000, BATCH = 10000, EVERY = 1499 };
    rcs_client *c = client();
    uint64_t t, *got, *page, want[N / EVERY + 1], cursor = 0, *all = NULL;
    size_t nwant = 0, n, npage, nall = 0;
    rcs_value *v;
    (void)state;
    assert_int_equal(rcs_create(c, "t", 1, NULL, 0, &t), 0);
    for (int done = 0; done < N; done += BATCH) {
        for (int i = done; i < done + BATCH; i++) {
            if (i % EVERY == EVERY - 1)
                assert_int_equal(rcs_send(c, "create", "yU", "r", (size_t)1, &t, (size_t)1), 0);
            else
                assert_int_equal(rcs_send(c, "create", "y", "", (size_t)0), 0);
        }
        for (int i = done; i < done + BATCH; i++) {
            assert_int_equal(rcs_recv(c, &v), 0);
            if (i % EVERY == EVERY - 1)
                want[nwant++] = rcs_value_uint(v, 0);
            rcs_value_free(v);
        }
    }
    assert_int_equal(nwant, N / EVERY);
    qsort(want, nwant, sizeof(*want), cmp_u64); /* ids need not grow */
    assert_int_equal(rcs_call(c, NULL, "referrers", "uu", t, UINT64_MAX), RCS_EQUOTA_EXCEEDED);

    assert_int_equal(rcs_referrers(c, t, UINT64_MAX, &got, &n), 0);
    assert_int_equal(n, nwant);
    qsort(got, n, sizeof(*got), cmp_u64);
    assert_memory_equal(got, want, n * sizeof(*got));
    free(got);
    assert_int_equal(rcs_referrers(c, t, 7, &got, &n), 0);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++)
        assert_non_null(bsearch(&got[i], want, nwant, sizeof(*want), cmp_u64));
    free(got);
    assert_int_equal(rcs_referrers(c, t, 0, &got, &n), 0);
    assert_int_equal(n, 0);
    free(got);
    assert_int_equal(rcs_referrers(c, UINT64_MAX, 5, &got, &n), RCS_ENOT_FOUND);
    assert_null(got);

    /* By hand: several pages (some maybe empty), together the same ids. */
    int pages = 0;
    do {
        assert_int_equal(rcs_referrers_page(c, t, 30, &cursor, &page, &npage), 0);
        assert_true(npage <= 30);
        all = realloc(all, (nall + npage + 1) * sizeof(*all));
        assert_non_null(all);
        memcpy(all + nall, page, npage * sizeof(*page));
        nall += npage;
        free(page);
        pages++;
    } while (cursor != 0);
    assert_true(pages >= 3);
    assert_int_equal(nall, nwant);
    qsort(all, nall, sizeof(*all), cmp_u64);
    assert_memory_equal(all, want, nall * sizeof(*all));
    free(all);
    assert_int_equal(rcs_referrers_page(c, t, 0, &cursor, &page, &npage), RCS_EINVAL);
    rcs_close(c);
}

/* rcs_hello_with authenticates, asks for a lease and resumes, on a server
 * started with --auth-token-file; hello's limits reach rcs_hello_info. */
static void hello_with_auth(void **state)
{
    static const char token[] = "s3cret-t0ken";
    char path[] = "/tmp/rcs-test-token-XXXXXX";
    const char *flags[] = {"--auth-token-file", path, "--max-tokens-per-session", "7", NULL};
    struct server_proc asrv;
    rcs_client *a, *b, *w;
    rcs_hello_info info, again;
    rcs_hello_opts o = {0};
    uint64_t x;
    int fd = mkstemp(path); /* mode 0600, as the server demands */
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, token, strlen(token)), (ssize_t)strlen(token));
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(server_start(&asrv, flags), 0);
    assert_int_equal(rcs_connect(asrv.address, &a), 0);
    assert_int_equal(rcs_connect(asrv.address, &b), 0);
    assert_int_equal(rcs_connect(asrv.address, &w), 0);
    rcs_set_timeout(a, 60000);
    rcs_set_timeout(b, 60000);
    rcs_set_timeout(w, 60000);

    assert_int_equal(rcs_ping(a), 0);
    assert_int_equal(rcs_create(a, "x", 1, NULL, 0, &x), RCS_EAUTH_REQUIRED);
    o.auth = token; /* auth_len 0: a C string */
    o.client = "hello-with";
    o.ttl = 30;
    assert_int_equal(rcs_hello_with(a, &o, &info), 0);
    assert_int_equal(info.protocol, 1);
    assert_int_equal(info.ttl, 30);
    assert_false(info.resumed);
    assert_int_equal(info.max_tokens_per_session, 7);
    assert_int_equal(info.max_refs, 65536);
    assert_int_equal(rcs_create(a, "x", 1, NULL, 0, &x), 0);

    /* The token as bytes and a length. */
    o = (rcs_hello_opts){.auth = token, .auth_len = strlen(token)};
    assert_int_equal(rcs_hello_with(w, &o, NULL), 0);

    /* A wrong token: AUTH_FAILED, then the server closes the connection: a
     * ping fails with EIO if it was sent before the close arrived, and the
     * library answers it on a new connection (one reconnect) either way. */
    o = (rcs_hello_opts){.auth = token, .auth_len = strlen(token) - 1};
    assert_int_equal(rcs_hello_with(b, &o, &again), RCS_EAUTH_FAILED);
    {
        int rc = rcs_ping(b);
        if (rc == RCS_EIO)
            rc = rcs_ping(b);
        assert_int_equal(rc, 0);
        assert_int_equal(rcs_reconnects(b), 1);
    }
    rcs_close(b);

    /* a's lease: close it, resume it from another connection that
     * authenticates in the same hello; ttl 0 keeps the session's own. */
    rcs_close(a);
    assert_int_equal(rcs_connect(asrv.address, &a), 0);
    rcs_set_timeout(a, 60000);
    wait_stat_at_least(w, "sessions", "detached", 1); /* the close is processed */
    o = (rcs_hello_opts){.auth = token, .resume = info.token, .resume_len = info.token_len};
    assert_int_equal(rcs_hello_with(a, &o, &again), 0);
    assert_true(again.resumed);
    assert_int_equal(again.session, info.session);
    assert_int_equal(again.ttl, 30);
    assert_int_equal(rcs_decref(a, x, 1, NULL), 0); /* the hold came back with it */

    rcs_close(a);
    rcs_close(w);
    assert_int_equal(server_stop(&asrv), 0);
    unlink(path);
}

/* rcs_hello and rcs_hello_lease write only the rcs_hello_info of 0.1, so
 * that a program built with its smaller struct is not overrun. */
static void hello_keeps_the_old_info_layout(void **state)
{
    rcs_client *c = client();
    rcs_hello_info info;
    (void)state;
    memset(&info, 0xA5, sizeof(info));
    assert_int_equal(rcs_hello(c, "old", &info), 0);
    assert_int_equal(info.max_refs, 1000);
    assert_int_equal(info.max_tokens_per_session, 0xA5A5A5A5A5A5A5A5u);
    assert_int_equal(rcs_hello_lease(c, 0, NULL, 0, &info), 0);
    assert_int_equal(info.max_tokens_per_session, 0xA5A5A5A5A5A5A5A5u);
    assert_int_equal(rcs_hello_with(c, NULL, &info), 0);
    assert_int_equal(info.max_tokens_per_session, 1024);
    rcs_close(c);
}

/* Data over the max_data_bytes that hello gave is refused by the library
 * before it is sent (the server would cut the connection off mid-request):
 * TOO_LARGE naming both sizes, nothing queued, the connection untouched;
 * the typed calls and rcs_send alike. */
static void too_large_before_sending(void **state)
{
    enum { BIG = 1 << 20 };
    rcs_client *c = client();
    char *big = calloc(1, BIG);
    uint64_t id, creates;
    (void)state;
    assert_non_null(big);
    assert_int_equal(rcs_hello(c, NULL, NULL), 0);
    creates = stat_u(c, "ops", "create");
    assert_int_equal(rcs_create(c, big, BIG, NULL, 0, &id), RCS_ETOO_LARGE);
    assert_non_null(strstr(rcs_last_error(c), "create: data of 1048576 bytes is over the "
                                              "server's max_data_bytes (1024)"));
    assert_int_equal(rcs_create(c, "ok", 2, NULL, 0, &id), 0);
    assert_int_equal(rcs_set_data(c, id, big, BIG), RCS_ETOO_LARGE);
    assert_non_null(strstr(rcs_last_error(c), "set_data: data of 1048576 bytes"));
    assert_int_equal(rcs_set_data(c, id, big, 1024), 0); /* exactly the limit */
    assert_int_equal(rcs_send(c, "create", "yU", big, (size_t)1025, &id, (size_t)1),
                     RCS_ETOO_LARGE);
    assert_int_equal(rcs_send(c, "set_data", "uy", id, big, (size_t)BIG), RCS_ETOO_LARGE);
    assert_int_equal(rcs_pending(c), 0);
    big[BIG - 1] = '\0';
    memset(big, 's', BIG - 1); /* a str counts as well */
    assert_int_equal(rcs_send(c, "create", "s", big), RCS_ETOO_LARGE);
    assert_int_equal(rcs_ping(c), 0);
    assert_int_equal(rcs_reconnects(c), 0);
    assert_int_equal(stat_u(c, "ops", "create"), creates + 1);
    free(big);
    rcs_close(c);
}

/* A host that does not resolve: rcs_open says so in the resolver's words
 * (rcs_connect, which returns no client, leaves errno EHOSTUNREACH). */
static void resolver_errors(void **state)
{
    rcs_client *c;
    (void)state;
    assert_int_equal(rcs_open("nohost.invalid:7373", &c), RCS_ECONNECT);
    assert_non_null(c);
    assert_non_null(strstr(rcs_last_error(c), "cannot resolve nohost.invalid: "));
    assert_null(strstr(rcs_last_error(c), "Success"));
    rcs_close(c);
    assert_int_equal(rcs_connect("nohost.invalid:7373", &c), RCS_ECONNECT);
    assert_null(c);
    assert_int_equal(errno, EHOSTUNREACH);
    assert_int_equal(rcs_open(srv.address, &c), 0); /* and connects like rcs_connect */
    assert_int_equal(rcs_ping(c), 0);
    rcs_close(c);
}

static void connections_past_the_limit(void **state)
{
    enum { N = 950 };
    static rcs_client *cs[N];
    int ok = 0, refused = 0;
    rcs_client *w = client();
    (void)state;
    /* --max-connections 900: the rest are accepted and closed at once. */
    for (int i = 0; i < N; i++) {
        if (rcs_connect(srv.address, &cs[i]) < 0) {
            cs[i] = NULL;
            refused++;
            continue;
        }
        rcs_set_timeout(cs[i], 60000);
        if (rcs_ping(cs[i]) == 0)
            ok++;
        else
            refused++;
    }
    assert_true(ok <= 899);
    assert_true(refused >= N - 899);
    assert_true(stat_u(w, "server", "connections_refused") >= (uint64_t)(N - 899));
    for (int i = 0; i < N; i++)
        rcs_close(cs[i]);
    assert_int_equal(rcs_ping(w), 0);
    rcs_close(w);
}

static void leases_and_handoff(void **state)
{
    rcs_client *a = client(), *b = client(), *w = client();
    rcs_hello_info info, again;
    uint8_t tok[64];
    size_t len;
    uint64_t x, got;
    rcs_value *why;
    (void)state;
    assert_int_equal(rcs_hello_lease(a, 60, NULL, 0, &info), 0);
    assert_int_equal(info.ttl, 60);
    assert_int_equal(rcs_create(a, "x", 1, NULL, 0, &x), 0);
    assert_int_equal(rcs_share(a, x, 0, tok, sizeof(tok), &len), 0);
    assert_int_equal(rcs_decref(a, x, 1, NULL), 0); /* the token keeps it */
    assert_int_equal(rcs_why(w, x, &why), 0);
    assert_string_equal(rcs_map_get(why, "root")->via.bytes.ptr, "token");
    rcs_value_free(why);
    assert_int_equal(rcs_claim(b, tok, len, &got), 0);
    assert_int_equal(got, x);
    assert_int_equal(rcs_claim(b, tok, len, &got), RCS_ETOKEN_INVALID);
    /* a's lease: close it, then take it over from another connection. */
    rcs_close(a);
    a = client();
    wait_stat_at_least(w, "sessions", "detached", 1); /* the close is processed */
    assert_int_equal(rcs_hello_lease(a, 60, info.token, info.token_len, &again), 0);
    assert_true(again.resumed);
    assert_int_equal(again.session, info.session);
    rcs_close(a);
    rcs_close(b);
    rcs_close(w);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_method),
        cmocka_unit_test(error_codes),
        cmocka_unit_test(deep_pipeline),
        cmocka_unit_test(closing_releases_holds),
        cmocka_unit_test(five_hundred_connections),
        cmocka_unit_test(connections_past_the_limit),
        cmocka_unit_test(leases_and_handoff),
        cmocka_unit_test(referrers_past_the_budget),
        cmocka_unit_test(hello_with_auth),
        cmocka_unit_test(hello_keeps_the_old_info_layout),
        cmocka_unit_test(too_large_before_sending),
        cmocka_unit_test(resolver_errors),
        cmocka_unit_test(million_chain),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, start, stop);
}
