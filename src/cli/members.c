/* members.c - the members of a GET /cluster answer as the CLI's cluster
 * commands use them: in name order for `cluster status`, and the list a
 * leave or remove is followed on. Pure: no network. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "change.h"

static const char *string_of(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int by_name_then_id(const void *pa, const void *pb)
{
    const cJSON *a = *(const cJSON *const *)pa, *b = *(const cJSON *const *)pb;
    const char *na = string_of(a, "name"), *nb = string_of(b, "name");
    if ((na == NULL) != (nb == NULL))
        return na == NULL ? 1 : -1; /* nameless last */
    int d = na != NULL ? strcmp(na, nb) : 0;
    if (d != 0)
        return d;
    const char *ia = string_of(a, "id"), *ib = string_of(b, "id");
    return strcmp(ia ? ia : "", ib ? ib : "");
}

rk_err cli_members_sorted(const cJSON *view, const cJSON ***out, size_t *n)
{
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(view, "members");
    if (!cJSON_IsArray(members))
        return RK_EINVAL;
    size_t count = (size_t)cJSON_GetArraySize(members);
    const cJSON **list = calloc(count ? count : 1, sizeof *list);
    if (list == NULL)
        return RK_ENOMEM;
    size_t k = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        list[k++] = m;
    }
    qsort(list, count, sizeof *list, by_name_then_id);
    *out = list;
    *n = count;
    return RK_OK;
}

void cli_members_free(cli_member *members, size_t n)
{
    for (size_t i = 0; members != NULL && i < n; i++) {
        free(members[i].name);
        free(members[i].id);
        free(members[i].address);
        free(members[i].url);
    }
    free(members);
}

static rk_err member_of(const cJSON *m, const char *asked_address, cli_member *out)
{
    const char *name = string_of(m, "name"), *id = string_of(m, "id");
    out->self = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "self"));
    const char *liveness = string_of(m, "liveness");
    out->down = liveness != NULL && strcmp(liveness, "down") == 0;
    /* A member that listens on a wildcard (a container's 0.0.0.0:8001) is
     * asked at its RPC host, as nodes reach each other's gateways. */
    const char *http = string_of(m, "http"), *rpc = string_of(m, "rpc");
    char reachable[300] = "";
    if (!out->self && http != NULL)
        rk_reachable_http_addr(http, rpc ? rpc : "", reachable, sizeof reachable);
    const char *address = out->self ? asked_address : reachable;
    out->name = strdup(name ? name : "");
    out->id = strdup(id ? id : "");
    out->address = strdup(address ? address : "");
    if (out->name == NULL || out->id == NULL || out->address == NULL)
        return RK_ENOMEM;
    /* An address the CLI cannot use leaves url NULL: the member is listed
     * (a note says it cannot be asked) rather than failing the command. */
    rk_err err = cli_http_node_url(out->address, &out->url);
    return err == RK_ENOMEM ? RK_ENOMEM : RK_OK;
}

rk_err cli_members_to_follow(const cJSON *view, const char *asked_address, cli_member **out,
                             size_t *n)
{
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(view, "members");
    if (!cJSON_IsArray(members))
        return RK_EINVAL;
    size_t cap = (size_t)cJSON_GetArraySize(members), k = 0;
    cli_member *list = calloc(cap ? cap : 1, sizeof *list);
    if (list == NULL)
        return RK_ENOMEM;
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        const char *status = string_of(m, "status");
        if (status != NULL && strcmp(status, "removed") == 0)
            continue; /* gone for good: nothing to ask it */
        rk_err err = member_of(m, asked_address, &list[k++]);
        if (err != RK_OK) {
            cli_members_free(list, k);
            return err;
        }
    }
    *out = list;
    *n = k;
    return RK_OK;
}

size_t cli_members_find(const cli_member *members, size_t n, const char *id)
{
    for (size_t i = 0; id != NULL && id[0] != '\0' && i < n; i++)
        if (strcasecmp(members[i].id, id) == 0)
            return i;
    return n;
}
