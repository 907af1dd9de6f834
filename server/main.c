/* rcstored: parse flags, run the server's loop until a signal stops it. */
#include "config.h"
#include "log.h"
#include "server.h"

#ifdef RCS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct config cfg;
    struct server srv;
    char err[512];
    enum log_level lvl;
    int rc;

    config_defaults(&cfg);
    rc = config_parse(&cfg, argc, argv, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "rcstored: %s\nTry 'rcstored --help'.\n", err);
        config_close(&cfg);
        return 2;
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

    if (server_init(&srv, uv_default_loop(), &cfg) < 0) {
        server_stop(&srv);
        uv_run(uv_default_loop(), UV_RUN_DEFAULT);
        server_close(&srv);
        uv_loop_close(uv_default_loop());
        return 1;
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
