/* harness: spawn and stop rcstored for integration tests (see harness.h). */
#include "harness.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int server_start(struct server_proc *sp, const char *const *extra)
{
    const char *argv[32] = {RCSTORED_PATH, "--listen", "tcp://127.0.0.1:0", "--log-level", "info"};
    int n = 5, fds[2];
    pid_t parent = getpid();
    char line[512];

    for (; extra && *extra && n < 30; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    if (pipe(fds) < 0)
        return -1;
    sp->pid = fork();
    if (sp->pid < 0)
        return -1;
    if (sp->pid == 0) {
        /* A test that dies (a failed assert, a sanitizer report) must not
         * leave its server holding ctest's output pipe until the timeout. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    sp->log = fdopen(fds[0], "r");
    sp->address[0] = sp->tls_address[0] = '\0';
    while (fgets(line, sizeof(line), sp->log)) {
        char *p = strstr(line, "listening on tcp://");
        char *t = strstr(line, "listening on tls://");
        if (t) {
            t += strlen("listening on ");
            t[strcspn(t, "\r\n")] = '\0';
            snprintf(sp->tls_address, sizeof(sp->tls_address), "%s", t);
        }
        if (p) {
            p += strlen("listening on ");
            p[strcspn(p, "\r\n")] = '\0';
            snprintf(sp->address, sizeof(sp->address), "%s", p);
        }
        if (strstr(line, " ready (pid ") && sp->address[0]) {
            /* Keep draining its log (to our stderr) so it never blocks on a
             * full pipe; the drain ends when the server closes stderr. */
            if (fork() == 0) {
                while (fgets(line, sizeof(line), sp->log))
                    fputs(line, stderr);
                _exit(0);
            }
            return 0;
        }
    }
    return -1;
}

int server_stop(struct server_proc *sp)
{
    int status = -1;
    kill(sp->pid, SIGTERM);
    if (waitpid(sp->pid, &status, 0) < 0)
        return -1;
    fclose(sp->log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
