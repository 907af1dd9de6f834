/* cmd: method table and handlers (see cmd.h). */
#include "cmd.h"
#include "check.h"
#include "gc.h"
#include "mem.h"
#include "pool.h"
#include "rpc_err.h"
#include "rpc_pack.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef const msgpack_object arg_t;
typedef int (*cmd_fn)(struct cmd_ctx *c, arg_t *a, uint32_t n);

static int fail(struct cmd_ctx *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct cmd_ctx *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errbuf, sizeof(c->errbuf), fmt, ap);
    va_end(ap);
    c->errmsg = c->errbuf;
    return err;
}

/* ---- parameter readers: each fails with a message naming the parameter ---- */

static int arg_id(struct cmd_ctx *c, arg_t *a, const char *what, uint64_t *id)
{
    *id = 0;
    if (a->type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->via.u64 == 0)
        return fail(c, RPC_EBAD_PARAMS, "%s must be an object id (a positive integer)", what);
    *id = a->via.u64;
    return 0;
}

/* An id that must name a live object: *id, and the object in *o (valid
 * until the heap next changes). */
static int arg_obj(struct cmd_ctx *c, arg_t *a, const char *what, struct obj **o, uint64_t *id)
{
    int rc;
    *o = NULL;
    if ((rc = arg_id(c, a, what, id)) < 0)
        return rc;
    *o = heap_get(&c->env->st->heap, *id);
    if (!*o)
        return fail(c, RPC_ENOT_FOUND, "no object %llu", (unsigned long long)*id);
    return 0;
}

static int arg_count(struct cmd_ctx *c, arg_t *a, uint32_t *n)
{
    if (a->type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->via.u64 == 0 || a->via.u64 > UINT32_MAX)
        return fail(c, RPC_EBAD_PARAMS, "n must be an integer from 1 to %u", UINT32_MAX);
    *n = (uint32_t)a->via.u64;
    return 0;
}

static int arg_limit(struct cmd_ctx *c, arg_t *a, uint32_t n, uint32_t i, uint64_t *limit)
{
    *limit = UINT64_MAX;
    if (i >= n)
        return 0;
    if (a[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fail(c, RPC_EBAD_PARAMS, "limit must be a non-negative integer");
    *limit = a[i].via.u64;
    return 0;
}

static int arg_data(struct cmd_ctx *c, arg_t *a, const char **p, uint32_t *len)
{
    *p = NULL;
    *len = 0;
    if (rpc_obj_bytes(a, p, len) < 0)
        return fail(c, RPC_EBAD_PARAMS, "data must be bin or str");
    if (*len > c->env->st->lim.max_data_bytes)
        return fail(c, RPC_ETOO_LARGE, "data of %u bytes is over max_data_bytes (%u)", *len,
                    c->env->st->lim.max_data_bytes);
    return 0;
}

static int arg_name(struct cmd_ctx *c, arg_t *a, const char **p, uint32_t *len)
{
    *p = NULL;
    *len = 0;
    if (a->type != MSGPACK_OBJECT_STR || names_validate(a->via.str.ptr, a->via.str.size) < 0)
        return fail(c, RPC_EBAD_PARAMS, "name must be a str of 1 to %d bytes of valid UTF-8",
                    NAME_MAX_BYTES);
    *p = a->via.str.ptr;
    *len = a->via.str.size;
    return 0;
}

/* An array of ids that all name live objects, copied into a fresh array
 * (*ids, to be released with mem_free(*ids, *n * 8)). */
static int arg_refs(struct cmd_ctx *c, arg_t *a, uint64_t **ids, uint32_t *n)
{
    struct heap *h = &c->env->st->heap;
    uint32_t cnt;
    uint64_t *v;

    *ids = NULL;
    *n = 0;
    if (a->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, RPC_EBAD_PARAMS, "refs must be an array of object ids");
    cnt = a->via.array.size;
    if (cnt > c->env->st->lim.max_refs)
        return fail(c, RPC_ETOO_LARGE, "%u refs is over max_refs (%u)", cnt,
                    c->env->st->lim.max_refs);
    for (uint32_t i = 0; i < cnt; i++) {
        arg_t *e = &a->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 == 0)
            return fail(c, RPC_EBAD_PARAMS, "refs[%u] is not an object id", i);
        if (!heap_get(h, e->via.u64))
            return fail(c, RPC_ENOT_FOUND, "refs[%u]: no object %llu", i,
                        (unsigned long long)e->via.u64);
    }
    if (cnt == 0)
        return 0;
    v = mem_alloc((size_t)cnt * sizeof(*v));
    if (!v)
        return RPC_EOUT_OF_MEMORY;
    for (uint32_t i = 0; i < cnt; i++)
        v[i] = a->via.array.ptr[i].via.u64;
    *ids = v;
    *n = cnt;
    return 0;
}

static void free_ids(uint64_t *ids, uint32_t n)
{
    mem_free(ids, (size_t)n * sizeof(*ids));
}

/* What a growing request allocates besides its data and refs (an object
 * header, a hash slot, a name entry): an estimate, so that once a request
 * with no payload is refused, every growing request is. */
#define GROW_BASE_BYTES 64

/* RPC_EOUT_OF_MEMORY if adding `more` bytes would pass maxmemory. */
static int check_maxmemory(struct cmd_ctx *c, uint64_t more)
{
    uint64_t max = c->env->st->lim.maxmemory, used = mem_heap_bytes();
    if (max && (used >= max || more > max - used))
        return fail(c, RPC_EOUT_OF_MEMORY,
                    "maxmemory (%llu bytes) reached: only reads and frees are served",
                    (unsigned long long)max);
    return 0;
}

/* ---- handlers ---- */

static void pack_bytes_as_str(msgpack_packer *pk, const char *p, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, p, n);
}

static int do_hello(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    msgpack_packer *pk = &c->pk;
    struct sess *s = c->sess;
    arg_t *ttl = NULL, *client = NULL, *resume = NULL;
    int rc, resumed = 0;

    if (n == 1 && a[0].type != MSGPACK_OBJECT_MAP && a[0].type != MSGPACK_OBJECT_NIL)
        return fail(c, RPC_EBAD_PARAMS, "hello takes one map of options");
    if (n == 1 && a[0].type == MSGPACK_OBJECT_MAP) {
        ttl = rpc_map_get(&a[0], "ttl");
        client = rpc_map_get(&a[0], "client");
        resume = rpc_map_get(&a[0], "resume");
        if (ttl && ttl->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return fail(c, RPC_EBAD_PARAMS, "ttl must be a non-negative integer (seconds)");
        if (client && client->type != MSGPACK_OBJECT_STR)
            return fail(c, RPC_EBAD_PARAMS, "client must be a str");
        if (resume && resume->type != MSGPACK_OBJECT_BIN && resume->type != MSGPACK_OBJECT_STR)
            return fail(c, RPC_EBAD_PARAMS, "resume must be the token (bin) from hello");
    }
    if (c->env->auth) {
        arg_t *auth = n == 1 && a[0].type == MSGPACK_OBJECT_MAP ? rpc_map_get(&a[0], "auth") : NULL;
        const char *p;
        uint32_t len;
        volatile unsigned char diff;
        if (!auth || rpc_obj_bytes(auth, &p, &len) < 0)
            return fail(c, RPC_EAUTH_REQUIRED, "this server requires hello {\"auth\": token}");
        /* Constant time in the content; only the length may show. */
        diff = len != c->env->auth_len;
        for (uint32_t i = 0; i < len; i++)
            diff |= (unsigned char)(p[i] ^ c->env->auth[i % c->env->auth_len]);
        if (diff) {
            c->close_after = 1;
            return fail(c, RPC_EAUTH_FAILED, "wrong auth token; closing");
        }
        *c->authed = 1;
    }
    if (resume) {
        struct sess *r;
        const char *tok;
        uint32_t len;
        void *conn = s->conn;
        rpc_obj_bytes(resume, &tok, &len);
        if ((rc = sess_resume(st, tok, len, &r)) == RPC_ESESSION_BUSY)
            return fail(c, rc, "that session is attached to another connection");
        if (rc < 0)
            return fail(c, rc, "no such session: its lease expired, or the server restarted");
        if (r != s) {
            /* This connection's own session gives way (with any holds it
             * took before resuming) and the resumed one takes its place. */
            s->conn = NULL;
            sess_free(st, s);
            s = c->sess = r;
            s->conn = conn;
            st->sessions_detached--;
            st->sessions_resumed++;
            resumed = 1;
        }
    }
    if (ttl)
        s->ttl_s = (uint32_t)(ttl->via.u64 < st->lim.max_session_ttl ? ttl->via.u64
                                                                     : st->lim.max_session_ttl);
    if (client) {
        uint32_t len = client->via.str.size;
        if (len >= sizeof(s->client))
            len = sizeof(s->client) - 1;
        if (len) /* an empty str's ptr may be NULL */
            memcpy(s->client, client->via.str.ptr, len);
        s->client[len] = '\0';
    }
    msgpack_pack_map(pk, 7);
    rpc_pack_kv_uint(pk, "protocol", 1);
    rpc_pack_cstr(pk, "server");
    rpc_pack_cstr(pk, "rcstored " RCS_VERSION);
    rpc_pack_kv_uint(pk, "session", s->id);
    rpc_pack_cstr(pk, "token");
    msgpack_pack_bin(pk, SESS_TOKEN_BYTES);
    msgpack_pack_bin_body(pk, s->token, SESS_TOKEN_BYTES);
    rpc_pack_cstr(pk, "resumed");
    if (resumed)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    rpc_pack_kv_uint(pk, "ttl", s->ttl_s);
    rpc_pack_cstr(pk, "limits");
    msgpack_pack_map(pk, 4);
    rpc_pack_kv_uint(pk, "max_data_bytes", st->lim.max_data_bytes);
    rpc_pack_kv_uint(pk, "max_refs", st->lim.max_refs);
    rpc_pack_kv_uint(pk, "max_message_bytes", st->lim.max_message_bytes);
    rpc_pack_kv_uint(pk, "max_session_ttl", st->lim.max_session_ttl);
    return 0;
}

static int do_ping(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    rpc_pack_cstr(&c->pk, "pong");
    return 0;
}

static int do_create(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    const char *data;
    uint32_t len, nrefs = 0;
    uint64_t *refs = NULL, id;
    int rc;

    if ((rc = arg_data(c, &a[0], &data, &len)) < 0)
        return rc;
    if (n == 2 && (rc = arg_refs(c, &a[1], &refs, &nrefs)) < 0)
        return rc;
    if ((rc = check_maxmemory(c, GROW_BASE_BYTES + (uint64_t)len + 8ull * nrefs)) < 0) {
        free_ids(refs, nrefs);
        return rc;
    }
    /* Everything that can refuse comes before the object exists. */
    if ((rc = sess_can_hold(st, c->sess, 1)) == 0 && (rc = sess_reserve(st, c->sess)) == 0 &&
        (rc = heap_create(&st->heap, data, len, refs, nrefs, &id)) == 0) {
        rc = sess_incref(st, c->sess, id, 1, NULL);
        /* Reserved above, and a new object cannot overflow. */
        if (rc == 0)
            msgpack_pack_uint64(&c->pk, id);
    }
    free_ids(refs, nrefs);
    return rc;
}

static int do_get(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    msgpack_packer *pk = &c->pk;
    const uint64_t *refs;
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0)
        return rc;
    refs = obj_refs(o);
    msgpack_pack_map(pk, 4);
    rpc_pack_kv_uint(pk, "id", id);
    rpc_pack_cstr(pk, "data");
    msgpack_pack_bin(pk, obj_data_len(o));
    msgpack_pack_bin_body(pk, obj_data(o), obj_data_len(o));
    rpc_pack_cstr(pk, "refs");
    msgpack_pack_array(pk, obj_nrefs(o));
    for (uint32_t i = 0; i < obj_nrefs(o); i++)
        msgpack_pack_uint64(pk, refs[i]);
    rpc_pack_kv_uint(pk, "refcount", heap_refcount(&c->env->st->heap, o, id));
    return 0;
}

static int do_set_data(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const char *data;
    uint32_t len;
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0 || (rc = arg_data(c, &a[1], &data, &len)) < 0 ||
        (rc = check_maxmemory(c, GROW_BASE_BYTES + (uint64_t)len)) < 0)
        return rc;
    if ((rc = heap_set_data(&c->env->st->heap, id, data, len)) < 0)
        return rc;
    msgpack_pack_nil(&c->pk);
    return 0;
}

static int do_set_refs(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    uint64_t *refs, id;
    uint32_t nrefs;
    struct obj *o;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0 || (rc = arg_refs(c, &a[1], &refs, &nrefs)) < 0)
        return rc;
    rc = heap_set_refs(&c->env->st->heap, id, refs, nrefs);
    free_ids(refs, nrefs);
    if (rc == 0)
        msgpack_pack_nil(&c->pk);
    return rc;
}

static int do_link(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct heap *h = &c->env->st->heap;
    struct obj *o, *t;
    uint64_t id, tid;
    uint32_t len;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (rc = arg_obj(c, &a[1], "target", &t, &tid)) < 0)
        return rc;
    if (obj_nrefs(o) >= c->env->st->lim.max_refs)
        return fail(c, RPC_ETOO_LARGE, "object %llu already has max_refs (%u) refs",
                    (unsigned long long)id, c->env->st->lim.max_refs);
    if ((rc = heap_can_incr(h, tid, CNT_INTERNAL, 1)) < 0 || (rc = heap_link(h, id, tid, &len)) < 0)
        return rc;
    msgpack_pack_uint32(&c->pk, len);
    return 0;
}

static int do_unlink(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct obj *o;
    uint64_t id, target;
    uint32_t len;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (rc = arg_id(c, &a[1], "target", &target)) < 0)
        return rc;
    rc = heap_unlink(&c->env->st->heap, id, target, &len);
    if (rc == RPC_ENOT_FOUND)
        return fail(c, RPC_ENOT_FOUND, "object %llu has no ref to %llu", (unsigned long long)id,
                    (unsigned long long)target);
    if (rc < 0)
        return rc;
    msgpack_pack_uint32(&c->pk, len);
    return 0;
}

static int do_incref(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    uint32_t cnt = 1;
    uint64_t after, id;
    struct obj *o;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (n == 2 && (rc = arg_count(c, &a[1], &cnt)) < 0))
        return rc;
    if ((rc = sess_incref(c->env->st, c->sess, id, cnt, &after)) < 0)
        return rc;
    msgpack_pack_uint64(&c->pk, after);
    return 0;
}

static int do_decref(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    uint32_t cnt = 1;
    uint64_t id, after;
    int rc;
    if ((rc = arg_id(c, &a[0], "id", &id)) < 0 || (n == 2 && (rc = arg_count(c, &a[1], &cnt)) < 0))
        return rc;
    rc = sess_decref(c->env->st, c->sess, id, cnt, &after);
    if (rc == RPC_ENOT_HELD)
        return fail(c, rc, "this session holds %llu reference(s) to %llu, not %u",
                    (unsigned long long)sess_holds_on(c->env->st, c->sess, id),
                    (unsigned long long)id, cnt);
    if (rc == RPC_ENOT_FOUND)
        return fail(c, rc, "no object %llu", (unsigned long long)id);
    msgpack_pack_uint64(&c->pk, after);
    return 0;
}

static int do_stat(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    msgpack_packer *pk = &c->pk;
    struct heap *h = &c->env->st->heap;
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0)
        return rc;
    msgpack_pack_map(pk, 7);
    rpc_pack_kv_uint(pk, "refcount", heap_refcount(h, o, id));
    rpc_pack_kv_uint(pk, "holds", o->holds);
    rpc_pack_kv_uint(pk, "names", heap_names(h, o, id));
    rpc_pack_kv_uint(pk, "internal", o->internal);
    rpc_pack_kv_uint(pk, "tokens", heap_tokens(h, o, id));
    rpc_pack_kv_uint(pk, "data_bytes", obj_data_len(o));
    rpc_pack_kv_uint(pk, "nrefs", obj_nrefs(o));
    return 0;
}

static int do_bind(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const char *name;
    uint32_t len;
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = arg_name(c, &a[0], &name, &len)) < 0 || (rc = arg_obj(c, &a[1], "id", &o, &id)) < 0)
        return rc;
    if ((rc = names_bind(&c->env->st->names, &c->env->st->heap, name, len, id)) < 0)
        return rc;
    msgpack_pack_nil(&c->pk);
    return 0;
}

static int name_not_found(struct cmd_ctx *c, const char *name, uint32_t len)
{
    return fail(c, RPC_ENAME_NOT_FOUND, "no name \"%.*s\"", (int)(len > 64 ? 64 : len), name);
}

static int do_unbind(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const char *name;
    uint32_t len;
    int rc;
    if ((rc = arg_name(c, &a[0], &name, &len)) < 0)
        return rc;
    if (names_unbind(&c->env->st->names, &c->env->st->heap, name, len) < 0)
        return name_not_found(c, name, len);
    msgpack_pack_nil(&c->pk);
    return 0;
}

static int do_lookup(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    const struct name_ent *e;
    const char *name;
    uint32_t len;
    int rc, acquire = 0;

    if ((rc = arg_name(c, &a[0], &name, &len)) < 0)
        return rc;
    if (n == 2) {
        if (a[1].type != MSGPACK_OBJECT_BOOLEAN)
            return fail(c, RPC_EBAD_PARAMS, "acquire must be a boolean");
        acquire = a[1].via.boolean;
    }
    if (!(e = names_find(&st->names, name, len)))
        return name_not_found(c, name, len);
    if (acquire && (rc = check_maxmemory(c, GROW_BASE_BYTES)) < 0)
        return rc;
    if (acquire && (rc = sess_incref(st, c->sess, e->id, 1, NULL)) < 0)
        return rc;
    msgpack_pack_uint64(&c->pk, e->id);
    return 0;
}

static int do_names(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const struct name_ent **list;
    const char *prefix = "";
    uint32_t plen = 0;
    uint64_t limit, count, cap;
    int rc;

    if (n >= 1 && rpc_obj_bytes(&a[0], &prefix, &plen) < 0)
        return fail(c, RPC_EBAD_PARAMS, "prefix must be a str");
    if ((rc = arg_limit(c, a, n, 1, &limit)) < 0)
        return rc;
    if ((rc = names_list(&c->env->st->names, prefix, plen, limit, &list, &count, &cap)) < 0)
        return rc;
    msgpack_pack_array(&c->pk, count);
    for (uint64_t i = 0; i < count; i++) {
        msgpack_pack_array(&c->pk, 2);
        pack_bytes_as_str(&c->pk, list[i]->name, list[i]->len);
        msgpack_pack_uint64(&c->pk, list[i]->id);
    }
    mem_free(list, cap * sizeof(*list));
    return 0;
}

/* Scans the whole heap: O(objects). There is no reverse index, to keep
 * objects small; referrers is a diagnostic, not a hot path. */
static int do_referrers(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct heap *h = &c->env->st->heap;
    struct buf tmp;
    msgpack_packer tpk;
    uint64_t limit, found = 0, tid, id;
    struct obj *t;
    int rc;

    if ((rc = arg_obj(c, &a[0], "id", &t, &tid)) < 0 || (rc = arg_limit(c, a, n, 1, &limit)) < 0)
        return rc;
    /* The array header needs the count first: pack the ids aside, then copy. */
    buf_init(&tmp);
    rpc_packer_init(&tpk, &tmp);
    for (uint32_t i = 0; i < h->nslots && found < limit && t->internal > 0; i++) {
        struct obj *o = heap_slot(h, i, &id);
        const uint64_t *refs;
        if (!o || !heap_get(h, id))
            continue; /* (garbage found, waiting to be freed, is gone already) */
        refs = obj_refs(o);
        for (uint32_t k = 0; k < obj_nrefs(o); k++) {
            if (refs[k] == tid) {
                msgpack_pack_uint64(&tpk, id);
                found++;
                break;
            }
        }
    }
    if (tmp.oom) {
        buf_close(&tmp);
        return RPC_EOUT_OF_MEMORY;
    }
    msgpack_pack_array(&c->pk, found);
    buf_append(c->out, tmp.data, tmp.len);
    buf_close(&tmp);
    return 0;
}

static int do_watch(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (rc = sess_watch(c->env->st, c->sess, id)) < 0)
        return rc;
    msgpack_pack_nil(&c->pk);
    return 0;
}

/* why: objects a search may visit before it gives up, so that one request
 * cannot stall the loop on a huge heap. */
#define WHY_MAX_VISITS 1000000

/* The root kind of an object that is a root itself, or NULL. For a session
 * hold, *sess gets a session holding it. */
static const char *root_kind(const struct store *st, const struct obj *o, uint64_t id,
                             uint64_t *sess)
{
    if (o->holds > 0) {
        *sess = store_holder(st, id);
        return "session";
    }
    if (heap_names(&st->heap, o, id) > 0)
        return "name";
    if (heap_tokens(&st->heap, o, id) > 0)
        return "token";
    return NULL;
}

/* The result map for a path whose first object is a root of the given kind. */
static void pack_why(struct cmd_ctx *c, const char *kind, uint64_t sess, const uint64_t *path,
                     uint32_t len)
{
    struct store *st = c->env->st;
    msgpack_packer *pk = &c->pk;
    const char *name = NULL;
    uint32_t nlen = 0;

    if (kind && strcmp(kind, "name") == 0) {
        /* A name bound to the path's first object: walk the names once. */
        const struct name_ent **list;
        uint64_t count, cap;
        if (names_list(&st->names, "", 0, UINT64_MAX, &list, &count, &cap) == 0) {
            for (uint64_t i = 0; i < count && !name; i++)
                if (list[i]->id == path[0]) {
                    name = list[i]->name;
                    nlen = list[i]->len;
                }
            msgpack_pack_map(pk, 3);
            rpc_pack_cstr(pk, "root");
            rpc_pack_cstr(pk, "name");
            rpc_pack_cstr(pk, "name");
            pack_bytes_as_str(pk, name ? name : "", nlen);
            mem_free(list, cap * sizeof(*list));
            goto path;
        }
    }
    msgpack_pack_map(pk, kind && strcmp(kind, "session") == 0 ? 3 : 2);
    rpc_pack_cstr(pk, "root");
    rpc_pack_cstr(pk, kind ? kind : "none");
    if (kind && strcmp(kind, "session") == 0)
        rpc_pack_kv_uint(pk, "session", sess);
path:
    rpc_pack_cstr(pk, "path");
    msgpack_pack_array(pk, len);
    for (uint32_t i = 0; i < len; i++)
        msgpack_pack_uint64(pk, path[i]);
}

/* A shortest path from a root: breadth first from every root at once,
 * remembering each object's parent; the first time the target is reached
 * the path is shortest. At most WHY_MAX_VISITS objects are visited. */
static int do_why(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    struct heap *h = &st->heap;
    struct u64map parent; /* visited id -> parent id (0 for a root) */
    uint64_t *queue = NULL, *path = NULL, id, sess = 0, visits = 0, qcap = 0;
    size_t head = 0, tail = 0;
    const char *kind;
    struct obj *o;
    int rc, found = 0;

    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0)
        return rc;
    if ((kind = root_kind(st, o, id, &sess)) != NULL) {
        pack_why(c, kind, sess, &id, 1);
        return 0;
    }
    u64map_init(&parent);
    /* Level 0: every root. */
    for (uint32_t i = 0; i < h->nslots; i++) {
        uint64_t rid;
        struct obj *r = heap_slot(h, i, &rid);
        if (!r || !(r->holds > 0 || (obj_flags(r) & OBJ_EXTRA)) || obj_nrefs(r) == 0)
            continue;
        if (tail == qcap) {
            uint64_t cap = qcap ? qcap * 2 : 1024, *q;
            if (!(q = mem_realloc(queue, qcap * 8, cap * 8)))
                goto oom;
            queue = q;
            qcap = cap;
        }
        if (!u64map_put(&parent, rid, NULL))
            goto oom;
        queue[tail++] = rid;
    }
    while (head < tail && !found) {
        uint64_t cur = queue[head++];
        struct obj *co = heap_get(h, cur);
        const uint64_t *refs = obj_refs(co);
        if (++visits > WHY_MAX_VISITS) {
            rc = fail(c, RPC_EQUOTA_EXCEEDED, "why gave up after visiting %d objects",
                      WHY_MAX_VISITS);
            goto out;
        }
        for (uint32_t k = 0; k < obj_nrefs(co) && !found; k++) {
            int created;
            uint64_t *p = u64map_put(&parent, refs[k], &created);
            if (!p)
                goto oom;
            if (!created)
                continue;
            *p = cur;
            if (refs[k] == id) {
                found = 1;
                break;
            }
            if (tail == qcap) {
                uint64_t cap = qcap * 2, *q;
                if (!(q = mem_realloc(queue, qcap * 8, cap * 8)))
                    goto oom;
                queue = q;
                qcap = cap;
            }
            queue[tail++] = refs[k];
        }
    }
    if (!found) {
        /* Alive only through a garbage cycle that awaits collection. */
        pack_why(c, NULL, 0, NULL, 0);
        rc = 0;
        goto out;
    }
    {
        uint32_t len = 0, i = 0;
        for (uint64_t x = id; x; x = *u64map_get(&parent, x))
            len++;
        if (!(path = mem_alloc((size_t)len * 8)))
            goto oom;
        for (uint64_t x = id; x; x = *u64map_get(&parent, x))
            path[len - 1 - i++] = x;
        kind = root_kind(st, heap_get(h, path[0]), path[0], &sess);
        pack_why(c, kind, sess, path, len);
        mem_free(path, (size_t)len * 8);
        rc = 0;
    }
    goto out;
oom:
    rc = RPC_EOUT_OF_MEMORY;
out:
    u64map_close(&parent);
    mem_free(queue, qcap * 8);
    return rc;
}

/* Default life of a share token, in seconds (clamped to max_session_ttl). */
#define SHARE_TTL_DEFAULT 60

static int do_share(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    uint8_t token[SESS_TOKEN_BYTES];
    uint64_t id, ttl = SHARE_TTL_DEFAULT;
    struct obj *o;
    int rc;
    if ((rc = arg_obj(c, &a[0], "id", &o, &id)) < 0)
        return rc;
    if (n == 2) {
        if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 == 0)
            return fail(c, RPC_EBAD_PARAMS, "ttl must be a positive integer (seconds)");
        ttl = a[1].via.u64;
    }
    if (ttl > st->lim.max_session_ttl)
        ttl = st->lim.max_session_ttl;
    if ((rc = share_new(st, id, (uint32_t)ttl, c->env->now_ms, token)) < 0)
        return rc;
    msgpack_pack_bin(&c->pk, sizeof(token));
    msgpack_pack_bin_body(&c->pk, token, sizeof(token));
    return 0;
}

static int do_claim(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const char *tok;
    uint32_t len;
    uint64_t id;
    int rc;
    if (rpc_obj_bytes(&a[0], &tok, &len) < 0)
        return fail(c, RPC_EBAD_PARAMS, "token must be the bin that share returned");
    rc = share_claim(c->env->st, c->sess, tok, len, c->env->now_ms, &id);
    if (rc == RPC_ETOKEN_INVALID)
        return fail(c, rc, "token unknown, already claimed, or expired");
    if (rc < 0)
        return rc;
    msgpack_pack_uint64(&c->pk, id);
    return 0;
}

static int do_release_all(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    msgpack_pack_uint64(&c->pk, sess_release_all(c->env->st, c->sess));
    return 0;
}

static int do_gc(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    struct gc_result r;
    int rc;
    if ((rc = store_collect(st, &r)) < 0)
        return rc;
    msgpack_pack_map(&c->pk, 4);
    rpc_pack_kv_uint(&c->pk, "collected", r.collected);
    rpc_pack_kv_uint(&c->pk, "candidates", r.candidates);
    rpc_pack_kv_uint(&c->pk, "examined", r.examined);
    rpc_pack_kv_uint(&c->pk, "duration_us", r.duration_us);
    return 0;
}

/* The memory section: process RSS, what the heap occupies, and the pool
 * allocator's arenas, pools and size classes (only classes in use). */
static void pack_memory(msgpack_packer *pk, const struct store *st)
{
    struct pool_stats ps;
    uint32_t nclasses = 0;

    pool_get_stats(&ps);
    for (int i = 0; i < POOL_NCLASSES; i++)
        nclasses += ps.cls[i].pools > 0;
    msgpack_pack_map(pk, 14);
    rpc_pack_kv_uint(pk, "rss_bytes", mem_rss_bytes());
    rpc_pack_kv_uint(pk, "heap_bytes", mem_heap_bytes());
    rpc_pack_kv_uint(pk, "data_bytes", st->heap.data_bytes);
    rpc_pack_kv_uint(pk, "requested_bytes", mem_used());
    rpc_pack_kv_uint(pk, "large_bytes", mem_large_bytes());
    rpc_pack_kv_uint(pk, "maxmemory", st->lim.maxmemory);
    rpc_pack_kv_uint(pk, "id_table_slots", st->heap.nslots);
    rpc_pack_kv_uint(pk, "gc_scratch_bytes", gc_scratch_bytes(&st->heap));
    rpc_pack_kv_uint(pk, "arenas", ps.arenas);
    rpc_pack_kv_uint(pk, "arenas_returned", ps.arenas_returned);
    rpc_pack_kv_uint(pk, "arena_bytes", ps.bytes_mapped);
    rpc_pack_kv_uint(pk, "pools_used", ps.pools_used);
    rpc_pack_kv_uint(pk, "pools_free", ps.pools_free);
    rpc_pack_cstr(pk, "classes");
    msgpack_pack_array(pk, nclasses);
    for (int i = 0; i < POOL_NCLASSES; i++) {
        if (ps.cls[i].pools == 0)
            continue;
        msgpack_pack_map(pk, 4);
        rpc_pack_kv_uint(pk, "size", ps.cls[i].size);
        rpc_pack_kv_uint(pk, "pools", ps.cls[i].pools);
        rpc_pack_kv_uint(pk, "used", ps.cls[i].used);
        rpc_pack_kv_uint(pk, "free", ps.cls[i].free);
    }
}

static int do_stats(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct cmd_env *env = c->env;
    struct store *st = env->st;
    msgpack_packer *pk = &c->pk;
    uint64_t sessions = store_session_count(st), now = (uint64_t)time(NULL);
    uint64_t errors = env->bad_requests;
    int ncmd = cmd_count();

    msgpack_pack_map(pk, 6);
    for (int i = 0; i < ncmd; i++)
        errors += env->errors[i];
    rpc_pack_cstr(pk, "server");
    msgpack_pack_map(pk, 9);
    rpc_pack_cstr(pk, "version");
    rpc_pack_cstr(pk, RCS_VERSION);
    rpc_pack_kv_uint(pk, "uptime_s", now > env->start_time ? now - env->start_time : 0);
    rpc_pack_kv_uint(pk, "connections", env->connections);
    rpc_pack_kv_uint(pk, "connections_total", env->connections_total);
    rpc_pack_kv_uint(pk, "connections_refused", env->connections_refused);
    rpc_pack_kv_uint(pk, "connections_timed_out", env->connections_timed_out);
    rpc_pack_kv_uint(pk, "bad_requests", env->bad_requests);
    rpc_pack_kv_uint(pk, "errors", errors);
    rpc_pack_kv_uint(pk, "pid", (uint64_t)getpid());

    rpc_pack_cstr(pk, "heap");
    msgpack_pack_map(pk, 6);
    rpc_pack_kv_uint(pk, "objects", st->heap.objects);
    rpc_pack_kv_uint(pk, "data_bytes", st->heap.data_bytes);
    rpc_pack_kv_uint(pk, "refs", st->heap.refs);
    rpc_pack_kv_uint(pk, "names", st->names.count);
    rpc_pack_kv_uint(pk, "freed_refcount", st->heap.freed[FREE_REFCOUNT]);
    rpc_pack_kv_uint(pk, "freed_cycle", st->heap.freed[FREE_CYCLE]);

    rpc_pack_cstr(pk, "memory");
    pack_memory(pk, st);

    rpc_pack_cstr(pk, "gc");
    msgpack_pack_map(pk, 14);
    rpc_pack_kv_uint(pk, "collections", st->gc.collections);
    rpc_pack_kv_uint(pk, "collected", st->gc.collected);
    rpc_pack_kv_uint(pk, "candidates", st->heap.ncand);
    rpc_pack_kv_uint(pk, "threshold", st->gc.threshold);
    rpc_pack_kv_uint(pk, "total_us", st->gc.total_us);
    rpc_pack_kv_uint(pk, "last_pause_us", st->gc.last_pause_us);
    rpc_pack_kv_uint(pk, "max_pause_us", st->gc.max_pause_us);
    rpc_pack_kv_uint(pk, "full_collections", st->gc.full);
    rpc_pack_kv_uint(pk, "slices", st->gc.slices);
    rpc_pack_kv_uint(pk, "restarts", st->gc.restarts);
    rpc_pack_kv_uint(pk, "touched", st->gc.touched);
    rpc_pack_kv_uint(pk, "pending_free", gc_pending(&st->heap));
    rpc_pack_kv_uint(pk, "interval_ms", env->gc_interval_ms);
    rpc_pack_cstr(pk, "pauses");
    {
        static const char *const names[GC_PAUSE_BUCKETS] = {"le_100us", "le_1ms", "le_10ms",
                                                            "le_100ms", "le_1s",  "gt_1s"};
        msgpack_pack_map(pk, GC_PAUSE_BUCKETS);
        for (int i = 0; i < GC_PAUSE_BUCKETS; i++)
            rpc_pack_kv_uint(pk, names[i], st->gc.pauses[i]);
    }

    rpc_pack_cstr(pk, "sessions");
    msgpack_pack_map(pk, 4);
    rpc_pack_kv_uint(pk, "attached", sessions - st->sessions_detached);
    rpc_pack_kv_uint(pk, "detached", st->sessions_detached);
    rpc_pack_kv_uint(pk, "expired", st->sessions_expired);
    rpc_pack_kv_uint(pk, "resumed", st->sessions_resumed);

    rpc_pack_cstr(pk, "ops");
    msgpack_pack_map(pk, (size_t)ncmd);
    for (int i = 0; i < ncmd; i++)
        rpc_pack_kv_uint(pk, cmd_name(i), env->calls[i]);
    return 0;
}

/* debug_check: the invariant check (check.h), "ok" or INTERNAL with the
 * first violation. Served only with --debug-commands. */
static int do_debug_check(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    (void)a;
    (void)n;
    if (store_check(c->env->st, c->errbuf, sizeof(c->errbuf)) < 0) {
        c->errmsg = c->errbuf;
        return RPC_EINTERNAL;
    }
    rpc_pack_cstr(&c->pk, "ok");
    return 0;
}

/* ---- the table ---- */

enum cmd_flag {
    /* May grow the heap: refused with OUT_OF_MEMORY once maxmemory is
     * reached, so that reads and frees keep working. */
    CMD_GROWS = 1,
    /* Unknown unless the server runs with --debug-commands. */
    CMD_DEBUG = 2,
};

#define CMD(name) name, sizeof(name) - 1

static const struct cmd_def {
    const char *name;
    uint8_t name_len;
    cmd_fn fn;
    uint8_t min_args, max_args;
    uint8_t flags;
} cmds[] = {
    {CMD("hello"), do_hello, 0, 1, 0},
    {CMD("ping"), do_ping, 0, 0, 0},
    {CMD("create"), do_create, 1, 2, CMD_GROWS},
    {CMD("get"), do_get, 1, 1, 0},
    {CMD("set_data"), do_set_data, 2, 2, CMD_GROWS},
    {CMD("set_refs"), do_set_refs, 2, 2, CMD_GROWS},
    {CMD("link"), do_link, 2, 2, CMD_GROWS},
    {CMD("unlink"), do_unlink, 2, 2, 0},
    {CMD("incref"), do_incref, 1, 2, CMD_GROWS},
    {CMD("decref"), do_decref, 1, 2, 0},
    {CMD("stat"), do_stat, 1, 1, 0},
    {CMD("bind"), do_bind, 2, 2, CMD_GROWS},
    {CMD("unbind"), do_unbind, 1, 1, 0},
    {CMD("lookup"), do_lookup, 1, 2, 0},
    {CMD("names"), do_names, 0, 2, 0},
    {CMD("referrers"), do_referrers, 1, 2, 0},
    {CMD("watch"), do_watch, 1, 1, CMD_GROWS},
    {CMD("release_all"), do_release_all, 0, 0, 0},
    {CMD("share"), do_share, 1, 2, CMD_GROWS},
    {CMD("claim"), do_claim, 1, 1, CMD_GROWS},
    {CMD("why"), do_why, 1, 1, 0},
    {CMD("gc"), do_gc, 0, 0, 0},
    {CMD("stats"), do_stats, 0, 0, 0},
    {CMD("debug_check"), do_debug_check, 0, 0, CMD_DEBUG},
};

_Static_assert(sizeof(cmds) / sizeof(cmds[0]) <= CMD_MAX, "raise CMD_MAX");

int cmd_count(void)
{
    return (int)(sizeof(cmds) / sizeof(cmds[0]));
}

const char *cmd_name(int i)
{
    return cmds[i].name;
}

/* The table is short and the hot methods come first: a linear scan that
 * compares the first byte and the length before the bytes costs less than
 * hashing the name. */
static int lookup(const char *name, uint32_t len)
{
    if (len == 0 || len > 16)
        return -1;
    for (int i = 0; i < cmd_count(); i++) {
        if (cmds[i].name[0] == name[0] && cmds[i].name_len == len &&
            memcmp(cmds[i].name, name, len) == 0)
            return i;
    }
    return -1;
}

void cmd_ctx_init(struct cmd_ctx *c, struct cmd_env *env, struct sess *s, int *authed,
                  struct buf *out)
{
    c->env = env;
    c->sess = s;
    c->authed = authed;
    c->close_after = 0;
    c->out = out;
    c->errmsg = NULL;
    rpc_packer_init(&c->pk, out);
}

int cmd_dispatch(struct cmd_ctx *c, const struct rpc_message *m)
{
    size_t mark = c->out->len;
    int i = lookup(m->method, m->method_len);
    int rc;

    c->errmsg = NULL;
    if (i >= 0 && (cmds[i].flags & CMD_DEBUG) && !c->env->debug_commands)
        i = -1;
    if (i < 0) {
        c->env->bad_requests++;
        rc = fail(c, RPC_EUNKNOWN_METHOD, "unknown method \"%.*s\"",
                  (int)(m->method_len > 64 ? 64 : m->method_len), m->method);
        goto error;
    }
    c->env->calls[i]++;
    if (!*c->authed && cmds[i].fn != do_hello && cmds[i].fn != do_ping) {
        rc = fail(c, RPC_EAUTH_REQUIRED, "authenticate first: hello {\"auth\": token}");
        goto counted_error;
    }
    if (m->nparams < cmds[i].min_args || m->nparams > cmds[i].max_args) {
        if (cmds[i].min_args == cmds[i].max_args)
            rc = fail(c, RPC_EBAD_PARAMS, "%s takes %u parameter(s), got %u", cmds[i].name,
                      cmds[i].min_args, m->nparams);
        else
            rc = fail(c, RPC_EBAD_PARAMS, "%s takes %u to %u parameters, got %u", cmds[i].name,
                      cmds[i].min_args, cmds[i].max_args, m->nparams);
        goto counted_error;
    }
    if ((cmds[i].flags & CMD_GROWS) && (rc = check_maxmemory(c, GROW_BASE_BYTES)) < 0)
        goto counted_error;
    rpc_pack_response_ok(&c->pk, m->msgid);
    rc = cmds[i].fn(c, m->params, m->nparams);
    if (rc == 0)
        return 0;
    buf_truncate(c->out, mark);
counted_error:
    c->env->errors[i]++;
error:
    rpc_pack_response_error(&c->pk, 1, m->msgid, rc, c->errmsg);
    return rc;
}
