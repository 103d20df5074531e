/*
 * fuzz_norm.c — libFuzzer target for norm_frame(): any bytes, as a normal
 * frame and as the beginning of a too-large one. Besides what ASan and
 * UBSan catch, it checks the invariants the rest of the daemon relies on:
 * never W2K_ENOMEM here (malloc does not fail under the fuzzer), what it
 * takes for JSON cJSON takes too, dead-letter reasons come from the fixed
 * set (metric labels), every record's value is one JSON object that cJSON
 * parses back, ids are 32 lowercase hex digits equal to norm_record_id(),
 * parts have distinct ids, and the same bytes give the same records.
 */
#include <cjson/cJSON.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "norm.h"
#include "w2k.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)	do { if (!(c)) { \
	fprintf(stderr, "fuzz_norm: %s:%d: %s\n", __FILE__, __LINE__, #c); \
	abort(); } } while (0)

static bool
is_id(const char *s)
{
	size_t i;

	for (i = 0; i < RECORD_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' &&
		    s[i] <= 'f')))
			return false;
	return s[RECORD_ID_LEN] == '\0';
}

static const char *
hdr(const struct record *rec, const char *name)
{
	const char *n, *v;
	size_t pos = 0;

	while (record_hdr_next(rec, &pos, &n, &v))
		if (strcmp(n, name) == 0)
			return v;
	return NULL;
}

static void
check_record(const struct norm_frame *in, const struct norm_result *res,
    size_t i)
{
	const struct record *rec = &res->recs[i];
	const char *end = NULL;
	char id[RECORD_ID_LEN + 1];
	const cJSON *schema, *vid;
	cJSON *v;
	size_t k;

	CHECK(rec->topic == NULL);
	CHECK(is_id(rec->id));
	norm_record_id(in->pbx, in->data, in->len, (unsigned)i, id);
	CHECK(strcmp(id, rec->id) == 0);
	for (k = 0; k < i; k++)
		CHECK(strcmp(res->recs[k].id, rec->id) != 0);
	CHECK(rec->received_us == in->received_us);
	CHECK(rec->value != NULL && rec->value_len > 0);
	CHECK(rec->type != NULL);
	CHECK((rec->key == NULL) == (rec->key_len == 0) ||
	    (rec->dead && rec->key != NULL));
	CHECK(hdr(rec, "ce_id") != NULL && strcmp(hdr(rec, "ce_id"),
	    rec->id) == 0);
	CHECK(strcmp(hdr(rec, "content-type"), "application/json") == 0);

	v = cJSON_ParseWithLengthOpts(rec->value, rec->value_len, &end, 0);
	CHECK(v != NULL);
	CHECK(end == rec->value + rec->value_len);
	CHECK(cJSON_IsObject(v));
	schema = cJSON_GetObjectItemCaseSensitive(v, "schema");
	vid = cJSON_GetObjectItemCaseSensitive(v, "id");
	CHECK(cJSON_IsString(vid) && strcmp(vid->valuestring, rec->id) == 0);
	CHECK(cJSON_IsString(schema));
	if (rec->dead) {
		CHECK(strcmp(schema->valuestring,
		    "wsi2kafka.deadletter/1") == 0);
		CHECK(rec->type[0] == '\0');
		CHECK(cJSON_GetObjectItemCaseSensitive(v, "raw") != NULL ||
		    cJSON_GetObjectItemCaseSensitive(v, "raw_base64") != NULL);
		CHECK(rec->value_len < 2 * 1024 * 1024);
		if (in->too_large)
			CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v,
			    "truncated")));
	} else {
		unsigned t = norm_type_index(rec->type);

		CHECK(strcmp(schema->valuestring, "wsi2kafka.event/1") == 0);
		CHECK(rec->type[0] != '\0');
		/* The metric label: the type itself, or "other". */
		CHECK(t < NORM_NTYPES);
		CHECK(t == NORM_TYPE_OTHER ||
		    strcmp(norm_type_name(t), rec->type) == 0);
		CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(v,
		    "data")));
		CHECK(strncmp(hdr(rec, "ce_type"), "com.portsip.wsi.", 16)
		    == 0);
	}
	cJSON_Delete(v);
}

static void
check(const struct norm_frame *in)
{
	struct norm_result res, again;
	cJSON *v;
	size_t i;

	CHECK(norm_frame(in, &res) == 0);
	switch (res.kind) {
	case NORM_EVENTS:
		CHECK(!in->too_large);
		CHECK(res.nrecs >= 1 && res.recs != NULL);
		for (i = 0; i < res.nrecs; i++)
			CHECK(!res.recs[i].dead);
		/* What we took for JSON, cJSON (a consumer's parser) takes
		 * too: our grammar and limits are the stricter ones. */
		v = cJSON_ParseWithLength((const char *)in->data, in->len);
		CHECK(v != NULL && cJSON_IsObject(v));
		cJSON_Delete(v);
		break;
	case NORM_DEAD:
		CHECK(res.nrecs == 1 && res.recs[0].dead);
		CHECK(res.dead_reason != NULL);
		CHECK(!in->too_large ||
		    strcmp(res.dead_reason, NORM_DL_TOO_LARGE) == 0);
		/* A fixed set of reasons: they are metric labels. */
		CHECK(strcmp(res.dead_reason, NORM_DL_INVALID_UTF8) == 0 ||
		    strcmp(res.dead_reason, NORM_DL_INVALID_JSON) == 0 ||
		    strcmp(res.dead_reason, NORM_DL_NOT_OBJECT) == 0 ||
		    strcmp(res.dead_reason, NORM_DL_NO_EVENT_TYPE) == 0 ||
		    strcmp(res.dead_reason, NORM_DL_TOO_LARGE) == 0 ||
		    strcmp(res.dead_reason, NORM_DL_TOO_DEEP) == 0 ||
		    strcmp(res.dead_reason, NORM_DL_TOO_MANY_MEMBERS) == 0);
		break;
	case NORM_REPLY:
		CHECK(!in->too_large);
		CHECK(res.nrecs == 0 && res.recs == NULL);
		v = cJSON_ParseWithLength((const char *)in->data, in->len);
		CHECK(v != NULL && cJSON_IsObject(v));
		cJSON_Delete(v);
		break;
	default:
		CHECK(0);
	}
	for (i = 0; i < res.nrecs; i++)
		check_record(in, &res, i);

	/* Deterministic: the same bytes, the same records. */
	CHECK(norm_frame(in, &again) == 0);
	CHECK(again.kind == res.kind && again.nrecs == res.nrecs);
	for (i = 0; i < res.nrecs; i++) {
		CHECK(again.recs[i].value_len == res.recs[i].value_len);
		CHECK(memcmp(again.recs[i].value, res.recs[i].value,
		    res.recs[i].value_len) == 0);
		CHECK(again.recs[i].key_len == res.recs[i].key_len);
		CHECK(again.recs[i].hdrs_len == res.recs[i].hdrs_len);
	}
	norm_result_clear(&again);
	norm_result_clear(&res);
	CHECK(res.recs == NULL && res.nrecs == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct norm_frame in = {
		.pbx = "hq",
		.data = data,
		.len = size,
		.too_large = false,
		.received_us = INT64_C(1732608000123456),
	};

	check(&in);
	in.too_large = true;
	check(&in);

	/* norm_dead_letter() on the same bytes: the same dead letter shape
	 * (ksink wraps refused records with it). */
	{
		struct norm_result res = { 0 };

		res.kind = NORM_DEAD;
		res.nrecs = 1;
		res.recs = calloc(1, sizeof(*res.recs));
		CHECK(res.recs != NULL);
		CHECK(norm_dead_letter(in.pbx, "SOME_KAFKA_ERROR", data, size,
		    size % 2 == 0, in.received_us, &res.recs[0]) == 0);
		in.too_large = size % 2 == 0;
		check_record(&in, &res, 0);
		norm_result_clear(&res);
	}
	return 0;
}
