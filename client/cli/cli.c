/* rcstore: the command-line client. One subcommand per protocol method, run
 * once per invocation; with no subcommand, an interactive shell that keeps
 * one connection (so one session and its holds) across commands, and
 * connects again (resuming its lease, if it has one) when the connection
 * breaks. Given a cluster's addresses, a command answered NOT_LEADER runs
 * again on the leader (docs/client-failover.md). Exit status: 0 success, 1
 * the server answered with an error, 2 usage or connection problems, 3 a
 * timeout elapsed. Errors go to stderr as one line, or with --json to
 * stdout as {"error": {"code": ..., "message": ...}}. */
#include "cli_print.h"
#include "rcstore.h"
#include "secret.h"

#include <openssl/evp.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef RCS_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

enum { EXIT_OK = 0, EXIT_SERVER = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

/* The name the CLI gives itself in hello. */
#define CLIENT_NAME "rcstore-cli"

#define MAX_ARGS        256
#define MAX_INPUT_BYTES ((size_t)1 << 32)

/* Options of one command line. */
struct opts {
    int json, raw, acquire, have_limit;
    int help;       /* --help: the command's help, not the command */
    int show_token; /* session status, hello: print the resume token */
    uint64_t limit;
    const char *file;
    const char *name;
    const char *client;
    const char *ttl;  /* session start: "1h", "30m", "90s" or seconds */
    const char *role; /* user-hash: read, write or admin */
    int timeout_s;    /* --timeout: seconds to wait for a reply (watch: for
                       * the notification), -1 forever */
};

struct cli {
    rcs_client *c;
    const char *address;
    /* redis-cli's -h HOST and -p PORT (NULL: not given), made into
     * host_port; -H and -s are the other ways to name the server. */
    const char *host, *port;
    char host_port[300];
    int address_flags;   /* which were given: 1 -H, 2 -h or -p, 4 -s */
    const char *token;   /* -a TOKEN */
    int no_auth_warning; /* --no-auth-warning */
    const char *auth_file;
    const char *user;                /* --user: logs in as this user (with auth_file) */
    char auth[SECRET_MAX_BYTES + 1]; /* the token from auth_file, if any */
    const char *session_file;
    /* TLS: --cacert, --cert, --key (or RCSTORE_CACERT, _CERT, _KEY), --sni,
     * --insecure, --tls. Any of them, or a tls:// address, makes HOST:PORT
     * mean tls://HOST:PORT (rcs_connect_tls). */
    rcs_tls_opts tls;
    int use_tls;
    unsigned tls_flags; /* the TLS options given on the command line (TLS_OPT_ bits) */
    char session_path[1024];
    int in_session;         /* resumed the session of session_file */
    rcs_hello_info resumed; /* what the hello that resumed it said */
    int shell;
    int failover_s;       /* --failover-timeout */
    int retry;            /* the command got NOT_LEADER: run it again */
    double retry_until;   /* while it may (monotonic seconds) */
    struct opts defaults; /* from the command line, for every shell command */
    uint64_t session;     /* the session the shell last saw (0: none yet) */
    uint64_t reconnects;  /* rcs_reconnects when it did */
    const char *histfile; /* the shell's history file, or NULL for none */
    /* The shell: connected says the last try reached the server (the prompt
     * is "not connected> " otherwise, as redis-cli's); greeted that the
     * start-up hello (resume_session, greet) was sent, which a shell
     * started while the server was down sends at its first connection,
     * with start_ttl (--ttl). */
    int connected, greeted;
    uint32_t start_ttl;
};

/* The command line's TLS options, for the warning that a plaintext address
 * ignores them (bit i: tls_opt_names[i]). */
static const char *const tls_opt_names[] = {"--cacert", "--cert",     "--key",
                                            "--sni",    "--insecure", "--tls"};
enum { TLS_OPT_CACERT, TLS_OPT_CERT, TLS_OPT_KEY, TLS_OPT_SNI, TLS_OPT_INSECURE, TLS_OPT_TLS };

struct command {
    const char *name;
    const char *usage;
    const char *help;
    int min, max; /* positional arguments */
    int (*run)(struct cli *cli, const struct opts *o, int argc, char **argv);
};

static const struct command commands[];

/* ---- reporting errors ---- */

/* What to give the CLI when a server answers AUTH_REQUIRED (whose own
 * message is the protocol's: hello {"user": ..., "auth": ...}). */
#define AUTH_HINT "give --user NAME --auth-file FILE (or RCSTORE_USER and RCSTORE_AUTH_FILE)"

/* --json was given: errors go to stdout as JSON (set once the command line
 * is parsed; a program-wide setting, as stdout is). */
static int json_errors;

/* Report one failure: "rcstore: [NAME: ]MESSAGE" on stderr, or with --json
 * {"error": {"code": CODE, "message": MESSAGE}} on stdout and nothing on
 * stderr. name (may be NULL) is the human line's prefix; code the JSON's. */
static void vreport(const char *code, const char *name, const char *fmt, va_list ap)
{
    char msg[1200];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (json_errors) {
        print_json_error(stdout, code, msg);
        fflush(stdout);
    } else if (name) {
        fprintf(stderr, "rcstore: %s: %s\n", name, msg);
    } else {
        fprintf(stderr, "rcstore: %s\n", msg);
    }
}

/* A failure of code without the code's name on the human line. */
static void report(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(code, NULL, fmt, ap);
    va_end(ap);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("USAGE", NULL, fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

/* The JSON code of a library error: the server's own code, or one of the
 * client side's (docs/man/rcstore.1 lists them). */
static const char *json_code(int rc)
{
    switch (rc) {
    case RCS_EIO:
    case RCS_ECONNECT:
        return "CONNECTION_FAILED";
    case RCS_ETIMEDOUT:
        return "TIMEOUT";
    case RCS_EPROTO:
        return "PROTOCOL_ERROR";
    case RCS_ENOMEM:
        return "CLIENT_OUT_OF_MEMORY";
    case RCS_EINVAL:
        return "INVALID_ARGUMENT";
    default:
        return rcs_error_name(rc);
    }
}

/* The exit status of a library error: 3 a timeout, 2 connection trouble
 * (and the library's own failures), 1 an error the server answered (or,
 * for TOO_LARGE, that the library answered for it, nothing sent). */
static int exit_status(int rc)
{
    return rc == RCS_ETIMEDOUT ? EXIT_TIMEOUT : rc <= RCS_EIO ? EXIT_USAGE : EXIT_SERVER;
}

/* Report a library error rc with a message; returns its exit status. The
 * human line names the condition by its JSON code, so that one condition
 * has one name ("rcstore: TIMEOUT: ..." as {"code": "TIMEOUT"}). */
static int fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(json_code(rc), json_code(rc), fmt, ap);
    va_end(ap);
    if (rc == RCS_EAUTH_REQUIRED && !json_errors) /* the server's advice is the protocol's */
        fputs(AUTH_HINT "\n", stderr);
    return exit_status(rc);
}

/* A connection that could not be made: the library's one line, no code
 * name (as "rcstore: cannot resolve nohost: Name or service not known").
 * Returns the exit status. */
static int connect_failed(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int connect_failed(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(json_code(rc), NULL, fmt, ap);
    va_end(ap);
    return exit_status(rc);
}

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The library's message for the last call. A one-shot command never makes
 * a next request, so the library's "; the next request reconnects" (said
 * of a lost connection) is dropped there; the shell keeps it. */
static const char *last_error(struct cli *cli)
{
    static const char tail[] = "; the next request reconnects";
    static char buf[1024];
    const char *m = rcs_last_error(cli->c), *at;
    if (cli->shell || !(at = strstr(m, tail)))
        return m;
    snprintf(buf, sizeof(buf), "%.*s%s", (int)(at - m), m, at + sizeof(tail) - 1);
    return buf;
}

/* Report a failed call (exit_status says how it exits). A NOT_LEADER
 * (nothing was done) within the failover timeout is not reported: run()
 * runs the command again, and the library moves to the leader at its next
 * request. */
static int call_failed(struct cli *cli, int rc)
{
    if (rc == RCS_ENOT_LEADER && now_s() < cli->retry_until) {
        cli->retry = 1;
        return EXIT_SERVER;
    }
    return fail(rc, "%s", last_error(cli));
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_id(const char *s, uint64_t *id)
{
    if (parse_u64(s, id) < 0 || *id == 0) {
        usage_error("not an object id: %s", s);
        return -1;
    }
    return 0;
}

static int parse_ids(int argc, char **argv, uint64_t **ids)
{
    *ids = calloc((size_t)argc + 1, sizeof(uint64_t));
    if (!*ids)
        return -1;
    for (int i = 0; i < argc; i++) {
        if (parse_id(argv[i], &(*ids)[i]) < 0) {
            free(*ids);
            return -1;
        }
    }
    return 0;
}

/* Read all of a file ("-" is stdin) into *data. 0 or -1 (reported). */
static int slurp(const char *path, char **data, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 4096, n = 0;
    char *p;

    if (!f)
        return usage_error("cannot open %s: %s", path, strerror(errno)), -1;
    p = malloc(cap);
    while (p) {
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            char *q = cap < MAX_INPUT_BYTES ? realloc(p, cap * 2) : NULL;
            if (!q) {
                free(p);
                p = NULL;
                break;
            }
            p = q;
            cap *= 2;
        }
    }
    if (f != stdin)
        fclose(f);
    if (!p)
        return usage_error("%s is too large", path), -1;
    *data = p;
    *len = n;
    return 0;
}

/* The data of create / set-data: --file, or an argument ("-" is stdin), or
 * stdin when it is not a terminal. *used says how many arguments it took. */
static int get_data(const struct opts *o, int argc, char **argv, char **data, size_t *len,
                    int *used)
{
    *used = 0;
    if (o->file)
        return slurp(o->file, data, len);
    if (argc > 0) {
        *used = 1;
        if (strcmp(argv[0], "-") == 0)
            return slurp("-", data, len);
        *len = strlen(argv[0]);
        *data = malloc(*len + 1);
        if (!*data)
            return -1;
        memcpy(*data, argv[0], *len + 1);
        return 0;
    }
    if (!isatty(STDIN_FILENO))
        return slurp("-", data, len);
    usage_error("no data: give it as an argument, with --file, or on stdin");
    return -1;
}

/* Print a result the way the command's user expects. */
static void show(const struct opts *o, const rcs_value *v)
{
    if (o->json) {
        print_json(stdout, v);
        return;
    }
    switch (v->type) {
    case RCS_NIL:
        puts("OK");
        break;
    case RCS_STR:
        printf("%.*s\n", (int)v->via.bytes.len, v->via.bytes.ptr);
        break;
    case RCS_MAP:
        print_map(stdout, v, 0);
        break;
    default:
        print_inline(stdout, v);
        putchar('\n');
    }
}

static void show_notification(rcs_notification *n);

/* Print notifications that arrived (shell mode). */
static void show_notifications(struct cli *cli)
{
    rcs_notification *n;
    while (rcs_next_notification(cli->c, 0, &n) == 0)
        show_notification(n);
}

/* Print one notification and free it. */
static void show_notification(rcs_notification *n)
{
    const rcs_value *p = n->params;
    if (strcmp(n->method, "freed") == 0 && p->type == RCS_ARRAY && p->via.array.len == 2) {
        printf("(notification) object %" PRIu64 " freed (%s)\n",
               rcs_value_uint(&p->via.array.items[0], 0),
               p->via.array.items[1].type == RCS_STR ? p->via.array.items[1].via.bytes.ptr : "?");
    } else {
        printf("(notification) %s ", n->method);
        print_inline(stdout, p);
        putchar('\n');
    }
    rcs_notification_free(n);
}

/* Run one call and print its result. */
static int simple(struct cli *cli, const struct opts *o, int rc_send)
{
    rcs_value *v;
    int rc = rc_send < 0 ? rc_send : rcs_recv(cli->c, &v);
    if (rc < 0)
        return call_failed(cli, rc);
    show(o, v);
    rcs_value_free(v);
    return EXIT_OK;
}

/* ---- commands ---- */

/* Print hello's result (owned by the caller) without its resume token,
 * which resumes the session and all its holds for whoever has it, unless
 * --show-token asked for it (hex for people, base64 in JSON as every bin). */
static void show_hello(const struct opts *o, rcs_value *v)
{
    size_t i, n;
    if (v->type != RCS_MAP) {
        show(o, v);
        return;
    }
    n = v->via.map.len;
    for (i = 0; i < n; i++) {
        const rcs_value *k = &v->via.map.keys[i];
        if (k->type == RCS_STR && strcmp(k->via.bytes.ptr, "token") == 0)
            break;
    }
    if (o->show_token || i == n) {
        if (o->json)
            print_json(stdout, v);
        else
            print_map_hex(stdout, v, "token");
        return;
    }
    {
        /* Move the token to the end and print one entry fewer; the value
         * keeps all its entries for rcs_value_free. */
        rcs_value k = v->via.map.keys[i], val = v->via.map.vals[i];
        memmove(&v->via.map.keys[i], &v->via.map.keys[i + 1], (n - i - 1) * sizeof(k));
        memmove(&v->via.map.vals[i], &v->via.map.vals[i + 1], (n - i - 1) * sizeof(val));
        v->via.map.keys[n - 1] = k;
        v->via.map.vals[n - 1] = val;
        v->via.map.len = n - 1;
        show(o, v);
        v->via.map.len = n;
    }
}

/* hello, or session status: the session's details. */
static int hello_cmd(struct cli *cli, const struct opts *o, const char *client)
{
    rcs_value *v;
    int rc = client ? rcs_call(cli->c, &v, "hello", "{ss}", "client", client)
                    : rcs_call(cli->c, &v, "hello", "");
    if (rc < 0)
        return call_failed(cli, rc);
    show_hello(o, v);
    rcs_value_free(v);
    return EXIT_OK;
}

/* The library sends the login (rcs_set_auth) with every hello. */
static int cmd_hello(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return hello_cmd(cli, o, o->client ? o->client : CLIENT_NAME);
}

/* Load the token of -a or --auth-file (common/secret: private to its
 * owner, trailing newlines dropped) and hand it and --user to the library,
 * which sends them with every hello (greet's first, a reconnect's too). */
static int authenticate(struct cli *cli)
{
    char err[512];
    size_t n;
    int rc;
    if (cli->token) {
        n = strlen(cli->token);
        if (n == 0 || n > SECRET_MAX_BYTES)
            return usage_error("-a wants a token of 1 to %d bytes", SECRET_MAX_BYTES);
        memcpy(cli->auth, cli->token, n + 1);
    } else if (!cli->auth_file) {
        return 0;
    } else if (secret_read_file(cli->auth_file, cli->auth, sizeof(cli->auth), &n, err,
                                sizeof(err)) < 0) {
        return usage_error("--auth-file %s", err);
    }
    if ((rc = rcs_set_auth(cli->c, cli->user, cli->auth, n)) < 0)
        return call_failed(cli, rc);
    return 0;
}

/* The first hello, unless resume_session's was: the login, the CLI's name
 * and, for a shell with --ttl, a lease (which the library resumes after a
 * reconnect). It tells the library the server's limits, so that data over
 * max_data_bytes is refused before it is sent (TOO_LARGE). Without a token
 * a server that wants one answers AUTH_REQUIRED: that is left for the
 * command to meet (ping needs no login). 0 or the exit status (reported). */
static int greet(struct cli *cli, uint32_t ttl)
{
    rcs_hello_opts ho = {.client = CLIENT_NAME, .ttl = ttl};
    rcs_hello_info info;
    int rc;
    if (cli->in_session)
        return 0;
    rc = rcs_hello_with(cli->c, &ho, &info);
    if (rc == RCS_EAUTH_REQUIRED && !cli->auth[0])
        return 0;
    if (rc < 0)
        return call_failed(cli, rc);
    cli->session = info.session;
    return 0;
}

/* user-hash: the users file's line for a token read on stdin (trailing
 * newlines dropped, as from a token file), or with --name and --role a
 * whole [user NAME] section ending with a blank line (so that sections
 * appended with >> stay apart). The token is never printed. */
static int cmd_user_hash(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    static char tok[SECRET_MAX_BYTES + 2];
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hn = 0;
    size_t n = fread(tok, 1, sizeof(tok), stdin);
    if (isatty(STDIN_FILENO) && n == 0)
        return usage_error("user-hash reads the token on stdin");
    if ((o->name != NULL) != (o->role != NULL))
        return usage_error("user-hash: --name and --role go together");
    if (o->role && strcmp(o->role, "read") && strcmp(o->role, "write") && strcmp(o->role, "admin"))
        return usage_error("user-hash: --role is read, write or admin, not %s", o->role);
    if (o->name && (!*o->name || strpbrk(o->name, " \t[]") || strlen(o->name) > 64))
        return usage_error("user-hash: --name must be 1 to 64 bytes without blanks or brackets");
    if (n > SECRET_MAX_BYTES)
        return usage_error("user-hash: the token is longer than %d bytes", SECRET_MAX_BYTES);
    while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
        n--;
    if (n == 0)
        return usage_error("user-hash: no token on stdin");
    if (EVP_Digest(tok, n, h, &hn, EVP_sha256(), NULL) != 1) {
        explicit_bzero(tok, sizeof(tok));
        report("INTERNAL", "user-hash: SHA-256 failed");
        return EXIT_SERVER;
    }
    explicit_bzero(tok, sizeof(tok));
    if (o->name)
        printf("[user %s]\n", o->name);
    printf("token-sha256 = ");
    for (unsigned int i = 0; i < hn; i++)
        printf("%02x", h[i]);
    printf("\n");
    if (o->role) /* a section ends with a blank line: appended ones stay apart */
        printf("role = %s\n\n", o->role);
    return EXIT_OK;
}

static int cmd_ping(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return simple(cli, o, rcs_send(cli->c, "ping", ""));
}

static int cmd_create(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    char *data;
    size_t len;
    uint64_t *refs, id;
    rcs_value *v;
    int used, rc;

    if (get_data(o, argc, argv, &data, &len, &used) < 0)
        return EXIT_USAGE;
    if (parse_ids(argc - used, argv + used, &refs) < 0) {
        free(data);
        return EXIT_USAGE;
    }
    rc = rcs_send(cli->c, "create", "yU", data, len, refs, (size_t)(argc - used));
    free(data);
    free(refs);
    if (rc < 0 || (rc = rcs_recv(cli->c, &v)) < 0)
        return call_failed(cli, rc);
    id = rcs_value_uint(v, 0);
    if (o->name && (rc = rcs_bind(cli->c, o->name, id)) < 0) {
        rcs_value_free(v);
        return call_failed(cli, rc);
    }
    show(o, v);
    rcs_value_free(v);
    return EXIT_OK;
}

static int cmd_get(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id;
    rcs_value *v;
    int rc;
    if (parse_id(argv[0], &id) < 0)
        return EXIT_USAGE;
    if ((rc = rcs_call(cli->c, &v, "get", "u", id)) < 0)
        return call_failed(cli, rc);
    if (o->raw) {
        const rcs_value *d = rcs_map_get(v, "data");
        if (d && (d->type == RCS_BIN || d->type == RCS_STR))
            fwrite(d->via.bytes.ptr, 1, d->via.bytes.len, stdout);
    } else {
        show(o, v);
    }
    rcs_value_free(v);
    return EXIT_OK;
}

static int cmd_set_data(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id;
    char *data;
    size_t len;
    int used, rc;
    if (parse_id(argv[0], &id) < 0 || get_data(o, argc - 1, argv + 1, &data, &len, &used) < 0)
        return EXIT_USAGE;
    if (used != argc - 1) {
        free(data);
        return usage_error("set-data takes ID and one DATA");
    }
    rc = rcs_send(cli->c, "set_data", "uy", id, data, len);
    free(data);
    return simple(cli, o, rc);
}

static int cmd_set_refs(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id, *refs;
    int rc;
    if (parse_id(argv[0], &id) < 0 || parse_ids(argc - 1, argv + 1, &refs) < 0)
        return EXIT_USAGE;
    rc = rcs_send(cli->c, "set_refs", "uU", id, refs, (size_t)(argc - 1));
    free(refs);
    return simple(cli, o, rc);
}

/* Commands whose params are all ids or counts: "uu", "u", ... */
/* ID, then (if given) a second ID or, with counted, a count N. */
static int ids_call_n(struct cli *cli, const struct opts *o, const char *method, int argc,
                      char **argv, int counted)
{
    uint64_t a = 0, b = 0;
    if (parse_id(argv[0], &a) < 0)
        return EXIT_USAGE;
    if (argc > 1 && counted && (parse_u64(argv[1], &b) < 0 || b == 0 || b > UINT32_MAX)) {
        usage_error("not a count (1 to %u): %s", UINT32_MAX, argv[1]);
        return EXIT_USAGE;
    }
    if (argc > 1 && !counted && parse_id(argv[1], &b) < 0)
        return EXIT_USAGE;
    if (argc > 1)
        return simple(cli, o, rcs_send(cli->c, method, "uu", a, b));
    return simple(cli, o, rcs_send(cli->c, method, "u", a));
}

static int ids_call(struct cli *cli, const struct opts *o, const char *method, int argc,
                    char **argv)
{
    return ids_call_n(cli, o, method, argc, argv, 0);
}

static int cmd_link(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return ids_call(cli, o, "link", argc, argv);
}
static int cmd_unlink(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return ids_call(cli, o, "unlink", argc, argv);
}
static int cmd_incref(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return ids_call_n(cli, o, "incref", argc, argv, 1);
}
static int cmd_decref(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return ids_call_n(cli, o, "decref", argc, argv, 1);
}
static int cmd_stat(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return ids_call(cli, o, "stat", argc, argv);
}

static int cmd_bind(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id;
    if (parse_id(argv[1], &id) < 0)
        return EXIT_USAGE;
    return simple(cli, o, rcs_send(cli->c, "bind", "su", argv[0], id));
}

static int cmd_unbind(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return simple(cli, o, rcs_send(cli->c, "unbind", "s", argv[0]));
}

static int cmd_lookup(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return simple(cli, o, rcs_send(cli->c, "lookup", "sb", argv[0], o->acquire));
}

static void print_name_pairs(const rcs_value *v)
{
    for (size_t i = 0; i < v->via.array.len; i++) {
        const rcs_value *pair = &v->via.array.items[i];
        if (pair->type == RCS_ARRAY && pair->via.array.len == 2)
            printf("%s\t%" PRIu64 "\n", pair->via.array.items[0].via.bytes.ptr,
                   rcs_value_uint(&pair->via.array.items[1], 0));
    }
}

/* The server returns at most 10,000 names a request: page with the last
 * name, printing each page as it comes (--json gathers them into one
 * array, with rcs_names). */
static int cmd_names(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    const char *prefix = argc > 0 ? argv[0] : "";
    uint64_t limit = o->have_limit ? o->limit : UINT64_MAX, seen = 0;
    char after[RCS_NAME_MAX];
    size_t alen = 0;
    rcs_value *v;
    int rc, more = 1;

    if (o->json || limit == 0) {
        if ((rc = rcs_names(cli->c, prefix, limit, &v)) < 0)
            return call_failed(cli, rc);
        if (o->json)
            show(o, v);
        rcs_value_free(v);
        return EXIT_OK;
    }
    while (more && seen < limit) {
        if ((rc = rcs_names_page(cli->c, prefix, limit - seen, after, &alen, &more, &v)) < 0)
            return call_failed(cli, rc);
        print_name_pairs(v);
        seen += v->via.array.len;
        rcs_value_free(v);
    }
    return EXIT_OK;
}

/* rcs_referrers pages through the heap with the server's cursor, so that a
 * big heap costs many short requests instead of one refused long one. */
static int cmd_referrers(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id, *all = NULL;
    size_t n = 0;
    int rc = EXIT_OK, err;
    if (parse_id(argv[0], &id) < 0)
        return EXIT_USAGE;
    err = rcs_referrers(cli->c, id, o->have_limit ? o->limit : UINT64_MAX, &all, &n);
    if (err < 0) {
        rc = call_failed(cli, err);
        goto out;
    }
    if (o->json)
        putchar('[');
    for (size_t i = 0; i < n; i++)
        printf(o->json ? "%s%" PRIu64 : "%s%" PRIu64 "\n", o->json && i ? ", " : "", all[i]);
    if (o->json)
        puts("]");
out:
    free(all);
    return rc;
}

/* One-shot: watch and wait for the notification (the session ends at exit,
 * so a watch that returned at once would be useless). Shell: just register. */
static int cmd_watch(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    rcs_notification *n;
    uint64_t id;
    int rc;
    if (parse_id(argv[0], &id) < 0)
        return EXIT_USAGE;
    if ((rc = rcs_watch(cli->c, id)) < 0)
        return call_failed(cli, rc);
    if (cli->shell) {
        puts("OK (notifications print before the next prompt)");
        return EXIT_OK;
    }
    rc = rcs_next_notification(cli->c, o->timeout_s < 0 ? -1 : o->timeout_s * 1000, &n);
    if (rc == RCS_ETIMEDOUT)
        return fail(rc, "object %" PRIu64 " was not freed within --timeout %d s", id, o->timeout_s);
    if (rc < 0)
        return call_failed(cli, rc);
    if (o->json) {
        print_json(stdout, n->params);
    } else {
        const rcs_value *p = n->params;
        printf("freed %" PRIu64 " (%s)\n", rcs_value_uint(&p->via.array.items[0], 0),
               p->via.array.len > 1 && p->via.array.items[1].type == RCS_STR
                   ? p->via.array.items[1].via.bytes.ptr
                   : "?");
    }
    rcs_notification_free(n);
    return EXIT_OK;
}

static int cmd_share(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id, ttl;
    rcs_value *v;
    int rc;
    if (parse_id(argv[0], &id) < 0)
        return EXIT_USAGE;
    if (argc > 1 && (parse_u64(argv[1], &ttl) < 0 || ttl == 0))
        return usage_error("ttl wants seconds, not %s", argv[1]);
    rc = argc > 1 ? rcs_call(cli->c, &v, "share", "uu", id, ttl)
                  : rcs_call(cli->c, &v, "share", "u", id);
    if (rc < 0)
        return call_failed(cli, rc);
    if (o->json) {
        show(o, v);
    } else { /* the token as hex, ready for `rcstore claim` */
        for (size_t i = 0; i < v->via.bytes.len; i++)
            printf("%02x", (unsigned char)v->via.bytes.ptr[i]);
        putchar('\n');
    }
    rcs_value_free(v);
    return EXIT_OK;
}

/* A token as share prints it: hex, or base64 (share --json). The bytes'
 * count, or -1. */
static int parse_token(const char *s, unsigned char *tok, size_t cap)
{
    size_t len = strlen(s), n = 0;
    unsigned char tmp[96];
    int got;
    if (len > 0 && len % 2 == 0 && len / 2 <= cap) {
        for (; n < len / 2 && isxdigit((unsigned char)s[2 * n]) &&
               isxdigit((unsigned char)s[2 * n + 1]);
             n++) {
            unsigned int b;
            sscanf(s + 2 * n, "%2x", &b);
            tok[n] = (unsigned char)b;
        }
        if (n == len / 2)
            return (int)n;
    }
    /* base64 (RFC 4648, padded), as --json prints every bin */
    if (len == 0 || len % 4 || len / 4 * 3 > sizeof(tmp) ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != len ||
        (got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len)) < 0)
        return -1;
    got -= (s[len - 1] == '=') + (s[len - 2] == '=');
    if (got <= 0 || (size_t)got > cap)
        return -1;
    memcpy(tok, tmp, (size_t)got);
    return got;
}

static int cmd_claim(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    unsigned char tok[64];
    int n = parse_token(argv[0], tok, sizeof(tok));
    if (n < 0)
        return usage_error("claim wants the token that share printed (hex, or base64 from "
                           "share --json)");
    return simple(cli, o, rcs_send(cli->c, "claim", "y", tok, (size_t)n));
}

/* why, as a chain people read: name "jobs" -> 7 -> 12 -> 19 */
static int cmd_why(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    const rcs_value *root, *path, *name;
    uint64_t id;
    rcs_value *v;
    int rc;
    if (parse_id(argv[0], &id) < 0)
        return EXIT_USAGE;
    if ((rc = rcs_call(cli->c, &v, "why", "u", id)) < 0)
        return call_failed(cli, rc);
    root = rcs_map_get(v, "root");
    path = rcs_map_get(v, "path");
    name = rcs_map_get(v, "name");
    if (o->json || !root || root->type != RCS_STR || !path || path->type != RCS_ARRAY) {
        show(o, v);
    } else if (strcmp(root->via.bytes.ptr, "none") == 0) {
        printf("no root: %" PRIu64 " is kept alive only by a garbage cycle (run gc)\n", id);
    } else if (strcmp(root->via.bytes.ptr, "unknown") == 0) {
        printf("unknown: %" PRIu64 " is no root, and no path to it was found within one "
               "request's budget (%" PRIu64 " steps); referrers %" PRIu64
               " lists what refers to it\n",
               id, rcs_value_uint(rcs_map_get(v, "examined"), 0), id);
    } else {
        if (strcmp(root->via.bytes.ptr, "name") == 0 && name && name->type == RCS_STR)
            printf("name \"%s\"", name->via.bytes.ptr);
        else if (strcmp(root->via.bytes.ptr, "session") == 0)
            printf("session %" PRIu64, rcs_value_uint(rcs_map_get(v, "session"), 0));
        else
            printf("%s", root->via.bytes.ptr);
        for (size_t i = 0; i < path->via.array.len; i++)
            printf(" -> %" PRIu64, rcs_value_uint(&path->via.array.items[i], 0));
        putchar('\n');
    }
    rcs_value_free(v);
    return EXIT_OK;
}

/* "1h", "30m", "90s", "3600": seconds. 0 or -1. */
static int parse_duration(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (*end == 'h')
        mult = 3600;
    else if (*end == 'm')
        mult = 60;
    else if (*end == 'd')
        mult = 86400;
    else if (*end && *end != 's')
        return -1;
    if (*end && end[1])
        return -1;
    *out = v * mult;
    return 0;
}

static int write_session_file(const char *path, const uint8_t *token, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f;
    if (fd < 0 || fchmod(fd, 0600) < 0 || !(f = fdopen(fd, "w"))) {
        usage_error("cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        fprintf(f, "%02x", token[i]);
    fputc('\n', f);
    return fclose(f) == 0 ? 0 : -1;
}

/* session status, one-shot: the session file's session as the hello that
 * resumed it said (session, resumed, ttl: the lease, which runs again from
 * this command's exit) and the file's path; the token only with
 * --show-token (hex for people, base64 in JSON). */
static int session_status(struct cli *cli, const struct opts *o)
{
    const rcs_hello_info *in = &cli->resumed;
    rcs_value k[5], v[5], m = {.type = RCS_MAP, .via.map = {k, v, 0}};
    static const char *const names[] = {"session", "resumed", "ttl", "session_file", "token"};
    for (size_t i = 0; i < 5; i++) {
        k[i].type = RCS_STR;
        k[i].via.bytes.ptr = names[i];
        k[i].via.bytes.len = strlen(names[i]);
    }
    v[0].type = RCS_UINT;
    v[0].via.u = in->session;
    v[1].type = RCS_BOOL;
    v[1].via.boolean = in->resumed != 0;
    v[2].type = RCS_UINT;
    v[2].via.u = in->ttl;
    v[3].type = RCS_STR;
    v[3].via.bytes.ptr = cli->session_path;
    v[3].via.bytes.len = strlen(cli->session_path);
    v[4].type = RCS_BIN;
    v[4].via.bytes.ptr = (const char *)in->token;
    v[4].via.bytes.len = in->token_len;
    m.via.map.len = o->show_token ? 5 : 4;
    if (o->json)
        print_json(stdout, &m);
    else
        print_map_hex(stdout, &m, "token");
    return EXIT_OK;
}

/* session start|end|status: a lease shared by consecutive invocations. */
static int cmd_session(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t ttl = 3600, n = 0;
    int rc;
    if (strcmp(argv[0], "start") == 0) {
        rcs_hello_opts ho = {0};
        rcs_hello_info info;
        if (o->ttl && (parse_duration(o->ttl, &ttl) < 0 || ttl == 0 || ttl > UINT32_MAX))
            return usage_error("--ttl wants a duration such as 90s, 30m, 1h or 3600");
        ho.ttl = (uint32_t)ttl;
        if ((rc = rcs_hello_with(cli->c, &ho, &info)) < 0)
            return call_failed(cli, rc);
        if (!info.token_len ||
            write_session_file(cli->session_path, info.token, info.token_len) < 0)
            return EXIT_USAGE;
        printf("session %" PRIu64 " started: lease %" PRIu64 " s after each command; token in %s\n",
               info.session, info.ttl, cli->session_path);
        return EXIT_OK;
    }
    if (strcmp(argv[0], "status") == 0 && cli->shell) /* the shell's own session */
        return hello_cmd(cli, o, NULL);
    if (!cli->in_session)
        return usage_error("no session (%s does not exist): rcstore session start",
                           cli->session_path);
    if (strcmp(argv[0], "end") == 0) {
        if ((rc = rcs_release_all(cli->c, &n)) < 0 ||
            (rc = rcs_hello_lease(cli->c, 0, NULL, 0, NULL)) < 0)
            return call_failed(cli, rc);
        unlink(cli->session_path);
        printf("session ended: %" PRIu64 " hold(s) released\n", n);
        return EXIT_OK;
    }
    if (strcmp(argv[0], "status") == 0)
        return session_status(cli, o);
    return usage_error("session start [--ttl DURATION] | end | status [--show-token]");
}

/* Resume the session of the session file, if there is one. */
static int resume_session(struct cli *cli, const char *command)
{
    unsigned char tok[64];
    char hex[160];
    size_t n = 0;
    FILE *f;
    int rc;
    if (command && strcmp(command, "session") == 0 && access(cli->session_path, F_OK) != 0)
        return 0;
    if (!(f = fopen(cli->session_path, "r")))
        return 0; /* no session: each command is its own */
    if (!fgets(hex, sizeof(hex), f))
        hex[0] = '\0';
    fclose(f);
    for (; n < sizeof(tok) && isxdigit((unsigned char)hex[2 * n]) &&
           isxdigit((unsigned char)hex[2 * n + 1]);
         n++) {
        unsigned int b;
        sscanf(hex + 2 * n, "%2x", &b);
        tok[n] = (unsigned char)b;
    }
    {
        /* rcs_hello_with: a reconnect (a new leader) resumes it again. It
         * sends the login of rcs_set_auth, if any. */
        rcs_hello_opts ho = {.resume = tok, .resume_len = n, .client = CLIENT_NAME};
        rcs_hello_info info;
        rc = n ? rcs_hello_with(cli->c, &ho, &info) : RCS_ESESSION_EXPIRED;
        if (rc == 0) {
            cli->session = info.session;
            cli->resumed = info;
        }
    }
    if (rc == RCS_ESESSION_EXPIRED) {
        report("SESSION_EXPIRED",
               "the session in %s has expired (or a server without --data-dir restarted); "
               "its holds are gone. Start another: rcstore session start",
               cli->session_path);
        if (command && strcmp(command, "session") == 0)
            unlink(cli->session_path);
        return EXIT_SERVER;
    }
    if (rc < 0)
        return call_failed(cli, rc);
    cli->in_session = 1;
    return 0;
}

static int cmd_release_all(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return simple(cli, o, rcs_send(cli->c, "release_all", ""));
}

static int cmd_gc(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return simple(cli, o, rcs_send(cli->c, "gc", ""));
}

static int cmd_save(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return simple(cli, o, rcs_send(cli->c, "save", ""));
}

static int cmd_stats(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return simple(cli, o, rcs_send(cli->c, "stats", ""));
}

static int cmd_slowlog_reset(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    return simple(cli, o, rcs_send(cli->c, "slowlog_reset", ""));
}

/* The string under key of map m, or "". */
static const char *map_str(const rcs_value *m, const char *key)
{
    const rcs_value *v = rcs_map_get(m, key);
    return v && v->type == RCS_STR ? v->via.bytes.ptr : "";
}

/* slowlog [N] | reset: the server's slowest requests, newest first, one a
 * line (as redis-cli's SLOWLOG GET, flattened): id, when (UTC), duration,
 * method, client, session, user. */
static int cmd_slowlog(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t n = 10;
    rcs_value *v;
    int rc;
    if (argc > 0 && strcmp(argv[0], "reset") == 0)
        return cmd_slowlog_reset(cli, o, 0, NULL);
    if (argc > 0 && parse_u64(argv[0], &n) < 0)
        return usage_error("usage: slowlog [N] | slowlog reset (N: how many, default 10)");
    if ((rc = rcs_call(cli->c, &v, "slowlog", "u", n)) < 0)
        return call_failed(cli, rc);
    if (o->json || v->type != RCS_ARRAY) {
        show(o, v);
    } else if (v->via.array.len == 0) {
        puts("(empty)");
    } else {
        for (size_t i = 0; i < v->via.array.len; i++) {
            const rcs_value *e = &v->via.array.items[i];
            time_t t = (time_t)rcs_value_uint(rcs_map_get(e, "time"), 0);
            struct tm tm;
            char when[32] = "?";
            if (gmtime_r(&t, &tm))
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%" PRIu64 " %s %" PRIu64 " us %s client %s session %" PRIu64 "%s%s\n",
                   rcs_value_uint(rcs_map_get(e, "id"), 0), when,
                   rcs_value_uint(rcs_map_get(e, "duration_us"), 0), map_str(e, "method"),
                   map_str(e, "client"), rcs_value_uint(rcs_map_get(e, "session"), 0),
                   map_str(e, "user")[0] ? " user " : "", map_str(e, "user"));
        }
    }
    rcs_value_free(v);
    return EXIT_OK;
}

/* ---- cluster: one subcommand per cluster* method ---- */

static int cluster_status(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    rcs_value *v;
    int rc;
    if ((rc = rcs_call(cli->c, &v, "cluster", "")) < 0)
        return call_failed(cli, rc);
    if (o->json)
        print_json(stdout, v);
    else
        print_cluster(stdout, v);
    rcs_value_free(v);
    return EXIT_OK;
}

/* A node id: 1 to 2^31 (SPEC section 9); 0 only where allow0. */
static int parse_node_id(const char *s, uint64_t *id, int allow0)
{
    if (parse_u64(s, id) < 0 || *id > ((uint64_t)1 << 31) || (*id == 0 && !allow0)) {
        usage_error("not a node id (1 to 2147483648): %s", s);
        return -1;
    }
    return 0;
}

static int cluster_add(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id;
    if (parse_node_id(argv[0], &id, 0) < 0)
        return EXIT_USAGE;
    return simple(cli, o, rcs_send(cli->c, "cluster_add", "uss", id, argv[1], argv[2]));
}

static int cluster_remove(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id;
    if (parse_node_id(argv[0], &id, 0) < 0)
        return EXIT_USAGE;
    return simple(cli, o, rcs_send(cli->c, "cluster_remove", "u", id));
}

static int cluster_transfer(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    uint64_t id = 0;
    rcs_value *v;
    int rc;
    if (argc > 0 && parse_node_id(argv[0], &id, 1) < 0)
        return EXIT_USAGE;
    if ((rc = rcs_call(cli->c, &v, "cluster_transfer", "u", id)) < 0)
        return call_failed(cli, rc);
    if (o->json)
        print_json(stdout, v);
    else
        printf("leader is now node %" PRIu64 "\n", rcs_value_uint(rcs_map_get(v, "leader"), 0));
    rcs_value_free(v);
    if (cli->shell) {
        /* The old leader closes its clients' connections as it steps down:
         * wait (up to a second) for that close, so that the shell's next
         * command starts on a new connection rather than being sent into
         * the closing one (it would fail with EIO, its outcome unknown). */
        rcs_notification *n;
        while (rcs_next_notification(cli->c, 1000, &n) == 0)
            show_notification(n);
    }
    return EXIT_OK;
}

static const struct command cluster_commands[] = {
    {"status", "", "this node's view: role, term, indexes, members, lags", 0, 0, cluster_status},
    {"add", "ID RAFTADDR CLIENTADDR", "add a node (waits until it is a voter)", 3, 3, cluster_add},
    {"remove", "ID", "remove a node", 1, 1, cluster_remove},
    {"transfer", "[ID]", "hand leadership to ID (default: any voter)", 0, 1, cluster_transfer},
    {NULL, NULL, NULL, 0, 0, NULL},
};

static int cmd_cluster(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    for (const struct command *c = cluster_commands; c->name; c++) {
        if (strcmp(c->name, argv[0]) != 0)
            continue;
        if (argc - 1 < c->min || argc - 1 > c->max)
            return usage_error("usage: cluster %s %s", c->name, c->usage);
        return c->run(cli, o, argc - 1, argv + 1);
    }
    return usage_error("usage: cluster status | add ID RAFTADDR CLIENTADDR | remove ID | "
                       "transfer [ID]");
}

static void usage(FILE *f);
static int command_help(const char *name, const char *sub);
static const struct command *find(const char *name);

/* help: all of it; help CMD: that command's only. */
static int cmd_help(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    if (argc > 0)
        return command_help(argv[0], argc > 1 ? argv[1] : NULL);
    usage(stdout);
    return EXIT_OK;
}

static const struct command commands[] = {
    {"hello", "[--client NAME] [--show-token]",
     "greet the server; shows session and limits (the resume token only with --show-token)", 0, 0,
     cmd_hello},
    {"ping", "", "check the server answers", 0, 0, cmd_ping},
    {"create", "[DATA|-] [REF...] [--file F] [--name NAME]",
     "create an object; --name binds it so it outlives this command", 0, MAX_ARGS, cmd_create},
    {"get", "ID [--raw]", "show an object (--raw: its data bytes only)", 1, 1, cmd_get},
    {"set-data", "ID [DATA|-] [--file F]", "replace an object's data", 1, 2, cmd_set_data},
    {"set-refs", "ID [REF...]", "replace an object's refs", 1, MAX_ARGS, cmd_set_refs},
    {"link", "ID TARGET", "append TARGET to ID's refs", 2, 2, cmd_link},
    {"unlink", "ID TARGET", "remove the first TARGET from ID's refs", 2, 2, cmd_unlink},
    {"incref", "ID [N]", "add holds for this session", 1, 2, cmd_incref},
    {"decref", "ID [N]", "drop holds of this session", 1, 2, cmd_decref},
    {"stat", "ID", "show an object's refcount parts", 1, 1, cmd_stat},
    {"bind", "NAME ID", "bind a name to an object (a durable root)", 2, 2, cmd_bind},
    {"unbind", "NAME", "remove a name", 1, 1, cmd_unbind},
    {"lookup", "NAME [--acquire]", "the object bound to NAME", 1, 1, cmd_lookup},
    {"names", "[PREFIX] [--limit N]", "list names, sorted", 0, 1, cmd_names},
    {"referrers", "ID [--limit N]", "objects whose refs contain ID", 1, 1, cmd_referrers},
    {"watch", "ID [--timeout SECS]", "wait until ID is freed (exit 3 after --timeout)", 1, 1,
     cmd_watch},
    {"release-all", "", "drop every hold of this session", 0, 0, cmd_release_all},
    {"share", "ID [TTL]", "a one-use token holding ID for TTL seconds (default 60)", 1, 2,
     cmd_share},
    {"claim", "TOKEN", "take the object of a share token (hex, or share --json's base64)", 1, 1,
     cmd_claim},
    {"why", "ID", "why ID is alive: a shortest path from a root", 1, 1, cmd_why},
    {"session", "start [--ttl 1h] | end | status [--show-token]",
     "a lease that consecutive commands share (token in the session file, shown by status "
     "only with --show-token)",
     1, 1, cmd_session},
    {"gc", "", "run a full cycle collection", 0, 0, cmd_gc},
    {"stats", "", "server statistics", 0, 0, cmd_stats},
    {"save", "", "write a snapshot of a --data-dir server now (waits for it)", 0, 0, cmd_save},
    {"slowlog", "[N] | reset", "the N slowest recent requests, newest first (default 10); reset", 0,
     1, cmd_slowlog},
    {"slowlog-reset", "", "= slowlog reset", 0, 0, cmd_slowlog_reset},
    {"cluster", "status|add|remove|transfer ...", "a cluster's members and leader (see below)", 1,
     4, cmd_cluster},
    /* The methods' own names, as for every other method. */
    {"cluster-add", "ID RAFTADDR CLIENTADDR", "= cluster add", 3, 3, cluster_add},
    {"cluster-remove", "ID", "= cluster remove", 1, 1, cluster_remove},
    {"cluster-transfer", "[ID]", "= cluster transfer", 0, 1, cluster_transfer},
    {"user-hash", "[--name NAME --role ROLE]",
     "token-sha256 = HEX of a token on stdin, for --users-file (with --name and --role: the whole "
     "[user] section); needs no server",
     0, 0, cmd_user_hash},
    {"help", "[COMMAND]", "this help, or one command's", 0, 2, cmd_help},
    {NULL, NULL, NULL, 0, 0, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: rcstore [-h HOST] [-p PORT] [-s SOCKET] [-H HOST:PORT[,...]] [OPTIONS]\n"
               "               [--json] COMMAND [ARGS...]\n"
               "       rcstore [-h HOST] [-p PORT] [-s SOCKET] [-H ...] [--ttl DURATION]\n"
               "               (interactive shell)\n"
               "       rcstore help COMMAND, rcstore COMMAND --help: one command's help\n\n"
               "Commands (method names with '_' work too):\n");
    for (const struct command *c = commands; c->name; c++) {
        char left[80];
        snprintf(left, sizeof(left), "%s %s", c->name, c->usage);
        fprintf(f, "  %-46s %s\n", left, c->help);
    }
    fprintf(f, "\nCluster commands:\n");
    for (const struct command *c = cluster_commands; c->name; c++) {
        char left[80];
        snprintf(left, sizeof(left), "cluster %s %s", c->name, c->usage);
        fprintf(f, "  %-46s %s\n", left, c->help);
    }
    fprintf(f, "\nOptions:\n"
               "  -h HOST, -p PORT      the server's host (default 127.0.0.1; a name is\n"
               "                        resolved) and port (default 7373), as redis-cli\n"
               "  -H, --host HOST:PORT[,HOST:PORT...]\n"
               "                        server address, or a cluster's nodes (default\n"
               "                        127.0.0.1:7373); a command answered NOT_LEADER runs\n"
               "                        again on the leader\n"
               "  --failover-timeout SECS  how long a command may wait for a leader (10)\n"
               "  -s, --socket PATH     connect to a unix socket instead\n"
               "  --auth-file PATH      authenticate with the token in PATH (or set\n"
               "                        RCSTORE_AUTH_FILE); mode 0600 or 0400\n"
               "  -a TOKEN              authenticate with TOKEN (others may see it in ps\n"
               "                        and in your history: prefer --auth-file; warns\n"
               "                        unless --no-auth-warning)\n"
               "  --user NAME           log in as this user of the server's --users-file,\n"
               "                        with --auth-file's token (or set RCSTORE_USER);\n"
               "                        without it the token is the user \"default\"\n"
               "  --tls                 TLS: HOST:PORT means tls://HOST:PORT (so does any\n"
               "                        option below, or a tls:// address; write tcp://\n"
               "                        for plaintext)\n"
               "  --cacert PATH         CA certificates (PEM) that may sign the server's\n"
               "                        (or RCSTORE_CACERT; default: the system's store)\n"
               "  --cert PATH --key PATH  a client certificate and its key, for servers\n"
               "                        that want one (or RCSTORE_CERT, RCSTORE_KEY)\n"
               "  --sni NAME            the name the server's certificate must carry\n"
               "                        (default: the address's host)\n"
               "  --insecure            do not verify the server's certificate (testing)\n"
               "  --json                print results as JSON: an object's data (every bin)\n"
               "                        as a base64 string; errors as {\"error\": {\"code\":\n"
               "                        ..., \"message\": ...}} on stdout\n"
               "  --timeout SECS        wait at most SECS for each reply (watch: for the\n"
               "                        notification); then exit 3\n"
               "  --ttl DURATION        the shell's session keeps a lease (90s, 30m, 1h):\n"
               "                        a reconnect resumes it, holds intact\n"
               "  --help                this help;  -V, --version  the version\n\n"
               "  --session-file PATH   where session start keeps its token (or set\n"
               "                        RCSTORE_SESSION_FILE; default $XDG_RUNTIME_DIR or\n"
               "                        $HOME/.rcstore_session)\n\n"
               "RCSTORE_ADDRESS sets the default address (tcp://HOST:PORT, tls://HOST:PORT\n"
               "or unix:///PATH, or a comma-separated list of them).\n"
               "Each command runs in its own session, whose holds end when it exits, unless\n"
               "'rcstore session start' began one that later commands resume.\n"
               "In the shell, Tab completes command names; history is kept in\n"
               "$RCSTORE_HISTFILE (default ~/.rcstore_history), saved after each command.\n"
               "Exit status: 0 success, 1 the server answered with an error, 2 usage or\n"
               "connection error, 3 a timeout elapsed.\n");
}

/* One command's help (cluster's with its subcommands); sub, a cluster
 * subcommand, narrows it to that one. 0, or 2 for an unknown name. */
static int command_help(const char *name, const char *sub)
{
    const struct command *c = find(name);
    if (!c)
        return usage_error("unknown command '%s' (try help)", name);
    if (c->run == cmd_cluster) {
        int shown = 0;
        for (const struct command *k = cluster_commands; k->name; k++)
            shown += !sub || strcmp(sub, k->name) == 0;
        if (!shown)
            return usage_error("unknown cluster command '%s' (try help cluster)", sub);
        printf("Usage: cluster %s\n", c->usage);
        for (const struct command *k = cluster_commands; k->name; k++) {
            if (!sub || strcmp(sub, k->name) == 0)
                printf("  cluster %s%s%s\n      %s\n", k->name, k->usage[0] ? " " : "", k->usage,
                       k->help);
        }
        return EXIT_OK;
    }
    printf("Usage: %s%s%s\n    %s\n", c->name, c->usage[0] ? " " : "", c->usage, c->help);
    if (c->run != cmd_help && c->run != cmd_user_hash)
        printf("    Options of every command: --json, --timeout SECS (rcstore --help lists "
               "all)\n");
    return EXIT_OK;
}

/* Split options from positionals. Returns 0, or EXIT_USAGE (reported). */
static int parse_opts(struct cli *cli, struct opts *o, int argc, char **argv, int *npos, char **pos,
                      int global)
{
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL                                                                                   \
    do {                                                                                           \
        if (!val)                                                                                  \
            return usage_error("%s needs a value", a);                                             \
        i++;                                                                                       \
    } while (0)
        if (strcmp(a, "--") == 0) {
            while (++i < argc)
                pos[(*npos)++] = argv[i];
            break;
        }
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (*npos >= MAX_ARGS)
                return usage_error("too many arguments");
            pos[(*npos)++] = argv[i];
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--raw") == 0) {
            o->raw = 1;
        } else if (strcmp(a, "--acquire") == 0) {
            o->acquire = 1;
        } else if (strcmp(a, "--file") == 0 || strcmp(a, "-f") == 0) {
            NEED_VAL;
            o->file = val;
        } else if (strcmp(a, "--name") == 0) {
            NEED_VAL;
            o->name = val;
        } else if (strcmp(a, "--ttl") == 0) {
            NEED_VAL;
            o->ttl = val;
        } else if (global && strcmp(a, "--session-file") == 0) {
            NEED_VAL;
            cli->session_file = val;
        } else if (strcmp(a, "--client") == 0) {
            NEED_VAL;
            o->client = val;
        } else if (strcmp(a, "--limit") == 0) {
            NEED_VAL;
            if (parse_u64(val, &o->limit) < 0)
                return usage_error("--limit wants a number, not %s", val);
            o->have_limit = 1;
        } else if (strcmp(a, "--timeout") == 0) {
            uint64_t t;
            NEED_VAL;
            if (parse_u64(val, &t) < 0 || t > 86400 * 24)
                return usage_error("--timeout wants seconds (up to 24 days), not %s", val);
            o->timeout_s = (int)t;
        } else if (global && (strcmp(a, "-H") == 0 || strcmp(a, "--host") == 0)) {
            NEED_VAL; /* HOST:PORT, tcp://HOST:PORT, or a list of them: librcstore's forms */
            cli->address = val;
            cli->address_flags |= 1;
        } else if (strcmp(a, "-h") == 0) {
            /* redis-cli's -h HOST. Alone (or before another option) it is
             * more likely a request for help than a host named "-x". */
            if (!global)
                return usage_error("-h HOST goes on rcstore's command line; for help: "
                                   "help COMMAND or COMMAND --help");
            if (!val || val[0] == '-')
                return usage_error("-h needs a host name (-h HOST); for help: rcstore --help");
            i++;
            cli->host = val;
            cli->address_flags |= 2;
        } else if (global && strcmp(a, "-p") == 0) {
            uint64_t port;
            NEED_VAL;
            if (parse_u64(val, &port) < 0 || port == 0 || port > 65535)
                return usage_error("-p wants a port number (1 to 65535), not %s", val);
            cli->port = val;
            cli->address_flags |= 2;
        } else if (global && strcmp(a, "-a") == 0) {
            NEED_VAL;
            cli->token = val;
        } else if (global && strcmp(a, "--no-auth-warning") == 0) {
            cli->no_auth_warning = 1;
        } else if (strcmp(a, "--show-token") == 0) {
            o->show_token = 1;
        } else if (global && strcmp(a, "--failover-timeout") == 0) {
            uint64_t t;
            NEED_VAL;
            if (parse_u64(val, &t) < 0 || t > 86400)
                return usage_error("--failover-timeout wants seconds, not %s", val);
            cli->failover_s = (int)t;
        } else if (global && strcmp(a, "--auth-file") == 0) {
            NEED_VAL;
            cli->auth_file = val;
        } else if (global && strcmp(a, "--user") == 0) {
            NEED_VAL;
            cli->user = val;
        } else if (strcmp(a, "--role") == 0) {
            NEED_VAL;
            o->role = val;
        } else if (global && strcmp(a, "--cacert") == 0) {
            NEED_VAL;
            cli->tls.ca_file = val;
            cli->tls_flags |= 1u << TLS_OPT_CACERT;
        } else if (global && strcmp(a, "--cert") == 0) {
            NEED_VAL;
            cli->tls.cert_file = val;
            cli->tls_flags |= 1u << TLS_OPT_CERT;
        } else if (global && strcmp(a, "--key") == 0) {
            NEED_VAL;
            cli->tls.key_file = val;
            cli->tls_flags |= 1u << TLS_OPT_KEY;
        } else if (global && strcmp(a, "--sni") == 0) {
            NEED_VAL;
            cli->tls.server_name = val;
            cli->tls_flags |= 1u << TLS_OPT_SNI;
        } else if (global && strcmp(a, "--insecure") == 0) {
            cli->tls.insecure = 1;
            cli->tls_flags |= 1u << TLS_OPT_INSECURE;
        } else if (global && strcmp(a, "--tls") == 0) {
            cli->use_tls = 1;
            cli->tls_flags |= 1u << TLS_OPT_TLS;
        } else if (global && (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0)) {
            static char addr[300];
            NEED_VAL;
            snprintf(addr, sizeof(addr), "unix://%s", val);
            cli->address = addr;
            cli->address_flags |= 4;
        } else if (strcmp(a, "--help") == 0) {
            o->help = 1;
        } else if (global && (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0)) {
            printf("rcstore %s\n", RCS_VERSION);
            exit(EXIT_OK);
        } else {
            return usage_error("unknown option %s (try --help)", a);
        }
#undef NEED_VAL
    }
    return 0;
}

/* Whether every item of an address list is an explicit tcp:// or a unix
 * socket: plaintext whatever the TLS options say. */
static int plaintext_only(const char *list)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (!(n > 6 && strncmp(p, "tcp://", 6) == 0) && !(n > 7 && strncmp(p, "unix://", 7) == 0) &&
            p[0] != '/')
            return 0;
        p += n + (p[n] == ',');
    }
    return 1;
}

/* One line on stderr when TLS options given on the command line (not
 * from the environment, which may serve other addresses) meet an address
 * that is plaintext: they would be ignored, a token sent in clear. The
 * command still runs. */
static void warn_tls_ignored(const struct cli *cli)
{
    char opts[128] = "";
    size_t len = 0;
    int n = 0;
    if (!cli->tls_flags || !cli->address || !plaintext_only(cli->address))
        return;
    for (unsigned i = 0; i < sizeof(tls_opt_names) / sizeof(tls_opt_names[0]); i++) {
        if (cli->tls_flags & (1u << i)) {
            len += (size_t)snprintf(opts + len, sizeof(opts) - len, "%s%s", n ? "/" : "",
                                    tls_opt_names[i]);
            n++;
        }
    }
    fprintf(stderr, "rcstore: warning: %s appl%s only to TLS; %s is plaintext\n", opts,
            n > 1 ? "y" : "ies", cli->address);
}

static const struct command *find(const char *name)
{
    char norm[64];
    size_t i;
    for (i = 0; i < sizeof(norm) - 1 && name[i]; i++)
        norm[i] = name[i] == '_' ? '-' : name[i];
    norm[i] = '\0';
    for (const struct command *c = commands; c->name; c++) {
        if (strcmp(c->name, norm) == 0)
            return c;
    }
    return NULL;
}

/* Run a command; one answered NOT_LEADER (nothing done) runs again from
 * the start until the failover timeout: the library has moved to the
 * leader by then, or backs off while there is none. */
static int run(struct cli *cli, const struct opts *o, int argc, char **argv)
{
    const struct command *c = find(argv[0]);
    int status;
    if (!c)
        return usage_error("unknown command '%s' (try help)", argv[0]);
    if (o->help)
        return command_help(argv[0], argc > 1 ? argv[1] : NULL);
    if (argc - 1 < c->min || argc - 1 > c->max)
        return usage_error("usage: %s %s", c->name, c->usage);
    if (cli->c) /* each command its own --timeout (the shell's lines too) */
        rcs_set_timeout(cli->c, o->timeout_s < 0 ? -1 : o->timeout_s * 1000);
    cli->retry_until = now_s() + cli->failover_s;
    do {
        cli->retry = 0;
        status = c->run(cli, o, argc - 1, argv + 1);
        while (cli->retry && rcs_pending(cli->c) > 0) /* replies of an abandoned command */
            rcs_recv(cli->c, NULL);
    } while (cli->retry);
    return status;
}

/* Split a shell line into words: spaces separate, '...' is literal, "..."
 * takes backslash escapes. Returns the count or -1 for an open quote. */
static int split(char *line, char **words, int max)
{
    int n = 0;
    char *r = line, *w = line;
    while (*r) {
        while (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r')
            r++;
        if (!*r)
            break;
        if (n == max)
            return -1;
        words[n++] = w;
        while (*r && *r != ' ' && *r != '\t' && *r != '\n' && *r != '\r') {
            if (*r == '\'' || *r == '"') {
                char q = *r++;
                while (*r && *r != q) {
                    if (q == '"' && *r == '\\' && r[1]) {
                        r++;
                        *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
                        r++;
                    } else {
                        *w++ = *r++;
                    }
                }
                if (*r != q)
                    return -1;
                r++;
            } else {
                *w++ = *r++;
            }
        }
        if (*r)
            r++;
        *w++ = '\0';
    }
    return n;
}

#ifdef RCS_HAVE_LIBEDIT
/* Tab completion: the first word is a command name (the table's, and
 * quit/exit); later words complete as file names (libedit's default). */
static char *complete_command(const char *text, int state)
{
    static const char *const extra[] = {"quit", "exit", NULL};
    static size_t i, len;
    if (state == 0) {
        i = 0;
        len = strlen(text);
    }
    for (;;) {
        size_t k = i++;
        size_t ncmd = sizeof(commands) / sizeof(commands[0]) - 1;
        const char *name = k < ncmd ? commands[k].name : extra[k - ncmd];
        if (!name)
            return NULL;
        if (strncmp(name, text, len) == 0)
            return strdup(name);
    }
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    if (start > 0)
        return NULL;
    rl_attempted_completion_over = 1; /* no file names for a command */
    return rl_completion_matches(text, complete_command);
}
#endif

/* The shell's history file: $RCSTORE_HISTFILE ("" or /dev/null: none), else
 * ~/.rcstore_history; made private (0600: lines may hold tokens). */
static void history_open(struct cli *cli)
{
#ifdef RCS_HAVE_LIBEDIT
    static char path[1024];
    const char *env = getenv("RCSTORE_HISTFILE");
    int fd;
    if (env)
        snprintf(path, sizeof(path), "%s", env);
    else if (getenv("HOME"))
        snprintf(path, sizeof(path), "%s/.rcstore_history", getenv("HOME"));
    if (!path[0] || strcmp(path, "/dev/null") == 0)
        return;
    cli->histfile = path;
    stifle_history(1000);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
        close(fd);
    read_history(path);
    rl_readline_name = "rcstore";
    rl_attempted_completion_function = complete;
#else
    (void)cli;
#endif
}

/* A line from the terminal (libedit: editing, history, completion; each
 * line is added to the history file at once, so a shell that is killed
 * keeps it), or from a pipe. NULL at the end. */
static char *read_line(struct cli *cli, const char *prompt)
{
#ifdef RCS_HAVE_LIBEDIT
    if (isatty(STDIN_FILENO)) {
        char *l = readline(prompt);
        if (l && *l) {
            add_history(l);
            if (cli->histfile)
                write_history(cli->histfile);
        }
        return l;
    }
#endif
    (void)cli;
    {
        size_t cap = 0;
        char *l = NULL;
        if (isatty(STDIN_FILENO)) {
            fputs(prompt, stdout);
            fflush(stdout);
        }
        if (getline(&l, &cap, stdin) < 0) {
            free(l);
            return NULL;
        }
        return l;
    }
}

/* The session this connection is attached to (hello without options
 * changes nothing), or 0. */
static uint64_t current_session(struct cli *cli)
{
    rcs_value *v;
    uint64_t id;
    if (rcs_call(cli->c, &v, "hello", "") < 0)
        return 0;
    id = rcs_value_uint(rcs_map_get(v, "session"), 0);
    rcs_value_free(v);
    return id;
}

/* Before a shell command that needs the server: a ping, through which the
 * library connects again if the connection broke (a server restart, a
 * new leader), replaying the login and resuming the session's lease if it
 * has one. Says on stderr what became of the session; a lease that could
 * not be resumed (the server lost it) gives way to a new session, with a
 * lease again for a shell started with --ttl. If the server cannot be
 * reached the command is not run: the next one tries again. Late replies
 * to a command that timed out are read (and dropped) first. 0 or the exit
 * status (reported). */
static int shell_ready(struct cli *cli)
{
    int rc, lost = 0;
    uint64_t id;
    while (rcs_pending(cli->c) > 0) {
        if ((rc = rcs_recv(cli->c, NULL)) == RCS_ETIMEDOUT)
            return fail(rc, "the server has not answered an earlier command yet");
    }
    rc = rcs_ping(cli->c);
    if (rc == RCS_ESESSION_EXPIRED) { /* the lease is gone: the next call starts anew */
        lost = 1;
        rc = rcs_ping(cli->c);
    }
    cli->connected = rc >= 0 || (rc != RCS_ECONNECT && rc != RCS_EIO);
    if (rc < 0)
        return call_failed(cli, rc);
    if (!cli->greeted) { /* the server was down when the shell started */
        cli->greeted = 1;
        cli->reconnects = rcs_reconnects(cli->c);
        if ((rc = resume_session(cli, NULL)) != 0 || (rc = greet(cli, cli->start_ttl)) != 0)
            return rc;
        fprintf(stderr, "connected to %s\n", rcs_address(cli->c));
        return 0;
    }
    if (rcs_reconnects(cli->c) == cli->reconnects && !lost)
        return 0;
    cli->reconnects = rcs_reconnects(cli->c);
    id = current_session(cli);
    if (id && id == cli->session && !lost) {
        fprintf(stderr, "reconnected; session %" PRIu64 " resumed\n", id);
        return 0;
    }
    if (cli->defaults.ttl && !cli->in_session) { /* a lease again, for the new session */
        uint64_t ttl = 0;
        rcs_hello_opts ho = {.client = CLIENT_NAME};
        rcs_hello_info info;
        parse_duration(cli->defaults.ttl, &ttl); /* checked at start */
        ho.ttl = (uint32_t)ttl;
        if ((rc = rcs_hello_with(cli->c, &ho, &info)) < 0)
            return call_failed(cli, rc);
        id = info.session;
    }
    fprintf(stderr, "reconnected; new session %" PRIu64 " (the old one's holds are gone)\n", id);
    cli->session = id;
    return 0;
}

static int shell(struct cli *cli)
{
    char prompt[320], *line, *words[MAX_ARGS + 8], *pos[MAX_ARGS + 8];
    int status = EXIT_OK;

    cli->shell = 1;
    cli->reconnects = rcs_reconnects(cli->c);
    snprintf(prompt, sizeof(prompt), "%s> ",
             cli->connected ? rcs_address(cli->c) : "not connected");
    if (isatty(STDIN_FILENO)) {
        history_open(cli);
        printf("rcstore %s: one session for this whole shell. 'help' lists commands, "
               "'quit' leaves.\n",
               RCS_VERSION);
    }
    while ((line = read_line(cli, prompt)) != NULL) {
        struct opts o = cli->defaults;
        int n = split(line, words, MAX_ARGS), npos;
        if (n < 0) {
            status = usage_error("unbalanced quotes or too many words");
        } else if (n > 0 && (strcmp(words[0], "quit") == 0 || strcmp(words[0], "exit") == 0)) {
            free(line);
            break;
        } else if (n > 0 && parse_opts(cli, &o, n, words, &npos, pos, 0) == 0 && npos > 0) {
            const struct command *c = find(pos[0]);
            int offline = !c || o.help || c->run == cmd_help || c->run == cmd_user_hash;
            if (!offline)
                rcs_set_timeout(cli->c, o.timeout_s < 0 ? -1 : o.timeout_s * 1000);
            if (offline || (status = shell_ready(cli)) == 0)
                status = run(cli, &o, npos, pos);
        }
        free(line);
        show_notifications(cli);
        fflush(stdout);
        /* The prompt names the node in use: it changes when a leader does. */
        snprintf(prompt, sizeof(prompt), "%s> ",
                 cli->connected ? rcs_address(cli->c) : "not connected");
    }
    return status;
}

/* -h HOST and -p PORT as an address for the library ([HOST] for IPv6). */
static void host_port(struct cli *cli)
{
    const char *h = cli->host ? cli->host : "127.0.0.1";
    const char *p = cli->port ? cli->port : "7373";
    if (strchr(h, ':') && h[0] != '[')
        snprintf(cli->host_port, sizeof(cli->host_port), "[%s]:%s", h, p);
    else
        snprintf(cli->host_port, sizeof(cli->host_port), "%s:%s", h, p);
    cli->address = cli->host_port;
}

int main(int argc, char **argv)
{
    struct cli cli;
    char *pos[MAX_ARGS + 8];
    int npos, rc, status;
    uint64_t ttl = 0;

    memset(&cli, 0, sizeof(cli));
    cli.defaults.timeout_s = -1;
    cli.failover_s = 10;
    cli.address = getenv("RCSTORE_ADDRESS");
    cli.auth_file = getenv("RCSTORE_AUTH_FILE");
    cli.user = getenv("RCSTORE_USER");
    cli.session_file = getenv("RCSTORE_SESSION_FILE");
    cli.tls.ca_file = getenv("RCSTORE_CACERT");
    cli.tls.cert_file = getenv("RCSTORE_CERT");
    cli.tls.key_file = getenv("RCSTORE_KEY");
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        json_errors |= strcmp(argv[i], "--json") == 0; /* for errors in the options too */
    if (parse_opts(&cli, &cli.defaults, argc - 1, argv + 1, &npos, pos, 1) != 0)
        return EXIT_USAGE;
    if (npos > 0 && strcmp(pos[0], "help") == 0)
        return npos > 1 ? command_help(pos[1], npos > 2 ? pos[2] : NULL) : (usage(stdout), EXIT_OK);
    if (cli.defaults.help)
        return npos > 0 ? command_help(pos[0], npos > 1 ? pos[1] : NULL) : (usage(stdout), EXIT_OK);
    if (npos > 0 && !find(pos[0]))
        return usage_error("unknown command '%s' (try --help)", pos[0]);
    if (npos > 0 && find(pos[0])->run == cmd_user_hash) /* needs no server */
        return run(&cli, &cli.defaults, npos, pos);
    if (cli.address_flags & (cli.address_flags - 1))
        return usage_error("the server is named twice: give -h/-p, -H or -s, one of them");
    if (cli.address_flags & 2)
        host_port(&cli);
    if (cli.user && !*cli.user)
        cli.user = NULL; /* RCSTORE_USER= set empty: none */
    if (cli.token && !cli.no_auth_warning)
        fprintf(stderr, "rcstore: warning: a token given with -a may be seen by others (ps, "
                        "shell history); --auth-file PATH is safer\n");
    if (cli.user && !cli.auth_file && !cli.token)
        return usage_error("--user %s needs --auth-file (the user's token)", cli.user);
    if (npos == 0 && cli.defaults.ttl &&
        (parse_duration(cli.defaults.ttl, &ttl) < 0 || ttl == 0 || ttl > UINT32_MAX))
        return usage_error("--ttl wants a duration such as 90s, 30m, 1h or 3600");
    warn_tls_ignored(&cli);
    if (cli.use_tls || cli.tls.ca_file || cli.tls.cert_file || cli.tls.key_file ||
        cli.tls.server_name || cli.tls.insecure || (cli.address && strstr(cli.address, "tls://"))) {
        if (!cli.address) /* the default address, over TLS */
            cli.address = "127.0.0.1:7373";
        rc = rcs_connect_tls(cli.address, &cli.tls, &cli.c);
    } else {
        rc = rcs_open(cli.address, &cli.c);
    }
    cli.shell = npos == 0; /* a shell's messages keep "the next request reconnects" */
    cli.connected = rc == 0;
    cli.start_ttl = (uint32_t)ttl;
    if (rc < 0 && cli.shell && cli.c && (rc == RCS_ECONNECT || rc == RCS_EIO)) {
        /* The shell opens anyway, as redis-cli's "not connected>": each
         * command tries to connect first (shell_ready). */
        connect_failed(rc, "%s", last_error(&cli));
    } else if (rc < 0) {
        if (cli.c)
            status = connect_failed(rc, "%s", last_error(&cli));
        else
            status =
                connect_failed(rc, "cannot connect to %s: %s",
                               cli.address ? cli.address : RCS_DEFAULT_ADDRESS, rcs_strerror(rc));
        rcs_close(cli.c);
        return status;
    }
    rcs_set_failover_timeout(cli.c, cli.failover_s * 1000);
    if (cli.session_file)
        snprintf(cli.session_path, sizeof(cli.session_path), "%s", cli.session_file);
    else if (getenv("XDG_RUNTIME_DIR"))
        snprintf(cli.session_path, sizeof(cli.session_path), "%s/rcstore.session",
                 getenv("XDG_RUNTIME_DIR"));
    else
        snprintf(cli.session_path, sizeof(cli.session_path), "%s/.rcstore_session",
                 getenv("HOME") ? getenv("HOME") : ".");
    cli.greeted = cli.connected;
    if ((status = authenticate(&cli)) != 0 ||
        (cli.greeted && ((status = resume_session(&cli, npos > 0 ? pos[0] : NULL)) != 0 ||
                         (status = greet(&cli, (uint32_t)ttl)) != 0))) {
        rcs_close(cli.c);
        return status;
    }
    status = npos > 0 ? run(&cli, &cli.defaults, npos, pos) : shell(&cli);
    fflush(stdout);
    rcs_close(cli.c);
    return status;
}
