/* gc_bench: the cycle collector on the graphs the issue names, in process
 * (no network), so that it compares with CPython's gc.collect() on the same
 * shapes (perf/gc_vs_cpython.sh runs both in one go).
 *
 *   build/perf/gc_bench [cycles] [live] [churn] [runs]
 *
 * clients:    the garbage built the way clients build it, through the command
 *             layer (real encoded requests, decoded as conn.c decodes them, to
 *             cmd_dispatch) in the order perf/gc_pause.py sends them: `create`
 *             10,000 empty objects, then for each pair `link a b`, `link b a`,
 *             `decref a`, `decref b`, so every object is a candidate. First
 *             `churn` objects are created and dropped in random order, so ids
 *             come from slots reused out of order and blocks from scattered
 *             pool memory, as on a server that has run for a while. Then one
 *             `gc` request (its own duration_us), and the same garbage again
 *             swept the periodic way (store_sweep, 1000 us slices).
 * fresh:      `cycles` pairs a <-> b on a new heap through heap calls, every
 *             hold dropped, then one collection (the friendly case: ids and
 *             blocks sequential).
 * live:       `live` objects in a chain, all held, nothing released, then one
 *             collection (should cost nothing: no candidates).
 * ring:       one garbage ring of 2 * cycles objects, swept the periodic way. */
#include "cmd.h"
#include "gc.h"
#include "heap.h"
#include "rpc_msg.h"
#include "rpc_pack.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "gc_bench: %s\n", what);
    exit(1);
}

/* ---- a client of the command layer ---- */

struct client {
    struct store st;
    struct cmd_env env;
    struct sess *s;
    struct buf req, out;
    msgpack_packer pk;
    struct rpc_decoder dres;
    msgpack_object res;
    int authed;
};

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)s;
    (void)id;
    (void)why;
}

static void client_open(struct client *c)
{
    struct store_limits lim = {.max_data_bytes = 1 << 20,
                               .max_refs = 1 << 16,
                               .max_message_bytes = 64 << 20,
                               .max_session_ttl = 3600,
                               .gc_threshold = 1000000000};
    memset(c, 0, sizeof(*c));
    if (store_init(&c->st, &lim, on_notify, NULL) < 0 || rpc_decoder_init(&c->dres) < 0)
        die("store_init");
    c->env.st = &c->st;
    c->authed = 1;
    if (sess_new(&c->st, &c->s) < 0)
        die("sess_new");
}

static void client_close(struct client *c)
{
    buf_close(&c->req);
    buf_close(&c->out);
    rpc_decoder_close(&c->dres);
    store_close(&c->st);
}

static msgpack_packer *begin(struct client *c, const char *method, size_t nparams)
{
    buf_reset(&c->req);
    rpc_packer_init(&c->pk, &c->req);
    rpc_pack_request(&c->pk, 1, method);
    msgpack_pack_array(&c->pk, nparams);
    return &c->pk;
}

/* Decode the request as the server's fast path does, dispatch it, and
 * decode the reply: its result (the program stops on an error). */
static const msgpack_object *end(struct client *c)
{
    msgpack_object params[RPC_SIMPLE_MAX_PARAMS];
    struct rpc_message m;
    struct cmd_ctx ctx;
    msgpack_object *r;
    if (rpc_decode_simple((const uint8_t *)c->req.data, c->req.len, c->req.len, &m, params) == 0)
        die("request not decoded");
    buf_reset(&c->out);
    cmd_ctx_init(&ctx, &c->env, c->s, &c->authed, &c->out);
    if (cmd_dispatch(&ctx, &m) < 0)
        die("request failed");
    if (rpc_decode(&c->dres, c->out.data, c->out.len, &c->res) < 0)
        die("reply not decoded");
    r = &c->res.via.array.ptr[3];
    return r;
}

static uint64_t create(struct client *c)
{
    msgpack_pack_bin(begin(c, "create", 1), 0);
    return end(c)->via.u64;
}

static void call2(struct client *c, const char *method, uint64_t a, uint64_t b)
{
    msgpack_packer *pk = begin(c, method, b ? 2 : 1);
    msgpack_pack_uint64(pk, a);
    if (b)
        msgpack_pack_uint64(pk, b);
    end(c);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* n objects created and all but one in 16 dropped in random order: the
 * free slots and the pool's free blocks end up in that order. */
static void churn(struct client *c, long n)
{
    uint64_t *ids = malloc((size_t)n * 8), seed = 0x9e3779b97f4a7c15ull;
    if (!ids)
        die("out of memory");
    for (long i = 0; i < n; i++)
        ids[i] = create(c);
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(rnd(&seed) % (uint64_t)(i + 1));
        uint64_t t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
    /* One in 16 stays: a server has live objects, and an emptied heap
     * would give its id table back and start again from fresh slots. */
    for (long i = 0; i < n; i++)
        if (i % 16)
            call2(c, "decref", ids[i], 0);
    free(ids);
}

/* cycles pairs, as perf/gc_pause.py sends them. */
static void client_cycles(struct client *c, long cycles)
{
    static uint64_t ids[10000];
    for (long made = 0; made < cycles;) {
        long k = cycles - made < 5000 ? cycles - made : 5000;
        for (long i = 0; i < 2 * k; i++)
            ids[i] = create(c);
        for (long i = 0; i < 2 * k; i += 2) {
            call2(c, "link", ids[i], ids[i + 1]);
            call2(c, "link", ids[i + 1], ids[i]);
            call2(c, "decref", ids[i], 0);
            call2(c, "decref", ids[i + 1], 0);
        }
        made += k;
    }
}

static uint64_t map_uint(const msgpack_object *m, const char *key)
{
    const msgpack_object *v = rpc_map_get(m, key);
    return v ? v->via.u64 : 0;
}

/* The periodic sweep over what the candidate buffer holds. */
static void sweep(struct store *st, const char *what, long objects)
{
    struct gc_result r;
    double total = 0, longest = 0;
    long slices = 0, collected = 0;
    int more;
    do {
        double t = now();
        more = store_sweep(st, 1000, &r);
        t = now() - t;
        total += t;
        longest = t > longest ? t : longest;
        collected += (long)r.collected;
        slices++;
    } while (more > 0);
    printf("rcstore  %s sliced: %ld of %ld objects collected in %ld slices, longest %.3f ms, "
           "total %.1f ms (%.1f ns/object)\n",
           what, collected, objects, slices, longest * 1e3, total * 1e3,
           total * 1e9 / (double)(collected ? collected : 1));
}

static void clients(long cycles, long nchurn, int runs)
{
    struct client c;
    const msgpack_object *r;
    double t;
    client_open(&c);
    churn(&c, nchurn);
    for (int i = 0; i < runs; i++) {
        client_cycles(&c, cycles);
        begin(&c, "gc", 0);
        t = now();
        r = end(&c);
        t = now() - t;
        printf(
            "rcstore  clients two-cycles: %llu objects collected by gc in %.1f ms by its "
            "duration_us (%.1f ns/object; %.1f ms with the request around it)\n",
            (unsigned long long)map_uint(r, "collected"), (double)map_uint(r, "duration_us") / 1e3,
            (double)map_uint(r, "duration_us") * 1e3 / (double)map_uint(r, "collected"), t * 1e3);
    }
    for (int i = 0; i < runs; i++) {
        client_cycles(&c, cycles);
        sweep(&c.st, "clients two-cycles", 2 * cycles);
    }
    client_close(&c);
}

/* ---- the heap directly ---- */

static void on_free(void *ud, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)id;
    (void)why;
}

static uint64_t mk(struct heap *h, const uint64_t *refs, uint32_t n)
{
    uint64_t id;
    if (heap_create(h, "", 0, refs, n, &id) < 0)
        die("out of memory");
    heap_incr(h, id, CNT_HOLDS, 1);
    return id;
}

static void sliced(struct heap *h, const char *what, long objects)
{
    struct gc_result r;
    double total = 0, longest = 0;
    long slices = 0, collected = 0;
    int more;
    do {
        double t = now();
        more = gc_slice(h, 1000, &r);
        t = now() - t;
        total += t;
        longest = t > longest ? t : longest;
        collected += (long)r.collected;
        slices++;
    } while (more > 0);
    printf("rcstore  %s sliced: %ld of %ld objects collected in %ld slices, longest %.3f ms, "
           "total %.1f ms\n",
           what, collected, objects, slices, longest * 1e3, total * 1e3);
}

int main(int argc, char **argv)
{
    long cycles = argc > 1 ? atol(argv[1]) : 500000;
    long live = argc > 2 ? atol(argv[2]) : 1000000;
    long nchurn = argc > 3 ? atol(argv[3]) : 3000000;
    int runs = argc > 4 ? atoi(argv[4]) : 3;
    struct heap h;
    struct gc_result r;
    double t;
    uint32_t n;
    uint64_t prev;

    clients(cycles, nchurn, runs);
    if (live <= 0)
        return 0;

    heap_init(&h, on_free, NULL);
    for (long i = 0; i < cycles; i++) {
        uint64_t a = mk(&h, NULL, 0), b = mk(&h, &a, 1);
        heap_link(&h, a, b, &n);
        heap_decr(&h, a, CNT_HOLDS, 1);
        heap_decr(&h, b, CNT_HOLDS, 1);
    }
    t = now();
    gc_collect(&h, &r);
    t = now() - t;
    printf("rcstore  fresh two-cycles: %ld objects collected in %.1f ms (%.1f ns/object)\n",
           (long)r.collected, t * 1e3, t * 1e9 / (double)r.collected);

    prev = mk(&h, NULL, 0);
    for (long i = 1; i < live; i++)
        prev = mk(&h, &prev, 1);
    t = now();
    gc_collect(&h, &r);
    t = now() - t;
    printf("rcstore  live heap: %ld live objects, nothing released: gc in %.3f ms "
           "(%llu examined)\n",
           (long)h.objects, t * 1e3, (unsigned long long)r.examined);
    heap_close(&h);

    heap_init(&h, on_free, NULL);
    {
        uint64_t first = mk(&h, NULL, 0);
        prev = first;
        for (long i = 1; i < 2 * cycles; i++) {
            uint64_t o = mk(&h, NULL, 0);
            heap_link(&h, prev, o, &n);
            heap_decr(&h, o, CNT_HOLDS, 1);
            prev = o;
        }
        heap_link(&h, prev, first, &n);
        heap_decr(&h, first, CNT_HOLDS, 1);
    }
    sliced(&h, "one ring", 2 * cycles);
    heap_close(&h);
    return 0;
}
