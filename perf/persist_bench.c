/* persist_bench: what persistence costs, in process, on the disk of DIR.
 *
 *   build/perf/persist_bench [DIR [objects [snapshot]]]  (DIR: a scratch
 *                                  directory it may fill and empty; with
 *                                  "snapshot", only the snapshot part runs)
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
 *          the loop (the parent's stall), the child's snapshot_write, and
 *          snapshot_read streaming it back (objects/s), and snapshot_load
 *          rebuilding a store from it (objects/s). Then the same fork
 *          again while the parent goes on changing the store as a loop
 *          under load would (batches of 64 random writes: incref + decref
 *          of a random object, and one in 8 a decref that frees it and a
 *          create), until the child exits: the fork's stall, the longest
 *          batch (the copy-on-write faults land there), the child's time,
 *          the parent's page faults. Before it, the process's page tables
 *          (VmPTE) and transparent huge pages (AnonHugePages), what the
 *          fork copies, and the longest batch of 64 creates while building
 *          the store. Each fork is preceded, as a snapshot's should be, by
 *          thp_hold and a wait until the huge-page helper is not busy
 *          (reported apart: the loop would serve meanwhile). Stalls are
 *          given in wall time and in the loop thread's own CPU time (the
 *          difference is preemption on shared cores).
 * A benchmark, never a test; figures vary with the disk and the load. */
#include "crc32c.h"
#include "journal.h"
#include "mem.h"
#include "snapshot.h"
#include "thp.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* What a snapshot should do before its fork (thp.h): stop the huge-page
 * helper and let a chunk it is making finish, the loop serving meanwhile.
 * Returns how long that took (ms). */
static double hold_helper(void)
{
    double t0 = now();
    thp_hold(1);
    while (thp_busy())
        ;
    return (now() - t0) * 1e3;
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

/* A field of a /proc/self file ("VmPTE:"), in kB; -1 if absent. */
static long proc_kb(const char *file, const char *field)
{
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, n) == 0) {
            v = strtol(line + n, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* CPU time of this thread: a stall of its own, apart from being preempted
 * (two cores shared with the child and whatever else runs). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* One loop iteration's worth of writes spread over the heap: 64 random
 * objects, each incref'd and decref'd (its header, the session's maps),
 * and one in 8 dropped by the session (freed unless named: its slot, the
 * owner table) and replaced by a create (a block, a slot). */
static uint64_t mutate_batch(struct store *st, struct sess *s, uint64_t *rng)
{
    uint64_t done = 0;
    for (int k = 0; k < BATCH; k++) {
        uint64_t id, nid, after;
        uint32_t i = (uint32_t)(xorshift(rng) % st->heap.nslots);
        if (!heap_slot(&st->heap, i, &id))
            continue;
        if (k % 8 == 0) {
            (void)sess_decref(st, s, id, 1, &after); /* RPC_ENOT_HELD for a dropped named one */
            if (sess_reserve(st, s) < 0 ||
                heap_create(&st->heap, "fedcba9876543210", 16, NULL, 0, &nid) < 0 ||
                sess_incref(st, s, nid, 1, NULL) < 0)
                exit(1);
        } else if (sess_incref(st, s, id, 1, NULL) < 0 || sess_decref(st, s, id, 1, &after) < 0) {
            exit(1);
        }
        done++;
    }
    return done;
}

/* The upper bound (ms) of the 10 us bucket holding quantile q of n. */
static double quantile(const uint64_t *hist, uint64_t n, double q)
{
    uint64_t seen = 0;
    for (size_t k = 0; k <= 1000; k++) {
        seen += hist[k];
        if ((double)seen >= q * (double)n)
            return (double)(k + 1) * 1e-2;
    }
    return 10.0;
}

/* fork() a child that writes a snapshot while the parent changes the store
 * in batches, and report what the parent's loop would have seen. */
static void snapshot_under_writes(struct store *st, struct sess *s, const char *dir)
{
    char err[512];
    double t0, t1, c0, c1, last, clast, worst = 0, cworst = 0, t, c, held;
    uint64_t rng = 0x9e3779b97f4a7c15ull, ops = 0, iters = 0, slow = 0;
    static uint64_t hist[1001]; /* batch times by 10 us, the last one: 10 ms and more */
    struct rusage ru0, ru1;
    pid_t pid;
    int status;

    getrusage(RUSAGE_SELF, &ru0);
    held = hold_helper();
    c0 = cpu_now();
    t0 = now();
    pid = fork();
    if (pid == 0) {
        int rc = snapshot_write(st, dir, 1, 0, NULL, err, sizeof(err));
        _exit(rc < 0 ? 1 : 0);
    }
    t1 = last = now();
    c1 = clast = cpu_now();
    thp_hold(0);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        ops += mutate_batch(st, s, &rng);
        t = now();
        c = cpu_now();
        if (t - last > worst)
            worst = t - last;
        if (c - clast > cworst)
            cworst = c - clast;
        slow += t - last > 1e-3;
        hist[(t - last) < 10e-3 ? (size_t)((t - last) * 1e5) : 1000]++;
        iters++;
        last = t;
        clast = c;
    }
    t = now();
    getrusage(RUSAGE_SELF, &ru1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "snapshot child failed\n");
        exit(1);
    }
    printf("  with writes: fork         %8.2f ms  (%.2f ms on the CPU; %.2f ms before it waiting "
           "for the huge-page helper, thp_hold)\n",
           (t1 - t0) * 1e3, (c1 - c0) * 1e3, held);
    printf("  with writes: child        %8.0f ms  %.2fM writes/s in the parent meanwhile\n",
           (t - t1) * 1e3, (double)ops / (t - t1) / 1e6);
    printf("  with writes: worst batch  %8.3f ms  (%llu batches of %d, %llu over 1 ms, mean %.1f "
           "us)\n",
           worst * 1e3, (unsigned long long)iters, BATCH, (unsigned long long)slow,
           (t - t1) / (double)(iters ? iters : 1) * 1e6);
    printf("  with writes: batch p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms (by 10 us)\n",
           quantile(hist, iters, 0.5), quantile(hist, iters, 0.99), quantile(hist, iters, 0.999));
    printf("  with writes: worst on CPU %8.3f ms  (the longest batch's own CPU time; the rest "
           "is preemption: %ld involuntary switches)\n",
           cworst * 1e3, ru1.ru_nivcsw - ru0.ru_nivcsw);
    printf("  with writes: page faults  %8ld in the parent  (RSS after %.0f MB)\n",
           ru1.ru_minflt - ru0.ru_minflt, (double)mem_rss_bytes() / 1e6);
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
    double t0, t1, t2, c0, c1, held, worst_build = 0;
    uint64_t slow_build = 0;
    pid_t pid;
    int status;

    empty_dir(dir);
    if (store_init(&st, &lim, on_notify, NULL) < 0 || sess_new(&st, &s) < 0)
        exit(1);
    t0 = now();
    for (uint64_t k = 0; k < nobj; k++) {
        uint64_t id;
        char name[32];
        if (k % 64 == 0) { /* a loop iteration's worth of creates */
            t1 = now();
            if (t1 - t0 > worst_build)
                worst_build = t1 - t0;
            slow_build += t1 - t0 > 1e-3;
            t0 = t1;
        }
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
    printf("snapshot of %llu objects (RSS %.0f MB, %.1f bytes/object; page tables %ld kB, "
           "huge pages %ld MB):\n",
           (unsigned long long)nobj, (double)mem_rss_bytes() / 1e6,
           (double)mem_rss_bytes() / (double)nobj, proc_kb("/proc/self/status", "VmPTE:"),
           proc_kb("/proc/self/smaps_rollup", "AnonHugePages:") / 1024);
    printf("  building it: longest batch of 64 creates %.3f ms, %llu over 1 ms (page faults, table "
           "growth)\n",
           worst_build * 1e3, (unsigned long long)slow_build);
    held = hold_helper();
    c0 = cpu_now();
    t0 = now();
    pid = fork();
    if (pid == 0) {
        int rc = snapshot_write(&st, dir, 1, 0, NULL, err, sizeof(err));
        _exit(rc < 0 ? 1 : 0);
    }
    t1 = now(); /* the parent's stall: fork() copies the page tables */
    c1 = cpu_now();
    thp_hold(0);
    waitpid(pid, &status, 0);
    t2 = now();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "snapshot child failed\n");
        exit(1);
    }
    printf(
        "  fork (the loop's stall)   %8.2f ms  (%.2f ms on the CPU; %.2f ms before it waiting for "
        "the huge-page helper, thp_hold)\n",
        (t1 - t0) * 1e3, (c1 - c0) * 1e3, held);
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
    snapshot_under_writes(&st, s, dir);
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
    int only_snapshot = argc > 3 && strcmp(argv[3], "snapshot") == 0;
    mkdir(dir, 0700);
    if (!only_snapshot) {
        bench_crc();
        bench_journal(dir, JOURNAL_FSYNC_NO, "no", 2000000);
        bench_scan(dir);
        bench_journal(dir, JOURNAL_FSYNC_EVERYSEC, "everysec", 2000000);
        bench_journal(dir, JOURNAL_FSYNC_ALWAYS, "always", 2000000);
    }
    bench_snapshot(dir, nobj);
    empty_dir(dir);
    rmdir(dir);
    return 0;
}
