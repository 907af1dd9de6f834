/* err: the error codes of rcstore, as one table: the protocol's codes (SPEC
 * section 4, the wire names) are the whole core's vocabulary, so they live
 * here rather than in protocol/: the heap, names, the store and the
 * collector return them without knowing the wire. One contract everywhere,
 * as in libuv: 0 on success or a negative code, either one of these (far
 * from errno values, so one int carries either) or a negated errno. They
 * keep their RPC_E* names, which the public RCS_E* of rcstore.h mirror. */
#ifndef RCS_COMMON_ERR_H
#define RCS_COMMON_ERR_H

#include <stddef.h>

/* X(name, default message). Order fixes the numeric values: append only. */
#define RPC_ERR_TABLE(X)                                                                           \
    X(BAD_REQUEST, "not a msgpack-RPC request")                                                    \
    X(UNKNOWN_METHOD, "unknown method")                                                            \
    X(BAD_PARAMS, "bad parameters")                                                                \
    X(NOT_FOUND, "no such object")                                                                 \
    X(NOT_HELD, "this session does not hold that reference")                                       \
    X(NAME_NOT_FOUND, "no such name")                                                              \
    X(TOO_LARGE, "over a size limit")                                                              \
    X(OUT_OF_MEMORY, "out of memory")                                                              \
    X(QUOTA_EXCEEDED, "quota exceeded")                                                            \
    X(AUTH_REQUIRED, "authentication required")                                                    \
    X(AUTH_FAILED, "authentication failed")                                                        \
    X(SESSION_BUSY, "session is attached to another connection")                                   \
    X(SESSION_EXPIRED, "session expired or unknown")                                               \
    X(TOKEN_INVALID, "token invalid, used or expired")                                             \
    X(INTERNAL, "internal error")                                                                  \
    X(PERSISTENCE_FAILED, "the journal cannot be written: nothing was changed")                    \
    X(NOT_LEADER, "this node is not the cluster's leader")                                         \
    X(PERMISSION_DENIED, "this user's role or names prefix does not allow that")

#define RPC_ERR_BASE 1000

#define RPC_OK 0

/* Row indexes of the table; RPC_ERR_VALUE turns one into its code. */
enum rpc_err_index {
#define RPC_ERR_ENUM(name, msg) RPC_E_##name##_INDEX,
    RPC_ERR_TABLE(RPC_ERR_ENUM)
#undef RPC_ERR_ENUM
        RPC_ERR_COUNT
};

#define RPC_ERR_VALUE(name)     (-(RPC_ERR_BASE + RPC_E_##name##_INDEX))
#define RPC_EBAD_REQUEST        RPC_ERR_VALUE(BAD_REQUEST)
#define RPC_EUNKNOWN_METHOD     RPC_ERR_VALUE(UNKNOWN_METHOD)
#define RPC_EBAD_PARAMS         RPC_ERR_VALUE(BAD_PARAMS)
#define RPC_ENOT_FOUND          RPC_ERR_VALUE(NOT_FOUND)
#define RPC_ENOT_HELD           RPC_ERR_VALUE(NOT_HELD)
#define RPC_ENAME_NOT_FOUND     RPC_ERR_VALUE(NAME_NOT_FOUND)
#define RPC_ETOO_LARGE          RPC_ERR_VALUE(TOO_LARGE)
#define RPC_EOUT_OF_MEMORY      RPC_ERR_VALUE(OUT_OF_MEMORY)
#define RPC_EQUOTA_EXCEEDED     RPC_ERR_VALUE(QUOTA_EXCEEDED)
#define RPC_EAUTH_REQUIRED      RPC_ERR_VALUE(AUTH_REQUIRED)
#define RPC_EAUTH_FAILED        RPC_ERR_VALUE(AUTH_FAILED)
#define RPC_ESESSION_BUSY       RPC_ERR_VALUE(SESSION_BUSY)
#define RPC_ESESSION_EXPIRED    RPC_ERR_VALUE(SESSION_EXPIRED)
#define RPC_ETOKEN_INVALID      RPC_ERR_VALUE(TOKEN_INVALID)
#define RPC_EINTERNAL           RPC_ERR_VALUE(INTERNAL)
#define RPC_EPERSISTENCE_FAILED RPC_ERR_VALUE(PERSISTENCE_FAILED)
#define RPC_ENOT_LEADER         RPC_ERR_VALUE(NOT_LEADER)
#define RPC_EPERMISSION_DENIED  RPC_ERR_VALUE(PERMISSION_DENIED)

/* True if err is one of the protocol codes above. */
int err_is_protocol(int err);
/* The wire name ("NOT_FOUND") of a protocol code; "INTERNAL" for anything else. */
const char *err_name(int err);
/* The default message of a protocol code; strerror-like text otherwise. */
const char *err_message(int err);
/* The protocol code for a wire name of len bytes, or RPC_EINTERNAL if unknown. */
int err_from_name(const char *name, size_t len);
/* Format a failure's message into err (errlen bytes, always terminated)
 * and return rc: `return err_fail(err, errlen, -EINVAL, "...", ...);` for
 * the functions that report why they failed in a caller's buffer. */
int err_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
