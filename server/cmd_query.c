/* cmd_query: the diagnostic queries (why, referrers), which read the
 * graph and change nothing. The searches are in query.c; here the
 * parameters are read and the results packed. A user with a names prefix
 * sees "(hidden)" for why's root name when that name is outside its prefix
 * (the path of ids is shown: ids are not confined); referrers answers ids
 * only and is the same for every user. */
#include "cmd_int.h"
#include "query.h"

/* What why says for a root name outside the user's names prefix (the
 * parentheses tell it from the usual names; docs/protocol.md). */
#define WHY_HIDDEN_NAME "(hidden)"

int cmd_do_referrers(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct heap *h = &c->env->st->heap;
    struct referrers_result r;
    uint64_t limit, cursor = 0, tid;
    struct obj *t;
    int rc;

    if ((rc = cmd_arg_obj(c, &a[0], "id", &t, &tid)) < 0 ||
        (rc = cmd_arg_limit(c, a, n, 1, &limit)) < 0)
        return rc;
    if (n == 3) {
        if (a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return cmd_fail(c, RPC_EBAD_PARAMS, "cursor must be a non-negative integer");
        if (limit == 0)
            return cmd_fail(c, RPC_EBAD_PARAMS, "limit must be at least 1 with a cursor");
        cursor = a[2].via.u64;
    }
    if ((rc = query_referrers(h, tid, limit, cursor, QUERY_REFERRERS_BUDGET, &r)) < 0)
        return rc;
    if (n < 3 && r.next != 0 && r.n < limit) {
        query_referrers_done(&r);
        return cmd_fail(c, RPC_EQUOTA_EXCEEDED,
                        "referrers examined %llu of %u slots, as many as one call may: page with "
                        "referrers [id, limit, cursor] from cursor 0",
                        (unsigned long long)r.work, h->nslots);
    }
    if (n == 3) {
        msgpack_pack_map(&c->pk, 2);
        rpc_pack_cstr(&c->pk, "ids");
    }
    msgpack_pack_array(&c->pk, r.n);
    for (uint32_t i = 0; i < r.n; i++)
        msgpack_pack_uint64(&c->pk, r.ids[i]);
    if (n == 3)
        rpc_pack_kv_uint(&c->pk, "cursor", r.next);
    query_referrers_done(&r);
    return 0;
}

int cmd_do_why(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    static const char *const kinds[] = {
        [WHY_SESSION] = "session", [WHY_NAME] = "name",       [WHY_TOKEN] = "token",
        [WHY_NONE] = "none",       [WHY_UNKNOWN] = "unknown",
    };
    msgpack_packer *pk = &c->pk;
    struct why_result r;
    struct obj *o;
    uint64_t id;
    int rc;

    (void)n;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0)
        return rc;
    if ((rc = query_why(c->env->st, id, QUERY_WHY_BUDGET, &r)) < 0)
        return rc;
    msgpack_pack_map(pk, r.root == WHY_SESSION || r.root == WHY_NAME ? 3
                         : r.root == WHY_UNKNOWN                     ? 4
                                                                     : 2);
    rpc_pack_cstr(pk, "root");
    rpc_pack_cstr(pk, kinds[r.root]);
    if (r.root == WHY_SESSION)
        rpc_pack_kv_uint(pk, "session", r.session);
    if (r.root == WHY_NAME) {
        rpc_pack_cstr(pk, "name");
        if (r.name && cmd_name_hidden(c, r.name->name, r.name->len))
            rpc_pack_cstr(pk, WHY_HIDDEN_NAME);
        else
            cmd_pack_str(pk, r.name ? r.name->name : "", r.name ? r.name->len : 0);
    }
    if (r.root == WHY_UNKNOWN) {
        /* The budget ran out: say so, and how far it got. */
        rpc_pack_cstr(pk, "incomplete");
        msgpack_pack_true(pk);
        rpc_pack_kv_uint(pk, "examined", r.work);
    }
    rpc_pack_cstr(pk, "path");
    msgpack_pack_array(pk, r.len);
    for (uint32_t i = 0; i < r.len; i++)
        msgpack_pack_uint64(pk, r.path[i]);
    query_why_done(&r);
    return 0;
}
