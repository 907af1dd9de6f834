/* Unit tests for protocol/rpc_scan: frames found whole, split at every byte,
 * and hostile headers refused from their first bytes, before any allocation. */
#include "cmocka_pre.h"

#include "mem.h"
#include "err.h"
#include "rpc_pack.h"
#include "rpc_scan.h"

#include <msgpack.h>
#include <string.h>

static const struct rpc_scan_limits lim = {
    .max_message_bytes = 4096, .max_elements = 100, .max_depth = 8};

static int scan_all(const void *p, size_t n, size_t *flen, struct rpc_scan *s)
{
    rpc_scan_init(s, &lim);
    return rpc_scan_feed(s, p, n, flen);
}

/* A real request packed with msgpack-c. */
static size_t sample_request(struct buf *b)
{
    msgpack_packer pk;
    uint64_t refs[3] = {1, 2, 3};
    buf_init(b);
    rpc_packer_init(&pk, b);
    rpc_pack_request(&pk, 77, "create");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_bin(&pk, 5);
    msgpack_pack_bin_body(&pk, "hello", 5);
    msgpack_pack_array(&pk, 3);
    for (int i = 0; i < 3; i++)
        msgpack_pack_uint64(&pk, refs[i]);
    return b->len;
}

static void whole_frame(void **state)
{
    struct rpc_scan s;
    struct buf b;
    size_t n = sample_request(&b), flen = 0;
    (void)state;
    assert_int_equal(scan_all(b.data, n, &flen, &s), 1);
    assert_int_equal(flen, n);
    assert_true(s.have_msgid);
    assert_int_equal(s.msgid, 77);
    buf_close(&b);
}

static void split_at_every_byte(void **state)
{
    struct rpc_scan s;
    struct buf b;
    size_t n = sample_request(&b), flen = 0;
    (void)state;
    /* Feed a growing prefix, one byte more each time: the same scanner state
     * must say "more" until the last byte, then find the frame. */
    rpc_scan_init(&s, &lim);
    for (size_t have = 0; have < n; have++)
        assert_int_equal(rpc_scan_feed(&s, (const uint8_t *)b.data, have, &flen), 0);
    assert_int_equal(rpc_scan_feed(&s, (const uint8_t *)b.data, n, &flen), 1);
    assert_int_equal(flen, n);
    buf_close(&b);
}

static void two_frames_back_to_back(void **state)
{
    struct rpc_scan s;
    struct buf b;
    size_t n = sample_request(&b), flen = 0;
    char twice[512];
    (void)state;
    memcpy(twice, b.data, n);
    memcpy(twice + n, b.data, n);
    assert_int_equal(scan_all(twice, 2 * n, &flen, &s), 1);
    assert_int_equal(flen, n); /* only the first */
    rpc_scan_reset(&s);
    assert_int_equal(rpc_scan_feed(&s, (const uint8_t *)twice + n, n, &flen), 1);
    buf_close(&b);
}

static void scalars_and_exts(void **state)
{
    struct rpc_scan s;
    size_t flen;
    /* [nil, true, -1, 1.5f, 2.5, fixext1, ext8 len 2, str8 "ab", -200 int16] */
    const uint8_t m[] = {0x99, 0xc0, 0xc3, 0xff, 0xca, 0x3f, 0xc0, 0x00, 0x00, 0xcb, 0x40,
                         0x04, 0,    0,    0,    0,    0,    0,    0xd4, 0x01, 0xaa, 0xc7,
                         0x02, 0x05, 0x01, 0x02, 0xd9, 0x02, 'a',  'b',  0xd1, 0xff, 0x38};
    (void)state;
    assert_int_equal(scan_all(m, sizeof(m), &flen, &s), 1);
    assert_int_equal(flen, sizeof(m));
}

static void huge_array_claim_refused_at_once(void **state)
{
    struct rpc_scan s;
    size_t flen, before = mem_used();
    const uint8_t a32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const uint8_t a32small[] = {0xdd, 0x20, 0x00, 0x00, 0x00};
    (void)state;
    assert_int_equal(scan_all(a32, sizeof(a32), &flen, &s), RPC_ETOO_LARGE);
    assert_int_equal(scan_all(a32small, sizeof(a32small), &flen, &s), RPC_ETOO_LARGE);
    assert_int_equal(mem_used(), before);
}

static void huge_bin_claim_refused_at_once(void **state)
{
    struct rpc_scan s;
    size_t flen;
    /* [0, 9, "create", [bin32 of 2 GiB ...: msgid is known, so it can be
     * quoted in the error reply. */
    const uint8_t m[] = {0x94, 0x00, 0x09, 0xa6, 'c',  'r',  'e',  'a',
                         't',  'e',  0x91, 0xc6, 0x80, 0x00, 0x00, 0x00};
    (void)state;
    assert_int_equal(scan_all(m, sizeof(m), &flen, &s), RPC_ETOO_LARGE);
    assert_true(s.have_msgid);
    assert_int_equal(s.msgid, 9);
}

static void element_total_counts_all_containers(void **state)
{
    struct rpc_scan s;
    size_t flen;
    uint8_t m[64];
    size_t n = 0;
    (void)state;
    /* Nested map16 headers of 40 pairs each: each alone is under 100
     * elements (80), but two of them are not. */
    m[n++] = 0x92;
    m[n++] = 0xde;
    m[n++] = 0x00;
    m[n++] = 40;
    m[n++] = 0x01;
    m[n++] = 0xde;
    m[n++] = 0x00;
    m[n++] = 40;
    assert_int_equal(scan_all(m, n, &flen, &s), RPC_ETOO_LARGE);
}

static void claim_beyond_message_size(void **state)
{
    struct rpc_scan s;
    size_t flen;
    /* array16 of 5000 elements cannot fit in 4096 bytes, whatever the count limit. */
    const uint8_t m[] = {0xdc, 0x13, 0x88};
    struct rpc_scan_limits many = lim;
    (void)state;
    many.max_elements = 1000000;
    rpc_scan_init(&s, &many);
    assert_int_equal(rpc_scan_feed(&s, m, sizeof(m), &flen), RPC_ETOO_LARGE);
}

static void message_size_limit_on_stream(void **state)
{
    struct rpc_scan s;
    size_t flen;
    static uint8_t m[5000];
    (void)state;
    /* [str32 of 4090 bytes]: 1 + 5 + 4090 is exactly 4096, the limit. */
    m[0] = 0x91;
    m[1] = 0xdb;
    m[2] = 0;
    m[3] = 0;
    m[4] = 0x0f;
    m[5] = 0xfa;
    assert_int_equal(scan_all(m, 6, &flen, &s), 0);
    assert_int_equal(scan_all(m, 4096, &flen, &s), 1);
    /* One byte more is refused from the header alone. */
    m[5] = 0xfb;
    assert_int_equal(scan_all(m, 6, &flen, &s), RPC_ETOO_LARGE);
}

/* max_bytes: a str, bin or ext header that declares more is refused from its
 * header alone, though the frame would have room for it; one at the limit is
 * accepted. The msgid read before it is kept for the error reply. */
static void byte_length_limit(void **state)
{
    struct rpc_scan s;
    struct rpc_scan_limits small = lim;
    size_t flen;
    /* [0, 5, "create", [bin16 of N ...] */
    uint8_t m[200] = {0x94, 0x00, 0x05, 0xa6, 'c', 'r', 'e', 'a', 't', 'e', 0x91, 0xc5, 0x00};
    const size_t hdr = 14;
    (void)state;
    small.max_bytes = 100;
    m[13] = 101;
    rpc_scan_init(&s, &small);
    assert_int_equal(rpc_scan_feed(&s, m, hdr, &flen), RPC_ETOO_LARGE);
    assert_true(s.have_msgid);
    assert_int_equal(s.msgid, 5);
    /* The same header with the check off (0) waits for the body. */
    small.max_bytes = 0;
    rpc_scan_init(&s, &small);
    assert_int_equal(rpc_scan_feed(&s, m, hdr, &flen), 0);
    /* Exactly max_bytes is fine, and the frame completes. */
    small.max_bytes = 100;
    m[13] = 100;
    rpc_scan_init(&s, &small);
    assert_int_equal(rpc_scan_feed(&s, m, hdr, &flen), 0);
    assert_int_equal(rpc_scan_feed(&s, m, hdr + 100, &flen), 1);
    assert_int_equal(flen, hdr + 100);
}

/* Every length-carrying kind obeys max_bytes: str8/16/32, bin8/16/32 and
 * ext8/16/32, each claiming 300 bytes against a limit of 255. */
static void byte_length_limit_all_kinds(void **state)
{
    static const uint8_t kinds[] = {0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9};
    struct rpc_scan_limits small = lim;
    small.max_bytes = 255;
    (void)state;
    for (size_t i = 0; i < sizeof(kinds); i++) {
        struct rpc_scan s;
        uint8_t m[8] = {kinds[i]};
        size_t flen, n = 1;
        int lenbytes = (kinds[i] == 0xd9 || kinds[i] == 0xc4 || kinds[i] == 0xc7)   ? 1
                       : (kinds[i] == 0xda || kinds[i] == 0xc5 || kinds[i] == 0xc8) ? 2
                                                                                    : 4;
        if (lenbytes == 1) {
            m[n++] = 255; /* str8/bin8/ext8 cannot say 300: 255 + the ext's type is fine */
        } else {
            for (int j = lenbytes - 1; j >= 0; j--)
                m[n++] = (uint8_t)(j == 1 ? 0x01 : j == 0 ? 0x2c : 0); /* 300 */
        }
        if (kinds[i] >= 0xc7 && kinds[i] <= 0xc9)
            m[n++] = 1; /* ext type */
        rpc_scan_init(&s, &small);
        assert_int_equal(rpc_scan_feed(&s, m, n, &flen), lenbytes == 1 ? 0 : RPC_ETOO_LARGE);
    }
}

static void depth_limit(void **state)
{
    struct rpc_scan s;
    size_t flen;
    uint8_t m[20];
    (void)state;
    memset(m, 0x91, sizeof(m)); /* [[[[...]]]] deeper than 8 */
    assert_int_equal(scan_all(m, sizeof(m), &flen, &s), RPC_EBAD_REQUEST);
}

static void never_used_byte(void **state)
{
    struct rpc_scan s;
    size_t flen;
    const uint8_t m[] = {0x92, 0x01, 0xc1};
    (void)state;
    assert_int_equal(scan_all(m, sizeof(m), &flen, &s), RPC_EBAD_REQUEST);
}

static void truncated_headers_wait(void **state)
{
    struct rpc_scan s;
    size_t flen;
    const uint8_t m[] = {0xcf, 0x00, 0x00}; /* uint64 with 2 of 8 bytes */
    (void)state;
    assert_int_equal(scan_all(m, sizeof(m), &flen, &s), 0);
    assert_int_equal(scan_all(m, 0, &flen, &s), 0);
}

static void bare_scalar_is_a_frame(void **state)
{
    struct rpc_scan s;
    size_t flen;
    const uint8_t m[] = {0x2a, 0x2b};
    (void)state;
    assert_int_equal(scan_all(m, sizeof(m), &flen, &s), 1);
    assert_int_equal(flen, 1);
    assert_false(s.have_msgid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_frame),
        cmocka_unit_test(split_at_every_byte),
        cmocka_unit_test(two_frames_back_to_back),
        cmocka_unit_test(scalars_and_exts),
        cmocka_unit_test(huge_array_claim_refused_at_once),
        cmocka_unit_test(huge_bin_claim_refused_at_once),
        cmocka_unit_test(element_total_counts_all_containers),
        cmocka_unit_test(claim_beyond_message_size),
        cmocka_unit_test(message_size_limit_on_stream),
        cmocka_unit_test(byte_length_limit),
        cmocka_unit_test(byte_length_limit_all_kinds),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(never_used_byte),
        cmocka_unit_test(truncated_headers_wait),
        cmocka_unit_test(bare_scalar_is_a_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
