/* err.c - names and messages of rk_err values. */
#include "ringkv/common.h"

static const struct {
    const char *code;
    const char *message;
} err_table[RK_ERR_COUNT] = {
    [RK_OK] = {"ok", "success"},
    [RK_ENOTFOUND] = {"not_found", "not found"},
    [RK_EINVAL] = {"invalid", "invalid argument"},
    [RK_ENOMEM] = {"no_memory", "out of memory"},
    [RK_EIO] = {"io", "storage or I/O failure"},
    [RK_ETIMEDOUT] = {"timeout", "timed out"},
    [RK_EQUORUM] = {"quorum", "quorum not reached"},
    [RK_EPRECOND] = {"precondition_failed", "precondition failed"},
    [RK_ETOOBIG] = {"too_large", "too large"},
    [RK_ECORRUPT] = {"corrupt", "data does not decode"},
    [RK_ECLOSED] = {"closed", "shutting down"},
    [RK_EEXIST] = {"exists", "already exists"},
    [RK_EPERM] = {"forbidden", "not permitted"},
    [RK_EUNSUPPORTED] = {"unsupported", "not supported"},
    [RK_EBUSY] = {"conflict", "not possible in the current state"},
};

const char *rk_strerror(rk_err err)
{
    if ((unsigned)err >= RK_ERR_COUNT)
        return "unknown error";
    return err_table[err].message;
}

const char *rk_errcode(rk_err err)
{
    if ((unsigned)err >= RK_ERR_COUNT)
        return "unknown";
    return err_table[err].code;
}
