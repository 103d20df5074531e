/*
 * backoff.c — reconnect delays (contract §6): exponential growth from
 * `initial` to `max`, full jitter above the `initial` floor, and `max` after
 * an authentication rejection.
 *
 * Pure: the random source is a parameter, so tests pin every delay. No
 * libm: the doubling is a bounded loop, so no attempt count can overflow
 * it or make it slow.
 */
#include "backoff.h"

#include <limits.h>
#include <stddef.h>

/* Doubling stops once the ceiling reaches max; this bound only matters
 * for nonsense settings (initial <= 0, NaN), where it never would. It is
 * large enough for any positive double to reach any finite max (the
 * smallest subnormal needs ~2100 doublings to overflow). */
#define MAX_DOUBLINGS	2200

static int64_t
seconds_to_us(double s)
{
	double us = s * 1e6;

	if (!(us > 0))			/* also NaN */
		return 0;
	if (us >= 9.2e18)		/* INT64_MAX is ~9.22e18 */
		return INT64_MAX;
	return (int64_t)(us + 0.5);
}

void
backoff_init(struct backoff *bo, double initial, double max)
{
	bo->initial = initial;
	bo->max = max >= initial ? max : initial;
	bo->attempt = 0;
}

int64_t
backoff_next(struct backoff *bo, bool auth_failed, backoff_rand_fn *rnd,
    void *ctx)
{
	double hi = bo->initial, delay;
	unsigned n = bo->attempt, i;

	if (bo->attempt < UINT_MAX)	/* saturates instead of wrapping */
		bo->attempt++;
	/* A wrong password does not get better by retrying fast. */
	if (auth_failed)
		return seconds_to_us(bo->max);

	/* hi = min(max, initial * 2^n) */
	for (i = 0; i < n && i < MAX_DOUBLINGS && hi < bo->max; i++)
		hi *= 2;
	if (!(hi <= bo->max))		/* also NaN */
		hi = bo->max;
	delay = hi;
	/* u in [0, 1], both ends reachable: r / (2^32 - 1). Without a
	 * random source there is no jitter: the ceiling is the safe side. */
	if (rnd != NULL)
		delay = bo->initial + (hi - bo->initial) *
		    ((double)rnd(ctx) / (double)UINT32_MAX);
	return seconds_to_us(delay);
}

void
backoff_reset(struct backoff *bo)
{
	bo->attempt = 0;
}
