/* apply: a journal record's change to a store (see apply.h). */
#include "apply.h"
#include "err.h"
#include "heap.h"
#include "mem.h"
#include "names.h"

#include <string.h>

/* A record's ids as an aligned array: in place when they are, else a copy
 * (records read from a file sit at any offset). *copy is what to free. */
static const uint64_t *ids_of(const struct rec *r, uint64_t **copy)
{
    *copy = NULL;
    if (r->nitems == 0 || ((uintptr_t)r->items & 7) == 0)
        return r->items;
    if (!(*copy = mem_alloc(r->nitems * 8)))
        return NULL;
    memcpy(*copy, r->items, r->nitems * 8);
    return *copy;
}

static struct sess *live_sess(const struct store *st, uint64_t id)
{
    struct sess *s = sess_find(st, id);
    return s && !s->ending ? s : NULL;
}

static int apply_create(struct store *st, const struct rec *r)
{
    struct sess *s = live_sess(st, r->sess);
    uint64_t *copy;
    const uint64_t *refs;
    int rc;

    if (!s || r->nitems > UINT32_MAX)
        return RPC_EBAD_PARAMS;
    if (!(refs = ids_of(r, &copy)) && r->nitems)
        return RPC_EOUT_OF_MEMORY;
    if ((rc = heap_check_ids(&st->heap, refs, (uint32_t)r->nitems)) == 0 &&
        (rc = sess_can_hold(st, s, 1)) == 0 && (rc = sess_reserve(st, s)) == 0 &&
        (rc = heap_create_at(&st->heap, r->id, r->bytes, r->nbytes, refs, (uint32_t)r->nitems)) ==
            0)
        rc = sess_incref(st, s, r->id, 1, NULL); /* reserved: cannot fail */
    mem_free(copy, r->nitems * 8);
    return rc;
}

static int apply_set_refs(struct store *st, const struct rec *r)
{
    uint64_t *copy;
    const uint64_t *refs;
    int rc;
    if (!heap_get(&st->heap, r->id))
        return RPC_ENOT_FOUND;
    if (r->nitems > UINT32_MAX)
        return RPC_EBAD_PARAMS;
    if (!(refs = ids_of(r, &copy)) && r->nitems)
        return RPC_EOUT_OF_MEMORY;
    if ((rc = heap_check_ids(&st->heap, refs, (uint32_t)r->nitems)) == 0)
        rc = heap_set_refs(&st->heap, r->id, refs, (uint32_t)r->nitems);
    mem_free(copy, r->nitems * 8);
    return rc;
}

/* GC_GARBAGE flags a set; GC_FREE flags what is not flagged yet (a whole
 * set in one record) and then frees the list in its order, releasing refs
 * as the live collector's frees do. Garbage has no holds, names or tokens. */
static int apply_gc(struct store *st, const struct rec *r)
{
    struct heap *h = &st->heap;
    for (uint64_t i = 0; i < r->nitems; i++) {
        uint64_t id = rec_u64(r, i);
        struct obj *o = heap_get_any(h, id);
        if (!o || o->holds || (obj_flags(o) & OBJ_EXTRA) ||
            (r->type == REC_GC_GARBAGE && (obj_flags(o) & OBJ_GARBAGE)))
            return RPC_EBAD_PARAMS;
        obj_set_flag(o, OBJ_GARBAGE);
    }
    if (r->type == REC_GC_FREE)
        for (uint64_t i = 0; i < r->nitems; i++)
            heap_free_garbage(h, rec_u64(r, i));
    return 0;
}

int apply_record(struct store *st, const struct rec *r, uint64_t now_ms, int replay,
                 struct apply_out *out)
{
    struct heap *h = &st->heap;
    struct apply_out ignored;
    struct sess *s = NULL;
    uint64_t id;
    int rc;

    if (!out)
        out = &ignored;
    switch (r->type) {
    case REC_CREATE:
        return apply_create(st, r);
    case REC_HOLD:
    case REC_DROP:
        if (!(s = live_sess(st, r->sess)) || r->a == 0 || r->a > UINT32_MAX)
            return RPC_EBAD_PARAMS;
        if (!heap_get(h, r->id))
            return RPC_ENOT_FOUND;
        if (r->type == REC_HOLD)
            return sess_incref(st, s, r->id, (uint32_t)r->a, &out->after);
        return sess_decref(st, s, r->id, (uint32_t)r->a, &out->after);
    case REC_SET_DATA:
        if (!heap_get(h, r->id))
            return RPC_ENOT_FOUND;
        return heap_set_data(h, r->id, r->bytes, r->nbytes);
    case REC_SET_REFS:
        return apply_set_refs(st, r);
    case REC_LINK:
        if (!heap_get(h, r->id) || !heap_get(h, r->target))
            return RPC_ENOT_FOUND;
        if ((rc = heap_can_incr(h, r->target, CNT_INTERNAL, 1)) < 0)
            return rc;
        return heap_link(h, r->id, r->target, &out->len);
    case REC_UNLINK:
        if (!heap_get(h, r->id))
            return RPC_ENOT_FOUND;
        return heap_unlink(h, r->id, r->target, &out->len);
    case REC_BIND:
        if (!heap_get(h, r->id))
            return RPC_ENOT_FOUND;
        return names_bind(&st->names, h, (const char *)r->bytes, r->nbytes, r->id);
    case REC_UNBIND:
        return names_unbind(&st->names, h, (const char *)r->bytes, r->nbytes) < 0
                   ? RPC_ENAME_NOT_FOUND
                   : 0;
    case REC_SHARE:
        if (!live_sess(st, r->sess) || r->a > UINT32_MAX)
            return RPC_EBAD_PARAMS;
        if (!heap_get(h, r->id))
            return RPC_ENOT_FOUND;
        return share_new_at(st, r->sess, r->token, r->id, (uint32_t)r->a, now_ms);
    case REC_CLAIM:
        if (!(s = live_sess(st, r->sess)))
            return RPC_EBAD_PARAMS;
        /* A replayed claim was in time: the journal says when tokens ended. */
        if ((rc = share_claim(st, s, r->token, REC_TOKEN_BYTES, replay ? 0 : now_ms, &id)) < 0)
            return rc;
        out->after = id;
        return id == r->id ? 0 : RPC_EBAD_PARAMS;
    case REC_SHARE_EXPIRE:
        for (uint64_t i = 0; i < r->nitems; i++)
            if ((rc = share_expire_token(st, rec_token_at(r, i))) < 0)
                return rc;
        return 0;
    case REC_SESS_NEW: {
        uint32_t len = r->nbytes < sizeof(s->client) ? r->nbytes : sizeof(s->client) - 1;
        if ((rc = sess_new_at(st, r->sess, r->token, &s)) < 0)
            return rc;
        memcpy(s->client, r->bytes, len);
        s->client[len] = '\0';
        s->journaled = 1;
        return 0;
    }
    case REC_SESS_LEASE:
        if (!(s = live_sess(st, r->sess)) || r->a > UINT32_MAX)
            return RPC_EBAD_PARAMS;
        s->ttl_s = (uint32_t)r->a;
        return 0;
    case REC_SESS_CLOSE:
        if (!(s = sess_find(st, r->sess)) || s->conn)
            return RPC_EBAD_PARAMS;
        if (s->ending)
            sess_end_done(st, s);
        else
            sess_end(st, s, 0);
        return 0;
    case REC_SESS_END:
        if (!(s = live_sess(st, r->sess)) || s->conn)
            return RPC_EBAD_PARAMS;
        sess_end(st, s, 1);
        return 0;
    case REC_SESS_RELEASE:
        if (!(s = sess_find(st, r->sess)) || !s->ending)
            return RPC_EBAD_PARAMS;
        return sess_release_pairs(st, s, r->items, r->nitems);
    case REC_RELEASE_ALL:
        if (!(s = live_sess(st, r->sess)))
            return RPC_EBAD_PARAMS;
        out->after = sess_release_all(st, s);
        return 0;
    case REC_GC_FREE:
    case REC_GC_GARBAGE:
        return apply_gc(st, r);
    default:
        return RPC_EBAD_PARAMS; /* a snapshot record */
    }
}
