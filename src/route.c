/*
 * route.c — event type → Kafka topic (contract §4): the first route whose
 * pattern matches wins. A pattern is shell globs (fnmatch(3)) separated by
 * '|'.
 *
 * Pure: no I/O, no logging. The table is compiled once (patterns split
 * into their alternatives up front) so a lookup, done for every record,
 * is a few fnmatch() calls and nothing else.
 */
#include "route.h"
#include "w2k.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

struct route {
	char	*alts;		/* alternatives, NUL-separated */
	size_t	 nalts;
	char	*topic;
};

struct route_table {
	struct route	*r;
	size_t		 n;
};

/*
 * Copy match with every '|' turned into a NUL. An empty pattern, or an
 * empty alternative ("a||b", "a|", "|a"), would match only the empty
 * event type — certainly a typo — so it is refused.
 */
static int
split_alts(const char *match, struct route *rt)
{
	size_t len = strlen(match), i, start = 0;

	if (len == 0)
		return W2K_EINVAL;
	for (i = 0; i <= len; i++) {
		if (match[i] != '|' && match[i] != '\0')
			continue;
		if (i == start)
			return W2K_EINVAL;
		start = i + 1;
	}
	if ((rt->alts = strdup(match)) == NULL)
		return W2K_ENOMEM;
	rt->nalts = 1;
	for (i = 0; i < len; i++) {
		if (rt->alts[i] == '|') {
			rt->alts[i] = '\0';
			rt->nalts++;
		}
	}
	return 0;
}

int
route_new(const struct cfg_route *routes, size_t n, struct route_table **tp,
    size_t *bad_index)
{
	struct route_table *t;
	size_t i;
	int r;

	*tp = NULL;
	if (n > 0 && routes == NULL)
		return W2K_EINVAL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return W2K_ENOMEM;
	if (n > 0 && (t->r = calloc(n, sizeof(*t->r))) == NULL) {
		free(t);
		return W2K_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		t->n = i + 1;		/* what route_free() releases */
		r = W2K_EINVAL;
		if (routes[i].match != NULL && routes[i].topic != NULL &&
		    (r = split_alts(routes[i].match, &t->r[i])) == 0 &&
		    (t->r[i].topic = strdup(routes[i].topic)) == NULL)
			r = W2K_ENOMEM;
		if (r != 0) {
			route_free(t);
			if (r == W2K_EINVAL && bad_index != NULL)
				*bad_index = i;
			return r;
		}
	}
	t->n = n;
	*tp = t;
	return 0;
}

const char *
route_lookup(const struct route_table *t, const char *type)
{
	const char *alt;
	size_t i, k;

	if (t == NULL || type == NULL)
		return NULL;
	for (i = 0; i < t->n; i++) {
		alt = t->r[i].alts;
		for (k = 0; k < t->r[i].nalts; k++) {
			if (fnmatch(alt, type, 0) == 0)
				return t->r[i].topic;
			alt += strlen(alt) + 1;
		}
	}
	return NULL;
}

void
route_free(struct route_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->r[i].alts);
		free(t->r[i].topic);
	}
	free(t->r);
	free(t);
}
