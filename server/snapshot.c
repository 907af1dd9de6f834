/* snapshot: writing, forking and reading snapshot files (see snapshot.h). */
#include "snapshot.h"
#include "crc32c.h"
#include "err.h"
#include "le.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char snap_magic[8] = "RCSSNAP";

#define FLUSH_BYTES (1u << 20)

/* ---- writing ---- */

struct writer {
    int fd;
    struct buf b;
    uint64_t bytes, records;
    int rc;
};

static int flush(struct writer *w)
{
    const char *p = w->b.data + w->b.off;
    size_t n = buf_pending(&w->b);
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    buf_reset(&w->b);
    return 0;
}

/* Append one record; the first error sticks in w->rc. */
static void emit(struct writer *w, const struct rec *r)
{
    uint64_t before = w->b.len;
    if (w->rc)
        return;
    if ((w->rc = rec_encode(&w->b, r)) < 0)
        return;
    w->bytes += w->b.len - before;
    w->records++;
    if (buf_pending(&w->b) >= FLUSH_BYTES)
        w->rc = flush(w);
}

/* Pairs collected for one SNAP_FREE or SNAP_HOLDS record at a time. */
struct chunk {
    uint64_t pairs[2 * SNAPSHOT_CHUNK_ITEMS];
    uint32_t n;
};

static void chunk_flush(struct writer *w, struct chunk *c, enum rec_type type, uint64_t sess)
{
    struct rec r = {.type = type, .sess = sess, .items = c->pairs, .nitems = c->n};
    if (c->n)
        emit(w, &r);
    c->n = 0;
}

static void chunk_add(struct writer *w, struct chunk *c, enum rec_type type, uint64_t sess,
                      uint64_t first, uint64_t second)
{
    c->pairs[2 * c->n] = first;
    c->pairs[2 * c->n + 1] = second;
    if (++c->n == SNAPSHOT_CHUNK_ITEMS)
        chunk_flush(w, c, type, sess);
}

static void write_records(struct writer *w, const struct store *st, uint64_t last_index,
                          uint64_t unix_time, uint64_t now_ms, uint64_t *owner_sess,
                          struct chunk *c, struct snapshot_info *info)
{
    const struct heap *h = &st->heap;
    uint32_t pos, nslots, gen_floor, gen_next_max, slot, gen;
    const struct sess *s;
    const struct name_ent *e;
    const uint8_t *token;
    uint64_t id, n, deadline, maker;
    uint32_t ttl_s;

    emit(w, &(struct rec){
                .type = REC_SNAP_HEAD, .a = last_index, .b = unix_time, .c = st->next_sess_id});
    heap_ids_state(h, &nslots, &gen_floor, &gen_next_max);
    emit(w, &(struct rec){.type = REC_SNAP_IDS, .a = nslots, .b = gen_floor, .c = gen_next_max});
    pos = 0;
    while (heap_free_next(h, &pos, &slot, &gen))
        chunk_add(w, c, REC_SNAP_FREE, 0, slot, gen);
    chunk_flush(w, c, REC_SNAP_FREE, 0);

    pos = 0;
    while ((s = store_next_sess(st, &pos))) {
        /* A session no journal record names yet (a connection that only
         * read) holds nothing, and its SESS_NEW comes with its first change:
         * left out, so that the journal alone describes every session a
         * record names (a snapshot removed, the journal replays from 1). */
        if (st->record && !s->journaled)
            continue;
        struct rec r = {.type = REC_SNAP_SESS,
                        .sess = s->id,
                        .token = s->token,
                        .a = s->ttl_s,
                        .b = (s->conn ? REC_SESS_ATTACHED : 0) | (s->ending ? REC_SESS_ENDING : 0),
                        .bytes = (const uint8_t *)s->client,
                        .nbytes = (uint32_t)strnlen(s->client, sizeof(s->client))};
        owner_sess[s->idx] = s->id;
        emit(w, &r);
        info->sessions++;
    }

    for (uint32_t i = 0; i < nslots && !w->rc; i++) {
        const struct obj *o = heap_slot(h, i, &id);
        struct rec r = {.type = REC_SNAP_OBJ, .id = id};
        if (!o)
            continue;
        if (obj_flags(o) & OBJ_GARBAGE) {
            w->rc = -EBUSY; /* see snapshot_write */
            return;
        }
        r.a = h->owner[i] ? owner_sess[h->owner[i]] : 0;
        r.bytes = (const uint8_t *)obj_data(o);
        r.nbytes = obj_data_len(o);
        r.items = obj_refs(o);
        r.nitems = obj_nrefs(o);
        emit(w, &r);
        info->objects++;
    }

    pos = 0;
    while ((s = store_next_sess(st, &pos))) {
        uint32_t hp = 0;
        if (st->record && !s->journaled)
            continue;
        while (sess_next_hold(s, &hp, &id, &n))
            chunk_add(w, c, REC_SNAP_HOLDS, s->id, id, n);
        chunk_flush(w, c, REC_SNAP_HOLDS, s->id);
    }

    pos = 0;
    for (e = names_next(&st->names, &pos, NULL); e; e = names_next(&st->names, &pos, e)) {
        emit(w, &(struct rec){.type = REC_SNAP_NAME,
                              .bytes = (const uint8_t *)e->name,
                              .nbytes = e->len,
                              .id = e->id});
        info->names++;
    }

    pos = 0;
    while (store_next_share(st, &pos, &token, &id, &deadline, &ttl_s, &maker)) {
        /* A token past its deadline that store_expire has not reached yet
         * is still state: only its SHARE_EXPIRE record, which follows in the
         * journal, takes it (and its reference) away. Its time left is 1 ms. */
        emit(w, &(struct rec){.type = REC_SNAP_SHARE,
                              .token = token,
                              .id = id,
                              .a = deadline > now_ms ? deadline - now_ms : 1,
                              .b = ttl_s,
                              .c = maker});
        info->shares++;
    }
    emit(w, &(struct rec){.type = REC_SNAP_END,
                          .a = info->objects,
                          .b = info->names,
                          .c = info->sessions,
                          .d = info->shares});
}

int snapshot_write(const struct store *st, const char *dir, uint64_t last_index, uint64_t now_ms,
                   struct snapshot_info *info, char *err, size_t errlen)
{
    struct snapshot_info local;
    struct writer w = {.fd = -1};
    struct chunk *c = NULL;
    uint64_t *owner_sess = NULL;
    size_t owner_bytes = ((size_t)st->next_idx + 1) * sizeof(*owner_sess);
    uint8_t h[SNAPSHOT_HEADER_BYTES] = {0};
    int dirfd = -1, rc;
    const char *step = "open";

    if (!info)
        info = &local;
    memset(info, 0, sizeof(*info));
    if (st->heap.hide_white) {
        /* A collection has found garbage it has not freed yet: the records
         * of its frees come later, so this state is no journal index's. */
        snprintf(err, errlen, "snapshot: a collection is freeing garbage; start it after");
        return -EBUSY;
    }
    info->last_index = last_index;
    info->unix_time = (uint64_t)time(NULL);
    buf_init(&w.b);
    if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
    }
    if (!(c = mem_calloc(sizeof(*c))) || !(owner_sess = mem_calloc(owner_bytes))) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((w.fd = openat(dirfd, SNAPSHOT_TMP_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) <
        0) {
        rc = -errno;
        goto fail;
    }
    step = "write";
    memcpy(h, snap_magic, 8);
    le_put32(h + 8, SNAPSHOT_VERSION);
    le_put64(h + 16, last_index);
    le_put64(h + 24, info->unix_time);
    le_put32(h + 60, crc32c(0, h, 60));
    if ((rc = buf_append(&w.b, h, sizeof(h))) < 0)
        goto fail;
    write_records(&w, st, last_index, info->unix_time, now_ms, owner_sess, c, info);
    if ((rc = w.rc) < 0 || (rc = flush(&w)) < 0)
        goto fail;
    step = "sync";
    if (fsync(w.fd) < 0) {
        rc = -errno;
        goto fail;
    }
    close(w.fd);
    w.fd = -1;
    step = "rename";
    if (renameat(dirfd, SNAPSHOT_TMP_FILE, dirfd, SNAPSHOT_FILE) < 0) {
        rc = -errno;
        goto fail;
    }
    step = "sync the directory";
    if (fsync(dirfd) < 0) {
        rc = -errno; /* renamed, but the rename may not survive a crash */
        goto fail;
    }
    info->bytes = w.bytes + SNAPSHOT_HEADER_BYTES;
    info->records = w.records;
    rc = 0;
    goto done;
fail:
    snprintf(err, errlen, "snapshot %s/%s: %s: %s", dir, SNAPSHOT_TMP_FILE, step, strerror(-rc));
    if (w.fd >= 0) {
        close(w.fd);
        unlinkat(dirfd, SNAPSHOT_TMP_FILE, 0);
    }
done:
    if (dirfd >= 0)
        close(dirfd);
    mem_free(owner_sess, owner_bytes);
    mem_free(c, sizeof(*c));
    buf_close(&w.b);
    return rc;
}

int snapshot_fork(const struct store *st, const char *dir, uint64_t last_index, uint64_t now_ms,
                  pid_t *pid)
{
    pid_t p = fork();
    if (p < 0)
        return -errno;
    if (p == 0) {
        char err[512];
        int rc = snapshot_write(st, dir, last_index, now_ms, NULL, err, sizeof(err));
        if (rc < 0)
            log_error("%s", err);
        _exit(rc < 0 ? 1 : 0); /* no atexit handlers, no stdio flush of the parent's buffers */
    }
    *pid = p;
    return 0;
}

/* ---- reading ---- */

/* The order records must come in: each type's rank, and whether it may
 * repeat. */
static int rank(enum rec_type t)
{
    switch (t) {
    case REC_SNAP_HEAD:
        return 0;
    case REC_SNAP_IDS:
        return 1;
    case REC_SNAP_FREE:
        return 2;
    case REC_SNAP_SESS:
        return 3;
    case REC_SNAP_OBJ:
        return 4;
    case REC_SNAP_HOLDS:
        return 5;
    case REC_SNAP_NAME:
        return 6;
    case REC_SNAP_SHARE:
        return 7;
    case REC_SNAP_END:
        return 8;
    default:
        return -1;
    }
}

static int bad(char *err, size_t errlen, const char *path, uint64_t off, const char *why, int rc)
{
    snprintf(err, errlen, "%s: offset %" PRIu64 ": %s", path, off, why);
    return rc;
}

/* snapshot_read, where a callback that refuses a record may say why in
 * *why (a constant string; NULL: "refused by the reader"). */
static int read_records(const char *path, snapshot_record_cb cb, void *ud, const char *const *why,
                        struct snapshot_info *info, char *err, size_t errlen)
{
    struct snapshot_info local, seen = {0};
    struct stat sb;
    const uint8_t *m = NULL;
    size_t size = 0, off = SNAPSHOT_HEADER_BYTES;
    int fd, rc = 0, last_rank = -1, ended = 0;

    if (!info)
        info = &local;
    memset(info, 0, sizeof(*info));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
        close(fd);
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    size = (size_t)sb.st_size;
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
            close(fd);
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
            return rc;
        }
        m = p;
    }
    close(fd);
    if (size < SNAPSHOT_HEADER_BYTES || memcmp(m, snap_magic, 8) != 0) {
        rc = bad(err, errlen, path, 0, "not a snapshot (bad magic or too short)", -EBADMSG);
        goto done;
    }
    if (crc32c(0, m, 60) != le_get32(m + 60)) {
        rc = bad(err, errlen, path, 0, "header checksum mismatch", -EBADMSG);
        goto done;
    }
    if (le_get32(m + 8) != SNAPSHOT_VERSION) {
        rc = bad(err, errlen, path, 0, "snapshot format version not supported", -EBADMSG);
        goto done;
    }
    info->last_index = le_get64(m + 16);
    info->unix_time = le_get64(m + 24);
    while (off < size) {
        struct rec r;
        size_t used;
        int k;
        if (ended) {
            rc = bad(err, errlen, path, off, "data after the end record", -EBADMSG);
            goto done;
        }
        if ((rc = rec_decode(m + off, size - off, REC_KIND_SNAPSHOT, &r, &used)) < 0) {
            bad(err, errlen, path, off, rec_strerror(rc), rc);
            goto done;
        }
        k = rank(r.type);
        if (k < last_rank || (k == last_rank && k < 2) || (last_rank < 0 && k != 0) ||
            (k >= 2 && last_rank < 1)) {
            rc = bad(err, errlen, path, off, "record out of order", -EBADMSG);
            goto done;
        }
        last_rank = k;
        switch (r.type) {
        case REC_SNAP_HEAD:
            if (r.a != info->last_index) {
                rc = bad(err, errlen, path, off, "index differs from the header's", -EBADMSG);
                goto done;
            }
            break;
        case REC_SNAP_SESS:
            seen.sessions++;
            break;
        case REC_SNAP_OBJ:
            seen.objects++;
            break;
        case REC_SNAP_NAME:
            seen.names++;
            break;
        case REC_SNAP_SHARE:
            seen.shares++;
            break;
        case REC_SNAP_END:
            if (r.a != seen.objects || r.b != seen.names || r.c != seen.sessions ||
                r.d != seen.shares) {
                rc = bad(err, errlen, path, off, "counts differ from the records", -EBADMSG);
                goto done;
            }
            ended = 1;
            break;
        default:
            break;
        }
        if (cb && (rc = cb(ud, &r)) < 0) {
            bad(err, errlen, path, off, why && *why ? *why : "refused by the reader", rc);
            goto done;
        }
        info->records++;
        off += used;
    }
    if (!ended) {
        rc = bad(err, errlen, path, off, "no end record: the file is cut short", -EBADMSG);
        goto done;
    }
    info->bytes = size;
    info->objects = seen.objects;
    info->names = seen.names;
    info->sessions = seen.sessions;
    info->shares = seen.shares;
done:
    if (m)
        munmap((void *)(uintptr_t)m, size);
    return rc;
}

int snapshot_read(const char *path, snapshot_record_cb cb, void *ud, struct snapshot_info *info,
                  char *err, size_t errlen)
{
    return read_records(path, cb, ud, NULL, info, err, errlen);
}

/* ---- loading into a store ---- */

struct load {
    struct store *st;
    uint64_t now_ms;
    uint64_t next_sess_id; /* SNAP_HEAD's */
    struct sess *last;     /* the session found last: objects come in runs of one owner */
    const char *why;       /* what was wrong with the record refused */
};

/* The session of a record, or NULL if the snapshot has none such. */
static struct sess *load_sess(struct load *ld, uint64_t id)
{
    if (!ld->last || ld->last->id != id)
        ld->last = sess_find(ld->st, id);
    return ld->last;
}

/* rc from a store_load or heap_load call: out of memory, or damage that why
 * describes. */
static int refuse(struct load *ld, int rc, const char *why)
{
    ld->why = rc == RPC_EOUT_OF_MEMORY ? "out of memory loading it" : why;
    return rc;
}

static int load_record(void *ud, const struct rec *r)
{
    struct load *ld = ud;
    struct store *st = ld->st;
    struct sess *s;
    int rc = 0;

    switch (r->type) {
    case REC_SNAP_HEAD:
        ld->next_sess_id = r->c;
        return 0;
    case REC_SNAP_IDS:
        if (r->a > UINT32_MAX || r->b > UINT32_MAX || r->c > UINT32_MAX)
            return refuse(ld, RPC_EBAD_PARAMS, "id allocator state out of range");
        rc = heap_load_ids(&st->heap, (uint32_t)r->a, (uint32_t)r->b, (uint32_t)r->c);
        return rc < 0 ? refuse(ld, rc, "id allocator state out of range") : 0;
    case REC_SNAP_FREE:
        for (uint64_t i = 0; i < r->nitems; i++) {
            uint64_t slot, gen;
            rec_pair(r, i, &slot, &gen);
            if (slot > UINT32_MAX || gen > UINT32_MAX ||
                (rc = heap_load_free(&st->heap, (uint32_t)slot, (uint32_t)gen)) < 0)
                return refuse(ld, rc < 0 ? rc : RPC_EBAD_PARAMS,
                              "a free slot out of range, listed twice, or with a bad generation");
        }
        return 0;
    case REC_SNAP_SESS:
        if (r->a > UINT32_MAX || (r->b & ~(uint64_t)(REC_SESS_ATTACHED | REC_SESS_ENDING)) ||
            r->b == (REC_SESS_ATTACHED | REC_SESS_ENDING))
            return refuse(ld, RPC_EBAD_PARAMS, "a session with a bad lease or flags");
        /* Attached or not when written, it is detached now. */
        rc = store_load_sess(st, r->sess, r->token, (uint32_t)r->a, (r->b & REC_SESS_ENDING) != 0,
                             (const char *)r->bytes, r->nbytes, &s);
        return rc < 0 ? refuse(ld, rc,
                               "a session whose id or resume token repeats, or a bad "
                               "client name")
                      : 0;
    case REC_SNAP_OBJ:
        s = NULL;
        if (r->a && !(s = load_sess(ld, r->a)))
            return refuse(ld, RPC_EBAD_PARAMS, "an object owned by no session of the snapshot");
        if (r->nitems > UINT32_MAX)
            return refuse(ld, RPC_EBAD_PARAMS, "an object with too many refs");
        rc = store_load_obj(st, r->id, s, r->bytes, r->nbytes, r->items, (uint32_t)r->nitems);
        return rc < 0 ? refuse(ld, rc,
                               "an object at a slot that is free, taken, or past the id "
                               "allocator's state")
                      : 0;
    case REC_SNAP_HOLDS:
        if (!(s = load_sess(ld, r->sess)))
            return refuse(ld, RPC_EBAD_PARAMS, "holds of no session of the snapshot");
        for (uint64_t i = 0; i < r->nitems; i++) {
            uint64_t id, n;
            rec_pair(r, i, &id, &n);
            if ((rc = store_load_holds(st, s, id, n)) < 0)
                return refuse(ld, rc,
                              "a hold on no live object, listed twice, or a count out of "
                              "range");
        }
        return 0;
    case REC_SNAP_NAME:
        rc = store_load_name(st, (const char *)r->bytes, r->nbytes, r->id);
        return rc < 0 ? refuse(ld, rc,
                               "a name that is not valid, repeats, or names no live "
                               "object")
                      : 0;
    case REC_SNAP_SHARE:
        /* Time left comes from the writer's clock; only the ttl is used (it
         * restarts at full), but the two must agree. */
        if (r->b == 0 || r->b > UINT32_MAX || r->a == 0 || r->a > r->b * 1000)
            return refuse(ld, RPC_EBAD_PARAMS, "a share token with a bad ttl or time left");
        /* Its maker may have ended (its id is kept, as every other node
         * keeps it), but it was handed out: a later session with that id
         * would count a token it never made. */
        if (r->c >= ld->next_sess_id)
            return refuse(ld, RPC_EBAD_PARAMS, "a share token made by a session past the sequence");
        rc = store_load_share(st, r->token, r->id, (uint32_t)r->b, r->c, ld->now_ms);
        return rc < 0 ? refuse(ld, rc, "a share token that repeats or names no live object") : 0;
    case REC_SNAP_END:
        rc = store_load_finish(st, ld->next_sess_id);
        if (rc == RPC_ENOT_FOUND)
            return refuse(ld, rc, "an object's ref names no live object");
        return rc < 0 ? refuse(ld, rc,
                               "the store does not verify: a session id past the "
                               "sequence, a count that wraps, totals or free list that "
                               "disagree, or an object nothing counts")
                      : 0;
    default:
        return refuse(ld, RPC_EBAD_PARAMS, "not a snapshot record");
    }
}

int snapshot_load(struct store *st, const char *path, uint64_t now_ms, struct snapshot_info *info,
                  char *err, size_t errlen)
{
    struct load ld = {.st = st, .now_ms = now_ms};
    int rc = read_records(path, load_record, &ld, &ld.why, info, err, errlen);
    if (rc == RPC_EOUT_OF_MEMORY)
        return -ENOMEM;
    /* The store's codes mean damage here, as the reader's do. */
    return rc <= -RPC_ERR_BASE && rc > -RPC_ERR_BASE - RPC_ERR_COUNT ? -EBADMSG : rc;
}
