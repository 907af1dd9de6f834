/* fuzz_decode: the protocol decoder fed arbitrary bytes. The input is a
 * stream cut into reads of varying size (the first byte seeds the cuts);
 * rpc_scan frames it, msgpack-c decodes each frame, and rpc_parse_request
 * reads the envelope, as the server does. Differential check: wherever
 * rpc_decode_simple accepts a frame, the general path must accept the same
 * bytes with the same length and the same message. Any disagreement aborts. */
#include "rpc_msg.h"
#include "rpc_scan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void same_message(const struct rpc_message *a, const struct rpc_message *b)
{
    if (a->type != b->type || a->msgid != b->msgid || a->method_len != b->method_len ||
        memcmp(a->method, b->method, a->method_len) != 0 || a->nparams != b->nparams)
        abort();
    for (uint32_t i = 0; i < a->nparams; i++)
        if (!msgpack_object_equal(a->params[i], b->params[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rpc_decoder dec;
    static int ready;
    struct rpc_scan_limits lim = {1 << 16, 1000, 8, 0};
    struct rpc_scan scan;
    size_t start = 0, avail, step;
    unsigned seed;

    if (!ready) {
        if (rpc_decoder_init(&dec) < 0)
            abort();
        ready = 1;
    }
    if (size == 0)
        return 0;
    seed = data[0];
    data++, size--;
    rpc_scan_init(&scan, &lim);
    step = 1 + seed % 7;
    avail = step < size ? step : size;
    while (start < size) {
        size_t flen = 0;
        int rc = rpc_scan_feed(&scan, data + start, avail - start, &flen);
        if (rc < 0)
            break; /* refused: the server closes here */
        if (rc == 0) {
            if (avail == size)
                break; /* a truncated tail */
            step = 1 + (step * 5 + seed) % 13;
            avail = avail + step < size ? avail + step : size;
            continue;
        }
        {
            msgpack_object obj, params[RPC_SIMPLE_MAX_PARAMS];
            struct rpc_message m, ms;
            int have, grc = rpc_decode(&dec, (const char *)data + start, flen, &obj);
            size_t slen =
                rpc_decode_simple(data + start, size - start, lim.max_message_bytes, &ms, params);
            if (grc == 0)
                grc = rpc_parse_request(&obj, &m, &have);
            if (slen) {
                if (slen != flen || grc != 0)
                    abort();
                same_message(&ms, &m);
            }
        }
        start += flen;
        if (avail < start)
            avail = start;
        rpc_scan_reset(&scan);
    }
    return 0;
}
