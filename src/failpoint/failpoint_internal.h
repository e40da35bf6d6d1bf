/* failpoint_internal.h - what the files of the failpoint module share;
 * nothing outside src/failpoint includes it. */
#ifndef RINGKV_FAILPOINT_INTERNAL_H
#define RINGKV_FAILPOINT_INTERNAL_H

#include "ringkv/failpoint.h"

/* Stops the timer thread (timer.c); failpoint_shutdown calls it. */
void failpoint_timer_shutdown(void);

#endif
