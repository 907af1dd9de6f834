/* Replay equivalence of the apply layer (docs/persistence.md): a store driven
 * through cmd_dispatch with a data directory (requests through
 * persist_change, the store's and the collector's own decisions through the
 * journal hook) is recovered from that directory, and the recovered state
 * must equal the live state, object for object, at the last record and at
 * every record in between that ended a step (a request, a close, an expiry
 * tick, a collector slice, a snapshot). The journal is also cut after a
 * random record (and torn inside the next one): the state recovered must be
 * the live state at that record, the prefix property crash safety rests
 * on. No network: requests are msgpack built here, as in test_cmd.
 *
 * The state compared is what requests can observe: every object (id, data,
 * refs, holds, internal, names and tokens counts), every name, every
 * session that has a lease, holds or tokens (id, resume token, lease ttl,
 * ending, its holds per object, what it has left to release) and every
 * share token (bytes, object, ttl, maker while the maker lives). Not
 * compared: which ids are free and in what order (a replay may take slots
 * from the middle of the free list), deadlines (they restart at
 * recovery), watches (not durable), the client name a hello gives (no
 * request reads it, and a later hello's is not journaled), and garbage a
 * sliced collection has hidden but not recorded yet (hide_white:
 * unreachable, found again after a restart).
 *
 * The tests after the random runs are what those found, one each.
 * RCS_REPLAY_SEEDS=N runs N seeds (48 of 600 steps by default, 200 of 2000
 * in the slow run), RCS_REPLAY_SEED=S runs seed S alone (to reproduce a
 * failure), RCS_REPLAY_VERBOSE=1 prints both whole states on a
 * difference. */
#include "cmocka_pre.h"

#include "check.h"
#include "cmd.h"
#include "err.h"
#include "journal.h"
#include "mem.h"
#include "names.h"
#include "persist.h"
#include "rpc_pack.h"
#include "snapshot.h"
#include "tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define NSLOTS  6  /* connections, each with an attached session */
#define NLEASED 8  /* resume tokens of detached leased sessions kept */
#define NSHARES 8  /* share tokens kept for claims */
#define NNAMES  6  /* names n0..n5 */
#define NIDS    48 /* ids kept for requests (live or not) */

/* ---- the fingerprint: the observable state as sorted text lines ---- */

struct lines {
    char **v;
    size_t n, cap;
};

static void add_line(struct lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_line(struct lines *l, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(char *));
        assert_non_null(l->v);
    }
    l->v[l->n] = strdup(tmp);
    assert_non_null(l->v[l->n]);
    l->n++;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void hex(char *out, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", ((const uint8_t *)p)[i]);
    out[2 * n] = '\0';
}

/* Whether session s is part of the state: a session with no lease, no
 * holds and no tokens is not (nothing of it outlives a restart: recovery
 * ends it, and no record may have named it yet). */
static int counted(const struct sess *s, int all_sessions)
{
    (void)all_sessions;
    return s->ttl_s || s->nholds || s->ntokens || s->ending;
}

/* The state of st as one string (malloc'd), lines sorted. */
static char *fingerprint(const struct store *st, int all_sessions)
{
    const struct heap *h = &st->heap;
    struct lines l = {0};
    struct sess *s;
    uint32_t pos = 0;
    char buf[700], *out;
    size_t len = 0;

    for (uint32_t i = 0; i < h->nslots; i++) {
        uint64_t id;
        struct obj *o = heap_slot(h, i, &id);
        char refs[400];
        size_t rl = 0;
        if (!o || (obj_flags(o) & OBJ_GARBAGE))
            continue;
        refs[0] = '\0';
        for (uint32_t k = 0; k < obj_nrefs(o) && rl + 24 < sizeof(refs); k++)
            rl += (size_t)snprintf(refs + rl, sizeof(refs) - rl, "%" PRIx64 ",", obj_refs(o)[k]);
        assert_true(obj_data_len(o) * 2 < sizeof(buf));
        hex(buf, obj_data(o), obj_data_len(o));
        add_line(&l, "o %016" PRIx64 " data=%s refs=%s holds=%u internal=%u names=%u tokens=%u", id,
                 buf, refs, o->holds, o->internal, heap_names(h, o, id), heap_tokens(h, o, id));
        pos = 0;
        while ((s = store_next_sess(st, &pos)))
            if (counted(s, all_sessions) && sess_holds_on(st, s, id))
                add_line(&l, "h sess=%" PRIu64 " obj=%016" PRIx64 " n=%" PRIu64, s->id, id,
                         sess_holds_on(st, s, id));
    }
    pos = 0;
    while ((s = store_next_sess(st, &pos))) {
        if (!counted(s, all_sessions))
            continue;
        if (s->ending) { /* what it has left to release, dead objects included */
            uint32_t hp = 0;
            uint64_t id, n;
            while (sess_next_hold(s, &hp, &id, &n))
                add_line(&l, "r sess=%" PRIu64 " obj=%016" PRIx64 " n=%" PRIu64, s->id, id, n);
        }
        hex(buf, s->token, SESS_TOKEN_BYTES);
        add_line(&l, "s %" PRIu64 " token=%s ttl=%u ending=%d holds=%" PRIu64 " tokens=%u", s->id,
                 buf, s->ttl_s, s->ending, s->nholds, s->ntokens);
    }
    {
        const uint8_t *tok;
        uint64_t id, deadline, maker;
        uint32_t ttl;
        pos = 0;
        while (store_next_share(st, &pos, &tok, &id, &deadline, &ttl, &maker)) {
            hex(buf, tok, SESS_TOKEN_BYTES);
            /* A maker that has ended counts nothing: not state. */
            add_line(&l, "t %s obj=%016" PRIx64 " ttl=%u maker=%" PRIu64, buf, id, ttl,
                     sess_find(st, maker) ? maker : 0);
        }
    }
    {
        const struct name_ent **names;
        uint64_t n, cap;
        assert_int_equal(names_list(&st->names, "", 0, UINT64_MAX, &names, &n, &cap), 0);
        for (uint64_t i = 0; i < n; i++)
            add_line(&l, "n %.*s %016" PRIx64, (int)names[i]->len, names[i]->name, names[i]->id);
        mem_free(names, cap * sizeof(*names));
    }
    if (l.n) /* (l.v is NULL for an empty state) */
        qsort(l.v, l.n, sizeof(char *), cmp_line);
    for (size_t i = 0; i < l.n; i++)
        len += strlen(l.v[i]) + 1;
    out = malloc(len + 1);
    assert_non_null(out);
    len = 0;
    for (size_t i = 0; i < l.n; i++) {
        size_t k = strlen(l.v[i]);
        memcpy(out + len, l.v[i], k);
        out[len + k] = '\n';
        len += k + 1;
        free(l.v[i]);
    }
    out[len] = '\0';
    free(l.v);
    return out;
}

/* Fail with the first line where two fingerprints differ. */
static void diff_fail(const char *what, unsigned seed, uint64_t index, const char *want,
                      const char *got)
{
    const char *a = want, *b = got;
    if (getenv("RCS_REPLAY_VERBOSE"))
        fprintf(stderr, "live:\n%s\nrecovered:\n%s\n", want, got);
    while (*a && *a == *b) {
        a++;
        b++;
    }
    while (a > want && a[-1] != '\n') {
        a--;
        b--;
    }
    fail_msg("seed %u, record %" PRIu64 ": %s: live has\n  %.*s\nrecovered has\n  %.*s", seed,
             index, what, (int)(strchr(a, '\n') ? strchr(a, '\n') - a : (long)strlen(a)), a,
             (int)(strchr(b, '\n') ? strchr(b, '\n') - b : (long)strlen(b)), b);
}

/* ---- the live run ---- */

/* What the random runs covered: records replayed by type, snapshots
 * written, cuts recovered (torn ones apart). */
static struct {
    uint64_t types[REC_SNAP_FIRST], snapshots, cuts, torn;
} seen;

struct snap {
    uint64_t index; /* the journal index the state is at */
    char *state;
};

struct fx {
    unsigned seed;
    uint64_t rng;
    char dir[64], copy[80];
    uv_loop_t loop;
    struct store st;
    struct persist p;
    struct cmd_env env;
    struct sess *sess[NSLOTS];
    int authed[NSLOTS];
    struct buf req, out;
    struct rpc_decoder dreq, dres;
    msgpack_packer pk;
    struct rpc_message res;
    uint8_t leased[NLEASED][SESS_TOKEN_BYTES];
    uint32_t nleased;
    uint8_t shares[NSHARES][SESS_TOKEN_BYTES];
    uint32_t nshares;
    uint64_t ids[NIDS];
    uint32_t nids;
    struct snap *snaps;
    size_t nsnaps, snaps_cap;
    uint64_t snapshot_index; /* of the last snapshot written, 0 if none */
    char step[64];           /* what the last step was, for messages */
};

static uint64_t rnd(struct fx *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

static uint32_t below(struct fx *f, uint32_t n)
{
    return (uint32_t)(rnd(f) % n);
}

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud, (void)s, (void)id, (void)why;
}

static const struct store_limits test_limits = {16, 4, 1 << 20, 120, 0, 0, 0, 0, 0, 0};

static void check_store(const struct store *st, const char *when, unsigned seed)
{
    char err[256];
    if (store_check(st, err, sizeof(err)) < 0)
        fail_msg("seed %u: %s: invariant broken: %s", seed, when, err);
}

/* The live state after a step, at the journal's last index. A step that
 * appended nothing must have changed nothing observable. */
static void remember(struct fx *f)
{
    uint64_t index = persist_last_index(&f->p);
    char *state = fingerprint(&f->st, 0);
    check_store(&f->st, f->step, f->seed);
    {
        /* What no record has named has nothing a restart would keep. */
        uint32_t pos = 0;
        struct sess *s;
        while ((s = store_next_sess(&f->st, &pos)))
            if (!s->journaled && counted(s, 0))
                fail_msg("seed %u: after %s: session %" PRIu64 " has state but no record", f->seed,
                         f->step, s->id);
    }
    if (f->nsnaps && f->snaps[f->nsnaps - 1].index == index) {
        struct snap *last = &f->snaps[f->nsnaps - 1];
        if (strcmp(last->state, state) != 0)
            diff_fail("a change that no record carries", f->seed, index, last->state, state);
        free(state);
        return;
    }
    if (f->nsnaps == f->snaps_cap) {
        f->snaps_cap = f->snaps_cap ? f->snaps_cap * 2 : 256;
        f->snaps = realloc(f->snaps, f->snaps_cap * sizeof(*f->snaps));
        assert_non_null(f->snaps);
    }
    f->snaps[f->nsnaps].index = index;
    f->snaps[f->nsnaps].state = state;
    f->nsnaps++;
}

static const struct snap *snap_at(const struct fx *f, uint64_t index)
{
    size_t lo = 0, hi = f->nsnaps;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->snaps[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->nsnaps && f->snaps[lo].index == index ? &f->snaps[lo] : NULL;
}

static void open_live(struct fx *f)
{
    struct persist_opts po = {.dir = f->dir, .fsync = JOURNAL_FSYNC_NO, .segment_bytes = 16384};
    char err[512];
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(store_init(&f->st, &test_limits, on_notify, f), 0);
    if (persist_open(&f->p, &po, &f->st, &f->loop, NULL, NULL, f, err, sizeof(err)) < 0)
        fail_msg("persist_open: %s", err);
    f->st.release_at_once = 1 + below(f, 3); /* most ends go in slices */
    f->env.st = &f->st;
    f->env.persist = &f->p;
    f->env.now_ms = 1000;
    for (int i = 0; i < NSLOTS; i++) {
        assert_int_equal(sess_attach(&f->st, &f->authed[i], &f->sess[i]), 0);
        f->authed[i] = 1;
    }
    assert_int_equal(rpc_decoder_init(&f->dreq), 0);
    assert_int_equal(rpc_decoder_init(&f->dres), 0);
}

/* Hand the records of this "loop iteration" to the kernel, as the server's
 * check handle does. */
static void commit(struct fx *f)
{
    assert_int_equal(journal_commit(&f->p.j), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static msgpack_packer *begin(struct fx *f, const char *method, size_t nparams)
{
    buf_reset(&f->req);
    buf_reset(&f->out);
    rpc_packer_init(&f->pk, &f->req);
    rpc_pack_request(&f->pk, 7, method);
    msgpack_pack_array(&f->pk, nparams);
    snprintf(f->step, sizeof(f->step), "request %s", method);
    return &f->pk;
}

/* Serve the request built as the connection in slot; 0 or its error. */
static int serve(struct fx *f, int slot)
{
    msgpack_object req, res;
    struct rpc_message m;
    struct cmd_ctx ctx;
    int have, rc;
    assert_int_equal(rpc_decode(&f->dreq, f->req.data, f->req.len, &req), 0);
    assert_int_equal(rpc_parse_request(&req, &m, &have), 0);
    cmd_ctx_init(&ctx, &f->env, f->sess[slot], &f->authed[slot], &f->out);
    ctx.conn = &f->authed[slot];
    rc = cmd_dispatch(&ctx, &m);
    f->sess[slot] = ctx.sess; /* a resume swaps it */
    assert_int_equal(rpc_decode(&f->dres, f->out.data, f->out.len, &res), 0);
    assert_int_equal(rpc_parse_message(&res, &f->res), 0);
    return rc;
}

static uint64_t pick_id(struct fx *f)
{
    return f->nids ? f->ids[below(f, f->nids)] : 1;
}

static void keep_id(struct fx *f, uint64_t id)
{
    if (f->nids < NIDS)
        f->ids[f->nids++] = id;
    else
        f->ids[below(f, NIDS)] = id;
}

static void pack_name(struct fx *f)
{
    char name[8];
    snprintf(name, sizeof(name), "n%u", below(f, NNAMES));
    rpc_pack_cstr(&f->pk, name);
}

static void pack_refs(struct fx *f, uint32_t n)
{
    msgpack_pack_array(&f->pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint64(&f->pk, pick_id(f));
}

static void pack_data(struct fx *f)
{
    char d[17];
    uint32_t n = below(f, 17);
    for (uint32_t i = 0; i < n; i++)
        d[i] = (char)('a' + below(f, 26));
    msgpack_pack_bin_with_body(&f->pk, d, n);
}

/* One random request as the connection in slot. */
static void random_request(struct fx *f, int slot)
{
    uint32_t k = below(f, 100);
    int rc;
    if (k < 22) {
        begin(f, "create", 2);
        pack_data(f);
        pack_refs(f, below(f, 4));
        if (serve(f, slot) == 0)
            keep_id(f, f->res.result->via.u64);
    } else if (k < 30) {
        begin(f, "incref", 2);
        msgpack_pack_uint64(&f->pk, pick_id(f));
        msgpack_pack_uint32(&f->pk, 1 + below(f, 3));
        serve(f, slot);
    } else if (k < 42) {
        begin(f, "decref", 2);
        msgpack_pack_uint64(&f->pk, pick_id(f));
        msgpack_pack_uint32(&f->pk, 1 + below(f, 2));
        serve(f, slot);
    } else if (k < 46) {
        begin(f, "set_data", 2);
        msgpack_pack_uint64(&f->pk, pick_id(f));
        pack_data(f);
        serve(f, slot);
    } else if (k < 51) {
        begin(f, "set_refs", 2);
        msgpack_pack_uint64(&f->pk, pick_id(f));
        pack_refs(f, below(f, 4));
        serve(f, slot);
    } else if (k < 58) {
        begin(f, "link", 2); /* cycles, mostly */
        msgpack_pack_uint64(&f->pk, pick_id(f));
        msgpack_pack_uint64(&f->pk, pick_id(f));
        serve(f, slot);
    } else if (k < 62) {
        /* Mostly a target that is there: a random one rarely is. */
        uint64_t id = pick_id(f), target = pick_id(f);
        const struct obj *o = heap_get(&f->st.heap, id);
        if (o && obj_nrefs(o) && below(f, 4))
            target = obj_refs(o)[below(f, obj_nrefs(o))];
        begin(f, "unlink", 2);
        msgpack_pack_uint64(&f->pk, id);
        msgpack_pack_uint64(&f->pk, target);
        serve(f, slot);
    } else if (k < 67) {
        begin(f, "bind", 2);
        pack_name(f);
        msgpack_pack_uint64(&f->pk, pick_id(f));
        serve(f, slot);
    } else if (k < 70) {
        begin(f, "unbind", 1);
        pack_name(f);
        serve(f, slot);
    } else if (k < 74) {
        begin(f, "lookup", 2);
        pack_name(f);
        msgpack_pack_true(&f->pk);
        serve(f, slot);
    } else if (k < 79) {
        begin(f, "share", 2);
        msgpack_pack_uint64(&f->pk, pick_id(f));
        msgpack_pack_uint32(&f->pk, 1 + below(f, 40));
        if (serve(f, slot) == 0) {
            uint32_t i = f->nshares < NSHARES ? f->nshares++ : below(f, NSHARES);
            assert_int_equal(f->res.result->via.bin.size, SESS_TOKEN_BYTES);
            memcpy(f->shares[i], f->res.result->via.bin.ptr, SESS_TOKEN_BYTES);
        }
    } else if (k < 84) {
        if (!f->nshares)
            return;
        begin(f, "claim", 1);
        msgpack_pack_bin_with_body(&f->pk, f->shares[below(f, f->nshares)], SESS_TOKEN_BYTES);
        serve(f, slot);
    } else if (k < 86) {
        begin(f, "release_all", 0);
        serve(f, slot);
    } else if (k < 92) {
        /* A lease (0 takes it away), sometimes a client name. */
        int client = below(f, 3) == 0;
        begin(f, "hello", 1);
        msgpack_pack_map(&f->pk, 1 + client);
        rpc_pack_cstr(&f->pk, "ttl");
        msgpack_pack_uint32(&f->pk, below(f, 4) ? 1 + below(f, 60) : 0);
        if (client) {
            char name[16];
            snprintf(name, sizeof(name), "c%u", below(f, 100));
            rpc_pack_cstr(&f->pk, "client");
            rpc_pack_cstr(&f->pk, name);
        }
        rc = serve(f, slot);
        assert_int_equal(rc, 0);
    } else if (k < 96) {
        if (!f->nleased)
            return;
        begin(f, "hello", 1);
        msgpack_pack_map(&f->pk, 1);
        rpc_pack_cstr(&f->pk, "resume");
        msgpack_pack_bin_with_body(&f->pk, f->leased[below(f, f->nleased)], SESS_TOKEN_BYTES);
        serve(f, slot);
    } else {
        begin(f, "gc", 0);
        assert_int_equal(serve(f, slot), 0);
    }
}

/* The connection in slot closes and a new one takes its place. */
static void close_slot(struct fx *f, int slot)
{
    struct sess *s = f->sess[slot];
    snprintf(f->step, sizeof(f->step), "close of session %" PRIu64, s->id);
    if (s->ttl_s) {
        uint32_t i = f->nleased < NLEASED ? f->nleased++ : below(f, NLEASED);
        memcpy(f->leased[i], s->token, SESS_TOKEN_BYTES);
    }
    sess_detach(&f->st, s, f->env.now_ms);
    assert_int_equal(sess_attach(&f->st, &f->authed[slot], &f->sess[slot]), 0);
}

/* A snapshot as persist's start_snapshot writes one, in this process: the
 * journal committed, a new segment begun, the store written as of the last
 * index, the segments it covers dropped. */
static void save(struct fx *f)
{
    char err[512];
    uint64_t index;
    int rc;
    snprintf(f->step, sizeof(f->step), "snapshot");
    if (gc_pending(&f->st.heap) || f->st.heap.hide_white)
        return; /* persist waits for the free phase too */
    commit(f);
    index = persist_last_index(&f->p);
    journal_rotate(&f->p.j);
    rc = snapshot_write(&f->st, f->dir, index, f->env.now_ms, NULL, err, sizeof(err));
    if (rc < 0)
        fail_msg("seed %u: snapshot_write: %s", f->seed, err);
    assert_true(journal_drop_through(&f->p.j, index) >= 0);
    f->snapshot_index = index;
    seen.snapshots++;
    /* The snapshot alone must give the state it was written from. */
    {
        struct store st;
        char path[200], *want, *got;
        snprintf(path, sizeof(path), "%s/%s", f->dir, SNAPSHOT_FILE);
        assert_int_equal(store_init(&st, &test_limits, on_notify, f), 0);
        if (snapshot_load(&st, path, f->env.now_ms, NULL, err, sizeof(err)) < 0) {
            fail_msg("seed %u: the snapshot of record %" PRIu64 " does not load: %s", f->seed,
                     index, err);
        }
        want = fingerprint(&f->st, 0);
        got = fingerprint(&st, 1);
        if (strcmp(want, got) != 0)
            diff_fail("the snapshot just written", f->seed, index, want, got);
        free(want);
        free(got);
        store_close(&st);
    }
}

static void random_step(struct fx *f)
{
    uint32_t k = below(f, 100);
    struct gc_result r;
    if (k < 75) {
        random_request(f, (int)below(f, NSLOTS));
    } else if (k < 83) {
        close_slot(f, (int)below(f, NSLOTS));
    } else if (k < 90) {
        snprintf(f->step, sizeof(f->step), "collector slice");
        assert_true(store_sweep(&f->st, 0, &r) >= 0);
    } else if (k < 98) {
        /* A tick: one entry (a budget of 0), so bursts of expiry and the
         * slices of an ended session's release have requests between them. */
        snprintf(f->step, sizeof(f->step), "expiry tick");
        f->env.now_ms += below(f, 20000);
        store_expire(&f->st, f->env.now_ms, 0, NULL);
    } else {
        save(f);
    }
    if (below(f, 4) == 0)
        commit(f);
}

/* ---- recovery by the pieces: snapshot, then each record, compared ---- */

struct replay {
    struct fx *f;
    struct store *st;
    uint64_t after, last;
    uint64_t compared;
};

static int replay_one(void *ud, uint64_t index, const struct rec *r)
{
    struct replay *rp = ud;
    const struct snap *sn;
    int rc;
    if (index <= rp->after)
        return 0;
    assert_int_equal(index, rp->last + 1);
    if ((rc = apply_record(rp->st, r, 0, 1, NULL)) < 0)
        fail_msg("seed %u: record %" PRIu64 " (%s) does not apply: %s", rp->f->seed, index,
                 rec_type_name(r->type), err_message(rc));
    rp->last = index;
    seen.types[r->type < REC_SNAP_FIRST ? r->type : 0]++;
    if ((sn = snap_at(rp->f, index)) != NULL) {
        char *got = fingerprint(rp->st, 1);
        if (strcmp(sn->state, got) != 0) {
            char what[96];
            snprintf(what, sizeof(what), "after replaying %s", rec_type_name(r->type));
            diff_fail(what, rp->f->seed, index, sn->state, got);
        }
        free(got);
        rp->compared++;
    }
    return 0;
}

/* Recover dir into st (fresh) without store_recovered, comparing the state
 * with the live one at the snapshot and at each record; *last gets the
 * last index recovered. */
static void recover_pieces(struct fx *f, const char *dir, struct store *st, uint64_t *last)
{
    struct snapshot_info info = {0};
    struct journal_scan scan;
    struct replay rp = {.f = f, .st = st};
    char path[200], err[512];
    const struct snap *sn;
    int rc;

    assert_int_equal(store_init(st, &test_limits, on_notify, f), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_FILE);
    rc = snapshot_load(st, path, 5000, &info, err, sizeof(err));
    if (rc < 0 && rc != -ENOENT)
        fail_msg("seed %u: snapshot_load: %s", f->seed, err);
    rp.after = rp.last = rc == 0 ? info.last_index : 0;
    if ((sn = snap_at(f, rp.after)) != NULL) {
        char *got = fingerprint(st, 1);
        if (strcmp(sn->state, got) != 0)
            diff_fail("the snapshot's state", f->seed, rp.after, sn->state, got);
        free(got);
    }
    if ((rc = journal_scan(dir, replay_one, &rp, &scan)) < 0)
        fail_msg("seed %u: journal_scan: %s", f->seed, scan.damage);
    heap_untrack_free(&st->heap);
    *last = rp.last;
}

/* The real recovery (persist_open) of dir must succeed, pass the check,
 * and leave what store_recovered leaves after the pieces (in pieces). */
static void recover_real(struct fx *f, const char *dir, struct store *pieces)
{
    struct persist_opts po = {.dir = dir, .fsync = JOURNAL_FSYNC_NO, .segment_bytes = 16384};
    struct store st;
    struct persist p;
    uv_loop_t loop;
    char err[512], *want, *got;

    assert_int_equal(store_recovered(pieces, 5000), 0);
    check_store(pieces, "recovery by the pieces", f->seed);
    want = fingerprint(pieces, 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(store_init(&st, &test_limits, on_notify, f), 0);
    if (persist_open(&p, &po, &st, &loop, NULL, NULL, f, err, sizeof(err)) < 0)
        fail_msg("seed %u: persist_open: %s", f->seed, err);
    check_store(&st, "persist_open", f->seed);
    got = fingerprint(&st, 1);
    if (strcmp(want, got) != 0)
        diff_fail("persist_open against the pieces", f->seed, persist_last_index(&p), want, got);
    free(want);
    free(got);
    persist_close(&p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(&st);
}

/* ---- copying and cutting a data directory ---- */

static int seg_name(const char *name)
{
    size_t n = strlen(name);
    return strncmp(name, "journal-", 8) == 0 && n > 4 && strcmp(name + n - 4, ".log") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The segment file names of dir, sorted (malloc'd; free each and v). */
static char **segments(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    size_t cap = 0;
    assert_non_null(d);
    *n = 0;
    while ((e = readdir(d))) {
        if (!seg_name(e->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            v = realloc(v, cap * sizeof(char *));
            assert_non_null(v);
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof(char *), cmp_str);
    return v;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *p;
    long len;
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return p;
}

static void write_all(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

/* Copy the files of from (its lock aside) into a fresh to. */
static void copy_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *e;
    rm_dir(to);
    assert_int_equal(mkdir(to, 0700), 0);
    assert_non_null(d);
    while ((e = readdir(d))) {
        char a[600], b[600];
        uint8_t *p;
        size_t n;
        if (e->d_name[0] == '.' || strcmp(e->d_name, JOURNAL_LOCK_FILE) == 0)
            continue;
        snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, e->d_name);
        p = read_all(a, &n);
        write_all(b, p, n);
        free(p);
    }
    closedir(d);
}

/* Cut dir's journal after record index (zeros after it, later segments
 * gone), and if torn, leave a first part of the next record as a crash in
 * the middle of its write would. Returns 0, or -1 if index is not in any
 * segment (the snapshot covers it). */
static int cut_after(struct fx *f, const char *dir, uint64_t index, int torn)
{
    size_t nseg, len;
    char **seg = segments(dir, &nseg);
    int found = -1;
    for (size_t i = 0; i < nseg; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir, seg[i]);
        if (found == 0) {
            unlink(path);
            continue;
        }
        uint8_t *p = read_all(path, &len);
        uint64_t first, idx;
        size_t off = JOURNAL_HEADER_BYTES, used;
        struct rec r;
        memcpy(&first, p + 24, 8);
        idx = first;
        while (idx <= index && rec_decode(p + off, len - off, REC_KIND_JOURNAL, &r, &used) == 0) {
            off += used;
            idx++;
        }
        if (idx == index + 1 && index >= first) {
            size_t end = off;
            if (torn && rec_decode(p + off, len - off, REC_KIND_JOURNAL, &r, &used) == 0) {
                /* Keep k bytes of it, k at most its last non-zero byte's
                 * offset: zeros after a record that ends in zeros would
                 * leave it whole. */
                size_t last = used - 1;
                while (last > 0 && p[off + last] == 0)
                    last--;
                assert_true(last > 0);
                end += 1 + below(f, (uint32_t)last);
            }
            memset(p + end, 0, len - end);
            write_all(path, p, len);
            found = 0;
        }
        free(p);
    }
    for (size_t i = 0; i < nseg; i++)
        free(seg[i]);
    free(seg);
    return found;
}

/* ---- one seed ---- */

/* A live store on a fresh data directory, its state remembered. */
static void start(struct fx *f, unsigned seed)
{
    memset(f, 0, sizeof(*f));
    f->seed = seed;
    f->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0x100000001b3ull + 1);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rcs_replay_%d", (int)getpid());
    snprintf(f->copy, sizeof(f->copy), "%s.copy", f->dir);
    rm_dir(f->dir);
    open_live(f);
    snprintf(f->step, sizeof(f->step), "start");
    remember(f);
}

/* Stop the live store (as a server stops: the journal written out), then
 * recover a copy of its directory and compare. Returns the last index. */
static uint64_t stop_and_recover(struct fx *f)
{
    struct store rec;
    uint64_t last, live_last;
    commit(f);
    live_last = persist_last_index(&f->p);
    persist_close(&f->p);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    buf_close(&f->req);
    buf_close(&f->out);
    rpc_decoder_close(&f->dreq);
    rpc_decoder_close(&f->dres);
    store_close(&f->st);

    /* The whole journal: the last state, and every step's on the way. */
    copy_dir(f->dir, f->copy);
    recover_pieces(f, f->copy, &rec, &last);
    assert_int_equal(last, live_last);
    check_store(&rec, "recovery", f->seed);
    recover_real(f, f->copy, &rec);
    store_close(&rec);
    return last;
}

static void finish(struct fx *f)
{
    rm_dir(f->copy);
    rm_dir(f->dir);
    for (size_t i = 0; i < f->nsnaps; i++)
        free(f->snaps[i].state);
    free(f->snaps);
    f->snaps = NULL;
    assert_int_equal(mem_used(), 0);
}

static void run_seed(unsigned seed, int steps)
{
    static struct fx f;
    struct store rec;
    uint64_t last;
    start(&f, seed);
    for (int i = 0; i < steps; i++) {
        random_step(&f);
        remember(&f);
    }
    stop_and_recover(&f);

    /* Cut after a random step's last record, maybe torn in the next. */
    for (int round = 0; round < 3 && f.nsnaps > 1; round++) {
        const struct snap *sn = &f.snaps[below(&f, (uint32_t)f.nsnaps)];
        int torn = below(&f, 2);
        if (sn->index <= f.snapshot_index || sn->index == 0)
            continue;
        copy_dir(f.dir, f.copy);
        assert_int_equal(cut_after(&f, f.copy, sn->index, torn), 0);
        recover_pieces(&f, f.copy, &rec, &last);
        if (last != sn->index)
            fail_msg("seed %u: cut after record %" PRIu64 "%s: recovered up to %" PRIu64, seed,
                     sn->index, torn ? " (next torn)" : "", last);
        recover_real(&f, f.copy, &rec);
        store_close(&rec);
        seen.cuts++;
        seen.torn += torn;
    }
    finish(&f);
}

/* ---- what the random runs found, one test each ---- */

static uint64_t create_as(struct fx *f, int slot)
{
    begin(f, "create", 1);
    msgpack_pack_bin_with_body(&f->pk, "x", 1);
    assert_int_equal(serve(f, slot), 0);
    return f->res.result->via.u64;
}

/* A snapshot holds every session, one that no record has named yet
 * (attached, empty) included; its SESS_NEW comes after the snapshot in the
 * journal, and recovery refused to start ("SESS_NEW does not apply": the
 * id was taken by the session the snapshot loaded). */
static void sess_new_after_a_snapshot_that_has_the_session(void **state)
{
    static struct fx f;
    (void)state;
    start(&f, 0);
    save(&f); /* slot 0's session is in it, and in no record */
    remember(&f);
    create_as(&f, 0);
    remember(&f);
    assert_true(f.snapshot_index > 0 || persist_last_index(&f.p) > 0);
    stop_and_recover(&f);
    finish(&f);
}

/* A token past its deadline that store_expire has not reached is still
 * state (its SHARE_EXPIRE record comes later), but the snapshot writer left
 * it out: the object it alone kept was in the snapshot with nothing
 * counting it, and the snapshot did not load ("the store does not
 * verify"), so recovery refused to start. */
static void snapshot_keeps_a_token_past_its_deadline(void **state)
{
    static struct fx f;
    uint64_t id;
    (void)state;
    start(&f, 0);
    id = create_as(&f, 0);
    begin(&f, "share", 2);
    msgpack_pack_uint64(&f.pk, id);
    msgpack_pack_uint32(&f.pk, 1);
    assert_int_equal(serve(&f, 0), 0);
    begin(&f, "decref", 1);
    msgpack_pack_uint64(&f.pk, id);
    assert_int_equal(serve(&f, 0), 0); /* the token alone keeps it */
    remember(&f);
    f.env.now_ms += 5000; /* past the deadline, before the expiry tick */
    save(&f);             /* loads it back and compares */
    remember(&f);
    snprintf(f.step, sizeof(f.step), "expiry tick");
    store_expire(&f.st, f.env.now_ms, UINT64_MAX, NULL);
    assert_null(heap_get(&f.st.heap, id));
    remember(&f);
    stop_and_recover(&f);
    finish(&f);
}

/* A replayed SESS_RELEASE zeroes the session's releasing entry without
 * moving store_expire's cursor, and the object may die after: store_check
 * took the zeroed entry for holds on a dead object. */
static void replayed_release_then_the_object_dies(void **state)
{
    struct store st;
    uint8_t token[SESS_TOKEN_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t a, b, pairs[2];
    char err[256];
    (void)state;
    assert_int_equal(store_init(&st, &test_limits, on_notify, NULL), 0);
    st.release_at_once = 1;
    assert_int_equal(apply_record(&st,
                                  &(struct rec){.type = REC_SESS_NEW, .sess = 5, .token = token}, 0,
                                  1, NULL),
                     0);
    a = heap_next_id(&st.heap);
    assert_int_equal(
        apply_record(&st, &(struct rec){.type = REC_CREATE, .sess = 5, .id = a}, 0, 1, NULL), 0);
    b = heap_next_id(&st.heap);
    assert_int_equal(
        apply_record(&st, &(struct rec){.type = REC_CREATE, .sess = 5, .id = b}, 0, 1, NULL), 0);
    for (int i = 0; i < 2; i++) /* a hold beyond ownership on each */
        assert_int_equal(
            apply_record(&st, &(struct rec){.type = REC_HOLD, .sess = 5, .id = i ? b : a, .a = 1},
                         0, 1, NULL),
            0);
    assert_int_equal(apply_record(&st, &(struct rec){.type = REC_SESS_END, .sess = 5}, 0, 1, NULL),
                     0);
    /* b's entry of the releasing map, then its ownership: b dies. */
    pairs[0] = b;
    pairs[1] = 1;
    for (int i = 0; i < 2; i++)
        assert_int_equal(
            apply_record(
                &st,
                &(struct rec){.type = REC_SESS_RELEASE, .sess = 5, .items = pairs, .nitems = 1}, 0,
                1, NULL),
            0);
    assert_null(heap_get(&st.heap, b));
    if (store_check(&st, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    store_close(&st);
    assert_int_equal(mem_used(), 0);
}

/* A replayed GC_GARBAGE flags a set the collector found; members that
 * were candidates (purple, buffered) kept their buffered flag, which the
 * live collector clears, and store_check on the recovered store counted
 * more objects flagged as buffered than the buffer holds. */
static void replayed_garbage_leaves_the_candidate_buffer(void **state)
{
    struct store st;
    uint8_t token[SESS_TOKEN_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t a, b, ids[2];
    char err[256];
    (void)state;
    assert_int_equal(store_init(&st, &test_limits, on_notify, NULL), 0);
    assert_int_equal(apply_record(&st,
                                  &(struct rec){.type = REC_SESS_NEW, .sess = 5, .token = token}, 0,
                                  1, NULL),
                     0);
    a = heap_next_id(&st.heap);
    assert_int_equal(
        apply_record(&st, &(struct rec){.type = REC_CREATE, .sess = 5, .id = a}, 0, 1, NULL), 0);
    b = heap_next_id(&st.heap);
    assert_int_equal(
        apply_record(&st, &(struct rec){.type = REC_CREATE, .sess = 5, .id = b}, 0, 1, NULL), 0);
    /* A cycle, then the holds go: both are candidates. */
    assert_int_equal(
        apply_record(&st, &(struct rec){.type = REC_LINK, .id = a, .target = b}, 0, 1, NULL), 0);
    assert_int_equal(
        apply_record(&st, &(struct rec){.type = REC_LINK, .id = b, .target = a}, 0, 1, NULL), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(
            apply_record(&st, &(struct rec){.type = REC_DROP, .sess = 5, .id = i ? b : a, .a = 1},
                         0, 1, NULL),
            0);
    assert_true(obj_flags(heap_get_any(&st.heap, a)) & OBJ_BUFFERED);
    ids[0] = a;
    ids[1] = b;
    assert_int_equal(apply_record(&st,
                                  &(struct rec){.type = REC_GC_GARBAGE, .items = ids, .nitems = 2},
                                  0, 1, NULL),
                     0);
    if (store_check(&st, err, sizeof(err)) < 0)
        fail_msg("after GC_GARBAGE: %s", err);
    assert_int_equal(apply_record(&st,
                                  &(struct rec){.type = REC_GC_FREE, .items = ids, .nitems = 2}, 0,
                                  1, NULL),
                     0);
    assert_int_equal(st.heap.objects, 0);
    if (store_check(&st, err, sizeof(err)) < 0)
        fail_msg("after GC_FREE: %s", err);
    store_close(&st);
    assert_int_equal(mem_used(), 0);
}

/* A share token replayed from the journal (not from a snapshot) restarts
 * at its full ttl from the clock of the recovery, as SPEC section 8 says,
 * and as a snapshot's tokens and leases do: the first expiry tick after a
 * recovery must not end it. */
static void replayed_token_restarts_at_full_ttl(void **state)
{
    static struct fx f;
    struct persist_opts po = {.dir = NULL, .fsync = JOURNAL_FSYNC_NO, .segment_bytes = 16384};
    struct store st;
    struct persist p;
    struct store_expired ex = {0};
    uv_loop_t loop;
    char err[512];
    uint64_t id, found;
    uint8_t token[SESS_TOKEN_BYTES];
    (void)state;
    start(&f, 0);
    id = create_as(&f, 0);
    begin(&f, "share", 2);
    msgpack_pack_uint64(&f.pk, id);
    msgpack_pack_uint32(&f.pk, 60);
    assert_int_equal(serve(&f, 0), 0);
    memcpy(token, f.res.result->via.bin.ptr, SESS_TOKEN_BYTES);
    remember(&f);
    stop_and_recover(&f);

    po.dir = f.copy;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(store_init(&st, &test_limits, on_notify, NULL), 0);
    if (persist_open(&p, &po, &st, &loop, NULL, NULL, NULL, err, sizeof(err)) < 0)
        fail_msg("persist_open: %s", err);
    store_expire(&st, uv_now(&loop), UINT64_MAX, &ex);
    assert_int_equal(ex.tokens, 0);
    assert_int_equal(share_find(&st, token, SESS_TOKEN_BYTES, uv_now(&loop), &found), 0);
    assert_int_equal(found, id);
    /* ... and it still ends, at its ttl. */
    store_expire(&st, uv_now(&loop) + 61000, UINT64_MAX, &ex);
    assert_int_equal(ex.tokens, 1);
    persist_close(&p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(&st);
    finish(&f);
}

static unsigned env_uint(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static void run_seeds(unsigned n, int steps)
{
    const char *one = getenv("RCS_REPLAY_SEED");
    if (one && *one) {
        run_seed((unsigned)strtoul(one, NULL, 10), steps);
        return;
    }
    n = env_uint("RCS_REPLAY_SEEDS", n);
    memset(&seen, 0, sizeof(seen));
    for (unsigned s = 1; s <= n; s++)
        run_seed(s, steps);
    if (n < 24)
        return;
    /* The runs went everywhere: every journal record type was replayed,
     * snapshots were written, and cuts were recovered, torn or not. */
    for (unsigned t = 1; t < REC_SNAP_FIRST; t++)
        if (rec_type_name(t) && rec_type_valid(t, REC_KIND_JOURNAL) && !seen.types[t])
            fail_msg("no %s record was replayed in %u seeds", rec_type_name(t), n);
    assert_true(seen.snapshots > 0);
    assert_true(seen.torn > 0 && seen.cuts > seen.torn);
}

static void random_seeds_recover_every_step(void **state)
{
    (void)state;
    run_seeds(48, 600);
}

static void million_replay_seeds(void **state)
{
    (void)state;
    run_seeds(200, 2000);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sess_new_after_a_snapshot_that_has_the_session),
        cmocka_unit_test(snapshot_keeps_a_token_past_its_deadline),
        cmocka_unit_test(replayed_release_then_the_object_dies),
        cmocka_unit_test(replayed_token_restarts_at_full_ttl),
        cmocka_unit_test(replayed_garbage_leaves_the_candidate_buffer),
        cmocka_unit_test(random_seeds_recover_every_step),
        cmocka_unit_test(million_replay_seeds),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
