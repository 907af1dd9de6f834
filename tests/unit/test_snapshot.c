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
#include "crc32c.h"
#include "datadir.h"
#include "le.h"
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
        journal_unlock_dir(fd);
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

/* ---- loading into a store ---- */

static struct store ld; /* the store a test loads into */

static void load_init(void)
{
    struct store_limits lim = st.lim;
    assert_int_equal(store_init(&ld, &lim, on_notify, NULL), 0);
}

/* End a session of st as a close would, with its holds released in slices
 * (a lowered release_at_once), and run a few slices: it is left ending,
 * halfway through its releasing map. Its lease is dropped first so that it
 * ends at the close. */
static struct sess *end_in_slices(int i, uint32_t extra, int slices)
{
    struct sess *s = sessions[i];
    uint32_t given = 0;
    for (uint32_t k = 0; k < st.heap.nslots && given < extra; k++) {
        uint64_t id;
        if (heap_slot(&st.heap, k, &id) && !sess_holds_on(&st, s, id)) {
            assert_int_equal(sess_incref(&st, s, id, 1 + (k % 3 == 0), NULL), 0);
            given++;
        }
    }
    assert_int_equal(given, extra);
    st.release_at_once = 10;
    s->ttl_s = 0;
    s->conn = NULL;
    sess_detach(&st, s, now_ms);
    assert_true(s->ending);
    for (int k = 0; k < slices; k++)
        assert_int_equal(store_expire(&st, now_ms, 0, NULL), 1); /* 256 holds each */
    assert_true(s->ending && (s->rel_pos > 0 || !slices) && s->nholds > 0);
    return s;
}

/* The pairs sess_next_hold gives for s, sorted by id. */
static uint64_t *holds_of(const struct sess *s, uint32_t *n)
{
    uint64_t *p = NULL, id, k;
    uint32_t pos = 0, cap = 0;
    *n = 0;
    while (sess_next_hold(s, &pos, &id, &k)) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            p = realloc(p, (size_t)cap * 16);
        }
        p[2 * *n] = id;
        p[2 * *n + 1] = k;
        ++*n;
    }
    for (uint32_t i = 1; i < *n; i++) /* insertion sort by id: small */
        for (uint32_t j = i; j > 0 && p[2 * j - 2] > p[2 * j]; j--) {
            uint64_t a = p[2 * j - 2], b = p[2 * j - 1];
            p[2 * j - 2] = p[2 * j];
            p[2 * j - 1] = p[2 * j + 1];
            p[2 * j] = a;
            p[2 * j + 1] = b;
        }
    return p;
}

static uint64_t owner_id(const struct store *x, uint32_t slot)
{
    uint32_t idx = x->heap.owner[slot];
    return idx ? x->by_idx[idx]->id : 0;
}

/* a (live) and b (loaded at b_now) hold the same state: objects with their
 * data, refs and every count, the id allocator, sessions and their holds,
 * names and share tokens. */
static void expect_equal_stores(const struct store *a, const struct store *b, uint64_t b_now,
                                int same_free_order)
{
    const struct heap *ha = &a->heap, *hb = &b->heap;
    uint32_t pa = 0, pb = 0, sa, ga, sb, gb, pos;
    const struct sess *s;
    const struct name_ent *e;
    uint64_t id, id2;

    assert_int_equal(ha->objects, hb->objects);
    assert_int_equal(ha->data_bytes, hb->data_bytes);
    assert_int_equal(ha->refs, hb->refs);
    assert_int_equal(ha->nslots, hb->nslots);
    assert_int_equal(ha->gen_floor, hb->gen_floor);
    assert_int_equal(ha->gen_next_max, hb->gen_next_max);
    assert_int_equal(ha->nfree, hb->nfree);
    assert_null(hb->free_prev);
    while (heap_free_next(ha, &pa, &sa, &ga)) {
        assert_true(heap_free_next(hb, &pb, &sb, &gb));
        if (same_free_order) {
            assert_int_equal(sa, sb);
            assert_int_equal(ga, gb);
        }
    }
    assert_false(heap_free_next(hb, &pb, &sb, &gb));
    if (!same_free_order) { /* the same free slots, waiting with the same generations */
        for (pa = 0; heap_free_next(ha, &pa, &sa, &ga);)
            assert_true((hb->slots[sa] & 1) &&
                        (hb->slots[sa] >> 8 & ((1u << OBJ_GEN_BITS) - 1)) == ga);
    }
    for (uint32_t i = 0; i < ha->nslots; i++) {
        const struct obj *oa = heap_slot(ha, i, &id), *ob = heap_slot(hb, i, &id2);
        const uint32_t same = OBJ_EXTRA | OBJ_BIG;
        if (!oa) {
            assert_null(ob);
            continue;
        }
        assert_non_null(ob);
        assert_int_equal(id, id2);
        assert_int_equal(obj_flags(oa) & same, obj_flags(ob) & same);
        assert_int_equal(obj_data_len(oa), obj_data_len(ob));
        assert_memory_equal(obj_data(oa), obj_data(ob), obj_data_len(oa));
        assert_int_equal(obj_nrefs(oa), obj_nrefs(ob));
        if (obj_nrefs(oa))
            assert_memory_equal(obj_refs(oa), obj_refs(ob), 8 * (size_t)obj_nrefs(oa));
        assert_int_equal(oa->holds, ob->holds);
        assert_int_equal(oa->internal, ob->internal);
        assert_int_equal(heap_names(ha, oa, id), heap_names(hb, ob, id));
        assert_int_equal(heap_tokens(ha, oa, id), heap_tokens(hb, ob, id));
        assert_int_equal(owner_id(a, i), owner_id(b, i));
    }

    assert_int_equal(a->next_sess_id, b->next_sess_id);
    assert_int_equal(store_session_count(a), store_session_count(b));
    pos = 0;
    while ((s = store_next_sess(a, &pos))) {
        const struct sess *t = sess_find(b, s->id);
        uint64_t *h1, *h2;
        uint32_t n1, n2;
        assert_non_null(t);
        assert_memory_equal(s->token, t->token, SESS_TOKEN_BYTES);
        assert_int_equal(s->ttl_s, t->ttl_s);
        assert_string_equal(s->client, t->client);
        assert_int_equal(s->nholds, t->nholds);
        assert_int_equal(s->ntokens, t->ntokens);
        assert_int_equal(s->ending, t->ending);
        assert_null(t->conn);
        assert_false(timerq_queued(&t->lease));
        /* Resumable by its token, unless it is ending. */
        {
            uint64_t key;
            const uint64_t *v;
            memcpy(&key, t->token, 8);
            v = u64map_get(&b->by_token, key);
            if (t->ending)
                assert_true(!v || *v != t->id);
            else
                assert_true(v && *v == t->id);
        }
        h1 = holds_of(s, &n1);
        h2 = holds_of(t, &n2);
        assert_int_equal(n1, n2);
        if (n1)
            assert_memory_equal(h1, h2, (size_t)n1 * 16);
        free(h1);
        free(h2);
    }
    assert_int_equal(a->sessions_detached, b->sessions_detached);

    assert_int_equal(a->names.count, b->names.count);
    pos = 0;
    for (e = names_next(&a->names, &pos, NULL); e; e = names_next(&a->names, &pos, e)) {
        const struct name_ent *f = names_find(&b->names, e->name, e->len);
        assert_non_null(f);
        assert_int_equal(e->id, f->id);
    }

    assert_int_equal(a->shares.len, b->shares.len);
    pos = 0;
    {
        const uint8_t *ta, *tb;
        uint64_t da, db, ma, mb;
        uint32_t ttla, ttlb, pb2;
        while (store_next_share(a, &pos, &ta, &id, &da, &ttla, &ma)) {
            int found = 0;
            pb2 = 0;
            while (store_next_share(b, &pb2, &tb, &id2, &db, &ttlb, &mb)) {
                if (memcmp(ta, tb, SESS_TOKEN_BYTES))
                    continue;
                assert_int_equal(id, id2);
                assert_int_equal(ttla, ttlb);
                assert_int_equal(ma, mb);
                assert_int_equal(db, b_now + (uint64_t)ttlb * 1000); /* restarted at full */
                found = 1;
            }
            assert_true(found);
        }
    }
}

static void expect_valid(const struct store *x)
{
    char err[256];
    if (store_check(x, err, sizeof(err)) < 0)
        fail_msg("invariant broken: %s", err);
}

/* What the allocator hands out next is the same in both: ids after a
 * restart continue as if the server had not stopped. The new objects get a
 * hold of session sid in each. */
static void expect_same_ids(struct store *a, struct store *b, uint64_t sid, int n)
{
    for (int k = 0; k < n; k++) {
        uint64_t ia, ib;
        char data[8] = {0};
        memcpy(data, &k, sizeof(k));
        assert_int_equal(heap_create(&a->heap, data, sizeof(data), NULL, 0, &ia), 0);
        assert_int_equal(heap_create(&b->heap, data, sizeof(data), NULL, 0, &ib), 0);
        if (ia != ib)
            fail_msg("create %d: %llx live, %llx loaded", k, (unsigned long long)ia,
                     (unsigned long long)ib);
        assert_int_equal(sess_incref(a, sess_find(a, sid), ia, 1, NULL), 0);
        assert_int_equal(sess_incref(b, sess_find(b, sid), ib, 1, NULL), 0);
    }
}

static void load_and_compare(uint64_t load_now)
{
    struct snapshot_info info, linfo;
    char err[512];
    int rc = snapshot_write(&st, dir, 42, now_ms, &info, err, sizeof(err));
    if (rc)
        fail_msg("snapshot_write: %s", err);
    load_init();
    rc = snapshot_load(&ld, path, load_now, &linfo, err, sizeof(err));
    if (rc)
        fail_msg("snapshot_load: %d %s", rc, err);
    assert_int_equal(linfo.objects, info.objects);
    assert_int_equal(linfo.last_index, 42);
    expect_valid(&ld);
    expect_equal_stores(&st, &ld, load_now, 1);
}

/* A random store written and loaded back: the same, object by object, and
 * the ending session goes on releasing its holds exactly as the live one
 * does. */
static void load_rebuilds_the_store(void **state)
{
    (void)state;
    uint64_t ending;
    build(3000, 1);
    ending = end_in_slices(3, 900, 2)->id;
    assert_true(st.heap.nfree > 0);
    load_and_compare(now_ms + 7777);
    assert_non_null(sess_find(&ld, ending));
    assert_true(sess_find(&ld, ending)->ending);

    /* The allocator: the next ids are the same. 2000 creates cross the
     * table's capacity (4096 slots), where a full table reuses a free slot
     * before it grows. */
    expect_same_ids(&st, &ld, sessions[0]->id, 2000);
    expect_valid(&ld);
    expect_equal_stores(&st, &ld, now_ms + 7777, 1);

    /* Both finish releasing the ending session (on the live clock, so that
     * no token is due in either) and free the same objects. The order of
     * the frees, so of the free list, is not the same: the snapshot keeps
     * the holds, not the order of the live session's hash map. */
    while (store_expire(&st, now_ms, UINT64_MAX, NULL))
        ;
    while (store_expire(&ld, now_ms, UINT64_MAX, NULL))
        ;
    assert_null(sess_find(&st, ending));
    assert_null(sess_find(&ld, ending));
    sessions[3] = NULL;
    expect_valid(&ld);
    expect_equal_stores(&st, &ld, now_ms + 7777, 0);

    /* The garbage cycles the live collector would find, the loaded one
     * finds too: the same objects are left. */
    {
        struct gc_result ra, rb;
        assert_int_equal(store_collect(&st, &ra), 0);
        assert_int_equal(store_collect(&ld, &rb), 0);
        assert_true(ra.collected > 0);
        assert_int_equal(ra.collected, rb.collected);
    }
    expect_valid(&ld);
    expect_equal_stores(&st, &ld, now_ms + 7777, 0);
    store_close(&ld);
}

/* Garbage cycles the live collector has not collected yet are in the
 * snapshot; the loaded store's collector finds them as the live one does,
 * though no decrement reaches them again. */
static void load_finds_the_garbage_cycles(void **state)
{
    (void)state;
    struct gc_result ra, rb;
    build(3000, 0);
    for (int k = 0; k < 20; k++) { /* garbage 2-cycles, not collected yet */
        struct sess *s = sessions[0];
        uint64_t a, b, after;
        uint32_t len;
        assert_int_equal(sess_reserve(&st, s), 0);
        assert_int_equal(heap_create(&st.heap, "a", 1, NULL, 0, &a), 0);
        assert_int_equal(sess_incref(&st, s, a, 1, NULL), 0);
        assert_int_equal(sess_reserve(&st, s), 0);
        assert_int_equal(heap_create(&st.heap, "b", 1, &a, 1, &b), 0);
        assert_int_equal(sess_incref(&st, s, b, 1, NULL), 0);
        assert_int_equal(heap_link(&st.heap, a, b, &len), 0);
        assert_int_equal(sess_decref(&st, s, a, 1, &after), 0);
        assert_int_equal(sess_decref(&st, s, b, 1, &after), 0);
    }
    load_and_compare(now_ms);
    assert_int_equal(store_collect(&st, &ra), 0);
    assert_int_equal(store_collect(&ld, &rb), 0);
    assert_true(ra.collected >= 40);
    assert_int_equal(ra.collected, rb.collected);
    expect_valid(&ld);
    expect_equal_stores(&st, &ld, now_ms, 0);
    store_close(&ld);
}

/* A share token outlives the session that made it, and the store keeps the
 * maker's id. The loaded store keeps it too: a cluster node restored from a
 * snapshot kept 0 instead, and its debug_digest's tokens part differed from
 * the leader's at the same applied index (issue 16's nemesis). The token
 * still counts against no session there, and is claimed as in the live one. */
static void load_keeps_an_ended_makers_id(void **state)
{
    (void)state;
    uint8_t token[SESS_TOKEN_BYTES];
    uint64_t id = 0, maker, maker_ld, got, deadline, ma = 0;
    const uint8_t *tok;
    uint32_t pos = 0, ttl;
    struct sess *s, *claimer;

    build(300, 0);
    for (uint32_t k = 0; k < st.heap.nslots && !heap_slot(&st.heap, k, &id); k++)
        ;
    assert_true(heap_get(&st.heap, id) != NULL);
    assert_int_equal(sess_new(&st, &s), 0);
    assert_int_equal(share_new(&st, s, id, 60, now_ms, token), 0);
    maker = s->id;
    sess_detach(&st, s, now_ms); /* no lease: it ends at once */
    assert_null(sess_find(&st, maker));

    load_and_compare(now_ms + 5); /* the makers too, this one's included */
    while (store_next_share(&ld, &pos, &tok, &got, &deadline, &ttl, &maker_ld))
        if (!memcmp(tok, token, SESS_TOKEN_BYTES))
            ma = maker_ld;
    assert_int_equal(ma, maker);

    /* Claimed in both by the same new session: the same hold, and the
     * token ends counted against no session. */
    assert_int_equal(sess_new(&st, &s), 0);
    assert_int_equal(sess_new_at(&ld, s->id, s->token, &claimer), 0);
    assert_int_equal(share_claim(&st, s, token, SESS_TOKEN_BYTES, now_ms, &got), 0);
    assert_int_equal(share_claim(&ld, claimer, token, SESS_TOKEN_BYTES, now_ms, &got), 0);
    assert_int_equal(got, id);
    expect_valid(&ld);
    expect_equal_stores(&st, &ld, now_ms + 5, 0);
    store_close(&ld);
}

/* An old heap: generations near the end, so some slots are retired for
 * good, and the free list's last slot waits to give the last generation
 * (which a retired slot's marker resembles). */
static void load_keeps_retired_slots(void **state)
{
    (void)state;
    struct store_limits lim = {.max_data_bytes = 1024, .max_refs = 16, .max_session_ttl = 3600};
    const uint32_t gmax = (1u << OBJ_GEN_BITS) - 1;
    static uint64_t ids[1024];
    struct sess *s;
    uint64_t after, id;
    uint32_t cur = 0, slot, gen, nfree = 0, retired = 0, ntop = 0;

    assert_int_equal(store_init(&st, &lim, on_notify, NULL), 0);
    st.heap.gen_floor = st.heap.gen_next_max = gmax - 2;
    assert_int_equal(sess_new(&st, &s), 0);
    memset(sessions, 0, sizeof(sessions));
    sessions[0] = s;
    /* A full table (1024 slots) reuses a freed slot at once, so freeing n
     * objects and creating n gives the same slots a generation further. */
    for (int k = 0; k < 1024; k++) {
        assert_int_equal(sess_reserve(&st, s), 0);
        assert_int_equal(heap_create(&st.heap, "x", 1, NULL, 0, &ids[k]), 0);
        assert_int_equal(sess_incref(&st, s, ids[k], 1, NULL), 0);
    }
    /* ids[0..299] a generation further, then ids[0..149] one more: the
     * last generation, so freeing ids[0..74] retires their slots. */
    for (uint32_t n = 300; n >= 75; n /= 2) {
        for (uint32_t k = 0; k < n; k++)
            assert_int_equal(sess_decref(&st, s, ids[k], 1, &after), 0);
        for (uint32_t k = 0; k < n && n > 75; k++) {
            assert_int_equal(sess_reserve(&st, s), 0);
            assert_int_equal(heap_create(&st.heap, "y", 1, NULL, 0, &ids[k]), 0);
            assert_int_equal(sess_incref(&st, s, ids[k], 1, NULL), 0);
        }
    }
    /* Objects of generation max - 1, freed last: their slots wait with max,
     * the tail's too. */
    for (uint32_t k = 150; k < 160; k++) {
        assert_int_equal(ids[k] >> 32, gmax - 1);
        assert_int_equal(sess_decref(&st, s, ids[k], 1, &after), 0);
    }
    while (heap_free_next(&st.heap, &cur, &slot, &gen)) {
        nfree++;
        ntop += gen == gmax;
    }
    for (uint32_t i = 0; i < st.heap.nslots; i++)
        retired += !heap_slot(&st.heap, i, &id);
    retired -= nfree;
    if (!(retired > 0 && ntop > 0 && gen == gmax))
        fail_msg("retired %u, waiting with the last generation %u, tail's %u", retired, ntop, gen);

    load_and_compare(now_ms);
    expect_same_ids(&st, &ld, s->id, 3000);
    expect_valid(&ld);
    store_close(&ld);
}

/* Every bit flip and every cut of a snapshot is refused by the load, with
 * the offset, and the half-built store frees everything. */
static void load_refuses_every_flip_and_cut(void **state)
{
    (void)state;
    char err[512];
    uint8_t *orig;
    size_t size, base;
    build(60, 0);
    end_in_slices(2, 20, 0);
    assert_int_equal(snapshot_write(&st, dir, 42, now_ms, NULL, err, sizeof(err)), 0);
    read_file(&orig, &size);
    base = mem_used();
    for (size_t off = 0; off < 2 * size; off++) {
        int rc;
        if (off < size) {
            orig[off] ^= (uint8_t)(1u << (off % 8));
            write_file(orig, size);
            orig[off] ^= (uint8_t)(1u << (off % 8));
        } else {
            write_file(orig, off - size); /* every length short of the whole */
        }
        load_init();
        rc = snapshot_load(&ld, path, now_ms, NULL, err, sizeof(err));
        if (rc >= 0)
            fail_msg("damage at %zu (%s) was loaded", off % size, off < size ? "flip" : "cut");
        assert_non_null(strstr(err, "offset"));
        store_close(&ld);
        assert_int_equal(mem_used(), base);
    }
    free(orig);
}

/* Out of memory at any allocation of a load: -ENOMEM, and everything freed. */
static void load_out_of_memory_frees_all(void **state)
{
    (void)state;
    char err[512];
    size_t base;
    int rc = -1;
    build(300, 0);
    end_in_slices(2, 50, 0);
    assert_int_equal(snapshot_write(&st, dir, 42, now_ms, NULL, err, sizeof(err)), 0);
    base = mem_used();
    for (long k = 0; rc != 0; k++) {
        load_init();
        mem_fail_after(k);
        rc = snapshot_load(&ld, path, now_ms, NULL, err, sizeof(err));
        mem_fail_after(-1);
        if (rc != 0) {
            if (rc != -ENOMEM)
                fail_msg("allocation %ld failed: %d %s", k, rc, err);
            assert_non_null(strstr(err, "out of memory"));
            store_close(&ld);
            assert_int_equal(mem_used(), base);
        }
    }
    expect_valid(&ld);
    expect_equal_stores(&st, &ld, now_ms, 1);
    store_close(&ld);
}

/* Records that decode and come in order but do not make a store: a file
 * written by hand (header, records, an end record with the right counts). */
#define MAXREC 24
struct craft {
    struct rec r[MAXREC];
    int n;
    uint64_t refs[3][2], pairs[2][2], free_pairs[2];
};

static const uint8_t tok1[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, tok2[16] = {2, 2, 2, 2, 2, 2, 2, 2},
                     tok3[16] = {3, 3, 3, 3, 3, 3, 3, 3, 3};

/* A small valid store: sessions 1 and 2; objects 1 <-> 2 (a cycle, 1 owned
 * by session 1 and held twice more by 2), 3 owned by 2, named and shared;
 * slot 4 free. */
static void craft_valid(struct craft *c)
{
    memset(c, 0, sizeof(*c));
    c->refs[0][0] = 2;
    c->refs[1][0] = 1;
    c->pairs[0][0] = 1, c->pairs[0][1] = 2;
    c->free_pairs[0] = 3, c->free_pairs[1] = 1;
    c->r[c->n++] = (struct rec){.type = REC_SNAP_HEAD, .a = 42, .c = 3};
    c->r[c->n++] = (struct rec){.type = REC_SNAP_IDS, .a = 4, .b = 0, .c = 1};
    c->r[c->n++] = (struct rec){.type = REC_SNAP_FREE, .items = c->free_pairs, .nitems = 1};
    c->r[c->n++] = (struct rec){.type = REC_SNAP_SESS,
                                .sess = 1,
                                .token = tok1,
                                .a = 30,
                                .bytes = (const uint8_t *)"one",
                                .nbytes = 3};
    c->r[c->n++] = (struct rec){.type = REC_SNAP_SESS, .sess = 2, .token = tok2};
    c->r[c->n++] = (struct rec){.type = REC_SNAP_OBJ,
                                .id = 1,
                                .a = 1,
                                .bytes = (const uint8_t *)"a",
                                .nbytes = 1,
                                .items = c->refs[0],
                                .nitems = 1};
    c->r[c->n++] = (struct rec){.type = REC_SNAP_OBJ, .id = 2, .items = c->refs[1], .nitems = 1};
    c->r[c->n++] = (struct rec){.type = REC_SNAP_OBJ, .id = 3, .a = 2};
    c->r[c->n++] = (struct rec){.type = REC_SNAP_HOLDS, .sess = 2, .items = c->pairs, .nitems = 1};
    c->r[c->n++] =
        (struct rec){.type = REC_SNAP_NAME, .bytes = (const uint8_t *)"n", .nbytes = 1, .id = 3};
    c->r[c->n++] =
        (struct rec){.type = REC_SNAP_SHARE, .token = tok3, .id = 3, .a = 1500, .b = 5, .c = 1};
}

static int craft_find(const struct craft *c, enum rec_type t, int nth)
{
    for (int i = 0; i < c->n; i++)
        if (c->r[i].type == t && nth-- == 0)
            return i;
    fail_msg("no such record");
    return -1;
}

static void craft_insert(struct craft *c, int at, struct rec r)
{
    memmove(&c->r[at + 1], &c->r[at], (size_t)(c->n - at) * sizeof(r));
    c->r[at] = r;
    c->n++;
}

static void craft_write(const struct craft *c)
{
    struct buf b;
    uint8_t h[SNAPSHOT_HEADER_BYTES] = {0};
    struct rec end = {.type = REC_SNAP_END};
    buf_init(&b);
    memcpy(h, "RCSSNAP", 8);
    le_put32(h + 8, SNAPSHOT_VERSION);
    le_put64(h + 16, 42);
    le_put32(h + 60, crc32c(0, h, 60));
    assert_int_equal(buf_append(&b, h, sizeof(h)), 0);
    for (int i = 0; i < c->n; i++) {
        assert_int_equal(rec_encode(&b, &c->r[i]), 0);
        end.a += c->r[i].type == REC_SNAP_OBJ;
        end.b += c->r[i].type == REC_SNAP_NAME;
        end.c += c->r[i].type == REC_SNAP_SESS;
        end.d += c->r[i].type == REC_SNAP_SHARE;
    }
    assert_int_equal(rec_encode(&b, &end), 0);
    write_file((const uint8_t *)b.data, b.len);
    buf_close(&b);
}

/* Load what c describes: 0, or the refusal with why in the message. */
static void craft_expect(const struct craft *c, const char *why)
{
    char err[512];
    size_t base = mem_used();
    int rc;
    craft_write(c);
    load_init();
    rc = snapshot_load(&ld, path, now_ms, NULL, err, sizeof(err));
    if (!why) {
        if (rc)
            fail_msg("a valid snapshot refused: %s", err);
        expect_valid(&ld);
    } else {
        if (rc != -EBADMSG || !strstr(err, why) || !strstr(err, "offset"))
            fail_msg("expected -EBADMSG with '%s', got %d '%s'", why, rc, rc ? err : "");
    }
    store_close(&ld);
    assert_int_equal(mem_used(), base);
}

static void load_refuses_what_does_not_make_a_store(void **state)
{
    (void)state;
    struct craft c;
    struct store_limits lim = {.max_data_bytes = 1024, .max_refs = 16, .max_session_ttl = 3600};
    uint64_t dangling[1] = {9}, dup_pairs[2][2] = {{1, 1}, {1, 1}}, zero_pair[2] = {3, 0};
    uint64_t free_twice[4] = {3, 1, 3, 1};
    char longname[64];
    int i;

    assert_int_equal(store_init(&st, &lim, on_notify, NULL), 0); /* (for teardown) */
    craft_valid(&c);
    craft_expect(&c, NULL);
    /* What loads, as written. */
    craft_write(&c);
    {
        char err[512];
        const struct sess *s1, *s2;
        load_init();
        assert_int_equal(snapshot_load(&ld, path, now_ms, NULL, err, sizeof(err)), 0);
        s1 = sess_find(&ld, 1);
        s2 = sess_find(&ld, 2);
        assert_true(s1 && s2 && s1->ttl_s == 30 && !strcmp(s1->client, "one"));
        assert_int_equal(s1->nholds, 1);
        assert_int_equal(s2->nholds, 3);
        assert_int_equal(s1->ntokens, 1);
        assert_int_equal(heap_get(&ld.heap, 1)->holds, 3);
        assert_int_equal(heap_get(&ld.heap, 1)->internal, 1);
        assert_int_equal(heap_get(&ld.heap, 2)->internal, 1);
        assert_int_equal(ld.next_sess_id, 3);
        assert_int_equal(heap_next_id(&ld.heap), 4 + 1); /* slot 4 (id 5): 1 free slot waits */
        store_close(&ld);
    }

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_OBJ, 1)].items = dangling;
    craft_expect(&c, "ref names no live object");

    craft_valid(&c); /* 2 without its ref from 1: nothing counts it */
    c.r[craft_find(&c, REC_SNAP_OBJ, 0)].nitems = 0;
    craft_expect(&c, "an object nothing counts");

    craft_valid(&c);
    i = craft_find(&c, REC_SNAP_OBJ, 2);
    craft_insert(&c, i, c.r[i]); /* object 3 twice */
    craft_expect(&c, "slot that is free, taken");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_OBJ, 2)].id = 4; /* the free slot */
    craft_expect(&c, "slot that is free, taken");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_OBJ, 2)].id = 9; /* past the slots used */
    craft_expect(&c, "slot that is free, taken");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_OBJ, 2)].id = (uint64_t)2 << 32 | 3; /* past the generations */
    craft_expect(&c, "slot that is free, taken");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_OBJ, 2)].a = 7;
    craft_expect(&c, "owned by no session");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_HOLDS, 0)].sess = 7;
    craft_expect(&c, "holds of no session");

    craft_valid(&c);
    c.pairs[0][0] = 9;
    craft_expect(&c, "a hold on no live object");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_HOLDS, 0)].items = zero_pair;
    craft_expect(&c, "a count out of range");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_HOLDS, 0)].items = dup_pairs;
    c.r[craft_find(&c, REC_SNAP_HOLDS, 0)].nitems = 2;
    craft_expect(&c, "listed twice");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_FREE, 0)].items = free_twice;
    c.r[craft_find(&c, REC_SNAP_FREE, 0)].nitems = 2;
    craft_expect(&c, "a free slot");

    craft_valid(&c);
    c.free_pairs[1] = 0; /* generation 0 is never a free slot's */
    craft_expect(&c, "a free slot");

    craft_valid(&c);
    c.free_pairs[0] = 0; /* the slot of object 1 */
    craft_expect(&c, "slot that is free, taken");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_IDS, 0)].b = 2; /* floor above the bound */
    craft_expect(&c, "id allocator state");

    craft_valid(&c);
    i = craft_find(&c, REC_SNAP_NAME, 0);
    craft_insert(&c, i, c.r[i]);
    craft_expect(&c, "a name");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_NAME, 0)].id = 9;
    craft_expect(&c, "a name");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_SHARE, 0)].b = 0;
    craft_expect(&c, "a share token with a bad ttl");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_SHARE, 0)].a = 5001;
    craft_expect(&c, "a share token with a bad ttl");

    craft_valid(&c);
    i = craft_find(&c, REC_SNAP_SHARE, 0);
    craft_insert(&c, i, c.r[i]);
    craft_expect(&c, "a share token that repeats");

    /* A maker that ended is kept, but one the sequence has not reached
     * yet would be counted against a later session that never made it. */
    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_SHARE, 0)].c = 3;
    craft_expect(&c, "a share token made by a session past the sequence");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_SESS, 1)].sess = 1;
    craft_expect(&c, "a session whose id or resume token repeats");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_SESS, 1)].token = tok1;
    craft_expect(&c, "a session whose id or resume token repeats");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_SESS, 1)].b = REC_SESS_ATTACHED | REC_SESS_ENDING;
    craft_expect(&c, "bad lease or flags");

    craft_valid(&c);
    memset(longname, 'x', sizeof(longname));
    c.r[craft_find(&c, REC_SNAP_SESS, 1)].bytes = (const uint8_t *)longname;
    c.r[craft_find(&c, REC_SNAP_SESS, 1)].nbytes = sizeof(longname);
    craft_expect(&c, "bad client name");

    craft_valid(&c);
    c.r[craft_find(&c, REC_SNAP_HEAD, 0)].c = 2; /* session 2 is past it */
    craft_expect(&c, "a session id past the sequence");
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
        cmocka_unit_test_setup_teardown(load_rebuilds_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(load_finds_the_garbage_cycles, setup, teardown),
        cmocka_unit_test_setup_teardown(load_keeps_retired_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(load_keeps_an_ended_makers_id, setup, teardown),
        cmocka_unit_test_setup_teardown(load_refuses_every_flip_and_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(load_out_of_memory_frees_all, setup, teardown),
        cmocka_unit_test_setup_teardown(load_refuses_what_does_not_make_a_store, setup, teardown),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
