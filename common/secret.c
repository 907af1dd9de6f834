/* secret: secret files and constant-time comparison (see secret.h). */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Newlines after the secret that a file may carry beyond the size limit: an
 * editor's "\r\n", a few blank lines; a file that goes on past them is too
 * long, and reading stops there. */
#define SLACK 64

static int is_newline(char c)
{
    return c == '\n' || c == '\r';
}

/* Read up to n bytes: fewer only at the end of the file. */
static ssize_t read_full(int fd, char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int secret_read_file(const char *path, char *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
    char extra[SLACK + 1];
    struct stat st;
    size_t max = cap > 0 ? cap - 1 : 0, n = 0;
    ssize_t r, more = 0;
    int fd, rc = 0;

    if (max > SECRET_MAX_BYTES)
        max = SECRET_MAX_BYTES;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer, for ever; it changes nothing for a regular file, and anything
     * else is refused below before a byte is read. */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        snprintf(err, errlen, "%s: is a directory, not a file holding a secret", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(err, errlen,
                 "%s: not a regular file (a FIFO, device or socket cannot hold a secret)", path);
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = -EPERM;
        snprintf(err, errlen, "%s: open to group or others (mode %04o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    r = read_full(fd, buf, max);
    if (r >= 0 && (size_t)r == max)
        more = read_full(fd, extra, sizeof(extra));
    if (r < 0 || more < 0) {
        rc = r < 0 ? (int)r : (int)more;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        goto out;
    }
    n = (size_t)r;
    /* What follows the first max bytes may only be trailing newlines. */
    for (ssize_t i = 0; i < more && rc == 0; i++)
        if (!is_newline(extra[i]) || more > SLACK)
            rc = -EFBIG;
    if (rc < 0) {
        snprintf(err, errlen, "%s: the secret is longer than %zu bytes", path, max);
        goto out;
    }
    while (n > 0 && is_newline(buf[n - 1]))
        n--;
    if (n == 0) {
        rc = -ENODATA;
        snprintf(err, errlen, "%s: empty (the secret must be 1 to %zu bytes)", path, max);
        goto out;
    }
    buf[n] = '\0';
    *len = n;
out:
    close(fd);
    explicit_bzero(extra, sizeof(extra));
    if (rc < 0 && cap > 0)
        explicit_bzero(buf, n < cap ? n + 1 : cap);
    return rc;
}

int secret_equal(const void *known, size_t known_len, const void *given, size_t given_len)
{
    const unsigned char *k = known, *g = given;
    /* volatile: the compiler may not turn the loop into an early exit. */
    volatile unsigned char diff = known_len != given_len;
    size_t j = 0;

    if (known_len == 0)
        return given_len == 0;
    /* Walk the given bytes against the secret repeated: the same work for
     * every given value of one length, whatever the secret's length. */
    for (size_t i = 0; i < given_len; i++) {
        diff |= (unsigned char)(g[i] ^ k[j]);
        if (++j == known_len)
            j = 0;
    }
    return diff == 0;
}
