/* cmd_session: the methods of sessions and hand-offs (hello, release_all,
 * share, claim). */
#include "apply.h"
#include "cluster.h"
#include "cmd_int.h"
#include "mem.h"
#include "persist.h"
#include "secret.h"
#include "store.h"
#include "users.h"

#include <string.h>

_Static_assert(SESS_USER_MAX == USER_NAME_MAX, "a session must hold any user's name");

static void pack_hello(msgpack_packer *pk, const struct store *st, const struct sess *s,
                       int resumed, const char *role, const char *leader, const struct user *user);

/* A failed login: AUTH_FAILED, the connection closed after the reply, and a
 * warn line (rate limited) naming the peer and the user asked for, u (NULL:
 * no such user, whose name, the client's bytes, is not logged: it may be a
 * token pasted in the wrong field). Never the token. */
static int login_failed(struct cmd_ctx *c, const struct user *u, uint32_t ulen, const char *why)
{
    if (log_rate_take(&c->env->login_log, c->env->now_ms)) {
        if (u)
            log_warn("failed login from %s as user \"%s\": %s; closing", c->peer ? c->peer : "?",
                     u->name, why);
        else
            log_warn("failed login from %s as an unknown user (a name of %u bytes); closing",
                     c->peer ? c->peer : "?", (unsigned)ulen);
    }
    c->close_after = 1;
    c->env->refused_login++;
    return cmd_fail(c, RPC_EAUTH_FAILED, "unknown user or wrong token; closing");
}

/* hello's login, where one is required: {"user": NAME, "auth": TOKEN}, or
 * {"auth": TOKEN} alone for the user "default" (the --auth-token-file token,
 * or a users file's "default"). A connection already logged in (by an
 * earlier hello or its client certificate) keeps its user through a hello
 * without auth; one with auth logs in again, as that user. opts: hello's
 * parameter, or NULL. Sets c->user, or fails. */
static int login(struct cmd_ctx *c, arg_t *opts)
{
    const struct cmd_env *env = c->env;
    arg_t *auth = NULL, *user = NULL;
    const struct user *u;
    const char *name = "default", *tok;
    uint32_t nlen = 7, tlen;
    int ok;

    if (opts && opts->type == MSGPACK_OBJECT_MAP) {
        auth = rpc_map_get(opts, "auth");
        user = rpc_map_get(opts, "user");
    }
    if (auth && rpc_obj_bytes(auth, &tok, &tlen) < 0)
        return cmd_fail(c, RPC_EBAD_PARAMS, "auth must be the token, a str or bin");
    if (user && (user->type != MSGPACK_OBJECT_STR || user->via.str.size == 0))
        return cmd_fail(c, RPC_EBAD_PARAMS, "user must be a non-empty str");
    if (user && !auth)
        return cmd_fail(c, RPC_EBAD_PARAMS, "user needs auth (the user's token)");
    if (!auth) {
        if (*c->authed)
            return 0;
        return cmd_fail(c, RPC_EAUTH_REQUIRED,
                        "this server requires hello {\"user\": name, \"auth\": token}");
    }
    if (user) {
        name = user->via.str.ptr;
        nlen = user->via.str.size;
    }
    if (env->auth && nlen == 7 && memcmp(name, "default", 7) == 0) {
        /* --auth-token-file: compared as it is (v1), no hash. */
        ok = secret_equal(env->auth, env->auth_len, tok, tlen);
        u = env->default_user;
    } else {
        u = users_find(env->users, name, nlen);
        ok = users_check_token(u, tok, tlen); /* hashes even for no user */
        if (!u)
            return login_failed(c, NULL, nlen, "no such user");
    }
    if (!ok)
        return login_failed(c, u, nlen, "wrong token");
    c->user = u; /* authenticated once it has its session (below) */
    return 0;
}

static int hello(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    msgpack_packer *pk = &c->pk;
    struct sess *s = c->sess;
    arg_t *ttl = NULL, *client = NULL, *resume = NULL;
    int rc, resumed = 0;

    if (n == 1 && a[0].type != MSGPACK_OBJECT_MAP && a[0].type != MSGPACK_OBJECT_NIL)
        return cmd_fail(c, RPC_EBAD_PARAMS, "hello takes one map of options");
    if (n == 1 && a[0].type == MSGPACK_OBJECT_MAP) {
        ttl = rpc_map_get(&a[0], "ttl");
        client = rpc_map_get(&a[0], "client");
        resume = rpc_map_get(&a[0], "resume");
        if (ttl && ttl->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return cmd_fail(c, RPC_EBAD_PARAMS, "ttl must be a non-negative integer (seconds)");
        if (client && client->type != MSGPACK_OBJECT_STR)
            return cmd_fail(c, RPC_EBAD_PARAMS, "client must be a str");
        if (resume && resume->type != MSGPACK_OBJECT_BIN && resume->type != MSGPACK_OBJECT_STR)
            return cmd_fail(c, RPC_EBAD_PARAMS, "resume must be the token (bin) from hello");
    }
    if (cmd_login_required(c->env) && (rc = login(c, n == 1 ? &a[0] : NULL)) < 0)
        return rc;
    /* A lease keeps holds, and a read user may hold nothing: it changes
     * nothing, not even the journal a leased session is written to. */
    if (ttl && ttl->via.u64 > 0 && (rc = cmd_require(c, ROLE_WRITE, "a lease (hello's ttl)")) < 0)
        return rc;
    /* A cluster node that does not serve answers a plain hello (a client
     * finds the leader with it) and nothing that needs the leader's log. */
    if (c->env->cluster && !cluster_serving(c->env->cluster)) {
        const char *leader = cluster_leader_client(c->env->cluster);
        if ((ttl && ttl->via.u64 > 0) || resume)
            return cmd_fail(c, RPC_ENOT_LEADER,
                            "this node is not the cluster's leader: a lease or a resume needs it; "
                            "ask %s",
                            leader ? leader : "again once one is elected");
        *c->authed = 1;
        pack_hello(pk, st, NULL, 0, "follower", leader, c->user);
        return 0;
    }
    /* A session's resume token is its user's: another user (but an admin)
     * learns that it exists and nothing changes, not even this connection's
     * session. A session with no user (made where nobody logs in, or restored
     * from the data directory or the Raft log, which do not record users)
     * resumes by its token alone. */
    if (resume && c->user && c->user->role != ROLE_ADMIN) {
        const char *tok;
        uint32_t len;
        const struct sess *o;
        rpc_obj_bytes(resume, &tok, &len);
        o = sess_by_token(st, tok, len);
        if (o && o->user[0] && strcmp(o->user, c->user->name) != 0)
            return cmd_denied(c, NULL, "session %llu belongs to user %s", (unsigned long long)o->id,
                              o->user);
    }
    /* A connection that had to authenticate gets its session only now: an
     * unauthenticated one spends nothing of the heap. It counts as
     * authenticated only once it has one: every other handler needs it. */
    if (!s && (rc = sess_attach(st, c->conn, &s)) < 0)
        return rc;
    c->sess = s;
    *c->authed = 1;
    /* A new lease keeps the session, and what it holds, after its
     * connection: refused once maxmemory is reached, as any growth is. A
     * resume grows nothing (it frees the session this hello made), so a
     * client can always get its session back to release what it holds. */
    if (ttl && ttl->via.u64 > 0 && !resume &&
        (rc = cmd_check_maxmemory(c, CMD_GROW_BASE_BYTES)) < 0)
        return rc;
    if (resume) {
        const char *tok;
        uint32_t len;
        rpc_obj_bytes(resume, &tok, &len);
        if ((rc = sess_resume_into(st, s, tok, len, &s)) == RPC_ESESSION_BUSY)
            return cmd_fail(c, rc, "that session is attached to another connection");
        if (rc == RPC_EPERSISTENCE_FAILED || rc == RPC_EOUT_OF_MEMORY)
            return cmd_fail(c, rc, "the journal cannot take this session's end now; retry");
        if (rc < 0)
            return cmd_fail(
                c, rc,
                "no such session: its lease expired (or a server without --data-dir restarted)");
        c->sess = s;
        resumed = 1;
    }
    /* Whose session it is: the user of the hello that made or leased it last
     * (an admin's resume leaves it its user's; one with none takes the
     * resumer's). */
    if (c->user && (!resumed || !s->user[0]))
        snprintf(s->user, sizeof(s->user), "%s", c->user->name);
    if (client) {
        uint32_t len = client->via.str.size;
        if (len >= sizeof(s->client))
            len = sizeof(s->client) - 1;
        if (len) /* an empty str's ptr may be NULL */
            memcpy(s->client, client->via.str.ptr, len);
        s->client[len] = '\0';
    }
    if (ttl) {
        /* Clamped here: the record carries the ttl granted. */
        uint64_t t =
            ttl->via.u64 < st->lim.max_session_ttl ? ttl->via.u64 : st->lim.max_session_ttl;
        struct rec rec = {.type = REC_SESS_LEASE, .sess = s->id, .a = t};
        if ((rc = cmd_change(c, &rec, NULL)) < 0)
            return rc;
    }
    if (c->env->cluster) {
        const char *self = cluster_leader_client(c->env->cluster);
        pack_hello(pk, st, s, resumed, "leader", self ? self : "", c->user);
    } else {
        pack_hello(pk, st, s, resumed, NULL, NULL, c->user);
    }
    return 0;
}

/* hello: a request that fails changes nothing, not even who the
 * connection is logged in as (a good login followed by a bad resume leaves
 * the user before it). */
int cmd_do_hello(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const struct user *before = c->user;
    int rc = hello(c, a, n);
    if (rc < 0 && !c->close_after)
        c->user = before;
    /* The audit trail of logins (--log-level debug), once the hello that
     * logged in has succeeded: the peer and the user, never the token. */
    if (rc >= 0 && c->user && n == 1 && a[0].type == MSGPACK_OBJECT_MAP &&
        cmd_login_required(c->env) && rpc_map_get(&a[0], "auth"))
        log_debug("%s: logged in as %s by hello", c->peer ? c->peer : "?", c->user->name);
    return rc;
}

/* hello's result: the session s (NULL: none, as a follower answers), and
 * on a cluster node (role not NULL) its role and the leader's address (nil
 * if leader is NULL); the user logged in (NULL: nobody logs in here, and
 * the user is nil with the admin role). The user's role is "user_role"
 * everywhere, and "role" too on a standalone server: a cluster node's
 * "role" was its Raft role (leader, follower) before users existed. */
static void pack_hello(msgpack_packer *pk, const struct store *st, const struct sess *s,
                       int resumed, const char *role, const char *leader, const struct user *user)
{
    const char *user_role = role_name(user ? user->role : ROLE_ADMIN);
    msgpack_pack_map(pk, role ? 11 : 10);
    rpc_pack_cstr(pk, "user");
    if (user)
        rpc_pack_cstr(pk, user->name);
    else
        msgpack_pack_nil(pk);
    rpc_pack_cstr(pk, "user_role");
    rpc_pack_cstr(pk, user_role);
    if (!role) {
        rpc_pack_cstr(pk, "role");
        rpc_pack_cstr(pk, user_role);
    }
    if (role) {
        rpc_pack_cstr(pk, "role");
        rpc_pack_cstr(pk, role);
        rpc_pack_cstr(pk, "leader");
        if (leader)
            rpc_pack_cstr(pk, leader);
        else
            msgpack_pack_nil(pk);
    }
    rpc_pack_kv_uint(pk, "protocol", 1);
    rpc_pack_cstr(pk, "server");
    rpc_pack_cstr(pk, "rcstored " RCS_VERSION);
    rpc_pack_kv_uint(pk, "session", s ? s->id : 0);
    rpc_pack_cstr(pk, "token");
    msgpack_pack_bin(pk, s ? SESS_TOKEN_BYTES : 0);
    if (s)
        msgpack_pack_bin_body(pk, s->token, SESS_TOKEN_BYTES);
    rpc_pack_cstr(pk, "resumed");
    if (resumed)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    rpc_pack_kv_uint(pk, "ttl", s ? s->ttl_s : 0);
    rpc_pack_cstr(pk, "limits");
    msgpack_pack_map(pk, 5);
    rpc_pack_kv_uint(pk, "max_data_bytes", st->lim.max_data_bytes);
    rpc_pack_kv_uint(pk, "max_refs", st->lim.max_refs);
    rpc_pack_kv_uint(pk, "max_message_bytes", st->lim.max_message_bytes);
    rpc_pack_kv_uint(pk, "max_session_ttl", st->lim.max_session_ttl);
    rpc_pack_kv_uint(pk, "max_tokens_per_session", st->lim.max_session_tokens);
}

int cmd_do_release_all(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct rec rec = {.type = REC_RELEASE_ALL, .sess = c->sess->id};
    struct apply_out out;
    int rc;
    if ((rc = cmd_change(c, &rec, &out)) < 0)
        return rc;
    msgpack_pack_uint64(&c->pk, out.after);
    return 0;
}

/* Default life of a share token, in seconds (clamped to max_session_ttl). */
#define SHARE_TTL_DEFAULT 60

int cmd_do_share(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    uint8_t token[SESS_TOKEN_BYTES];
    uint64_t id, ttl = SHARE_TTL_DEFAULT;
    const char *limit;
    struct obj *o;
    int rc;
    if ((rc = cmd_arg_obj(c, &a[0], "id", &o, &id)) < 0)
        return rc;
    if (n == 2) {
        if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 == 0)
            return cmd_fail(c, RPC_EBAD_PARAMS, "ttl must be a positive integer (seconds)");
        ttl = a[1].via.u64;
    }
    if (ttl > st->lim.max_session_ttl)
        ttl = st->lim.max_session_ttl;
    if ((rc = share_token(st, token)) == 0) {
        struct rec rec = {
            .type = REC_SHARE, .token = token, .sess = c->sess->id, .id = id, .a = ttl};
        rc = cmd_change(c, &rec, NULL);
    }
    if (rc == RPC_EQUOTA_EXCEEDED && (limit = share_quota_hit(st, c->sess)) != NULL) {
        if (strcmp(limit, "max_tokens") == 0)
            return cmd_fail(c, rc,
                            "the server has max_tokens (%llu) unclaimed share tokens; "
                            "claim some or let them expire",
                            (unsigned long long)st->lim.max_tokens);
        return cmd_fail(c, rc,
                        "this session has max_tokens_per_session (%llu) unclaimed share tokens; "
                        "claim some or let them expire",
                        (unsigned long long)st->lim.max_session_tokens);
    }
    if (rc < 0)
        return rc;
    msgpack_pack_bin(&c->pk, sizeof(token));
    msgpack_pack_bin_body(&c->pk, token, sizeof(token));
    return 0;
}

int cmd_do_claim(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const char *tok;
    uint32_t len;
    uint64_t id;
    int rc;
    if (rpc_obj_bytes(&a[0], &tok, &len) < 0)
        return cmd_fail(c, RPC_EBAD_PARAMS, "token must be the bin that share returned");
    /* The record names the token's object, as a check for its replay. */
    if ((rc = share_find(c->env->st, tok, len, c->env->now_ms, &id)) == 0) {
        struct rec rec = {
            .type = REC_CLAIM, .token = (const uint8_t *)tok, .sess = c->sess->id, .id = id};
        rc = cmd_change(c, &rec, NULL);
    }
    if (rc == RPC_ETOKEN_INVALID) {
        /* One past its deadline ends now, so that no restart revives it;
         * the refusal waits for that record. */
        if (share_expire_if_due(c->env->st, tok, len, c->env->now_ms) && c->env->persist)
            c->index = persist_last_index(c->env->persist);
        return cmd_fail(c, rc, "token unknown, already claimed, or expired");
    }
    if (rc < 0)
        return rc;
    msgpack_pack_uint64(&c->pk, id);
    return 0;
}
