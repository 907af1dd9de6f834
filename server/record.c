/* record: encoding and decoding of persistence records (see record.h).
 * One schema string per type drives both directions, so a field can never
 * be written in one order and read in another. */
#include "record.h"
#include "crc32c.h"
#include "le.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

struct rec_info {
    const char *name;
    const char *schema;
};

static const struct rec_info infos[128] = {
#define REC_INFO(name, code, schema, what) [code] = {#name, schema},
    RECORD_TYPES(REC_INFO)
#undef REC_INFO
};

static const struct rec_info *info_of(unsigned code)
{
    return code < 128 && infos[code].name ? &infos[code] : NULL;
}

const char *rec_type_name(unsigned code)
{
    const struct rec_info *in = info_of(code);
    return in ? in->name : NULL;
}

int rec_type_valid(unsigned code, enum rec_kind kind)
{
    if (!info_of(code))
        return 0;
    return code < REC_SNAP_FIRST ? (kind & REC_KIND_JOURNAL) != 0 : (kind & REC_KIND_SNAPSHOT) != 0;
}

static unsigned item_bytes(char f)
{
    return f == '8' ? 8 : (f == 'P' || f == 'T') ? 16 : 0;
}

unsigned rec_item_bytes(enum rec_type type)
{
    const struct rec_info *in = info_of(type);
    size_t n;
    if (!in || !(n = strlen(in->schema)))
        return 0;
    return item_bytes(in->schema[n - 1]);
}

const char *rec_strerror(int rc)
{
    switch (rc) {
    case REC_ETRUNC:
        return "record cut short";
    case REC_ECRC:
        return "record checksum mismatch";
    case REC_ETYPE:
        return "unknown record type";
    case REC_EFORMAT:
        return "malformed record payload";
    default:
        return strerror(-rc);
    }
}

/* ---- encoding ---- */

static unsigned varint_len(uint64_t v)
{
    unsigned n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Where in struct rec the number a schema letter names lives, or 0 for a
 * letter that is not a number (no number field is at offset 0: type is).
 * One mapping for both directions. */
static size_t num_offset(char f)
{
    switch (f) {
    case 'i':
        return offsetof(struct rec, id);
    case 's':
        return offsetof(struct rec, sess);
    case 'g':
        return offsetof(struct rec, target);
    case 'a':
        return offsetof(struct rec, a);
    case 'b':
        return offsetof(struct rec, b);
    case 'c':
        return offsetof(struct rec, c);
    case 'd':
        return offsetof(struct rec, d);
    default:
        return 0;
    }
}

/* 1 and *v set if f is a number letter, else 0. */
static int num_value(const struct rec *r, char f, uint64_t *v)
{
    size_t off = num_offset(f);
    if (!off)
        return 0;
    memcpy(v, (const char *)r + off, sizeof(*v));
    return 1;
}

static uint64_t *num_field(struct rec *r, char f)
{
    size_t off = num_offset(f);
    return off ? (uint64_t *)(void *)((char *)r + off) : NULL;
}

/* Payload bytes of r, or UINT64_MAX if its array cannot be sized. */
static uint64_t payload_size(const struct rec *r, const char *schema)
{
    uint64_t n = 0;
    for (const char *f = schema; *f; f++) {
        uint64_t v;
        if (num_value(r, *f, &v))
            n += varint_len(v);
        else if (*f == 'x')
            n += varint_len(r->nbytes) + (uint64_t)r->nbytes;
        else if (*f == 't')
            n += REC_TOKEN_BYTES;
        else {
            if (r->nitems > UINT64_MAX / 32)
                return UINT64_MAX;
            n += varint_len(r->nitems) + r->nitems * item_bytes(*f);
        }
    }
    return n;
}

uint64_t rec_size(const struct rec *r)
{
    const struct rec_info *in = info_of(r->type);
    uint64_t n;
    assert(in && "encoding a record type that does not exist");
    n = payload_size(r, in->schema);
    return n > REC_MAX_PAYLOAD ? 0 : REC_HEADER_BYTES + n;
}

/* The record's checksum: over the length and type, then the payload. */
static uint32_t rec_crc(const uint8_t *hdr, const uint8_t *payload, uint32_t len)
{
    return crc32c(crc32c(0, hdr, 5), payload, len);
}

int rec_encode(struct buf *b, const struct rec *r)
{
    const struct rec_info *in = info_of(r->type);
    uint64_t total = rec_size(r), plen;
    uint8_t *start, *p;

    assert(in);
    if (total == 0)
        return -EMSGSIZE;
    if (buf_reserve(b, total) < 0) {
        b->oom = 1;
        return -ENOMEM;
    }
    plen = total - REC_HEADER_BYTES;
    start = (uint8_t *)b->data + b->len;
    le_put32(start, (uint32_t)plen);
    start[4] = (uint8_t)r->type;
    p = start + REC_HEADER_BYTES;
    for (const char *f = in->schema; *f; f++) {
        uint64_t v;
        if (num_value(r, *f, &v)) {
            assert((v != 0 || (*f != 'i' && *f != 's' && *f != 'g')) && "ids are never 0");
            p = put_varint(p, v);
        } else if (*f == 'x') {
            p = put_varint(p, r->nbytes);
            if (r->nbytes)
                memcpy(p, r->bytes, r->nbytes);
            p += r->nbytes;
        } else if (*f == 't') {
            assert(r->token);
            memcpy(p, r->token, REC_TOKEN_BYTES);
            p += REC_TOKEN_BYTES;
        } else {
            size_t n = (size_t)r->nitems * item_bytes(*f);
            p = put_varint(p, r->nitems);
            if (n)
                memcpy(p, r->items, n);
            p += n;
        }
    }
    assert((uint64_t)(p - start) == total);
    le_put32(start + 5, rec_crc(start, start + REC_HEADER_BYTES, (uint32_t)plen));
    b->len += total;
    return 0;
}

/* ---- decoding ---- */

/* Read a varint from [*p, end): 0 or REC_EFORMAT (cut short, or more than
 * 64 bits, or not in its shortest form, which would let two encodings of
 * one record exist). */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    const uint8_t *q = *p;
    for (;;) {
        uint8_t byte;
        if (q == end || shift > 63)
            return REC_EFORMAT;
        byte = *q++;
        if (shift == 63 && byte > 1)
            return REC_EFORMAT;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            if (byte == 0 && shift > 0)
                return REC_EFORMAT; /* a redundant trailing zero group */
            break;
        }
        shift += 7;
    }
    *p = q;
    *out = v;
    return 0;
}

static int decode_payload(const uint8_t *p, const uint8_t *end, const char *schema, struct rec *r)
{
    for (const char *f = schema; *f; f++) {
        uint64_t *v = num_field(r, *f), n;
        if (v) {
            if (get_varint(&p, end, v) < 0)
                return REC_EFORMAT;
            if (*v == 0 && (*f == 'i' || *f == 's' || *f == 'g'))
                return REC_EFORMAT;
        } else if (*f == 'x') {
            if (get_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
                return REC_EFORMAT;
            r->bytes = p;
            r->nbytes = (uint32_t)n;
            p += n;
        } else if (*f == 't') {
            if (end - p < REC_TOKEN_BYTES)
                return REC_EFORMAT;
            r->token = p;
            p += REC_TOKEN_BYTES;
        } else {
            unsigned sz = item_bytes(*f);
            if (get_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p) / sz)
                return REC_EFORMAT;
            r->items = p;
            r->nitems = n;
            p += n * sz;
        }
    }
    return p == end ? 0 : REC_EFORMAT; /* trailing bytes: not this layout */
}

int rec_decode(const uint8_t *p, size_t n, enum rec_kind kind, struct rec *r, size_t *used)
{
    uint32_t len, crc;
    const struct rec_info *in;
    int rc;

    memset(r, 0, sizeof(*r));
    if (n < REC_HEADER_BYTES)
        return REC_ETRUNC;
    len = le_get32(p);
    if (len > n - REC_HEADER_BYTES)
        return REC_ETRUNC;
    crc = le_get32(p + 5);
    if (rec_crc(p, p + REC_HEADER_BYTES, len) != crc)
        return REC_ECRC;
    if (!rec_type_valid(p[4], kind))
        return REC_ETYPE;
    in = info_of(p[4]);
    r->type = (enum rec_type)p[4];
    if ((rc = decode_payload(p + REC_HEADER_BYTES, p + REC_HEADER_BYTES + len, in->schema, r)) <
        0) {
        memset(r, 0, sizeof(*r));
        return rc;
    }
    *used = REC_HEADER_BYTES + (size_t)len;
    return 0;
}
