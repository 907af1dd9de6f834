/* record: the binary records of the persistence layer, one per change of
 * state (the journal) and one per piece of state (a snapshot), and their
 * codec. A record says what was decided (the id a create got, the ids a
 * collection freed, the sessions whose lease ended), never what must be
 * decided again, so replaying records gives the same heap on any node. This
 * module only encodes and decodes; it knows no files (journal.c, snapshot.c)
 * and does not apply records to a store. docs/persistence.md has the format.
 *
 * On disk a record is a 9-byte header, then its payload:
 *   u32 payload length (little-endian) | u8 type | u32 CRC32C
 * The CRC covers the length, the type and the payload. A payload is the
 * type's fields in the order of its schema (RECORD_TYPES below): numbers as
 * LEB128 varints, byte strings as a varint length and the bytes, tokens as
 * 16 raw bytes, arrays as a varint count and fixed-size little-endian items
 * (so they are read in place). Decoding never allocates and never reads
 * outside the bytes it is given; it points into them. */
#ifndef RCS_SERVER_RECORD_H
#define RCS_SERVER_RECORD_H

#include "buf.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define REC_HEADER_BYTES 9
#define REC_TOKEN_BYTES  16 /* SESS_TOKEN_BYTES: resume and share tokens */
/* The largest payload (the u32 length field). A writer splits lists that
 * would pass it (GC_FREE, SESS_EXPIRE, SNAP_HOLDS, SNAP_FREE) into several
 * records of the same type. */
#define REC_MAX_PAYLOAD 0xffffffffu

/* Field letters of a schema, in payload order:
 *   i id, s sess, g target: varints, never 0
 *   a b c d: varints (meaning per type)
 *   x bytes (data, a name, a client name): varint length + bytes
 *   t token: 16 bytes
 *   8 items of 8 bytes (u64 ids), P items of 16 (id and count as two u64),
 *   T items of 16 (tokens); at most one array per schema, and last.
 *
 * X(NAME, code, schema, what it records). Codes are the on-disk values:
 * never renumber or change a schema; a new layout is a new code (see the
 * versioning rule in docs/persistence.md). Journal records are 1-63,
 * snapshot records 64-127. */
#define RECORD_TYPES(X)                                                                            \
    X(CREATE, 1, "isx8", "object id created by session sess with data bytes and refs items")       \
    X(HOLD, 2, "sia", "session sess gains a holds on id (incref, lookup with acquire)")            \
    X(DROP, 3, "sia", "session sess drops a holds on id (decref); may free")                       \
    X(SET_DATA, 4, "ix", "id's data becomes bytes")                                                \
    X(SET_REFS, 5, "i8", "id's refs become items")                                                 \
    X(LINK, 6, "ig", "target appended to id's refs")                                               \
    X(UNLINK, 7, "ig", "first target removed from id's refs; may free")                            \
    X(BIND, 8, "xi", "name bytes bound (or rebound) to id")                                        \
    X(UNBIND, 9, "x", "name bytes unbound; may free")                                              \
    X(SHARE, 10, "tsia", "share token made by session sess for id, ttl a seconds")                 \
    X(CLAIM, 11, "tsi", "token claimed by session sess (it held id)")                              \
    X(SHARE_EXPIRE, 12, "T", "share tokens whose ttl ended; may free")                             \
    X(SESS_NEW, 13, "stx", "session sess created with resume token and client name bytes")         \
    X(SESS_LEASE, 14, "sa", "session sess's lease set to a seconds (0: none)")                     \
    X(SESS_CLOSE, 17, "s", "session sess ended (closed, lease over): holds dropped, gone")         \
    X(SESS_END, 18, "s",                                                                           \
      "session sess ended with many holds: SESS_RELEASE drops them, then CLOSE")                   \
    X(RELEASE_ALL, 19, "s", "every hold of session sess dropped")                                  \
    X(GC_FREE, 20, "8", "garbage the collector freed, in order (flagged first if not yet)")        \
    X(GC_GARBAGE, 21, "8", "garbage a sliced collection found: hidden, freed by later GC_FREEs")   \
    X(SESS_RELEASE, 22, "sP", "ending session sess dropped these holds (id, count), in order")     \
    X(SNAP_HEAD, 64, "abc", "snapshot start: last journal index a, unix time b, next session c")   \
    X(SNAP_IDS, 65, "abc", "id allocator: slots a, generation floor b, next generation max c")     \
    X(SNAP_FREE, 66, "P", "free slots in reuse order: (slot, generation it will give)")            \
    X(SNAP_OBJ, 67, "iax8", "object id, owner session a (0: none), data bytes, refs items")        \
    X(SNAP_NAME, 68, "xi", "name bytes bound to id")                                               \
    X(SNAP_SESS, 69, "stabx", "session sess, resume token, lease a s, flags b, client bytes")      \
    X(SNAP_HOLDS, 70, "sP", "session sess's holds beyond ownership: (id, count)")                  \
    X(SNAP_SHARE, 71, "tiabc", "token for id, a ms left, ttl b s, made by session c (0: unknown)") \
    X(SNAP_END, 72, "abcd", "snapshot end: a objects, b names, c sessions, d share tokens")

enum rec_type {
#define REC_ENUM(name, code, schema, what) REC_##name = code,
    RECORD_TYPES(REC_ENUM)
#undef REC_ENUM
};

#define REC_SNAP_FIRST 64
/* SNAP_SESS flags */
#define REC_SESS_ATTACHED 1u /* attached to a connection when written */
#define REC_SESS_ENDING   2u /* ended, its holds still being released in slices */

/* Error codes (negative errno values, so one int carries either). */
#define REC_ETRUNC  (-ENODATA) /* the bytes end inside the record */
#define REC_ECRC    (-EBADMSG) /* the checksum does not match */
#define REC_ETYPE   (-ENOMSG)  /* a type this version does not know, or not allowed here */
#define REC_EFORMAT (-EPROTO)  /* the payload does not match its type's layout */

/* A decoded record, or one to encode. Fields the type's schema does not
 * name are 0 / NULL. Pointers are borrowed: from the decoded bytes, or the
 * caller's for encoding. items holds nitems items of rec_item_bytes(type)
 * bytes, little-endian. */
struct rec {
    enum rec_type type;
    uint64_t id, sess, target;
    uint64_t a, b, c, d;
    const uint8_t *bytes;
    uint32_t nbytes;
    const uint8_t *token; /* REC_TOKEN_BYTES */
    const void *items;
    uint64_t nitems;
};

/* Which record types a decoder accepts. */
enum rec_kind { REC_KIND_JOURNAL = 1, REC_KIND_SNAPSHOT = 2 };

/* The type's name ("CREATE"), or NULL if code is no type. */
const char *rec_type_name(unsigned code);
/* Whether code is a type of this kind. */
int rec_type_valid(unsigned code, enum rec_kind kind);
/* Size of one item of the type's array (8 or 16), or 0 if it has none. */
unsigned rec_item_bytes(enum rec_type type);
/* Text for a REC_E* code (or strerror for another errno). */
const char *rec_strerror(int rc);

/* Bytes rec_encode would append (header included), or 0 if the payload
 * would pass REC_MAX_PAYLOAD. */
uint64_t rec_size(const struct rec *r);
/* Append r to b. 0, -EMSGSIZE (over REC_MAX_PAYLOAD) or -ENOMEM; on error b
 * is as before. r must fill its schema: ids and sessions non-zero, token
 * set where the schema has one (an internal invariant, asserted). */
int rec_encode(struct buf *b, const struct rec *r);
/* Decode the record at the start of p (n bytes available) into *r, whose
 * pointers then point into p; *used gets its whole size. 0, REC_ETRUNC (n
 * ends inside it: more bytes may complete it), REC_ECRC, REC_ETYPE (an
 * unknown type, or one not of this kind) or REC_EFORMAT. */
int rec_decode(const uint8_t *p, size_t n, enum rec_kind kind, struct rec *r, size_t *used);

/* Item i of an 8-byte array; the id and count of pair i of a 16-byte one;
 * token i of a token array. i < r->nitems. */
static inline uint64_t rec_u64(const struct rec *r, uint64_t i)
{
    uint64_t v;
    memcpy(&v, (const uint8_t *)r->items + 8 * i, 8);
    return v;
}
static inline void rec_pair(const struct rec *r, uint64_t i, uint64_t *first, uint64_t *second)
{
    memcpy(first, (const uint8_t *)r->items + 16 * i, 8);
    memcpy(second, (const uint8_t *)r->items + 16 * i + 8, 8);
}
static inline const uint8_t *rec_token_at(const struct rec *r, uint64_t i)
{
    return (const uint8_t *)r->items + 16 * i;
}

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "record.h reads little-endian items in place: a big-endian port must byte-swap them"
#endif

#endif
