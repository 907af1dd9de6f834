/* cmd_names: the methods on names (bind, unbind, lookup, names). A user
 * with a names prefix may bind, unbind and look up only names under it
 * (PERMISSION_DENIED, checked before anything is looked at), and names lists
 * only names under it: the listing's prefix is narrowed to the user's, so it
 * costs what an unconfined listing of that prefix does. */
#include "apply.h"
#include "cmd_int.h"
#include "mem.h"
#include "names.h"
#include "store.h"

#include <string.h>

int cmd_do_bind(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const char *name;
    uint32_t len;
    struct obj *o;
    uint64_t id;
    int rc;
    if ((rc = cmd_arg_name(c, &a[0], &name, &len)) < 0 || (rc = cmd_may_name(c, name, len)) < 0 ||
        (rc = cmd_arg_obj(c, &a[1], "id", &o, &id)) < 0)
        return rc;
    struct rec rec = {.type = REC_BIND, .bytes = (const uint8_t *)name, .nbytes = len, .id = id};
    if ((rc = cmd_change(c, &rec, NULL)) < 0)
        return rc;
    msgpack_pack_nil(&c->pk);
    return 0;
}

static int name_not_found(struct cmd_ctx *c, const char *name, uint32_t len)
{
    return cmd_fail(c, RPC_ENAME_NOT_FOUND, "no name \"%.*s\"", (int)(len > 64 ? 64 : len), name);
}

int cmd_do_unbind(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const char *name;
    uint32_t len;
    int rc;
    if ((rc = cmd_arg_name(c, &a[0], &name, &len)) < 0 || (rc = cmd_may_name(c, name, len)) < 0)
        return rc;
    struct rec rec = {.type = REC_UNBIND, .bytes = (const uint8_t *)name, .nbytes = len};
    if ((rc = cmd_change(c, &rec, NULL)) == RPC_ENAME_NOT_FOUND)
        return name_not_found(c, name, len);
    if (rc < 0)
        return rc;
    msgpack_pack_nil(&c->pk);
    return 0;
}

int cmd_do_lookup(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    const struct name_ent *e;
    const char *name;
    uint32_t len;
    int rc, acquire = 0;

    if ((rc = cmd_arg_name(c, &a[0], &name, &len)) < 0)
        return rc;
    if (n == 2) {
        if (a[1].type != MSGPACK_OBJECT_BOOLEAN)
            return cmd_fail(c, RPC_EBAD_PARAMS, "acquire must be a boolean");
        acquire = a[1].via.boolean;
    }
    /* A hold is a change: a read user may look up, not acquire. */
    if ((acquire && (rc = cmd_require(c, ROLE_WRITE, "lookup with acquire")) < 0) ||
        (rc = cmd_may_name(c, name, len)) < 0)
        return rc;
    if (!(e = names_find(&st->names, name, len)))
        return name_not_found(c, name, len);
    if (acquire && (rc = cmd_check_maxmemory(c, CMD_GROW_BASE_BYTES)) < 0)
        return rc;
    if (acquire) {
        struct rec rec = {.type = REC_HOLD, .sess = c->sess->id, .id = e->id, .a = 1};
        if ((rc = cmd_change(c, &rec, NULL)) < 0)
            return rc;
    }
    msgpack_pack_uint64(&c->pk, e->id);
    return 0;
}

/* names [prefix], [prefix, limit]: at most NAMES_PAGE_MAX names, else
 * QUOTA_EXCEEDED (never a silent part); names [prefix, limit, after]: one
 * page of the names after `after`, and the name to page from next. */
int cmd_do_names(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const struct name_ent **list;
    const char *prefix = "", *after = NULL;
    uint32_t plen = 0, alen = 0;
    uint64_t limit, count, cap;
    int rc, more;

    if (n >= 1 && rpc_obj_bytes(&a[0], &prefix, &plen) < 0)
        return cmd_fail(c, RPC_EBAD_PARAMS, "prefix must be a str");
    if ((rc = cmd_arg_limit(c, a, n, 1, &limit)) < 0)
        return rc;
    if (n == 3) {
        if (rpc_obj_bytes(&a[2], &after, &alen) < 0 || alen > NAME_MAX_BYTES)
            return cmd_fail(c, RPC_EBAD_PARAMS, "after must be a str of at most %d bytes",
                            NAME_MAX_BYTES);
        if (limit == 0)
            return cmd_fail(c, RPC_EBAD_PARAMS, "limit must be at least 1 with after");
    }
    if (c->user && c->user->names) {
        /* Confined to the user's prefix P: a prefix under P lists as asked;
         * one that P extends (the empty one) lists P; any other, nothing. */
        const char *up = c->user->names;
        uint32_t ulen = (uint32_t)c->user->names_len;
        if (plen < ulen && memcmp(up, prefix, plen) == 0) {
            prefix = up;
            plen = ulen;
        } else if (!user_may_name(c->user, prefix, plen)) {
            if (n == 3) {
                msgpack_pack_map(&c->pk, 2);
                rpc_pack_cstr(&c->pk, "names");
            }
            msgpack_pack_array(&c->pk, 0);
            if (n == 3) {
                rpc_pack_cstr(&c->pk, "next");
                msgpack_pack_nil(&c->pk);
            }
            return 0;
        }
    }
    rc = names_page(&c->env->st->names, prefix, plen, after, alen,
                    limit < NAMES_PAGE_MAX ? limit : NAMES_PAGE_MAX, &list, &count, &cap, &more);
    if (rc < 0)
        return rc;
    if (n < 3 && more && count < limit) {
        mem_free(list, cap * sizeof(*list));
        return cmd_fail(c, RPC_EQUOTA_EXCEEDED,
                        "more than %d names match, as many as one call may return: page with "
                        "names [prefix, limit, after] from after \"\"",
                        NAMES_PAGE_MAX);
    }
    if (n == 3) {
        msgpack_pack_map(&c->pk, 2);
        rpc_pack_cstr(&c->pk, "names");
    }
    msgpack_pack_array(&c->pk, count);
    for (uint64_t i = 0; i < count; i++) {
        msgpack_pack_array(&c->pk, 2);
        cmd_pack_str(&c->pk, list[i]->name, list[i]->len);
        msgpack_pack_uint64(&c->pk, list[i]->id);
    }
    if (n == 3) {
        rpc_pack_cstr(&c->pk, "next");
        if (more)
            cmd_pack_str(&c->pk, list[count - 1]->name, list[count - 1]->len);
        else
            msgpack_pack_nil(&c->pk);
    }
    mem_free(list, cap * sizeof(*list));
    return 0;
}
