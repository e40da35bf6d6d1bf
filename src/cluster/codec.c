/* codec.c - the member table's persistent form, kept in the store's `meta`
 * column family so a restarted node rejoins without --join.
 *
 * Format, integers big-endian (docs/membership.md):
 *   "RKMT" | u8 format (1) | u64 self id | u32 rows
 *   rows x ( u64 id | u8 status | u64 incarnation | u64 heartbeat |
 *            u8 len, name | u8 len, http addr | u8 len, rpc addr )
 * Rows are in strictly increasing id order. Liveness and times are not
 * kept: they are this node's observations, meaningless after a restart. */
#include <stdlib.h>
#include <string.h>

#include "cluster_internal.h"

#define CODEC_MAGIC "RKMT"
#define CODEC_FORMAT 1

static rk_err put_u64(rk_buf *out, uint64_t v)
{
    uint8_t b[8];
    rk_store_be64(b, v);
    return rk_buf_append(out, b, sizeof b);
}

static rk_err put_str(rk_buf *out, const char *s)
{
    size_t len = strlen(s); /* <= CLUSTER_ADDR_MAX (255): fits the u8 */
    uint8_t l = (uint8_t)len;
    rk_err err = rk_buf_append(out, &l, 1);
    return err != RK_OK ? err : rk_buf_append(out, s, len);
}

rk_err cluster_table_encode(const cluster_table *table, rk_buf *out)
{
    uint8_t format = CODEC_FORMAT;
    uint8_t count[4];
    rk_store_be32(count, (uint32_t)table->count);
    rk_err err = rk_buf_append(out, CODEC_MAGIC, 4);
    if (err == RK_OK)
        err = rk_buf_append(out, &format, 1);
    if (err == RK_OK)
        err = put_u64(out, table->self_id);
    if (err == RK_OK)
        err = rk_buf_append(out, count, sizeof count);
    for (size_t i = 0; i < table->count && err == RK_OK; i++) {
        const cluster_entry *e = &table->rows[i].entry;
        uint8_t status = (uint8_t)e->status;
        err = put_u64(out, e->id);
        if (err == RK_OK)
            err = rk_buf_append(out, &status, 1);
        if (err == RK_OK)
            err = put_u64(out, e->incarnation);
        if (err == RK_OK)
            err = put_u64(out, e->heartbeat);
        if (err == RK_OK)
            err = put_str(out, e->name);
        if (err == RK_OK)
            err = put_str(out, e->http_addr);
        if (err == RK_OK)
            err = put_str(out, e->rpc_addr);
    }
    return err;
}

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static bool get_bytes(reader *r, void *dst, size_t n)
{
    if (r->left < n)
        return false;
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

static bool get_uint(reader *r, size_t n, uint64_t *out)
{
    uint8_t b[8];
    if (!get_bytes(r, b, n))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | b[i];
    *out = v;
    return true;
}

static bool get_str(reader *r, char *dst, size_t max)
{
    uint64_t len;
    if (!get_uint(r, 1, &len) || len > max || !get_bytes(r, dst, len))
        return false;
    if (memchr(dst, '\0', len) != NULL)
        return false;
    dst[len] = '\0';
    return true;
}

rk_err cluster_table_decode(const void *data, size_t len, const cluster_entry *self,
                            const cluster_config *config, uint64_t now_ms, cluster_table **out)
{
    if (self == NULL || !cluster_entry_valid(self))
        return RK_EINVAL;
    reader r = {.p = data, .left = len};
    char magic[4];
    uint64_t format, self_id, count;
    if (!get_bytes(&r, magic, 4) || memcmp(magic, CODEC_MAGIC, 4) != 0 ||
        !get_uint(&r, 1, &format) || format != CODEC_FORMAT || !get_uint(&r, 8, &self_id) ||
        !get_uint(&r, 4, &count) || count == 0 || count > CLUSTER_MAX_MEMBERS)
        return RK_ECORRUPT;
    if (self_id != self->id)
        return RK_EINVAL;
    /* Smallest row: 8 + 1 + 8 + 8 + 3 bytes. */
    if (r.left / 28 < count)
        return RK_ECORRUPT;
    cluster_entry *entries = malloc(count * sizeof *entries);
    if (entries == NULL)
        return RK_ENOMEM;
    rk_err err = RK_OK;
    size_t self_at = count;
    for (size_t i = 0; i < count && err == RK_OK; i++) {
        cluster_entry *e = &entries[i];
        uint64_t status;
        memset(e, 0, sizeof *e);
        if (!get_uint(&r, 8, &e->id) || !get_uint(&r, 1, &status) ||
            !get_uint(&r, 8, &e->incarnation) || !get_uint(&r, 8, &e->heartbeat) ||
            !get_str(&r, e->name, CLUSTER_NAME_MAX) ||
            !get_str(&r, e->http_addr, CLUSTER_ADDR_MAX) ||
            !get_str(&r, e->rpc_addr, CLUSTER_ADDR_MAX) || status >= CLUSTER_STATUS_COUNT ||
            e->id == 0 || (i > 0 && e->id <= entries[i - 1].id))
            err = RK_ECORRUPT;
        else
            e->status = (cluster_status)status;
        if (err == RK_OK && e->id == self_id)
            self_at = i;
    }
    if (err == RK_OK && (r.left != 0 || self_at == count))
        err = RK_ECORRUPT;
    cluster_table *table = NULL;
    if (err == RK_OK) {
        /* The local node as started now, with its stored status and a new
         * incarnation: whatever its previous life gossiped is overtaken. */
        cluster_entry me = *self;
        me.status = entries[self_at].status;
        me.incarnation = entries[self_at].incarnation + (entries[self_at].incarnation < UINT64_MAX);
        me.heartbeat = 0;
        err = cluster_table_alloc(&me, config, now_ms, &table);
    }
    if (err == RK_OK && (err = cluster_rows_reserve(table, count)) == RK_OK) {
        cluster_member me_row = table->rows[0];
        size_t n = 0;
        for (size_t i = 0; i < count; i++) {
            if (i == self_at)
                table->rows[n++] = me_row;
            else
                table->rows[n++] = (cluster_member){
                    .entry = entries[i], .liveness = CLUSTER_ALIVE, .last_heard_ms = now_ms};
        }
        table->count = n;
    }
    free(entries);
    if (err != RK_OK) {
        cluster_table_free(table);
        return err;
    }
    *out = table;
    return RK_OK;
}
