/*
 * record.c — ownership helpers for struct record.
 */
#include "record.h"
#include "w2k.h"

#include <stdlib.h>
#include <string.h>

void
record_clear(struct record *rec)
{
	free(rec->topic);
	free(rec->key);
	free(rec->value);
	free(rec->hdrs);
	free(rec->type);
	memset(rec, 0, sizeof(*rec));
}

int
record_hdr_add(struct record *rec, const char *name, const char *value)
{
	size_t nl = strlen(name) + 1, vl = strlen(value) + 1;
	char *h = realloc(rec->hdrs, rec->hdrs_len + nl + vl);

	if (h == NULL)
		return W2K_ENOMEM;
	memcpy(h + rec->hdrs_len, name, nl);
	memcpy(h + rec->hdrs_len + nl, value, vl);
	rec->hdrs = h;
	rec->hdrs_len += nl + vl;
	return 0;
}

bool
record_hdr_next(const struct record *rec, size_t *pos, const char **name,
    const char **value)
{
	const char *end = rec->hdrs + rec->hdrs_len;
	const char *n, *v;

	if (rec->hdrs == NULL || *pos >= rec->hdrs_len)
		return false;
	n = rec->hdrs + *pos;
	v = memchr(n, '\0', (size_t)(end - n));
	if (v == NULL || ++v >= end)
		return false;
	end = memchr(v, '\0', (size_t)(end - v));
	if (end == NULL)
		return false;
	*name = n;
	*value = v;
	*pos = (size_t)(end + 1 - rec->hdrs);
	return true;
}
