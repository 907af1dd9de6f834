/* store_walk: read-only walks over the store for the snapshot writer (see
 * store.h). Its own file, as check.c is, because it reads the store's
 * private records (store_priv.h) and must follow their layout. */
#include "store.h"
#include "store_priv.h"

int store_next_share(const struct store *st, uint32_t *pos, const uint8_t **token, uint64_t *id,
                     uint64_t *deadline_ms, uint32_t *ttl_s, uint64_t *maker)
{
    uint64_t k, v;
    const struct share *sh;
    if (!u64map_next(&st->shares, pos, &k, &v))
        return 0;
    sh = PTR(v);
    *token = sh->token;
    *id = sh->id;
    *deadline_ms = sh->ttl.deadline_ms;
    *ttl_s = sh->ttl_s;
    *maker = sh->sess_id;
    return 1;
}

struct sess *store_next_sess(const struct store *st, uint32_t *pos)
{
    uint64_t k, v;
    return u64map_next(&st->sessions, pos, &k, &v) ? PTR(v) : NULL;
}

int sess_next_hold(const struct sess *s, uint32_t *pos, uint64_t *id, uint64_t *n)
{
    if (!s->ending)
        return u64map_next(&s->holds, pos, id, n);
    /* store_expire releases the entries of releasing in map order from
     * rel_pos on (leaving them in place, or set to 0), so what is still
     * counted is from rel_pos, less the zeros. */
    if (*pos < s->rel_pos)
        *pos = s->rel_pos;
    while (u64map_next(&s->releasing, pos, id, n)) {
        if (*n)
            return 1;
    }
    return 0;
}
