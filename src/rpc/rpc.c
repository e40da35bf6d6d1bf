/* rpc.c - helpers shared by the RPC server and client. */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_internal.h"

rk_err rpc_from_nng(int rv, const char *what)
{
    if (rv == 0)
        return RK_OK;
    RK_DEBUG("rpc", "%s: %s (%d)", what, nng_strerror(rv), rv);
    switch (rv) {
    case NNG_ETIMEDOUT: return RK_ETIMEDOUT;
    case NNG_ECLOSED:
    case NNG_ECANCELED: return RK_ECLOSED;
    case NNG_ENOMEM: return RK_ENOMEM;
    case NNG_EINVAL:
    case NNG_EADDRINVAL: return RK_EINVAL;
    case NNG_EMSGSIZE: return RK_ETOOBIG;
    default: return RK_EIO;
    }
}

char *rpc_url(const char *addr)
{
    if (addr == NULL || addr[0] == '\0')
        return NULL;
    if (strstr(addr, "://") != NULL)
        return strdup(addr);
    size_t len = strlen(addr) + sizeof "tcp://";
    char *url = malloc(len);
    if (url != NULL)
        snprintf(url, len, "tcp://%s", addr);
    return url;
}

const ProtobufCMethodDescriptor *rpc_find_method(const ProtobufCServiceDescriptor *service,
                                                 const char *name)
{
    if (service == NULL || name == NULL)
        return NULL;
    return protobuf_c_service_descriptor_get_method_by_name(service, name);
}

void rpc_options_fill(rpc_options *opts)
{
    if (opts->window_ms == 0)
        opts->window_ms = RPC_DEFAULT_WINDOW_MS;
    if (opts->max_frame_bytes == 0)
        opts->max_frame_bytes = RPC_DEFAULT_MAX_FRAME;
    if (opts->workers == 0)
        opts->workers = RPC_DEFAULT_WORKERS;
    if (opts->contexts == 0)
        opts->contexts = RPC_DEFAULT_CONTEXTS;
    if (opts->replay_entries == 0)
        opts->replay_entries = RPC_DEFAULT_REPLAY_ENTRIES;
}

uint64_t rpc_us_until(uint64_t deadline_ms)
{
    uint64_t now_us = rk_mono_ns() / 1000u;
    if (deadline_ms == UINT64_MAX)
        return UINT64_MAX;
    uint64_t deadline_us = deadline_ms * 1000u;
    return deadline_us > now_us ? deadline_us - now_us : 0;
}

void rpc_reply_free(ProtobufCMessage *reply)
{
    if (reply != NULL)
        protobuf_c_message_free_unpacked(reply, NULL);
}

bool rpc_gate_enter(rpc_gate *g)
{
    atomic_fetch_add(&g->active, 1);
    if (atomic_load(&g->closed)) {
        atomic_fetch_sub(&g->active, 1);
        return false;
    }
    return true;
}

void rpc_gate_exit(rpc_gate *g)
{
    atomic_fetch_sub(&g->active, 1);
}

void rpc_gate_close(rpc_gate *g)
{
    atomic_store(&g->closed, true);
    while (atomic_load(&g->active) > 0)
        sched_yield();
}

size_t rpc_handlers_copy(const rpc_handler *table, size_t n, rpc_handler *out, size_t cap)
{
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = table[i];
    return n;
}
