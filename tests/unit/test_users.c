/* Unit tests for server/users: what a users file may hold, what is refused
 * and at which line (unknown sections and keys, bad hashes and roles,
 * duplicates, a file others may read), and the checks made with a loaded
 * table (tokens against their SHA-256, names prefixes, certificate CNs). */
#include "cmocka_pre.h"

#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/test_users.XXXXXX";
static char path[64];
static char err[512];

static char hash_a[65], hash_b[65];

static void hex(const char *token, char out[65])
{
    uint8_t h[USER_SHA256];
    assert_int_equal(users_sha256(token, strlen(token), h), 0);
    for (int i = 0; i < USER_SHA256; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void write_file(const char *content, mode_t mode)
{
    int fd;
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static int load(const char *content, struct users **u)
{
    write_file(content, 0600);
    err[0] = '\0';
    return users_load(path, u, err, sizeof(err));
}

static void good_file(void **state)
{
    char text[1024];
    struct users *u;
    const struct user *a, *b, *c;
    (void)state;
    snprintf(text, sizeof(text),
             "# operators\n"
             "[user alice]\n"
             "token-sha256 = %s\n"
             "role = admin\n"
             "\n"
             "[user bob]\n"
             "token-sha256 = %s\n"
             "role = read\n"
             "names = jobs/\n"
             "cert-cn = bob.example\n"
             "; certificate only\n"
             "[user carol]\n"
             "role = write\n"
             "cert-cn = carol.example\n",
             hash_a, hash_b);
    assert_int_equal(load(text, &u), 0);
    assert_int_equal(u->n, 3);
    a = users_find(u, "alice", 5);
    b = users_find(u, "bob", 3);
    c = users_find(u, "carol", 5);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_null(users_find(u, "alic", 4));
    assert_null(users_find(u, "alicex", 6));
    assert_int_equal(a->role, ROLE_ADMIN);
    assert_int_equal(b->role, ROLE_READ);
    assert_int_equal(c->role, ROLE_WRITE);
    assert_string_equal(role_name(b->role), "read");
    /* Tokens: the right one, a wrong one, another user's, none at all. */
    assert_true(users_check_token(a, "secret-a", 8));
    assert_false(users_check_token(a, "secret-b", 8));
    assert_false(users_check_token(a, "secret-", 7));
    assert_true(users_check_token(b, "secret-b", 8));
    assert_false(users_check_token(c, "", 0)); /* no token-sha256: no token logs in */
    assert_false(users_check_token(NULL, "secret-a", 8));
    /* Prefixes. */
    assert_null(a->names);
    assert_true(user_may_name(a, "anything", 8));
    assert_true(user_may_name(NULL, "anything", 8));
    assert_true(user_may_name(b, "jobs/1", 6));
    assert_true(user_may_name(b, "jobs/", 5));
    assert_false(user_may_name(b, "jobs", 4));
    assert_false(user_may_name(b, "job/1", 5));
    assert_false(user_may_name(b, "other", 5));
    /* Certificates. */
    assert_ptr_equal(users_by_cn(u, "bob.example"), b);
    assert_ptr_equal(users_by_cn(u, "carol.example"), c);
    assert_null(users_by_cn(u, "alice"));
    assert_null(users_by_cn(u, NULL));
    assert_null(users_by_cn(NULL, "bob.example"));
    users_free(u);
    /* An empty file is a table of no users. */
    assert_int_equal(load("", &u), 0);
    assert_int_equal(u->n, 0);
    users_free(u);
}

/* Each bad file is refused with -EINVAL, naming the file and the line. */
static void refused_at_line(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *says;
    } cases[] = {
        {"[users]\nrole = read\n", 1, "unknown section [users]"},
        {"[user]\nrole = read\n", 1, "unknown section"},
        {"[server]\n", 1, "unknown section"},
        {"role = read\n", 1, "outside a [user NAME] section"},
        {"[user a]\nrole = read\ncolour = blue\n", 3, "unknown key \"colour\""},
        {"[user a]\nrole = root\n", 2, "role must be read, write or admin"},
        {"[user a]\ntoken-sha256 = abc\nrole = read\n", 2, "64 hex digits"},
        {"[user a]\ntoken-sha256 = "
         "zz0a6b1ab3b5ba8c1ff32fbbed7fa5be91e4ef0b7f2a8a07ed8a4be6a3ffa1f\nrole = read\n",
         2, "64 hex digits"},
        {"[user a]\nrole = read\nrole = admin\n", 3, "role given twice"},
        {"[user a]\ncert-cn = x\n[user b]\n", 3, "has no role"},
        {"[user a]\ncert-cn = x\n", 2, "has no role"},
        {"[user a]\nrole = read\n", 2, "neither token-sha256 nor cert-cn"},
        {"[user a]\nrole = read\ncert-cn = x\n[user a]\nrole = read\ncert-cn = y\n", 4,
         "defined twice"},
        {"[user a]\nrole = read\ncert-cn = x\n[user b]\nrole = read\ncert-cn = x\n", 6,
         "given to both a and b"},
        {"[user a]\nrole = read\nnames =\ncert-cn = x\n", 3, "names must be 1 to"},
        {"[user a]\nrole = read\njust words\n", 3, "not \"key = value\""},
        {"[user a b]\nrole = read\ncert-cn = x\n", 1, "without blanks"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct users *u = (struct users *)1;
        char at[128];
        int rc = load(cases[i].text, &u);
        if (rc != -EINVAL || !strstr(err, cases[i].says))
            print_error("case %zu: rc %d, \"%s\"\n", i, rc, err);
        assert_int_equal(rc, -EINVAL);
        assert_null(u);
        snprintf(at, sizeof(at), "%s:%d: ", path, cases[i].line);
        if (strncmp(err, at, strlen(at)) != 0)
            print_error("case %zu: \"%s\" does not start with \"%s\"\n", i, err, at);
        assert_true(strncmp(err, at, strlen(at)) == 0);
        assert_non_null(strstr(err, cases[i].says));
    }
}

/* A line longer than inih reads whole is an error, not a silent cut. */
static void long_line(void **state)
{
    char text[2048];
    struct users *u;
    (void)state;
    snprintf(text, sizeof(text), "[user a]\nrole = read\ncert-cn = %01000d\n", 7);
    assert_int_equal(load(text, &u), -EINVAL);
    assert_non_null(strstr(err, ":3: line longer than"));
}

static void file_refused(void **state)
{
    struct users *u;
    char text[256];
    (void)state;
    snprintf(text, sizeof(text), "[user a]\ntoken-sha256 = %s\nrole = read\n", hash_a);
    write_file(text, 0640);
    assert_int_equal(users_load(path, &u, err, sizeof(err)), -EPERM);
    assert_null(u);
    assert_non_null(strstr(err, "chmod 600"));
    assert_non_null(strstr(err, path));
    write_file(text, 0604);
    assert_int_equal(users_load(path, &u, err, sizeof(err)), -EPERM);
    write_file(text, 0400);
    assert_int_equal(users_load(path, &u, err, sizeof(err)), 0);
    users_free(u);
    assert_int_equal(users_load("/nonexistent/users.ini", &u, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/users.ini"));
    assert_int_equal(users_load(dir, &u, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
}

static void roles(void **state)
{
    enum role r;
    (void)state;
    assert_int_equal(role_parse("read", &r), 0);
    assert_int_equal(r, ROLE_READ);
    assert_int_equal(role_parse("write", &r), 0);
    assert_int_equal(r, ROLE_WRITE);
    assert_int_equal(role_parse("admin", &r), 0);
    assert_int_equal(r, ROLE_ADMIN);
    assert_int_equal(role_parse("Admin", &r), -EINVAL);
    assert_int_equal(role_parse("", &r), -EINVAL);
    assert_true(ROLE_READ < ROLE_WRITE && ROLE_WRITE < ROLE_ADMIN);
}

/* The hash is SHA-256 (a known vector), so `sha256sum` agrees with it. */
static void sha256_vector(void **state)
{
    char h[65];
    (void)state;
    hex("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/users.ini", dir);
    hex("secret-a", hash_a);
    hex("secret-b", hash_b);
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
        cmocka_unit_test(good_file), cmocka_unit_test(refused_at_line),
        cmocka_unit_test(long_line), cmocka_unit_test(file_refused),
        cmocka_unit_test(roles),     cmocka_unit_test(sha256_vector),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
