/* Timed waits on condition variables that run on CLOCK_MONOTONIC, so that a
 * wall-clock step (NTP, an operator) never stretches or cuts a timeout. */
#ifndef V2G_SYNC_H
#define V2G_SYNC_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* pthread_cond_init with CLOCK_MONOTONIC; returns pthread_cond_init's code. */
int v2g_cond_init_mono(pthread_cond_t *c);

/* The CLOCK_MONOTONIC instant ms milliseconds from now (ms may be <= 0). */
struct timespec v2g_mono_deadline(int64_t ms);

/* Waits on c (initialised by v2g_cond_init_mono, mu held) for at most ms;
 * returns at once when ms <= 0. Returns pthread_cond_timedwait's code (0 when
 * signalled, ETIMEDOUT). Spurious wake-ups are the caller's to handle. */
int v2g_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *mu, int64_t ms);

#endif
