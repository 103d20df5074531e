/*
 * test_backfill.c — the pure parts of the CDR backfill (backfill.h): the
 * gap list (merging, bounded), the verdict on a row, the query string.
 * The rest (state file, REST client, index) runs in tests/integration/40x.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backfill.h"
#include "w2k.h"

/* A model: a bitmap of covered seconds in [0, SPAN). */
#define SPAN	400

static void
model_add(unsigned char *m, int64_t from, int64_t to)
{
	for (int64_t t = from; t < to; t++)
		m[t] = 1;
}

/*
 * Random gaps, against the model: the list stays sorted, disjoint and
 * non-touching, and covers exactly what was added (while it is not full).
 * W2K_TEST_SEED replays a failing seed.
 */
static void
backfill__gaps_add__merges_like_a_union(void **state)
{
	const char *e = getenv("W2K_TEST_SEED");
	unsigned seed = e ? (unsigned)strtoul(e, NULL, 10) :
	    (unsigned)time(NULL);

	(void)state;
	print_message("seed %u (W2K_TEST_SEED=%u replays)\n", seed, seed);
	srand(seed);
	for (int round = 0; round < 2000; round++) {
		struct backfill_gap g[BACKFILL_MAX_GAPS];
		unsigned char m[SPAN] = { 0 }, got[SPAN] = { 0 };
		size_t n = 0;
		int adds = 1 + rand() % 20;

		for (int i = 0; i < adds; i++) {
			int64_t a = rand() % SPAN, b = rand() % SPAN;

			if (a > b) {
				int64_t t = a;
				a = b;
				b = t;
			}
			model_add(m, a, b);
			n = backfill_gaps_add(g, n, BACKFILL_MAX_GAPS, a, b);
		}
		for (size_t i = 0; i < n; i++) {
			assert_true(g[i].from < g[i].to);
			if (i > 0)
				assert_true(g[i - 1].to < g[i].from);
			model_add(got, g[i].from, g[i].to);
		}
		assert_memory_equal(m, got, SPAN);
	}
}

/* Full: the closest gaps merge; nothing added is ever dropped. */
static void
backfill__gaps_add__full_list_merges_closest(void **state)
{
	struct backfill_gap g[3];
	size_t n = 0;

	(void)state;
	n = backfill_gaps_add(g, n, 3, 0, 10);
	n = backfill_gaps_add(g, n, 3, 100, 110);
	n = backfill_gaps_add(g, n, 3, 115, 120);
	assert_int_equal(n, 3);
	n = backfill_gaps_add(g, n, 3, 300, 310);
	assert_int_equal(n, 3);
	/* 100-110 and 115-120 were closest: one gap now. */
	assert_int_equal(g[0].from, 0);
	assert_int_equal(g[0].to, 10);
	assert_int_equal(g[1].from, 100);
	assert_int_equal(g[1].to, 120);
	assert_int_equal(g[2].from, 300);
	assert_int_equal(g[2].to, 310);
	/* Empty or reversed spans add nothing. */
	assert_int_equal(backfill_gaps_add(g, n, 3, 50, 50), 3);
	assert_int_equal(backfill_gaps_add(g, n, 3, 60, 40), 3);
	/* A list of one that is full grows its one gap. */
	n = 0;
	n = backfill_gaps_add(g, n, 1, 10, 20);
	n = backfill_gaps_add(g, n, 1, 40, 50);
	assert_int_equal(n, 1);
	assert_int_equal(g[0].from, 10);
	assert_int_equal(g[0].to, 50);
}

static void
backfill__judge__ended_inside_and_not_live(void **state)
{
	struct backfill_gap gap = { 1000, 2000 };
	struct restmap_row r = { .id = "1", .session_id = "5", .started = 900 };

	(void)state;
	r.ended = 1500;
	assert_int_equal(backfill_judge(&r, &gap, false, false), BF_PUBLISH);
	assert_int_equal(backfill_judge(&r, &gap, true, false), BF_SKIP_LIVE);
	assert_int_equal(backfill_judge(&r, &gap, false, true), BF_SKIP_SEEN);
	r.ended = 1000;		/* [from, to) */
	assert_int_equal(backfill_judge(&r, &gap, false, false), BF_PUBLISH);
	r.ended = 2000;
	assert_int_equal(backfill_judge(&r, &gap, false, false),
	    BF_SKIP_OUTSIDE);
	r.ended = 999;		/* started before, ended before: live had it */
	assert_int_equal(backfill_judge(&r, &gap, false, false),
	    BF_SKIP_OUTSIDE);
	r.ended = 0;		/* not ended (blank ended_at) */
	assert_int_equal(backfill_judge(&r, &gap, false, false),
	    BF_SKIP_OUTSIDE);
}

static void
backfill__query__filter_order_paging_encoded(void **state)
{
	struct backfill_gap gap = { 1725845669, 1725849269 };
	char q[512];

	(void)state;
	assert_int_equal(backfill_query(q, sizeof(q), &gap, 4 * 3600, 100,
	    190), 0);
	assert_string_equal(q, "filter=started_at%20ge%20%272024-09-08T21:34:29Z"
	    "%27%20and%20started_at%20lt%20%272024-09-09T02:34:29Z%27"
	    "&orderby=started_at%20asc&top=100&skip=190");
	assert_int_equal(backfill_query(q, 20, &gap, 0, 100, 0), W2K_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backfill__gaps_add__merges_like_a_union),
		cmocka_unit_test(backfill__gaps_add__full_list_merges_closest),
		cmocka_unit_test(backfill__judge__ended_inside_and_not_live),
		cmocka_unit_test(backfill__query__filter_order_paging_encoded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
