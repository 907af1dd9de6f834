/* secret: reading a secret (an auth token) from a file, and comparing
 * secrets in constant time. One implementation for the server, the CLI and
 * the load tester, so that all three accept the same files. Not a key
 * store: the secret is returned in the caller's buffer, which the caller
 * wipes when done. */
#ifndef RCS_COMMON_SECRET_H
#define RCS_COMMON_SECRET_H

#include <stddef.h>

/* The longest secret secret_read_file accepts, in bytes. */
#define SECRET_MAX_BYTES 4096

/* Read the secret in path into buf (cap bytes; the secret is NUL-terminated,
 * so at most cap - 1 bytes of it, and at most SECRET_MAX_BYTES): the whole
 * file less its trailing newlines ("\n" or "\r\n", any number). Refused:
 * a file that group or others may read, write or execute (ssh's rule for
 * private keys: chmod 600 it), a directory, anything else that is not a
 * regular file (a FIFO is opened without blocking and refused), a secret that is empty once the
 * newlines are gone, and one longer than the limit.
 * Returns 0 and the length in *len, or a negative code with a one-line
 * message in err (errlen bytes) that names the file and says what is wrong:
 * -errno when it cannot be opened or read (-ENOENT, -EACCES, ...), -EPERM
 * when its mode lets others in, -EISDIR, -EINVAL when not a regular file,
 * -ENODATA when empty, -EFBIG when
 * too long. On failure buf holds nothing of the file. */
int secret_read_file(const char *path, char *buf, size_t cap, size_t *len, char *err,
                     size_t errlen);

/* 1 if the given bytes equal the known secret, else 0. The time taken
 * depends on given_len only, never on where the bytes differ or on the
 * secret's length (a wrong length is not answered early). */
int secret_equal(const void *known, size_t known_len, const void *given, size_t given_len);

#endif
