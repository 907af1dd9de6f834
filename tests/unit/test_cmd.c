/* Unit tests for server/cmd, through the dispatcher without a socket: each
 * method's result shape, arity and type errors, and atomicity (a failed
 * request changes nothing and leaves no partial reply). */
#include "cmocka_pre.h"

#include "cmd.h"
#include "check.h"
#include "mem.h"
#include "metrics.h"
#include "names.h"
#include "query.h"
#include "err.h"
#include "rpc_pack.h"
#include "stats.h"

#include <string.h>

struct fx {
    struct store st;
    struct cmd_env env;
    struct sess *s, *other;
    struct buf req, out;
    struct rpc_decoder dreq, dres;
    msgpack_packer pk;
    struct rpc_message res;
    int notified;
};

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    struct fx *f = ud;
    (void)s;
    (void)id;
    (void)why;
    f->notified++;
}

static int setup(void **state)
{
    static struct fx f;
    struct store_limits lim = {16, 4, 1 << 20, 3600, 0, 0, 0, 0, 0, 0};
    memset(&f, 0, sizeof(f));
    assert_int_equal(store_init(&f.st, &lim, on_notify, &f), 0);
    f.env.st = &f.st;
    assert_int_equal(sess_new(&f.st, &f.s), 0);
    assert_int_equal(sess_new(&f.st, &f.other), 0);
    rpc_decoder_init(&f.dreq);
    rpc_decoder_init(&f.dres);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char err[256];
    if (store_check(&f->st, err, sizeof(err)) < 0)
        fail_msg("invariant broken: %s", err);
    buf_close(&f->req);
    buf_close(&f->out);
    rpc_decoder_close(&f->dreq);
    rpc_decoder_close(&f->dres);
    store_close(&f->st);
    assert_int_equal(mem_used(), 0);
    return 0;
}

static msgpack_packer *begin(struct fx *f, const char *method, size_t nparams)
{
    buf_reset(&f->req);
    buf_reset(&f->out);
    rpc_packer_init(&f->pk, &f->req);
    rpc_pack_request(&f->pk, 42, method);
    msgpack_pack_array(&f->pk, nparams);
    return &f->pk;
}

/* The user the requests below are made as (NULL: nobody logs in, admin). */
static const struct user *as_user;

/* Dispatch the request as session s; returns the error sent (0 if none) and
 * checks the reply is exactly one well-formed response. */
static int end_as(struct fx *f, struct sess *s)
{
    msgpack_object req, res;
    struct rpc_message m;
    struct cmd_ctx ctx;
    int have, rc;
    assert_int_equal(rpc_decode(&f->dreq, f->req.data, f->req.len, &req), 0);
    assert_int_equal(rpc_parse_request(&req, &m, &have), 0);
    int authed = 1;
    cmd_ctx_init(&ctx, &f->env, s, &authed, &f->out);
    ctx.user = as_user;
    rc = cmd_dispatch(&ctx, &m);
    assert_int_equal(rpc_decode(&f->dres, f->out.data, f->out.len, &res), 0);
    assert_int_equal(rpc_parse_message(&res, &f->res), 0);
    assert_int_equal(f->res.msgid, 42);
    if (rc == 0) {
        assert_int_equal(f->res.error->type, MSGPACK_OBJECT_NIL);
    } else {
        const char *p;
        uint32_t n;
        assert_int_equal(rpc_obj_bytes(rpc_map_get(f->res.error, "code"), &p, &n), 0);
        assert_int_equal(err_from_name(p, n), rc);
        assert_non_null(rpc_map_get(f->res.error, "message"));
        assert_int_equal(f->res.result->type, MSGPACK_OBJECT_NIL);
    }
    return rc;
}

static int end(struct fx *f)
{
    return end_as(f, f->s);
}

static uint64_t result_uint(struct fx *f)
{
    assert_int_equal(f->res.result->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return f->res.result->via.u64;
}

static uint64_t create(struct fx *f, const char *data)
{
    msgpack_packer *pk = begin(f, "create", 1);
    msgpack_pack_str_with_body(pk, data, strlen(data));
    assert_int_equal(end(f), 0);
    return result_uint(f);
}

static uint64_t map_uint(struct fx *f, const char *key)
{
    const msgpack_object *v = rpc_map_get(f->res.result, key);
    assert_non_null(v);
    return v->via.u64;
}

static void ping_and_unknown(void **state)
{
    struct fx *f = *state;
    begin(f, "ping", 0);
    assert_int_equal(end(f), 0);
    assert_int_equal(f->res.result->type, MSGPACK_OBJECT_STR);
    begin(f, "frobnicate", 0);
    assert_int_equal(end(f), RPC_EUNKNOWN_METHOD);
    begin(f, "ping", 1);
    msgpack_pack_nil(&f->pk);
    assert_int_equal(end(f), RPC_EBAD_PARAMS);
    /* A name with a NUL is shown whole in the message, not cut at the NUL. */
    buf_reset(&f->req);
    buf_reset(&f->out);
    rpc_packer_init(&f->pk, &f->req);
    msgpack_pack_array(&f->pk, 4);
    msgpack_pack_uint32(&f->pk, 0);
    msgpack_pack_uint32(&f->pk, 42);
    msgpack_pack_str_with_body(&f->pk, "ping\0x", 6);
    msgpack_pack_array(&f->pk, 0);
    assert_int_equal(end(f), RPC_EUNKNOWN_METHOD);
    {
        const msgpack_object *msg = rpc_map_get(f->res.error, "message");
        assert_non_null(msg);
        const char want[] = "unknown method \"ping?x\"";
        assert_int_equal(msg->via.str.size, sizeof(want) - 1);
        assert_memory_equal(msg->via.str.ptr, want, sizeof(want) - 1);
    }
}

/* Dispatch the request in f->req as a connection that has no session yet
 * and must authenticate (*authed as given); returns the error sent. */
static int end_unauthed(struct fx *f, struct sess **s, int *authed)
{
    msgpack_object req, res;
    struct rpc_message m;
    struct cmd_ctx ctx;
    int have, rc;
    assert_int_equal(rpc_decode(&f->dreq, f->req.data, f->req.len, &req), 0);
    assert_int_equal(rpc_parse_request(&req, &m, &have), 0);
    cmd_ctx_init(&ctx, &f->env, *s, authed, &f->out);
    rc = cmd_dispatch(&ctx, &m);
    *s = ctx.sess;
    assert_int_equal(rpc_decode(&f->dres, f->out.data, f->out.len, &res), 0);
    assert_int_equal(rpc_parse_message(&res, &f->res), 0);
    return rc;
}

/* With a token, a connection's session comes with the hello that gives it;
 * a hello whose session cannot be made (out of memory) leaves the
 * connection unauthenticated, so no later request meets a NULL session
 * (it crashed the server: independent review). */
static void hello_makes_the_session_or_nothing(void **state)
{
    struct fx *f = *state;
    struct sess *s = NULL;
    int authed = 0, rc = 0;
    f->env.auth = "tok";
    f->env.auth_len = 3;
    for (long k = 0; k < 8; k++) {
        msgpack_packer *pk = begin(f, "hello", 1);
        msgpack_pack_map(pk, 1);
        rpc_pack_cstr(pk, "auth");
        rpc_pack_cstr(pk, "tok");
        buf_reserve(&f->out, 4096);
        mem_fail_after(k);
        rc = end_unauthed(f, &s, &authed);
        mem_fail_after(-1);
        if (rc == 0)
            break;
        assert_int_equal(rc, RPC_EOUT_OF_MEMORY);
        assert_null(s);
        assert_int_equal(authed, 0);
        pk = begin(f, "create", 1);
        msgpack_pack_bin_with_body(pk, "x", 1);
        assert_int_equal(end_unauthed(f, &s, &authed), RPC_EAUTH_REQUIRED);
    }
    assert_int_equal(rc, 0);
    assert_non_null(s);
    assert_int_equal(authed, 1);
    msgpack_packer *pk = begin(f, "create", 1);
    msgpack_pack_bin_with_body(pk, "x", 1);
    assert_int_equal(end_unauthed(f, &s, &authed), 0);
    sess_free(&f->st, s);
    f->env.auth = NULL;
}

static void hello_result(void **state)
{
    struct fx *f = *state;
    const msgpack_object *lim, *tok;
    begin(f, "hello", 0);
    assert_int_equal(end(f), 0);
    assert_int_equal(map_uint(f, "protocol"), 1);
    assert_int_equal(map_uint(f, "session"), f->s->id);
    tok = rpc_map_get(f->res.result, "token");
    assert_int_equal(tok->type, MSGPACK_OBJECT_BIN);
    assert_true(tok->via.bin.size >= 16);
    lim = rpc_map_get(f->res.result, "limits");
    assert_int_equal(rpc_map_get(lim, "max_refs")->via.u64, 4);
    assert_non_null(rpc_map_get(lim, "max_session_ttl"));
    assert_non_null(rpc_map_get(lim, "max_tokens_per_session"));
    assert_int_equal(rpc_map_get(f->res.result, "resumed")->type, MSGPACK_OBJECT_BOOLEAN);
    /* A resume token can never be valid here: fail loudly, never a new session. */
    begin(f, "hello", 1);
    msgpack_pack_map(&f->pk, 1);
    rpc_pack_cstr(&f->pk, "resume");
    msgpack_pack_bin_with_body(&f->pk, "0123456789abcdef", 16);
    assert_int_equal(end(f), RPC_ESESSION_EXPIRED);
}

static void create_get_stat(void **state)
{
    struct fx *f = *state;
    uint64_t a = create(f, "hello"), b;
    msgpack_packer *pk = begin(f, "create", 2);
    msgpack_pack_bin_with_body(pk, "x", 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), 0);
    b = result_uint(f);
    pk = begin(f, "get", 1);
    msgpack_pack_uint64(pk, b);
    assert_int_equal(end(f), 0);
    assert_int_equal(map_uint(f, "id"), b);
    assert_int_equal(map_uint(f, "refcount"), 1);
    assert_int_equal(rpc_map_get(f->res.result, "data")->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(rpc_map_get(f->res.result, "refs")->via.array.size, 2);
    pk = begin(f, "stat", 1);
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), 0);
    assert_int_equal(map_uint(f, "refcount"), 3);
    assert_int_equal(map_uint(f, "holds"), 1);
    assert_int_equal(map_uint(f, "internal"), 2);
    assert_int_equal(map_uint(f, "names"), 0);
    assert_int_equal(map_uint(f, "data_bytes"), 5);
    assert_int_equal(map_uint(f, "nrefs"), 0);
}

static void create_is_atomic(void **state)
{
    struct fx *f = *state;
    uint64_t a = create(f, "a");
    size_t objects = f->st.heap.objects;
    msgpack_packer *pk = begin(f, "create", 2);
    msgpack_pack_bin_with_body(pk, "x", 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, 999999); /* unknown */
    assert_int_equal(end(f), RPC_ENOT_FOUND);
    assert_int_equal(f->st.heap.objects, objects);
    assert_int_equal(heap_get(&f->st.heap, a)->internal, 0);
    /* Too many refs, too much data, wrong types. */
    pk = begin(f, "create", 2);
    msgpack_pack_nil(pk);
    msgpack_pack_array(pk, 0);
    assert_int_equal(end(f), RPC_EBAD_PARAMS);
    pk = begin(f, "create", 1);
    msgpack_pack_bin_with_body(pk, "0123456789abcdefXX", 18);
    assert_int_equal(end(f), RPC_ETOO_LARGE);
    pk = begin(f, "create", 2);
    msgpack_pack_bin_with_body(pk, "", 0);
    msgpack_pack_array(pk, 5);
    for (int i = 0; i < 5; i++)
        msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), RPC_ETOO_LARGE);
    assert_int_equal(f->st.heap.objects, objects);
    /* Out of memory at every allocation of a create: nothing changes, until
     * enough allocations succeed for the create to go through. */
    int created = 0;
    for (long k = 0; k < 6 && !created; k++) {
        pk = begin(f, "create", 2);
        msgpack_pack_bin_with_body(pk, "data", 4);
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint64(pk, a);
        buf_reserve(&f->out, 4096);
        mem_fail_after(k);
        int rc = end(f);
        mem_fail_after(-1);
        if (rc == 0) {
            pk = begin(f, "decref", 1);
            msgpack_pack_uint64(pk, result_uint(f));
            assert_int_equal(end(f), 0);
            created = 1;
            continue;
        }
        assert_int_equal(rc, RPC_EOUT_OF_MEMORY);
        assert_int_equal(f->st.heap.objects, objects);
        assert_int_equal(heap_get(&f->st.heap, a)->internal, 0);
    }
    assert_true(created);
}

static void decref_is_protected_and_atomic(void **state)
{
    struct fx *f = *state;
    uint64_t a = create(f, "a");
    msgpack_packer *pk = begin(f, "decref", 1);
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end_as(f, f->other), RPC_ENOT_HELD); /* not yours */
    pk = begin(f, "incref", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, 2);
    assert_int_equal(end(f), 0);
    assert_int_equal(result_uint(f), 3);
    pk = begin(f, "decref", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, 4);
    assert_int_equal(end(f), RPC_ENOT_HELD);
    assert_int_equal(heap_get(&f->st.heap, a)->holds, 3);
    pk = begin(f, "decref", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, 0);
    assert_int_equal(end(f), RPC_EBAD_PARAMS);
    pk = begin(f, "decref", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, 3);
    assert_int_equal(end(f), 0);
    assert_int_equal(result_uint(f), 0);
    assert_null(heap_get(&f->st.heap, a));
    pk = begin(f, "decref", 1);
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), RPC_ENOT_FOUND);
}

static void links_and_refs(void **state)
{
    struct fx *f = *state;
    uint64_t a = create(f, "a"), b = create(f, "b");
    msgpack_packer *pk;
    for (int i = 1; i <= 4; i++) {
        pk = begin(f, "link", 2);
        msgpack_pack_uint64(pk, a);
        msgpack_pack_uint64(pk, b);
        assert_int_equal(end(f), 0);
        assert_int_equal(result_uint(f), i);
    }
    pk = begin(f, "link", 2); /* max_refs is 4 */
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, b);
    assert_int_equal(end(f), RPC_ETOO_LARGE);
    pk = begin(f, "unlink", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, b);
    assert_int_equal(end(f), 0);
    assert_int_equal(result_uint(f), 3);
    pk = begin(f, "unlink", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), RPC_ENOT_FOUND);
    pk = begin(f, "referrers", 1);
    msgpack_pack_uint64(pk, b);
    assert_int_equal(end(f), 0);
    assert_int_equal(f->res.result->via.array.size, 1);
    assert_int_equal(f->res.result->via.array.ptr[0].via.u64, a);
    pk = begin(f, "set_refs", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint64(pk, 77777);
    assert_int_equal(end(f), RPC_ENOT_FOUND);
    assert_int_equal(obj_nrefs(heap_get(&f->st.heap, a)), 3); /* unchanged */
    pk = begin(f, "set_refs", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_array(pk, 0);
    assert_int_equal(end(f), 0);
    assert_int_equal(heap_get(&f->st.heap, b)->internal, 0);
    pk = begin(f, "set_data", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_str_with_body(pk, "new data", 8);
    assert_int_equal(end(f), 0);
    assert_int_equal(obj_data_len(heap_get(&f->st.heap, a)), 8);
}

static void names_and_lookup(void **state)
{
    struct fx *f = *state;
    uint64_t a = create(f, "a");
    msgpack_packer *pk = begin(f, "bind", 2);
    rpc_pack_cstr(pk, "jobs/1");
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), 0);
    pk = begin(f, "decref", 1); /* the name keeps it */
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), 0);
    pk = begin(f, "lookup", 2);
    rpc_pack_cstr(pk, "jobs/1");
    msgpack_pack_true(pk);
    assert_int_equal(end_as(f, f->other), 0);
    assert_int_equal(result_uint(f), a);
    assert_int_equal(sess_holds_on(&f->st, f->other, a), 1);
    pk = begin(f, "names", 1);
    rpc_pack_cstr(pk, "jobs/");
    assert_int_equal(end(f), 0);
    assert_int_equal(f->res.result->via.array.size, 1);
    assert_int_equal(f->res.result->via.array.ptr[0].via.array.ptr[1].via.u64, a);
    pk = begin(f, "lookup", 1);
    rpc_pack_cstr(pk, "nope");
    assert_int_equal(end(f), RPC_ENAME_NOT_FOUND);
    pk = begin(f, "bind", 2);
    rpc_pack_cstr(pk, "");
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), RPC_EBAD_PARAMS);
    pk = begin(f, "unbind", 1);
    rpc_pack_cstr(pk, "jobs/1");
    assert_int_equal(end(f), 0);
    pk = begin(f, "unbind", 1);
    rpc_pack_cstr(pk, "jobs/1");
    assert_int_equal(end(f), RPC_ENAME_NOT_FOUND);
}

static void gc_and_stats_shapes(void **state)
{
    struct fx *f = *state;
    uint64_t a = create(f, "a");
    msgpack_packer *pk = begin(f, "link", 2);
    const char *sections[] = {"server", "heap", "memory", "gc", "sessions", "ops"};
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), 0);
    pk = begin(f, "watch", 1);
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), 0);
    begin(f, "release_all", 0);
    assert_int_equal(end(f), 0);
    assert_int_equal(result_uint(f), 1);
    assert_non_null(heap_get(&f->st.heap, a)); /* a self-cycle */
    begin(f, "gc", 0);
    assert_int_equal(end(f), 0);
    assert_int_equal(map_uint(f, "collected"), 1);
    assert_non_null(rpc_map_get(f->res.result, "candidates"));
    assert_non_null(rpc_map_get(f->res.result, "examined"));
    assert_non_null(rpc_map_get(f->res.result, "duration_us"));
    assert_int_equal(f->notified, 1);
    begin(f, "stats", 0);
    assert_int_equal(end(f), 0);
    for (int i = 0; i < 6; i++)
        assert_non_null(rpc_map_get(f->res.result, sections[i]));
    assert_non_null(rpc_map_get(rpc_map_get(f->res.result, "heap"), "objects"));
    assert_non_null(rpc_map_get(rpc_map_get(f->res.result, "gc"), "max_pause_us"));
    assert_int_equal(rpc_map_get(rpc_map_get(f->res.result, "ops"), "gc")->via.u64, 1);
    /* A debug method is listed only where it is served (--debug-commands). */
    assert_null(rpc_map_get(rpc_map_get(f->res.result, "ops"), "debug_check"));
    assert_int_equal(rpc_map_get(rpc_map_get(f->res.result, "memory"), "gc_scratch_bytes")->via.u64,
                     0);
}

/* The collector's trial array is scratch outside common/mem: stats shows
 * its resident bytes while a sweep runs, and 0 once it has ended. */
static void stats_shows_gc_scratch(void **state)
{
    struct fx *f = *state;
    struct gc_result r;
    uint64_t a = create(f, "a");
    msgpack_packer *pk = begin(f, "link", 2);
    msgpack_pack_uint64(pk, a);
    msgpack_pack_uint64(pk, a);
    assert_int_equal(end(f), 0);
    begin(f, "release_all", 0);
    assert_int_equal(end(f), 0);
    /* A step at a time (budget 0): the collection starts, reaches a, ... */
    uint64_t seen = 0;
    int more;
    do {
        more = store_sweep(&f->st, 0, &r);
        begin(f, "stats", 0);
        assert_int_equal(end(f), 0);
        uint64_t v = rpc_map_get(rpc_map_get(f->res.result, "memory"), "gc_scratch_bytes")->via.u64;
        seen = v > seen ? v : seen;
    } while (more > 0);
    assert_true(seen > 0);
    assert_null(heap_get(&f->st.heap, a));
    begin(f, "stats", 0);
    assert_int_equal(end(f), 0);
    assert_int_equal(rpc_map_get(rpc_map_get(f->res.result, "memory"), "gc_scratch_bytes")->via.u64,
                     0);
}

/* stats and /metrics render one list: every counter is in both, with the
 * same value, and each metric family has one HELP and one TYPE line. */
static void stats_and_metrics_agree(void **state)
{
    struct fx *f = *state;
    struct buf text;
    char line[256];
    create(f, "a");
    buf_init(&text);
    begin(f, "stats", 0);
    assert_int_equal(end(f), 0);
    metrics_render(&f->env, &text);
    buf_append(&text, "", 1); /* a C string */
    for (int i = 0; i < stats_ncounters; i++) {
        const struct stats_counter *k = &stats_counters[i];
        const msgpack_object *sec = rpc_map_get(f->res.result, stats_section_names[k->section]);
        const msgpack_object *v = rpc_map_get(sec, k->key);
        size_t family;
        const char *p = text.data;
        int helps = 0;
        assert_non_null(v);
        if (!k->metric)
            continue; /* stats only (server.errors: /metrics has it by code) */
        family = strcspn(k->metric, "{");
        if (k->section == STATS_MEMORY || strcmp(k->key, "uptime_s") == 0) {
            /* (these may move between the two renderings, which allocate):
             * the sample is there, with any value */
            snprintf(line, sizeof(line), "\n%s ", k->metric);
            if (!strstr(text.data, line))
                fail_msg("/metrics lacks %s", k->metric);
        } else {
            snprintf(line, sizeof(line), "\n%s %llu\n", k->metric, (unsigned long long)v->via.u64);
            if (!strstr(text.data, line))
                fail_msg("/metrics lacks [%s] as in stats", line + 1);
        }
        snprintf(line, sizeof(line), "# HELP %.*s ", (int)family, k->metric);
        while ((p = strstr(p, line)) != NULL) {
            helps++;
            p++;
        }
        assert_int_equal(helps, 1);
    }
    buf_close(&text);
}

/* An object held once by f->s, made without the wire (for big heaps). */
static uint64_t mk_held(struct fx *f, const uint64_t *refs, uint32_t nrefs)
{
    uint64_t id;
    assert_int_equal(heap_create(&f->st.heap, "", 0, refs, nrefs, &id), 0);
    assert_int_equal(sess_incref(&f->st, f->s, id, 1, NULL), 0);
    return id;
}

/* why and referrers on a heap larger than one request may examine: why
 * says it stopped early, a plain referrers asks for a cursor, and paging
 * with one finds the referrer. Both used to walk the whole heap inside one
 * request, however large. */
static void queries_past_their_budget(void **state)
{
    struct fx *f = *state;
    enum { ROOTS = QUERY_WHY_BUDGET + 1000 };
    uint64_t leaf = mk_held(f, NULL, 0), t, mid, after, cursor = 0, found = 0;
    const msgpack_object *ids;
    msgpack_packer *pk;

    for (int i = 0; i < ROOTS; i++)
        mk_held(f, &leaf, 1);
    t = mk_held(f, NULL, 0);
    mid = mk_held(f, &t, 1);
    mk_held(f, &mid, 1);
    assert_int_equal(sess_decref(&f->st, f->s, t, 1, &after), 0);
    assert_int_equal(sess_decref(&f->st, f->s, mid, 1, &after), 0);

    pk = begin(f, "why", 1);
    msgpack_pack_uint64(pk, t);
    assert_int_equal(end(f), 0);
    assert_int_equal(rpc_map_get(f->res.result, "root")->via.str.size, 7); /* "unknown" */
    assert_memory_equal(rpc_map_get(f->res.result, "root")->via.str.ptr, "unknown", 7);
    assert_true(rpc_map_get(f->res.result, "incomplete")->via.boolean);
    assert_true(map_uint(f, "examined") <= QUERY_WHY_BUDGET);
    assert_int_equal(rpc_map_get(f->res.result, "path")->via.array.size, 0);

    pk = begin(f, "referrers", 1);
    msgpack_pack_uint64(pk, t);
    assert_int_equal(end(f), RPC_EQUOTA_EXCEEDED);
    pk = begin(f, "referrers", 2); /* a limit that is met needs no cursor */
    msgpack_pack_uint64(pk, leaf);
    msgpack_pack_uint64(pk, 3);
    assert_int_equal(end(f), 0);
    assert_int_equal(f->res.result->via.array.size, 3);
    do {
        pk = begin(f, "referrers", 3);
        msgpack_pack_uint64(pk, t);
        msgpack_pack_uint64(pk, 100);
        msgpack_pack_uint64(pk, cursor);
        assert_int_equal(end(f), 0);
        ids = rpc_map_get(f->res.result, "ids");
        for (uint32_t i = 0; i < ids->via.array.size; i++) {
            assert_int_equal(ids->via.array.ptr[i].via.u64, mid);
            found++;
        }
        cursor = map_uint(f, "cursor");
    } while (cursor != 0);
    assert_int_equal(found, 1);
}

/* The name and id of element i of a [[name, id], ...] array. */
static void pair_at(const msgpack_object *a, uint32_t i, const char **name, uint32_t *len)
{
    const msgpack_object *pair = &a->via.array.ptr[i];
    assert_int_equal(pair->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(pair->via.array.size, 2);
    assert_int_equal(rpc_obj_bytes(&pair->via.array.ptr[0], name, len), 0);
}

static void begin_names(struct fx *f, const char *prefix, uint64_t limit, const char *after,
                        uint32_t alen)
{
    msgpack_packer *pk = begin(f, "names", after ? 3 : 2);
    rpc_pack_cstr(pk, prefix);
    msgpack_pack_uint64(pk, limit);
    if (after)
        msgpack_pack_str_with_body(pk, after, alen);
}

/* names past what one request may return: the plain forms answer
 * QUOTA_EXCEEDED (never a silent part) unless the matches fit, and paging
 * with after returns every name once, in order, from any cursor. The plain
 * form used to return every match, however many, in one request. */
static void names_past_the_page_bound(void **state)
{
    struct fx *f = *state;
    enum { N = NAMES_PAGE_MAX + 500 };
    uint64_t o = create(f, "o"), seen = 0;
    char nm[32], last[32] = "";
    const msgpack_object *list, *next, *msg;
    const char *p;
    uint32_t len;
    msgpack_packer *pk;

    for (int i = 0; i < N; i++) {
        len = (uint32_t)snprintf(nm, sizeof(nm), "n/%06d", i);
        assert_int_equal(names_bind(&f->st.names, &f->st.heap, nm, len, o), 0);
    }
    pk = begin(f, "names", 1);
    rpc_pack_cstr(pk, "");
    assert_int_equal(end(f), RPC_EQUOTA_EXCEEDED);
    msg = rpc_map_get(f->res.error, "message"); /* it names the paging form */
    {
        char text[256] = "";
        memcpy(text, msg->via.str.ptr, msg->via.str.size < 255 ? msg->via.str.size : 255);
        assert_non_null(strstr(text, "names [prefix, limit, after]"));
    }
    begin_names(f, "n/", NAMES_PAGE_MAX + 1, NULL, 0);
    assert_int_equal(end(f), RPC_EQUOTA_EXCEEDED);
    begin_names(f, "n/", NAMES_PAGE_MAX, NULL, 0); /* a limit within the bound */
    assert_int_equal(end(f), 0);
    assert_int_equal(f->res.result->via.array.size, NAMES_PAGE_MAX);
    begin_names(f, "n/00", UINT64_MAX, NULL, 0); /* exactly the bound match: they fit */
    assert_int_equal(end(f), 0);
    assert_int_equal(f->res.result->via.array.size, 10000);
    pk = begin(f, "names", 1);
    rpc_pack_cstr(pk, "n/01002");
    assert_int_equal(end(f), 0);
    assert_int_equal(f->res.result->via.array.size, 10);

    /* Page through all of them with a limit above the bound: pages of
     * NAMES_PAGE_MAX, each name once and in order, next nil at the end. */
    do {
        begin_names(f, "", UINT64_MAX, last, (uint32_t)strlen(last));
        assert_int_equal(end(f), 0);
        list = rpc_map_get(f->res.result, "names");
        next = rpc_map_get(f->res.result, "next");
        assert_non_null(list);
        assert_non_null(next);
        assert_true(list->via.array.size <= NAMES_PAGE_MAX);
        for (uint32_t i = 0; i < list->via.array.size; i++) {
            pair_at(list, i, &p, &len);
            snprintf(nm, sizeof(nm), "n/%06llu", (unsigned long long)seen++);
            assert_int_equal(len, strlen(nm));
            assert_memory_equal(p, nm, len);
        }
        if (next->type != MSGPACK_OBJECT_NIL) {
            assert_int_equal(rpc_obj_bytes(next, &p, &len), 0);
            assert_true(len < sizeof(last));
            memcpy(last, p, len);
            last[len] = 0;
            assert_memory_equal(last, nm, len); /* the page's last name */
        }
    } while (next->type != MSGPACK_OBJECT_NIL);
    assert_int_equal(seen, N);

    /* From a cursor that is no name, within a prefix; the last page says done. */
    begin_names(f, "n/0104", 3, "n/0104505", 9);
    assert_int_equal(end(f), 0);
    list = rpc_map_get(f->res.result, "names");
    assert_int_equal(list->via.array.size, 3);
    pair_at(list, 0, &p, &len);
    assert_memory_equal(p, "n/010451", 8);
    assert_int_equal(rpc_obj_bytes(rpc_map_get(f->res.result, "next"), &p, &len), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(p, "n/010453", 8);
    begin_names(f, "n/0104", 3, "n/0104985", 9);
    assert_int_equal(end(f), 0);
    list = rpc_map_get(f->res.result, "names");
    assert_int_equal(list->via.array.size, 1);
    pair_at(list, 0, &p, &len);
    assert_memory_equal(p, "n/010499", 8);
    assert_int_equal(rpc_map_get(f->res.result, "next")->type, MSGPACK_OBJECT_NIL);

    /* Bad cursors. */
    begin_names(f, "", 0, "", 0);
    assert_int_equal(end(f), RPC_EBAD_PARAMS); /* a page of nothing */
    pk = begin(f, "names", 3);
    rpc_pack_cstr(pk, "");
    msgpack_pack_uint64(pk, 5);
    msgpack_pack_uint64(pk, 5);
    assert_int_equal(end(f), RPC_EBAD_PARAMS); /* not a str */
    {
        char big[NAME_MAX_BYTES + 1];
        memset(big, 'n', sizeof(big));
        begin_names(f, "", 5, big, sizeof(big));
        assert_int_equal(end(f), RPC_EBAD_PARAMS);
        begin_names(f, "", 5, big, NAME_MAX_BYTES);
        assert_int_equal(end(f), 0);
    }
}

/* The role each method needs is the table's (SPEC section 10), and a call
 * below it is PERMISSION_DENIED before anything else is looked at (here
 * with no parameters at all, which would be BAD_PARAMS) and changes
 * nothing. */
static void roles_refuse_first(void **state)
{
    static const char *const read_ok[] = {"hello",     "ping", "get",   "stat",  "lookup", "names",
                                          "referrers", "why",  "watch", "stats", "cluster"};
    static const char *const admin_only[] = {
        "gc",          "save",         "cluster_add", "cluster_remove", "cluster_transfer",
        "debug_check", "debug_digest", "slowlog",     "slowlog_reset"};
    struct fx *f = *state;
    struct user u = {.name = "u"};
    uint64_t objects = f->st.heap.objects, id;
    int refused = 0;

    for (int i = 0; i < cmd_count(); i++) {
        enum role want = ROLE_WRITE;
        for (size_t k = 0; k < sizeof(read_ok) / sizeof(read_ok[0]); k++)
            want = strcmp(cmd_name(i), read_ok[k]) == 0 ? ROLE_READ : want;
        for (size_t k = 0; k < sizeof(admin_only) / sizeof(admin_only[0]); k++)
            want = strcmp(cmd_name(i), admin_only[k]) == 0 ? ROLE_ADMIN : want;
        if (cmd_min_role(i) != want)
            fail_msg("%s needs %s, not %s", cmd_name(i), role_name(want),
                     role_name(cmd_min_role(i)));
    }
    f->env.debug_commands = 1;
    for (enum role r = ROLE_READ; r <= ROLE_ADMIN; r++) {
        u.role = r;
        as_user = &u;
        for (int i = 0; i < cmd_count(); i++) {
            if (cmd_min_role(i) <= r)
                continue;
            begin(f, cmd_name(i), 0);
            assert_int_equal(end(f), RPC_EPERMISSION_DENIED);
            refused++;
        }
    }
    as_user = NULL;
    f->env.debug_commands = 0;
    assert_int_equal(refused, 2 * 9 + 12); /* read: write's 12 and admin's 9; write: admin's */
    assert_int_equal(f->st.heap.objects, objects);
    /* lookup with acquire needs write; a prefix confines the name. */
    begin(f, "create", 1);
    msgpack_pack_bin_with_body(&f->pk, "x", 1);
    assert_int_equal(end(f), 0);
    id = f->res.result->via.u64;
    begin(f, "bind", 2);
    rpc_pack_cstr(&f->pk, "jobs/x");
    msgpack_pack_uint64(&f->pk, id);
    assert_int_equal(end(f), 0);
    u.role = ROLE_READ;
    as_user = &u;
    begin(f, "lookup", 2);
    rpc_pack_cstr(&f->pk, "jobs/x");
    msgpack_pack_true(&f->pk);
    assert_int_equal(end(f), RPC_EPERMISSION_DENIED);
    u.names = "other/";
    u.names_len = 6;
    begin(f, "lookup", 1);
    rpc_pack_cstr(&f->pk, "jobs/x");
    assert_int_equal(end(f), RPC_EPERMISSION_DENIED);
    u.names = "jobs/";
    u.names_len = 5;
    begin(f, "lookup", 1);
    rpc_pack_cstr(&f->pk, "jobs/x");
    assert_int_equal(end(f), 0);
    as_user = NULL;
    begin(f, "unbind", 1);
    rpc_pack_cstr(&f->pk, "jobs/x");
    assert_int_equal(end(f), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(ping_and_unknown),
        T(hello_result),
        T(create_get_stat),
        T(create_is_atomic),
        T(decref_is_protected_and_atomic),
        T(links_and_refs),
        T(names_and_lookup),
        T(hello_makes_the_session_or_nothing),
        T(gc_and_stats_shapes),
        T(stats_and_metrics_agree),
        T(queries_past_their_budget),
        T(names_past_the_page_bound),
        T(stats_shows_gc_scratch),
        T(roles_refuse_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
