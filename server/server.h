/* server: the daemon around the store: one libuv loop, its listeners, its
 * connections and its signals. Each connection is attached to a session; the
 * connection owns that session until it closes, when the session is released
 * or, with a lease, detached (store.h). Output
 * of one loop iteration is batched per connection and written once. */
#ifndef RCS_SERVER_SERVER_H
#define RCS_SERVER_SERVER_H

#include "cluster.h"
#include "cmd.h"
#include "config.h"
#include "conn.h"
#include "persist.h"
#include "rpc_scan.h"
#include "slowlog.h"
#include "store.h"

#include <openssl/types.h>
#include <uv.h>

struct conn;

/* A TCP or Unix stream handle, usable as any of libuv's views of it. */
union stream_handle {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_stream_t stream;
    uv_handle_t handle;
};

struct listener {
    union stream_handle h;
    struct server *srv;
    int is_unix;
    int is_tls;     /* tls://: its connections speak TLS (srv->tls_ctx) */
    char uri[300];  /* as bound, with the real port */
    char path[256]; /* unix socket path, unlinked at stop */
};

struct server {
    uv_loop_t *loop;
    const struct config *cfg;
    struct store st;
    struct cmd_env env;
    struct rpc_scan_limits scan_lim;
    int simple_ok;           /* the limits admit every rpc_decode_simple request */
    size_t large_high;       /* mem_large_bytes high-water mark since the last trim */
    struct metrics *metrics; /* --metrics-listen, or NULL */
    struct buf metrics_buf;  /* where the cron renders the next snapshot */
    struct listener listeners[CONFIG_MAX_LISTEN];
    int nlisteners;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t cron;       /* once a second: housekeeping */
    uv_timer_t trim_timer; /* every 10 ms while free pools' pages remain */
    uv_timer_t expire;     /* every 1 ms while due leases and tokens remain */
    uv_timer_t gc_timer;   /* every gc_interval_ms: start a sweep */
    uv_idle_t gc_idle;     /* the next slice of the sweep under way */
    int sweeping;
    uint64_t leases_logged;   /* st.sessions_expired when the last expiry was logged */
    char *auth;               /* the auth token, or NULL */
    struct users *users;      /* --users-file's table (env.users), or NULL */
    struct user default_user; /* the --auth-token-file token's user (env.default_user) */
    struct conn *conns;       /* all open connections */
    struct conn *flush_head;  /* connections with output queued this iteration */
    struct buf shared_in;     /* conn.c: read buffer lent to a connection holding no partial
                                 message, for the length of one read callback */
    int shared_in_lent;
    struct conn *backlog;      /* conn.c: connections with input left after their slice, */
    struct conn *backlog_tail; /* served in turn from the head, requeued at the tail */
    uint64_t backlog_len;
    uv_idle_t backlog_idle;  /* serves the backlog a slice at a time while it is not empty */
    struct persist persist;  /* --data-dir (persist.enabled), else unused */
    struct cluster *cluster; /* --node-id: this node's Raft, else NULL */
    char advertise[320];     /* the default --advertise, made from --listen */
    struct conn *held;       /* conn.c: connections whose replies wait for the journal */
    /* TLS (tls.h), when a tls:// listener exists: the context new handshakes
     * take (replaced on SIGHUP; live connections hold their own reference),
     * the buffer every TLS connection reads its ciphertext into for the
     * length of one read callback, and conn.c's ration of handshake steps
     * per loop iteration: the connections waiting for one, an idle handle
     * that serves them, and a check handle that renews the ration. */
    SSL_CTX *tls_ctx;
    char *tls_rbuf;
    struct conn *hs_head, *hs_tail;
    uv_idle_t hs_idle;
    uv_check_t hs_check;
    unsigned hs_used;              /* handshake steps taken in this iteration */
    struct log_rate tls_log;       /* conn.c's lines about TLS trouble (failed handshakes,
                                    * the wrong protocol on a port) */
    uint64_t hs_start_ns;          /* when the first of them began */
    struct log_rate violation_log; /* conn.c's lines about clients that broke the protocol or
                                    * a limit (refused messages, max_output_bytes cuts) */
    struct slowlog slowlog;        /* env.slowlog */
    int stopping;
    int unwinding; /* handles a failed server_init is waiting to see closed */
};

/* Set up the store, read the auth token and bind every listener. Returns 0,
 * or a negative code with one line in err (errlen bytes) that names the
 * problem, for the caller to print (nothing is logged):
 * -EINVAL when the configuration is at fault (a malformed listen or metrics
 * address, a host name that does not resolve, a unix socket in a directory
 * that does not exist or at a path that holds something other than a
 * socket, an auth token file that is missing, unreadable, not a regular
 * file, empty, too long or open to group or others), any other code when
 * the system refused what was asked (address in use or not available, a
 * unix socket a live server listens on, permission, out of memory). On failure nothing
 * is left behind: every handle it opened is closed and the loop run until
 * their close callbacks have fired, so the caller calls neither server_stop
 * nor server_close, only uv_loop_close. */
int server_init(struct server *srv, uv_loop_t *loop, const struct config *cfg, char *err,
                size_t errlen);
/* Close every handle; the loop then ends. Idempotent. */
void server_stop(struct server *srv);
/* Release the store once the loop has ended. */
void server_close(struct server *srv);

/* SIGHUP: read --users-file again. A good file replaces the table (each
 * connection's user is looked up again by name; one whose user is gone is
 * closed); a bad one is logged at warn and the old table stays. 0 or the
 * load's error. */
int server_reload_users(struct server *srv);

/* Start a periodic sweep, in slices of --gc-slice-us, unless one is under
 * way or nothing waits. */
void server_sweep(struct server *srv);
/* Start releasing ended sessions' holds now, in slices, rather than at the
 * next housekeeping tick, if there are any. */
void server_release_soon(struct server *srv);

#endif
