/* Unit tests for server/record and common/crc32c: the CRC's published
 * values and both of its paths, a round trip of every record type, and
 * that no damage decodes: every cut is REC_ETRUNC, every single-bit flip is
 * refused, and payloads with a valid checksum but a bad layout are
 * REC_EFORMAT or REC_ETYPE, never read past their end. */
#include "cmocka_pre.h"

#include "crc32c.h"
#include "mem.h"
#include "record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void crc_known_values(void **state)
{
    (void)state;
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof(ones));
    /* RFC 3720 B.4 and the usual check value. */
    assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(crc32c(0, zeros, 32), 0x8a9136aau);
    assert_int_equal(crc32c(0, ones, 32), 0x62a8ab43u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xe3069283u);
    /* Chaining pieces gives the crc of the whole. */
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void crc_paths_agree(void **state)
{
    (void)state;
    uint8_t b[300];
    srand(7);
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)rand();
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof(b); n += 7)
            assert_int_equal(crc32c(0, b + off, n), crc32c_sw(0, b + off, n));
}

static const uint8_t token[REC_TOKEN_BYTES] = "0123456789abcdef";
static uint64_t items[8] = {1, 2, 3, 1ull << 40 | 5, UINT64_MAX, 0, 77, 1ull << 63};

/* A record of type t with every field of its schema set to something. */
static struct rec sample(enum rec_type t, uint64_t seed)
{
    struct rec r = {.type = t};
    r.id = seed << 32 | 3;
    r.sess = seed + 11;
    r.target = seed << 32 | 9;
    r.a = seed * 1000003;
    r.b = UINT64_MAX - seed;
    r.c = 127 + seed;
    r.d = 128 + seed;
    r.bytes = (const uint8_t *)"some bytes\0with a zero";
    r.nbytes = (uint32_t)(seed % 23);
    r.token = token;
    r.items = items;
    r.nitems = rec_item_bytes(t) ? (rec_item_bytes(t) == 8 ? seed % 9 : seed % 5) : 0;
    return r;
}

static const enum rec_type all_types[] = {
#define T(name, code, schema, what) REC_##name,
    RECORD_TYPES(T)
#undef T
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

static const char *schema_of(enum rec_type t)
{
    switch (t) {
#define S(name, code, schema, what)                                                                \
    case REC_##name:                                                                               \
        return schema;
        RECORD_TYPES(S)
#undef S
    }
    return "";
}

/* The fields the schema names are equal; the others decode as 0. */
static void same(const struct rec *in, const struct rec *out)
{
    const char *s = schema_of(in->type);
    assert_int_equal(in->type, out->type);
    assert_int_equal(strchr(s, 'i') ? in->id : 0, out->id);
    assert_int_equal(strchr(s, 's') ? in->sess : 0, out->sess);
    assert_int_equal(strchr(s, 'g') ? in->target : 0, out->target);
    assert_int_equal(strchr(s, 'a') ? in->a : 0, out->a);
    assert_int_equal(strchr(s, 'b') ? in->b : 0, out->b);
    assert_int_equal(strchr(s, 'c') ? in->c : 0, out->c);
    assert_int_equal(strchr(s, 'd') ? in->d : 0, out->d);
    if (strchr(s, 'x')) {
        assert_int_equal(in->nbytes, out->nbytes);
        assert_memory_equal(in->bytes, out->bytes, in->nbytes);
    } else {
        assert_null(out->bytes);
    }
    if (strchr(s, 't'))
        assert_memory_equal(out->token, token, REC_TOKEN_BYTES);
    else
        assert_null(out->token);
    assert_int_equal(strpbrk(s, "8PT") ? in->nitems : 0, out->nitems);
    if (out->nitems)
        assert_memory_equal(out->items, in->items, out->nitems * rec_item_bytes(in->type));
}

static void round_trip_every_type(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    for (size_t k = 0; k < NTYPES; k++) {
        for (uint64_t seed = 1; seed < 40; seed += 3) {
            struct rec in = sample(all_types[k], seed), out;
            enum rec_kind kind = in.type >= REC_SNAP_FIRST ? REC_KIND_SNAPSHOT : REC_KIND_JOURNAL;
            size_t used = 0;
            buf_reset(&b);
            assert_int_equal(rec_encode(&b, &in), 0);
            assert_int_equal(b.len, rec_size(&in));
            assert_int_equal(rec_decode((uint8_t *)b.data, b.len, kind, &out, &used), 0);
            assert_int_equal(used, b.len);
            same(&in, &out);
            /* The other kind of file refuses it. */
            assert_int_equal(rec_decode((uint8_t *)b.data, b.len, kind ^ 3, &out, &used),
                             REC_ETYPE);
            assert_non_null(rec_type_name(in.type));
        }
    }
    buf_close(&b);
    assert_int_equal(mem_used(), 0);
}

/* Records back to back decode one after the other. */
static void records_in_a_row(void **state)
{
    (void)state;
    struct buf b;
    size_t off = 0, k = 0;
    buf_init(&b);
    for (size_t i = 0; i < NTYPES; i++) {
        struct rec r = sample(all_types[i], i + 1);
        assert_int_equal(rec_encode(&b, &r), 0);
    }
    while (off < b.len) {
        struct rec in = sample(all_types[k], k + 1), out;
        size_t used;
        assert_int_equal(rec_decode((uint8_t *)b.data + off, b.len - off,
                                    REC_KIND_JOURNAL | REC_KIND_SNAPSHOT, &out, &used),
                         0);
        same(&in, &out);
        off += used;
        k++;
    }
    assert_int_equal(k, NTYPES);
    buf_close(&b);
}

static void every_cut_is_truncated(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    for (size_t k = 0; k < NTYPES; k++) {
        struct rec in = sample(all_types[k], 20), out;
        size_t used;
        buf_reset(&b);
        assert_int_equal(rec_encode(&b, &in), 0);
        for (size_t n = 0; n < b.len; n++) {
            /* A copy of exactly n bytes, so ASan sees any read past them. */
            uint8_t *cut = malloc(n ? n : 1);
            memcpy(cut, b.data, n);
            assert_int_equal(rec_decode(cut, n, REC_KIND_JOURNAL | REC_KIND_SNAPSHOT, &out, &used),
                             REC_ETRUNC);
            free(cut);
        }
    }
    buf_close(&b);
}

static void every_bit_flip_is_refused(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    for (size_t k = 0; k < NTYPES; k++) {
        struct rec in = sample(all_types[k], 5), out;
        buf_reset(&b);
        assert_int_equal(rec_encode(&b, &in), 0);
        for (size_t bit = 0; bit < b.len * 8; bit++) {
            size_t used;
            int rc;
            b.data[bit / 8] ^= (char)(1 << (bit % 8));
            rc = rec_decode((uint8_t *)b.data, b.len, REC_KIND_JOURNAL | REC_KIND_SNAPSHOT, &out,
                            &used);
            /* CRC32C catches every single-bit error; a flip in the length
             * may make the record look longer than the bytes. */
            assert_true(rc == REC_ECRC || rc == REC_ETRUNC);
            b.data[bit / 8] ^= (char)(1 << (bit % 8));
        }
    }
    buf_close(&b);
}

/* A record with a valid checksum around an arbitrary payload. */
static size_t forge(uint8_t *out, uint8_t type, const void *payload, uint32_t len)
{
    out[0] = (uint8_t)len;
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 24);
    out[4] = type;
    memcpy(out + REC_HEADER_BYTES, payload, len);
    uint32_t c = crc32c(crc32c(0, out, 5), out + REC_HEADER_BYTES, len);
    for (int i = 0; i < 4; i++)
        out[5 + i] = (uint8_t)(c >> (8 * i));
    return REC_HEADER_BYTES + len;
}

static int decode_forged(uint8_t type, const void *payload, uint32_t len)
{
    uint8_t *p = malloc(REC_HEADER_BYTES + len);
    struct rec r;
    size_t used, n = forge(p, type, payload, len);
    int rc = rec_decode(p, n, REC_KIND_JOURNAL, &r, &used);
    free(p);
    return rc;
}

static void bad_layouts_with_good_checksums(void **state)
{
    (void)state;
    /* HOLD is "sia". */
    assert_int_equal(decode_forged(REC_HOLD, "\x01\x02\x03", 3), 0);
    assert_int_equal(decode_forged(REC_HOLD, "\x01\x02\x03\x00", 4), REC_EFORMAT); /* trailing */
    assert_int_equal(decode_forged(REC_HOLD, "\x01\x02", 2), REC_EFORMAT);         /* short */
    assert_int_equal(decode_forged(REC_HOLD, "\x00\x02\x03", 3), REC_EFORMAT);     /* sess 0 */
    assert_int_equal(decode_forged(REC_HOLD, "\x81\x00\x02\x03", 4), REC_EFORMAT); /* overlong */
    assert_int_equal(
        decode_forged(REC_HOLD, "\x01\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12),
        0); /* UINT64_MAX */
    assert_int_equal(
        decode_forged(REC_HOLD, "\x01\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 12),
        REC_EFORMAT); /* past 64 bits */
    assert_int_equal(
        decode_forged(REC_HOLD, "\x01\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13),
        REC_EFORMAT);
    /* SET_DATA "ix": a length past the payload. */
    assert_int_equal(decode_forged(REC_SET_DATA,
                                   "\x01\x05"
                                   "abcd",
                                   6),
                     REC_EFORMAT);
    /* GC_FREE "8": a count whose items do not fit, or would overflow. */
    assert_int_equal(decode_forged(REC_GC_FREE,
                                   "\x02"
                                   "12345678",
                                   9),
                     REC_EFORMAT);
    assert_int_equal(decode_forged(REC_GC_FREE,
                                   "\xff\xff\xff\xff\xff\xff\xff\xff\x7f"
                                   "1234567",
                                   16),
                     REC_EFORMAT);
    /* SHARE "tia": a token cut short. */
    assert_int_equal(decode_forged(REC_SHARE, "0123456789", 10), REC_EFORMAT);
    /* Unknown types, and type 0. */
    assert_int_equal(decode_forged(0, "", 0), REC_ETYPE);
    assert_int_equal(decode_forged(63, "", 0), REC_ETYPE);
    assert_int_equal(decode_forged(200, "", 0), REC_ETYPE);
}

static void too_big_to_encode(void **state)
{
    (void)state;
    struct buf b;
    struct rec r = {.type = REC_GC_FREE, .items = items, .nitems = (1ull << 29) + 1};
    buf_init(&b);
    assert_int_equal(rec_size(&r), 0);
    assert_int_equal(rec_encode(&b, &r), -EMSGSIZE);
    assert_int_equal(b.len, 0);
    buf_close(&b);
}

static void encode_out_of_memory_leaves_buffer(void **state)
{
    (void)state;
    struct buf b;
    struct rec r = sample(REC_CREATE, 3);
    buf_init(&b);
    assert_int_equal(rec_encode(&b, &r), 0);
    size_t len = b.len;
    r.nitems = 5000; /* needs to grow */
    uint64_t *big = calloc(5000, 8);
    r.items = big;
    mem_fail_after(0);
    assert_int_equal(rec_encode(&b, &r), -ENOMEM);
    mem_fail_after(-1);
    assert_int_equal(b.len, len);
    free(big);
    buf_close(&b);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc_known_values),
        cmocka_unit_test(crc_paths_agree),
        cmocka_unit_test(round_trip_every_type),
        cmocka_unit_test(records_in_a_row),
        cmocka_unit_test(every_cut_is_truncated),
        cmocka_unit_test(every_bit_flip_is_refused),
        cmocka_unit_test(bad_layouts_with_good_checksums),
        cmocka_unit_test(too_big_to_encode),
        cmocka_unit_test(encode_out_of_memory_leaves_buffer),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
