/* Unit tests for server/snapshot: a randomly built store (sessions with and
 * without leases, shared and owned holds, cycles, names, share tokens, a
 * churned id allocator, a large object) is written and read back, and every
 * record is compared with the live store object by object; the same from a
 * fork()ed child; and a bit flip anywhere in the file, or a cut, is refused
 * with the offset. Also datadir_check (--check-data), which joins a snapshot
 * and a journal. */
#include "cmocka_pre.h"
#include "tmpdir.h"

#include "check.h"
#include "datadir.h"
#include "mem.h"
#include "err.h"
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256], path[320];
static struct store st;
static uint64_t now_ms = 1000000;
static int attached_conn; /* a stand-in for a connection */

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud, (void)s, (void)id, (void)why;
}

static uint64_t rnd(void)
{
    static uint64_t x = 88172645463325252ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

#define NSESS 8
static struct sess *sessions[NSESS];

/* A store with a bit of everything; ids are churned so the free list and
 * generations are not trivial. */
static void build(uint32_t nobj, int with_big)
{
    struct store_limits lim = {.max_data_bytes = 4u << 20,
                               .max_refs = 64,
                               .max_message_bytes = 8u << 20,
                               .max_session_ttl = 3600};
    uint64_t *ids = calloc(nobj, 8);
    uint32_t n = 0;
    uint8_t data[64], token[SESS_TOKEN_BYTES];

    assert_int_equal(store_init(&st, &lim, on_notify, NULL), 0);
    for (int i = 0; i < NSESS; i++) {
        assert_int_equal(sess_new(&st, &sessions[i]), 0);
        sessions[i]->ttl_s = (uint32_t)(i % 3 ? 30 * i : 0);
        sessions[i]->conn = i % 2 ? &attached_conn : NULL;
        snprintf(sessions[i]->client, sizeof(sessions[i]->client), "client-%d", i);
    }
    for (uint32_t k = 0; k < nobj; k++) {
        struct sess *s = sessions[rnd() % NSESS];
        uint64_t refs[4], id;
        uint32_t nrefs = n ? (uint32_t)(rnd() % 5) : 0, len = (uint32_t)(rnd() % 40);
        for (uint32_t r = 0; r < nrefs; r++) {
            refs[r] = ids[rnd() % n];
            if (!heap_get(&st.heap, refs[r]))
                nrefs = r; /* only live objects */
        }
        for (uint32_t b = 0; b < len; b++)
            data[b] = (uint8_t)rnd();
        assert_int_equal(sess_reserve(&st, s), 0);
        assert_int_equal(heap_create(&st.heap, data, len, refs, nrefs, &id), 0);
        assert_int_equal(sess_incref(&st, s, id, 1, NULL), 0);
        ids[n++] = id;
        /* Some more holds, by the owner or another session. */
        if (rnd() % 4 == 0)
            assert_int_equal(sess_incref(&st, sessions[rnd() % NSESS], id, 1 + rnd() % 3, NULL), 0);
        /* Cycles: link back to an older object, and from it to this one. */
        if (n > 1 && rnd() % 8 == 0) {
            uint64_t other = ids[rnd() % (n - 1)];
            uint32_t len2;
            if (heap_get(&st.heap, other)) {
                assert_int_equal(heap_link(&st.heap, id, other, &len2), 0);
                assert_int_equal(heap_link(&st.heap, other, id, &len2), 0);
            }
        }
        /* Churn: drop every hold on a random older object now and then. */
        if (n > 10 && rnd() % 3 == 0) {
            uint64_t victim = ids[rnd() % n];
            for (int i = 0; i < NSESS && heap_get(&st.heap, victim); i++) {
                uint64_t h = sess_holds_on(&st, sessions[i], victim), after;
                if (h)
                    assert_int_equal(sess_decref(&st, sessions[i], victim, (uint32_t)h, &after), 0);
            }
        }
    }
    for (uint32_t k = 0; k < nobj / 10; k++) {
        char name[32];
        uint64_t id = ids[rnd() % n];
        snprintf(name, sizeof(name), "name/%u", k);
        if (heap_get(&st.heap, id))
            assert_int_equal(names_bind(&st.names, &st.heap, name, (uint32_t)strlen(name), id), 0);
    }
    for (uint32_t k = 0; k < nobj / 20; k++) {
        uint64_t id = ids[rnd() % n];
        if (heap_get(&st.heap, id))
            assert_int_equal(
                share_new(&st, sessions[k % NSESS], id, (uint32_t)(1 + k % 5), now_ms, token), 0);
    }
    if (with_big) {
        /* One object larger than a flush of the writer, with many refs. */
        static uint8_t big[3u << 20];
        uint64_t refs[64], id;
        uint32_t nrefs = 0;
        for (uint32_t k = 0; k < n && nrefs < 64; k++)
            if (heap_get(&st.heap, ids[k]))
                refs[nrefs++] = ids[k];
        memset(big, 0x5a, sizeof(big));
        assert_int_equal(sess_reserve(&st, sessions[0]), 0);
        assert_int_equal(heap_create(&st.heap, big, sizeof(big), refs, nrefs, &id), 0);
        assert_int_equal(sess_incref(&st, sessions[0], id, 1, NULL), 0);
    }
    free(ids);
    {
        char err[256];
        if (store_check(&st, err, sizeof(err)) < 0)
            fail_msg("built a broken store: %s", err);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/rcs-test-snapshot-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_FILE);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char err[256];
    if (store_check(&st, err, sizeof(err)) < 0)
        fail_msg("invariant broken: %s", err);
    store_close(&st);
    rm_dir(dir);
    assert_int_equal(mem_used(), 0);
    return 0;
}

/* What the reader saw, checked against the live store as it streams. */
struct seen {
    uint32_t free_cursor;
    uint64_t objects, names, sessions, shares, free;
    uint64_t holds[NSESS]; /* by position in sessions[] */
    int head, end;
};

static int sess_pos(uint64_t id)
{
    for (int i = 0; i < NSESS; i++)
        if (sessions[i]->id == id)
            return i;
    fail_msg("session %llu is not the store's", (unsigned long long)id);
    return -1;
}

static int compare(void *ud, const struct rec *r)
{
    struct seen *sn = ud;
    const struct heap *h = &st.heap;
    switch (r->type) {
    case REC_SNAP_HEAD:
        assert_int_equal(r->a, 42);
        assert_int_equal(r->c, st.next_sess_id);
        sn->head = 1;
        break;
    case REC_SNAP_IDS: {
        uint32_t nslots, floor, max;
        heap_ids_state(h, &nslots, &floor, &max);
        assert_int_equal(r->a, nslots);
        assert_int_equal(r->b, floor);
        assert_int_equal(r->c, max);
        break;
    }
    case REC_SNAP_FREE:
        for (uint64_t i = 0; i < r->nitems; i++) {
            uint64_t slot, gen;
            uint32_t s2, g2;
            rec_pair(r, i, &slot, &gen);
            assert_true(heap_free_next(h, &sn->free_cursor, &s2, &g2));
            assert_int_equal(slot, s2);
            assert_int_equal(gen, g2);
            sn->free++;
        }
        break;
    case REC_SNAP_SESS: {
        const struct sess *s = sess_find(&st, r->sess);
        assert_non_null(s);
        assert_memory_equal(r->token, s->token, SESS_TOKEN_BYTES);
        assert_int_equal(r->a, s->ttl_s);
        assert_int_equal(r->b, s->conn ? REC_SESS_ATTACHED : 0);
        assert_int_equal(r->nbytes, strlen(s->client));
        assert_memory_equal(r->bytes, s->client, r->nbytes);
        sn->sessions++;
        break;
    }
    case REC_SNAP_OBJ: {
        const struct obj *o = heap_get(h, r->id);
        uint32_t owner = h->owner[heap_slot_of(r->id)];
        assert_non_null(o);
        assert_int_equal(r->nbytes, obj_data_len(o));
        assert_memory_equal(r->bytes, obj_data(o), r->nbytes);
        assert_int_equal(r->nitems, obj_nrefs(o));
        for (uint64_t i = 0; i < r->nitems; i++)
            assert_int_equal(rec_u64(r, i), obj_refs(o)[i]);
        if (owner) {
            int i = sess_pos(r->a);
            assert_int_equal(sessions[i]->idx, owner);
            sn->holds[i]++;
        } else {
            assert_int_equal(r->a, 0);
        }
        sn->objects++;
        break;
    }
    case REC_SNAP_HOLDS: {
        int i = sess_pos(r->sess);
        for (uint64_t k = 0; k < r->nitems; k++) {
            uint64_t id, n;
            rec_pair(r, k, &id, &n);
            assert_non_null(heap_get(h, id));
            uint64_t all = sess_holds_on(&st, sessions[i], id);
            uint64_t owned = h->owner[heap_slot_of(id)] == sessions[i]->idx;
            assert_int_equal(n + owned, all);
            sn->holds[i] += n;
        }
        break;
    }
    case REC_SNAP_NAME: {
        const struct name_ent *e = names_find(&st.names, (const char *)r->bytes, r->nbytes);
        assert_non_null(e);
        assert_int_equal(e->id, r->id);
        sn->names++;
        break;
    }
    case REC_SNAP_SHARE:
        assert_non_null(heap_get(h, r->id));
        assert_true(r->a > 0 && r->a <= 5000);
        sn->shares++;
        break;
    case REC_SNAP_END:
        sn->end = 1;
        break;
    default:
        fail_msg("a journal record in a snapshot");
    }
    return 0;
}

static void expect_same(void)
{
    struct seen sn = {0};
    struct snapshot_info info;
    char err[512];
    uint32_t s2, g2;
    int rc = snapshot_read(path, compare, &sn, &info, err, sizeof(err));
    if (rc)
        fail_msg("snapshot_read: %d %s", rc, err);
    assert_true(sn.head && sn.end);
    assert_int_equal(sn.objects, st.heap.objects);
    assert_int_equal(sn.names, st.names.count);
    assert_int_equal(sn.sessions, NSESS);
    assert_false(heap_free_next(&st.heap, &sn.free_cursor, &s2, &g2)); /* every free slot */
    assert_true(sn.free > 0);
    for (int i = 0; i < NSESS; i++)
        assert_int_equal(sn.holds[i], sessions[i]->nholds);
    assert_int_equal(info.objects, st.heap.objects);
    assert_int_equal(info.last_index, 42);
}

static void write_and_read_back(void **state)
{
    (void)state;
    struct snapshot_info info;
    char err[512];
    build(5000, 1);
    /* Half the tokens have expired by now: they are left out. */
    int rc = snapshot_write(&st, dir, 42, now_ms + 2500, &info, err, sizeof(err));
    if (rc)
        fail_msg("snapshot_write: %s", err);
    assert_true(info.bytes > (3u << 20));
    assert_int_equal(info.objects, st.heap.objects);
    assert_true(info.shares > 0 && info.shares < 250);
    assert_int_equal(access(path, F_OK), 0);
    {
        char tmp[400];
        snprintf(tmp, sizeof(tmp), "%s/%s", dir, SNAPSHOT_TMP_FILE);
        assert_int_equal(access(tmp, F_OK), -1);
    }
    now_ms += 2500;
    expect_same();
    now_ms -= 2500;
}

/* The writer in a fork()ed child, as the server will run it. */
static void write_in_a_child(void **state)
{
    (void)state;
    pid_t pid;
    int status;
    build(3000, 0);
    assert_int_equal(snapshot_fork(&st, dir, 42, now_ms, &pid), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    expect_same();
}

static void read_file(uint8_t **p, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *p = malloc(*n);
    assert_int_equal(fread(*p, 1, *n, f), *n);
    fclose(f);
}

static void write_file(const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void bit_flips_and_cuts_are_refused(void **state)
{
    (void)state;
    char err[512];
    uint8_t *orig;
    size_t size;
    build(400, 0);
    assert_int_equal(snapshot_read(path, NULL, NULL, NULL, err, sizeof(err)), -ENOENT);
    assert_int_equal(snapshot_write(&st, dir, 42, now_ms, NULL, err, sizeof(err)), 0);
    read_file(&orig, &size);
    for (size_t off = 0; off < size; off += 1 + size / 700) {
        orig[off] ^= (uint8_t)(1u << (off % 8));
        write_file(orig, size);
        int rc = snapshot_read(path, NULL, NULL, NULL, err, sizeof(err));
        if (rc == 0)
            fail_msg("a flip at offset %zu was not detected", off);
        assert_non_null(strstr(err, "offset"));
        orig[off] ^= (uint8_t)(1u << (off % 8));
    }
    /* The middle of the file: the message names the record's offset. */
    orig[size / 2] ^= 0x10;
    write_file(orig, size);
    assert_true(snapshot_read(path, NULL, NULL, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, SNAPSHOT_FILE ": offset "));
    orig[size / 2] ^= 0x10;
    for (size_t cut = 0; cut < size; cut += 1 + size / 300) {
        write_file(orig, cut);
        assert_true(snapshot_read(path, NULL, NULL, NULL, err, sizeof(err)) < 0);
    }
    write_file(orig, size);
    assert_int_equal(snapshot_read(path, NULL, NULL, NULL, err, sizeof(err)), 0);
    free(orig);
}

/* A failed write leaves the previous snapshot as it was. */
static void failed_write_keeps_the_old_one(void **state)
{
    (void)state;
    char err[512], bad[300];
    struct snapshot_info info;
    build(200, 0);
    assert_int_equal(snapshot_write(&st, dir, 42, now_ms, NULL, err, sizeof(err)), 0);
    snprintf(bad, sizeof(bad), "%s/missing", dir);
    assert_int_equal(snapshot_write(&st, bad, 43, now_ms, NULL, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(snapshot_read(path, NULL, NULL, &info, err, sizeof(err)), 0);
    assert_int_equal(info.last_index, 42);
}

/* Journal records from..to (HOLD records), in dir. */
static void journal_records(uint64_t from, uint64_t to)
{
    struct journal j;
    struct journal_opts o = {.fsync = JOURNAL_FSYNC_NO, .first_index = from};
    char err[512];
    if (journal_open(&j, dir, &o, err, sizeof(err)) < 0)
        fail_msg("journal_open: %s", err);
    assert_int_equal(j.next_index, from);
    for (uint64_t k = from; k <= to; k++) {
        struct rec r = {.type = REC_HOLD, .sess = 1, .id = k, .a = 1};
        assert_int_equal(journal_append(&j, &r, NULL), 0);
    }
    assert_int_equal(journal_commit(&j), 0);
    journal_close(&j);
}

static void check_data_joins_snapshot_and_journal(void **state)
{
    (void)state;
    struct datadir_report rep;
    char err[512];
    build(100, 0);
    assert_int_equal(datadir_check(dir, 0, &rep), 0); /* empty: fine */
    assert_int_equal(snapshot_write(&st, dir, 42, now_ms, NULL, err, sizeof(err)), 0);
    journal_records(43, 60);
    assert_int_equal(datadir_check(dir, 0, &rep), 0);
    assert_true(rep.has_snapshot);
    assert_int_equal(rep.snapshot.objects, st.heap.objects);
    assert_int_equal(rep.journal.records, 18);
    assert_non_null(strstr(rep.message, "18 journal records"));

    /* A server holds the directory: refused. */
    {
        int fd;
        assert_int_equal(journal_lock_dir(dir, &fd, err, sizeof(err)), 0);
        assert_int_equal(datadir_check(dir, 0, &rep), -EWOULDBLOCK);
        assert_non_null(strstr(rep.message, "in use by another rcstored"));
        close(fd);
    }
}

static void check_data_finds_a_hole(void **state)
{
    (void)state;
    struct datadir_report rep;
    char err[512];
    build(100, 0);
    assert_int_equal(snapshot_write(&st, dir, 42, now_ms, NULL, err, sizeof(err)), 0);
    journal_records(50, 60); /* 43..49 are nowhere */
    assert_int_equal(datadir_check(dir, 1, &rep), -EBADMSG);
    assert_non_null(strstr(rep.message, "starts at index 50"));
    assert_non_null(strstr(rep.message, "ends at 42"));
}

static void check_data_damage_and_repair(void **state)
{
    (void)state;
    struct datadir_report rep;
    char err[512], seg[400];
    uint8_t *p;
    size_t n;
    build(100, 0);
    assert_int_equal(snapshot_write(&st, dir, 42, now_ms, NULL, err, sizeof(err)), 0);
    journal_records(43, 80);
    /* A flipped bit in the middle of the journal. */
    snprintf(seg, sizeof(seg), "%s/journal-%016x.log", dir, 1);
    {
        FILE *f = fopen(seg, "r+b");
        uint8_t b;
        assert_non_null(f);
        fseek(f, JOURNAL_HEADER_BYTES + 100, SEEK_SET);
        assert_int_equal(fread(&b, 1, 1, f), 1);
        b ^= 4;
        fseek(f, JOURNAL_HEADER_BYTES + 100, SEEK_SET);
        assert_int_equal(fwrite(&b, 1, 1, f), 1);
        fclose(f);
    }
    assert_true(datadir_check(dir, 0, &rep) < 0);
    assert_non_null(strstr(rep.message, "journal-0000000000000001.log: offset "));
    assert_int_equal(datadir_check(dir, 1, &rep), 0);
    assert_true(rep.repaired);
    assert_true(rep.journal.damaged < 0); /* what was found */
    assert_int_equal(datadir_check(dir, 0, &rep), 0);
    assert_true(rep.journal.records < 38);

    /* A damaged snapshot is refused, with or without --repair. */
    read_file(&p, &n);
    p[n / 2] ^= 1;
    write_file(p, n);
    free(p);
    assert_true(datadir_check(dir, 1, &rep) < 0);
    assert_non_null(strstr(rep.message, "cannot be repaired"));
    assert_non_null(strstr(rep.message, SNAPSHOT_FILE ": offset "));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(write_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(write_in_a_child, setup, teardown),
        cmocka_unit_test_setup_teardown(bit_flips_and_cuts_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_keeps_the_old_one, setup, teardown),
        cmocka_unit_test_setup_teardown(check_data_joins_snapshot_and_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(check_data_finds_a_hole, setup, teardown),
        cmocka_unit_test_setup_teardown(check_data_damage_and_repair, setup, teardown),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
