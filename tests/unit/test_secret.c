/* Unit tests for common/secret: what a secret file may hold (trailing
 * newlines go, nothing else does), what is refused and with which code and
 * message (missing, open to group or others, a directory, a FIFO or device,
 * empty, too long),
 * and the constant-time compare's answers. */
#include "cmocka_pre.h"

#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/test_secret.XXXXXX";
static char path[64];

/* Write n bytes of content to the test file with the given mode. */
static void write_file(const void *content, size_t n, mode_t mode)
{
    int fd;
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static int read_secret(char *buf, size_t cap, size_t *len, char *err)
{
    err[0] = '\0';
    return secret_read_file(path, buf, cap, len, err, 256);
}

static void accepted(void **state)
{
    static const struct {
        const char *file, *secret;
    } cases[] = {
        {"s3cret", "s3cret"},       {"s3cret\n", "s3cret"}, {"s3cret\r\n", "s3cret"},
        {"s3cret\n\n\n", "s3cret"}, {"a b\tc\n", "a b\tc"}, {"x", "x"},
        {"\nlead", "\nlead"}, /* only trailing newlines go */
    };
    char buf[SECRET_MAX_BYTES + 1], err[256];
    size_t len;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(cases[i].file, strlen(cases[i].file), 0600);
        assert_int_equal(read_secret(buf, sizeof(buf), &len, err), 0);
        assert_int_equal(len, strlen(cases[i].secret));
        assert_string_equal(buf, cases[i].secret);
    }
    write_file("owner-only", 10, 0400);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), 0);
    assert_string_equal(buf, "owner-only");
}

static void refused(void **state)
{
    char buf[SECRET_MAX_BYTES + 1], err[256];
    size_t len = 12345;
    (void)state;

    unlink(path);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -ENOENT);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file"));

    write_file("tok\n", 4, 0640);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -EPERM);
    assert_non_null(strstr(err, "mode 0640"));
    assert_non_null(strstr(err, "chmod 600"));
    write_file("tok\n", 4, 0604);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -EPERM);
    write_file("tok\n", 4, 0610);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -EPERM);

    write_file("", 0, 0600);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -ENODATA);
    assert_non_null(strstr(err, "empty"));
    write_file("\n\r\n", 3, 0600);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -ENODATA);

    assert_int_equal(secret_read_file(dir, buf, sizeof(buf), &len, err, sizeof(err)), -EISDIR);
    assert_int_equal(len, 12345); /* untouched on failure */
}

/* A FIFO (or a device) is not a file holding a secret: it is refused at
 * once, never opened for a read that blocks until a writer comes (the
 * server once hung at start-up with no message). alarm: without the fix
 * the test dies of SIGALRM instead of hanging until ctest's timeout. */
static void not_regular(void **state)
{
    char buf[SECRET_MAX_BYTES + 1], err[256];
    size_t len = 12345;
    (void)state;

    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -EINVAL);
    alarm(0);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(len, 12345);
    unlink(path);

    assert_int_equal(secret_read_file("/dev/null", buf, sizeof(buf), &len, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
}

static void size_limit(void **state)
{
    char *big = malloc(SECRET_MAX_BYTES + 200), buf[SECRET_MAX_BYTES + 1], small[8], err[256];
    size_t len;
    (void)state;
    memset(big, 'k', SECRET_MAX_BYTES + 200);

    /* Exactly the limit, with and without newlines after it. */
    write_file(big, SECRET_MAX_BYTES, 0600);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), 0);
    assert_int_equal(len, SECRET_MAX_BYTES);
    memcpy(big + SECRET_MAX_BYTES, "\r\n", 2);
    write_file(big, SECRET_MAX_BYTES + 2, 0600);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), 0);
    assert_int_equal(len, SECRET_MAX_BYTES);

    /* One byte more. */
    big[SECRET_MAX_BYTES] = 'k';
    write_file(big, SECRET_MAX_BYTES + 1, 0600);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -EFBIG);
    assert_non_null(strstr(err, "longer than 4096 bytes"));
    /* Far more: a megabyte of newlines after a short secret is no secret. */
    memset(big, '\n', SECRET_MAX_BYTES + 200);
    big[0] = 'k';
    write_file(big, SECRET_MAX_BYTES + 200, 0600);
    assert_int_equal(read_secret(buf, sizeof(buf), &len, err), -EFBIG);

    /* The caller's buffer is the limit too (less the NUL). */
    write_file("1234567", 7, 0600);
    assert_int_equal(read_secret(small, sizeof(small), &len, err), 0);
    assert_string_equal(small, "1234567");
    write_file("12345678\n", 9, 0600);
    assert_int_equal(read_secret(small, sizeof(small), &len, err), -EFBIG);
    assert_non_null(strstr(err, "longer than 7 bytes"));
    free(big);
}

static void equal(void **state)
{
    (void)state;
    assert_true(secret_equal("s3cret", 6, "s3cret", 6));
    assert_false(secret_equal("s3cret", 6, "s3creT", 6));
    assert_false(secret_equal("s3cret", 6, "S3cret", 6));
    assert_false(secret_equal("s3cret", 6, "s3cre", 5));
    assert_false(secret_equal("s3cret", 6, "s3crets3cret", 12)); /* the secret repeated */
    assert_false(secret_equal("s3cret", 6, "s3cretX", 7));
    assert_false(secret_equal("s3cret", 6, "", 0));
    assert_true(secret_equal("", 0, "", 0));
    assert_false(secret_equal("", 0, "x", 1));
    assert_true(secret_equal("a\0b", 3, "a\0b", 3)); /* bytes, not strings */
    assert_false(secret_equal("a\0b", 3, "a\0c", 3));
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/token", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepted),   cmocka_unit_test(refused), cmocka_unit_test(not_regular),
        cmocka_unit_test(size_limit), cmocka_unit_test(equal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
