/*
 * test_norm.c — norm_frame(): every example payload of portsip-wsi.md §4
 * (tests/unit/data/norm/, verbatim, malformed ones included), the command
 * replies of §2/§3.4, and the damaged inputs the contract turns into dead
 * letters. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "norm.h"
#include "w2k.h"

#define DATA	"tests/unit/data/norm/"
#define PBX	"hq"
#define RECV_US	INT64_C(1732608000123456)	/* 2024-11-26T08:00:00.123456Z */

/* ---- helpers ---- */

static unsigned char *
load(const char *name, size_t *len)
{
	char path[256];
	unsigned char *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), DATA "%s", name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s (run from the repository root)", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/*
 * NORM_CORPUS_DIR=dir: every frame up to 16 KiB the tests normalize is also
 * written to dir, named by its FNV-1a hash — the unit-test seeds of the
 * fuzz corpus (tests/fuzz/seed-corpus.sh).
 */
static void
corpus_add(const void *data, size_t len)
{
	const char *dir = getenv("NORM_CORPUS_DIR");
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;
	char path[512];
	size_t i;
	FILE *f;

	if (dir == NULL || len > 16 * 1024 || (data == NULL && len > 0))
		return;
	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	snprintf(path, sizeof(path), "%s/unit-%016llx.json", dir,
	    (unsigned long long)h);
	if ((f = fopen(path, "wb")) == NULL)
		fail_msg("cannot write %s", path);
	if (len > 0)
		assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
run_ex(const char *pbx, const void *data, size_t len, bool too_large,
    int64_t recv_us, struct norm_result *res)
{
	struct norm_frame in = {
		.pbx = pbx, .data = data, .len = len,
		.too_large = too_large, .received_us = recv_us,
	};

	corpus_add(data, len);
	assert_int_equal(norm_frame(&in, res), 0);
}

static void
run(const void *data, size_t len, struct norm_result *res)
{
	run_ex(PBX, data, len, false, RECV_US, res);
}

static void
run_str(const char *s, struct norm_result *res)
{
	run(s, strlen(s), res);
}

/* The record's value, parsed (strictly: cJSON plus no trailing bytes). */
static cJSON *
value_of(const struct record *rec)
{
	const char *end = NULL;
	cJSON *v;

	assert_non_null(rec->value);
	v = cJSON_ParseWithLengthOpts(rec->value, rec->value_len, &end, 0);
	assert_non_null(v);
	assert_ptr_equal(end, rec->value + rec->value_len);
	assert_true(cJSON_IsObject(v));
	return v;
}

static const cJSON *
get(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const cJSON *
at(const cJSON *o, const char *k, int i)
{
	const cJSON *a = get(o, k);

	assert_true(cJSON_IsArray(a));
	return cJSON_GetArrayItem(a, i);
}

static void
expect_str(const cJSON *o, const char *k, const char *want)
{
	const cJSON *it = get(o, k);

	if (!cJSON_IsString(it))
		fail_msg("%s: not a string", k);
	assert_string_equal(it->valuestring, want);
}

static void
expect_num(const cJSON *o, const char *k, double want)
{
	const cJSON *it = get(o, k);

	if (!cJSON_IsNumber(it))
		fail_msg("%s: not a number", k);
	assert_true(it->valuedouble == want);
}

static void
expect_null(const cJSON *o, const char *k)
{
	if (!cJSON_IsNull(get(o, k)))
		fail_msg("%s: not null", k);
}

static void
expect_absent(const cJSON *o, const char *k)
{
	if (get(o, k) != NULL)
		fail_msg("%s: present", k);
}

/* The raw text contains s (for digit-exact checks cJSON cannot make). */
static void
expect_text(const struct record *rec, const char *s)
{
	if (memmem(rec->value, rec->value_len, s, strlen(s)) == NULL)
		fail_msg("value lacks %s: %.*s", s, (int)rec->value_len,
		    rec->value);
}

static size_t
count_text(const struct record *rec, const char *s)
{
	const char *p = rec->value, *end = rec->value + rec->value_len, *q;
	size_t n = 0;

	while ((q = memmem(p, (size_t)(end - p), s, strlen(s))) != NULL) {
		n++;
		p = q + 1;
	}
	return n;
}

static void
expect_key(const struct record *rec, const char *want)
{
	if (want == NULL) {
		assert_null(rec->key);
		assert_int_equal(rec->key_len, 0);
		return;
	}
	assert_non_null(rec->key);
	assert_int_equal(rec->key_len, strlen(want));
	assert_memory_equal(rec->key, want, rec->key_len);
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

/* One event record; returns its parsed value and data. */
static cJSON *
one_event(const struct norm_result *res, const char *type, const char *cls,
    const cJSON **data)
{
	const struct record *rec;
	cJSON *v;

	assert_int_equal(res->kind, NORM_EVENTS);
	assert_int_equal(res->nrecs, 1);
	rec = &res->recs[0];
	assert_false(rec->dead);
	assert_null(rec->topic);
	assert_string_equal(rec->type, type);
	v = value_of(rec);
	expect_str(v, "schema", "wsi2kafka.event/1");
	expect_str(v, "type", type);
	expect_str(v, "class", cls);
	expect_str(v, "pbx", PBX);
	expect_str(v, "id", rec->id);
	expect_str(v, "received_at", "2024-11-26T08:00:00.123Z");
	*data = get(v, "data");
	assert_true(cJSON_IsObject(*data));
	expect_str(*data, "event_type", type);
	return v;
}

static cJSON *
fixture_event(const char *file, const char *type, const char *cls,
    struct norm_result *res, const cJSON **data)
{
	unsigned char *buf;
	size_t len;
	char id[RECORD_ID_LEN + 1];
	cJSON *v;

	buf = load(file, &len);
	run(buf, len, res);
	v = one_event(res, type, cls, data);
	norm_record_id(PBX, buf, len, 0, id);
	assert_string_equal(res->recs[0].id, id);
	free(buf);
	return v;
}

/* A dead letter; returns its parsed value. */
static cJSON *
dead(const struct norm_result *res, const char *reason)
{
	const struct record *rec;
	cJSON *v;

	assert_int_equal(res->kind, NORM_DEAD);
	assert_non_null(res->dead_reason);
	assert_string_equal(res->dead_reason, reason);
	assert_int_equal(res->nrecs, 1);
	rec = &res->recs[0];
	assert_true(rec->dead);
	assert_null(rec->topic);
	assert_string_equal(rec->type, "");
	expect_key(rec, PBX);
	assert_string_equal(hdr(rec, "content-type"), "application/json");
	assert_string_equal(hdr(rec, "ce_id"), rec->id);
	v = value_of(rec);
	expect_str(v, "schema", "wsi2kafka.deadletter/1");
	expect_str(v, "id", rec->id);
	expect_str(v, "pbx", PBX);
	expect_str(v, "reason", reason);
	return v;
}

static void
dead_str(const char *frame, const char *reason)
{
	struct norm_result res;
	cJSON *v;

	run_str(frame, &res);
	v = dead(&res, reason);
	expect_str(v, "raw", frame);
	expect_absent(v, "truncated");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* A growable string for building frames. */
struct buf {
	char	*p;
	size_t	 len, cap;
};

static void
bput(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
bputs(struct buf *b, const char *s)
{
	bput(b, s, strlen(s));
}

static void
bprintf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
bprintf(struct buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	bput(b, tmp, (size_t)n);
}

/* ---- §4.1 extension_events ---- */

static void
split_fixture(const char *file, const char *presence0,
    const char *presence1, const char *call_status1)
{
	static const char *const ext_ids[] = {
		"794493219508322304", "794493219718037504",
	};
	static const char *const exts[] = {
		"sip:101@test.io", "sip:102@test.io",
	};
	struct norm_result res, again;
	unsigned char *buf;
	size_t len, i;
	char id[RECORD_ID_LEN + 1], key[64];

	buf = load(file, &len);
	run(buf, len, &res);
	assert_int_equal(res.kind, NORM_EVENTS);
	assert_int_equal(res.nrecs, 2);
	for (i = 0; i < 2; i++) {
		const struct record *rec = &res.recs[i];
		const cJSON *data;
		cJSON *v = value_of(rec);

		assert_string_equal(rec->type, "extension_status");
		snprintf(key, sizeof(key), "794493068765036544:%s",
		    ext_ids[i]);
		expect_key(rec, key);
		norm_record_id(PBX, buf, len, (unsigned)i, id);
		assert_string_equal(rec->id, id);
		expect_str(v, "id", id);
		expect_str(v, "class", "extension");
		expect_str(v, "tenant_id", "794493068765036544");
		expect_null(v, "session_id");
		expect_num(v, "time", 1704186780);
		assert_string_equal(hdr(rec, "ce_time"),
		    "2024-01-02T09:13:00Z");
		data = get(v, "data");
		expect_str(data, "event_type", "extension_status");
		expect_str(data, "tenant_id", "794493068765036544");
		expect_absent(data, "status");
		expect_str(data, "extension", exts[i]);
		expect_str(data, "extension_id", ext_ids[i]);
		expect_num(data, "time", 1704186780);
		assert_true(cJSON_IsFalse(get(data, "online")));
		assert_true(cJSON_IsFalse(get(data, "push_online")));
		expect_str(data, "presence_note", "");
		if (presence0 == NULL)
			expect_absent(data, "presence");
		else
			expect_str(data, "presence", i == 0 ? presence0 :
			    presence1);
		if (i == 1)
			expect_str(data, "call_status", call_status1);
		cJSON_Delete(v);
	}
	assert_string_not_equal(res.recs[0].id, res.recs[1].id);

	/* The same bytes give the same ids. */
	run(buf, len, &again);
	assert_int_equal(again.nrecs, 2);
	for (i = 0; i < 2; i++) {
		assert_string_equal(again.recs[i].id, res.recs[i].id);
		assert_int_equal(again.recs[i].value_len,
		    res.recs[i].value_len);
		assert_memory_equal(again.recs[i].value, res.recs[i].value,
		    res.recs[i].value_len);
	}
	norm_result_clear(&again);
	norm_result_clear(&res);
	free(buf);
}

static void
norm__extension_status_v22_3__split_per_extension(void **state)
{
	(void)state;
	/* "ON_ACLL" is the source's typo and passes through. */
	split_fixture("extension_status_v22_3.json", "AWAY", "ONLINE",
	    "ON_CALL");
}

static void
norm__extension_status_v22_2__split_per_extension(void **state)
{
	struct norm_result res;
	unsigned char *buf;
	size_t len;
	cJSON *v;

	(void)state;
	split_fixture("extension_status_v22_2.json", "AWAY", "AVAILABLE",
	    "ON_CALL");
	buf = load("extension_status_v22_2.json", &len);
	run(buf, len, &res);
	v = value_of(&res.recs[0]);
	expect_str(get(v, "data"), "call_status", "ON_ACLL");
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(buf);
}

static void
norm__extension_status_v16_2024_01__split_without_presence(void **state)
{
	(void)state;
	split_fixture("extension_status_v16_2024_01.json", NULL, NULL,
	    "On Call");
}

static void
norm__extension_status_single_object__one_record(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("extension_status_v16_2023_12_27.json",
	    "extension_status", "extension", &res, &d);
	expect_key(&res.recs[0], "792406615960584192:792406615960584220");
	expect_num(v, "time", 1703689749);
	assert_true(cJSON_IsFalse(get(d, "on_call")));
	expect_str(d, "extension_id", "792406615960584220");
	expect_num(d, "time", 1703689749);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__extension_call__keyed_by_extension(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("extension_call.json", "extension_call",
	    "extension", &res, &d);
	expect_key(&res.recs[0], "792406615960584192:792406615960584220");
	expect_str(v, "tenant_id", "792406615960584192");
	expect_null(v, "session_id");
	expect_num(v, "time", 1703690276);
	expect_str(d, "call_status", "ON_CALL");
	expect_num(d, "time", 1703690276);
	expect_text(&res.recs[0], "\"time\":1703690276}");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__extension_call_interim__bool_on_call_kept(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("extension_call_interim.json", "extension_call",
	    "extension", &res, &d);
	assert_true(cJSON_IsTrue(get(d, "on_call")));
	expect_absent(d, "call_status");
	expect_key(&res.recs[0], "792406615960584192:792406615960584220");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__extension_presence__fields_kept(void **state)
{
	static const struct {
		const char *file, *presence, *note;
	} t[] = {
		{ "extension_presence.json", "AVAILABLE", "Driving" },
		{ "extension_presence_v22_2.json", "AVAILABLE", "Drving" },
		{ "extension_presence_interim.json", NULL, "Away" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++) {
		struct norm_result res;
		const cJSON *d;
		cJSON *v;

		v = fixture_event(t[i].file, "extension_presence",
		    "extension", &res, &d);
		expect_key(&res.recs[0],
		    "792406615960584192:792406615960584220");
		expect_num(v, "time", 1703690547);
		assert_string_equal(hdr(&res.recs[0], "ce_time"),
		    "2023-12-27T15:22:27Z");
		if (t[i].presence != NULL)
			expect_str(d, "presence", t[i].presence);
		else
			expect_absent(d, "presence");
		expect_str(d, "presence_note", t[i].note);
		cJSON_Delete(v);
		norm_result_clear(&res);
	}
}

static void
norm__extension_presence_v16_0__tenant_only_key(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("extension_presence_v16_0.json",
	    "extension_presence", "extension", &res, &d);
	/* No extension_id in the v16.0 form: the key is the tenant. */
	expect_key(&res.recs[0], "672371581028143104");
	expect_str(d, "note", "Away");
	expect_str(d, "extension", "sip:102@portsip.io");
	expect_num(v, "time", 1675136792);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__extension_agent_status__nested_status_kept(void **state)
{
	struct norm_result res;
	const cJSON *d, *e;
	cJSON *v;

	(void)state;
	v = fixture_event("extension_agent_status.json",
	    "extension_agent_status", "extension", &res, &d);
	expect_key(&res.recs[0], "806406773714976768:806406815892897792");
	e = at(d, "agent_status", 0);
	expect_str(e, "queue_number", "8002");
	expect_str(e, "status", "READY");
	expect_num(v, "time", 1707028116);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__extension_hold_unhold__peer_ids_strings(void **state)
{
	static const struct {
		const char *file, *type;
		double time;
	} t[] = {
		{ "extension_hold.json", "extension_hold", 1703750008 },
		{ "extension_unhold.json", "extension_unhold", 1703750010 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++) {
		struct norm_result res;
		const cJSON *d;
		cJSON *v;

		v = fixture_event(t[i].file, t[i].type, "extension", &res,
		    &d);
		expect_key(&res.recs[0],
		    "792661196065996800:792661232720019456");
		expect_str(d, "peer_extension_id", "792661232925540352");
		expect_str(d, "call_id", "CNMeGW_cUfXWObUalbS0XA..");
		expect_num(v, "time", t[i].time);
		cJSON_Delete(v);
		norm_result_clear(&res);
	}
}

/* ---- §4.2 legacy extension_events ---- */

static void
norm__extension_register__contact_numbers_exact(void **state)
{
	struct norm_result res;
	const cJSON *d, *c;
	cJSON *v;

	(void)state;
	v = fixture_event("extension_register.json", "extension_register",
	    "extension", &res, &d);
	expect_key(&res.recs[0], "236047118140313600:494521070842286080");
	expect_num(v, "time", 1632668176);
	c = at(d, "registration_contacts", 1);
	expect_num(c, "expires", 1632668476);
	expect_num(c, "last_update", 1632668176);
	/* reg_id is a counter, not an id: it stays a number. */
	expect_num(c, "reg_id", 0);
	expect_str(c, "user_agent", "PortSIP UC Client iOS - v16.0.001");
	expect_str(c, "contact_uri", "<sip:102@113.246.194.98:10243>;"
	    "+sip.instance=\"<urn:uuid:8D5941A6-EB96-4E7A-9EB7-"
	    "DA940E56513C>\"");
	expect_text(&res.recs[0], "\"expires\":1632668422,");
	expect_text(&res.recs[0], "\"reg_id\":0,");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__extension_register_removed__contacts_kept(void **state)
{
	struct norm_result res;
	const cJSON *d, *c;
	cJSON *v;

	(void)state;
	v = fixture_event("extension_register_removed.json",
	    "extension_register", "extension", &res, &d);
	expect_absent(d, "registration_contacts");
	c = at(d, "removed_contacts", 0);
	expect_num(c, "expires", 1632668724);
	expect_num(c, "reg_id", 0);
	expect_num(v, "time", 1632668724);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__legacy_call_events__keyed_by_session(void **state)
{
	static const struct {
		const char *file, *type, *session;
		double time;
	} t[] = {
		{ "call_hold.json", "call_hold", "494527456623988736",
		  1632669389 },
		{ "call_unhold.json", "call_unhold", "494527456623988736",
		  1632669492 },
		{ "call_established.json", "call_established",
		  "494535522404798464", 1632671262 },
		{ "call_ended.json", "call_ended", "494535522404798464",
		  1632671272 },
		{ "call_noanswer.json", "call_noanswer", "494536565997965312",
		  1632671510 },
		{ "call_fail.json", "call_fail", "494537752386211840",
		  1632671788 },
	};
	char key[64];
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++) {
		struct norm_result res;
		const cJSON *d;
		cJSON *v;

		v = fixture_event(t[i].file, t[i].type, "call", &res, &d);
		snprintf(key, sizeof(key), "236047118140313600:%s",
		    t[i].session);
		expect_key(&res.recs[0], key);
		expect_str(v, "tenant_id", "236047118140313600");
		expect_str(v, "session_id", t[i].session);
		expect_num(v, "time", t[i].time);
		expect_num(d, "time", t[i].time);
		expect_str(d, "session_id", t[i].session);
		cJSON_Delete(v);
		norm_result_clear(&res);
	}
}

static void
norm__call_fail__fail_code_number_kept(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("call_fail.json", "call_fail", "call", &res, &d);
	expect_num(d, "fail_code", 480);
	expect_text(&res.recs[0], "\"fail_code\":480,");
	expect_str(d, "call_target", "");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__call_start_v16_0__direction_ext_to_internal(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("call_start_v16_0.json", "call_start", "call",
	    &res, &d);
	expect_key(&res.recs[0], "236047118140313600:494533487177502720");
	expect_str(d, "direction", "internal");
	expect_str(d, "cdr_id", "494533487185891328");
	/* A *_id string stays a string, even "0". */
	expect_str(d, "request_id", "0");
	expect_num(v, "time", 1632670771);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* ---- §4.3 cdr_events ---- */

static void
norm__call_start__envelope_and_headers(void **state)
{
	static const char *const names[] = {
		"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time",
		"content-type",
	};
	struct norm_result res;
	const struct record *rec;
	const cJSON *d;
	const char *n, *hv;
	size_t pos = 0, i = 0;
	cJSON *v;

	(void)state;
	v = fixture_event("call_start.json", "call_start", "call", &res, &d);
	rec = &res.recs[0];
	expect_key(rec, "798119491077668864:798119942409949184");
	expect_str(d, "direction", "internal");
	expect_str(d, "cdr_id", "798119942409949185");
	expect_str(d, "callee_display_name", "Jason");
	expect_num(d, "time", 1705051422);
	/* Envelope keys in the contract's order, data last. */
	assert_memory_equal(rec->value, "{\"schema\":\"wsi2kafka.event/1\","
	    "\"id\":\"", 36);
	expect_text(rec, "\",\"pbx\":\"hq\",\"type\":\"call_start\","
	    "\"class\":\"call\",\"tenant_id\":\"798119491077668864\","
	    "\"session_id\":\"798119942409949184\",\"time\":1705051422,"
	    "\"received_at\":\"2024-11-26T08:00:00.123Z\",\"source\":\"wsi\","
	    "\"data\":{");
	assert_int_equal(rec->value[rec->value_len - 1], '}');
	assert_int_not_equal(rec->value[rec->value_len - 1], '\n');
	/* Headers, in order. */
	while (record_hdr_next(rec, &pos, &n, &hv)) {
		assert_true(i < W2K_ARRAY_SIZE(names));
		assert_string_equal(n, names[i]);
		i++;
	}
	assert_int_equal(i, W2K_ARRAY_SIZE(names));
	assert_string_equal(hdr(rec, "ce_specversion"), "1.0");
	assert_string_equal(hdr(rec, "ce_id"), rec->id);
	assert_string_equal(hdr(rec, "ce_source"), "wsi2kafka://hq");
	assert_string_equal(hdr(rec, "ce_type"), "com.portsip.wsi.call_start");
	assert_string_equal(hdr(rec, "ce_time"), "2024-01-12T09:23:42Z");
	assert_string_equal(hdr(rec, "content-type"), "application/json");
	assert_int_equal(rec->received_us, RECV_US);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__call_cdr_evref__normalized(void **state)
{
	struct norm_result res;
	const struct record *rec;
	const cJSON *d, *t;
	cJSON *v;
	int i;

	(void)state;
	v = fixture_event("call_cdr_evref.json", "call_cdr", "cdr", &res, &d);
	rec = &res.recs[0];
	expect_key(rec, "883611252155219968:885337248273272832");
	expect_str(v, "tenant_id", "883611252155219968");
	expect_str(v, "session_id", "885337248273272832");
	/* No "time" key in a CDR: ended_time it is. */
	expect_num(v, "time", 1725845669);
	assert_string_equal(hdr(rec, "ce_time"), "2024-09-09T01:34:29Z");
	expect_num(d, "answered_time", 1725845648);
	expect_num(d, "ring_time", 1725845648);
	expect_num(d, "start_time", 1725845648);
	expect_num(d, "ended_time", 1725845669);
	expect_num(d, "ring_duration", 0);	/* "0", not a time: 0 */
	expect_num(d, "talk_duration", 21);
	expect_num(d, "status_code", 0);
	expect_str(d, "direction", "inbound");
	expect_str(d, "did", "18800606");
	expect_str(d, "end_reason", "callee_disconnect");
	expect_absent(d, "ended_reason");
	expect_str(d, "tenant_name", "test");
	expect_str(d, "user_data", "");
	expect_str(d, "trunk_name", "122:883631675865563136");
	assert_int_equal(cJSON_GetArraySize(get(d, "call_targets")), 3);
	for (i = 0; i < 3; i++) {
		t = at(d, "call_targets", i);
		expect_str(t, "id", "883611252155219968");
		expect_num(t, "status_code", 0);
		expect_str(t, "call_type", "normal_call");
		expect_str(t, "status", "answered");
		expect_num(t, "talk_duration", 7);
	}
	t = at(d, "call_targets", 2);
	expect_num(t, "ring_duration", 6);
	expect_num(t, "answered_time", 1725845662);
	expect_num(t, "ring_time", 1725845656);
	expect_str(t, "end_reason", "None");
	expect_text(rec, "\"talk_duration\":21,");
	expect_text(rec, "\"answered_time\":1725845648,");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__call_cdr_admin_missing_comma__invalid_json(void **state)
{
	struct norm_result res;
	unsigned char *buf;
	size_t len;
	char id[RECORD_ID_LEN + 1];
	cJSON *v;

	(void)state;
	buf = load("call_cdr_admin_missing_comma.json", &len);
	run(buf, len, &res);
	v = dead(&res, NORM_DL_INVALID_JSON);
	expect_str(v, "raw", (const char *)buf);
	expect_str(v, "received_at", "2024-11-26T08:00:00.123Z");
	expect_absent(v, "truncated");
	expect_absent(v, "raw_base64");
	norm_record_id(PBX, buf, len, 0, id);
	assert_string_equal(res.recs[0].id, id);
	assert_int_equal(res.recs[0].received_us, RECV_US);
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(buf);
}

/* The CDR-ADMIN example with its missing comma put back: the legacy names
 * and direction values of the older PBX. */
static void
norm__call_cdr_admin_repaired__legacy_names_and_zero_times(void **state)
{
	struct norm_result res;
	unsigned char *buf;
	struct buf fixed = { 0 };
	const char *cut;
	const cJSON *d, *t;
	size_t len;
	cJSON *v;

	(void)state;
	buf = load("call_cdr_admin_missing_comma.json", &len);
	cut = strstr((const char *)buf, "\"AudioCodes\"\n");
	assert_non_null(cut);
	cut += strlen("\"AudioCodes\"");
	bput(&fixed, (const char *)buf, (size_t)(cut - (const char *)buf));
	bputs(&fixed, ",");
	bputs(&fixed, cut);
	run(fixed.p, fixed.len, &res);
	v = one_event(&res, "call_cdr", "cdr", &d);
	expect_key(&res.recs[0], "690833127458734080:690852418417594368");
	expect_num(v, "time", 1679476870);
	expect_str(d, "did", "18800606");
	expect_absent(d, "did_cid");
	expect_str(d, "end_reason", "callee_disconnect");
	expect_absent(d, "ended_reason");
	expect_str(d, "direction", "inbound");
	expect_num(d, "status_code", 0);
	t = at(d, "call_targets", 2);
	expect_null(t, "answered_time");	/* "0" = not answered */
	expect_num(t, "ring_time", 1679476858);
	expect_str(t, "id", "690833127458734080");
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(fixed.p);
	free(buf);
}

/* ---- §4.4 / §4.6 management ---- */

static void
norm__extension_created_duplicate_key__last_wins(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("extension_created_duplicate_key.json",
	    "extension_created", "management", &res, &d);
	expect_key(&res.recs[0], "883634229655633920:823634238409396");
	assert_int_equal(count_text(&res.recs[0], "\"username\""), 1);
	expect_str(d, "username", "testuser1");
	expect_str(d, "extension_number", "1001");
	assert_true(cJSON_IsTrue(get(d, "enabled")));
	expect_null(v, "time");
	assert_null(hdr(&res.recs[0], "ce_time"));
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__queue_created__keyed_by_queue_number(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("queue_created.json", "queue_created", "management",
	    &res, &d);
	expect_key(&res.recs[0], "883634229655633920:8800");
	expect_str(d, "queue_number", "8800");
	expect_null(v, "time");
	expect_null(v, "session_id");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* ---- §4.5 queue_events ---- */

static void
norm__queue_status_fullwidth_comma__invalid_json(void **state)
{
	struct norm_result res;
	unsigned char *buf;
	size_t len;
	cJSON *v;

	(void)state;
	buf = load("queue_status_fullwidth_comma.json", &len);
	run(buf, len, &res);
	v = dead(&res, NORM_DL_INVALID_JSON);
	/* UTF-8, so kept as text, the full-width comma intact. */
	expect_str(v, "raw", (const char *)buf);
	assert_non_null(strstr(get(v, "raw")->valuestring, "}\xef\xbc\x8c"));
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(buf);
}

static void
norm__queue_status_reconstructed__queue_key_nested_times(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("queue_status_reconstructed.json", "queue_status",
	    "queue", &res, &d);
	expect_key(&res.recs[0], "676398719834259456:677046776364007424");
	expect_null(v, "time");		/* only nested timestamps */
	expect_null(v, "session_id");	/* nested ones do not count */
	expect_num(at(d, "waiting_list", 0), "timestamp", 1676206249);
	expect_str(at(d, "waiting_list", 0), "position", "2");
	expect_str(at(d, "waiting_list", 0), "session_id", "6763987198342");
	expect_num(at(d, "agents", 0), "timestamp", 1676206249);
	expect_str(at(d, "agents", 0), "state", "QUEUE_CALL");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__queue_caller_and_agent_status__keyed_by_queue_id(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("queue_caller_status.json", "queue_caller_status",
	    "queue", &res, &d);
	expect_key(&res.recs[0], "676398719834259456:677046776364007424");
	expect_num(at(d, "updated_callers", 0), "timestamp", 1676206249);
	expect_str(at(d, "updated_callers", 0), "reason",
	    "enqueue/agent_answered/overflow/hangup/callback");
	cJSON_Delete(v);
	norm_result_clear(&res);

	v = fixture_event("queue_agent_status.json", "queue_agent_status",
	    "queue", &res, &d);
	expect_key(&res.recs[0], "676398719834259456:677046776364007424");
	expect_num(at(d, "updated_agents", 0), "timestamp", 1676206249);
	expect_str(at(d, "removed_agents", 0), "agent_extension_number",
	    "102");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__queue_sla_breached__timestamp_is_time(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	v = fixture_event("queue_sla_breached.json", "queue_sla_breached",
	    "queue", &res, &d);
	expect_key(&res.recs[0], "676398719834259456:677046776364007424");
	expect_num(v, "time", 1676206249);
	assert_string_equal(hdr(&res.recs[0], "ce_time"),
	    "2023-02-12T12:50:49Z");
	expect_num(d, "timestamp", 1676206249);
	expect_num(d, "total_callers_breached", 6);
	expect_num(d, "sla_time_secs", 90);
	expect_num(d, "waiting_callers", 100);
	expect_str(d, "caller", "00431334081002");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* ---- command replies (§2.1, §3.4) ---- */

static void
reply_fixture(const char *file, const char *cmd, int status, const char *err)
{
	struct norm_result res;
	unsigned char *buf;
	size_t len;

	buf = load(file, &len);
	run(buf, len, &res);
	assert_int_equal(res.kind, NORM_REPLY);
	assert_int_equal(res.nrecs, 0);
	assert_null(res.recs);
	if (cmd == NULL)
		assert_null(res.reply_command);
	else
		assert_string_equal(res.reply_command, cmd);
	assert_int_equal(res.reply_status, status);
	if (err == NULL)
		assert_null(res.reply_error);
	else
		assert_string_equal(res.reply_error, err);
	norm_result_clear(&res);
	free(buf);
}

static void
norm__auth_replies__parsed(void **state)
{
	(void)state;
	reply_fixture("reply_auth_ok.json", "auth", 0, NULL);
	reply_fixture("reply_auth_error.json", "auth", -1,
	    "access_token , username , domain or password error");
	reply_fixture("reply_v16_0_ok.json", NULL, 0, NULL);
	reply_fixture("reply_v16_0_error.json", NULL, -1,
	    "name or password error");
}

static void
norm__subscribe_replies__parsed(void **state)
{
	(void)state;
	reply_fixture("reply_subscribe_ok.json", "subscribe", 0, NULL);
	reply_fixture("reply_subscribe_error.json", "subscribe", -1,
	    "forbidden topic");
}

static void
reply_str(const char *frame, const char *cmd, int status, const char *err)
{
	struct norm_result res;

	run_str(frame, &res);
	assert_int_equal(res.kind, NORM_REPLY);
	if (cmd == NULL)
		assert_null(res.reply_command);
	else
		assert_string_equal(res.reply_command, cmd);
	assert_int_equal(res.reply_status, status);
	if (err == NULL)
		assert_null(res.reply_error);
	else
		assert_string_equal(res.reply_error, err);
	norm_result_clear(&res);
}

static void
norm__reply_status_forms__documented_choice(void **state)
{
	(void)state;
	reply_str("{\"command\":\"auth\"}", "auth", 0, NULL);
	reply_str("{\"command\":\"auth\",\"error\":\"no\"}", "auth", -1, "no");
	reply_str("{\"command\":\"auth\",\"status\":\"0\"}", "auth", 0, NULL);
	reply_str("{\"command\":\"auth\",\"status\":\"x\"}", "auth", -1, NULL);
	reply_str("{\"command\":\"auth\",\"status\":1.5}", "auth", -1, NULL);
	reply_str("{\"command\":\"auth\",\"status\":null}", "auth", -1, NULL);
	reply_str("{\"command\":\"auth\",\"status\":99999999999}", "auth", -1,
	    NULL);
	reply_str("{\"command\":\"auth\",\"status\":2,\"error\":7}", "auth",
	    2, NULL);
	/* A command key wins over event_type. */
	reply_str("{\"command\":\"x\",\"event_type\":\"y\",\"status\":0}", "x",
	    0, NULL);
	reply_str("{\"id\":3,\"status\":-1}", NULL, -1, NULL);
}

static void
norm__not_a_reply__dead_or_event(void **state)
{
	struct norm_result res;

	(void)state;
	/* v16.0 form needs a numeric status and only status/error/id. */
	dead_str("{\"status\":\"0\"}", NORM_DL_NO_EVENT_TYPE);
	dead_str("{\"status\":0,\"foo\":1}", NORM_DL_NO_EVENT_TYPE);
	dead_str("{\"error\":\"x\"}", NORM_DL_NO_EVENT_TYPE);
	/* A non-string command is no reply. */
	dead_str("{\"command\":1,\"status\":0}", NORM_DL_NO_EVENT_TYPE);
	run_str("{\"command\":null,\"event_type\":\"x\"}", &res);
	assert_int_equal(res.kind, NORM_EVENTS);
	norm_result_clear(&res);
}

/* ---- numbers and conversions ---- */

static void
norm__ids_sent_as_numbers__exact_strings(void **state)
{
	static const char frame[] = "{\"event_type\":\"call_start\","
	    "\"tenant_id\":883611252155219968,"
	    "\"session_id\":885337248273272832,"
	    "\"cdr_id\":1234567890123456789,"
	    "\"nested\":[{\"id\":-9223372036854775808,"
	    "\"peer_extension_id\":18446744073709551615}],"
	    "\"odd_id\":1.5e3}";
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "call_start", "call", &d);
	expect_key(&res.recs[0], "883611252155219968:885337248273272832");
	expect_str(v, "tenant_id", "883611252155219968");
	expect_str(v, "session_id", "885337248273272832");
	expect_str(d, "tenant_id", "883611252155219968");
	expect_str(d, "session_id", "885337248273272832");
	expect_str(d, "cdr_id", "1234567890123456789");
	expect_str(at(d, "nested", 0), "id", "-9223372036854775808");
	expect_str(at(d, "nested", 0), "peer_extension_id",
	    "18446744073709551615");
	expect_str(d, "odd_id", "1.5e3");	/* the literal, as sent */
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__big_numbers__printed_exactly(void **state)
{
	static const char frame[] = "{\"event_type\":\"x\","
	    "\"big\":123456789012345678901234567890,"
	    "\"prec\":1.0000000000000001,\"huge\":1E400,\"tiny\":-4.9e-330,"
	    "\"negz\":-0.0,\"arr\":[9007199254740993,0.1,-17],"
	    "\"ring_duration\":9223372036854775807,"
	    "\"expires\":18446744073709551616}";
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "x", "other", &d);
	expect_text(&res.recs[0], "\"big\":123456789012345678901234567890,");
	expect_text(&res.recs[0], "\"prec\":1.0000000000000001,");
	expect_text(&res.recs[0], "\"huge\":1E400,");
	expect_text(&res.recs[0], "\"tiny\":-4.9e-330,");
	expect_text(&res.recs[0], "\"negz\":-0.0,");
	expect_text(&res.recs[0], "\"arr\":[9007199254740993,0.1,-17]");
	expect_text(&res.recs[0], "\"ring_duration\":9223372036854775807,");
	expect_text(&res.recs[0], "\"expires\":18446744073709551616}");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__numeric_strings__converted_per_key(void **state)
{
	static const char frame[] = "{\"event_type\":\"x\","
	    "\"time\":\"1704186780\",\"expires\":\"123\",\"last_update\":\"5\","
	    "\"reg_id\":\"7\",\"fail_code\":\"480\",\"status_code\":\"007\","
	    "\"talk_duration\":\"-5\",\"x_duration\":\"9223372036854775807\","
	    "\"ring_duration\":\"9223372036854775808\",\"expires2\":\"1\","
	    "\"position\":\"2\",\"bad\":{\"expires\":\"12a\","
	    "\"status_code\":\"\",\"fail_code\":\"+5\",\"last_update\":\" 5\","
	    "\"reg_id\":\"-\",\"time\":\"1.5\"},"
	    "\"neg\":{\"last_update\":\"-9223372036854775808\","
	    "\"expires\":\"-0\",\"reg_id\":7,\"fail_code\":true}}";
	struct norm_result res;
	const cJSON *d, *b, *n;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "x", "other", &d);
	expect_num(v, "time", 1704186780);
	expect_num(d, "time", 1704186780);
	expect_num(d, "expires", 123);
	expect_num(d, "last_update", 5);
	expect_num(d, "reg_id", 7);
	expect_num(d, "fail_code", 480);
	expect_num(d, "status_code", 7);
	expect_text(&res.recs[0], "\"status_code\":7,");
	expect_num(d, "talk_duration", -5);
	expect_text(&res.recs[0], "\"x_duration\":9223372036854775807,");
	expect_str(d, "ring_duration", "9223372036854775808"); /* > int64 */
	expect_str(d, "expires2", "1");		/* not a listed key */
	expect_str(d, "position", "2");
	b = get(d, "bad");
	expect_str(b, "expires", "12a");
	expect_str(b, "status_code", "");
	expect_str(b, "fail_code", "+5");
	expect_str(b, "last_update", " 5");
	expect_str(b, "reg_id", "-");
	expect_str(b, "time", "1.5");
	n = get(d, "neg");
	expect_text(&res.recs[0], "\"last_update\":-9223372036854775808,");
	expect_num(n, "expires", 0);
	expect_text(&res.recs[0], "\"expires\":0,");
	expect_num(n, "reg_id", 7);
	assert_true(cJSON_IsTrue(get(n, "fail_code")));
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__zero_times__null_at_every_depth(void **state)
{
	static const char frame[] = "{\"event_type\":\"call_cdr\","
	    "\"time\":\"0\",\"timestamp\":0,\"start_time\":\"00\","
	    "\"ring_time\":-0,\"answered_time\":\"-0\",\"ended_time\":0.0,"
	    "\"call_targets\":[{\"answered_time\":\"0\",\"ring_time\":0e5,"
	    "\"ended_time\":\"1\"}],\"ring_duration\":\"0\","
	    "\"status_code\":0}";
	struct norm_result res;
	const cJSON *d, *t;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "call_cdr", "cdr", &d);
	expect_null(d, "time");
	expect_null(d, "timestamp");
	expect_null(d, "start_time");
	expect_null(d, "ring_time");
	expect_null(d, "answered_time");
	expect_null(d, "ended_time");
	t = at(d, "call_targets", 0);
	expect_null(t, "answered_time");
	expect_null(t, "ring_time");
	expect_num(t, "ended_time", 1);
	/* Not times: zero stays zero. */
	expect_num(d, "ring_duration", 0);
	expect_num(d, "status_code", 0);
	expect_null(v, "time");
	assert_null(hdr(&res.recs[0], "ce_time"));
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__event_time__first_positive_in_order(void **state)
{
	static const struct {
		const char *frame;
		double time;		/* 0: null */
		const char *ce_time;
	} t[] = {
		{ "{\"event_type\":\"x\",\"start_time\":\"3\","
		  "\"ended_time\":\"2\",\"timestamp\":\"1\"}", 1,
		  "1970-01-01T00:00:01Z" },
		{ "{\"event_type\":\"x\",\"start_time\":\"3\","
		  "\"ended_time\":\"2\",\"timestamp\":\"0\"}", 2, NULL },
		{ "{\"event_type\":\"x\",\"start_time\":\"3\","
		  "\"ended_time\":\"-2\",\"time\":\"abc\"}", 3, NULL },
		{ "{\"event_type\":\"x\",\"time\":4,\"timestamp\":5}", 4,
		  NULL },
		{ "{\"event_type\":\"x\",\"time\":4.5,\"timestamp\":5}", 5,
		  NULL },
		{ "{\"event_type\":\"x\",\"time\":true}", 0, NULL },
		{ "{\"event_type\":\"x\",\"time\":\"9223372036854775807\"}",
		  9223372036854775807.0, NULL },
		{ "{\"event_type\":\"x\",\"time\":\"253402300799\"}",
		  253402300799.0, "9999-12-31T23:59:59Z" },
		{ "{\"event_type\":\"x\",\"time\":\"253402300800\"}",
		  253402300800.0, NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++) {
		struct norm_result res;
		const cJSON *d;
		cJSON *v;

		run_str(t[i].frame, &res);
		v = one_event(&res, "x", "other", &d);
		if (t[i].time == 0) {
			expect_null(v, "time");
			assert_null(hdr(&res.recs[0], "ce_time"));
		} else {
			expect_num(v, "time", t[i].time);
		}
		if (t[i].ce_time != NULL)
			assert_string_equal(hdr(&res.recs[0], "ce_time"),
			    t[i].ce_time);
		cJSON_Delete(v);
		norm_result_clear(&res);
	}
	/* An int64 time far beyond year 9999: kept, but no ce_time. */
	{
		struct norm_result res;

		run_str("{\"event_type\":\"x\",\"time\":\"9223372036854775807\"}",
		    &res);
		expect_text(&res.recs[0], "\"time\":9223372036854775807,");
		assert_null(hdr(&res.recs[0], "ce_time"));
		norm_result_clear(&res);
	}
}

static void
norm__legacy_names__renamed_at_every_depth(void **state)
{
	static const char frame[] = "{\"event_type\":\"call_cdr\","
	    "\"ended_reason\":\"a\",\"did_cid\":\"1\","
	    "\"call_targets\":[{\"ended_reason\":\"b\",\"did_cid\":\"2\"},"
	    "{\"end_reason\":\"new\",\"ended_reason\":\"old\","
	    "\"did_cid\":\"old\",\"did\":\"new\"}],"
	    "\"deep\":{\"x\":[[{\"ended_reason\":\"c\"}]]}}";
	struct norm_result res;
	const cJSON *d, *t;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "call_cdr", "cdr", &d);
	expect_str(d, "end_reason", "a");
	expect_str(d, "did", "1");
	t = at(d, "call_targets", 0);
	expect_str(t, "end_reason", "b");
	expect_str(t, "did", "2");
	t = at(d, "call_targets", 1);
	expect_str(t, "end_reason", "new");
	expect_str(t, "did", "new");
	assert_int_equal(cJSON_GetArraySize(t), 2);
	t = cJSON_GetArrayItem(cJSON_GetArrayItem(get(get(d, "deep"), "x"), 0),
	    0);
	expect_str(t, "end_reason", "c");
	assert_int_equal(count_text(&res.recs[0], "ended_reason"), 0);
	assert_int_equal(count_text(&res.recs[0], "did_cid"), 0);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__direction__mapped_at_every_depth(void **state)
{
	static const char frame[] = "{\"event_type\":\"call_cdr\","
	    "\"direction\":\"in2out\",\"call_targets\":["
	    "{\"direction\":\"ext\"},{\"direction\":\"in\"},"
	    "{\"direction\":\"out\"},{\"direction\":\"internal\"},"
	    "{\"direction\":\"inbound_outbound\"},{\"direction\":\"EXT\"},"
	    "{\"direction\":\"sideways\"},{\"direction\":1},"
	    "{\"x\":\"ext\"}]}";
	static const char *const want[] = {
		"internal", "inbound", "outbound", "internal",
		"inbound_outbound", "EXT", "sideways",
	};
	struct norm_result res;
	const cJSON *d;
	cJSON *v;
	size_t i;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "call_cdr", "cdr", &d);
	expect_str(d, "direction", "inbound_outbound");
	for (i = 0; i < W2K_ARRAY_SIZE(want); i++)
		expect_str(at(d, "call_targets", (int)i), "direction", want[i]);
	expect_num(at(d, "call_targets", 7), "direction", 1);
	expect_str(at(d, "call_targets", 8), "x", "ext");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__duplicate_keys__last_wins_numbers_mapped(void **state)
{
	static const char frame[] = "{\"event_type\":\"x\",\"n\":1,"
	    "\"n\":12345678901234567890,\"m\":[2,{\"k\":3,\"k\":4}],"
	    "\"id\":5,\"id\":\"6\",\"event_type\":\"y\",\"q\":7}";
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "y", "other", &d);
	expect_text(&res.recs[0], "\"n\":12345678901234567890");
	assert_int_equal(count_text(&res.recs[0], "\"n\":"), 1);
	expect_text(&res.recs[0], "\"m\":[2,{\"k\":4}]");
	expect_str(d, "id", "6");
	expect_num(d, "q", 7);
	assert_int_equal(count_text(&res.recs[0], "\"event_type\""), 1);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* Keys with equal fingerprints (length, first and last byte) but other
 * bytes are all kept; a key three times keeps its last; an escaped key
 * equals its plain spelling; output order is document order. */
static void
norm__duplicate_keys__fingerprint_collisions_exact(void **state)
{
	static const char frame[] = "{\"event_type\":\"x\",\"ab1c\":1,"
	    "\"k\":1,\"ab2c\":2,\"k\":2,\"a\\u0062\\u0031c\":3,\"k\":3,"
	    "\"ab3c\":4,\"t\\tb\":5,\"t\tb\":6}";
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "x", "other", &d);
	expect_text(&res.recs[0], "\"data\":{\"event_type\":\"x\",\"ab2c\":2,"
	    "\"ab1c\":3,\"k\":3,\"ab3c\":4,\"t\\tb\":6}");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__duplicate_keys_large_object__last_wins(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d;
	cJSON *v;
	char key[16];
	int i;

	(void)state;
	bputs(&b, "{\"event_type\":\"x\"");
	for (i = 0; i < 200; i++)
		bprintf(&b, ",\"k%d\":%d", i % 50, i);
	bputs(&b, "}");
	run(b.p, b.len, &res);
	v = one_event(&res, "x", "other", &d);
	assert_int_equal(cJSON_GetArraySize(d), 51);
	for (i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		expect_num(d, key, 150 + i);
	}
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(b.p);
}

static void
norm__huge_object__no_quadratic_blowup(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d;
	cJSON *v;
	int i;

	(void)state;
	/* NORM_MAX_MEMBERS members, half of them distinct keys: pairwise
	 * de-duplication would take 5*10^7 compares; sorting takes a
	 * blink. */
	bputs(&b, "{\"event_type\":\"x\"");
	for (i = 1; i < NORM_MAX_MEMBERS; i++)
		bprintf(&b, ",\"k%d\":%d", i % (NORM_MAX_MEMBERS / 2), i);
	bputs(&b, "}");
	run(b.p, b.len, &res);
	v = one_event(&res, "x", "other", &d);
	assert_int_equal(cJSON_GetArraySize(d), NORM_MAX_MEMBERS / 2 + 1);
	expect_num(d, "k0", NORM_MAX_MEMBERS / 2);
	expect_num(d, "k1", NORM_MAX_MEMBERS / 2 + 1);
	expect_num(d, "k4999", NORM_MAX_MEMBERS - 1);
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(b.p);
}

static void
norm__strings__escapes_and_utf8_round_trip(void **state)
{
	static const char frame[] = "{\"event_type\":\"x\","
	    "\"a\":\"\\u00e9\\ud83d\\ude00\\/\\\"\\\\\\n\\u001f\","
	    "\"raw\":\"tab\there\","
	    "\"utf\":\"\xe4\xb8\xad\xf0\x9f\x98\x80\","
	    "\"k\\u0065y\":1}";
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "x", "other", &d);
	expect_str(d, "a", "\xc3\xa9\xf0\x9f\x98\x80/\"\\\n\x1f");
	expect_text(&res.recs[0], "\"a\":\"\xc3\xa9\xf0\x9f\x98\x80/\\\"\\\\"
	    "\\n\\u001f\"");
	/* A raw control character (tolerated) comes out escaped. */
	expect_str(d, "raw", "tab\there");
	expect_text(&res.recs[0], "\"raw\":\"tab\\there\"");
	expect_str(d, "utf", "\xe4\xb8\xad\xf0\x9f\x98\x80");
	expect_num(d, "key", 1);
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* ---- keys ---- */

static void
norm__key__fallback_order(void **state)
{
	static const struct {
		const char *frame, *key;
	} t[] = {
		{ "{\"event_type\":\"x\",\"tenant_id\":\"t\",\"session_id\":\"s\","
		  "\"extension_id\":\"e\",\"queue_id\":\"q\","
		  "\"queue_number\":\"n\"}", "t:s" },
		{ "{\"event_type\":\"x\",\"tenant_id\":\"t\",\"session_id\":\"\","
		  "\"extension_id\":\"e\",\"queue_id\":\"q\"}", "t:e" },
		{ "{\"event_type\":\"x\",\"tenant_id\":\"t\",\"queue_id\":\"q\","
		  "\"queue_number\":\"n\"}", "t:q" },
		{ "{\"event_type\":\"x\",\"tenant_id\":\"t\","
		  "\"queue_number\":\"n\"}", "t:n" },
		{ "{\"event_type\":\"x\",\"tenant_id\":\"t\","
		  "\"queue_number\":8001}", "t:8001" },
		{ "{\"event_type\":\"x\",\"tenant_id\":\"t\","
		  "\"session_id\":null,\"queue_number\":{}}", "t" },
		{ "{\"event_type\":\"x\",\"tenant_id\":42,"
		  "\"extension_id\":7}", "42:7" },
		{ "{\"event_type\":\"x\",\"session_id\":\"s\"}", NULL },
		{ "{\"event_type\":\"x\",\"tenant_id\":\"\","
		  "\"session_id\":\"s\"}", NULL },
		{ "{\"event_type\":\"x\",\"tenant_id\":true}", NULL },
		{ "{\"event_type\":\"x\",\"tenant_id\":\"a:b\","
		  "\"session_id\":\"c\\u00e9\"}", "a:b:c\xc3\xa9" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++) {
		struct norm_result res;

		run_str(t[i].frame, &res);
		assert_int_equal(res.kind, NORM_EVENTS);
		expect_key(&res.recs[0], t[i].key);
		norm_result_clear(&res);
	}
}

static void
norm__envelope_ids__null_when_not_strings(void **state)
{
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	run_str("{\"event_type\":\"x\",\"tenant_id\":{},\"session_id\":\"\"}",
	    &res);
	v = one_event(&res, "x", "other", &d);
	expect_null(v, "tenant_id");
	expect_str(v, "session_id", "");
	expect_null(v, "time");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__received_at__utc_milliseconds(void **state)
{
	static const struct {
		int64_t us;
		const char *want;
	} t[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 999, "1970-01-01T00:00:00.000Z" },
		{ 1000, "1970-01-01T00:00:00.001Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
		{ INT64_C(951782400000000), "2000-02-29T00:00:00.000Z" },
		{ INT64_C(1732608000123456), "2024-11-26T08:00:00.123Z" },
		{ INT64_C(253402300799999999), "9999-12-31T23:59:59.999Z" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++) {
		struct norm_result res;
		cJSON *v;

		run_ex(PBX, "{\"event_type\":\"x\"}", 18, false, t[i].us, &res);
		v = value_of(&res.recs[0]);
		expect_str(v, "received_at", t[i].want);
		assert_int_equal(res.recs[0].received_us, t[i].us);
		cJSON_Delete(v);
		norm_result_clear(&res);
	}
	/* Absurd clocks still give valid JSON. */
	for (i = 0; i < 2; i++) {
		struct norm_result res;
		cJSON *v;

		run_ex(PBX, "{\"event_type\":\"x\"}", 18, false,
		    i ? INT64_MAX : INT64_MIN, &res);
		v = value_of(&res.recs[0]);
		assert_true(cJSON_IsString(get(v, "received_at")));
		cJSON_Delete(v);
		norm_result_clear(&res);
		run_ex(PBX, "[", 1, false, i ? INT64_MAX : INT64_MIN, &res);
		cJSON_Delete(value_of(&res.recs[0]));
		norm_result_clear(&res);
	}
}

static void
norm__pbx_name__escaped_and_in_source(void **state)
{
	struct norm_result res;
	cJSON *v;
	char longname[400];

	(void)state;
	run_ex("a\"b", "{\"event_type\":\"x\"}", 18, false, 0, &res);
	v = value_of(&res.recs[0]);
	expect_str(v, "pbx", "a\"b");
	assert_string_equal(hdr(&res.recs[0], "ce_source"),
	    "wsi2kafka://a\"b");
	cJSON_Delete(v);
	norm_result_clear(&res);

	memset(longname, 'p', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	run_ex(longname, "{\"event_type\":\"x\"}", 18, false, 0, &res);
	assert_int_equal(strlen(hdr(&res.recs[0], "ce_source")),
	    strlen("wsi2kafka://") + sizeof(longname) - 1);
	norm_result_clear(&res);

	run_ex(NULL, "{\"event_type\":\"x\"}", 18, false, 0, &res);
	v = value_of(&res.recs[0]);
	expect_str(v, "pbx", "");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* ---- record ids ---- */

static void
expect_id(const char *pbx, const unsigned char *frame, size_t len,
    unsigned part, const char *got)
{
	unsigned char *msg, md[SHA256_DIGEST_LENGTH];
	char want[RECORD_ID_LEN + 1], num[16];
	size_t pl = strlen(pbx), nl, i;

	nl = (size_t)snprintf(num, sizeof(num), "%u", part);
	msg = malloc(pl + 1 + len + 1 + nl);
	assert_non_null(msg);
	memcpy(msg, pbx, pl);
	msg[pl] = 0;
	memcpy(msg + pl + 1, frame, len);
	msg[pl + 1 + len] = 0;
	memcpy(msg + pl + 2 + len, num, nl);
	SHA256(msg, pl + 2 + len + nl, md);
	for (i = 0; i < 16; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	assert_string_equal(got, want);
	free(msg);
}

static void
norm__record_id__independent_sha256(void **state)
{
	static const char frame[] =
	    "{\"event_type\":\"call_start\",\"tenant_id\":\"1\"}";
	struct norm_result res;
	char id[RECORD_ID_LEN + 1];
	unsigned char *buf;
	size_t len, i;

	(void)state;
	run_str(frame, &res);
	/* printf 'hq\000%s\000''0' "$frame" | sha256sum | cut -c1-32 */
	assert_string_equal(res.recs[0].id,
	    "94b00af49e06707106513578d16bcfe4");
	norm_record_id(PBX, (const unsigned char *)frame, strlen(frame), 1,
	    id);
	assert_string_equal(id, "7dc1a56d1cf7f8b783d72b69f81bb556");
	expect_id(PBX, (const unsigned char *)frame, strlen(frame), 0,
	    res.recs[0].id);
	norm_result_clear(&res);

	buf = load("extension_status_v22_3.json", &len);
	run(buf, len, &res);
	for (i = 0; i < res.nrecs; i++)
		expect_id(PBX, buf, len, (unsigned)i, res.recs[i].id);
	norm_result_clear(&res);
	free(buf);

	norm_record_id("", NULL, 0, 4294967295u, id);
	expect_id("", (const unsigned char *)"", 0, 4294967295u, id);
}

static void
norm__record_id__depends_on_pbx_and_bytes(void **state)
{
	struct norm_result a, b, c, d;

	(void)state;
	run_ex("hq", "{\"event_type\":\"x\"}", 18, false, 1, &a);
	run_ex("hq", "{\"event_type\":\"x\"}", 18, false, 2, &b);
	run_ex("hq2", "{\"event_type\":\"x\"}", 18, false, 1, &c);
	run_ex("hq", "{\"event_type\":\"x\"} ", 19, false, 1, &d);
	/* The arrival time is no part of the id: a replay dedupes. */
	assert_string_equal(a.recs[0].id, b.recs[0].id);
	assert_string_not_equal(a.recs[0].id, c.recs[0].id);
	assert_string_not_equal(a.recs[0].id, d.recs[0].id);
	assert_int_equal(strspn(a.recs[0].id, "0123456789abcdef"),
	    RECORD_ID_LEN);
	norm_result_clear(&a);
	norm_result_clear(&b);
	norm_result_clear(&c);
	norm_result_clear(&d);
}

/* ---- extension_status split, edge cases ---- */

static void
norm__extension_status_split__entry_wins_and_time(void **state)
{
	static const char frame[] = "{\"event_type\":\"extension_status\","
	    "\"tenant_id\":\"t\",\"time\":\"100\",\"note\":\"frame\","
	    "\"status\":[{\"extension_id\":\"e1\",\"time\":\"200\","
	    "\"note\":\"entry\"},{\"extension_id\":2,\"session_id\":\"s\"},"
	    "{\"tenant_id\":\"u\",\"event_type\":\"z\"},{}]}";
	struct norm_result res;
	cJSON *v;
	const cJSON *d;

	(void)state;
	run_str(frame, &res);
	assert_int_equal(res.kind, NORM_EVENTS);
	assert_int_equal(res.nrecs, 4);

	v = value_of(&res.recs[0]);
	d = get(v, "data");
	expect_key(&res.recs[0], "t:e1");
	expect_num(v, "time", 200);
	expect_num(d, "time", 200);
	expect_str(d, "note", "entry");
	assert_int_equal(count_text(&res.recs[0], "\"note\""), 1);
	assert_int_equal(count_text(&res.recs[0], "\"time\""), 2);
	cJSON_Delete(v);

	/* A part is keyed by its extension even with a session id. */
	v = value_of(&res.recs[1]);
	expect_key(&res.recs[1], "t:2");
	expect_str(get(v, "data"), "extension_id", "2");
	expect_str(v, "session_id", "s");
	expect_num(v, "time", 100);
	cJSON_Delete(v);

	/* The entry wins even for tenant_id and event_type; the record's
	 * type stays the frame's. */
	v = value_of(&res.recs[2]);
	expect_key(&res.recs[2], "u");
	expect_str(v, "tenant_id", "u");
	expect_str(v, "type", "extension_status");
	assert_string_equal(res.recs[2].type, "extension_status");
	expect_str(get(v, "data"), "event_type", "z");
	cJSON_Delete(v);

	v = value_of(&res.recs[3]);
	expect_key(&res.recs[3], "t");
	d = get(v, "data");
	assert_int_equal(cJSON_GetArraySize(d), 4);
	expect_absent(d, "status");
	cJSON_Delete(v);

	assert_string_not_equal(res.recs[0].id, res.recs[3].id);
	norm_result_clear(&res);
}

static void
norm__extension_status_unsplittable__one_whole_record(void **state)
{
	static const char *const frames[] = {
		"{\"event_type\":\"extension_status\",\"tenant_id\":\"t\","
		"\"status\":[]}",
		"{\"event_type\":\"extension_status\",\"tenant_id\":\"t\","
		"\"status\":[{\"extension_id\":\"e\"},\"x\"]}",
		"{\"event_type\":\"extension_status\",\"tenant_id\":\"t\","
		"\"status\":[[{\"extension_id\":\"e\"}]]}",
		"{\"event_type\":\"extension_status\",\"tenant_id\":\"t\","
		"\"status\":{\"extension_id\":\"e\"}}",
		"{\"event_type\":\"extension_status\",\"tenant_id\":\"t\","
		"\"status\":\"ONLINE\"}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(frames); i++) {
		struct norm_result res;
		const cJSON *d;
		cJSON *v;

		run_str(frames[i], &res);
		v = one_event(&res, "extension_status", "extension", &d);
		assert_non_null(get(d, "status"));
		expect_key(&res.recs[0], "t");
		expect_id(PBX, (const unsigned char *)frames[i],
		    strlen(frames[i]), 0, res.recs[0].id);
		cJSON_Delete(v);
		norm_result_clear(&res);
	}
}

static void
norm__extension_status_huge_fanout__one_whole_record(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d;
	cJSON *v;
	int i;

	(void)state;
	/* 100 KiB repeated by 1000 parts would be 100 MB: not split. */
	bputs(&b, "{\"event_type\":\"extension_status\",\"tenant_id\":\"t\","
	    "\"pad\":\"");
	for (i = 0; i < 100 * 1024; i++)
		bputs(&b, "x");
	bputs(&b, "\",\"status\":[{}");
	for (i = 1; i < 1000; i++)
		bputs(&b, ",{}");
	bputs(&b, "]}");
	run(b.p, b.len, &res);
	v = one_event(&res, "extension_status", "extension", &d);
	assert_int_equal(cJSON_GetArraySize(get(d, "status")), 1000);
	cJSON_Delete(v);
	norm_result_clear(&res);

	/* Many small entries do split. */
	b.len = 0;
	bputs(&b, "{\"event_type\":\"extension_status\",\"tenant_id\":\"t\","
	    "\"status\":[");
	for (i = 0; i < 5000; i++)
		bprintf(&b, "%s{\"extension_id\":\"%d\"}", i ? "," : "", i);
	bputs(&b, "]}");
	run(b.p, b.len, &res);
	assert_int_equal(res.nrecs, 5000);
	expect_key(&res.recs[4999], "t:4999");
	expect_id(PBX, (const unsigned char *)b.p, b.len, 4999,
	    res.recs[4999].id);
	norm_result_clear(&res);
	free(b.p);
}

static void
norm__extension_status_many_frame_fields__sorted_lookup(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d;
	cJSON *v;
	int i;

	(void)state;
	bputs(&b, "{\"event_type\":\"extension_status\",\"tenant_id\":\"t\"");
	for (i = 0; i < 40; i++)
		bprintf(&b, ",\"f%d\":\"frame\"", i);
	bputs(&b, ",\"status\":[{\"f7\":\"entry\",\"f39\":1},{\"f0\":2}]}");
	run(b.p, b.len, &res);
	assert_int_equal(res.nrecs, 2);
	v = value_of(&res.recs[0]);
	d = get(v, "data");
	assert_int_equal(cJSON_GetArraySize(d), 42);
	expect_str(d, "f7", "entry");
	expect_num(d, "f39", 1);
	expect_str(d, "f0", "frame");
	cJSON_Delete(v);
	v = value_of(&res.recs[1]);
	d = get(v, "data");
	assert_int_equal(cJSON_GetArraySize(d), 42);
	expect_num(d, "f0", 2);
	expect_str(d, "f7", "frame");
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(b.p);
}

/* ---- class, unknown types ---- */

static void
norm__class__per_contract(void **state)
{
	static const struct {
		const char *type, *cls;
	} t[] = {
		{ "call_cdr", "cdr" }, { "call_start", "call" },
		{ "call_update_info", "call" }, { "call_", "call" },
		{ "call_cdrx", "call" }, { "target_add", "target" },
		{ "target_ringing", "target" }, { "cdr_target_end", "target" },
		{ "cdr_target_answer", "target" },
		{ "extension_created", "management" },
		{ "extension_updated", "management" },
		{ "extension_destroyed", "management" },
		{ "extension_status", "extension" },
		{ "extension_destroy", "extension" },
		{ "queue_created", "management" },
		{ "queue_updated", "management" },
		{ "queue_destroy", "management" },
		{ "queue_destroyed", "queue" }, { "queue_status", "queue" },
		{ "queue_sla_breached", "queue" }, { "foo", "other" },
		{ "", "other" }, { "cdr_foo", "other" }, { "calls", "other" },
		{ "trunk_connected", "other" }, { "Call_cdr", "other" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++)
		assert_string_equal(norm_class(t[i].type), t[i].cls);
	assert_string_equal(norm_class(NULL), "other");
}

static void
norm__unknown_event__passes_through(void **state)
{
	static const char frame[] = "{\"event_type\":\"trunk_connected\","
	    "\"tenant_id\":\"t\",\"whatever\":{\"a\":[1,\"2\",null,true]},"
	    "\"time\":\"5\"}";
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	run_str(frame, &res);
	v = one_event(&res, "trunk_connected", "other", &d);
	expect_text(&res.recs[0], "\"data\":{\"event_type\":\"trunk_connected\","
	    "\"tenant_id\":\"t\",\"whatever\":{\"a\":[1,\"2\",null,true]},"
	    "\"time\":5}}");
	assert_string_equal(hdr(&res.recs[0], "ce_type"),
	    "com.portsip.wsi.trunk_connected");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* ---- dead letters ---- */

static void
norm__invalid_json__dead_letters(void **state)
{
	static const char *const frames[] = {
		"{\"event_type\":\"a\"} x",		/* trailing garbage */
		"{\"event_type\":\"a\"}{}",
		"{\"event_type\":\"a\"},",
		"{\"event_type\":",			/* truncated */
		"{\"event_type\":\"a\"",
		"{\"event_type\":\"a",
		"{'event_type':'a'}",
		"{\"event_type\":\"a\",}",		/* trailing comma */
		"{\"a\":[1,]}",
		"{\"a\":01}",				/* lenient numbers */
		"{\"a\":1.}",
		"{\"a\":-.5}",
		"{\"a\":+1}",
		"{\"a\":.5}",
		"{\"a\":1e}",
		"{\"a\":1.2.3}",
		"{\"a\":0x10}",
		"{\"a\":-}",
		"{\"a\":NaN}",
		"{\"a\":Infinity}",
		"{\"a\":1234567890123456789012345678901234567890123456789012"
		"345678901234}",			/* 64 digits */
		"\xef\xbb\xbf{\"event_type\":\"a\"}",	/* BOM */
		"{\x01\"a\":1}",			/* control outside */
		"{\"a\":\"\\x\"}",			/* bad escape */
		"{\"a\":\"\\u12\"}",
		"{\"a\":\"\\ud800\"}",			/* lone surrogates */
		"{\"a\":\"\\udc00\"}",
		"{\"a\":\"\\ud800\\u0041\"}",
		"{\"a\":\"\\u0000\"}",			/* would truncate */
		"{\"a\":tru}",
		"{\"a\":nul}",
		"{\"a\" 1}",
		"{1:2}",
		"[}",
		"",
		"   ",
		"\f{}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(frames); i++)
		dead_str(frames[i], NORM_DL_INVALID_JSON);
}

static void
norm__valid_edge_json__accepted(void **state)
{
	static const char *const frames[] = {
		" \t\r\n{\"event_type\":\"a\"} \t\r\n",
		"{\"event_type\":\"a\",\"n\":[-0,0.5e+3,1E-2,-12.5e9]}",
		"{\"event_type\":\"a\",\"n\":123456789012345678901234567890123"
		"456789012345678901234567890123}",	/* 63 digits */
		"{\"event_type\":\"a\",\"s\":\"\\ud83d\\ude00\"}",
		"{\"event_type\":\"a\",\"e\":{},\"f\":[],\"g\":[{}]}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(frames); i++) {
		struct norm_result res;
		const cJSON *d;
		cJSON *v;

		run_str(frames[i], &res);
		v = one_event(&res, "a", "other", &d);
		cJSON_Delete(v);
		norm_result_clear(&res);
	}
}

static void
norm__nul_byte__invalid_json(void **state)
{
	static const char frame[] = "{\"event_type\":\"a\",\"b\":\"x\0y\"}";
	struct norm_result res;
	cJSON *v;
	const cJSON *raw;

	(void)state;
	run(frame, sizeof(frame) - 1, &res);
	v = dead(&res, NORM_DL_INVALID_JSON);
	expect_text(&res.recs[0], "x\\u0000y");
	raw = get(v, "raw");
	assert_true(cJSON_IsString(raw));
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* A frame over a limit: one dead letter with that reason and the whole
 * frame (or its first 64 KiB) in raw, the same outcome as any bad frame
 * (the session publishes it and stays up); the next frame is unaffected. */
static void
over_limit(const struct buf *b, const char *reason)
{
	struct norm_result res;
	const cJSON *raw;
	cJSON *v;

	run(b->p, b->len, &res);
	v = dead(&res, reason);
	raw = get(v, "raw");
	assert_true(cJSON_IsString(raw));
	if (b->len <= NORM_DL_RAW_MAX) {
		assert_string_equal(raw->valuestring, b->p);
		expect_absent(v, "truncated");
	} else {
		assert_int_equal(strlen(raw->valuestring), NORM_DL_RAW_MAX);
		assert_true(cJSON_IsTrue(get(v, "truncated")));
	}
	cJSON_Delete(v);
	norm_result_clear(&res);

	run_str("{\"event_type\":\"call_start\",\"tenant_id\":\"1\"}", &res);
	assert_int_equal(res.kind, NORM_EVENTS);
	norm_result_clear(&res);
}

/* n nested containers (the root object first), innermost holding 1. */
static void
nest(struct buf *b, int n, bool objects)
{
	int i;

	b->len = 0;
	bputs(b, "{\"event_type\":\"deep\",\"a\":");
	for (i = 1; i < n; i++)
		bputs(b, objects ? "{\"a\":" : "[");
	bputs(b, "1");
	for (i = 1; i < n; i++)
		bputs(b, objects ? "}" : "]");
	bputs(b, "}");
}

static void
norm__depth_limit__at_limit_event_over_too_deep(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d, *a;
	cJSON *v;
	int i;

	(void)state;
	/* NORM_MAX_DEPTH containers, the frame's own object included. */
	nest(&b, NORM_MAX_DEPTH, false);
	run(b.p, b.len, &res);
	v = one_event(&res, "deep", "other", &d);
	for (a = get(d, "a"), i = 1; i < NORM_MAX_DEPTH - 1; i++)
		a = cJSON_GetArrayItem(a, 0);
	assert_true(cJSON_IsArray(a));
	assert_int_equal(cJSON_GetArrayItem(a, 0)->valueint, 1);
	cJSON_Delete(v);
	norm_result_clear(&res);
	nest(&b, NORM_MAX_DEPTH, true);
	run(b.p, b.len, &res);
	cJSON_Delete(one_event(&res, "deep", "other", &d));
	norm_result_clear(&res);

	/* One more level, of either kind. */
	nest(&b, NORM_MAX_DEPTH + 1, false);
	over_limit(&b, NORM_DL_TOO_DEEP);
	nest(&b, NORM_MAX_DEPTH + 1, true);
	over_limit(&b, NORM_DL_TOO_DEEP);

	/* 100000 '[': the first NORM_MAX_DEPTH + 1 decide, nothing else
	 * is looked at (the stack is fixed-size, so no recursion either). */
	b.len = 0;
	for (i = 0; i < 100000; i++)
		bputs(&b, "[");
	over_limit(&b, NORM_DL_TOO_DEEP);

	/* The first problem in the text decides: invalid JSON before the
	 * limit is invalid_json, after it too_deep. */
	b.len = 0;
	bputs(&b, "{\"event_type\":\"deep\",\"a\":01,\"b\":");
	for (i = 0; i < NORM_MAX_DEPTH; i++)
		bputs(&b, "[");
	run(b.p, b.len, &res);
	cJSON_Delete(dead(&res, NORM_DL_INVALID_JSON));
	norm_result_clear(&res);
	b.len = 0;
	for (i = 0; i < NORM_MAX_DEPTH + 1; i++)
		bputs(&b, "[");
	bputs(&b, "01");
	over_limit(&b, NORM_DL_TOO_DEEP);
	free(b.p);
}

static void
norm__members_limit__at_limit_event_over_too_many_members(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d;
	cJSON *v;
	int i;

	(void)state;
	/* An object of NORM_MAX_MEMBERS members (event_type is one). */
	bputs(&b, "{\"event_type\":\"x\"");
	for (i = 1; i < NORM_MAX_MEMBERS; i++)
		bprintf(&b, ",\"k%d\":%d", i, i);
	bputs(&b, "}");
	run(b.p, b.len, &res);
	v = one_event(&res, "x", "other", &d);
	assert_int_equal(cJSON_GetArraySize(d), NORM_MAX_MEMBERS);
	cJSON_Delete(v);
	norm_result_clear(&res);

	/* One more: duplicate keys count, as sent. */
	b.len--;
	bputs(&b, ",\"k1\":0}");
	over_limit(&b, NORM_DL_TOO_MANY_MEMBERS);

	/* The same inside a nested object (a call target). */
	b.len = 0;
	bputs(&b, "{\"event_type\":\"call_cdr\",\"call_targets\":[{\"id\":1");
	for (i = 1; i < NORM_MAX_MEMBERS; i++)
		bprintf(&b, ",\"k%d\":%d", i, i);
	bputs(&b, "}]}");
	run(b.p, b.len, &res);
	v = one_event(&res, "call_cdr", "cdr", &d);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(get(d,
	    "call_targets"), 0)), NORM_MAX_MEMBERS);
	cJSON_Delete(v);
	norm_result_clear(&res);
	b.len -= 3;
	bputs(&b, ",\"more\":1}]}");
	over_limit(&b, NORM_DL_TOO_MANY_MEMBERS);
	free(b.p);
}

static void
norm__elements_limit__at_limit_event_over_too_many_members(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d;
	cJSON *v;
	int i;

	(void)state;
	/* The largest real arrays: an extension_status snapshot, one entry
	 * per extension, split into one record each. */
	bputs(&b, "{\"event_type\":\"extension_status\",\"tenant_id\":\"t\","
	    "\"status\":[");
	for (i = 0; i < 20000; i++)
		bprintf(&b, "%s{\"extension\":\"sip:%d@test.io\","
		    "\"extension_id\":\"%d\",\"call_status\":\"\","
		    "\"online\":true,\"presence\":\"ONLINE\","
		    "\"presence_note\":\"\",\"push_online\":false,"
		    "\"time\":\"1704186780\"}", i ? "," : "", 1000 + i, i);
	bputs(&b, "]}");
	run(b.p, b.len, &res);
	assert_int_equal(res.kind, NORM_EVENTS);
	assert_int_equal(res.nrecs, 20000);
	expect_key(&res.recs[19999], "t:19999");
	norm_result_clear(&res);

	/* NORM_MAX_ELEMENTS elements. */
	b.len = 0;
	bputs(&b, "{\"event_type\":\"x\",\"a\":[0");
	for (i = 1; i < NORM_MAX_ELEMENTS; i++)
		bputs(&b, ",0");
	bputs(&b, "]}");
	run(b.p, b.len, &res);
	v = one_event(&res, "x", "other", &d);
	assert_int_equal(cJSON_GetArraySize(get(d, "a")), NORM_MAX_ELEMENTS);
	cJSON_Delete(v);
	norm_result_clear(&res);

	/* One more, even when that one is not valid JSON. */
	b.len -= 2;
	bputs(&b, ",0]}");
	over_limit(&b, NORM_DL_TOO_MANY_MEMBERS);
	b.len -= 4;
	bputs(&b, ",x");
	over_limit(&b, NORM_DL_TOO_MANY_MEMBERS);
	/* A top-level array too. */
	b.len = 0;
	bputs(&b, "[0");
	for (i = 1; i <= NORM_MAX_ELEMENTS; i++)
		bputs(&b, ",0");
	bputs(&b, "]");
	over_limit(&b, NORM_DL_TOO_MANY_MEMBERS);
	free(b.p);
}

/* NORM_MAX_VALUES in the whole frame, each array within its own limit:
 * the root, event_type, a, 999 arrays of 999 zeros and r zeros in a. */
static void
values_frame(struct buf *b, int r)
{
	int i, k;

	b->len = 0;
	bputs(b, "{\"event_type\":\"x\",\"a\":[");
	for (k = 0; k < 999; k++) {
		bputs(b, k ? ",[0" : "[0");
		for (i = 1; i < 999; i++)
			bputs(b, ",0");
		bputs(b, "]");
	}
	for (i = 0; i < r; i++)
		bputs(b, ",0");
	bputs(b, "]}");
}

static void
norm__values_limit__at_limit_event_over_too_many_members(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d;
	cJSON *v;

	(void)state;
	values_frame(&b, NORM_MAX_VALUES - 3 - 999 * 1000);
	run(b.p, b.len, &res);
	v = one_event(&res, "x", "other", &d);
	assert_int_equal(cJSON_GetArraySize(get(d, "a")),
	    NORM_MAX_VALUES - 3 - 999 * 999);
	cJSON_Delete(v);
	norm_result_clear(&res);

	values_frame(&b, NORM_MAX_VALUES - 3 - 999 * 1000 + 1);
	over_limit(&b, NORM_DL_TOO_MANY_MEMBERS);
	free(b.p);
}

static void
expect_base64(const cJSON *v, const void *data, size_t len)
{
	unsigned char *want = malloc((len + 2) / 3 * 4 + 1);

	assert_non_null(want);
	EVP_EncodeBlock(want, data, (int)len);
	expect_str(v, "raw_base64", (const char *)want);
	expect_absent(v, "raw");
	free(want);
}

static void
norm__invalid_utf8__raw_base64(void **state)
{
	static const struct {
		const char *s;
		size_t n;
	} t[] = {
		{ "{\"a\":\"\xc0\x80\"}", 10 },		/* overlong NUL */
		{ "{\"a\":\"\xe0\x80\xaf\"}", 11 },	/* overlong '/' */
		{ "{\"a\":\"\xed\xa0\x80\"}", 11 },	/* surrogate */
		{ "{\"a\":\"\xf4\x90\x80\x80\"}", 12 },	/* > U+10FFFF */
		{ "{\"a\":\"\xf5\x80\x80\x80\"}", 12 },
		{ "{\"a\":\"\xff\"}", 9 },
		{ "{\"a\":\"\x80\"}", 9 },		/* lone continuation */
		{ "{\"a\":\"\xe4\xb8\"}", 10 },		/* cut sequence */
		{ "{\"a\":\"\xe4\"}", 9 },
		{ "{\"event_type\":\"x\"}\xc3", 19 },	/* cut at the end */
		{ "\xc3\x28", 2 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(t); i++) {
		struct norm_result res;
		cJSON *v;

		run(t[i].s, t[i].n, &res);
		v = dead(&res, NORM_DL_INVALID_UTF8);
		expect_base64(v, t[i].s, t[i].n);
		expect_absent(v, "truncated");
		cJSON_Delete(v);
		norm_result_clear(&res);
	}
}

static void
norm__big_bad_frame__truncated(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *raw;
	cJSON *v;
	size_t i;

	(void)state;
	/* 100 KiB of valid UTF-8 that is not JSON; a 3-byte character
	 * straddles the 64 KiB cut, so the cut moves back before it. */
	for (i = 0; i < NORM_DL_RAW_MAX - 1; i++)
		bputs(&b, "a");
	bputs(&b, "\xe4\xb8\xad");
	while (b.len < 100 * 1024)
		bputs(&b, "b");
	run(b.p, b.len, &res);
	v = dead(&res, NORM_DL_INVALID_JSON);
	raw = get(v, "raw");
	assert_true(cJSON_IsString(raw));
	assert_int_equal(strlen(raw->valuestring), NORM_DL_RAW_MAX - 1);
	assert_memory_equal(raw->valuestring, b.p, NORM_DL_RAW_MAX - 1);
	assert_true(cJSON_IsTrue(get(v, "truncated")));
	cJSON_Delete(v);
	norm_result_clear(&res);

	/* Not UTF-8: base64 of the first 64 KiB. */
	b.p[10] = '\xff';
	run(b.p, b.len, &res);
	v = dead(&res, NORM_DL_INVALID_UTF8);
	expect_base64(v, b.p, NORM_DL_RAW_MAX);
	assert_true(cJSON_IsTrue(get(v, "truncated")));
	cJSON_Delete(v);
	norm_result_clear(&res);

	/* Exactly 64 KiB: whole, not truncated. */
	b.len = NORM_DL_RAW_MAX;
	memset(b.p, 'z', b.len);
	run(b.p, b.len, &res);
	v = dead(&res, NORM_DL_INVALID_JSON);
	assert_int_equal(strlen(get(v, "raw")->valuestring), NORM_DL_RAW_MAX);
	expect_absent(v, "truncated");
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(b.p);
}

static void
norm__too_large__dead_letter_always_truncated(void **state)
{
	static const char good[] = "{\"event_type\":\"call_start\"}";
	/* The beginning of a frame cut inside a 4-byte character. */
	static const char cut[] = "{\"event_type\":\"x\",\"s\":\"\xf0\x9f\x98";
	struct norm_result res;
	char id[RECORD_ID_LEN + 1];
	cJSON *v;

	(void)state;
	run_ex(PBX, good, strlen(good), true, RECV_US, &res);
	v = dead(&res, NORM_DL_TOO_LARGE);
	expect_str(v, "raw", good);
	assert_true(cJSON_IsTrue(get(v, "truncated")));
	norm_record_id(PBX, (const unsigned char *)good, strlen(good), 0, id);
	assert_string_equal(res.recs[0].id, id);
	cJSON_Delete(v);
	norm_result_clear(&res);

	run_ex(PBX, cut, strlen(cut), true, RECV_US, &res);
	v = dead(&res, NORM_DL_TOO_LARGE);
	expect_str(v, "raw", "{\"event_type\":\"x\",\"s\":\"");
	assert_true(cJSON_IsTrue(get(v, "truncated")));
	cJSON_Delete(v);
	norm_result_clear(&res);

	/* Binary beginning: base64. */
	run_ex(PBX, "\xff\xfe", 2, true, RECV_US, &res);
	v = dead(&res, NORM_DL_TOO_LARGE);
	expect_base64(v, "\xff\xfe", 2);
	assert_true(cJSON_IsTrue(get(v, "truncated")));
	cJSON_Delete(v);
	norm_result_clear(&res);

	/* Nothing at all. */
	run_ex(PBX, NULL, 0, true, RECV_US, &res);
	v = dead(&res, NORM_DL_TOO_LARGE);
	expect_str(v, "raw", "");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

static void
norm__not_object__dead_letter(void **state)
{
	static const char *const frames[] = {
		"[]", "[{\"event_type\":\"x\"}]", "\"event_type\"", "42",
		"-1.5e3", "true", "false", "null",
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(frames); i++)
		dead_str(frames[i], NORM_DL_NOT_OBJECT);
}

static void
norm__no_event_type__dead_letter(void **state)
{
	static const char *const frames[] = {
		"{}", "{\"tenant_id\":\"1\"}", "{\"event_type\":\"\"}",
		"{\"event_type\":1}", "{\"event_type\":null}",
		"{\"event_type\":{\"a\":\"b\"}}", "{\"event_type\":[\"x\"]}",
		"{\"Event_Type\":\"x\"}",
		"{\"event_type\":\"x\",\"event_type\":false}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < W2K_ARRAY_SIZE(frames); i++)
		dead_str(frames[i], NORM_DL_NO_EVENT_TYPE);
}

static void
norm__null_data__invalid_json(void **state)
{
	struct norm_result res;
	cJSON *v;

	(void)state;
	run(NULL, 0, &res);
	v = dead(&res, NORM_DL_INVALID_JSON);
	expect_str(v, "raw", "");
	cJSON_Delete(v);
	norm_result_clear(&res);
}

/* ---- norm_dead_letter() (ksink: records the broker refuses) ---- */

static cJSON *
dl_check(const struct record *rec, const char *pbx, const char *reason,
    const void *raw, size_t len)
{
	char id[RECORD_ID_LEN + 1];
	cJSON *v;

	assert_true(rec->dead);
	assert_null(rec->topic);
	assert_string_equal(rec->type, "");
	expect_key(rec, pbx);
	norm_record_id(pbx, raw, len, 0, id);
	assert_string_equal(rec->id, id);
	assert_string_equal(hdr(rec, "ce_id"), id);
	assert_string_equal(hdr(rec, "content-type"), "application/json");
	v = value_of(rec);
	expect_str(v, "schema", "wsi2kafka.deadletter/1");
	expect_str(v, "id", id);
	expect_str(v, "pbx", pbx);
	expect_str(v, "reason", reason);
	return v;
}

static void
norm__dead_letter_api__same_shape_as_frames(void **state)
{
	static const char value[] = "{\"schema\":\"wsi2kafka.event/1\"}";
	struct record rec;
	struct buf b = { 0 };
	cJSON *v;
	size_t i;

	(void)state;
	assert_int_equal(norm_dead_letter("hq", "MSG_SIZE_TOO_LARGE",
	    (const unsigned char *)value, strlen(value), false, 5, &rec), 0);
	v = dl_check(&rec, "hq", "MSG_SIZE_TOO_LARGE", value, strlen(value));
	expect_str(v, "raw", value);
	expect_str(v, "received_at", "1970-01-01T00:00:00.000Z");
	expect_absent(v, "truncated");
	assert_int_equal(rec.received_us, 5);
	cJSON_Delete(v);
	record_clear(&rec);

	/* Any reason text is escaped; truncated is passed through. */
	assert_int_equal(norm_dead_letter("hq", "a\"b\\c\n",
	    (const unsigned char *)value, 3, true, 0, &rec), 0);
	v = dl_check(&rec, "hq", "a\"b\\c\n", value, 3);
	expect_str(v, "raw", "{\"s");
	assert_true(cJSON_IsTrue(get(v, "truncated")));
	cJSON_Delete(v);
	record_clear(&rec);

	/* Binary: base64. */
	assert_int_equal(norm_dead_letter("hq", "x",
	    (const unsigned char *)"\x00\xff\x80", 3, false, 0, &rec), 0);
	v = dl_check(&rec, "hq", "x", "\x00\xff\x80", 3);
	expect_str(v, "raw_base64", "AP+A");
	cJSON_Delete(v);
	record_clear(&rec);

	/* Long: cut to 64 KiB. */
	for (i = 0; i < 100000; i++)
		bputs(&b, "y");
	assert_int_equal(norm_dead_letter("hq", "x",
	    (const unsigned char *)b.p, b.len, false, 0, &rec), 0);
	v = dl_check(&rec, "hq", "x", b.p, b.len);
	assert_int_equal(strlen(get(v, "raw")->valuestring), NORM_DL_RAW_MAX);
	assert_true(cJSON_IsTrue(get(v, "truncated")));
	cJSON_Delete(v);
	record_clear(&rec);
	free(b.p);

	/* Nothing at all, no names. */
	assert_int_equal(norm_dead_letter(NULL, NULL, NULL, 0, false, 0, &rec),
	    0);
	v = dl_check(&rec, "", "", "", 0);
	expect_str(v, "raw", "");
	cJSON_Delete(v);
	record_clear(&rec);
}

/* ---- size ---- */

static void
norm__cdr_with_5000_targets__one_record(void **state)
{
	struct buf b = { 0 };
	struct norm_result res;
	const cJSON *d, *t;
	cJSON *v;
	int i;

	(void)state;
	bputs(&b, "{\"event_type\":\"call_cdr\",\"tenant_id\":\"1\","
	    "\"session_id\":\"2\",\"ended_time\":\"1725845669\","
	    "\"call_targets\":[");
	for (i = 0; i < 5000; i++)
		bprintf(&b, "%s{\"id\":%d%010d,\"answered_time\":\"%s\","
		    "\"ring_time\":\"1725845648\",\"status_code\":%d,"
		    "\"ended_reason\":\"None\",\"direction\":\"out\","
		    "\"talk_duration\":\"%d\"}", i ? "," : "", i + 1, i,
		    i % 2 ? "0" : "1725845650", 200 + i % 3, i);
	bputs(&b, "]}");
	run(b.p, b.len, &res);
	v = one_event(&res, "call_cdr", "cdr", &d);
	expect_key(&res.recs[0], "1:2");
	assert_int_equal(cJSON_GetArraySize(get(d, "call_targets")), 5000);
	t = at(d, "call_targets", 4999);
	expect_str(t, "id", "50000000004999");
	expect_null(t, "answered_time");
	expect_num(t, "status_code", 200 + 4999 % 3);
	expect_str(t, "end_reason", "None");
	expect_str(t, "direction", "outbound");
	expect_num(t, "talk_duration", 4999);
	t = at(d, "call_targets", 0);
	expect_num(t, "answered_time", 1725845650);
	expect_str(t, "id", "10000000000");
	cJSON_Delete(v);
	norm_result_clear(&res);
	free(b.p);
}

/* ---- allocation failure ---- */

/*
 * The Makefile links this driver with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc, so every allocation norm.c makes comes through here
 * (OpenSSL's own do not: they are inside libcrypto).
 */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long fail_after = -1;	/* allocations to let through; -1: all */
static long allocs;		/* allocations seen while counting */

static bool
alloc_fails(void)
{
	if (fail_after < 0)
		return false;
	allocs++;
	if (fail_after == 0)
		return true;
	fail_after--;
	return false;
}

void *
__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}

/* Every allocation of one frame fails in turn: W2K_ENOMEM and an empty
 * result each time, never a crash or a leak (ASan), then success. */
static void
oom_frame(const void *data, size_t len, enum norm_kind kind, size_t nrecs)
{
	long k, seen = -1;
	int r = W2K_ENOMEM;

	for (k = 0; r != 0; k++) {
		struct norm_frame in = { PBX, data, len, false, RECV_US, NULL };
		struct norm_result res;

		allocs = 0;
		fail_after = k;
		r = norm_frame(&in, &res);
		fail_after = -1;
		if (r != 0) {
			assert_int_equal(r, W2K_ENOMEM);
			assert_null(res.recs);
			assert_int_equal(res.nrecs, 0);
			assert_null(res.reply_command);
			assert_null(res.reply_error);
		} else {
			assert_int_equal(res.kind, kind);
			assert_int_equal(res.nrecs, nrecs);
			seen = allocs;
		}
		norm_result_clear(&res);
		assert_true(k < 100000);
	}
	/* Every allocation of the successful run failed once before (once
	 * one fails, all later ones do). */
	assert_true(seen >= 1);
	assert_int_equal(k, seen + 1);
}

static void
norm__out_of_memory__enomem_and_cleared(void **state)
{
	static const char reply[] =
	    "{\"command\":\"auth\",\"status\":-1,\"error\":\"bad \\u00e9\"}";
	struct buf b = { 0 };
	unsigned char *buf;
	size_t len;
	int i;

	(void)state;
	buf = load("call_cdr_evref.json", &len);
	oom_frame(buf, len, NORM_EVENTS, 1);
	free(buf);
	buf = load("extension_status_v22_3.json", &len);
	oom_frame(buf, len, NORM_EVENTS, 2);
	free(buf);
	oom_frame(reply, strlen(reply), NORM_REPLY, 0);
	oom_frame("{\"a\":1}", 7, NORM_DEAD, 1);

	/* The tree outgrows its stack space, an escape needs the decoding
	 * buffer, and a large object is sorted; split parts copy values. */
	bputs(&b, "{\"event_type\":\"extension_status\",\"k\\u0031\":1");
	for (i = 0; i < 40; i++)
		bprintf(&b, ",\"f%d\":%d", i, i);
	bputs(&b, ",\"status\":[");
	for (i = 0; i < 100; i++)
		bprintf(&b, "%s{\"extension_id\":\"%d\",\"f1\":0}",
		    i ? "," : "", i);
	bputs(&b, "]}");
	oom_frame(b.p, b.len, NORM_EVENTS, 100);
	free(b.p);
}

/* Metric labels: every known type maps to itself, anything else to other. */
static void
norm__type_index__known_types_bounded(void **state)
{
	(void)state;
	for (unsigned i = 0; i + 1 < NORM_NTYPES; i++) {
		assert_int_equal(norm_type_index(norm_type_name(i)), i);
		if (i > 0)	/* sorted: the order of the metric labels */
			assert_true(strcmp(norm_type_name(i - 1),
			    norm_type_name(i)) < 0);
	}
	assert_int_equal(norm_type_index("call_cdr"),
	    norm_type_index(norm_type_name(norm_type_index("call_cdr"))));
	assert_int_equal(norm_type_index("some_new_event"), NORM_TYPE_OTHER);
	/* Near misses: a prefix, an extension, one letter off, same hash
	 * inputs (length, first and last letter). */
	assert_int_equal(norm_type_index("call_cd"), NORM_TYPE_OTHER);
	assert_int_equal(norm_type_index("call_cdrr"), NORM_TYPE_OTHER);
	assert_int_equal(norm_type_index("call_cdq"), NORM_TYPE_OTHER);
	assert_int_equal(norm_type_index("cxxxxxxr"), NORM_TYPE_OTHER);
	assert_int_equal(norm_type_index("target_and"), NORM_TYPE_OTHER);
	assert_string_equal(norm_type_name(norm_type_index("target_end")),
	    "target_end");
	assert_string_equal(norm_type_name(norm_type_index("target_add")),
	    "target_add");
	assert_int_equal(norm_type_index(""), NORM_TYPE_OTHER);
	assert_int_equal(norm_type_index(NULL), NORM_TYPE_OTHER);
	assert_string_equal(norm_type_name(NORM_TYPE_OTHER), "other");
	assert_string_equal(norm_type_name(1000), "other");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(norm__extension_status_v22_3__split_per_extension),
		cmocka_unit_test(norm__extension_status_v22_2__split_per_extension),
		cmocka_unit_test(norm__extension_status_v16_2024_01__split_without_presence),
		cmocka_unit_test(norm__extension_status_single_object__one_record),
		cmocka_unit_test(norm__extension_call__keyed_by_extension),
		cmocka_unit_test(norm__extension_call_interim__bool_on_call_kept),
		cmocka_unit_test(norm__extension_presence__fields_kept),
		cmocka_unit_test(norm__extension_presence_v16_0__tenant_only_key),
		cmocka_unit_test(norm__extension_agent_status__nested_status_kept),
		cmocka_unit_test(norm__extension_hold_unhold__peer_ids_strings),
		cmocka_unit_test(norm__extension_register__contact_numbers_exact),
		cmocka_unit_test(norm__extension_register_removed__contacts_kept),
		cmocka_unit_test(norm__legacy_call_events__keyed_by_session),
		cmocka_unit_test(norm__call_fail__fail_code_number_kept),
		cmocka_unit_test(norm__call_start_v16_0__direction_ext_to_internal),
		cmocka_unit_test(norm__call_start__envelope_and_headers),
		cmocka_unit_test(norm__call_cdr_evref__normalized),
		cmocka_unit_test(norm__call_cdr_admin_missing_comma__invalid_json),
		cmocka_unit_test(norm__call_cdr_admin_repaired__legacy_names_and_zero_times),
		cmocka_unit_test(norm__extension_created_duplicate_key__last_wins),
		cmocka_unit_test(norm__queue_created__keyed_by_queue_number),
		cmocka_unit_test(norm__queue_status_fullwidth_comma__invalid_json),
		cmocka_unit_test(norm__queue_status_reconstructed__queue_key_nested_times),
		cmocka_unit_test(norm__queue_caller_and_agent_status__keyed_by_queue_id),
		cmocka_unit_test(norm__queue_sla_breached__timestamp_is_time),
		cmocka_unit_test(norm__auth_replies__parsed),
		cmocka_unit_test(norm__subscribe_replies__parsed),
		cmocka_unit_test(norm__reply_status_forms__documented_choice),
		cmocka_unit_test(norm__not_a_reply__dead_or_event),
		cmocka_unit_test(norm__ids_sent_as_numbers__exact_strings),
		cmocka_unit_test(norm__big_numbers__printed_exactly),
		cmocka_unit_test(norm__numeric_strings__converted_per_key),
		cmocka_unit_test(norm__zero_times__null_at_every_depth),
		cmocka_unit_test(norm__event_time__first_positive_in_order),
		cmocka_unit_test(norm__legacy_names__renamed_at_every_depth),
		cmocka_unit_test(norm__direction__mapped_at_every_depth),
		cmocka_unit_test(norm__duplicate_keys__last_wins_numbers_mapped),
		cmocka_unit_test(norm__duplicate_keys__fingerprint_collisions_exact),
		cmocka_unit_test(norm__duplicate_keys_large_object__last_wins),
		cmocka_unit_test(norm__huge_object__no_quadratic_blowup),
		cmocka_unit_test(norm__strings__escapes_and_utf8_round_trip),
		cmocka_unit_test(norm__key__fallback_order),
		cmocka_unit_test(norm__envelope_ids__null_when_not_strings),
		cmocka_unit_test(norm__received_at__utc_milliseconds),
		cmocka_unit_test(norm__pbx_name__escaped_and_in_source),
		cmocka_unit_test(norm__record_id__independent_sha256),
		cmocka_unit_test(norm__record_id__depends_on_pbx_and_bytes),
		cmocka_unit_test(norm__extension_status_split__entry_wins_and_time),
		cmocka_unit_test(norm__extension_status_unsplittable__one_whole_record),
		cmocka_unit_test(norm__extension_status_huge_fanout__one_whole_record),
		cmocka_unit_test(norm__extension_status_many_frame_fields__sorted_lookup),
		cmocka_unit_test(norm__class__per_contract),
		cmocka_unit_test(norm__unknown_event__passes_through),
		cmocka_unit_test(norm__invalid_json__dead_letters),
		cmocka_unit_test(norm__valid_edge_json__accepted),
		cmocka_unit_test(norm__nul_byte__invalid_json),
		cmocka_unit_test(norm__depth_limit__at_limit_event_over_too_deep),
		cmocka_unit_test(norm__members_limit__at_limit_event_over_too_many_members),
		cmocka_unit_test(norm__elements_limit__at_limit_event_over_too_many_members),
		cmocka_unit_test(norm__values_limit__at_limit_event_over_too_many_members),
		cmocka_unit_test(norm__invalid_utf8__raw_base64),
		cmocka_unit_test(norm__big_bad_frame__truncated),
		cmocka_unit_test(norm__too_large__dead_letter_always_truncated),
		cmocka_unit_test(norm__not_object__dead_letter),
		cmocka_unit_test(norm__no_event_type__dead_letter),
		cmocka_unit_test(norm__null_data__invalid_json),
		cmocka_unit_test(norm__dead_letter_api__same_shape_as_frames),
		cmocka_unit_test(norm__cdr_with_5000_targets__one_record),
		cmocka_unit_test(norm__out_of_memory__enomem_and_cleared),
		cmocka_unit_test(norm__type_index__known_types_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
