/* rcstore.h: the C client library of rcstore, a networked object store with
 * reference-count semantics.
 *
 * One rcs_client is one connection, and so one server session: every hold it
 * takes is released when it closes. Calls block. Any number of requests may
 * be queued with rcs_send, written with rcs_flush and their replies read in
 * order with rcs_recv (pipelining); the typed calls (rcs_create, rcs_get, ...)
 * are each a send, a flush and a receive. A client is not thread-safe: use
 * one per thread. Clients on different threads share nothing: the library
 * has no global state and allocates with malloc and free.
 *
 * Errors: every fallible function returns 0 or a negative rcs_error. Server
 * errors carry the server's message, read with rcs_last_error. Memory a call
 * returns belongs to the caller and is freed with the matching *_free.
 *
 * Clusters and lost connections: rcs_connect takes a list of addresses. A
 * cluster follower answers NOT_LEADER (nothing done) with the leader's
 * address, or none while there is no leader. A blocking call (every typed
 * call and rcs_call) that gets NOT_LEADER reconnects (to that leader, else
 * to the next address of the list, backing off from 50 ms to 500 ms while no
 * leader is known) and is sent again, until the failover timeout
 * (rcs_set_failover_timeout, default 10 s) has passed: then it returns
 * RCS_ENOT_LEADER. A call whose connection is lost while it is in flight is
 * NOT sent again, since it may or may not have been done: it fails with
 * RCS_EIO, and the next call reconnects through the list first. After a
 * reconnect the library replays the session's hello: its authentication
 * token and, for a session with a lease (hello with a ttl), a resume with its
 * token, so its holds come back; a session without a lease starts empty (the
 * server released its holds with the lost connection). Watches belong to a
 * connection: watch again after rcs_reconnects() changed. Pipelined
 * requests are never sent again: rcs_recv returns each reply as the server
 * gave it (RCS_ENOT_LEADER from a follower), and RCS_EIO for each request
 * that was outstanding when the connection was lost; the next rcs_send
 * reconnects, once every reply owed by the old connection has been read.
 *
 * TLS: an address "tls://HOST:PORT" (or any HOST:PORT given to
 * rcs_connect_tls) is reached over TLS 1.2 or later, verifying the server's
 * certificate against the CA file of rcs_tls_opts (or the system's store)
 * and the name HOST (or rcs_tls_opts.server_name): a host name must be in
 * the certificate's names, an IP literal in its IP addresses. The library
 * links OpenSSL 3 and uses it on the caller's thread, with no global state
 * of its own; it never raises SIGPIPE. A handshake that fails is RCS_EIO
 * with rcs_last_error "TLS: <why> (<address>)", e.g. "TLS: certificate
 * verify failed (unable to get local issuer certificate) (tls://...)" or
 * "TLS: the server closed the connection during the handshake (is the port
 * plaintext?) (tls://...)". A server that wants a client certificate and
 * got none refuses after the TLS 1.3 handshake, so the first call says so:
 * "TLS: the server requires a client certificate (tlsv13 alert certificate
 * required) (tls://...); the next request reconnects". A plaintext address
 * at a TLS port fails the first call with RCS_EIO and the server's answer:
 * "the server refused the connection: this port speaks TLS: use
 * tls://HOST:PORT (HOST:PORT); the next request reconnects". A client that
 * speaks TLS (rcs_connect_tls, or a tls:// address in its list) never
 * follows a cluster's leader hint into plaintext: a hint tcp://HOST:PORT
 * (the form rcstored's --advertise takes) is dialled as tls://HOST:PORT,
 * so a TLS cluster advertises its TLS ports, and their certificates name
 * the advertised hosts. */
#ifndef RCSTORE_H
#define RCSTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RCS_EXPORT __attribute__((visibility("default")))
#else
#define RCS_EXPORT
#endif

#define RCS_DEFAULT_ADDRESS "tcp://127.0.0.1:7373"

enum rcs_error {
    RCS_OK = 0,
    /* Sent by the server (SPEC section 4); rcs_error_name gives the wire name. */
    RCS_EBAD_REQUEST = -1000,
    RCS_EUNKNOWN_METHOD = -1001,
    RCS_EBAD_PARAMS = -1002,
    RCS_ENOT_FOUND = -1003,
    RCS_ENOT_HELD = -1004,
    RCS_ENAME_NOT_FOUND = -1005,
    RCS_ETOO_LARGE = -1006,
    RCS_EOUT_OF_MEMORY = -1007,
    RCS_EQUOTA_EXCEEDED = -1008,
    RCS_EAUTH_REQUIRED = -1009,
    RCS_EAUTH_FAILED = -1010,
    RCS_ESESSION_BUSY = -1011,
    RCS_ESESSION_EXPIRED = -1012,
    RCS_ETOKEN_INVALID = -1013,
    RCS_EINTERNAL = -1014,
    RCS_EPERSISTENCE_FAILED = -1015, /* the server's journal cannot be written */
    RCS_ENOT_LEADER = -1016,         /* a cluster follower (see the top of this file) */
    RCS_EPERMISSION_DENIED = -1017,  /* the user's role or names prefix forbids the call */
    /* Raised by the library itself. */
    RCS_EIO = -1100,       /* the connection failed or was closed */
    RCS_ECONNECT = -1101,  /* could not connect */
    RCS_EPROTO = -1102,    /* the server sent something unexpected */
    RCS_ENOMEM = -1103,    /* out of memory in the client */
    RCS_EINVAL = -1104,    /* bad argument to a library call */
    RCS_ETIMEDOUT = -1105, /* nothing arrived in time */
};

/* "NOT_FOUND", "EIO", ...: a stable name for an error code. */
RCS_EXPORT const char *rcs_error_name(int err);
/* A short description of an error code. */
RCS_EXPORT const char *rcs_strerror(int err);

/* ---- values: a decoded msgpack tree, as returned by the generic calls ---- */

enum rcs_type {
    RCS_NIL,
    RCS_BOOL,
    RCS_INT,
    RCS_UINT,
    RCS_FLOAT,
    RCS_STR,
    RCS_BIN,
    RCS_ARRAY,
    RCS_MAP
};

typedef struct rcs_value rcs_value;
struct rcs_value {
    enum rcs_type type;
    union {
        int boolean;
        int64_t i;  /* RCS_INT: negative integers only */
        uint64_t u; /* RCS_UINT */
        double f;
        struct {
            const char *ptr; /* RCS_STR and RCS_BIN; NUL-terminated for convenience */
            size_t len;
        } bytes;
        struct {
            rcs_value *items;
            size_t len;
        } array;
        struct {
            rcs_value *keys;
            rcs_value *vals;
            size_t len;
        } map;
    } via;
};

/* Release a value returned by the library (NULL is ignored). */
RCS_EXPORT void rcs_value_free(rcs_value *v);
/* The value under a str key of a map, or NULL. */
RCS_EXPORT const rcs_value *rcs_map_get(const rcs_value *map, const char *key);
/* The unsigned integer in v, or dflt if v is NULL or not one. */
RCS_EXPORT uint64_t rcs_value_uint(const rcs_value *v, uint64_t dflt);

/* ---- connections ---- */

typedef struct rcs_client rcs_client;

/* Connect to "tcp://HOST:PORT", "HOST:PORT", "tls://HOST:PORT",
 * "unix:///PATH" or "/PATH" (NULL means RCS_DEFAULT_ADDRESS), or to the
 * first that answers of a comma-separated list of them (a cluster's nodes:
 * "a:7373,b:7373,c:7373"), trying each once (with a list, a TCP connect
 * unanswered for 2 s, or a TLS handshake unfinished for 2 s, moves on to the
 * next; alone, a handshake may take 10 s). tls:// addresses verify the
 * server with the system's CA store; use rcs_connect_tls for other
 * options and to read why a connection failed. 0, RCS_ECONNECT, RCS_EIO
 * (a TLS handshake failed), RCS_EINVAL (an empty list or address) or
 * RCS_ENOMEM; on failure *out is NULL and errno says why the last connect
 * failed (EHOSTUNREACH when a host name did not resolve: rcs_open reports
 * the resolver's own words). Host names are resolved with getaddrinfo. */
RCS_EXPORT int rcs_connect(const char *address, rcs_client **out);
/* rcs_connect, except that a failed connect leaves *out set to a client
 * that is not connected, whose rcs_last_error says why in one line: "cannot
 * resolve nohost: Name or service not known" (the resolver's text, from
 * gai_strerror), "cannot connect to tcp://127.0.0.1:1: Connection refused",
 * a TLS failure as rcs_connect_tls says it. A call on such a client tries
 * to connect again. *out is NULL only for RCS_ENOMEM and an empty list or
 * address (RCS_EINVAL); call rcs_close(*out) in every case. */
RCS_EXPORT int rcs_open(const char *address, rcs_client **out);

/* TLS options of rcs_connect_tls. Zero it (rcs_tls_opts o = {0};) and set
 * what is needed. ABI: this struct is fixed for librcstore.so.0: no field
 * will be added to it (a later TLS option comes with a function of its
 * own), so a program built against any 0.x header passes the size this
 * library reads. */
typedef struct rcs_tls_opts {
    /* ca_file: PEM certificates that may sign the server's (NULL: the
     * system's default store). cert_file and key_file: a PEM client
     * certificate (chain) and its key, both or neither (mutual TLS).
     * server_name: the name (or IP address) the server's certificate must
     * carry and, for a name, the SNI sent (NULL: the HOST of each address). */
    const char *ca_file, *cert_file, *key_file, *server_name;
    /* Not 0: do not verify the server at all (testing only, as
     * redis-cli --insecure: anyone in the path can read and change the
     * traffic). */
    int insecure;
} rcs_tls_opts;

/* rcs_connect over TLS: every address of the list without a scheme
 * ("HOST:PORT") is TLS as if written tls://HOST:PORT (tcp:// and unix://
 * stay plaintext), with the options of tls (NULL: all zero), which every
 * reconnect uses too. The files are read once, here. Returns 0, or
 * RCS_ECONNECT, RCS_EIO (a handshake failed), RCS_EINVAL (a file of tls
 * cannot be used, a key does not match its certificate, or an empty list
 * or address) or RCS_ENOMEM. Unlike rcs_connect, *out is set on failure
 * too, to a client that is not connected and whose rcs_last_error says
 * why (e.g. "TLS: CA file ca.pem: No such file or directory"), except for
 * RCS_ENOMEM and an empty address (*out NULL): call rcs_close(*out) in
 * every case (it ignores NULL). A call on such a client tries to connect
 * again. */
RCS_EXPORT int rcs_connect_tls(const char *address, const rcs_tls_opts *tls, rcs_client **out);
/* Close the connection (the session's holds are released unless it has a
 * lease) and free the client. NULL is ignored. */
RCS_EXPORT void rcs_close(rcs_client *c);
/* A message from the server longer than RCS_MAX_REPLY_OVERHEAD_BYTES plus
 * the max_data_bytes that a hello on the connection reported (without a
 * hello: than RCS_MAX_REPLY_OVERHEAD_BYTES alone) is refused from its
 * header, before its body is read: the call fails with RCS_EPROTO ("the
 * server sent a message larger than the client accepts (N bytes: ...)")
 * and the connection is given up. No reply of a conforming server comes
 * near it; it keeps a hostile one from making the client hold gigabytes. */
#define RCS_MAX_REPLY_OVERHEAD_BYTES (64u << 20)

/* How long a read may wait, in milliseconds; -1 (the default) waits forever.
 * The limit is a deadline from the start of the wait (rcs_recv, or the
 * read of a blocking call): notifications that arrive meanwhile are kept
 * but do not push it back, so a server that streams them and never
 * answers still times out (RCS_ETIMEDOUT). */
RCS_EXPORT void rcs_set_timeout(rcs_client *c, int timeout_ms);
/* How long a call may go on following NOT_LEADER and reconnecting, in
 * milliseconds from its start (default 10000; 0: a call is tried once and
 * returns RCS_ENOT_LEADER, the next one moves to the leader). With a list of
 * one address, a reconnect whose connect is refused gives up at once. */
RCS_EXPORT void rcs_set_failover_timeout(rcs_client *c, int timeout_ms);
/* The address connected to now (one of the list, or a leader a follower
 * named), or the last one tried while disconnected. Valid until the next call. */
RCS_EXPORT const char *rcs_address(const rcs_client *c);
/* How many times this client connected again after rcs_connect (to follow
 * a leader or after a lost connection). */
RCS_EXPORT uint64_t rcs_reconnects(const rcs_client *c);
/* The message of the last error on this client: the server's text for a
 * server error, the library's otherwise. Valid until the next call. */
RCS_EXPORT const char *rcs_last_error(const rcs_client *c);

/* ---- generic calls and pipelining ----
 * Params are described by a format string, one letter per item:
 *   u uint64_t   i int64_t   b int (boolean)   n nil
 *   s const char * (str)     y const void *, size_t (bin)
 *   U const uint64_t *, size_t (array of uints)
 *   [ ... ] an array         { ... } a map: key letters (s) and values alternate
 * For example: rcs_send(c, "create", "yU", data, len, refs, nrefs). */

/* Queue one request; nothing is written until rcs_flush (or a blocking call).
 * 0, RCS_EINVAL (bad format), RCS_ENOMEM, or RCS_ETOO_LARGE: a create or
 * set_data whose data is longer than the max_data_bytes that a hello on
 * this connection reported (any hello: rcs_hello, rcs_hello_with, ... and
 * the one the library replays after a reconnect) is refused here, with
 * nothing queued, and rcs_last_error names both sizes, rather than sent to
 * a server that would cut the connection off. Without a hello on the
 * connection the limit is unknown and the request goes as it is. The
 * typed calls (rcs_create, rcs_set_data) do the same. */
RCS_EXPORT int rcs_send(rcs_client *c, const char *method, const char *fmt, ...);
/* Write every queued request. 0 or RCS_EIO. */
RCS_EXPORT int rcs_flush(rcs_client *c);
/* Read the reply to the oldest request still unanswered (flushing first if
 * needed). Returns 0 and the result in *result (free it with rcs_value_free;
 * result may be NULL to drop it), or the request's error. Notifications that
 * arrive meanwhile are kept for rcs_next_notification. */
RCS_EXPORT int rcs_recv(rcs_client *c, rcs_value **result);
/* Requests sent or queued whose replies have not been read. */
RCS_EXPORT size_t rcs_pending(const rcs_client *c);
/* rcs_send + rcs_recv. */
RCS_EXPORT int rcs_call(rcs_client *c, rcs_value **result, const char *method, const char *fmt,
                        ...);

/* ---- notifications ---- */

typedef struct rcs_notification {
    char *method;      /* "freed" */
    rcs_value *params; /* for "freed": [id, reason] */
} rcs_notification;

/* Notifications that arrive while a reply is awaited are queued for
 * rcs_next_notification, at most RCS_MAX_QUEUED_NOTIFICATIONS of them and
 * RCS_MAX_QUEUED_NOTIFICATION_BYTES of their encoded size. One more fails
 * the connection, as Redis closes a pub/sub client whose output buffer
 * overflows, rather than silently losing one (a dropped "freed" would leave
 * the client's view of its objects wrong): the call returns RCS_EPROTO and
 * rcs_last_error says "the server sent more than N notifications (or B
 * bytes of them) without the client reading them"; the queued ones can
 * still be read, and the next request reconnects. Read them (or stop
 * watching) in time to stay below the caps. */
#define RCS_MAX_QUEUED_NOTIFICATIONS      65536u
#define RCS_MAX_QUEUED_NOTIFICATION_BYTES (64u << 20)

/* Wait up to timeout_ms (-1: forever, 0: only what already arrived) for the
 * next notification. Only call it with no replies pending. 0, RCS_ETIMEDOUT
 * or RCS_EIO. Free *out with rcs_notification_free. */
RCS_EXPORT int rcs_next_notification(rcs_client *c, int timeout_ms, rcs_notification **out);
RCS_EXPORT void rcs_notification_free(rcs_notification *n);

/* ---- typed calls, one per method ---- */

/* What hello answered. The caller allocates it. */
typedef struct rcs_hello_info {
    uint64_t protocol;
    uint64_t session;
    uint8_t token[64]; /* the resume token */
    size_t token_len;
    int resumed;
    uint64_t ttl; /* the lease granted, in seconds */
    uint64_t max_data_bytes, max_refs, max_message_bytes, max_session_ttl;
    /* Added after 0.1.0 and filled by rcs_hello_with only: rcs_hello and
     * rcs_hello_lease write just the fields above (the struct of 0.1.0), so
     * that programs built against 0.1.0 keep working with this library. */
    uint64_t max_tokens_per_session; /* unclaimed share tokens a session may have */
} rcs_hello_info;

/* What rcs_hello_with sends. Zero it (rcs_hello_opts o = {0};) and set what
 * is needed: every field left zero or NULL is not sent. */
typedef struct rcs_hello_opts {
    /* The server's token (the content of its --auth-token-file), auth_len
     * bytes; auth_len 0 means strlen(auth). Without it, a server that
     * requires one answers RCS_EAUTH_REQUIRED to everything but ping. A
     * wrong one gets RCS_EAUTH_FAILED and the server closes the connection. */
    const void *auth;
    size_t auth_len;
    const char *client; /* a name for this client, shown by the server */
    /* A lease: keep the session ttl seconds after the connection closes
     * (clamped to max_session_ttl). 0 sends nothing: a new session has no
     * lease, a resumed one keeps its own. rcs_hello_lease can set 0. */
    uint32_t ttl;
    const uint8_t *resume; /* the resume token of a detached session to take over */
    size_t resume_len;
} rcs_hello_opts;

/* hello with options (opts may be NULL: none); it must be the first call on
 * a server that requires authentication. After a reconnect the library
 * sends the last successful hello's auth (it keeps a copy, wiped when
 * replaced or at rcs_close) and client name again, with the lease's resume
 * token when the session has a lease. info may be NULL. 0,
 * RCS_EAUTH_FAILED, RCS_ESESSION_BUSY, RCS_ESESSION_EXPIRED, RCS_EINVAL
 * (replies pending) or a connection error. */
RCS_EXPORT int rcs_hello_with(rcs_client *c, const rcs_hello_opts *opts, rcs_hello_info *info);
/* Log in as user with token (len bytes; 0 means strlen(token)) on every
 * hello this client sends from now on: rcs_hello, rcs_hello_lease,
 * rcs_hello_with (whose opts->auth, if set, replaces the token, the user
 * staying), and the hellos the library sends itself after a reconnect or a
 * failover. user NULL is the server's user "default" (the token of its
 * --auth-token-file); token NULL (and user NULL) forgets both. The library
 * keeps copies (the token's wiped when replaced or at rcs_close); nothing
 * is sent until the next hello. A server with --users-file answers hello
 * with RCS_EAUTH_FAILED (and closes) for an unknown user or a wrong token;
 * its result's "user" and "role" say who is logged in. This is a call of
 * its own, not a field of rcs_hello_opts, so that the struct keeps the
 * layout programs built against 0.1.0 pass in. 0, or RCS_EINVAL (user empty
 * or longer than 255 bytes, or a user without a token), RCS_ENOMEM. */
RCS_EXPORT int rcs_set_auth(rcs_client *c, const char *user, const void *token, size_t len);
/* hello with an optional client name (NULL for none). info may be NULL. */
RCS_EXPORT int rcs_hello(rcs_client *c, const char *client_name, rcs_hello_info *info);
/* hello with a lease: ttl seconds (0: none) and, if token is not NULL, the
 * resume token of a detached session (token_len bytes) to take over. */
RCS_EXPORT int rcs_hello_lease(rcs_client *c, uint32_t ttl, const uint8_t *token, size_t token_len,
                               rcs_hello_info *info);
RCS_EXPORT int rcs_ping(rcs_client *c);
/* Create an object holding a copy of data and refs; this session holds it once. */
RCS_EXPORT int rcs_create(rcs_client *c, const void *data, size_t len, const uint64_t *refs,
                          size_t nrefs, uint64_t *id);

typedef struct rcs_object {
    uint64_t id;
    char *data; /* len bytes, NUL-terminated for convenience */
    size_t len;
    uint64_t *refs;
    size_t nrefs;
    uint64_t refcount;
} rcs_object;

RCS_EXPORT int rcs_get(rcs_client *c, uint64_t id, rcs_object **out);
RCS_EXPORT void rcs_object_free(rcs_object *o);
RCS_EXPORT int rcs_set_data(rcs_client *c, uint64_t id, const void *data, size_t len);
RCS_EXPORT int rcs_set_refs(rcs_client *c, uint64_t id, const uint64_t *refs, size_t nrefs);
/* Append target to id's refs; *nrefs (may be NULL) gets the new length. */
RCS_EXPORT int rcs_link(rcs_client *c, uint64_t id, uint64_t target, uint64_t *nrefs);
/* Remove the first target from id's refs; RCS_ENOT_FOUND if absent. */
RCS_EXPORT int rcs_unlink(rcs_client *c, uint64_t id, uint64_t target, uint64_t *nrefs);
/* Add n (>= 1) holds; *holds (may be NULL) gets this session's holds after. */
RCS_EXPORT int rcs_incref(rcs_client *c, uint64_t id, uint32_t n, uint64_t *holds);
/* Drop n of this session's holds; RCS_ENOT_HELD if it has fewer. */
RCS_EXPORT int rcs_decref(rcs_client *c, uint64_t id, uint32_t n, uint64_t *holds);

typedef struct rcs_stat {
    uint64_t refcount, holds, names, internal, tokens, data_bytes, nrefs;
} rcs_stat;

RCS_EXPORT int rcs_stat_object(rcs_client *c, uint64_t id, rcs_stat *out);
RCS_EXPORT int rcs_bind(rcs_client *c, const char *name, uint64_t id);
RCS_EXPORT int rcs_unbind(rcs_client *c, const char *name);
/* The object bound to name; with acquire, this session also gains a hold. */
RCS_EXPORT int rcs_lookup(rcs_client *c, const char *name, int acquire, uint64_t *id);
/* The longest name, in bytes. */
#define RCS_NAME_MAX 255
/* Names starting with prefix, sorted, at most limit (UINT64_MAX: all): the
 * result is an array of [name, id] pairs. A server returns at most 10,000
 * names a request, so more take several requests (the paged form below):
 * a name bound or unbound meanwhile may or may not be listed; one bound
 * throughout is listed once. Only call it with no replies pending. */
RCS_EXPORT int rcs_names(rcs_client *c, const char *prefix, uint64_t limit, rcs_value **list);
/* One page of names: the ones after the name in after[0 .. *alen) (start
 * with *alen = 0; after has room for RCS_NAME_MAX bytes), at most limit
 * (>= 1, else RCS_EINVAL; the server returns at most 10,000). *list is an
 * array of [name, id] pairs, maybe empty; when more follow, *more is 1 and
 * after and *alen hold the page's last name: call again with them. */
RCS_EXPORT int rcs_names_page(rcs_client *c, const char *prefix, uint64_t limit, char *after,
                              size_t *alen, int *more, rcs_value **list);
/* Ids of objects whose refs contain id, at most limit (UINT64_MAX: all).
 * Free *ids with free() (it is never NULL on success). On a heap larger
 * than one request's budget this takes several requests (the paged form
 * below, from cursor 0 until done), so, as with Redis's SCAN, an object
 * that refers to id throughout is returned once, one that starts or stops
 * referring to id meanwhile may or may not be. Only call it with no
 * replies pending. */
RCS_EXPORT int rcs_referrers(rcs_client *c, uint64_t id, uint64_t limit, uint64_t **ids, size_t *n);
/* One page of referrers: start with *cursor = 0, and call again with the
 * *cursor it leaves until that is 0. Each page is at most limit (>= 1,
 * else RCS_EINVAL) ids, maybe none, and one request of bounded work on the
 * server. *ids as rcs_referrers. */
RCS_EXPORT int rcs_referrers_page(rcs_client *c, uint64_t id, uint64_t limit, uint64_t *cursor,
                                  uint64_t **ids, size_t *n);
/* Ask for a "freed" notification when id is freed. */
RCS_EXPORT int rcs_watch(rcs_client *c, uint64_t id);
/* Drop every hold of this session; *n (may be NULL) gets how many. */
RCS_EXPORT int rcs_release_all(rcs_client *c, uint64_t *n);

/* A one-use transfer token holding one reference to id for ttl seconds (0:
 * the server's default). *token gets up to cap bytes, *len its length. */
RCS_EXPORT int rcs_share(rcs_client *c, uint64_t id, uint32_t ttl, uint8_t *token, size_t cap,
                         size_t *len);
/* Take the object of a share token: this session gains one hold. */
RCS_EXPORT int rcs_claim(rcs_client *c, const uint8_t *token, size_t len, uint64_t *id);
/* Why id is alive: {"root": ..., "path": [...]} (see the protocol docs). */
RCS_EXPORT int rcs_why(rcs_client *c, uint64_t id, rcs_value **out);

typedef struct rcs_gc_result {
    uint64_t collected, candidates, examined, duration_us;
} rcs_gc_result;

RCS_EXPORT int rcs_gc(rcs_client *c, rcs_gc_result *out);
/* The server's statistics: a map of sections (see SPEC section 4). */
RCS_EXPORT int rcs_stats(rcs_client *c, rcs_value **out);

#ifdef __cplusplus
}
#endif

#endif
