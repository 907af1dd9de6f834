/* persist_bench: what persistence costs, in process, on the disk of DIR.
 *
 *   build/perf/persist_bench [DIR [objects]]     (DIR: a scratch directory
 *                                                   it may fill and empty)
 *
 * crc      CRC32C over 64 MiB: the SSE4.2 path (what crc32c uses here) and
 *          the table path (what it falls back to), in GB/s.
 * journal  appends of incref-sized (HOLD) records in batches of 64, one
 *          journal_commit per batch as one loop iteration would, for each
 *          --fsync mode; `always` runs on a libuv loop with its fdatasync on
 *          the thread pool, so batches go on while a sync is in flight.
 *          Reports records/s, bytes/record and syncs.
 * scan     journal_scan of what was written: records/s read back.
 * snapshot a store of `objects` objects (16-byte data, one name per 100,
 *          one session), then: the fork() that a background snapshot costs
 *          the loop (the parent's stall), the child's snapshot_write,
 *          snapshot_read streaming it back (objects/s), and snapshot_load
 *          rebuilding a store from it, recovery's first half (objects/s;
 *          the file is in the page cache by then, as it is for reading).
 * A benchmark, never a test; figures vary with the disk and the load. */
#include "crc32c.h"
#include "journal.h"
#include "mem.h"
#include "snapshot.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void empty_dir(const char *d)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    char p[4096];
    if (!dp)
        return;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        unlink(p);
    }
    closedir(dp);
}

struct run {
    struct journal j;
    uv_idle_t idle;
    uint64_t n, appended;
};

static void append_batch(struct run *r)
{
    for (int k = 0; k < BATCH && r->appended < r->n; k++) {
        struct rec rec = {.type = REC_HOLD, .sess = 7, .id = (r->appended % 1000000) + 1, .a = 1};
        if (journal_append(&r->j, &rec, NULL) < 0) {
            fprintf(stderr, "append failed: %s\n", r->j.last_error);
            exit(1);
        }
        r->appended++;
    }
    journal_commit(&r->j);
}

static void on_idle(uv_idle_t *h)
{
    struct run *r = h->data;
    if (r->appended < r->n)
        append_batch(r);
    else if (r->j.durable_index >= r->n)
        uv_idle_stop(h);
}

static void bench_journal(const char *dir, enum journal_fsync mode, const char *name, uint64_t n)
{
    static struct run r;
    uv_loop_t loop;
    char err[512];
    double t0, t1;
    uint64_t syncs0 = journal_io_calls(JOURNAL_IO_SYNC);
    struct journal_opts o = {.fsync = mode, .loop = &loop};

    empty_dir(dir);
    uv_loop_init(&loop);
    memset(&r, 0, sizeof(r));
    r.n = n;
    if (journal_open(&r.j, dir, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    t0 = now();
    uv_idle_init(&loop, &r.idle);
    r.idle.data = &r;
    uv_idle_start(&r.idle, on_idle);
    uv_run(&loop, UV_RUN_DEFAULT);
    t1 = now();
    printf("journal %-8s %9.0f records/s  %llu syncs  (%llu records, batches of %d)\n", name,
           (double)n / (t1 - t0), (unsigned long long)(journal_io_calls(JOURNAL_IO_SYNC) - syncs0),
           (unsigned long long)n, BATCH);
    uv_close((uv_handle_t *)&r.idle, NULL);
    journal_close(&r.j);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

static int count_rec(void *ud, uint64_t index, const struct rec *r)
{
    (void)index, (void)r;
    ++*(uint64_t *)ud;
    return 0;
}

static void bench_scan(const char *dir)
{
    struct journal_scan s;
    uint64_t n = 0;
    double t0 = now();
    if (journal_scan(dir, count_rec, &n, &s) < 0) {
        fprintf(stderr, "scan: %s\n", s.damage);
        exit(1);
    }
    printf("scan             %9.0f records/s  (%llu records, %.1f bytes each, %llu segments)\n",
           (double)n / (now() - t0), (unsigned long long)n, (double)s.bytes / (double)n,
           (unsigned long long)s.segments);
}

static void bench_crc(void)
{
    size_t n = 64u << 20;
    uint8_t *b = malloc(n);
    uint32_t c = 0, d = 0;
    double t0, t1, t2;
    if (!b)
        exit(1);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 131);
    t0 = now();
    for (int r = 0; r < 4; r++)
        c = crc32c(c, b, n);
    t1 = now();
    for (int r = 0; r < 4; r++)
        d = crc32c_sw(d, b, n);
    t2 = now();
    if (c != d) {
        fprintf(stderr, "crc32c paths disagree\n");
        exit(1);
    }
    printf("crc32c           %5.2f GB/s (sse4.2 where present)  %5.2f GB/s (table)\n",
           4.0 * (double)n / (t1 - t0) / 1e9, 4.0 * (double)n / (t2 - t1) / 1e9);
    free(b);
}

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud, (void)s, (void)id, (void)why;
}

static int count_obj(void *ud, const struct rec *r)
{
    if (r->type == REC_SNAP_OBJ)
        ++*(uint64_t *)ud;
    return 0;
}

static void bench_snapshot(const char *dir, uint64_t nobj)
{
    struct store st;
    struct store_limits lim = {.max_data_bytes = 1 << 20,
                               .max_refs = 64,
                               .max_message_bytes = 4 << 20,
                               .max_session_ttl = 3600};
    struct sess *s;
    struct snapshot_info info;
    char err[512], path[4096];
    uint64_t n = 0;
    double t0, t1, t2;
    pid_t pid;
    int status;

    empty_dir(dir);
    if (store_init(&st, &lim, on_notify, NULL) < 0 || sess_new(&st, &s) < 0)
        exit(1);
    for (uint64_t k = 0; k < nobj; k++) {
        uint64_t id;
        char name[32];
        if (sess_reserve(&st, s) < 0 ||
            heap_create(&st.heap, "0123456789abcdef", 16, NULL, 0, &id) < 0 ||
            sess_incref(&st, s, id, 1, NULL) < 0)
            exit(1);
        if (k % 100 == 0) {
            int len = snprintf(name, sizeof(name), "obj/%llu", (unsigned long long)k);
            if (names_bind(&st.names, &st.heap, name, (uint32_t)len, id) < 0)
                exit(1);
        }
    }
    printf("snapshot of %llu objects (RSS %.0f MB):\n", (unsigned long long)nobj,
           (double)mem_rss_bytes() / 1e6);
    t0 = now();
    pid = fork();
    if (pid == 0) {
        int rc = snapshot_write(&st, dir, 1, 0, NULL, err, sizeof(err));
        _exit(rc < 0 ? 1 : 0);
    }
    t1 = now(); /* the parent's stall: fork() copies the page tables */
    waitpid(pid, &status, 0);
    t2 = now();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "snapshot child failed\n");
        exit(1);
    }
    printf("  fork (the loop's stall)   %8.2f ms\n", (t1 - t0) * 1e3);
    printf("  child writes and syncs    %8.0f ms\n", (t2 - t1) * 1e3);
    snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_FILE);
    t0 = now();
    if (snapshot_read(path, count_obj, &n, &info, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    t1 = now();
    printf("  read back                 %8.0f ms  %.2fM objects/s  %.1f bytes/object\n",
           (t1 - t0) * 1e3, (double)n / (t1 - t0) / 1e6, (double)info.bytes / (double)nobj);
    store_close(&st);
    if (store_init(&st, &lim, on_notify, NULL) < 0)
        exit(1);
    t0 = now();
    if (snapshot_load(&st, path, 0, &info, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    t1 = now();
    printf("  load into a store         %8.0f ms  %.2fM objects/s\n", (t1 - t0) * 1e3,
           (double)info.objects / (t1 - t0) / 1e6);
    store_close(&st);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/persist-bench";
    uint64_t nobj = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    mkdir(dir, 0700);
    bench_crc();
    bench_journal(dir, JOURNAL_FSYNC_NO, "no", 2000000);
    bench_scan(dir);
    bench_journal(dir, JOURNAL_FSYNC_EVERYSEC, "everysec", 2000000);
    bench_journal(dir, JOURNAL_FSYNC_ALWAYS, "always", 2000000);
    bench_snapshot(dir, nobj);
    empty_dir(dir);
    rmdir(dir);
    return 0;
}
