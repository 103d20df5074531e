/*
 * test_ksink.c — the pure parts of the producer: the message.max.bytes it
 * derives from pbx.max_frame (or takes from kafka.properties), and the
 * labels of refusal reasons (metric label values: a fixed set).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ksink.h"

static struct cfg_pbx pbx[2];
static char *names[2], *values[2];

static void
cfg_with(struct cfg *c, size_t npbx, const char *prop, const char *value)
{
	memset(c, 0, sizeof(*c));
	c->pbx = pbx;
	c->npbx = npbx;
	if (prop != NULL) {
		names[0] = (char *)prop;
		values[0] = (char *)value;
		c->kafka.prop_names.v = names;
		c->kafka.prop_values.v = values;
		c->kafka.prop_names.n = c->kafka.prop_values.n = 1;
	}
}

/* The default max_frame (4 MiB): a quarter more and 64 KiB. */
static void
ksink__message_max_bytes__follows_max_frame(void **state)
{
	struct cfg c;

	(void)state;
	pbx[0].max_frame = 4u << 20;
	pbx[1].max_frame = 1u << 20;
	cfg_with(&c, 2, NULL, NULL);
	assert_int_equal(ksink_message_max_bytes(&c),
	    (4u << 20) + (1u << 20) + 65536);
	/* The largest of the PBXs counts. */
	pbx[1].max_frame = 8u << 20;
	assert_int_equal(ksink_message_max_bytes(&c),
	    (8u << 20) + (2u << 20) + 65536);
	/* Never below librdkafka's default, never above its maximum. */
	pbx[0].max_frame = pbx[1].max_frame = 4096;
	assert_int_equal(ksink_message_max_bytes(&c), 1000000);
	pbx[0].max_frame = 1024u << 20;
	assert_int_equal(ksink_message_max_bytes(&c), 1000000000);
}

/* The operator's value wins; one that is not a number is left to
 * librdkafka's own check (0). Other properties do not count. */
static void
ksink__message_max_bytes__operator_wins(void **state)
{
	struct cfg c;

	(void)state;
	pbx[0].max_frame = 4u << 20;
	cfg_with(&c, 1, "message.max.bytes", "2000");
	assert_int_equal(ksink_message_max_bytes(&c), 2000);
	cfg_with(&c, 1, "message.max.bytes", "2k");
	assert_int_equal(ksink_message_max_bytes(&c), 0);
	cfg_with(&c, 1, "linger.ms", "5");
	assert_int_equal(ksink_message_max_bytes(&c),
	    (4u << 20) + (1u << 20) + 65536);
}

static void
ksink__refusal_names__fixed_set(void **state)
{
	(void)state;
	assert_string_equal(ksink_refusal_name(KSINK_REF_TOPIC_AUTH),
	    "topic_authorization_failed");
	assert_string_equal(ksink_refusal_name(KSINK_REF_CLUSTER_AUTH),
	    "cluster_authorization_failed");
	assert_string_equal(ksink_refusal_name(KSINK_REF_SASL_AUTH),
	    "sasl_authentication_failed");
	assert_string_equal(ksink_refusal_name(KSINK_REF_UNKNOWN_TOPIC),
	    "unknown_topic");
	assert_string_equal(ksink_refusal_name(KSINK_REF_INVALID_TOPIC),
	    "invalid_topic");
	assert_string_equal(ksink_refusal_name(KSINK_REF_COUNT), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ksink__message_max_bytes__follows_max_frame),
		cmocka_unit_test(ksink__message_max_bytes__operator_wins),
		cmocka_unit_test(ksink__refusal_names__fixed_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
