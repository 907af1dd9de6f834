/* fuzz_record: the record decoder fed arbitrary bytes, as a journal segment
 * or a snapshot would present them after damage. The input is decoded as a
 * run of records from its start, as both kinds of file (the first byte picks
 * which). Differential check: the encoding is canonical (shortest varints,
 * no trailing bytes), so every record that decodes must encode back to
 * exactly the bytes it came from; anything else aborts. ASan catches any
 * read outside the input. */
#include "buf.h"
#include "mem.h"
#include "record.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct buf b;
    enum rec_kind kind;
    size_t off = 1;

    if (size == 0)
        return 0;
    kind = (data[0] & 1) ? REC_KIND_SNAPSHOT : REC_KIND_JOURNAL;
    while (off < size) {
        struct rec r;
        size_t used = 0;
        int rc = rec_decode(data + off, size - off, kind, &r, &used);
        if (rc < 0) {
            if (rc != REC_ETRUNC && rc != REC_ECRC && rc != REC_ETYPE && rc != REC_EFORMAT)
                abort();
            break;
        }
        if (used < REC_HEADER_BYTES || used > size - off || !rec_type_valid(r.type, kind))
            abort();
        buf_reset(&b);
        if (rec_encode(&b, &r) < 0 || b.len != used || rec_size(&r) != used ||
            memcmp(b.data, data + off, used) != 0)
            abort();
        off += used;
    }
    if (size > (1u << 16))
        buf_close(&b), buf_init(&b);
    return 0;
}
