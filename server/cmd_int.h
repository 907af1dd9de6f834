/* cmd_int: what the handler files of the cmd family share and nothing else
 * includes: the handler signature, the argument readers (each fails with a
 * message naming the parameter), and one prototype per handler. The table
 * and the dispatcher are in cmd.c; handlers live by family in cmd_object.c,
 * cmd_session.c, cmd_names.c, cmd_query.c and cmd_admin.c. */
#ifndef RCS_SERVER_CMD_INT_H
#define RCS_SERVER_CMD_INT_H

#include "cmd.h"
#include "err.h"
#include "rpc_pack.h"

#include <msgpack.h>
#include <stdint.h>

typedef const msgpack_object arg_t;
/* A handler: a[0..n) are its parameters, n already checked against the
 * table's arity. It validates everything before it changes anything, and
 * either packs its whole result into c->pk and returns 0, or returns a
 * negative RPC_E* code (with cmd_fail for a message) and the dispatcher
 * rewinds whatever it packed. */
typedef int (*cmd_fn)(struct cmd_ctx *c, arg_t *a, uint32_t n);

/* What a growing request allocates besides its data and refs (an object
 * header, a hash slot, a name entry): an estimate, so that once a request
 * with no payload is refused, every growing request is. */
#define CMD_GROW_BASE_BYTES 64

/* A handler returns this (> 0) when its reply comes later: the
 * dispatcher writes nothing now (cmd_ctx.deferred). */
#define CMD_DEFERRED 1

struct rec;
struct apply_out;
/* Make the change r describes, through the journal when there is one
 * (persist_change): 0, or the apply layer's error, or
 * RPC_EPERSISTENCE_FAILED with its message set. The reply waits for r's
 * record. */
int cmd_change(struct cmd_ctx *c, const struct rec *r, struct apply_out *out);

/* Sets the error message of the request and returns err. */
int cmd_fail(struct cmd_ctx *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Argument readers: 0, or the error (with its message set) on a bad value. */
int cmd_arg_id(struct cmd_ctx *c, arg_t *a, const char *what, uint64_t *id);
/* An id that must name a live object: *id, and the object in *o (valid
 * until the heap next changes). */
int cmd_arg_obj(struct cmd_ctx *c, arg_t *a, const char *what, struct obj **o, uint64_t *id);
int cmd_arg_count(struct cmd_ctx *c, arg_t *a, uint32_t *n);
/* The optional limit at a[i] (i < n), UINT64_MAX when absent. */
int cmd_arg_limit(struct cmd_ctx *c, arg_t *a, uint32_t n, uint32_t i, uint64_t *limit);
int cmd_arg_data(struct cmd_ctx *c, arg_t *a, const char **p, uint32_t *len);
int cmd_arg_name(struct cmd_ctx *c, arg_t *a, const char **p, uint32_t *len);
/* An array of ids that all name live objects, copied into a fresh array
 * (*ids, to be released with cmd_free_ids(*ids, *n)). */
int cmd_arg_refs(struct cmd_ctx *c, arg_t *a, uint64_t **ids, uint32_t *n);
void cmd_free_ids(uint64_t *ids, uint32_t n);
/* RPC_EOUT_OF_MEMORY if adding `more` bytes would pass maxmemory. */
int cmd_check_maxmemory(struct cmd_ctx *c, uint64_t more);
/* ---- users' permissions (SPEC section 10) ----
 * The role a method needs is data in the table (cmd.c's min_role), checked
 * by the dispatcher before the handler runs. What depends on a parameter
 * is checked in the handler, before it changes anything, with these:
 * lookup with acquire needs write (cmd_require); bind, unbind and lookup
 * refuse a name outside the user's names prefix (cmd_may_name); names lists
 * only names under it and why hides a root name outside it (cmd_name_hidden).
 * referrers and everything addressed by id are not confined: a prefix
 * confines names, not ids (docs/security.md). */

/* The role of the connection's user (admin where nobody logs in). */
enum role cmd_role(const struct cmd_ctx *c);
/* 0 if the user has at least role r, else PERMISSION_DENIED (logged, rate
 * limited) with a message naming what is needed. */
int cmd_require(struct cmd_ctx *c, enum role r, const char *what);
/* 0 if the user may name name (len bytes), else PERMISSION_DENIED (logged). */
int cmd_may_name(struct cmd_ctx *c, const char *name, uint32_t len);
/* 1 if a name the user may not see must be hidden from its answers. */
int cmd_name_hidden(const struct cmd_ctx *c, const char *name, uint32_t len);
/* Copy at most cap - 1 bytes of p (len bytes) into out, NUL-terminated, a
 * byte that would not print (a control character, a NUL) as '?': for what a
 * client sent that goes into a log line. Returns out. */
char *cmd_printable(char *out, size_t cap, const char *p, size_t len);
/* PERMISSION_DENIED with its message, and the warn line (peer, user, and
 * logged, or the message if logged is NULL: a message that holds a byte
 * of the client's, such as a name, passes a summary of its own as logged,
 * since no byte of a TLS connection's plaintext may reach a log; rate
 * limited by env->denied_log). */
int cmd_denied(struct cmd_ctx *c, const char *logged, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Packs n bytes at p as a msgpack str. */
void cmd_pack_str(msgpack_packer *pk, const char *p, size_t n);

/* cmd_object.c */
int cmd_do_create(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_get(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_set_data(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_set_refs(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_link(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_unlink(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_incref(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_decref(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_stat(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_watch(struct cmd_ctx *c, arg_t *a, uint32_t n);
/* cmd_session.c */
int cmd_do_hello(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_release_all(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_share(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_claim(struct cmd_ctx *c, arg_t *a, uint32_t n);
/* cmd_cluster.c */
int cmd_do_cluster(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_cluster_add(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_cluster_remove(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_cluster_transfer(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_debug_digest(struct cmd_ctx *c, arg_t *a, uint32_t n);
/* stats.cluster: role, term, indexes and the followers' lag. */
void cmd_pack_cluster_stats(msgpack_packer *pk, struct cluster *cl);
/* cmd_names.c */
int cmd_do_bind(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_unbind(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_lookup(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_names(struct cmd_ctx *c, arg_t *a, uint32_t n);
/* cmd_query.c */
int cmd_do_referrers(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_why(struct cmd_ctx *c, arg_t *a, uint32_t n);
/* cmd_admin.c */
int cmd_do_ping(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_gc(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_stats(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_debug_check(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_save(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_slowlog(struct cmd_ctx *c, arg_t *a, uint32_t n);
int cmd_do_slowlog_reset(struct cmd_ctx *c, arg_t *a, uint32_t n);

#endif
