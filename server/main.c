/* rcstored: parse flags, run the server's loop until a signal stops it. */
#include "config.h"
#include "datadir.h"
#include "log.h"
#include "persist.h"
#include "server.h"

#ifdef RCS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit statuses of a failed start (docs/operations.md, rcstored(8)): 2 when
 * the configuration is wrong (a bad flag or value, a malformed address, an
 * unusable token or config file), 1 when a valid configuration met a system
 * that refused it (address in use, out of memory, a data directory another
 * server holds), 3 when the data directory is damaged (a restart cannot fix
 * it: rcstored --check-data says what to do). Never a signal, and
 * always one line on stderr: "rcstored: " and the problem. */
enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2, EXIT_DAMAGE = 3 };

/* rcstored --check-data DIR [--repair]: 0 if DIR is fit to start from
 * (now), 1 with the problem (file and offset) if not, 2 for a bad call. */
static int check_data(int argc, char **argv)
{
    struct datadir_report rep;
    struct store_limits lim = {0}; /* none: what was acknowledged is replayed whole */
    char err[1024];
    const char *dir = NULL;
    int repair = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--check-data") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--check-data"))
            continue;
        else if (!strncmp(argv[i], "--check-data=", 13))
            dir = argv[i] + 13;
        else if (!strcmp(argv[i], "--repair"))
            repair = 1;
        else {
            fprintf(stderr, "rcstored: --check-data DIR takes only --repair, not %s\n", argv[i]);
            return EXIT_CONFIG;
        }
    }
    if (!dir) {
        fprintf(stderr, "rcstored: --check-data needs a data directory: --check-data DIR\n");
        return EXIT_CONFIG;
    }
    if (access(dir, F_OK) < 0) {
        fprintf(stderr, "rcstored: --check-data %s: no such directory\n", dir);
        return EXIT_CONFIG;
    }
    {
        /* A cluster node's state is Raft's log and snapshots (docs/replication.md),
         * which libraft verifies as the node starts: nothing here knows their
         * format, and a journal check would find an empty store. */
        char raft[4200];
        snprintf(raft, sizeof(raft), "%s/raft", dir);
        if (access(raft, F_OK) == 0) {
            fprintf(stderr,
                    "rcstored: --check-data %s: a cluster node's data directory (Raft's files "
                    "in %s): its node checks them at start; a damaged node is replaced "
                    "(docs/operations.md)\n",
                    dir, raft);
            return EXIT_CONFIG;
        }
    }
    rc = datadir_check(dir, repair, &rep);
    if (rc < 0) {
        fprintf(stderr, "rcstored: %s\n", rep.message);
        return EXIT_RUNTIME;
    }
    /* Files that frame and checksum well can still describe a store that
     * cannot be: recover it as a start would, into a scratch store. */
    log_threshold = LOG_ERROR;
    if (persist_verify(dir, &lim, err, sizeof(err)) < 0) {
        fprintf(stderr, "rcstored: %s\n", err);
        return EXIT_RUNTIME;
    }
    printf("%s; %s\n", rep.message, err);
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct server srv;
    char err[512];
    enum log_level lvl;
    int rc;

    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--check-data", 12))
            return check_data(argc, argv);
    config_defaults(&cfg);
    rc = config_parse(&cfg, argc, argv, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "rcstored: %s (see rcstored --help)\n", err);
        config_close(&cfg);
        return EXIT_CONFIG;
    }
    if (rc == CONFIG_HELP) {
        config_usage(stdout);
        return 0;
    }
    if (rc == CONFIG_VERSION) {
        printf("rcstored %s\n", RCS_VERSION);
        return 0;
    }
    log_parse_level(cfg.log_level, &lvl);
    log_threshold = lvl;
    signal(SIGPIPE, SIG_IGN);

    if ((rc = server_init(&srv, uv_default_loop(), &cfg, err, sizeof(err))) < 0) {
        /* server_init closed what it had opened; the line is printed
         * whatever --log-level says, in the format of the option errors. */
        fprintf(stderr, "rcstored: %s\n", err);
        uv_loop_close(uv_default_loop());
        config_close(&cfg);
        return rc == -EINVAL                                      ? EXIT_CONFIG
               : rc == -EBADMSG || rc == -ENOMSG || rc == -EPROTO ? EXIT_DAMAGE
                                                                  : EXIT_RUNTIME;
    }
    log_info("rcstored %s ready (pid %d)", RCS_VERSION, (int)getpid());
#ifdef RCS_HAVE_SYSTEMD
    /* Type=notify: listening sockets are bound, clients may connect. */
    sd_notify(0, "READY=1\nSTATUS=serving");
#endif
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
#ifdef RCS_HAVE_SYSTEMD
    sd_notify(0, "STOPPING=1");
#endif
    server_close(&srv);
    rc = uv_loop_close(uv_default_loop());
    if (rc < 0)
        log_warn("loop closed with handles still open: %s", uv_strerror(rc));
    log_info("stopped");
    config_close(&cfg);
    return 0;
}
