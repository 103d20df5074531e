/*
 * test_restmap.c — REST answers (portsip-rest-cdr.md) → tokens, pages and
 * call_cdr records (contract §10): the field mapping, the id rule (same
 * row, same id), times, and what is refused.
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

#include <cjson/cJSON.h>
#include <openssl/sha.h>

#include "restmap.h"
#include "w2k.h"

/* The example row of portsip-rest-cdr.md §3, plus session_id (/calllogs). */
static const char row_text[] =
    "{\"id\":\"878156644691742720\",\"session_id\":\"885337248273272832\","
    "\"caller\":\"102\",\"caller_domain\":\"test.com\","
    "\"caller_display_name\":\"Kelly Cruickshank\",\"callee\":\"103\","
    "\"callee_domain\":\"test.com\",\"callee_display_name\":\"Lucas\","
    "\"started_at\":\"2024-08-20T06:00:59.457188Z\","
    "\"rang_at\":\"2024-08-20T06:00:59.543647Z\","
    "\"answered_at\":\"2024-08-20T06:01:01.965027Z\","
    "\"ended_at\":\"2024-08-20T06:01:36.158919Z\","
    "\"call_id\":\"JooRSqaUcdwZnsD7DNgA3Q..\",\"direction\":\"EXTENSION_CALL\","
    "\"end_reason\":\"CALLER_DISCONNECT\",\"reroute_reason\":\"\","
    "\"status_code\":0,\"destination\":\"\",\"outbound_caller_id\":\"\","
    "\"did_cid\":\"18800\",\"trunk\":\"t1\",\"duration\":35}";

static void
restmap__time__rfc3339_forms(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(restmap_time("2024-08-20T06:00:59.457188Z", &t), 0);
	assert_int_equal(t, 1724133659);
	assert_int_equal(restmap_time("2024-08-20T06:00:59Z", &t), 0);
	assert_int_equal(t, 1724133659);
	assert_int_equal(restmap_time("2024-08-20 06:00:59", &t), 0);
	assert_int_equal(t, 1724133659);
	assert_int_equal(restmap_time("2024-08-20T14:00:59+08:00", &t), 0);
	assert_int_equal(t, 1724133659);
	assert_int_equal(restmap_time("2024-08-19T23:00:59-07:00", &t), 0);
	assert_int_equal(t, 1724133659);
	assert_int_equal(restmap_time("", &t), W2K_EINVAL);
	assert_int_equal(restmap_time("2024-13-20T06:00:59Z", &t), W2K_EINVAL);
	assert_int_equal(restmap_time("2024-08-20T06:00:59.Z", &t), W2K_EINVAL);
	assert_int_equal(restmap_time("2024-08-20T06:00:59Zx", &t), W2K_EINVAL);
	assert_int_equal(restmap_time("2024-08-20T06:00", &t), W2K_EINVAL);
	assert_int_equal(restmap_time(NULL, &t), W2K_EINVAL);
}

/* fmt then parse gives the same second, for random times (seed printed). */
static void
restmap__time__format_round_trips(void **state)
{
	const char *e = getenv("W2K_TEST_SEED");
	unsigned seed = e ? (unsigned)strtoul(e, NULL, 10) :
	    (unsigned)time(NULL);
	char buf[32], ref[32];
	int64_t t, back;

	(void)state;
	print_message("seed %u (W2K_TEST_SEED=%u replays)\n", seed, seed);
	srand(seed);
	for (int i = 0; i < 100000; i++) {
		time_t tt;
		struct tm tm;

		t = ((int64_t)rand() << 16 ^ rand()) % INT64_C(8000000000);
		restmap_fmt_time(t, buf, sizeof(buf));
		tt = (time_t)t;
		gmtime_r(&tt, &tm);
		strftime(ref, sizeof(ref), "%Y-%m-%dT%H:%M:%SZ", &tm);
		assert_string_equal(buf, ref);
		assert_int_equal(restmap_time(buf, &back), 0);
		assert_int_equal(back, t);
	}
}

static void
restmap__token__forms(void **state)
{
	static const char signin[] = "{\"token_type\":\"Bearer\","
	    "\"access_token\":\"AT\",\"refresh_token\":\"RT\","
	    "\"expires_in\":3600}";
	static const char legacy[] = "{\"access_token\":\"AT2\",\"expires_at\":"
	    "\"2024-08-20T06:00:59Z\",\"expires_in\":\"1800\",\"role\":"
	    "\"Admin\"}";
	static const char tfa[] = "{\"two_factor_enabled\":true,\"token\":"
	    "\"x\"}";
	struct restmap_token t;

	(void)state;
	assert_int_equal(restmap_token_parse(signin, strlen(signin), &t), 0);
	assert_string_equal(t.access_token, "AT");
	assert_string_equal(t.refresh_token, "RT");
	assert_int_equal(t.expires_in, 3600);
	restmap_token_clear(&t);
	assert_null(t.access_token);

	assert_int_equal(restmap_token_parse(legacy, strlen(legacy), &t), 0);
	assert_string_equal(t.access_token, "AT2");
	assert_null(t.refresh_token);
	assert_int_equal(t.expires_in, 1800);
	assert_int_equal(t.expires_at, 1724133659);
	restmap_token_clear(&t);

	assert_int_equal(restmap_token_parse(tfa, strlen(tfa), &t), 0);
	assert_true(t.two_factor);
	assert_null(t.access_token);
	restmap_token_clear(&t);

	assert_int_equal(restmap_token_parse("{}", 2, &t), W2K_EINVAL);
	assert_int_equal(restmap_token_parse("{\"access_token\":\"\"}", 19,
	    &t), W2K_EINVAL);
	assert_int_equal(restmap_token_parse("{\"access_token\":5}", 18, &t),
	    W2K_EINVAL);
	assert_int_equal(restmap_token_parse("[", 1, &t), W2K_EINVAL);
	assert_int_equal(restmap_token_parse("", 0, &t), W2K_EINVAL);
}

static void
restmap__page__items_and_count(void **state)
{
	struct restmap_page pg;
	static const char ok[] = "{\"count\":2,\"items\":[{\"id\":\"1\"},"
	    "{\"id\":2}]}";
	struct restmap_row r;

	(void)state;
	assert_int_equal(restmap_page_parse(ok, strlen(ok), &pg), 0);
	assert_int_equal(pg.nitems, 2);
	assert_int_equal(pg.count, 2);
	assert_int_equal(restmap_row_info(restmap_page_row(&pg, 1), &r), 0);
	assert_string_equal(r.id, "2");		/* a number id, as text */
	assert_string_equal(r.session_id, "");
	assert_int_equal(r.ended, 0);
	restmap_page_free(&pg);

	assert_int_equal(restmap_page_parse("{\"items\":null}", 14, &pg), 0);
	assert_int_equal(pg.nitems, 0);
	assert_int_equal(pg.count, -1);
	restmap_page_free(&pg);

	assert_int_equal(restmap_page_parse("{\"count\":1}", 11, &pg),
	    W2K_EINVAL);
	assert_int_equal(restmap_page_parse("[]", 2, &pg), W2K_EINVAL);
	assert_int_equal(restmap_page_parse("{\"items\":{}}", 12, &pg),
	    W2K_EINVAL);
	assert_int_equal(restmap_page_parse("nope", 4, &pg), W2K_EINVAL);
}

static void
restmap__row_info__refuses_unusable_ids(void **state)
{
	static const char *const bad[] = {
		"{}", "{\"id\":\"\"}", "{\"id\":null}", "{\"id\":1.5}",
		"{\"id\":-1}", "{\"id\":[1]}", "[]", "\"x\"",
	};
	char big[RESTMAP_ID_MAX + 32];
	struct restmap_row r;

	(void)state;
	for (size_t i = 0; i < W2K_ARRAY_SIZE(bad); i++) {
		cJSON *j = cJSON_Parse(bad[i]);

		assert_int_equal(restmap_row_info(j, &r), W2K_EINVAL);
		cJSON_Delete(j);
	}
	memset(big, 'a', sizeof(big));
	memcpy(big, "{\"id\":\"", 7);
	memcpy(big + sizeof(big) - 3, "\"}", 3);
	{
		cJSON *j = cJSON_Parse(big);

		assert_non_null(j);
		assert_int_equal(restmap_row_info(j, &r), W2K_EINVAL);
		cJSON_Delete(j);
	}
}

/* Contract §10: SHA-256(pbx, 0, "rest", 0, row id), first 128 bits. */
static void
expected_id(const char *pbx, const char *row_id, char out[33])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char buf[512];
	size_t n;

	n = (size_t)snprintf(buf, sizeof(buf), "%s%crest%c%s", pbx, 0, 0,
	    row_id);
	SHA256((const unsigned char *)buf, n, md);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
restmap__record__mapped_to_the_wsi_names(void **state)
{
	cJSON *row = cJSON_Parse(row_text), *v, *d;
	struct norm_result res;
	char want[33], key[64];
	const char *hn, *hv;
	size_t pos = 0;
	bool ce_id = false;

	(void)state;
	assert_non_null(row);
	assert_int_equal(restmap_record("hq", "883611252155219968", row,
	    INT64_C(1724133700) * 1000000, &res), 0);
	assert_int_equal(res.kind, NORM_EVENTS);
	assert_int_equal(res.nrecs, 1);
	assert_null(res.recs[0].topic);
	assert_string_equal(res.recs[0].type, "call_cdr");
	expected_id("hq", "878156644691742720", want);
	assert_string_equal(res.recs[0].id, want);
	snprintf(key, sizeof(key), "%.*s", (int)res.recs[0].key_len,
	    res.recs[0].key);
	assert_string_equal(key, "883611252155219968:885337248273272832");
	while (record_hdr_next(&res.recs[0], &pos, &hn, &hv))
		if (strcmp(hn, "ce_id") == 0) {
			assert_string_equal(hv, want);
			ce_id = true;
		}
	assert_true(ce_id);

	v = cJSON_ParseWithLength(res.recs[0].value, res.recs[0].value_len);
	assert_non_null(v);
	assert_string_equal(cJSON_GetObjectItem(v, "source")->valuestring,
	    "rest");
	assert_string_equal(cJSON_GetObjectItem(v, "class")->valuestring, "cdr");
	assert_string_equal(cJSON_GetObjectItem(v, "tenant_id")->valuestring,
	    "883611252155219968");
	assert_int_equal(cJSON_GetObjectItem(v, "time")->valuedouble,
	    1724133696);
	d = cJSON_GetObjectItem(v, "data");
	assert_string_equal(cJSON_GetObjectItem(d, "cdr_id")->valuestring,
	    "878156644691742720");
	assert_int_equal(cJSON_GetObjectItem(d, "start_time")->valuedouble,
	    1724133659);
	assert_int_equal(cJSON_GetObjectItem(d, "ended_time")->valuedouble,
	    1724133696);
	assert_int_equal(cJSON_GetObjectItem(d, "talk_duration")->valuedouble,
	    35);
	assert_string_equal(cJSON_GetObjectItem(d, "direction")->valuestring,
	    "internal");
	assert_string_equal(cJSON_GetObjectItem(d, "end_reason")->valuestring,
	    "caller_disconnected");
	assert_string_equal(cJSON_GetObjectItem(d, "did")->valuestring,
	    "18800");
	assert_string_equal(cJSON_GetObjectItem(d, "trunk_name")->valuestring,
	    "t1");
	/* Kept under their own names: no WSI counterpart. */
	assert_non_null(cJSON_GetObjectItem(d, "callee_display_name"));
	assert_non_null(cJSON_GetObjectItem(d, "reroute_reason"));
	/* Gone under the REST names. */
	assert_null(cJSON_GetObjectItem(d, "started_at"));
	assert_null(cJSON_GetObjectItem(d, "did_cid"));
	assert_null(cJSON_GetObjectItem(d, "trunk"));
	assert_null(cJSON_GetObjectItem(d, "duration"));
	assert_null(cJSON_GetObjectItem(d, "id"));
	cJSON_Delete(v);
	norm_result_clear(&res);

	/* A re-read later (another received_at, a field changed): same id. */
	cJSON_ReplaceItemInObject(row, "caller_display_name",
	    cJSON_CreateString("Kelly C."));
	assert_int_equal(restmap_record("hq", "883611252155219968", row,
	    INT64_C(1800000000) * 1000000, &res), 0);
	assert_string_equal(res.recs[0].id, want);
	norm_result_clear(&res);
	/* Another PBX name: another id. */
	assert_int_equal(restmap_record("branch", "883611252155219968", row,
	    0, &res), 0);
	assert_string_not_equal(res.recs[0].id, want);
	norm_result_clear(&res);
	cJSON_Delete(row);
}

static void
restmap__record__value_sets_and_blanks(void **state)
{
	static const struct {
		const char *field, *rest, *wsi;
	} m[] = {
		{ "direction", "INBOUND_CALL", "inbound" },
		{ "direction", "OUTBOUND_CALL", "outbound" },
		{ "direction", "INBOUND_OUTBOUND_CALL", "inbound_outbound" },
		{ "direction", "NEW_KIND", "new_kind" },
		{ "end_reason", "CALLEE_DISCONNECTED", "callee_disconnected" },
		{ "end_reason", "BLIND_TRANSFER_COMPLETED",
		    "blind_transfer_complete" },
		{ "end_reason", "CONSULT_TRANSFER_COMPLETED",
		    "attended_transfer_complete" },
		{ "end_reason", "REPLACED", "replaced" },
		{ "end_reason", "CANCELLED", "cancelled" },
		{ "end_reason", "", "None" },
	};

	(void)state;
	for (size_t i = 0; i < W2K_ARRAY_SIZE(m); i++) {
		char text[256];
		struct norm_result res;
		cJSON *row, *v;

		snprintf(text, sizeof(text), "{\"id\":\"9\",\"%s\":\"%s\","
		    "\"answered_at\":\"\",\"rang_at\":null}", m[i].field,
		    m[i].rest);
		row = cJSON_Parse(text);
		assert_int_equal(restmap_record("hq", NULL, row, 0, &res), 0);
		v = cJSON_ParseWithLength(res.recs[0].value,
		    res.recs[0].value_len);
		assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(v,
		    "data"), m[i].field)->valuestring, m[i].wsi);
		/* Blank times are null, as "0" is on WSI (§5). */
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(
		    cJSON_GetObjectItem(v, "data"), "answered_time")));
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(
		    cJSON_GetObjectItem(v, "data"), "ring_time")));
		/* No tenant known: tenant_id null, key null. */
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(v, "tenant_id")));
		assert_null(res.recs[0].key);
		cJSON_Delete(v);
		cJSON_Delete(row);
		norm_result_clear(&res);
	}
	{
		cJSON *row = cJSON_Parse("{\"session_id\":\"1\"}");
		struct norm_result res;

		assert_int_equal(restmap_record("hq", "1", row, 0, &res),
		    W2K_EINVAL);
		assert_int_equal(res.nrecs, 0);
		cJSON_Delete(row);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(restmap__time__rfc3339_forms),
		cmocka_unit_test(restmap__time__format_round_trips),
		cmocka_unit_test(restmap__token__forms),
		cmocka_unit_test(restmap__page__items_and_count),
		cmocka_unit_test(restmap__row_info__refuses_unusable_ids),
		cmocka_unit_test(restmap__record__mapped_to_the_wsi_names),
		cmocka_unit_test(restmap__record__value_sets_and_blanks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
