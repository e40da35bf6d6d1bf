/* table.c - the member table: rows, local changes, the ring member set. */
#include <stdlib.h>
#include <string.h>

#include "cluster_internal.h"

static const char *const status_names[CLUSTER_STATUS_COUNT] = {
    [CLUSTER_JOINING] = "joining",
    [CLUSTER_MEMBER] = "member",
    [CLUSTER_LEAVING] = "leaving",
    [CLUSTER_REMOVED] = "removed",
};

static const char *const liveness_names[] = {
    [CLUSTER_ALIVE] = "alive",
    [CLUSTER_SUSPECT] = "suspect",
    [CLUSTER_DOWN] = "down",
};

const char *cluster_status_name(cluster_status status)
{
    return (unsigned)status < CLUSTER_STATUS_COUNT ? status_names[status] : "?";
}

const char *cluster_liveness_name(cluster_liveness liveness)
{
    return (unsigned)liveness <= CLUSTER_DOWN ? liveness_names[liveness] : "?";
}

bool cluster_status_in_ring(cluster_status status)
{
    return status == CLUSTER_JOINING || status == CLUSTER_MEMBER || status == CLUSTER_LEAVING;
}

static bool copy_string(char *dst, size_t max, const char *src)
{
    if (src == NULL)
        return false;
    size_t len = strlen(src);
    if (len > max)
        return false;
    memcpy(dst, src, len + 1);
    return true;
}

rk_err cluster_entry_init(cluster_entry *entry, uint64_t id, const char *name,
                          const char *http_addr, const char *rpc_addr, cluster_status status)
{
    cluster_entry e;
    memset(&e, 0, sizeof e);
    if (id == 0 || (unsigned)status >= CLUSTER_STATUS_COUNT)
        return RK_EINVAL;
    if (!copy_string(e.name, CLUSTER_NAME_MAX, name) ||
        !copy_string(e.http_addr, CLUSTER_ADDR_MAX, http_addr) ||
        !copy_string(e.rpc_addr, CLUSTER_ADDR_MAX, rpc_addr))
        return RK_EINVAL;
    e.id = id;
    e.status = status;
    *entry = e;
    return RK_OK;
}

bool cluster_entry_valid(const cluster_entry *entry)
{
    return entry->id != 0 && (unsigned)entry->status < CLUSTER_STATUS_COUNT &&
           memchr(entry->name, '\0', sizeof entry->name) != NULL &&
           memchr(entry->http_addr, '\0', sizeof entry->http_addr) != NULL &&
           memchr(entry->rpc_addr, '\0', sizeof entry->rpc_addr) != NULL;
}

void cluster_config_default(cluster_config *config)
{
    config->suspect_after_ms = CLUSTER_DEFAULT_SUSPECT_AFTER_MS;
    config->down_after_ms = CLUSTER_DEFAULT_DOWN_AFTER_MS;
}

bool cluster_config_valid(const cluster_config *config)
{
    return config->suspect_after_ms > 0 && config->down_after_ms >= config->suspect_after_ms;
}

size_t cluster_row_index(const cluster_table *table, uint64_t id, bool *found)
{
    size_t lo = 0, hi = table->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (table->rows[mid].entry.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < table->count && table->rows[lo].entry.id == id;
    return lo;
}

rk_err cluster_rows_reserve(cluster_table *table, size_t extra)
{
    if (extra > SIZE_MAX - table->count)
        return RK_ENOMEM;
    return rk_array_grow((void **)&table->rows, &table->cap, table->count + extra,
                         sizeof *table->rows);
}

rk_err cluster_table_alloc(const cluster_entry *self, const cluster_config *config, uint64_t now_ms,
                           cluster_table **out)
{
    cluster_config cfg;
    if (config == NULL)
        cluster_config_default(&cfg);
    else
        cfg = *config;
    if (self == NULL || !cluster_entry_valid(self) || !cluster_config_valid(&cfg))
        return RK_EINVAL;
    cluster_table *table = calloc(1, sizeof *table);
    if (table == NULL)
        return RK_ENOMEM;
    table->self_id = self->id;
    table->config = cfg;
    if (cluster_rows_reserve(table, 1) != RK_OK) {
        free(table);
        return RK_ENOMEM;
    }
    table->rows[0] =
        (cluster_member){.entry = *self, .liveness = CLUSTER_ALIVE, .last_heard_ms = now_ms};
    table->count = 1;
    *out = table;
    return RK_OK;
}

void cluster_table_free(cluster_table *table)
{
    if (table == NULL)
        return;
    free(table->rows);
    free(table);
}

rk_err cluster_table_clone(const cluster_table *table, cluster_table **out)
{
    cluster_table *copy = calloc(1, sizeof *copy);
    if (copy == NULL)
        return RK_ENOMEM;
    copy->self_id = table->self_id;
    copy->config = table->config;
    if (cluster_rows_reserve(copy, table->count) != RK_OK) {
        free(copy);
        return RK_ENOMEM;
    }
    memcpy(copy->rows, table->rows, table->count * sizeof *table->rows);
    copy->count = table->count;
    *out = copy;
    return RK_OK;
}

uint64_t cluster_self_id(const cluster_table *table)
{
    return table->self_id;
}

const cluster_member *cluster_self(const cluster_table *table)
{
    return cluster_find(table, table->self_id);
}

size_t cluster_member_count(const cluster_table *table)
{
    return table->count;
}

const cluster_member *cluster_member_at(const cluster_table *table, size_t index)
{
    return index < table->count ? &table->rows[index] : NULL;
}

const cluster_member *cluster_find(const cluster_table *table, uint64_t id)
{
    bool found;
    size_t i = cluster_row_index(table, id, &found);
    return found ? &table->rows[i] : NULL;
}

size_t cluster_export(const cluster_table *table, cluster_entry *out, size_t cap)
{
    for (size_t i = 0; i < table->count && i < cap; i++)
        out[i] = table->rows[i].entry;
    return table->count;
}

void cluster_heartbeat(cluster_table *table)
{
    bool found;
    size_t i = cluster_row_index(table, table->self_id, &found);
    /* The local row is created with the table and never deleted. */
    table->rows[i].entry.heartbeat++;
}

rk_err cluster_set_status(cluster_table *table, uint64_t id, cluster_status status,
                          bool *ring_changed)
{
    bool found;
    size_t i = cluster_row_index(table, id, &found);
    if (!found)
        return RK_ENOTFOUND;
    if ((unsigned)status >= CLUSTER_STATUS_COUNT)
        return RK_EINVAL;
    cluster_entry *e = &table->rows[i].entry;
    if (status < e->status)
        return RK_EINVAL; /* the lattice only moves forward; REMOVED is final */
    bool changed = cluster_status_in_ring(e->status) != cluster_status_in_ring(status);
    e->status = status;
    if (ring_changed != NULL)
        *ring_changed = changed;
    return RK_OK;
}

size_t cluster_ring_members(const cluster_table *table, uint64_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < table->count; i++) {
        if (!cluster_status_in_ring(table->rows[i].entry.status))
            continue;
        if (n < cap)
            out[n] = table->rows[i].entry.id;
        n++;
    }
    return n;
}

static bool in_ring_of(cluster_status status, bool next)
{
    return next ? status == CLUSTER_JOINING || status == CLUSTER_MEMBER
                : status == CLUSTER_MEMBER || status == CLUSTER_LEAVING;
}

size_t cluster_ring_members_of(const cluster_table *table, bool next, uint64_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < table->count; i++) {
        if (!in_ring_of(table->rows[i].entry.status, next))
            continue;
        if (n < cap)
            out[n] = table->rows[i].entry.id;
        n++;
    }
    if (n == 0 && !next)
        return cluster_ring_members_of(table, true, out, cap);
    return n;
}

uint64_t cluster_membership_version(const cluster_table *table)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a 64 offset basis */
    for (size_t i = 0; i < table->count; i++) {
        uint8_t bytes[9];
        uint64_t id = table->rows[i].entry.id;
        rk_store_be64(bytes, id);
        bytes[8] = (uint8_t)table->rows[i].entry.status;
        for (int b = 0; b < 9; b++) {
            h ^= bytes[b];
            h *= 0x100000001b3u; /* FNV prime */
        }
    }
    return h;
}
