/*
 * test_backoff.c — backoff_next() with an injected random source: bounds
 * per attempt, growth, the cap, auth → max, reset, huge attempt counts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "backoff.h"
#include "w2k.h"

/* A fixed "random" value. */
static uint32_t
fixed_rand(void *ctx)
{
	return *(const uint32_t *)ctx;
}

/* A small deterministic generator (xorshift32), for spread checks. */
static uint32_t
xorshift_rand(void *ctx)
{
	uint32_t *s = ctx;

	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void
backoff__random_extremes__exact_bounds_per_attempt(void **state)
{
	/* initial 1 s, max 60 s: ceilings 1, 2, 4, 8, 16, 32, 60, 60 … */
	static const int64_t ceil_us[] = {
		1000000, 2000000, 4000000, 8000000, 16000000, 32000000,
		60000000, 60000000, 60000000,
	};
	uint32_t lo = 0, hi = UINT32_MAX;
	struct backoff a, b;
	size_t i;

	(void)state;
	backoff_init(&a, 1.0, 60.0);
	backoff_init(&b, 1.0, 60.0);
	assert_int_equal(a.attempt, 0);
	for (i = 0; i < W2K_ARRAY_SIZE(ceil_us); i++) {
		assert_int_equal(backoff_next(&a, false, fixed_rand, &lo),
		    1000000);
		assert_int_equal(backoff_next(&b, false, fixed_rand, &hi),
		    ceil_us[i]);
		assert_int_equal(a.attempt, i + 1);
	}
}

static void
backoff__midpoint__uniform_between_floor_and_ceiling(void **state)
{
	uint32_t mid = UINT32_MAX / 2 + 1;	/* u = 0.5 (+ 2^-33) */
	struct backoff bo;

	(void)state;
	backoff_init(&bo, 2.0, 100.0);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &mid), 2000000);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &mid), 3000000);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &mid), 5000000);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &mid), 9000000);
}

static void
backoff__random_stream__within_bounds_and_spread(void **state)
{
	uint32_t seed = 12345;
	struct backoff bo;
	int64_t d, min = INT64_MAX, max = 0;
	int i;

	(void)state;
	for (i = 0; i < 10000; i++) {
		backoff_init(&bo, 0.5, 30.0);
		bo.attempt = (unsigned)(i % 12);
		d = backoff_next(&bo, false, xorshift_rand, &seed);
		assert_true(d >= 500000);
		assert_true(d <= 30000000);
		if (i % 12 == 11) {
			if (d < min)
				min = d;
			if (d > max)
				max = d;
		}
	}
	/* At the cap the whole range is used (full jitter). */
	assert_true(min < 2000000);
	assert_true(max > 28000000);
}

static void
backoff__auth_failed__max_exactly(void **state)
{
	uint32_t lo = 0;
	struct backoff bo;

	(void)state;
	backoff_init(&bo, 1.0, 60.0);
	assert_int_equal(backoff_next(&bo, true, fixed_rand, &lo), 60000000);
	assert_int_equal(bo.attempt, 1);
	assert_int_equal(backoff_next(&bo, true, fixed_rand, &lo), 60000000);
	assert_int_equal(backoff_next(&bo, true, NULL, NULL), 60000000);
	assert_int_equal(bo.attempt, 3);
	/* A normal failure afterwards continues the growth. */
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &lo), 1000000);
	backoff_init(&bo, 0.25, 7.5);
	assert_int_equal(backoff_next(&bo, true, fixed_rand, &lo), 7500000);
}

static void
backoff__reset__starts_over(void **state)
{
	uint32_t hi = UINT32_MAX;
	struct backoff bo;
	int i;

	(void)state;
	backoff_init(&bo, 1.0, 60.0);
	for (i = 0; i < 10; i++)
		backoff_next(&bo, false, fixed_rand, &hi);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), 60000000);
	backoff_reset(&bo);
	assert_int_equal(bo.attempt, 0);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), 1000000);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), 2000000);
}

static void
backoff__huge_attempt_count__capped_no_overflow(void **state)
{
	static const unsigned attempts[] = {
		31, 32, 63, 64, 65, 1023, 1024, 1025, 100000, UINT_MAX - 1,
		UINT_MAX,
	};
	uint32_t hi = UINT32_MAX, lo = 0;
	struct backoff bo;
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(attempts); i++) {
		backoff_init(&bo, 1.0, 60.0);
		bo.attempt = attempts[i];
		assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi),
		    60000000);
		bo.attempt = attempts[i];
		assert_int_equal(backoff_next(&bo, false, fixed_rand, &lo),
		    1000000);
	}
	/* The counter saturates instead of wrapping to 0. */
	assert_int_equal(bo.attempt, UINT_MAX);
	/* A tiny floor and a huge cap: still bounded, still exact. */
	backoff_init(&bo, 1e-300, 1e300);
	bo.attempt = UINT_MAX;
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), INT64_MAX);
	backoff_init(&bo, 0.001, 1e9);
	bo.attempt = 4000000000u;
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi),
	    INT64_C(1000000000000000));
}

static void
backoff__odd_settings__sane(void **state)
{
	uint32_t hi = UINT32_MAX;
	struct backoff bo;

	(void)state;
	/* max below initial: max is raised to initial. */
	backoff_init(&bo, 5.0, 1.0);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), 5000000);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), 5000000);
	/* initial == max: a constant delay. */
	backoff_init(&bo, 3.0, 3.0);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), 3000000);
	/* No random source: the ceiling. */
	backoff_init(&bo, 1.0, 60.0);
	bo.attempt = 3;
	assert_int_equal(backoff_next(&bo, false, NULL, NULL), 8000000);
	/* Nonsense (zero, negative) never loops forever nor goes negative. */
	backoff_init(&bo, 0.0, 0.0);
	bo.attempt = UINT_MAX - 1;
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), 0);
	backoff_init(&bo, -1.0, 2.0);
	bo.attempt = UINT_MAX - 1;
	assert_true(backoff_next(&bo, false, fixed_rand, &hi) >= 0);
	/* Sub-microsecond values round to the nearest microsecond. */
	backoff_init(&bo, 0.0000016, 1.0);
	assert_int_equal(backoff_next(&bo, false, fixed_rand, &hi), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff__random_extremes__exact_bounds_per_attempt),
		cmocka_unit_test(backoff__midpoint__uniform_between_floor_and_ceiling),
		cmocka_unit_test(backoff__random_stream__within_bounds_and_spread),
		cmocka_unit_test(backoff__auth_failed__max_exactly),
		cmocka_unit_test(backoff__reset__starts_over),
		cmocka_unit_test(backoff__huge_attempt_count__capped_no_overflow),
		cmocka_unit_test(backoff__odd_settings__sane),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
