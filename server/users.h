/* users: the users file (--users-file, SPEC section 10) and the checks made
 * against it: who a user is (name, role, names prefix, certificate CN), a
 * token checked against its SHA-256 in constant time, and whether a name
 * lies under a user's prefix. It parses and answers questions; it knows no
 * connection and no socket (the server swaps whole tables on SIGHUP, the
 * connections re-resolve their user by name, see server.c). */
#ifndef RCS_SERVER_USERS_H
#define RCS_SERVER_USERS_H

#include <stddef.h>
#include <stdint.h>

/* What a user may call, in increasing power: each role may do everything
 * the one below may (the command table names each method's minimum). */
enum role { ROLE_READ = 1, ROLE_WRITE = 2, ROLE_ADMIN = 3 };

/* The longest user name and cert-cn, in bytes. */
#define USER_NAME_MAX 64
#define USER_CN_MAX   255
#define USER_SHA256   32

/* One [user NAME] section. Read-only once loaded. */
struct user {
    char name[USER_NAME_MAX + 1];
    enum role role;
    int has_token; /* token-sha256 was given (else: certificate only) */
    uint8_t token_sha256[USER_SHA256];
    char *names; /* the names prefix (NUL-terminated), or NULL: every name */
    size_t names_len;
    char *cert_cn; /* the certificate CN that is this user, or NULL */
};

/* A whole users file: an immutable table, replaced whole on reload. */
struct users {
    struct user *v;
    size_t n;
};

/* Read and check the users file at path. Refused (with one line in err,
 * errlen bytes, that names the file, and the line where one is at fault):
 * a file group or others may read or write (-EPERM: chmod 600 it), one that
 * cannot be opened (-errno), not a regular file (-EINVAL), and any content
 * error (-EINVAL): a section other than [user NAME], an unknown key, a key
 * given twice, a token-sha256 that is not 64 hex digits, a role other than
 * read, write or admin, a user without a role or without either
 * token-sha256 or cert-cn, an empty or over-long name, prefix or cert-cn, a
 * user or cert-cn given twice, a line longer than inih's limit. 0 and a new
 * table in *out (free with users_free), or the error (*out NULL). */
int users_load(const char *path, struct users **out, char *err, size_t errlen);
void users_free(struct users *u);

/* The user called name (len bytes), or NULL. u may be NULL (no file). */
const struct user *users_find(const struct users *u, const char *name, size_t len);
/* The user whose cert-cn is cn, or NULL. u and cn may be NULL. */
const struct user *users_by_cn(const struct users *u, const char *cn);
/* 1 if token (len bytes) is user's: its SHA-256 compared in constant time;
 * else 0 (also for a user without token-sha256, and u NULL, which costs
 * the same hash). */
int users_check_token(const struct user *u, const void *token, size_t len);
/* SHA-256 of data (OpenSSL's EVP). 0, or -ENOMEM. */
int users_sha256(const void *data, size_t len, uint8_t out[USER_SHA256]);
/* 1 if the name (len bytes) is under u's names prefix (u NULL: no user,
 * every name), else 0. */
int user_may_name(const struct user *u, const char *name, size_t len);
/* "read", "write" or "admin". */
const char *role_name(enum role r);
/* Parse "read", "write" or "admin". 0 or -EINVAL. */
int role_parse(const char *s, enum role *out);

#endif
