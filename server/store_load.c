/* store_load: rebuilding a store from a snapshot's records (see the
 * "loading" part of store.h). It restores state that was already admitted,
 * so no quota applies, and it counts holds straight into the structures
 * sess_incref keeps, without the checks a request needs; what it cannot
 * trust (a damaged file) it verifies instead, and every error is damage.
 * It is not the journal's replay: that is the apply layer's. Its own file,
 * as check.c is, because it writes the store's private records. */
#include "store.h"
#include "store_priv.h"
#include "mem.h"
#include "err.h"

#include <string.h>

static uint64_t token_key(const uint8_t *token)
{
    uint64_t k;
    memcpy(&k, token, sizeof(k));
    return k;
}

int store_load_sess(struct store *st, uint64_t id, const uint8_t *token, uint32_t ttl_s, int ending,
                    const char *client, uint32_t client_len, struct sess **out)
{
    struct sess *s;
    int rc;

    /* A client name is kept NUL-terminated and cut before any NUL. */
    if (client_len >= sizeof(s->client) || (client_len && memchr(client, 0, client_len)))
        return RPC_EBAD_PARAMS;
    if ((rc = sess_new_at(st, id, token, &s)) < 0)
        return rc;
    s->ttl_s = ttl_s;
    if (client_len)
        memcpy(s->client, client, client_len);
    if (ending) {
        /* As end_session leaves it: no longer resumable, its extra holds
         * (store_load_holds) in releasing from the start, queued for
         * store_expire to release, and counted as detached until then. */
        u64map_del(&st->by_token, token_key(s->token));
        s->ending = 1;
        s->rel_pos = 0;
        s->next_ending = NULL;
        if (st->ending_tail)
            st->ending_tail->next_ending = s;
        else
            st->ending = s;
        st->ending_tail = s;
        st->sessions_detached++;
    }
    *out = s;
    return 0;
}

int store_load_obj(struct store *st, uint64_t id, struct sess *owner, const void *data,
                   uint32_t len, const void *refs, uint32_t nrefs)
{
    struct heap *h = &st->heap;
    uint32_t slot = heap_slot_of(id);
    int rc;

    if (owner && owner->nowned == owner->owned_cap) {
        uint32_t cap = owner->owned_cap ? owner->owned_cap * 2 : 64;
        uint32_t *p;
        if (owner->owned_cap > UINT32_MAX / 2)
            return RPC_EOUT_OF_MEMORY;
        p = mem_realloc(owner->owned, (size_t)owner->owned_cap * sizeof(*p),
                        (size_t)cap * sizeof(*p));
        if (!p)
            return RPC_EOUT_OF_MEMORY;
        owner->owned = p;
        owner->owned_cap = cap;
    }
    if ((rc = heap_load_obj(h, id, data, len, refs, nrefs)) < 0)
        return rc;
    if (owner) {
        /* The owner's one hold: what sess_incref does when it takes the
         * ownership of an object nobody owns. */
        h->owner[slot] = owner->idx;
        owner->owned[owner->nowned++] = slot;
        owner->owned_live++;
        owner->nholds++;
        heap_get(h, id)->holds = 1;
    }
    return 0;
}

int store_load_holds(struct store *st, struct sess *s, uint64_t id, uint64_t n)
{
    struct u64map *m = s->ending ? &s->releasing : &s->holds;
    struct obj *o = heap_get(&st->heap, id);
    uint64_t *v;
    int created;

    if (!o || n == 0 || n > UINT32_MAX - o->holds)
        return RPC_EBAD_PARAMS;
    if (!(v = u64map_put(m, id, &created)))
        return RPC_EOUT_OF_MEMORY;
    if (!created) /* one pair per object */
        return RPC_EBAD_PARAMS;
    *v = n;
    o->holds += (uint32_t)n;
    s->nholds += n;
    return 0;
}

int store_load_name(struct store *st, const char *name, uint32_t len, uint64_t id)
{
    int rc;
    if (names_validate(name, len) < 0 || !heap_get(&st->heap, id) ||
        names_find(&st->names, name, len)) /* names_bind would rebind it */
        return RPC_EBAD_PARAMS;
    rc = names_bind(&st->names, &st->heap, name, len, id);
    return rc == RPC_EQUOTA_EXCEEDED ? RPC_EBAD_PARAMS : rc;
}

int store_load_share(struct store *st, const uint8_t *token, uint64_t id, uint32_t ttl_s,
                     uint64_t maker, uint64_t now_ms)
{
    uint64_t per_sess = st->lim.max_session_tokens, all = st->lim.max_tokens;
    int rc;

    if (ttl_s == 0 || !heap_get(&st->heap, id))
        return RPC_EBAD_PARAMS;
    /* A token made under the limits of its day is kept even if they were
     * lowered since: the limits stop new tokens only. */
    st->lim.max_session_tokens = st->lim.max_tokens = 0;
    rc = share_new_at(st, maker, token, id, ttl_s, now_ms);
    st->lim.max_session_tokens = per_sess;
    st->lim.max_tokens = all;
    return rc == RPC_EQUOTA_EXCEEDED ? RPC_EBAD_PARAMS : rc;
}

int store_load_finish(struct store *st, uint64_t next_sess_id)
{
    int rc;
    /* sess_new_at raised next_sess_id past every session loaded. */
    if (next_sess_id == 0 || st->next_sess_id > next_sess_id)
        return RPC_EBAD_PARAMS;
    st->next_sess_id = next_sess_id;
    if ((rc = heap_load_finish(&st->heap)) < 0)
        return rc;
    return 0;
}
