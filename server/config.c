/* config: defaults, the config file, the environment and the command line
 * for rcstored (see config.h). One table describes every setting; each source
 * goes through the same setter, so a key means the same everywhere and every
 * error names the key and where it came from. */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_connections = 10000;
    cfg->max_data_bytes = 1u << 20;
    cfg->max_refs = 65536;
    cfg->max_message_bytes = 4u << 20;
    cfg->max_output_bytes = 64u << 20;
    cfg->max_session_ttl = 3600;
    cfg->gc_interval_ms = 1000;
    cfg->max_session_holds = 10000000;
    cfg->max_session_watches = 100000;
    cfg->max_session_tokens = 1024;
    cfg->max_tokens = 1u << 20;
    cfg->gc_threshold = 10000;
    cfg->gc_slice_us = 1000;
    cfg->fsync = 1;
    cfg->compact_journal_bytes = 256ull << 20;
    cfg->election_timeout_ms = 1000;
    cfg->raft_snapshot_entries = 4096;
    cfg->idle_timeout_s = 60;
    cfg->slowlog_slower_than_us = 10000;
    cfg->slowlog_max_len = 128;
    cfg->log_level = "info";
    cfg->listen_source = -1;
    cfg->unix_socket_mode = -1;
    for (int i = 0; i < CONFIG_MAX_SETTINGS; i++)
        cfg->origins[i].src = CONFIG_SRC_DEFAULT;
}

int config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            mult = 1ull << 10;
            break;
        case 'm':
            mult = 1ull << 20;
            break;
        case 'g':
            mult = 1ull << 30;
            break;
        case 't':
            mult = 1ull << 40;
            break;
        default:
            return -EINVAL;
        }
        end++;
        if (*end && strcasecmp(end, "b") && strcasecmp(end, "ib"))
            return -EINVAL;
    }
    if (v > UINT64_MAX / mult)
        return -EINVAL;
    *out = v * mult;
    return 0;
}

void config_usage(FILE *out)
{
    fprintf(out, "Usage: rcstored [OPTIONS]\n"
                 "A networked object store with reference-count semantics.\n\n"
                 "  --listen URI             where to listen; repeatable. tcp://HOST:PORT,\n"
                 "                           tls://HOST:PORT (TLS 1.2+) or unix:///PATH\n"
                 "                           (default tcp://127.0.0.1:7373);\n"
                 "                           HOST: IPv4, [IPv6] or a name (its first address)\n"
                 "  --unix-socket-mode OCTAL  permissions of every unix:// listener's socket,\n"
                 "                           set after binding (e.g. 0660: its owner and\n"
                 "                           group may connect); default: what the umask\n"
                 "                           leaves\n"
                 "  --auth-token-file PATH   require hello {auth: <the file's content>} before\n"
                 "                           anything but ping; the file must not be readable\n"
                 "                           by group or others; its token is the admin\n"
                 "                           user \"default\"\n"
                 "  --users-file PATH        users with roles (read, write, admin), names\n"
                 "                           prefixes and certificate CNs: an INI file of\n"
                 "                           [user NAME] sections, not readable by group or\n"
                 "                           others; read again on SIGHUP\n"
                 "  --tls-cert-file PATH     the certificate (PEM, chain after it) that tls://\n"
                 "                           listeners present; reloaded on SIGHUP\n"
                 "  --tls-key-file PATH      its private key (PEM, not encrypted)\n"
                 "  --tls-ca-file PATH       mutual TLS: a client must present a certificate\n"
                 "                           these CAs signed (PEM)\n"
                 "  --max-connections N      open connections at most (default 10000)\n"
                 "  --max-data-bytes SIZE    data of one object at most (default 1MiB)\n"
                 "  --max-refs N             refs of one object at most (default 65536)\n"
                 "  --max-message-bytes SIZE one request at most (default 4MiB)\n"
                 "  --max-output-bytes SIZE  unsent replies per client before it is cut off\n"
                 "                           (default 64MiB)\n"
                 "  --max-client-buffers SIZE  all connections' buffers together; past it the\n"
                 "                           one with the largest is closed. At least twice\n"
                 "                           max-message-bytes (default, or 0: the largest of\n"
                 "                           64MiB, maxmemory/4 and twice max-message-bytes)\n"
                 "  --max-session-ttl SECS   longest lease a client may ask for (default 3600)\n"
                 "  --max-holds-per-session N   holds one session may have (default 10000000)\n"
                 "  --max-watches-per-session N watches one session may have (default 100000)\n"
                 "  --max-tokens-per-session N  unclaimed share tokens one session may have\n"
                 "                           made; 0 = unlimited (default 1024)\n"
                 "  --max-tokens N           unclaimed share tokens in all; 0 = unlimited\n"
                 "                           (default 1048576)\n"
                 "  --maxmemory SIZE         heap bytes past which requests that allocate fail\n"
                 "                           with OUT_OF_MEMORY; 0 = unlimited (default 0)\n"
                 "  --gc-interval-ms MS      collect cycles this often; 0 = only on demand and\n"
                 "                           past the threshold (default 1000)\n"
                 "  --gc-threshold N         collect once this many candidates wait; adapts\n"
                 "                           upward when collections find little (default 10000)\n"
                 "  --gc-slice-us US         longest slice of a periodic sweep before it yields\n"
                 "                           to clients (default 1000)\n"
                 "  --idle-timeout SECS      close a connection that sent part of a message\n"
                 "                           and nothing more for this long; 0 = never\n"
                 "                           (default 60)\n"
                 "  --debug-commands         serve debug_check (the invariant check: slow on\n"
                 "                           big heaps; for tests and soak runs)\n"
                 "  --metrics-listen URI     serve Prometheus metrics at http://HOST:PORT/metrics\n"
                 "                           (tcp://HOST:PORT; default: off), and /healthz,\n"
                 "                           /readyz for probes\n"
                 "  --slowlog-log-slower-than-us US  keep requests that took at least US\n"
                 "                           microseconds in the slow log (the slowlog\n"
                 "                           method); 0 = every request, -1 = none\n"
                 "                           (default 10000)\n"
                 "  --slowlog-max-len N      slow-log entries kept, the oldest dropped first\n"
                 "                           (default 128)\n"
                 "  --log-level LEVEL        debug, info, warn, error or off (default info)\n"
                 "  --data-dir DIR           durable: journal every change and recover it at\n"
                 "                           start (default: none, everything in memory)\n"
                 "  --fsync MODE             with --data-dir, when records reach the disk:\n"
                 "                           always (before the reply), everysec, no (the\n"
                 "                           kernel decides) (default everysec)\n"
                 "  --compact-journal-bytes SIZE  write a snapshot in the background once the\n"
                 "                           journal grew this much; 0 = only on save\n"
                 "                           (default 256MiB)\n"
                 "  --node-id N              run as node N (1 to 2^31) of a Raft cluster\n"
                 "                           (needs --data-dir and --raft-listen)\n"
                 "  --raft-listen HOST:PORT  the Raft port (an IPv4 address)\n"
                 "  --advertise URI          the client address other nodes hand out\n"
                 "                           (tcp://HOST:PORT; default the first --listen)\n"
                 "  --peer ID=RAFTHOST:PORT=tcp://HOST:PORT  an initial member, this node\n"
                 "                           included; repeatable; forms a new cluster on an\n"
                 "                           empty data dir (ignored once it has Raft state)\n"
                 "  --election-timeout-ms N  Raft's election timeout (default 1000)\n"
                 "  --raft-snapshot-entries N  Raft entries between snapshots (default 4096)\n"
                 "  --check-data DIR [--repair]  verify a data directory and exit (0: fit to\n"
                 "                           start from); --repair cuts the journal at its\n"
                 "                           first bad record\n"
                 "  --config PATH            read settings from an INI file (or set\n"
                 "                           RCSTORED_CONFIG); keys are the option names\n"
                 "  -h, --help               show this help and exit\n"
                 "  -V, --version            show the version and exit\n\n"
                 "SIZE takes a suffix k, m, g (powers of 1024). Every option can also be set\n"
                 "as RCSTORED_<NAME> in the environment (RCSTORED_MAX_REFS=100) or as\n"
                 "name = value in the config file; options beat the environment, which\n"
                 "beats the file. SIGINT or SIGTERM stop the server cleanly; SIGHUP\n"
                 "reloads the TLS certificate, key and CA files and the users file (a bad\n"
                 "one is refused with a warning, the one loaded before stays).\n");
}

/* ---- the settings ---- */

/* K_UINT_OFF: K_UINT in [lo, hi], or -1 for "off" (an int64_t field). */
enum kind { K_UINT, K_UINT_OFF, K_SIZE, K_STR, K_FLAG, K_LISTEN, K_LEVEL, K_FSYNC, K_PEER, K_MODE };

struct setting {
    const char *name; /* the option without "--", the file key, the env suffix */
    enum kind kind;
    size_t off;
    uint64_t lo, hi;
};

#define F(field) offsetof(struct config, field)
static const struct setting settings[] = {
    {"listen", K_LISTEN, 0, 0, 0},
    {"unix-socket-mode", K_MODE, F(unix_socket_mode), 0, 0777},
    {"auth-token-file", K_STR, F(auth_token_file), 0, 0},
    {"users-file", K_STR, F(users_file), 0, 0},
    {"tls-cert-file", K_STR, F(tls_cert_file), 0, 0},
    {"tls-key-file", K_STR, F(tls_key_file), 0, 0},
    {"tls-ca-file", K_STR, F(tls_ca_file), 0, 0},
    {"max-connections", K_UINT, F(max_connections), 1, 1000000},
    {"max-data-bytes", K_SIZE, F(max_data_bytes), 0, UINT32_MAX},
    {"max-refs", K_UINT, F(max_refs), 0, 1u << 24},
    {"max-message-bytes", K_SIZE, F(max_message_bytes), 64, 1ull << 32},
    {"max-output-bytes", K_SIZE, F(max_output_bytes), 4096, UINT64_MAX},
    {"max-client-buffers", K_SIZE, F(max_client_buffers), 0, UINT64_MAX},
    {"max-session-ttl", K_UINT, F(max_session_ttl), 0, 365ull * 86400},
    {"maxmemory", K_SIZE, F(maxmemory), 0, UINT64_MAX},
    {"max-holds-per-session", K_UINT, F(max_session_holds), 1, UINT64_MAX},
    {"max-watches-per-session", K_UINT, F(max_session_watches), 0, UINT32_MAX},
    {"max-tokens-per-session", K_UINT, F(max_session_tokens), 0, UINT32_MAX},
    {"max-tokens", K_UINT, F(max_tokens), 0, UINT32_MAX - 1},
    {"gc-interval-ms", K_UINT, F(gc_interval_ms), 0, 86400000},
    {"gc-threshold", K_UINT, F(gc_threshold), 1, 1u << 30},
    {"gc-slice-us", K_UINT, F(gc_slice_us), 10, 10000000},
    {"idle-timeout", K_UINT, F(idle_timeout_s), 0, 86400},
    {"debug-commands", K_FLAG, F(debug_commands), 0, 0},
    {"metrics-listen", K_STR, F(metrics_listen), 0, 0},
    {"slowlog-log-slower-than-us", K_UINT_OFF, F(slowlog_slower_than_us), 0, 86400000000ull},
    {"slowlog-max-len", K_UINT, F(slowlog_max_len), 0, 10000},
    {"log-level", K_LEVEL, F(log_level), 0, 0},
    {"data-dir", K_STR, F(data_dir), 0, 0},
    {"fsync", K_FSYNC, F(fsync), 0, 0},
    {"compact-journal-bytes", K_SIZE, F(compact_journal_bytes), 0, UINT64_MAX},
    {"node-id", K_UINT, F(node_id), 1, 1ull << 31},
    {"raft-listen", K_STR, F(raft_listen), 0, 0},
    {"advertise", K_STR, F(advertise), 0, 0},
    {"peer", K_PEER, 0, 0, 0},
    {"election-timeout-ms", K_UINT, F(election_timeout_ms), 50, 60000},
    {"raft-snapshot-entries", K_UINT, F(raft_snapshot_entries), 16, 1u << 30},
};
#undef F
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

enum source { SRC_FILE, SRC_ENV, SRC_FLAG };
_Static_assert(CONFIG_SRC_DEFAULT != SRC_FILE && CONFIG_SRC_DEFAULT != SRC_ENV &&
                   CONFIG_SRC_DEFAULT != SRC_FLAG,
               "CONFIG_SRC_DEFAULT is no source");

/* Where a value came from, for messages: "--max-refs", "RCSTORED_MAX_REFS"
 * or "rcstored.conf:12: max-refs". */
struct origin {
    enum source src;
    const char *file;
    int line;
};

/* The environment variable of a setting: RCSTORED_ and its name in upper
 * case with '_' for '-' (max-refs: RCSTORED_MAX_REFS). */
static void env_name(const struct setting *st, char *out, size_t len)
{
    snprintf(out, len, "RCSTORED_%s", st->name);
    for (size_t i = 9; out[i]; i++)
        out[i] = out[i] == '-' ? '_' : (char)toupper((unsigned char)out[i]);
}

/* Where a setting was given, as the prefix of its value in messages:
 * "--max-refs ", "RCSTORED_MAX_REFS=" or "rcstored.conf:12: max-refs = ". */
static void where(char *out, size_t len, const struct setting *st, const struct origin *o)
{
    char env[64];
    switch (o->src) {
    case SRC_FLAG:
        snprintf(out, len, "--%s ", st->name);
        break;
    case SRC_ENV:
        env_name(st, env, sizeof(env));
        snprintf(out, len, "%s=", env);
        break;
    case SRC_FILE:
        snprintf(out, len, "%s:%d: %s = ", o->file, o->line, st->name);
    }
}

static int bad(char *err, size_t errlen, const struct setting *st, const struct origin *o,
               const char *val, const char *why)
{
    char pre[320];
    where(pre, sizeof(pre), st, o);
    snprintf(err, errlen, "%s%s: %s", pre, val, why);
    return -EINVAL;
}

/* Keep a copy of s for as long as cfg lives. NULL if out of memory. */
static const char *keep(struct config *cfg, const char *s)
{
    struct config_str *k;
    size_t n = strlen(s);
    if (!(k = malloc(sizeof(*k) + n + 1)))
        return NULL;
    memcpy(k->s, s, n + 1);
    k->next = cfg->strings;
    cfg->strings = k;
    return k->s;
}

static int add_listen(struct config *cfg, const struct setting *st, const struct origin *o,
                      const char *val, char *err, size_t errlen)
{
    const char *copy;
    /* A source that sets listen replaces what a weaker one said. */
    if (cfg->listen_source != (int)o->src) {
        cfg->nlisten = 0;
        cfg->listen_source = (int)o->src;
    }
    if (cfg->nlisten == CONFIG_MAX_LISTEN)
        return bad(err, errlen, st, o, val, "too many listen addresses");
    /* The kernel keeps a unix socket's path in sun_path: a longer one
     * would be cut short, and the socket made somewhere else. */
    if (strncmp(val, "unix://", 7) == 0 && strlen(val + 7) >= CONFIG_UNIX_PATH_MAX) {
        char why[96];
        snprintf(why, sizeof(why), "unix socket path of %zu bytes; the limit is %d",
                 strlen(val + 7), CONFIG_UNIX_PATH_MAX - 1);
        return bad(err, errlen, st, o, val, why);
    }
    if (!(copy = o->src == SRC_FLAG ? val : keep(cfg, val)))
        return bad(err, errlen, st, o, val, "out of memory");
    cfg->listen[cfg->nlisten++] = copy;
    return 0;
}

/* One --peer; as for listen, a stronger source replaces the list. */
static int add_peer(struct config *cfg, const struct setting *st, const struct origin *o,
                    const char *val, char *err, size_t errlen)
{
    const char *copy;
    if (cfg->peer_source != (int)o->src) {
        cfg->npeer = 0;
        cfg->peer_source = (int)o->src;
    }
    if (cfg->npeer == CONFIG_MAX_PEERS)
        return bad(err, errlen, st, o, val, "too many peers");
    if (!(copy = o->src == SRC_FLAG ? val : keep(cfg, val)))
        return bad(err, errlen, st, o, val, "out of memory");
    cfg->peer[cfg->npeer++] = copy;
    return 0;
}

static int set_value(struct config *cfg, const struct setting *st, const struct origin *o,
                     const char *val, char *err, size_t errlen);

/* Set one setting and remember where it came from (config_source). */
static int set(struct config *cfg, const struct setting *st, const struct origin *o,
               const char *val, char *err, size_t errlen)
{
    struct config_origin *w = &cfg->origins[st - settings];
    int rc = set_value(cfg, st, o, val, err, errlen);
    if (rc == 0) {
        w->src = (int)o->src;
        w->line = o->line;
        w->file = o->file;
    }
    return rc;
}

static int set_value(struct config *cfg, const struct setting *st, const struct origin *o,
                     const char *val, char *err, size_t errlen)
{
    char *field = (char *)cfg + st->off, *end;
    uint64_t v = 0;
    enum log_level lvl;
    const char *copy;

    switch (st->kind) {
    case K_LISTEN:
        return add_listen(cfg, st, o, val, err, errlen);
    case K_PEER:
        return add_peer(cfg, st, o, val, err, errlen);
    case K_STR:
    case K_LEVEL:
        if (st->kind == K_LEVEL && log_parse_level(val, &lvl) < 0)
            return bad(err, errlen, st, o, val, "not one of debug, info, warn, error, off");
        if (!(copy = o->src == SRC_FLAG ? val : keep(cfg, val)))
            return bad(err, errlen, st, o, val, "out of memory");
        memcpy(field, &copy, sizeof(copy));
        return 0;
    case K_FSYNC: {
        /* (the order of enum journal_fsync) */
        int f = !strcmp(val, "no")         ? 0
                : !strcmp(val, "everysec") ? 1
                : !strcmp(val, "always")   ? 2
                                           : -1;
        if (f < 0)
            return bad(err, errlen, st, o, val, "not one of always, everysec, no");
        memcpy(field, &f, sizeof(f));
        return 0;
    }
    case K_FLAG: {
        int on;
        if (!strcasecmp(val, "yes") || !strcasecmp(val, "true") || !strcasecmp(val, "on") ||
            !strcmp(val, "1"))
            on = 1;
        else if (!strcasecmp(val, "no") || !strcasecmp(val, "false") || !strcasecmp(val, "off") ||
                 !strcmp(val, "0"))
            on = 0;
        else
            return bad(err, errlen, st, o, val, "not yes or no");
        memcpy(field, &on, sizeof(on));
        return 0;
    }
    case K_MODE: {
        /* Octal, as chmod(1) and Redis's unixsocketperm take it: 0660 or 660. */
        int mode;
        errno = 0;
        v = strtoull(val, &end, 8);
        if (errno || *end || !isdigit((unsigned char)*val) || v > st->hi)
            return bad(err, errlen, st, o, val, "not an octal mode from 0 to 0777 (e.g. 0660)");
        mode = (int)v;
        memcpy(field, &mode, sizeof(mode));
        return 0;
    }
    case K_SIZE:
        if (config_parse_size(val, &v) < 0)
            return bad(err, errlen, st, o, val, "not a size (try 65536, 64k or 4MiB)");
        break;
    case K_UINT_OFF:
        if (strcmp(val, "-1") == 0) {
            int64_t off = -1;
            memcpy(field, &off, sizeof(off));
            return 0;
        }
        /* fall through */
    case K_UINT:
        errno = 0;
        v = strtoull(val, &end, 10);
        if (errno || *end || !isdigit((unsigned char)*val))
            return bad(err, errlen, st, o, val,
                       st->kind == K_UINT ? "not a non-negative integer"
                                          : "not a non-negative integer or -1 (off)");
        break;
    }
    if (v < st->lo || v > st->hi) {
        char range[96];
        snprintf(range, sizeof(range), "out of range [%llu, %llu]", (unsigned long long)st->lo,
                 (unsigned long long)st->hi);
        return bad(err, errlen, st, o, val, range);
    }
    memcpy(field, &v, sizeof(v));
    return 0;
}

/* A setting by name; '_' and '-' are the same in names. */
static const struct setting *find(const char *name, size_t len)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *a = settings[i].name;
        size_t j = 0;
        for (; j < len && a[j]; j++)
            if (tolower((unsigned char)name[j]) != a[j] && !(name[j] == '_' && a[j] == '-'))
                break;
        if (j == len && a[j] == '\0')
            return &settings[i];
    }
    return NULL;
}

/* ---- the config file (inih) ---- */

struct file_ctx {
    struct config *cfg;
    const char *path;
    int line;
    char *err;
    size_t errlen;
    int failed;
};

static int on_ini(void *user, const char *section, const char *name, const char *value
#if INI_HANDLER_LINENO
                  ,
                  int lineno
#endif
)
{
    struct file_ctx *f = user;
    const struct setting *st;
    struct origin o = {SRC_FILE, f->path, 0};
#if INI_HANDLER_LINENO
    o.line = lineno;
#endif
    if (f->failed)
        return 0;
    if (section[0] && strcmp(section, "rcstored") != 0) {
        snprintf(f->err, f->errlen,
                 "%s:0: [%s]: unknown section (settings go at the top or under "
                 "[rcstored])",
                 f->path, section);
        f->failed = 1;
        return 0;
    }
    if (!(st = find(name, strlen(name)))) {
        snprintf(f->err, f->errlen, "%s:0: unknown key \"%s\"", f->path, name);
        f->failed = 1;
        return 0;
    }
    if (set(f->cfg, st, &o, value, f->err, f->errlen) < 0) {
        f->failed = 1;
        return 0;
    }
    return 1;
}

static int read_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    struct file_ctx f = {cfg, path, 0, err, errlen, 0};
    struct stat st;
    int rc;

    /* fopen opens a directory, and inih then reads nothing from it: a
     * start with the defaults, where the user named a file. */
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "cannot read config file %s: it is a directory", path);
        return -EINVAL;
    }
    rc = ini_parse(path, on_ini, &f);
    if (f.failed) {
        /* Without per-key line numbers, inih reports the first bad line. */
        if (rc > 0 && !INI_HANDLER_LINENO) {
            char *colon = strstr(err, ":0:");
            if (colon) {
                char rest[512];
                snprintf(rest, sizeof(rest), "%s", colon + 3);
                snprintf(colon, errlen - (size_t)(colon - err), ":%d:%s", rc, rest);
            }
        }
        return -EINVAL;
    }
    if (rc == -1) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: not a setting (expected name = value)", path, rc);
        return -EINVAL;
    }
    return 0;
}

/* ---- the environment ---- */

static int read_env(struct config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *st = &settings[i];
        struct origin o = {SRC_ENV, NULL, 0};
        char name[64], *val;
        env_name(st, name, sizeof(name));
        if (!(val = getenv(name)))
            continue;
        if (st->kind == K_LISTEN || st->kind == K_PEER) { /* several, by commas or spaces */
            char buf[4096], *tok, *save;
            if (strlen(val) >= sizeof(buf))
                return bad(err, errlen, st, &o, "...", "too long");
            snprintf(buf, sizeof(buf), "%s", val);
            for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
                if ((st->kind == K_LISTEN ? add_listen : add_peer)(cfg, st, &o, tok, err, errlen) <
                    0)
                    return -EINVAL;
            continue;
        }
        if (set(cfg, st, &o, val, err, errlen) < 0)
            return -EINVAL;
    }
    return 0;
}

/* ---- the command line ---- */

enum { OPT_FIRST = 256, OPT_CONFIG = OPT_FIRST + 64 };

static void build_options(struct option *opts)
{
    size_t i;
    for (i = 0; i < NSETTINGS; i++)
        opts[i] = (struct option){settings[i].name,
                                  settings[i].kind == K_FLAG ? no_argument : required_argument,
                                  NULL, OPT_FIRST + (int)i};
    opts[i++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    opts[i++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[i++] = (struct option){"version", no_argument, NULL, 'V'};
    opts[i] = (struct option){NULL, 0, NULL, 0};
}

_Static_assert(sizeof(settings) / sizeof(settings[0]) < 64, "option codes overlap");

int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    struct option opts[NSETTINGS + 4];
    const char *path = getenv("RCSTORED_CONFIG");
    int c, pass, action = CONFIG_RUN;
    cfg->argv = argv;

    build_options(opts);
    /* Pass 0 finds --config, --help and --version and checks the syntax;
     * then the file and the environment; pass 1 applies the options. */
    for (pass = 0; pass < 2; pass++) {
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
            struct origin o = {SRC_FLAG, NULL, 0};
            switch (c) {
            case 'h':
                if (pass == 0)
                    return CONFIG_HELP;
                break;
            case 'V':
                if (pass == 0)
                    action = CONFIG_VERSION;
                break;
            case OPT_CONFIG:
                path = optarg;
                break;
            case ':':
                snprintf(err, errlen, "%s needs a value", argv[optind - 1]);
                return -EINVAL;
            case '?':
                snprintf(err, errlen, "unknown option %s", argv[optind - 1]);
                return -EINVAL;
            default:
                if (pass == 1 &&
                    set(cfg, &settings[c - OPT_FIRST], &o,
                        settings[c - OPT_FIRST].kind == K_FLAG ? "yes" : optarg, err, errlen) < 0)
                    return -EINVAL;
            }
        }
        if (optind < argc) {
            snprintf(err, errlen, "unexpected argument %s", argv[optind]);
            return -EINVAL;
        }
        if (pass == 0) {
            if (action == CONFIG_VERSION)
                return CONFIG_VERSION;
            if (path && path[0] && read_file(cfg, path, err, errlen) < 0)
                return -EINVAL;
            if (read_env(cfg, err, errlen) < 0)
                return -EINVAL;
        }
    }
    /* A request carrying the largest data and the most refs must fit. */
    if (cfg->max_message_bytes < cfg->max_data_bytes + 9 * cfg->max_refs + 64) {
        snprintf(err, errlen,
                 "--max-message-bytes %llu is too small for --max-data-bytes %llu and "
                 "--max-refs %llu (needs at least %llu)",
                 (unsigned long long)cfg->max_message_bytes,
                 (unsigned long long)cfg->max_data_bytes, (unsigned long long)cfg->max_refs,
                 (unsigned long long)(cfg->max_data_bytes + 9 * cfg->max_refs + 64));
        return -EINVAL;
    }
    /* One client sending the largest message must fit: its input buffer
     * grows by doubling, to up to twice the message. */
    if (cfg->max_client_buffers == 0) {
        cfg->max_client_buffers = 64u << 20;
        if (cfg->maxmemory / 4 > cfg->max_client_buffers)
            cfg->max_client_buffers = cfg->maxmemory / 4;
        if (2 * cfg->max_message_bytes > cfg->max_client_buffers)
            cfg->max_client_buffers = 2 * cfg->max_message_bytes;
    } else if (cfg->max_client_buffers < 2 * cfg->max_message_bytes) {
        snprintf(err, errlen,
                 "--max-client-buffers %llu is too small for --max-message-bytes %llu (needs "
                 "at least twice that: %llu)",
                 (unsigned long long)cfg->max_client_buffers,
                 (unsigned long long)cfg->max_message_bytes,
                 (unsigned long long)(2 * cfg->max_message_bytes));
        return -EINVAL;
    }
    if (cfg->nlisten == 0)
        cfg->listen[cfg->nlisten++] = "tcp://127.0.0.1:7373";
    return CONFIG_RUN;
}

int config_source(const struct config *cfg, const char *name, char *out, size_t len)
{
    const struct setting *st = find(name, strlen(name));
    const struct config_origin *w;
    struct origin o;
    if (!st)
        return -EINVAL;
    w = &cfg->origins[st - settings];
    if (w->src == CONFIG_SRC_DEFAULT)
        return -ENOENT;
    o.src = (enum source)w->src;
    o.file = w->file;
    o.line = w->line;
    if (o.src == SRC_FILE && o.line == 0) /* an inih without line numbers */
        snprintf(out, len, "%s: %s = ", o.file, st->name);
    else
        where(out, len, st, &o);
    return 0;
}

_Static_assert(sizeof(settings) / sizeof(settings[0]) <= CONFIG_MAX_SETTINGS,
               "raise CONFIG_MAX_SETTINGS");
_Static_assert(CONFIG_UNIX_PATH_MAX == sizeof(((struct sockaddr_un *)0)->sun_path),
               "CONFIG_UNIX_PATH_MAX is sun_path's size");

void config_close(struct config *cfg)
{
    while (cfg->strings) {
        struct config_str *k = cfg->strings;
        cfg->strings = k->next;
        free(k);
    }
}
