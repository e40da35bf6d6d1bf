/* service.c - the watch module's lifetime, its RPC service (Lease from
 * nodes with subscribers, Notify from replicas) and its figures. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "watch_internal.h"

void watch_config_default(watch_config *cfg)
{
    *cfg = (watch_config){
        .max_streams = 1024,
        .stream_queue = 1024,
        .log_events = 16384,
        .lease_ms = 9000,
        .linger_ms = 60000,
        .lease_wait_ms = 2000,
        .table_keys = 100000,
    };
}

rk_err watch_open(replica *rp, cluster_node *cn, rpc_client *client, const watch_config *cfg,
                  watch **out)
{
    if (cfg->stream_queue == 0 || cfg->log_events == 0 || cfg->lease_ms == 0)
        return RK_EINVAL;
    watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return RK_ENOMEM;
    if ((w->log = calloc(cfg->log_events, sizeof *w->log)) == NULL) {
        free(w);
        return RK_ENOMEM;
    }
    w->rp = rp;
    w->cn = cn;
    w->client = client;
    w->cfg = *cfg;
    cluster_view *v = cluster_node_view(cn);
    w->self = v->self_id;
    cluster_view_unref(v);
    randombytes_buf(&w->epoch, sizeof w->epoch);
    w->next_seq = 1;
    w->first_seq = 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->reg_mu, NULL);
    pthread_mutex_init(&w->run_mu, NULL);
    rk_cond_init_monotonic(&w->run_cv);
    replica_set_listener(rp, &(replica_listener){.wants_cb = watch_registry_wants,
                                                 .changed_cb = watch_registry_changed,
                                                 .arg = w});
    *out = w;
    return RK_OK;
}

rk_err watch_start(watch *w)
{
    return watch_lease_start(w);
}

void watch_shutdown(watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->shutting_down = true;
    for (watch_stream *s = w->streams; s != NULL; s = s->next_all) {
        pthread_mutex_lock(&s->mu);
        s->closed = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

void watch_stop(watch *w)
{
    if (w == NULL)
        return;
    watch_shutdown(w);
    watch_lease_stop(w);
}

void watch_close(watch *w)
{
    if (w == NULL)
        return;
    watch_stop(w);
    replica_set_listener(w->rp, NULL);
    watch_hub_free(w);
    watch_registry_free(w);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->reg_mu);
    pthread_mutex_destroy(&w->run_mu);
    pthread_cond_destroy(&w->run_cv);
    free(w);
}

rk_err watch_stream_open(watch *w, const watch_spec *spec, watch_stream **out)
{
    watch_stream *s = NULL;
    rk_err err = watch_hub_attach(w, spec, &s);
    if (err != RK_OK)
        return err;
    watch_lease_now(w, &s->table, s->n_keys == 0, s->key_names, s->key_name_lens, s->n_keys,
                    LEASE_WAIT);
    watch_hub_leased(s);
    *out = s;
    return RK_OK;
}

/* ---- RPC --------------------------------------------------------------------- */

static void lease_handler(rpc_request *req, const ProtobufCMessage *input, void *arg)
{
    watch *w = arg;
    const Ringkv__WatchLeaseRequest *in = (const Ringkv__WatchLeaseRequest *)input;
    uint32_t lease = in->lease_ms ? in->lease_ms : w->cfg.lease_ms;
    rk_err err = watch_registry_lease(w, rpc_request_sender(req), in, rk_monotonic_ms() + lease);
    Ringkv__WatchLeaseReply reply = RINGKV__WATCH_LEASE_REPLY__INIT;
    rpc_respond(req, err, &reply.base);
}

static void notify_handler(rpc_request *req, const ProtobufCMessage *input, void *arg)
{
    watch *w = arg;
    const Ringkv__WatchNotifyRequest *in = (const Ringkv__WatchNotifyRequest *)input;
    for (size_t i = 0; i < in->n_changes; i++) {
        const Ringkv__WatchChange *c = in->changes[i];
        rk_object obj = {0};
        if (object_decode(c->object.data, c->object.len, &obj) == RK_OK) {
            atomic_fetch_add_explicit(&w->notifications_in, 1, memory_order_relaxed);
            watch_hub_apply(w, c->table, strlen(c->table), (const char *)c->key.data, c->key.len,
                            &obj);
        }
        object_free(&obj);
    }
    Ringkv__WatchNotifyReply reply = RINGKV__WATCH_NOTIFY_REPLY__INIT;
    rpc_respond(req, RK_OK, &reply.base);
}

size_t watch_rpc_handlers(watch *w, rpc_handler *out, size_t cap)
{
    const rpc_handler table[] = {
        {&ringkv__watch__descriptor, "Lease", 0, lease_handler, w},
        {&ringkv__watch__descriptor, "Notify", 0, notify_handler, w},
    };
    return rpc_handlers_copy(table, sizeof table / sizeof table[0], out, cap);
}

void watch_get_stats(watch *w, watch_stats *out)
{
    pthread_mutex_lock(&w->mu);
    uint64_t streams = w->n_streams, keys = w->keys.len - w->table_only_keys;
    pthread_mutex_unlock(&w->mu);
    *out = (watch_stats){
        .streams = streams,
        .streams_opened = atomic_load(&w->streams_opened),
        .streams_rejected = atomic_load(&w->streams_rejected),
        .streams_dropped = atomic_load(&w->streams_dropped),
        .events = atomic_load(&w->events),
        .events_queued = atomic_load(&w->events_queued),
        .resets = atomic_load(&w->resets),
        .notifications_in = atomic_load(&w->notifications_in),
        .notifications_out = atomic_load(&w->notifications_out),
        .notify_failures = atomic_load(&w->notify_failures),
        .lease_failures = atomic_load(&w->lease_failures),
        .leases_held = watch_registry_leases(w),
        .keys_watched = keys,
    };
}
