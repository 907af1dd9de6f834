/* query_stall: how long one request of each query kind holds the event
 * loop on a big heap, in process: the heap is built through the store (10M
 * objects and 1M names take seconds that way, minutes over the wire), then
 * each request is encoded, decoded and served through cmd_dispatch exactly
 * as a connection's would be, and timed. The longest time is the longest a
 * second client's ping would wait behind it.
 *
 *   build/perf/query_stall [objects] [names] [calls]
 *
 * The heap is made of groups of six objects, the way clients build
 * containers: a container c held by the session refers to four leaves, and
 * the first leaf refers to one more object d; only c is a root. The first
 * `names` containers are bound to a name user/NNNNNNN and their hold is
 * dropped (the name is their only root). */
#include "cmd.h"
#include "mem.h"
#include "err.h"
#include "rpc_pack.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The thread's CPU time: what a request costs the loop, without the time
 * the scheduler gives to other processes on a shared machine (which would
 * delay a ping just as much with no request running). */
static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)s;
    (void)id;
    (void)why;
}

static struct store st;
static struct sess *sess;
static struct cmd_env env;
static struct buf req, out;
static struct rpc_decoder dec;
static msgpack_packer pk;

static void die(const char *what)
{
    fprintf(stderr, "query_stall: %s\n", what);
    exit(1);
}

static uint64_t mk(const uint64_t *refs, uint32_t n)
{
    uint64_t id;
    if (sess_reserve(&st, sess) < 0 || heap_create(&st.heap, "", 0, refs, n, &id) < 0 ||
        sess_incref(&st, sess, id, 1, NULL) < 0)
        die("out of memory building the heap");
    return id;
}

static void drop(uint64_t id)
{
    uint64_t after;
    if (sess_decref(&st, sess, id, 1, &after) < 0)
        die("decref");
}

static msgpack_packer *begin(const char *method, size_t nparams)
{
    buf_reset(&req);
    rpc_packer_init(&pk, &req);
    rpc_pack_request(&pk, 1, method);
    msgpack_pack_array(&pk, nparams);
    return &pk;
}

/* Serve the request built since begin; returns the CPU time it took (us),
 * its wall time in *wall, and the error code in *rc. */
static double serve(int *rc, double *wall)
{
    msgpack_object o;
    struct rpc_message m;
    struct cmd_ctx ctx;
    int have, authed = 1;
    double t0, w0;
    buf_reset(&out);
    w0 = now_us();
    t0 = cpu_us();
    if (rpc_decode(&dec, req.data, req.len, &o) < 0 || rpc_parse_request(&o, &m, &have) < 0)
        die("bad request");
    cmd_ctx_init(&ctx, &env, sess, &authed, &out);
    *rc = cmd_dispatch(&ctx, &m);
    t0 = cpu_us() - t0;
    *wall = now_us() - w0;
    return t0;
}

static int contains(const struct buf *b, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= b->len; i++)
        if (memcmp(b->data + i, s, n) == 0)
            return 1;
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct kind {
    const char *what;
    double *t, *w;
    long n, errors, incomplete;
};

static void report(struct kind *k)
{
    qsort(k->t, k->n, sizeof(*k->t), cmp_d);
    qsort(k->w, k->n, sizeof(*k->w), cmp_d);
    printf("%-38s %6ld %8.1f %8.1f %8.1f %9.1f %9.1f %6ld %7ld\n", k->what, k->n, k->t[k->n / 2],
           k->t[k->n * 99 / 100], k->t[k->n - 1], k->w[k->n / 2], k->w[k->n * 99 / 100], k->errors,
           k->incomplete);
}

int main(int argc, char **argv)
{
    long objects = argc > 1 ? atol(argv[1]) : 10000000;
    long nnames = argc > 2 ? atol(argv[2]) : 1000000;
    long calls = argc > 3 ? atol(argv[3]) : 200;
    long groups = objects / 6, g;
    struct store_limits lim = {.max_data_bytes = 1 << 20,
                               .max_refs = 65536,
                               .max_message_bytes = 1 << 24,
                               .max_session_ttl = 3600};
    uint64_t *leaf, *deep; /* per group: the second leaf, and d */
    uint64_t x = 88172645463325252ull;
    double t0;
    enum {
        PING,
        LOOKUP,
        NAMES_PREFIX,
        NAMES_NARROW,
        NAMES_NONE,
        NAMES_ALL,
        NAMES_PAGE,
        WHY_ROOT,
        WHY_NAMED,
        WHY_HELD,
        WHY_DEEP,
        REF_PLAIN,
        REF_PAGE,
        NKINDS
    };
    struct kind kinds[NKINDS] = {
        {"ping", NULL, NULL, 0, 0, 0},
        {"lookup [name]", NULL, NULL, 0, 0, 0},
        {"names [\"user/05\", 100]", NULL, NULL, 0, 0, 0},
        {"names [\"user/0500\", 10]", NULL, NULL, 0, 0, 0},
        {"names [\"nomatch/\", 100]", NULL, NULL, 0, 0, 0},
        {"names [\"\"] (plain call)", NULL, NULL, 0, 0, 0},
        {"names [\"\", 10000, name] (one page)", NULL, NULL, 0, 0, 0},
        {"why [root]", NULL, NULL, 0, 0, 0},
        {"why [leaf of a named container]", NULL, NULL, 0, 0, 0},
        {"why [leaf of a held container]", NULL, NULL, 0, 0, 0},
        {"why [two steps below a root]", NULL, NULL, 0, 0, 0},
        {"referrers [leaf] (plain call)", NULL, NULL, 0, 0, 0},
        {"referrers [leaf, 100, 0] (one page)", NULL, NULL, 0, 0, 0},
    };

    if (groups < 2 || nnames >= groups)
        die("usage: query_stall [objects >= 12] [names < objects/6] [calls]");
    if (store_init(&st, &lim, on_notify, NULL) < 0 || sess_new(&st, &sess) < 0)
        die("store_init");
    env.st = &st;
    rpc_decoder_init(&dec);
    leaf = malloc(groups * sizeof(*leaf));
    deep = malloc(groups * sizeof(*deep));
    t0 = now_us();
    for (g = 0; g < groups; g++) {
        uint64_t d = mk(NULL, 0), l[4], c;
        l[0] = mk(&d, 1);
        l[1] = mk(NULL, 0);
        l[2] = mk(NULL, 0);
        l[3] = mk(NULL, 0);
        c = mk(l, 4);
        drop(d);
        for (int i = 0; i < 4; i++)
            drop(l[i]);
        if (g < nnames) {
            char nm[32];
            int len = snprintf(nm, sizeof(nm), "user/%07ld", g);
            if (names_bind(&st.names, &st.heap, nm, (uint32_t)len, c) < 0)
                die("bind");
            drop(c);
        }
        leaf[g] = l[1];
        deep[g] = d;
    }
    printf("heap: %llu objects, %llu names, built in %.1f s; %ld calls of each kind\n",
           (unsigned long long)st.heap.objects, (unsigned long long)st.names.count,
           (now_us() - t0) / 1e6, calls);
    for (int k = 0; k < NKINDS; k++)
        if (!(kinds[k].t = malloc(calls * sizeof(double))) ||
            !(kinds[k].w = malloc(calls * sizeof(double))))
            die("malloc");

    for (long i = 0; i < calls; i++) {
        for (int k = 0; k < NKINDS; k++) {
            long r;
            char nm[32];
            int len, rc;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r = (long)(x % (uint64_t)groups);
            switch (k) {
            case PING:
                begin("ping", 0);
                break;
            case LOOKUP:
                len = snprintf(nm, sizeof(nm), "user/%07ld", r % (nnames ? nnames : 1));
                msgpack_pack_str_with_body(begin("lookup", 1), nm, (size_t)len);
                break;
            case NAMES_PREFIX:
                msgpack_pack_str_with_body(begin("names", 2), "user/05", 7);
                msgpack_pack_uint64(&pk, 100);
                break;
            case NAMES_NARROW:
                msgpack_pack_str_with_body(begin("names", 2), "user/0500", 9);
                msgpack_pack_uint64(&pk, 10);
                break;
            case NAMES_NONE:
                msgpack_pack_str_with_body(begin("names", 2), "nomatch/", 8);
                msgpack_pack_uint64(&pk, 100);
                break;
            case NAMES_ALL:
                msgpack_pack_str_with_body(begin("names", 1), "", 0);
                break;
            case NAMES_PAGE: /* a full page from a random cursor */
                len = snprintf(nm, sizeof(nm), "user/%07ld", r % (nnames ? nnames : 1));
                msgpack_pack_str_with_body(begin("names", 3), "", 0);
                msgpack_pack_uint64(&pk, 10000);
                msgpack_pack_str_with_body(&pk, nm, (size_t)len);
                break;
            case WHY_ROOT:
                msgpack_pack_uint64(begin("why", 1), leaf[r] + 2);
                break;
            case WHY_NAMED:
                msgpack_pack_uint64(begin("why", 1), leaf[r % (nnames ? nnames : 1)]);
                break;
            case WHY_HELD:
                msgpack_pack_uint64(begin("why", 1),
                                    leaf[nnames + r % (groups - nnames ? groups - nnames : 1)]);
                break;
            case WHY_DEEP:
                msgpack_pack_uint64(begin("why", 1), deep[r]);
                break;
            case REF_PLAIN:
                msgpack_pack_uint64(begin("referrers", 1), leaf[r]);
                break;
            case REF_PAGE:
                msgpack_pack_uint64(begin("referrers", 3), leaf[r]);
                msgpack_pack_uint64(&pk, 100);
                msgpack_pack_uint64(&pk, 0);
                break;
            }
            kinds[k].t[kinds[k].n] = serve(&rc, &kinds[k].w[kinds[k].n]);
            kinds[k].n++;
            kinds[k].errors += rc != 0;
            kinds[k].incomplete += rc == 0 && contains(&out, "incomplete");
            if (rc != 0 && rc != RPC_EQUOTA_EXCEEDED)
                die(err_name(rc));
        }
    }
    printf("%-38s %6s %8s %8s %8s %9s %9s %6s %7s\n", "request", "calls", "cpu p50", "cpu p99",
           "cpu max", "wall p50", "wall p99", "QUOTA", "unknown");
    for (int k = 0; k < NKINDS; k++)
        report(&kinds[k]);
    return 0;
}
