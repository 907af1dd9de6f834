/* cmd: the method table, the dispatcher and the argument readers that every
 * handler shares (see cmd.h and cmd_int.h). The handlers themselves live by
 * family in cmd_object.c, cmd_session.c, cmd_names.c, cmd_query.c and
 * cmd_admin.c. */
#include "cluster.h"
#include "cmd_int.h"
#include "mem.h"
#include "names.h"
#include "persist.h"
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cmd_change(struct cmd_ctx *c, const struct rec *r, struct apply_out *out)
{
    struct persist *p = c->env->persist;
    uint64_t index;
    int rc = persist_change(p, c->env->st, c->sess, r, c->env->now_ms, out, &index);
    if (rc == RPC_EPERSISTENCE_FAILED)
        return cmd_fail(c, rc,
                        "the journal cannot be written (%s): nothing was changed; writes resume "
                        "by themselves once the disk takes records",
                        p->j.last_error[0] ? p->j.last_error : "see the server log");
    if (rc == 0 && index > c->index)
        c->index = index;
    return rc;
}

int cmd_fail(struct cmd_ctx *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errbuf, sizeof(c->errbuf), fmt, ap);
    va_end(ap);
    c->errmsg = c->errbuf;
    return err;
}

/* ---- parameter readers: each fails with a message naming the parameter ---- */

int cmd_arg_id(struct cmd_ctx *c, arg_t *a, const char *what, uint64_t *id)
{
    *id = 0;
    if (a->type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->via.u64 == 0)
        return cmd_fail(c, RPC_EBAD_PARAMS, "%s must be an object id (a positive integer)", what);
    *id = a->via.u64;
    return 0;
}

int cmd_arg_obj(struct cmd_ctx *c, arg_t *a, const char *what, struct obj **o, uint64_t *id)
{
    int rc;
    *o = NULL;
    if ((rc = cmd_arg_id(c, a, what, id)) < 0)
        return rc;
    *o = heap_get(&c->env->st->heap, *id);
    if (!*o)
        return cmd_fail(c, RPC_ENOT_FOUND, "no object %llu", (unsigned long long)*id);
    return 0;
}

int cmd_arg_count(struct cmd_ctx *c, arg_t *a, uint32_t *n)
{
    if (a->type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->via.u64 == 0 || a->via.u64 > UINT32_MAX)
        return cmd_fail(c, RPC_EBAD_PARAMS, "n must be an integer from 1 to %u", UINT32_MAX);
    *n = (uint32_t)a->via.u64;
    return 0;
}

int cmd_arg_limit(struct cmd_ctx *c, arg_t *a, uint32_t n, uint32_t i, uint64_t *limit)
{
    *limit = UINT64_MAX;
    if (i >= n)
        return 0;
    if (a[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return cmd_fail(c, RPC_EBAD_PARAMS, "limit must be a non-negative integer");
    *limit = a[i].via.u64;
    return 0;
}

int cmd_arg_data(struct cmd_ctx *c, arg_t *a, const char **p, uint32_t *len)
{
    *p = NULL;
    *len = 0;
    if (rpc_obj_bytes(a, p, len) < 0)
        return cmd_fail(c, RPC_EBAD_PARAMS, "data must be bin or str");
    if (*len > c->env->st->lim.max_data_bytes)
        return cmd_fail(c, RPC_ETOO_LARGE, "data of %u bytes is over max_data_bytes (%u)", *len,
                        c->env->st->lim.max_data_bytes);
    return 0;
}

int cmd_arg_name(struct cmd_ctx *c, arg_t *a, const char **p, uint32_t *len)
{
    *p = NULL;
    *len = 0;
    if (a->type != MSGPACK_OBJECT_STR || names_validate(a->via.str.ptr, a->via.str.size) < 0)
        return cmd_fail(c, RPC_EBAD_PARAMS, "name must be a str of 1 to %d bytes of valid UTF-8",
                        NAME_MAX_BYTES);
    *p = a->via.str.ptr;
    *len = a->via.str.size;
    return 0;
}

int cmd_arg_refs(struct cmd_ctx *c, arg_t *a, uint64_t **ids, uint32_t *n)
{
    struct heap *h = &c->env->st->heap;
    uint32_t cnt;
    uint64_t *v;

    *ids = NULL;
    *n = 0;
    if (a->type != MSGPACK_OBJECT_ARRAY)
        return cmd_fail(c, RPC_EBAD_PARAMS, "refs must be an array of object ids");
    cnt = a->via.array.size;
    if (cnt > c->env->st->lim.max_refs)
        return cmd_fail(c, RPC_ETOO_LARGE, "%u refs is over max_refs (%u)", cnt,
                        c->env->st->lim.max_refs);
    for (uint32_t i = 0; i < cnt; i++) {
        arg_t *e = &a->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 == 0)
            return cmd_fail(c, RPC_EBAD_PARAMS, "refs[%u] is not an object id", i);
        if (!heap_get(h, e->via.u64))
            return cmd_fail(c, RPC_ENOT_FOUND, "refs[%u]: no object %llu", i,
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

void cmd_free_ids(uint64_t *ids, uint32_t n)
{
    mem_free(ids, (size_t)n * sizeof(*ids));
}

int cmd_check_maxmemory(struct cmd_ctx *c, uint64_t more)
{
    uint64_t max = c->env->st->lim.maxmemory, used = mem_heap_bytes();
    if (max && (used >= max || more > max - used))
        return cmd_fail(c, RPC_EOUT_OF_MEMORY,
                        "maxmemory (%llu bytes) reached: only reads and frees are served",
                        (unsigned long long)max);
    return 0;
}

void cmd_pack_str(msgpack_packer *pk, const char *p, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, p, n);
}

/* ---- the table ---- */

enum cmd_flag {
    /* May grow the heap: refused with OUT_OF_MEMORY once maxmemory is
     * reached, so that reads and frees keep working. */
    CMD_GROWS = 1,
    /* Unknown unless the server runs with --debug-commands. */
    CMD_DEBUG = 2,
    /* Served before the connection has authenticated. */
    CMD_NOAUTH = 4,
    /* Served by a cluster node that is not the serving leader (the others
     * answer NOT_LEADER there). */
    CMD_FOLLOWER = 8,
};

/* The longest method name; a longer name is unknown without a scan. */
#define CMD_NAME_MAX 16
/* The name and its length; a name longer than CMD_NAME_MAX does not compile. */
#define CMD(name)                                                                                  \
    name, (uint8_t)(sizeof(name) - 1 + 0 * sizeof(char[sizeof(name) <= CMD_NAME_MAX + 1 ? 1 : -1]))

/* Roles, shorter for the table: the least role that may call the method
 * (SPEC section 10). A method's parameters may ask for more (lookup with
 * acquire: write), which its handler checks with cmd_require. */
#define R ROLE_READ
#define W ROLE_WRITE
#define A ROLE_ADMIN

static const struct cmd_def {
    const char *name;
    uint8_t name_len;
    cmd_fn fn;
    uint8_t min_args, max_args;
    uint8_t flags;
    uint8_t min_role; /* enum role */
} cmds[] = {
    {CMD("hello"), cmd_do_hello, 0, 1, CMD_NOAUTH | CMD_FOLLOWER, R},
    {CMD("ping"), cmd_do_ping, 0, 0, CMD_NOAUTH | CMD_FOLLOWER, R},
    {CMD("create"), cmd_do_create, 1, 2, CMD_GROWS, W},
    {CMD("get"), cmd_do_get, 1, 1, 0, R},
    {CMD("set_data"), cmd_do_set_data, 2, 2, CMD_GROWS, W},
    {CMD("set_refs"), cmd_do_set_refs, 2, 2, CMD_GROWS, W},
    {CMD("link"), cmd_do_link, 2, 2, CMD_GROWS, W},
    {CMD("unlink"), cmd_do_unlink, 2, 2, 0, W},
    {CMD("incref"), cmd_do_incref, 1, 2, CMD_GROWS, W},
    {CMD("decref"), cmd_do_decref, 1, 2, 0, W},
    {CMD("stat"), cmd_do_stat, 1, 1, 0, R},
    {CMD("bind"), cmd_do_bind, 2, 2, CMD_GROWS, W},
    {CMD("unbind"), cmd_do_unbind, 1, 1, 0, W},
    {CMD("lookup"), cmd_do_lookup, 1, 2, 0, R},
    {CMD("names"), cmd_do_names, 0, 3, 0, R},
    {CMD("referrers"), cmd_do_referrers, 1, 3, 0, R},
    {CMD("watch"), cmd_do_watch, 1, 1, CMD_GROWS, R},
    {CMD("release_all"), cmd_do_release_all, 0, 0, 0, W},
    {CMD("share"), cmd_do_share, 1, 2, CMD_GROWS, W},
    {CMD("claim"), cmd_do_claim, 1, 1, CMD_GROWS, W},
    {CMD("why"), cmd_do_why, 1, 1, 0, R},
    {CMD("gc"), cmd_do_gc, 0, 0, 0, A},
    {CMD("stats"), cmd_do_stats, 0, 0, CMD_FOLLOWER, R},
    {CMD("debug_check"), cmd_do_debug_check, 0, 0, CMD_DEBUG | CMD_FOLLOWER, A},
    {CMD("save"), cmd_do_save, 0, 0, 0, A},
    {CMD("cluster"), cmd_do_cluster, 0, 0, CMD_FOLLOWER, R},
    {CMD("cluster_add"), cmd_do_cluster_add, 3, 3, 0, A},
    {CMD("cluster_remove"), cmd_do_cluster_remove, 1, 1, 0, A},
    {CMD("cluster_transfer"), cmd_do_cluster_transfer, 0, 1, 0, A},
    {CMD("debug_digest"), cmd_do_debug_digest, 0, 0, CMD_DEBUG | CMD_FOLLOWER, A},
    /* This node's own record: every node answers, nothing is replicated. */
    {CMD("slowlog"), cmd_do_slowlog, 0, 1, CMD_FOLLOWER, A},
    {CMD("slowlog_reset"), cmd_do_slowlog_reset, 0, 0, CMD_FOLLOWER, A},
};

#undef R
#undef W
#undef A

_Static_assert(sizeof(cmds) / sizeof(cmds[0]) <= CMD_MAX, "raise CMD_MAX");

void cmd_count_error(struct cmd_env *env, int rc)
{
    int k = err_is_protocol(rc) ? -rc - RPC_ERR_BASE : RPC_E_INTERNAL_INDEX;
    env->errors_by_code[k]++;
}

int cmd_count(void)
{
    return (int)(sizeof(cmds) / sizeof(cmds[0]));
}

const char *cmd_name(int i)
{
    return cmds[i].name;
}

int cmd_served(const struct cmd_env *env, int i)
{
    return !(cmds[i].flags & CMD_DEBUG) || env->debug_commands;
}

enum role cmd_min_role(int i)
{
    return (enum role)cmds[i].min_role;
}

int cmd_login_required(const struct cmd_env *env)
{
    return env->auth != NULL || env->users != NULL;
}

/* ---- users' permissions (cmd_int.h) ---- */

enum role cmd_role(const struct cmd_ctx *c)
{
    return c->user ? c->user->role : ROLE_ADMIN;
}

char *cmd_printable(char *out, size_t cap, const char *p, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t k = 0; k < n; k++)
        out[k] = (unsigned char)p[k] < 0x20 || p[k] == 0x7f ? '?' : p[k];
    out[n] = '\0';
    return out;
}

int cmd_denied(struct cmd_ctx *c, const char *logged, const char *fmt, ...)
{
    char shown[sizeof(c->errbuf)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errbuf, sizeof(c->errbuf), fmt, ap);
    va_end(ap);
    c->errmsg = c->errbuf;
    /* The log gets logged, or the message when that is NULL (it then holds
     * only the server's own words: a method, a role, a user of the file):
     * never a byte the client sent, as a name is. */
    if (!logged)
        logged = cmd_printable(shown, sizeof(shown), c->errbuf, strlen(c->errbuf));
    if (log_rate_take(&c->env->denied_log, c->env->now_ms))
        log_warn("refused a call from %s (user %s): %s", c->peer ? c->peer : "?",
                 c->user ? c->user->name : "-", logged);
    return RPC_EPERMISSION_DENIED;
}

int cmd_require(struct cmd_ctx *c, enum role r, const char *what)
{
    if (cmd_role(c) >= r)
        return 0;
    return cmd_denied(c, NULL, "%s needs the %s role; user %s has %s", what, role_name(r),
                      c->user->name, role_name(c->user->role));
}

int cmd_may_name(struct cmd_ctx *c, const char *name, uint32_t len)
{
    if (user_may_name(c->user, name, len))
        return 0;
    return cmd_denied(c, "a name outside the user's names prefix",
                      "name \"%.*s\" is outside user %s's names prefix \"%s\"",
                      (int)(len > 64 ? 64 : len), name, c->user->name, c->user->names);
}

int cmd_name_hidden(const struct cmd_ctx *c, const char *name, uint32_t len)
{
    return !user_may_name(c->user, name, len);
}

/* The table is short and the hot methods come first: a linear scan that
 * compares the first byte and the length before the bytes costs less than
 * hashing the name. */
static int lookup(const char *name, uint32_t len)
{
    if (len == 0 || len > CMD_NAME_MAX)
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
    c->index = 0;
    c->deferred = 0;
    c->msgid = 0;
    c->conn = NULL;
    c->out = out;
    c->errmsg = NULL;
    c->user = NULL;
    c->peer = NULL;
    c->method = -1;
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
    c->method = i;
    if (i < 0) {
        /* The name as the client sent it, at most 64 bytes, a byte that
         * would not print (a NUL included) shown as '?'. */
        char shown[65];
        uint32_t n = m->method_len > 64 ? 64 : m->method_len;
        for (uint32_t k = 0; k < n; k++)
            shown[k] = m->method[k] >= 0x20 && m->method[k] < 0x7f ? m->method[k] : '?';
        shown[n] = '\0';
        c->env->bad_requests++;
        rc = cmd_fail(c, RPC_EUNKNOWN_METHOD, "unknown method \"%s\"", shown);
        goto error;
    }
    c->env->calls[i]++;
    if (!*c->authed && !(cmds[i].flags & CMD_NOAUTH)) {
        rc = cmd_fail(c, RPC_EAUTH_REQUIRED,
                      "authenticate first: hello {\"user\": name, \"auth\": token}");
        goto counted_error;
    }
    /* Before anything else: a call the user may not make learns nothing
     * (not even whether its parameters were right) and changes nothing. */
    if ((rc = cmd_require(c, (enum role)cmds[i].min_role, cmds[i].name)) < 0)
        goto counted_error;
    if (m->nparams < cmds[i].min_args || m->nparams > cmds[i].max_args) {
        if (cmds[i].min_args == cmds[i].max_args)
            rc = cmd_fail(c, RPC_EBAD_PARAMS, "%s takes %u parameter(s), got %u", cmds[i].name,
                          cmds[i].min_args, m->nparams);
        else
            rc = cmd_fail(c, RPC_EBAD_PARAMS, "%s takes %u to %u parameters, got %u", cmds[i].name,
                          cmds[i].min_args, cmds[i].max_args, m->nparams);
        goto counted_error;
    }
    /* A cluster node serves changes and reads only as the serving leader:
     * reads elsewhere could be stale, and only the leader's log decides. */
    if (c->env->cluster && !(cmds[i].flags & CMD_FOLLOWER) && !cluster_serving(c->env->cluster)) {
        rc =
            cmd_fail(c, RPC_ENOT_LEADER, "this node is not the cluster's leader; ask %s",
                     cluster_leader_client(c->env->cluster) ? cluster_leader_client(c->env->cluster)
                                                            : "again once one is elected");
        goto counted_error;
    }
    if ((cmds[i].flags & CMD_GROWS) && (rc = cmd_check_maxmemory(c, CMD_GROW_BASE_BYTES)) < 0)
        goto counted_error;
    rpc_pack_response_ok(&c->pk, m->msgid);
    c->msgid = m->msgid;
    rc = cmds[i].fn(c, m->params, m->nparams);
    if (rc == 0)
        return 0;
    if (rc == CMD_DEFERRED) {
        buf_truncate(c->out, mark);
        c->deferred = 1;
        return 0;
    }
    buf_truncate(c->out, mark);
counted_error:
    c->env->errors[i]++;
error:
    cmd_count_error(c->env, rc);
    if (rc == RPC_ENOT_LEADER && c->env->cluster)
        rpc_pack_response_error_kv(&c->pk, 1, m->msgid, rc, c->errmsg, "leader",
                                   cluster_leader_client(c->env->cluster));
    else
        rpc_pack_response_error(&c->pk, 1, m->msgid, rc, c->errmsg);
    return rc;
}
