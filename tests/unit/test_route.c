/*
 * test_route.c — route_new()/route_lookup(): the contract's default routes
 * (§4), first match wins, '|' alternatives, and the patterns refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "w2k.h"

#define R(m, t)	{ .match = (char *)(m), .topic = (char *)(t) }

/* Contract §4: the defaults when `routes` is omitted. */
static const struct cfg_route defaults[] = {
	R("call_cdr", "portsip.cdr"),
	R("call_*|target_*|cdr_target_*", "portsip.calls"),
	R("extension_*", "portsip.extensions"),
	R("queue_*", "portsip.queues"),
	R("*", "portsip.events"),
};

static void
route__contract_defaults__expected_topics(void **state)
{
	static const struct {
		const char *type, *topic;
	} t[] = {
		{ "call_cdr", "portsip.cdr" },
		{ "call_start", "portsip.calls" },
		{ "call_update_info", "portsip.calls" },
		{ "call_hold", "portsip.calls" },
		{ "call_", "portsip.calls" },
		{ "target_add", "portsip.calls" },
		{ "target_ringing", "portsip.calls" },
		{ "cdr_target_end", "portsip.calls" },
		{ "cdr_target_add", "portsip.calls" },
		{ "extension_status", "portsip.extensions" },
		{ "extension_created", "portsip.extensions" },
		{ "queue_status", "portsip.queues" },
		{ "queue_destroy", "portsip.queues" },
		{ "foo", "portsip.events" },
		{ "", "portsip.events" },
		{ "call", "portsip.events" },
		{ "Call_cdr", "portsip.events" },
		{ "call_cdr_x", "portsip.calls" },
		{ "trunk_connected", "portsip.events" },
		{ "a/b", "portsip.events" },
		{ ".hidden", "portsip.events" },
	};
	struct route_table *rt;
	size_t bad = 99, i;

	(void)state;
	assert_int_equal(route_new(defaults, W2K_ARRAY_SIZE(defaults), &rt,
	    &bad), 0);
	assert_non_null(rt);
	assert_int_equal(bad, 99);
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++) {
		const char *topic = route_lookup(rt, t[i].type);

		assert_non_null(topic);
		assert_string_equal(topic, t[i].topic);
	}
	route_free(rt);
}

static void
route__no_match__null(void **state)
{
	static const struct cfg_route r[] = {
		R("call_*", "calls"),
		R("queue_status|queue_agent_status", "queues"),
		R("ext?nsion_[sc]*", "ext"),
	};
	struct route_table *rt;

	(void)state;
	assert_int_equal(route_new(r, W2K_ARRAY_SIZE(r), &rt, NULL), 0);
	assert_null(route_lookup(rt, "foo"));
	assert_null(route_lookup(rt, "queue_created"));
	assert_null(route_lookup(rt, "queue_status_x"));
	assert_null(route_lookup(rt, "extension_presence"));
	assert_null(route_lookup(rt, "calls"));
	assert_null(route_lookup(rt, NULL));
	assert_string_equal(route_lookup(rt, "queue_agent_status"), "queues");
	assert_string_equal(route_lookup(rt, "extension_status"), "ext");
	assert_string_equal(route_lookup(rt, "extension_call"), "ext");
	assert_null(route_lookup(NULL, "call_cdr"));
	route_free(rt);
}

static void
route__first_match__wins(void **state)
{
	static const struct cfg_route r[] = {
		R("*", "all"),
		R("call_cdr", "never"),
	};
	struct route_table *rt;

	(void)state;
	assert_int_equal(route_new(r, W2K_ARRAY_SIZE(r), &rt, NULL), 0);
	assert_string_equal(route_lookup(rt, "call_cdr"), "all");
	route_free(rt);
}

static void
route__empty_table__matches_nothing(void **state)
{
	struct route_table *rt;

	(void)state;
	assert_int_equal(route_new(NULL, 0, &rt, NULL), 0);
	assert_non_null(rt);
	assert_null(route_lookup(rt, "call_cdr"));
	route_free(rt);
	route_free(NULL);
}

static void
route__input_copied__caller_may_free(void **state)
{
	struct cfg_route r[1];
	struct route_table *rt;

	(void)state;
	r[0].match = strdup("a|b*");
	r[0].topic = strdup("t");
	assert_int_equal(route_new(r, 1, &rt, NULL), 0);
	memset(r[0].match, 'x', strlen(r[0].match));
	free(r[0].match);
	free(r[0].topic);
	assert_string_equal(route_lookup(rt, "bc"), "t");
	assert_string_equal(route_lookup(rt, "a"), "t");
	assert_null(route_lookup(rt, "x"));
	route_free(rt);
}

static void
route__bad_patterns__einval_with_index(void **state)
{
	static const char *const bad[] = {
		"", "|", "a|", "|a", "a||b", "||",
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(bad); i++) {
		struct cfg_route r[3] = {
			R("call_*", "ok"),
			R("queue_*", "ok"),
			R(bad[i], "bad"),
		};
		struct route_table *rt = (struct route_table *)&rt;
		size_t idx = 99;

		assert_int_equal(route_new(r, 3, &rt, &idx), W2K_EINVAL);
		assert_null(rt);
		assert_int_equal(idx, 2);
	}
}

static void
route__missing_fields__einval(void **state)
{
	struct cfg_route r[2] = { R("a", "t"), R(NULL, "t") };
	struct route_table *rt;
	size_t idx = 99;

	(void)state;
	assert_int_equal(route_new(r, 2, &rt, &idx), W2K_EINVAL);
	assert_int_equal(idx, 1);
	assert_null(rt);
	r[1].match = (char *)"b";
	r[0].topic = NULL;
	assert_int_equal(route_new(r, 2, &rt, &idx), W2K_EINVAL);
	assert_int_equal(idx, 0);
	assert_int_equal(route_new(NULL, 1, &rt, NULL), W2K_EINVAL);
	assert_null(rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(route__contract_defaults__expected_topics),
		cmocka_unit_test(route__no_match__null),
		cmocka_unit_test(route__first_match__wins),
		cmocka_unit_test(route__empty_table__matches_nothing),
		cmocka_unit_test(route__input_copied__caller_may_free),
		cmocka_unit_test(route__bad_patterns__einval_with_index),
		cmocka_unit_test(route__missing_fields__einval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
