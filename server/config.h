/* config: rcstored's settings, their defaults, and where they come from: an
 * INI config file (--config or RCSTORED_CONFIG, read with inih), RCSTORED_*
 * environment variables, and the command line, in rising precedence.
 * Parsing never exits the process: it returns a code and a message naming
 * the key and its source, so that main decides, and tests can drive it. */
#ifndef RCS_SERVER_CONFIG_H
#define RCS_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LISTEN   16
#define CONFIG_MAX_SETTINGS 40
#define CONFIG_MAX_PEERS    16
/* sizeof(sun_path) on Linux: a unix socket path has at most 107 bytes. */
#define CONFIG_UNIX_PATH_MAX 108
#define CONFIG_SRC_DEFAULT   (-1)

/* Where one setting's value came from (private; see config_source). */
struct config_origin {
    int src;          /* CONFIG_SRC_DEFAULT, or config.c's source */
    int line;         /* in the config file */
    const char *file; /* the config file's path, for as long as argv/environ live */
};

/* Strings read from the file or the environment, owned by the config. */
struct config_str {
    struct config_str *next;
    char s[];
};

struct config {
    const char *listen[CONFIG_MAX_LISTEN]; /* URIs, from argv or owned strings */
    int nlisten;
    int listen_source;    /* private: the source the listen list came from */
    int unix_socket_mode; /* chmod of every unix:// listener once bound; -1: the umask's */
    uint64_t max_connections;
    uint64_t max_data_bytes;
    uint64_t max_refs;
    uint64_t max_message_bytes;
    uint64_t max_output_bytes;
    uint64_t max_client_buffers; /* all connections' memory; 0 in a source: the default */
    uint64_t max_session_ttl;
    uint64_t maxmemory; /* 0: unlimited */
    uint64_t max_session_holds;
    uint64_t max_session_watches;
    uint64_t max_session_tokens;
    uint64_t max_tokens;
    uint64_t gc_interval_ms; /* 0: no periodic collection */
    uint64_t gc_threshold;
    uint64_t gc_slice_us;
    uint64_t idle_timeout_s; /* close a connection stalled mid-message; 0: never */
    int debug_commands;      /* serve debug_check */
    const char *log_level;
    const char *auth_token_file;    /* NULL: no authentication */
    const char *users_file;         /* --users-file (SPEC section 10), or NULL */
    const char *tls_cert_file;      /* PEM certificate chain for tls:// listeners */
    const char *tls_key_file;       /* its PEM private key */
    const char *tls_ca_file;        /* mutual TLS: clients need a certificate it signed */
    const char *metrics_listen;     /* tcp://HOST:PORT for GET /metrics, or NULL */
    int64_t slowlog_slower_than_us; /* log requests at least this long; -1: none, 0: all */
    uint64_t slowlog_max_len;       /* slow-log entries kept */
    const char *data_dir;           /* durable in this directory, or NULL: in memory */
    int fsync;                      /* enum journal_fsync: 0 no, 1 everysec, 2 always */
    uint64_t compact_journal_bytes; /* start a snapshot past this much journal; 0: never */
    /* A cluster node (SPEC section 9) when node_id is not 0. */
    uint64_t node_id;
    const char *raft_listen;            /* HOST:PORT of the Raft port */
    const char *advertise;              /* tcp://HOST:PORT handed to clients */
    const char *peer[CONFIG_MAX_PEERS]; /* ID=RAFTHOST:PORT=tcp://CLIENTHOST:PORT */
    int npeer;
    int peer_source; /* private: the source the peer list came from */
    uint64_t election_timeout_ms;
    uint64_t raft_snapshot_entries;
    char **argv;                /* as main got it: a cluster node re-executes itself with it */
    struct config_str *strings; /* private */
    struct config_origin origins[CONFIG_MAX_SETTINGS]; /* private: by setting */
};

enum config_action { CONFIG_RUN = 0, CONFIG_HELP = 1, CONFIG_VERSION = 2 };

void config_defaults(struct config *cfg);
/* Fill cfg from the config file, the environment and argv (each overriding
 * the one before). Returns a config_action, or -EINVAL with a message in err
 * (errlen bytes) that names the key and where it was set. */
int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen);
/* Where the setting name ("auth-token-file") was set, written to out (len
 * bytes) as the prefix of its value in a message, the way config_parse's
 * own messages name it: "--auth-token-file ", "RCSTORED_AUTH_TOKEN_FILE=" or
 * "rcstored.conf:3: auth-token-file = ". 0, -ENOENT when it has its default,
 * -EINVAL for an unknown name. */
int config_source(const struct config *cfg, const char *name, char *out, size_t len);
/* Free the strings cfg owns. */
void config_close(struct config *cfg);
/* Parse "64", "64k", "4MiB", "1g": bytes. 0 or -EINVAL. */
int config_parse_size(const char *s, uint64_t *out);
void config_usage(FILE *out);

#endif
