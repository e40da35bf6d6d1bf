/* timer.c - the delay queue: one thread runs each held message's callback
 * at its due time.
 *
 * NNG's own timers (nng_sleep_aio) tick in milliseconds, too coarse for a
 * LAN link of 0.2 ms, and a thread per delayed message would cost more
 * than the delays it models. So delayed messages wait in a binary heap
 * ordered by (due time, start order), and one thread sleeps until the
 * earliest is due (pthread_cond_timedwait on the monotonic clock, with a
 * timer slack of 1 us instead of Linux's 50 us), takes it out and runs its
 * callback without the lock. A timer's life:
 *
 *            failpoint_timer_start          due: popped
 *   idle -------------------------> queued ------------> running --> idle
 *                                     |                  (callback_cb)
 *                                     +---- failpoint_timer_cancel --> idle
 *
 *   idle -> queued     failpoint_timer_start (slot = heap index + 1)
 *   queued -> running  timer_main (slot = 0, tq.running = t)
 *   running -> idle    timer_main, after the callback (wakes cancellers)
 *   queued -> idle     failpoint_timer_cancel (true)
 *
 * A callback may start its own timer again (running and queued at once);
 * cancel then removes the queued one. Starting a queued timer moves it. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#include "failpoint_internal.h"

static struct {
    pthread_once_t once;
    pthread_mutex_t mu;
    pthread_cond_t wake_cv; /* the thread: a new earliest timer, or stop */
    pthread_cond_t idle_cv; /* cancellers: the running callback returned */
    failpoint_timer **heap;
    size_t n, cap;
    uint64_t next_seq;
    bool started, stopping;
    pthread_t thread;
    failpoint_timer *running;
} tq = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

static void init_conds(void)
{
    rk_cond_init_monotonic(&tq.wake_cv);
    pthread_cond_init(&tq.idle_cv, NULL);
}

/* ---- the heap (under tq.mu) ------------------------------------------------ */

static bool earlier(const failpoint_timer *a, const failpoint_timer *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void place(size_t i, failpoint_timer *t)
{
    tq.heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(size_t i)
{
    failpoint_timer *t = tq.heap[i];
    while (i > 0 && earlier(t, tq.heap[(i - 1) / 2])) {
        place(i, tq.heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(i, t);
}

static void sift_down(size_t i)
{
    failpoint_timer *t = tq.heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= tq.n)
            break;
        if (c + 1 < tq.n && earlier(tq.heap[c + 1], tq.heap[c]))
            c++;
        if (!earlier(tq.heap[c], t))
            break;
        place(i, tq.heap[c]);
        i = c;
    }
    place(i, t);
}

/* Takes t (queued) out of the heap. */
static void heap_remove(failpoint_timer *t)
{
    size_t i = t->slot - 1;
    t->slot = 0;
    tq.n--;
    if (i == tq.n)
        return;
    place(i, tq.heap[tq.n]);
    if (i > 0 && earlier(tq.heap[i], tq.heap[(i - 1) / 2]))
        sift_up(i);
    else
        sift_down(i);
}

/* ---- the thread ---------------------------------------------------------------- */

static void wait_until_ns(uint64_t due_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(due_ns / 1000000000u),
                          .tv_nsec = (long)(due_ns % 1000000000u)};
    pthread_cond_timedwait(&tq.wake_cv, &tq.mu, &ts);
}

static void *timer_main(void *arg)
{
    (void)arg;
    /* The kernel may defer a timed wake-up by the thread's slack (50 us by
     * default) to batch it with others: too much for a 0.2 ms link. */
    prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);
    pthread_mutex_lock(&tq.mu);
    while (!tq.stopping) {
        if (tq.n == 0) {
            pthread_cond_wait(&tq.wake_cv, &tq.mu);
            continue;
        }
        failpoint_timer *t = tq.heap[0];
        if (t->due_ns > rk_mono_ns()) {
            wait_until_ns(t->due_ns);
            continue;
        }
        heap_remove(t);
        failpoint_timer_cb cb = t->callback_cb;
        void *cb_arg = t->arg;
        tq.running = t;
        pthread_mutex_unlock(&tq.mu);
        cb(cb_arg);
        pthread_mutex_lock(&tq.mu);
        tq.running = NULL;
        pthread_cond_broadcast(&tq.idle_cv);
    }
    pthread_mutex_unlock(&tq.mu);
    return NULL;
}

/* ---- public --------------------------------------------------------------------- */

rk_err failpoint_timer_start(failpoint_timer *t, uint64_t delay_us, failpoint_timer_cb callback_cb,
                             void *arg)
{
    pthread_once(&tq.once, init_conds);
    pthread_mutex_lock(&tq.mu);
    rk_err err = RK_OK;
    if (!tq.started) {
        tq.stopping = false;
        if (pthread_create(&tq.thread, NULL, timer_main, NULL) != 0)
            err = RK_ENOMEM;
        else
            tq.started = true;
    }
    if (err == RK_OK)
        err = rk_array_grow((void **)&tq.heap, &tq.cap, tq.n + 1, sizeof *tq.heap);
    if (err != RK_OK) {
        pthread_mutex_unlock(&tq.mu);
        RK_WARN("failpoint", "cannot hold a message: out of memory; it goes on at once");
        return err;
    }
    if (t->slot != 0) /* queued already: moved to its new time */
        heap_remove(t);
    t->due_ns = rk_mono_ns() + delay_us * 1000u;
    t->seq = tq.next_seq++;
    t->callback_cb = callback_cb;
    t->arg = arg;
    tq.n++;
    place(tq.n - 1, t);
    sift_up(tq.n - 1);
    if (tq.heap[0] == t) /* the thread sleeps until a later time, or forever */
        pthread_cond_signal(&tq.wake_cv);
    pthread_mutex_unlock(&tq.mu);
    return RK_OK;
}

bool failpoint_timer_cancel(failpoint_timer *t)
{
    pthread_once(&tq.once, init_conds);
    pthread_mutex_lock(&tq.mu);
    bool removed = t->slot != 0;
    if (removed)
        heap_remove(t);
    else
        while (tq.running == t)
            pthread_cond_wait(&tq.idle_cv, &tq.mu);
    pthread_mutex_unlock(&tq.mu);
    return removed;
}

void failpoint_timer_shutdown(void)
{
    pthread_once(&tq.once, init_conds);
    pthread_mutex_lock(&tq.mu);
    if (!tq.started) {
        pthread_mutex_unlock(&tq.mu);
        return;
    }
    if (tq.n > 0)
        RK_WARN("failpoint", "%zu held message%s never released (their owners did not cancel)",
                tq.n, tq.n == 1 ? "" : "s");
    tq.stopping = true;
    pthread_cond_signal(&tq.wake_cv);
    pthread_mutex_unlock(&tq.mu);
    pthread_join(tq.thread, NULL);
    pthread_mutex_lock(&tq.mu);
    for (size_t i = 0; i < tq.n; i++)
        tq.heap[i]->slot = 0;
    free(tq.heap);
    tq.heap = NULL;
    tq.n = tq.cap = 0;
    tq.started = false;
    tq.stopping = false;
    pthread_mutex_unlock(&tq.mu);
}
