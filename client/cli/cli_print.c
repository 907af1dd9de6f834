/* cli_print: result printers for the CLI (see cli_print.h). Values nest at
 * most as deep as the protocol scanner allows (16), so recursion is bounded. */
#include "cli_print.h"

#include <inttypes.h>
#include <string.h>

static void json_string(FILE *f, const char *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        switch (ch) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(f, "\\u%04x", ch);
            else
                fputc(ch, f);
        }
    }
    fputc('"', f);
}

static void base64(FILE *f, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        fputc(tbl[(v >> 18) & 63], f);
        fputc(tbl[(v >> 12) & 63], f);
        fputc(i + 1 < n ? tbl[(v >> 6) & 63] : '=', f);
        fputc(i + 2 < n ? tbl[v & 63] : '=', f);
    }
}

/* "[a, b, c]" with each item printed by item(). */
static void print_array(FILE *f, const rcs_value *v, void (*item)(FILE *, const rcs_value *))
{
    fputc('[', f);
    for (size_t i = 0; i < v->via.array.len; i++) {
        if (i)
            fputs(", ", f);
        item(f, &v->via.array.items[i]);
    }
    fputc(']', f);
}

static void json_value(FILE *f, const rcs_value *v)
{
    switch (v->type) {
    case RCS_NIL:
        fputs("null", f);
        break;
    case RCS_BOOL:
        fputs(v->via.boolean ? "true" : "false", f);
        break;
    case RCS_UINT:
        fprintf(f, "%" PRIu64, v->via.u);
        break;
    case RCS_INT:
        fprintf(f, "%" PRId64, v->via.i);
        break;
    case RCS_FLOAT:
        fprintf(f, "%.17g", v->via.f);
        break;
    case RCS_STR:
        json_string(f, v->via.bytes.ptr, v->via.bytes.len);
        break;
    case RCS_BIN: /* one shape whatever the bytes: base64, whatever they are */
        fputc('"', f);
        base64(f, (const unsigned char *)v->via.bytes.ptr, v->via.bytes.len);
        fputc('"', f);
        break;
    case RCS_ARRAY:
        print_array(f, v, json_value);
        break;
    case RCS_MAP:
        fputc('{', f);
        for (size_t i = 0; i < v->via.map.len; i++) {
            const rcs_value *k = &v->via.map.keys[i];
            if (i)
                fputs(", ", f);
            if (k->type == RCS_STR || k->type == RCS_BIN)
                json_string(f, k->via.bytes.ptr, k->via.bytes.len);
            else {
                /* JSON keys are strings: print the key's JSON inside one. */
                fputc('"', f);
                json_value(f, k);
                fputc('"', f);
            }
            fputs(": ", f);
            json_value(f, &v->via.map.vals[i]);
        }
        fputc('}', f);
        break;
    }
}

void print_json(FILE *f, const rcs_value *v)
{
    json_value(f, v);
    fputc('\n', f);
}

void print_json_error(FILE *f, const char *code, const char *message)
{
    fputs("{\"error\": {\"code\": ", f);
    json_string(f, code, strlen(code));
    fputs(", \"message\": ", f);
    json_string(f, message, strlen(message));
    fputs("}}\n", f);
}

void print_hex(FILE *f, const rcs_value *v)
{
    for (size_t i = 0; i < v->via.bytes.len; i++)
        fprintf(f, "%02x", (unsigned char)v->via.bytes.ptr[i]);
}

static void c_string(FILE *f, const char *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void print_inline(FILE *f, const rcs_value *v)
{
    switch (v->type) {
    case RCS_STR:
    case RCS_BIN:
        c_string(f, v->via.bytes.ptr, v->via.bytes.len);
        break;
    case RCS_ARRAY:
        print_array(f, v, print_inline);
        break;
    default:
        json_value(f, v);
        break;
    }
}

/* An array of maps that all have the first one's keys: a table. */
static int is_table(const rcs_value *v)
{
    const rcs_value *first;
    if (v->type != RCS_ARRAY || v->via.array.len == 0)
        return 0;
    first = &v->via.array.items[0];
    for (size_t i = 0; i < v->via.array.len; i++) {
        const rcs_value *row = &v->via.array.items[i];
        if (row->type != RCS_MAP || row->via.map.len != first->via.map.len)
            return 0;
        for (size_t k = 0; k < row->via.map.len; k++)
            if (row->via.map.keys[k].type != RCS_STR ||
                strcmp(row->via.map.keys[k].via.bytes.ptr, first->via.map.keys[k].via.bytes.ptr))
                return 0;
    }
    return 1;
}

static void print_table(FILE *f, const rcs_value *v, int indent)
{
    const rcs_value *first = &v->via.array.items[0];
    fprintf(f, "%*s", indent, "");
    for (size_t k = 0; k < first->via.map.len; k++)
        fprintf(f, "%12s", first->via.map.keys[k].via.bytes.ptr);
    fputc('\n', f);
    for (size_t i = 0; i < v->via.array.len; i++) {
        const rcs_value *row = &v->via.array.items[i];
        fprintf(f, "%*s", indent, "");
        for (size_t k = 0; k < row->via.map.len; k++) {
            const rcs_value *cell = &row->via.map.vals[k];
            if (cell->type == RCS_UINT)
                fprintf(f, "%12" PRIu64, cell->via.u);
            else {
                fputs("  ", f);
                print_inline(f, cell);
            }
        }
        fputc('\n', f);
    }
}

/* print_map, the value under hex_key (NULL: none) of the top map as hex. */
static void print_map_k(FILE *f, const rcs_value *v, int indent, const char *hex_key)
{
    size_t width = 0;
    if (v->type != RCS_MAP) {
        print_inline(f, v);
        fputc('\n', f);
        return;
    }
    for (size_t i = 0; i < v->via.map.len; i++) {
        const rcs_value *k = &v->via.map.keys[i];
        if (k->type == RCS_STR && v->via.map.vals[i].type != RCS_MAP &&
            !is_table(&v->via.map.vals[i]) && k->via.bytes.len > width)
            width = k->via.bytes.len;
    }
    for (size_t i = 0; i < v->via.map.len; i++) {
        const rcs_value *k = &v->via.map.keys[i], *val = &v->via.map.vals[i];
        const char *name = k->type == RCS_STR ? k->via.bytes.ptr : "?";
        if (val->type == RCS_MAP) {
            fprintf(f, "%*s%s:\n", indent, "", name);
            print_map_k(f, val, indent + 2, NULL);
        } else if (is_table(val)) {
            fprintf(f, "%*s%s:\n", indent, "", name);
            print_table(f, val, indent + 2);
        } else {
            fprintf(f, "%*s%s:%*s ", indent, "", name, (int)(width - strlen(name)), "");
            if (hex_key && strcmp(name, hex_key) == 0 &&
                (val->type == RCS_BIN || val->type == RCS_STR))
                print_hex(f, val);
            else
                print_inline(f, val);
            fputc('\n', f);
        }
    }
}

void print_map(FILE *f, const rcs_value *v, int indent)
{
    print_map_k(f, v, indent, NULL);
}

void print_map_hex(FILE *f, const rcs_value *v, const char *key)
{
    print_map_k(f, v, 0, key);
}

/* A str value as text, or dflt when absent, nil or not a str. */
static const char *str_or(const rcs_value *v, const char *dflt)
{
    return v && v->type == RCS_STR ? v->via.bytes.ptr : dflt;
}

/* The entry of the leader's followers array for node id, or NULL. */
static const rcs_value *follower_of(const rcs_value *followers, uint64_t id)
{
    if (!followers || followers->type != RCS_ARRAY)
        return NULL;
    for (size_t i = 0; i < followers->via.array.len; i++) {
        const rcs_value *e = &followers->via.array.items[i];
        if (rcs_value_uint(rcs_map_get(e, "id"), 0) == id)
            return e;
    }
    return NULL;
}

/* The ROLE column: the answering node knows its own role and which node
 * leads; another member is a "follower" only in a leader's answer (it is
 * the leader's follower by definition, and its LAG says whether it keeps
 * up). Elsewhere all that is known is that it votes: a member that is down
 * must not look like a healthy follower. */
static const char *member_role(uint64_t id, uint64_t self_id, const char *self_role,
                               uint64_t leader_id, int is_voter)
{
    if (id == self_id)
        return self_role;
    if (id == leader_id)
        return "leader";
    if (!is_voter)
        return "spare";
    return self_id == leader_id && strcmp(self_role, "leader") == 0 ? "follower" : "voter";
}

void print_cluster(FILE *f, const rcs_value *v)
{
    const rcs_value *members = rcs_map_get(v, "members");
    const rcs_value *followers = rcs_map_get(v, "followers");
    uint64_t leader_id = rcs_value_uint(rcs_map_get(v, "leader_id"), 0);
    const rcs_value *ready = rcs_map_get(v, "ready");
    uint64_t self_id = rcs_value_uint(rcs_map_get(v, "node_id"), 0);
    const char *self_role = str_or(rcs_map_get(v, "role"), "?");

    fprintf(f, "node %" PRIu64 " (%s), term %" PRIu64 ", commit %" PRIu64 ", applied %" PRIu64 "\n",
            rcs_value_uint(rcs_map_get(v, "node_id"), 0), str_or(rcs_map_get(v, "role"), "?"),
            rcs_value_uint(rcs_map_get(v, "term"), 0),
            rcs_value_uint(rcs_map_get(v, "commit_index"), 0),
            rcs_value_uint(rcs_map_get(v, "applied_index"), 0));
    if (leader_id)
        fprintf(f, "leader: node %" PRIu64 " at %s%s\n", leader_id,
                str_or(rcs_map_get(v, "leader"), "?"),
                ready && ready->type == RCS_BOOL && !ready->via.boolean &&
                        strcmp(str_or(rcs_map_get(v, "role"), ""), "leader") == 0
                    ? " (applying the log, not serving yet)"
                    : "");
    else
        fputs("leader: none known\n", f);
    fprintf(f, "\n%-6s %-9s %-22s %-30s %-5s %8s %6s\n", "ID", "ROLE", "RAFT ADDRESS",
            "CLIENT ADDRESS", "VOTER", "MATCH", "LAG");
    for (size_t i = 0; members && members->type == RCS_ARRAY && i < members->via.array.len; i++) {
        const rcs_value *m = &members->via.array.items[i];
        const rcs_value *voter = rcs_map_get(m, "voter");
        uint64_t id = rcs_value_uint(rcs_map_get(m, "id"), 0);
        const rcs_value *fw = follower_of(followers, id);
        int is_voter = voter && voter->type == RCS_BOOL && voter->via.boolean;
        char match[24] = "-", lag[24] = "-";
        if (fw) {
            snprintf(match, sizeof(match), "%" PRIu64,
                     rcs_value_uint(rcs_map_get(fw, "match_index"), 0));
            snprintf(lag, sizeof(lag), "%" PRIu64, rcs_value_uint(rcs_map_get(fw, "lag"), 0));
        }
        fprintf(f, "%-6" PRIu64 " %-9s %-22s %-30s %-5s %8s %6s\n", id,
                member_role(id, self_id, self_role, leader_id, is_voter),
                str_or(rcs_map_get(m, "raft_address"), "?"),
                str_or(rcs_map_get(m, "client_address"), "?"), is_voter ? "yes" : "no", match, lag);
    }
    if (!followers)
        fputs("\n(match and lag are known on the leader: rcstore -H LEADER cluster status)\n", f);
}
