/* cmd_object: the methods on objects themselves (create, get, set_data,
 * set_refs, link, unlink, incref, decref, stat, watch). */
#include "apply.h"
#include "cmd_int.h"
#include "heap.h"
#include "mem.h"
#include "store.h"

int cmd_do_create(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    const char *data;
    uint32_t len, nrefs = 0;
    uint64_t *refs = NULL, id;
    struct rec rec = {0};
    int rc;

    if ((rc = cmd_arg_data(c, &a[0], &data, &len)) < 0)
        return rc;
    if (n == 2 && (rc = cmd_arg_refs(c, &a[1], &refs, &nrefs)) < 0)
        return rc;
    if ((rc = cmd_check_maxmemory(c, CMD_GROW_BASE_BYTES + (uint64_t)len + 8ull * nrefs)) < 0) {
        cmd_free_ids(refs, nrefs);
        return rc;
    }
    /* The id is decided here and the record says it; the apply layer
     * refuses (quota, memory) before the object exists. */
    rec.type = REC_CREATE;
    rec.id = id = heap_next_id(&st->heap);
    rec.sess = c->sess->id;
    rec.bytes = (const uint8_t *)data;
    rec.nbytes = len;
    rec.items = refs;
    rec.nitems = nrefs;
    if ((rc = cmd_change(c, &rec, NULL)) == 0)
        msgpack_pack_uint64(&c->pk, id);
    cmd_free_ids(refs, nrefs);
    return rc;
}

int cmd_do_get(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    msgpack_packer *pk = &c->pk;
    const uint64_t *refs;
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0)
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

int cmd_do_set_data(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const char *data;
    uint32_t len;
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (rc = cmd_arg_data(c, &a[1], &data, &len)) < 0 ||
        (rc = cmd_check_maxmemory(c, CMD_GROW_BASE_BYTES + (uint64_t)len)) < 0)
        return rc;
    struct rec rec = {
        .type = REC_SET_DATA, .id = id, .bytes = (const uint8_t *)data, .nbytes = len};
    if ((rc = cmd_change(c, &rec, NULL)) < 0)
        return rc;
    msgpack_pack_nil(&c->pk);
    return 0;
}

int cmd_do_set_refs(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    uint64_t *refs, id;
    uint32_t nrefs;
    struct obj *o;
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (rc = cmd_arg_refs(c, &a[1], &refs, &nrefs)) < 0)
        return rc;
    struct rec rec = {.type = REC_SET_REFS, .id = id, .items = refs, .nitems = nrefs};
    rc = cmd_change(c, &rec, NULL);
    cmd_free_ids(refs, nrefs);
    if (rc == 0)
        msgpack_pack_nil(&c->pk);
    return rc;
}

int cmd_do_link(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct obj *o, *t;
    uint64_t id, tid;
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (rc = cmd_arg_obj(c, &a[1], "target", &t, &tid)) < 0)
        return rc;
    if (obj_nrefs(o) >= c->env->st->lim.max_refs)
        return cmd_fail(c, RPC_ETOO_LARGE, "object %llu already has max_refs (%u) refs",
                        (unsigned long long)id, c->env->st->lim.max_refs);
    struct rec rec = {.type = REC_LINK, .id = id, .target = tid};
    struct apply_out out;
    if ((rc = cmd_change(c, &rec, &out)) < 0)
        return rc;
    msgpack_pack_uint32(&c->pk, out.len);
    return 0;
}

int cmd_do_unlink(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct obj *o;
    uint64_t id, target;
    struct apply_out out;
    struct rec rec = {.type = REC_UNLINK};
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (rc = cmd_arg_id(c, &a[1], "target", &target)) < 0)
        return rc;
    rec.id = id;
    rec.target = target;
    rc = cmd_change(c, &rec, &out);
    if (rc == RPC_ENOT_FOUND)
        return cmd_fail(c, RPC_ENOT_FOUND, "object %llu has no ref to %llu", (unsigned long long)id,
                        (unsigned long long)target);
    if (rc < 0)
        return rc;
    msgpack_pack_uint32(&c->pk, out.len);
    return 0;
}

int cmd_do_incref(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    uint32_t cnt = 1;
    uint64_t after, id;
    struct obj *o;
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (n == 2 && (rc = cmd_arg_count(c, &a[1], &cnt)) < 0))
        return rc;
    struct rec rec = {.type = REC_HOLD, .sess = c->sess->id, .id = id, .a = cnt};
    struct apply_out out;
    (void)after;
    if ((rc = cmd_change(c, &rec, &out)) < 0)
        return rc;
    msgpack_pack_uint64(&c->pk, out.after);
    return 0;
}

int cmd_do_decref(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    uint32_t cnt = 1;
    uint64_t id, after;
    int rc;
    if ((rc = cmd_arg_id(c, &a[0], "id", &id)) < 0 ||
        (n == 2 && (rc = cmd_arg_count(c, &a[1], &cnt)) < 0))
        return rc;
    struct rec rec = {.type = REC_DROP, .sess = c->sess->id, .id = id, .a = cnt};
    struct apply_out out;
    rc = cmd_change(c, &rec, &out);
    after = out.after;
    if (rc == RPC_ENOT_HELD)
        return cmd_fail(c, rc, "this session holds %llu reference(s) to %llu, not %u",
                        (unsigned long long)sess_holds_on(c->env->st, c->sess, id),
                        (unsigned long long)id, cnt);
    if (rc == RPC_ENOT_FOUND)
        return cmd_fail(c, rc, "no object %llu", (unsigned long long)id);
    if (rc < 0)
        return rc;
    msgpack_pack_uint64(&c->pk, after);
    return 0;
}

int cmd_do_stat(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    msgpack_packer *pk = &c->pk;
    struct heap *h = &c->env->st->heap;
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0)
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

int cmd_do_watch(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0 ||
        (rc = sess_watch(c->env->st, c->sess, id)) < 0)
        return rc;
    msgpack_pack_nil(&c->pk);
    return 0;
}
