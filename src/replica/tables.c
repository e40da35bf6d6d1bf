/* tables.c - the catalog of tables this node has stored records of, for
 * GET /tables. Records are keyed by ring position, so a table's keys are
 * scattered over the whole store and no scan can list tables cheaply:
 * the catalog remembers each name the first time a record of it lands
 * here (a write, a merge, a hint) and keeps the list in `meta` "tables"
 * (one name per line). A table stays listed after its records move away.
 *
 * Cost per write: one parse of the storage key and a lookup under a mutex
 * held for that lookup; the store is written only for a new name. */
#include <stdlib.h>
#include <string.h>

#include "replica_internal.h"

#define META_TABLES "tables"

/* Adds name to the in-memory set; the caller holds the mutex. */
static rk_err remember(replica_tables *t, const char *name, size_t len)
{
    if (rk_map_get(&t->names, name, len) != NULL)
        return RK_OK;
    /* rk_map copies the key; the value only has to be non-NULL. */
    return rk_map_put(&t->names, name, len, t);
}

/* Saves the catalog as "name\n..." (the caller holds the mutex). */
typedef struct save_state {
    rk_buf out;
    rk_err err;
} save_state;

static bool save_visit_cb(void *arg, const char *key, size_t key_len, void *value)
{
    (void)value;
    save_state *ss = arg;
    if (ss->err == RK_OK)
        ss->err = rk_buf_append(&ss->out, key, key_len);
    if (ss->err == RK_OK)
        ss->err = rk_buf_append(&ss->out, "\n", 1);
    return false;
}

static rk_err save(replica *rp)
{
    save_state ss = {0};
    rk_map_visit(&rp->tables.names, save_visit_cb, &ss);
    if (ss.err == RK_OK)
        ss.err = store_meta_put(rp->st, META_TABLES, ss.out.data, ss.out.len);
    rk_buf_free(&ss.out);
    return ss.err;
}

/* Rebuilds the catalog from the records themselves: a store written
 * before the catalog existed. Runs once, at open. */
static bool rebuild_visit_cb(void *arg, const char *dbkey, size_t dbkey_len, const char *val,
                             size_t val_len)
{
    (void)val, (void)val_len;
    replica_tables *t = arg;
    uint64_t pos;
    const char *table, *key;
    size_t table_len, key_len;
    if (store_data_key_parse(dbkey, dbkey_len, &pos, &table, &table_len, &key, &key_len) == RK_OK)
        t->err = remember(t, table, table_len);
    return t->err == RK_OK;
}

rk_err replica_tables_load(replica *rp)
{
    replica_tables *t = &rp->tables;
    if (pthread_mutex_init(&t->mu, NULL) != 0)
        return RK_ENOMEM;
    rk_buf saved = {0};
    rk_err err = store_meta_get(rp->st, META_TABLES, &saved);
    if (err == RK_OK) {
        const char *p = saved.data, *end = saved.data + saved.len;
        while (err == RK_OK && p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (replica_table_valid(p, len))
                err = remember(t, p, len);
            p += len + 1;
        }
    } else if (err == RK_ENOTFOUND) {
        t->err = RK_OK;
        err = store_scan(rp->st, NULL, 0, NULL, 0, rebuild_visit_cb, t);
        if (err == RK_OK)
            err = t->err;
        if (err == RK_OK && t->names.len > 0) {
            RK_INFO("replica", "table catalog rebuilt from the records: %zu tables", t->names.len);
            err = save(rp);
        }
    }
    rk_buf_free(&saved);
    if (err != RK_OK) {
        rk_map_free(&t->names);
        pthread_mutex_destroy(&t->mu);
    }
    return err;
}

void replica_tables_free(replica *rp)
{
    rk_map_free(&rp->tables.names);
    pthread_mutex_destroy(&rp->tables.mu);
}

void replica_tables_note(replica *rp, const char *dbkey, size_t dbkey_len)
{
    uint64_t pos;
    const char *table, *key;
    size_t table_len, key_len;
    if (store_data_key_parse(dbkey, dbkey_len, &pos, &table, &table_len, &key, &key_len) == RK_OK)
        replica_tables_note_table(rp, table, table_len);
}

void replica_tables_note_table(replica *rp, const char *table, size_t table_len)
{
    replica_tables *t = &rp->tables;
    pthread_mutex_lock(&t->mu);
    bool known = rk_map_get(&t->names, table, table_len) != NULL;
    rk_err err = RK_OK;
    if (!known && t->names.len < REPLICA_TABLES_MAX) {
        err = remember(t, table, table_len);
        /* Under the mutex, so two new tables cannot save lists that miss
         * each other. Once per table, never again for its writes. */
        if (err == RK_OK)
            err = save(rp);
    }
    pthread_mutex_unlock(&t->mu);
    if (err != RK_OK)
        RK_ERROR("replica", "could not record table %.*s in the catalog: %s", (int)table_len, table,
                 rk_strerror(err));
}

/* Collects names (the caller holds the mutex). */
typedef struct list_state {
    char (*names)[REPLICA_TABLE_MAX + 1];
    size_t count, cap;
} list_state;

static bool list_visit_cb(void *arg, const char *key, size_t key_len, void *value)
{
    (void)value;
    list_state *ls = arg;
    if (ls->count < ls->cap && key_len <= REPLICA_TABLE_MAX) {
        memcpy(ls->names[ls->count], key, key_len);
        ls->names[ls->count++][key_len] = '\0';
    }
    return false;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

rk_err replica_tables_list(replica *rp, replica_table_name **out, size_t *out_count)
{
    replica_tables *t = &rp->tables;
    pthread_mutex_lock(&t->mu);
    size_t cap = t->names.len;
    list_state ls = {.names = cap ? malloc(cap * sizeof *ls.names) : NULL, .cap = cap};
    if (cap > 0 && ls.names == NULL) {
        pthread_mutex_unlock(&t->mu);
        return RK_ENOMEM;
    }
    rk_map_visit(&t->names, list_visit_cb, &ls);
    pthread_mutex_unlock(&t->mu);
    if (ls.count > 1)
        qsort(ls.names, ls.count, sizeof *ls.names, name_cmp);
    *out = ls.names;
    *out_count = ls.count;
    return RK_OK;
}
