/*
 * backoff.h — reconnect delays: exponential growth from `initial` to `max`
 * with full jitter (contract §6). Pure and deterministic given the random
 * source, so tests can pin it.
 */
#ifndef BACKOFF_H
#define BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

struct backoff {
	double		initial;	/* s, > 0 */
	double		max;		/* s, >= initial */
	unsigned	attempt;	/* failures since the last reset */
};

/** Random source: returns a uniformly distributed 32-bit value. */
typedef uint32_t backoff_rand_fn(void *ctx);

/** @brief Set up bo; attempt starts at 0. */
void backoff_init(struct backoff *bo, double initial, double max);

/**
 * @brief Delay before the next attempt, in microseconds, and count a failure.
 *
 * Attempt n (0-based) waits a uniform random time in
 * [initial, min(max, initial * 2^n)] ("full jitter" above the floor, so a
 * fleet of daemons restarted together spreads out). After an authentication
 * rejection the delay is `max`: retrying a wrong password fast helps nobody.
 */
int64_t backoff_next(struct backoff *bo, bool auth_failed,
    backoff_rand_fn *rnd, void *ctx);

/** @brief Forget past failures (after a healthy period). */
void backoff_reset(struct backoff *bo);

#endif
