/* conn: client connections: read, frame, decode, dispatch, reply, and the
 * memory they hold. Every byte a connection buffers counts in mem's
 * MEM_CLIENT budget, apart from the heap that --maxmemory bounds; all
 * connections together are bounded by --max-client-buffers, past which the
 * one with the largest buffers is closed (Redis's maxmemory-clients). Until a
 * connection has authenticated (when the server has a token) its messages may
 * be at most CONN_PREAUTH_MAX_MESSAGE bytes. It knows sockets and framing;
 * what a request means is cmd.h's business. */
#ifndef RCS_SERVER_CONN_H
#define RCS_SERVER_CONN_H

#include "store.h"

#include <stdint.h>
#include <uv.h>

/* The largest message a connection may send before hello {auth} succeeded:
 * a hello with the longest token (4096 bytes) and its other options fits. */
#define CONN_PREAUTH_MAX_MESSAGE 8192
/* ... and may declare at most this many elements in all (a hello's map of
 * options needs a dozen): msgpack-c's decode takes 24-48 bytes for each. */
#define CONN_PREAUTH_MAX_ELEMENTS 64

struct conn;
struct server;

/* What a TLS connection reads its ciphertext in (server.c allocates the
 * buffer they share, srv->tls_rbuf). */
#define CONN_TLS_READ_CHUNK (64 * 1024)
/* Connections that may take a step of their TLS handshake per loop
 * iteration (fewer if the steps take a --gc-slice-us slice); the others wait
 * for the next iteration, in order, their reading stopped. A step is one
 * flight of the client's processed: a full handshake takes two. */
#define CONN_TLS_HANDSHAKES_PER_ITERATION 16

/* Accept a client on listener (a TCP, TLS or Unix one) and start reading. */
void conn_accept(struct server *srv, uv_stream_t *listener, int is_unix, int is_tls);
/* Stop reading and close c; it is freed in libuv's close callback, never
 * during the request under way. Idempotent. */
void conn_close(struct conn *c);
void conn_close_all(struct server *srv);
/* Close every connection that holds part of a message, part of a TLS record
 * or an unfinished TLS handshake and has sent nothing for timeout_ms (a
 * slow-loris client). */
void conn_expire_stalled(struct server *srv, uint64_t now_ms, uint64_t timeout_ms);
/* A TLS connection's handshake completed and the client presented a
 * certificate that --tls-ca-file verified, with subject common name cn
 * (borrowed for the call). Called once per connection, before any of its
 * requests is served. If a user of --users-file has that cert-cn, c is
 * logged in as that user (no token; a later hello without auth keeps it),
 * else nothing changes (the client logs in with hello as usual). */
void conn_tls_identified(struct conn *c, const char *cn);
/* Give back the TLS record buffers and queues of every TLS connection that
 * has sent nothing for idle_ms (tlsio_trim). Once a second, from the cron. */
void conn_trim_idle(struct server *srv, uint64_t now_ms, uint64_t idle_ms);
/* The store's notify hook: queue a "freed" notification to s's connection. */
void conn_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why);
/* Write out every connection's queued output; first, if all connections'
 * memory is over --max-client-buffers, close the largest until it is not.
 * Called where no connection is in the middle of a read or a request: the
 * end of a read callback, a close callback, a timer. */
void conn_flush_all(struct server *srv);
/* The journal is durable up to index: connections whose replies waited
 * for it are queued for the next flush. */
void conn_durable(struct server *srv, uint64_t index);
/* A save's snapshot is done (rc 0) or failed: waiter's reply is sent and
 * it is served again. */
void conn_saved(struct server *srv, void *waiter, int rc, uint64_t bytes, uint64_t ms);
/* The users table (env.users) was replaced: every connection's user is
 * looked up again by name in the new one (a changed role or prefix applies
 * from the next call), and a connection whose user is gone is closed. The
 * old table may be freed once this returns. */
void conn_users_reloaded(struct server *srv);
/* A cluster membership request's end (cluster.h's done callback): rc 0
 * (the reply is true, or {"leader": leader} for a transfer) or an error
 * with msg. */
void conn_cluster_done(struct server *srv, void *waiter, int rc, const char *msg, uint64_t leader);

#endif
