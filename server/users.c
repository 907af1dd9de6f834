/* users: the users file and its checks (see users.h). libinih parses the
 * lines; a reader wrapped around fgets counts them and sees every section
 * header (inih tells its handler only of keys, so an empty or misnamed
 * section would otherwise pass unseen). */
#include "users.h"
#include "err.h"
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The parse under way. */
struct parse {
    FILE *f;
    const char *path;
    int line;       /* of the line inih read last */
    int bad_line;   /* of the first error (0: none) */
    char msg[256];  /* the first error */
    struct user *v; /* users so far */
    size_t n, cap;
    int seen;    /* bits: keys given in the current section */
    int in_user; /* the current section is a [user NAME] one */
};

enum { SEEN_TOKEN = 1, SEEN_ROLE = 2, SEEN_NAMES = 4, SEEN_CN = 8 };

/* Remember the first error, at the line being parsed. */
static void bad(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(struct parse *p, const char *fmt, ...)
{
    va_list ap;
    if (p->bad_line)
        return;
    p->bad_line = p->line;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
    va_end(ap);
}

static void user_clear(struct user *u)
{
    free(u->names);
    free(u->cert_cn);
    memset(u, 0, sizeof(*u));
}

/* The checks a finished section must pass. */
static void end_section(struct parse *p)
{
    struct user *u;
    if (!p->in_user || p->n == 0)
        return;
    u = &p->v[p->n - 1];
    if (!(p->seen & SEEN_ROLE))
        bad(p, "[user %s] has no role (read, write or admin)", u->name);
    else if (!(p->seen & (SEEN_TOKEN | SEEN_CN)))
        bad(p, "[user %s] has neither token-sha256 nor cert-cn: nobody could log in as it",
            u->name);
    p->in_user = 0;
}

/* A section header "[...]" at the current line (s: the line). */
static void section(struct parse *p, const char *s)
{
    const char *end = strchr(s, ']');
    const char *name;
    size_t len;

    end_section(p);
    p->seen = 0;
    if (!end) {
        bad(p, "a section header without its ']'");
        return;
    }
    s++;
    while (*s == ' ' || *s == '\t')
        s++;
    if (strncmp(s, "user", 4) != 0 || (s[4] != ' ' && s[4] != '\t')) {
        bad(p, "unknown section [%.*s]: only [user NAME] sections are allowed", (int)(end - s), s);
        return;
    }
    name = s + 4;
    while (*name == ' ' || *name == '\t')
        name++;
    len = (size_t)(end - name);
    while (len && (name[len - 1] == ' ' || name[len - 1] == '\t'))
        len--;
    if (len == 0 || len > USER_NAME_MAX || memchr(name, ' ', len) || memchr(name, '\t', len)) {
        bad(p, "a user name must be 1 to %d bytes without blanks", USER_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (strlen(p->v[i].name) == len && memcmp(p->v[i].name, name, len) == 0) {
            bad(p, "user \"%.*s\" is defined twice", (int)len, name);
            return;
        }
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        struct user *v = realloc(p->v, cap * sizeof(*v));
        if (!v) {
            bad(p, "out of memory");
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    memset(&p->v[p->n], 0, sizeof(p->v[p->n]));
    memcpy(p->v[p->n].name, name, len);
    p->n++;
    p->in_user = 1;
}

/* fgets, counting lines and seeing section headers before inih does. */
static char *reader(char *str, int num, void *stream)
{
    struct parse *p = stream;
    char *s = fgets(str, num, p->f);
    size_t len;
    if (!s)
        return NULL;
    p->line++;
    len = strlen(s);
    if (len == (size_t)num - 1 && s[len - 1] != '\n' && !feof(p->f)) {
        int ch;
        bad(p, "line longer than %d bytes", num - 2);
        while ((ch = fgetc(p->f)) != EOF && ch != '\n') /* the rest is no new line */
            ;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '[')
        section(p, s);
    return str;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Duplicate value into *dst, 1 to max bytes. 0 or -1 (error set). */
static int set_str(struct parse *p, const char *key, const char *value, size_t max, char **dst,
                   size_t *len)
{
    size_t n = strlen(value);
    if (n == 0 || n > max) {
        bad(p, "%s must be 1 to %zu bytes", key, max);
        return -1;
    }
    if (!(*dst = strdup(value))) {
        bad(p, "out of memory");
        return -1;
    }
    if (len)
        *len = n;
    return 0;
}

static int handler(void *ud, const char *sec, const char *key, const char *value)
{
    struct parse *p = ud;
    struct user *u;
    int bit;

    (void)sec;
    if (!p->in_user) {
        if (p->bad_line == 0)
            bad(p, "\"%s\" outside a [user NAME] section", key);
        return 1; /* the first error is kept; inih goes on quietly */
    }
    u = &p->v[p->n - 1];
    bit = strcmp(key, "token-sha256") == 0 ? SEEN_TOKEN
          : strcmp(key, "role") == 0       ? SEEN_ROLE
          : strcmp(key, "names") == 0      ? SEEN_NAMES
          : strcmp(key, "cert-cn") == 0    ? SEEN_CN
                                           : 0;
    if (!bit) {
        bad(p, "unknown key \"%s\" (token-sha256, role, names or cert-cn)", key);
        return 1;
    }
    if (p->seen & bit) {
        bad(p, "%s given twice for user %s", key, u->name);
        return 1;
    }
    p->seen |= bit;
    switch (bit) {
    case SEEN_TOKEN:
        if (strlen(value) != 2 * USER_SHA256) {
            bad(p, "token-sha256 must be 64 hex digits (rcstore user-hash prints it)");
            return 1;
        }
        for (int i = 0; i < USER_SHA256; i++) {
            int hi = hexval((unsigned char)value[2 * i]),
                lo = hexval((unsigned char)value[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                bad(p, "token-sha256 must be 64 hex digits (rcstore user-hash prints it)");
                return 1;
            }
            u->token_sha256[i] = (uint8_t)(hi << 4 | lo);
        }
        u->has_token = 1;
        break;
    case SEEN_ROLE:
        if (role_parse(value, &u->role) < 0)
            bad(p, "role must be read, write or admin, not \"%s\"", value);
        break;
    case SEEN_NAMES:
        set_str(p, "names", value, 255, &u->names, &u->names_len);
        break;
    case SEEN_CN:
        if (set_str(p, "cert-cn", value, USER_CN_MAX, &u->cert_cn, NULL) == 0) {
            for (size_t i = 0; i + 1 < p->n; i++) {
                if (p->v[i].cert_cn && strcmp(p->v[i].cert_cn, u->cert_cn) == 0) {
                    bad(p, "cert-cn \"%s\" is given to both %s and %s", u->cert_cn, p->v[i].name,
                        u->name);
                    break;
                }
            }
        }
        break;
    }
    return 1;
}

int users_load(const char *path, struct users **out, char *err, size_t errlen)
{
    struct parse p = {.path = path};
    struct users *t;
    struct stat sb;
    int fd, rc;

    *out = NULL;
    /* O_NONBLOCK: a FIFO opens at once (and is refused below). */
    if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
        return err_fail(err, errlen, -errno, "users file %s: %s", path, strerror(errno));
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
        close(fd);
        return err_fail(err, errlen, rc, "users file %s: %s", path, strerror(-rc));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return err_fail(err, errlen, -EINVAL, "users file %s: not a regular file", path);
    }
    if (sb.st_mode & 077) {
        close(fd);
        return err_fail(err, errlen, -EPERM,
                        "users file %s: group or others may read it (mode %03o): chmod 600 it",
                        path, (unsigned)(sb.st_mode & 0777));
    }
    if (!(p.f = fdopen(fd, "r"))) {
        rc = -errno;
        close(fd);
        return err_fail(err, errlen, rc, "users file %s: %s", path, strerror(-rc));
    }
    rc = ini_parse_stream(reader, &p, handler, &p);
    if (rc != 0 && (!p.bad_line || (rc > 0 && rc < p.bad_line))) {
        /* inih's own complaint, the first: a line it cannot read */
        p.bad_line = rc > 0 ? rc : p.line;
        snprintf(p.msg, sizeof(p.msg), "%s",
                 rc > 0 ? "not \"key = value\", a [section] or a comment" : "cannot be read");
    }
    end_section(&p);
    fclose(p.f);
    if (p.bad_line) {
        rc = err_fail(err, errlen, -EINVAL, "%s:%d: %s", path, p.bad_line, p.msg);
        goto fail;
    }
    if (!(t = calloc(1, sizeof(*t)))) {
        rc = err_fail(err, errlen, -ENOMEM, "users file %s: out of memory", path);
        goto fail;
    }
    t->v = p.v;
    t->n = p.n;
    *out = t;
    return 0;
fail:
    for (size_t i = 0; i < p.n; i++)
        user_clear(&p.v[i]);
    free(p.v);
    return rc;
}

void users_free(struct users *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++)
        user_clear(&u->v[i]);
    free(u->v);
    free(u);
}

const struct user *users_find(const struct users *u, const char *name, size_t len)
{
    if (!u)
        return NULL;
    for (size_t i = 0; i < u->n; i++) {
        if (strlen(u->v[i].name) == len && memcmp(u->v[i].name, name, len) == 0)
            return &u->v[i];
    }
    return NULL;
}

const struct user *users_by_cn(const struct users *u, const char *cn)
{
    if (!u || !cn)
        return NULL;
    for (size_t i = 0; i < u->n; i++) {
        if (u->v[i].cert_cn && strcmp(u->v[i].cert_cn, cn) == 0)
            return &u->v[i];
    }
    return NULL;
}

int users_sha256(const void *data, size_t len, uint8_t out[USER_SHA256])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != USER_SHA256)
        return -ENOMEM;
    return 0;
}

int users_check_token(const struct user *u, const void *token, size_t len)
{
    static const uint8_t nothing[USER_SHA256];
    uint8_t h[USER_SHA256];
    int ok;
    /* The hash is taken whether or not the user exists: an unknown user
     * costs what a known one does. */
    if (users_sha256(token, len, h) < 0)
        return 0;
    ok = secret_equal(u && u->has_token ? u->token_sha256 : nothing, USER_SHA256, h, USER_SHA256);
    explicit_bzero(h, sizeof(h));
    return ok && u && u->has_token;
}

int user_may_name(const struct user *u, const char *name, size_t len)
{
    if (!u || !u->names)
        return 1;
    return len >= u->names_len && memcmp(name, u->names, u->names_len) == 0;
}

const char *role_name(enum role r)
{
    switch (r) {
    case ROLE_READ:
        return "read";
    case ROLE_WRITE:
        return "write";
    case ROLE_ADMIN:
        return "admin";
    }
    return "?";
}

int role_parse(const char *s, enum role *out)
{
    if (strcmp(s, "read") == 0)
        *out = ROLE_READ;
    else if (strcmp(s, "write") == 0)
        *out = ROLE_WRITE;
    else if (strcmp(s, "admin") == 0)
        *out = ROLE_ADMIN;
    else
        return -EINVAL;
    return 0;
}
