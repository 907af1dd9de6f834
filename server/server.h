/* server: the daemon around the store: one libuv loop, its listeners, its
 * connections and its signals. Each connection is attached to a session; the
 * connection owns that session until it closes (leases come later). Output
 * of one loop iteration is batched per connection and written once. */
#ifndef RCS_SERVER_SERVER_H
#define RCS_SERVER_SERVER_H

#include "cmd.h"
#include "config.h"
#include "rpc_scan.h"
#include "store.h"

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
    uv_signal_t sigint, sigterm;
    uv_timer_t cron;       /* once a second: housekeeping */
    uv_timer_t trim_timer; /* every 10 ms while free pools' pages remain */
    uv_timer_t expire;     /* every 1 ms while due leases and tokens remain */
    uv_timer_t gc_timer;   /* every gc_interval_ms: start a sweep */
    uv_idle_t gc_idle;     /* the next slice of the sweep under way */
    int sweeping;
    uint64_t leases_logged;  /* st.sessions_expired when the last expiry was logged */
    char *auth;              /* the auth token, or NULL */
    struct conn *conns;      /* all open connections */
    struct conn *flush_head; /* connections with output queued this iteration */
    int stopping;
};

/* Set up the store and bind every listener. 0 or a negative code (logged). */
int server_init(struct server *srv, uv_loop_t *loop, const struct config *cfg);
/* Close every handle; the loop then ends. Idempotent. */
void server_stop(struct server *srv);
/* Release the store once the loop has ended. */
void server_close(struct server *srv);

/* Connections (conn.c). */
void conn_accept(struct server *srv, uv_stream_t *listener, int is_unix);
void conn_close(struct conn *c);
void conn_close_all(struct server *srv);
/* Close every connection that holds part of a message and has sent nothing
 * for timeout_ms (a slow-loris client). */
void conn_expire_stalled(struct server *srv, uint64_t now_ms, uint64_t timeout_ms);
/* The store's notify hook: queue a "freed" notification to s's connection. */
void conn_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why);
/* Write out every connection's queued output. */
void server_flush(struct server *srv);
/* Start a periodic sweep, in slices of --gc-slice-us, unless one is under
 * way or nothing waits. */
void server_sweep(struct server *srv);
/* Start releasing ended sessions' holds now, in slices, rather than at the
 * next housekeeping tick, if there are any. */
void server_release_soon(struct server *srv);

#endif
