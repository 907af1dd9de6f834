/* err: the error table (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const char *message;
} table[] = {
#define RPC_ERR_ROW(name, msg) {#name, msg},
    RPC_ERR_TABLE(RPC_ERR_ROW)
#undef RPC_ERR_ROW
};

static int index_of(int err)
{
    int i = -err - RPC_ERR_BASE;
    return (i >= 0 && i < RPC_ERR_COUNT) ? i : -1;
}

int err_is_protocol(int err)
{
    return index_of(err) >= 0;
}

const char *err_name(int err)
{
    int i = index_of(err);
    return i >= 0 ? table[i].name : "INTERNAL";
}

const char *err_message(int err)
{
    int i = index_of(err);
    if (i >= 0)
        return table[i].message;
    return err == 0 ? "success" : strerror(-err);
}

int err_from_name(const char *name, size_t len)
{
    for (int i = 0; i < RPC_ERR_COUNT; i++) {
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return -(RPC_ERR_BASE + i);
    }
    return RPC_EINTERNAL;
}

int err_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}
