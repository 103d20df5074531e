/*
 * restmap.c — REST answers → tokens, pages, call_cdr records (restmap.h).
 *
 * The field mapping follows contract §10 and portsip-rest-cdr.md §3. Rows
 * come from a server we only partly trust: every field is type-checked,
 * ids are bounded, and anything unexpected is kept as it came (under its
 * own name) rather than guessed at.
 */
#include "restmap.h"
#include "w2k.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- time ------------------------------------------------------------ */

static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

int
restmap_time(const char *s, int64_t *secs)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	const char *p;

	if (s == NULL || strlen(s) < 19 || !digits(s, 4, &y) || s[4] != '-' ||
	    !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' ||
	    !digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !digits(s + 17, 2, &sec))
		return W2K_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return W2K_EINVAL;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return W2K_EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' ||
		    !digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return W2K_EINVAL;
		p += 6;
	}
	/* No zone at all: UTC, as the PBX's examples are. */
	if (*p != '\0')
		return W2K_EINVAL;
	*secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	    h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
	return 0;
}

void
restmap_fmt_time(int64_t secs, char *buf, size_t len)
{
	int64_t z = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	int64_t rem = secs - z * 86400, era, doe, yoe, y, doy, mp;
	unsigned d, m;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	y += m <= 2;
	snprintf(buf, len, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02dZ", y, m, d,
	    (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

/* ---- tokens ---------------------------------------------------------- */

static char *
dup_str_member(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return NULL;
	return strdup(v->valuestring);
}

static bool
int_member(const cJSON *o, const char *name, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	char *end;
	long long ll;

	if (cJSON_IsNumber(v)) {
		if (!(v->valuedouble >= -9.0e15 && v->valuedouble <= 9.0e15))
			return false;
		*out = (int64_t)v->valuedouble;
		return true;
	}
	if (cJSON_IsString(v) && isdigit((unsigned char)v->valuestring[0])) {
		ll = strtoll(v->valuestring, &end, 10);
		if (*end == '\0') {
			*out = ll;
			return true;
		}
	}
	return false;
}

static void
wipe_free(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
	free(s);
}

void
restmap_token_clear(struct restmap_token *t)
{
	wipe_free(t->access_token);
	wipe_free(t->refresh_token);
	memset(t, 0, sizeof(*t));
}

/*
 * cJSON keeps its parse in strings of its own: those holding a token are
 * wiped before the tree goes.
 */
static void
wipe_tree(cJSON *o)
{
	for (cJSON *c = o != NULL ? o->child : NULL; c != NULL; c = c->next)
		if (cJSON_IsString(c) && c->valuestring != NULL)
			explicit_bzero(c->valuestring, strlen(c->valuestring));
	cJSON_Delete(o);
}

int
restmap_token_parse(const char *body, size_t len, struct restmap_token *out)
{
	cJSON *o;
	const cJSON *tf;
	char *at;
	int r = W2K_EINVAL;

	memset(out, 0, sizeof(*out));
	if (body == NULL || len > RESTMAP_BODY_MAX ||
	    (o = cJSON_ParseWithLength(body, len)) == NULL)
		return W2K_EINVAL;
	if (!cJSON_IsObject(o))
		goto out;
	tf = cJSON_GetObjectItemCaseSensitive(o, "two_factor_enabled");
	if (cJSON_IsTrue(tf)) {
		out->two_factor = true;
		r = 0;
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(o, "access_token") == NULL)
		goto out;
	if ((out->access_token = dup_str_member(o, "access_token")) == NULL)
		goto out;	/* no string, or no memory: no token either way */
	out->refresh_token = dup_str_member(o, "refresh_token");
	if (!int_member(o, "expires_in", &out->expires_in) ||
	    out->expires_in < 0)
		out->expires_in = 0;
	if ((at = dup_str_member(o, "expires_at")) != NULL) {
		if (restmap_time(at, &out->expires_at) != 0)
			out->expires_at = 0;
		free(at);
	}
	r = 0;
out:
	wipe_tree(o);
	if (r != 0)
		restmap_token_clear(out);
	return r;
}

/* ---- pages ----------------------------------------------------------- */

int
restmap_page_parse(const char *body, size_t len, struct restmap_page *out)
{
	const cJSON *items;

	memset(out, 0, sizeof(*out));
	out->count = -1;
	if (body == NULL || len > RESTMAP_BODY_MAX)
		return W2K_EINVAL;
	if ((out->root = cJSON_ParseWithLength(body, len)) == NULL)
		return W2K_EINVAL;
	items = cJSON_GetObjectItemCaseSensitive(out->root, "items");
	if (!cJSON_IsObject(out->root) ||
	    (!cJSON_IsArray(items) && !cJSON_IsNull(items))) {
		restmap_page_free(out);
		return W2K_EINVAL;
	}
	/* "items": null is how some servers say "none". */
	out->items = cJSON_IsArray(items) ? items : NULL;
	out->nitems = out->items ? (size_t)cJSON_GetArraySize(items) : 0;
	if (!int_member(out->root, "count", &out->count) || out->count < 0)
		out->count = -1;
	return 0;
}

void
restmap_page_free(struct restmap_page *pg)
{
	cJSON_Delete(pg->root);
	memset(pg, 0, sizeof(*pg));
	pg->count = -1;
}

const cJSON *
restmap_page_row(const struct restmap_page *pg, size_t i)
{
	return pg->items ? cJSON_GetArrayItem(pg->items, (int)i) : NULL;
}

/* ---- rows ------------------------------------------------------------ */

/* An id as a string: a string as it is, an integer in decimal. */
static bool
id_text(const cJSON *v, char *buf, size_t len)
{
	if (cJSON_IsString(v)) {
		size_t n = strlen(v->valuestring);

		if (n == 0 || n >= len)
			return false;
		memcpy(buf, v->valuestring, n + 1);
		return true;
	}
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
	    v->valuedouble <= 9.0e15 &&
	    v->valuedouble == (double)(int64_t)v->valuedouble) {
		snprintf(buf, len, "%" PRId64, (int64_t)v->valuedouble);
		return true;
	}
	return false;
}

static int64_t
time_member(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	int64_t t;

	if (cJSON_IsString(v) && restmap_time(v->valuestring, &t) == 0 &&
	    t > 0)
		return t;
	return 0;
}

int
restmap_row_info(const cJSON *row, struct restmap_row *out)
{
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(row) ||
	    !id_text(cJSON_GetObjectItemCaseSensitive(row, "id"), out->id,
	    sizeof(out->id)))
		return W2K_EINVAL;
	if (!id_text(cJSON_GetObjectItemCaseSensitive(row, "session_id"),
	    out->session_id, sizeof(out->session_id)))
		out->session_id[0] = '\0';
	out->started = time_member(row, "started_at");
	out->ended = time_member(row, "ended_at");
	return 0;
}

struct name_map {
	const char	*rest, *wsi;
};

/* REST name → WSI name (portsip-rest-cdr.md §3, contract §10). */
static const struct name_map names[] = {
	{ "id", "cdr_id" },
	{ "did_cid", "did" },
	{ "trunk", "trunk_name" },
	{ "duration", "talk_duration" },
	{ "started_at", "start_time" },
	{ "rang_at", "ring_time" },
	{ "answered_at", "answered_time" },
	{ "ended_at", "ended_time" },
};

static const struct name_map directions[] = {
	{ "INBOUND_CALL", "inbound" },
	{ "OUTBOUND_CALL", "outbound" },
	{ "EXTENSION_CALL", "internal" },
	{ "INBOUND_OUTBOUND_CALL", "inbound_outbound" },
};

/* The WSI spellings (portsip-wsi.md §4.3); the rest is lower-cased. */
static const struct name_map end_reasons[] = {
	{ "CALLER_DISCONNECTED", "caller_disconnected" },
	{ "CALLER_DISCONNECT", "caller_disconnected" },
	{ "CALLEE_DISCONNECTED", "callee_disconnected" },
	{ "CALLEE_DISCONNECT", "callee_disconnected" },
	{ "BLIND_TRANSFER_COMPLETED", "blind_transfer_complete" },
	{ "CONSULT_TRANSFER_COMPLETED", "attended_transfer_complete" },
	{ "", "None" },
};

static const char *
map_name(const struct name_map *m, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].rest, s) == 0)
			return m[i].wsi;
	return NULL;
}

/* A value mapped through m, else lower-cased (a value set PortSIP grows). */
static cJSON *
map_value(const struct name_map *m, size_t n, const cJSON *v)
{
	const char *w;
	char *low;
	cJSON *out;

	if (!cJSON_IsString(v))
		return cJSON_Duplicate(v, true);
	if ((w = map_name(m, n, v->valuestring)) != NULL)
		return cJSON_CreateString(w);
	if ((low = strdup(v->valuestring)) == NULL)
		return NULL;
	for (char *p = low; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	out = cJSON_CreateString(low);
	free(low);
	return out;
}

/* A time field: Unix seconds as a string, "0" when blank (§5: null). */
static cJSON *
map_time(const cJSON *v)
{
	char buf[24];
	int64_t t = 0;

	if (cJSON_IsString(v) && v->valuestring[0] != '\0' &&
	    restmap_time(v->valuestring, &t) != 0)
		return cJSON_Duplicate(v, true);	/* unreadable: as it came */
	snprintf(buf, sizeof(buf), "%" PRId64, t > 0 ? t : 0);
	return cJSON_CreateString(buf);
}

static cJSON *
map_member(const cJSON *m, const char **name)
{
	const char *w = map_name(names, W2K_ARRAY_SIZE(names), m->string);

	if (w != NULL)
		*name = w;
	if (strcmp(m->string, "id") == 0) {
		char buf[RESTMAP_ID_MAX + 1];

		return id_text(m, buf, sizeof(buf)) ?
		    cJSON_CreateString(buf) : cJSON_Duplicate(m, true);
	}
	if (strcmp(m->string, "direction") == 0)
		return map_value(directions, W2K_ARRAY_SIZE(directions), m);
	if (strcmp(m->string, "end_reason") == 0)
		return map_value(end_reasons, W2K_ARRAY_SIZE(end_reasons), m);
	if (w != NULL && strlen(w) > 5 && strcmp(w + strlen(w) - 5, "_time") == 0)
		return map_time(m);
	return cJSON_Duplicate(m, true);
}

int
restmap_record(const char *pbx, const char *tenant_id, const cJSON *row,
    int64_t received_us, struct norm_result *res)
{
	struct restmap_row info;
	cJSON *f = NULL;
	char *text = NULL;
	int r = W2K_ENOMEM;

	memset(res, 0, sizeof(*res));
	if (restmap_row_info(row, &info) != 0)
		return W2K_EINVAL;
	if ((f = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(f, "event_type", "call_cdr") == NULL)
		goto out;
	/* Rows carry no tenant: the login's (a row's own, if it ever has
	 * one, only when the login's is unknown). */
	if (tenant_id != NULL &&
	    cJSON_AddStringToObject(f, "tenant_id", tenant_id) == NULL)
		goto out;
	for (const cJSON *m = row->child; m != NULL; m = m->next) {
		const char *name = m->string;
		cJSON *v;

		if (name == NULL || strcmp(name, "event_type") == 0 ||
		    (tenant_id != NULL && strcmp(name, "tenant_id") == 0))
			continue;
		if ((v = map_member(m, &name)) == NULL)
			goto out;
		/* The first of two names for one field wins (did, did_cid). */
		if (cJSON_GetObjectItemCaseSensitive(f, name) != NULL) {
			cJSON_Delete(v);
			continue;
		}
		cJSON_AddItemToObject(f, name, v);
	}
	if ((text = cJSON_PrintUnformatted(f)) == NULL)
		goto out;
	{
		struct norm_frame in = {
			.pbx = pbx, .data = (const unsigned char *)text,
			.len = strlen(text), .received_us = received_us,
			.rest_row_id = info.id,
		};

		r = norm_frame(&in, res);
	}
	/* A row norm refuses (too deep, too many members) is no CDR. */
	if (r == 0 && res->kind != NORM_EVENTS) {
		norm_result_clear(res);
		r = W2K_EINVAL;
	}
out:
	free(text);
	cJSON_Delete(f);
	return r;
}
