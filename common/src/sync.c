#include "v2g/sync.h"

#include <errno.h>

int v2g_cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc)
		return rc;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

struct timespec v2g_mono_deadline(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ms <= 0)
		return ts;
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

int v2g_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *mu, int64_t ms)
{
	if (ms <= 0)
		return ETIMEDOUT;
	struct timespec ts = v2g_mono_deadline(ms);
	return pthread_cond_timedwait(c, mu, &ts);
}
