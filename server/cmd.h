/* cmd: the methods of the rcstore protocol. One const table names each
 * method's handler and arity; the dispatcher checks arity once, counts the
 * call, writes the response envelope and, if the handler fails, rewinds the
 * output and writes the error instead, so a failed request leaves no bytes
 * behind. Handlers validate every parameter before they change anything:
 * each request is atomic. This module knows the store and the wire format,
 * never a socket. */
#ifndef RCS_SERVER_CMD_H
#define RCS_SERVER_CMD_H

#include "buf.h"
#include "err.h"
#include "log.h"
#include "rpc_msg.h"
#include "store.h"
#include "users.h"

#include <msgpack.h>
#include <stdint.h>

#define CMD_MAX 32
/* Buckets of the request-duration histograms (stats.h's bounds, +Inf last). */
#define CMD_LAT_BUCKETS 16

/* What handlers may know of the server around them; owned by the server. */
struct persist;
struct cluster;
struct slowlog;

struct cmd_env {
    struct store *st;
    struct persist *persist; /* the data directory's journal (persist.h; disabled without one) */
    struct cluster *cluster; /* a cluster node's Raft (cluster.h), or NULL standalone */
    uint64_t start_time;     /* seconds since the epoch at start-up */
    uint64_t connections;    /* currently open */
    uint64_t connections_total;
    uint64_t connections_refused;   /* at max_connections */
    uint64_t refused_tls_handshake; /* TLS handshakes that failed (not plaintext on a TLS port) */
    uint64_t refused_protocol;      /* TLS on a plaintext port, plaintext on a TLS port */
    uint64_t refused_login;         /* closed after a failed login (AUTH_FAILED) */
    uint64_t connections_timed_out; /* stalled mid-message past idle_timeout */
    uint64_t clients_evicted;       /* closed at max_client_buffers */
    uint64_t tls_connections;       /* currently open on tls:// listeners */
    uint64_t tls_handshakes;        /* completed */
    uint64_t tls_handshakes_failed; /* failed, plaintext on a TLS port included */
    uint64_t calls[CMD_MAX];        /* per method, in table order */
    uint64_t errors[CMD_MAX];       /* per method */
    uint64_t bad_requests;          /* messages that never reached a method */
    /* Answers by error code (err.h's table order), whether a method, the
     * framing or a deferred reply gave them (cmd_count_error). */
    uint64_t errors_by_code[RPC_ERR_COUNT];
    /* How long requests took, by method in table order: counts per bucket
     * of stats.h's bounds (not cumulative) and the sum, in nanoseconds
     * (stats_time_request). A flat array: nothing is allocated per request. */
    uint64_t lat_count[CMD_MAX][CMD_LAT_BUCKETS];
    uint64_t lat_sum_ns[CMD_MAX];
    struct slowlog *slowlog;     /* the slow log (slowlog.h), owned by the server */
    uint64_t gc_interval_ms;     /* for stats */
    uint64_t max_client_buffers; /* for stats */
    uint64_t now_ms;             /* the loop's clock, set before each batch of requests */
    int debug_commands;          /* serve debug_check */
    const char *auth;            /* the token clients must give, or NULL */
    size_t auth_len;
    /* Users (SPEC section 10): the --users-file table (NULL: none; the
     * server replaces it on SIGHUP), and the user that --auth-token-file's
     * token logs in (named "default", admin; NULL without the file). With
     * neither auth nor users, nobody logs in and every connection is admin. */
    const struct users *users;
    const struct user *default_user;
    struct log_rate login_log;  /* failed logins */
    struct log_rate denied_log; /* calls refused with PERMISSION_DENIED */
};

/* One request being served. */
struct cmd_ctx {
    struct cmd_env *env;
    struct sess *sess; /* NULL until a connection that must authenticate has */
    void *conn;        /* the connection, for a session made by hello (opaque; may be NULL) */
    int *authed;       /* this connection passed hello {auth} (or none is needed) */
    /* The connection's user: NULL where nobody logs in (then admin), or once
     * logged in the user (hello {user, auth} or a client certificate). The
     * caller sets it before cmd_dispatch and reads it back after (hello may
     * change it); it must stay valid for the call. */
    const struct user *user;
    const char *peer; /* the client's address, for log lines ("?" if NULL) */
    int close_after;  /* set by a handler: close the connection after the reply */
    int method;       /* set by the dispatcher: the method's table index, -1 if unknown */
    uint64_t index;   /* the journal record the reply waits for (0: none) */
    int deferred;     /* set by the dispatcher: the reply comes later (save) */
    uint32_t msgid;   /* of the request (for a deferred reply) */
    struct buf *out;
    msgpack_packer pk;
    const char *errmsg; /* private: message for the failing code */
    char errbuf[160];   /* private */
};

/* Prepare ctx to write into out for session s; *authed says whether the
 * connection may use more than hello and ping (always, without auth).
 * ctx.user and ctx.peer start NULL. */
void cmd_ctx_init(struct cmd_ctx *c, struct cmd_env *env, struct sess *s, int *authed,
                  struct buf *out);
/* Serve one request (m->type == RPC_REQUEST): the full response is appended
 * to c->out. Returns 0 or the protocol error that was sent. */
int cmd_dispatch(struct cmd_ctx *c, const struct rpc_message *m);
/* Count one answer with error rc (a protocol code; anything else counts as
 * INTERNAL) in env->errors_by_code. */
void cmd_count_error(struct cmd_env *env, int rc);
/* Number of methods and their names, for stats and tests. */
int cmd_count(void);
const char *cmd_name(int i);
/* Whether method i is served here (a debug method only with
 * --debug-commands): stats and /metrics list only those. */
int cmd_served(const struct cmd_env *env, int i);
/* The least role that may call method i (the table's min_role). */
enum role cmd_min_role(int i);
/* Whether a connection must log in (hello with auth, or a client
 * certificate) before it may call more than hello and ping. */
int cmd_login_required(const struct cmd_env *env);

#endif
