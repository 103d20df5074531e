/*
 * test_metrics.c — the exposition and the readiness verdict rendered from
 * made-up statistics (metrics_render_view(), metrics_readyz_view()): exact
 * sample lines, cumulative buckets, label escaping, fixed label sets in
 * full, the dry-run shape, the "other" topic slot, the buffer bound, and
 * the live-object path with no session, no producer and no spool.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "metrics.h"
#include "w2k.h"


static void
assert_line(const char *text, const char *line)
{
	char want[512];
	const char *p = text;
	size_t n;

	n = (size_t)snprintf(want, sizeof(want), "%s\n", line);
	while ((p = strstr(p, want)) != NULL) {
		if (p == text || p[-1] == '\n')
			return;
		p += n;
	}
	fail_msg("line not found: %s", line);
}

static size_t
count_prefix(const char *text, const char *prefix)
{
	size_t n = 0, l = strlen(prefix);

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, prefix, l) == 0)
			n++;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return n;
}

/* Two sessions, a producer with some history, a spool with a backlog. */
struct fixture {
	struct pbx_stats	 st[2];
	struct metrics_pbx	 pbx[2];
	struct ksink_stats	 ks;
	struct spool_stats	 sp;
	struct metrics_view	 v;
	struct metrics_buf	 b;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->st[0].connects_ok = 3;
	f->st[0].connects_failed = 2;
	f->st[0].connect_failures[PBX_DISC_TLS] = 1;
	f->st[0].connect_failures[PBX_DISC_TIMEOUT] = 1;
	f->st[0].disconnects[PBX_DISC_IDLE] = 1;
	f->st[0].disconnects[PBX_DISC_CLOSED] = 1;
	f->st[0].frames = 40;
	f->st[0].events_by_type[norm_type_index("call_start")] = 25;
	f->st[0].events_by_type[NORM_TYPE_OTHER] = 2;
	f->st[0].dead_by_reason[PBX_DL_INVALID_JSON] = 4;
	f->pbx[0] = (struct metrics_pbx){ "hq", PBX_SUBSCRIBED, &f->st[0],
	    NULL, NULL, 0 };
	f->pbx[1] = (struct metrics_pbx){ "branch-2", PBX_WAITING, &f->st[1],
	    NULL, NULL, 0 };

	f->ks.produced = 7;
	f->ks.topic_name[0] = "portsip.calls";
	f->ks.topic_name[1] = "portsip.deadletter";
	f->ks.ntopics = 2;
	f->ks.topic_produced[0] = 5;
	f->ks.topic_produced[1] = 1;
	f->ks.topic_produced[2] = 1;	/* the "other" slot */
	f->ks.failed[KSINK_FAIL_TRANSPORT] = 6;
	f->ks.retried = 6;
	f->ks.dropped = 1;
	f->ks.pending = 9;
	f->ks.up = true;
	f->ks.rk.msgs = 12;
	f->ks.rk.bytes = 3456;
	f->ks.rk.nbrokers = 2;
	snprintf(f->ks.rk.broker[0].name, sizeof(f->ks.rk.broker[0].name),
	    "k1:9092/1");
	f->ks.rk.broker[0].up = true;
	snprintf(f->ks.rk.broker[1].name, sizeof(f->ks.rk.broker[1].name),
	    "k2:9092/2");
	histo_observe(&f->ks.latency, 0.0005);	/* ≤ 1 ms */
	histo_observe(&f->ks.latency, 0.003);	/* ≤ 5 ms */
	histo_observe(&f->ks.latency, 0.003);
	histo_observe(&f->ks.latency, 2.0);	/* ≤ 2.5 s */
	histo_observe(&f->ks.latency, 120.0);	/* +Inf */
	histo_observe(&f->ks.ack_latency, 0.001953125);	/* 2^-9 s: ≤ 2 ms */
	histo_observe(&f->ks.ack_latency, 0.015625);	/* 2^-6 s: ≤ 25 ms */

	f->sp.records = 100;
	f->sp.bytes = 65536;
	f->sp.dropped = 3;
	f->v.now_us = 1800000000LL * 1000000;
	f->sp.oldest_us = f->v.now_us - 5500000;	/* 5.5 s old */

	f->v.pbx = f->pbx;
	f->v.npbx = 2;
	f->v.ks = &f->ks;
	f->v.spool = &f->sp;
	f->v.start_us = 1700000000123456LL;
	f->v.rss_bytes = 1 << 20;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	metrics_buf_free(&f->b);
	free(f);
	return 0;
}

static void
metrics__escape_label__escapes_backslash_quote_newline(void **state)
{
	struct metrics_buf b = { 0 };

	(void)state;
	assert_int_equal(metrics_escape_label(&b, "a\\b\"c\nd/é"), 0);
	assert_string_equal(b.p, "a\\\\b\\\"c\\nd/é");
	assert_int_equal(b.len, strlen(b.p));
	metrics_buf_reset(&b);
	assert_int_equal(metrics_escape_label(&b, ""), 0);
	assert_string_equal(b.p, "");
	metrics_buf_free(&b);
	metrics_buf_free(NULL);
}

static void
metrics__render_view__every_sample_as_expected(void **state)
{
	struct fixture *f = *state;
	const char *t;

	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	t = f->b.p;

	assert_line(t, "# TYPE wsi2kafka_pbx_up gauge");
	assert_line(t, "wsi2kafka_pbx_up{pbx=\"hq\"} 1");
	assert_line(t, "wsi2kafka_pbx_up{pbx=\"branch-2\"} 0");
	assert_line(t, "wsi2kafka_pbx_state{pbx=\"branch-2\",state=\"waiting\"} 1");
	assert_line(t, "wsi2kafka_pbx_state{pbx=\"branch-2\",state=\"subscribed\"} 0");
	assert_line(t, "wsi2kafka_pbx_connects_total{pbx=\"hq\",result=\"ok\"} 3");
	assert_line(t, "wsi2kafka_pbx_connects_total{pbx=\"hq\",result=\"failed\"} 2");
	assert_line(t, "wsi2kafka_pbx_connect_failures_total{pbx=\"hq\",reason=\"tls\"} 1");
	assert_line(t, "wsi2kafka_pbx_connect_failures_total{pbx=\"hq\",reason=\"timeout\"} 1");
	assert_line(t, "wsi2kafka_pbx_connect_failures_total{pbx=\"hq\",reason=\"error\"} 0");
	assert_line(t, "wsi2kafka_pbx_disconnects_total{pbx=\"hq\",reason=\"idle\"} 1");
	assert_line(t, "wsi2kafka_pbx_disconnects_total{pbx=\"hq\",reason=\"tls\"} 0");
	assert_line(t, "wsi2kafka_pbx_frames_total{pbx=\"hq\"} 40");
	assert_line(t, "wsi2kafka_events_received_total{pbx=\"hq\",type=\"call_start\"} 25");
	assert_line(t, "wsi2kafka_events_received_total{pbx=\"hq\",type=\"other\"} 2");
	assert_line(t, "wsi2kafka_dead_letters_total{pbx=\"hq\",reason=\"invalid_json\"} 4");
	assert_line(t, "wsi2kafka_dead_letters_total{pbx=\"branch-2\",reason=\"no_route\"} 0");

	/* Fixed label sets in full, for every session. */
	assert_int_equal(count_prefix(t, "wsi2kafka_events_received_total{"),
	    2 * NORM_NTYPES);
	assert_int_equal(count_prefix(t, "wsi2kafka_pbx_disconnects_total{"),
	    2 * PBX_DISC_COUNT);
	assert_int_equal(count_prefix(t,
	    "wsi2kafka_pbx_connect_failures_total{"), 2 * 3);
	assert_int_equal(count_prefix(t, "wsi2kafka_dead_letters_total{"),
	    2 * PBX_DL_COUNT);
	assert_int_equal(count_prefix(t, "wsi2kafka_pbx_state{"), 2 * 5);

	assert_line(t, "wsi2kafka_kafka_up 1");
	assert_line(t, "wsi2kafka_records_produced_total{topic=\"portsip.calls\"} 5");
	assert_line(t, "wsi2kafka_records_produced_total{topic=\"portsip.deadletter\"} 1");
	assert_line(t, "wsi2kafka_records_produced_total{topic=\"other\"} 1");
	assert_line(t, "wsi2kafka_records_failed_total{reason=\"transport\"} 6");
	assert_line(t, "wsi2kafka_records_failed_total{reason=\"refused\"} 0");
	assert_int_equal(count_prefix(t, "wsi2kafka_records_failed_total{"),
	    KSINK_FAIL_COUNT);
	assert_line(t, "wsi2kafka_records_retried_total 6");
	assert_line(t, "wsi2kafka_records_lost_total 1");
	assert_line(t, "wsi2kafka_kafka_pending_records 9");
	assert_line(t, "wsi2kafka_kafka_queue_records 12");
	assert_line(t, "wsi2kafka_kafka_queue_bytes 3456");
	assert_line(t, "wsi2kafka_kafka_broker_up{broker=\"k1:9092/1\"} 1");
	assert_line(t, "wsi2kafka_kafka_broker_up{broker=\"k2:9092/2\"} 0");

	/* Cumulative buckets, +Inf = count. */
	assert_line(t, "# TYPE wsi2kafka_delivery_latency_seconds histogram");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"0.0001\"} 0");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"0.00025\"} 0");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"0.0005\"} 1");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"0.001\"} 1");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"0.0025\"} 1");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"0.003\"} 3");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"0.005\"} 3");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"1\"} 3");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"2.5\"} 4");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"10\"} 4");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"60\"} 4");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"+Inf\"} 5");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_count 5");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_sum 122.0065");
	assert_int_equal(count_prefix(t,
	    "wsi2kafka_delivery_latency_seconds_bucket{"), HISTO_NBUCKETS + 1);

	/* The librdkafka-and-broker part, its own family. */
	assert_line(t, "# TYPE wsi2kafka_kafka_ack_latency_seconds histogram");
	assert_line(t, "wsi2kafka_kafka_ack_latency_seconds_bucket{le=\"0.0015\"} 0");
	assert_line(t, "wsi2kafka_kafka_ack_latency_seconds_bucket{le=\"0.002\"} 1");
	assert_line(t, "wsi2kafka_kafka_ack_latency_seconds_bucket{le=\"0.015\"} 1");
	assert_line(t, "wsi2kafka_kafka_ack_latency_seconds_bucket{le=\"0.025\"} 2");
	assert_line(t, "wsi2kafka_kafka_ack_latency_seconds_bucket{le=\"+Inf\"} 2");
	assert_line(t, "wsi2kafka_kafka_ack_latency_seconds_count 2");
	assert_line(t, "wsi2kafka_kafka_ack_latency_seconds_sum 0.017578125");
	assert_int_equal(count_prefix(t,
	    "wsi2kafka_kafka_ack_latency_seconds_bucket{"), HISTO_NBUCKETS + 1);

	assert_line(t, "wsi2kafka_spool_records 100");
	assert_line(t, "wsi2kafka_spool_bytes 65536");
	assert_line(t, "wsi2kafka_spool_oldest_age_seconds 5.5");
	assert_line(t, "wsi2kafka_spool_dropped_total 3");
	assert_line(t, "wsi2kafka_process_start_time_seconds 1700000000.123");
	assert_line(t, "wsi2kafka_process_resident_memory_bytes 1048576");
	assert_line(t, "wsi2kafka_build_info{version=\"" W2K_VERSION "\"} 1");
}

/* Every family: HELP right before TYPE, each once; text ends in '\n'. */
static void
metrics__render_view__help_and_type_for_every_family(void **state)
{
	struct fixture *f = *state;
	size_t helps, types;
	const char *t;

	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	t = f->b.p;
	helps = count_prefix(t, "# HELP ");
	types = count_prefix(t, "# TYPE ");
	assert_int_equal(helps, types);
	assert_int_equal(helps, 32);
	for (const char *p = strstr(t, "# TYPE "); p != NULL;
	    p = strstr(p + 1, "\n# TYPE ")) {
		const char *line = *p == '\n' ? p + 1 : p;
		const char *prev = line - 2;

		while (prev > t && *prev != '\n')
			prev--;
		if (*prev == '\n')
			prev++;
		assert_true(strncmp(prev, "# HELP ", 7) == 0);
		/* Same name on both lines. */
		assert_true(strncmp(prev + 7, line + 7,
		    strcspn(line + 7, " ")) == 0);
	}
	assert_int_equal(t[f->b.len - 1], '\n');
	assert_int_equal(strlen(t), f->b.len);
}

static void
metrics__render_view__labels_escaped(void **state)
{
	struct fixture *f = *state;

	f->pbx[1].name = "we\"ird\\na\nme";
	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	assert_line(f->b.p, "wsi2kafka_pbx_up{pbx=\"we\\\"ird\\\\na\\nme\"} 0");
}

/* Dry run: no producer, no spool — every family still there. */
static void
metrics__render_view__dry_run_renders_zeros(void **state)
{
	struct fixture *f = *state;
	const char *t;

	f->v.ks = NULL;
	f->v.spool = NULL;
	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	t = f->b.p;
	assert_line(t, "wsi2kafka_kafka_up 0");
	assert_line(t, "# TYPE wsi2kafka_records_produced_total counter");
	assert_int_equal(count_prefix(t, "wsi2kafka_records_produced_total"), 0);
	assert_int_equal(count_prefix(t, "wsi2kafka_kafka_broker_up"), 0);
	assert_line(t, "wsi2kafka_records_failed_total{reason=\"other\"} 0");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_bucket{le=\"+Inf\"} 0");
	assert_line(t, "wsi2kafka_delivery_latency_seconds_count 0");
	assert_line(t, "wsi2kafka_spool_records 0");
	assert_line(t, "wsi2kafka_spool_oldest_age_seconds 0");
	assert_int_equal(count_prefix(t, "# HELP "), 32);
}

/* Contract §8: the backfill families only with backfill, per PBX. */
static void
metrics__backfill__rendered_only_with_backfill(void **state)
{
	struct fixture *f = *state;
	struct backfill_stats st = { .records = 27, .gap_open_s = 42 };
	struct metrics_bf bf = { .name = "hq", .st = &st };
	const char *t;

	st.requests[BF_ST_2XX] = 9;
	st.requests[BF_ST_429] = 3;
	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	assert_int_equal(count_prefix(f->b.p, "wsi2kafka_backfill"), 0);
	assert_int_equal(count_prefix(f->b.p, "# HELP wsi2kafka_backfill"), 0);

	metrics_buf_reset(&f->b);
	f->v.bf = &bf;
	f->v.nbf = 1;
	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	t = f->b.p;
	assert_line(t, "# TYPE wsi2kafka_backfill_records_total counter");
	assert_line(t, "wsi2kafka_backfill_records_total{pbx=\"hq\"} 27");
	assert_line(t, "wsi2kafka_backfill_requests_total{pbx=\"hq\","
	    "status=\"2xx\"} 9");
	assert_line(t, "wsi2kafka_backfill_requests_total{pbx=\"hq\","
	    "status=\"429\"} 3");
	assert_line(t, "wsi2kafka_backfill_requests_total{pbx=\"hq\","
	    "status=\"error\"} 0");
	assert_int_equal(count_prefix(t, "wsi2kafka_backfill_requests_total{"),
	    BF_ST_COUNT);
	assert_line(t, "# TYPE wsi2kafka_backfill_gap_seconds gauge");
	assert_line(t, "wsi2kafka_backfill_gap_seconds{pbx=\"hq\"} 42");
	f->v.bf = NULL;
	f->v.nbf = 0;
}

/* A configured topic literally named "other" absorbs the other slot. */
static void
metrics__render_view__topic_named_other_is_one_series(void **state)
{
	struct fixture *f = *state;

	f->ks.topic_name[1] = "other";
	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	assert_line(f->b.p, "wsi2kafka_records_produced_total{topic=\"other\"} 2");
	assert_int_equal(count_prefix(f->b.p,
	    "wsi2kafka_records_produced_total{topic=\"other\"}"), 1);
}

static void
metrics__render_view__bound_gives_efull(void **state)
{
	struct fixture *f = *state;
	struct metrics_buf b = { .max = 1000 };

	assert_int_equal(metrics_render_view(&b, &f->v), W2K_EFULL);
	assert_true(b.len < 1000);
	metrics_buf_free(&b);
	/* The text appends: a second rendering after a reset is the same. */
	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	{
		size_t len = f->b.len;

		metrics_buf_reset(&f->b);
		assert_int_equal(f->b.len, 0);
		assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
		assert_int_equal(f->b.len, len);
	}
}

static cJSON *
readyz(struct fixture *f, bool *ready)
{
	cJSON *j;

	metrics_buf_reset(&f->b);
	assert_int_equal(metrics_readyz_view(&f->b, &f->v, ready), 0);
	assert_int_equal(f->b.p[f->b.len - 1], '\n');
	j = cJSON_ParseWithLength(f->b.p, f->b.len);
	assert_non_null(j);
	assert_true(cJSON_IsBool(cJSON_GetObjectItem(j, "ready")));
	assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(j, "ready")), *ready);
	return j;
}

static void
metrics__readyz_view__names_what_is_not_ready(void **state)
{
	struct fixture *f = *state;
	cJSON *j, *ns, *k;
	bool ready;

	/* branch-2 waits: not ready, named; Kafka reachable. */
	j = readyz(f, &ready);
	assert_false(ready);
	ns = cJSON_GetObjectItem(j, "not_subscribed");
	assert_int_equal(cJSON_GetArraySize(ns), 1);
	assert_string_equal(cJSON_GetArrayItem(ns, 0)->valuestring,
	    "branch-2");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "pbx")), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(
	    cJSON_GetObjectItem(j, "pbx"), 1), "state")->valuestring,
	    "waiting");
	k = cJSON_GetObjectItem(j, "kafka");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(k, "reachable")));
	cJSON_Delete(j);

	/* Both subscribed: ready. */
	f->pbx[1].state = PBX_SUBSCRIBED;
	j = readyz(f, &ready);
	assert_true(ready);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j,
	    "not_subscribed")), 0);
	cJSON_Delete(j);

	/* Kafka unreachable: not ready, said so. */
	f->ks.up = false;
	j = readyz(f, &ready);
	assert_false(ready);
	k = cJSON_GetObjectItem(j, "kafka");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(k, "reachable")));
	cJSON_Delete(j);

	/* Dry run: Kafka does not count. */
	f->v.ks = NULL;
	j = readyz(f, &ready);
	assert_true(ready);
	k = cJSON_GetObjectItem(j, "kafka");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(k, "enabled")));
	cJSON_Delete(j);

	/* Names are JSON-escaped. */
	f->pbx[0].name = "a\"b\\c\x01";
	f->pbx[0].state = PBX_CONNECTING;
	j = readyz(f, &ready);
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j,
	    "not_subscribed"), 0)->valuestring, "a\"b\\c\x01");
	cJSON_Delete(j);
}

/*
 * A topic refusing records (contract §7, §8): counted by topic and reason
 * (every reason of a topic that refused once), the gauge, and /readyz 503
 * naming the topic with its reason; a topic that refused before but takes
 * records now keeps its counts and does not make /readyz 503.
 */
static void
metrics__refusals__counted_and_named_by_readyz(void **state)
{
	struct fixture *f = *state;
	struct ksink_topic_refusals ref[2];
	cJSON *j, *rt;
	bool ready;
	const char *t;

	memset(ref, 0, sizeof(ref));
	ref[0].topic = "portsip.calls";
	ref[0].count[KSINK_REF_TOPIC_AUTH] = 4;
	ref[0].refused = true;
	ref[0].reason = KSINK_REF_TOPIC_AUTH;
	ref[0].waiting = 17;
	ref[1].topic = "portsip.deadletter";
	ref[1].count[KSINK_REF_UNKNOWN_TOPIC] = 2;
	f->ks.refusals = ref;
	f->ks.nrefusals = 2;
	f->ks.nrefused = 1;
	f->pbx[1].state = PBX_SUBSCRIBED;

	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	t = f->b.p;
	assert_line(t, "wsi2kafka_kafka_refusals_total{topic=\"portsip.calls\","
	    "reason=\"topic_authorization_failed\"} 4");
	assert_line(t, "wsi2kafka_kafka_refusals_total{topic=\"portsip.calls\","
	    "reason=\"unknown_topic\"} 0");
	assert_line(t, "wsi2kafka_kafka_refusals_total{topic=\"portsip."
	    "deadletter\",reason=\"unknown_topic\"} 2");
	assert_int_equal(count_prefix(t, "wsi2kafka_kafka_refusals_total{"),
	    2 * KSINK_REF_COUNT);
	assert_line(t, "wsi2kafka_kafka_topic_refusing{topic=\"portsip.calls\"} 1");
	assert_line(t, "wsi2kafka_kafka_topic_refusing{topic=\"portsip."
	    "deadletter\"} 0");
	assert_line(t, "wsi2kafka_kafka_topic_waiting_records{topic=\"portsip."
	    "calls\"} 17");

	j = readyz(f, &ready);
	assert_false(ready);
	rt = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "kafka"),
	    "refused_topics");
	assert_int_equal(cJSON_GetArraySize(rt), 1);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(rt, 0),
	    "topic")->valuestring, "portsip.calls");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(rt, 0),
	    "reason")->valuestring, "topic_authorization_failed");
	cJSON_Delete(j);

	/* It takes records again: ready; the counts stay. */
	ref[0].refused = false;
	f->ks.nrefused = 0;
	j = readyz(f, &ready);
	assert_true(ready);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
	    cJSON_GetObjectItem(j, "kafka"), "refused_topics")), 0);
	cJSON_Delete(j);
	f->ks.refusals = NULL;
	f->ks.nrefusals = 0;
}

/*
 * Subscriptions (contract §6, §8): one series per PBX, topics label and
 * state; two subscriptions naming the same topics add up; a rejected one
 * makes /readyz 503 and is named there, pending ones do not.
 */
static void
metrics__subscriptions__states_counted_and_rejected_named(void **state)
{
	struct fixture *f = *state;
	const char *ext[] = { "extension_events" };
	const char *cdr[] = { "cdr_events", "queue_events" };
	struct cfg_sub subs[3];
	enum pbx_sub_state st[3] = {
		PBX_SUB_ACTIVE, PBX_SUB_REJECTED, PBX_SUB_PENDING,
	};
	cJSON *j, *rs;
	bool ready;
	const char *t;

	memset(subs, 0, sizeof(subs));
	subs[0].topics = (struct cfg_strv){ (char **)ext, 1 };
	subs[1].topics = (struct cfg_strv){ (char **)cdr, 2 };
	subs[2].topics = (struct cfg_strv){ (char **)ext, 1 };
	f->pbx[0].subs = subs;
	f->pbx[0].sub_state = st;
	f->pbx[0].nsubs = 3;
	f->pbx[1].state = PBX_SUBSCRIBED;

	assert_int_equal(metrics_render_view(&f->b, &f->v), 0);
	t = f->b.p;
	assert_line(t, "wsi2kafka_pbx_subscriptions{pbx=\"hq\",topics=\""
	    "extension_events\",state=\"active\"} 1");
	assert_line(t, "wsi2kafka_pbx_subscriptions{pbx=\"hq\",topics=\""
	    "extension_events\",state=\"pending\"} 1");
	assert_line(t, "wsi2kafka_pbx_subscriptions{pbx=\"hq\",topics=\""
	    "extension_events\",state=\"rejected\"} 0");
	assert_line(t, "wsi2kafka_pbx_subscriptions{pbx=\"hq\",topics=\""
	    "cdr_events,queue_events\",state=\"rejected\"} 1");
	assert_int_equal(count_prefix(t, "wsi2kafka_pbx_subscriptions{"),
	    2 * PBX_SUB_STATE_COUNT);

	j = readyz(f, &ready);
	assert_false(ready);
	rs = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j,
	    "pbx"), 0), "rejected_subscriptions");
	assert_int_equal(cJSON_GetArraySize(rs), 1);
	assert_string_equal(cJSON_GetArrayItem(rs, 0)->valuestring,
	    "cdr_events,queue_events");
	cJSON_Delete(j);

	/* Accepted later: ready, though one is still pending. */
	st[1] = PBX_SUB_ACTIVE;
	j = readyz(f, &ready);
	assert_true(ready);
	cJSON_Delete(j);
	f->pbx[0].nsubs = 0;
}

/* The live path with nothing live: no session, no producer, no spool. */
static void
metrics__render__live_objects_absent(void **state)
{
	struct metrics_src src = { .start_us = 1700000000000000LL };
	struct metrics_buf b = { 0 };
	bool ready = false;

	(void)state;
	assert_int_equal(metrics_render(&b, &src), 0);
	assert_line(b.p, "wsi2kafka_kafka_up 0");
	assert_line(b.p, "wsi2kafka_spool_records 0");
	assert_line(b.p, "wsi2kafka_process_start_time_seconds 1700000000.000");
	assert_int_equal(count_prefix(b.p, "wsi2kafka_pbx_up{"), 0);
	metrics_buf_reset(&b);
	assert_int_equal(metrics_readyz(&b, &src, &ready), 0);
	assert_true(ready);
	metrics_buf_free(&b);
	assert_true(metrics_rss_bytes() > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    metrics__escape_label__escapes_backslash_quote_newline),
		cmocka_unit_test_setup_teardown(
		    metrics__render_view__every_sample_as_expected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__render_view__help_and_type_for_every_family,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__render_view__labels_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__render_view__dry_run_renders_zeros, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__render_view__topic_named_other_is_one_series,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__render_view__bound_gives_efull, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__readyz_view__names_what_is_not_ready, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__refusals__counted_and_named_by_readyz, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__subscriptions__states_counted_and_rejected_named,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    metrics__backfill__rendered_only_with_backfill, setup,
		    teardown),
		cmocka_unit_test(metrics__render__live_objects_absent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
