/* cmd_query: the diagnostic queries (why, referrers), which read the
 * graph and change nothing. */
#include "cmd_int.h"
#include "mem.h"
#include "store.h"
#include "u64map.h"

#include <string.h>

/* Scans the whole heap: O(objects). There is no reverse index, to keep
 * objects small; referrers is a diagnostic, not a hot path. */
int cmd_do_referrers(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct heap *h = &c->env->st->heap;
    struct buf tmp;
    msgpack_packer tpk;
    uint64_t limit, found = 0, tid, id;
    struct obj *t;
    int rc;

    if ((rc = cmd_arg_obj(c, &a[0], "id", &t, &tid)) < 0 ||
        (rc = cmd_arg_limit(c, a, n, 1, &limit)) < 0)
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
            cmd_pack_str(pk, name ? name : "", nlen);
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
int cmd_do_why(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    struct heap *h = &st->heap;
    struct u64map parent; /* visited id -> parent id (0 for a root) */
    uint64_t *queue = NULL, *path = NULL, id, sess = 0, visits = 0, qcap = 0;
    size_t head = 0, tail = 0;
    const char *kind;
    struct obj *o;
    int rc, found = 0;

    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0)
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
            rc = cmd_fail(c, RPC_EQUOTA_EXCEEDED, "why gave up after visiting %d objects",
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
