/* support.h - what the unit tests that run real stores and nodes share:
 * temporary directories, and waiting for a condition with a deadline (never
 * a bare sleep as a wait). */
#ifndef RINGKV_TEST_SUPPORT_H
#define RINGKV_TEST_SUPPORT_H

#include <stdbool.h>

/* Removes dir and everything below it (a warning on stderr if it cannot). */
void rm_tree(const char *dir);
/* Polls cond(arg) every 2 ms until it holds (true) or timeout_ms passes
 * (false). */
bool wait_for(bool (*cond)(void *), void *arg, unsigned timeout_ms);

#endif
