/*
 * promparse — a strict parser for the Prometheus text exposition format
 * 0.0.4, for the integration tests (no python, no Go toolchain needed).
 *
 *   promparse [-q] < exposition > samples
 *
 * Reads a whole exposition on stdin. On success prints every sample as one
 * normalized line, "name{a="x",b="y"} value", labels sorted by name and
 * kept escaped as written, and exits 0; the tests look values up in that.
 * On the first violation prints "promparse: line N: why" on stderr and
 * exits 1. -q prints no samples.
 *
 * What it enforces — the format's own rules (prometheus/docs,
 * exposition_formats.md, "Text format details"), plus the stricter ones
 * this project promises (marked *):
 *  - lines end with '\n', the last one too; no '\r', no NUL; UTF-8;
 *  - "# HELP name text" (escapes \\ and \n only) and "# TYPE name type"
 *    (counter|gauge|histogram|summary|untyped), each at most once per
 *    name and before the family's first sample; other '#' lines are
 *    comments;
 *  - sample: name [{label="value",...[,]}] value [timestamp], names
 *    [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* not
 *    starting with "__", label values escaped \\ \" \n only, no label
 *    twice, value a float (NaN, +Inf, -Inf included), timestamp an
 *    integer; single spaces as separators*;
 *  - a family's lines are together (no interleaving), no series twice;
 *  - every family has HELP and TYPE* ; counters are named *_total* and
 *    never negative;
 *  - histograms: only name_bucket (with le), name_sum, name_count; per
 *    series, le strictly increasing, counts non-decreasing, an le="+Inf"
 *    bucket equal to _count, and a _sum; "le" nowhere else.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS	32

struct family {
	char	*name;
	char	*type;		/* NULL until TYPE */
	bool	 help;
	bool	 started;	/* a sample was seen */
	bool	 closed;	/* another family came after it */
};

struct label {
	char	*k;
	char	*v;		/* escaped, as written */
};

/* Histogram series state, keyed by family + labels without le. */
struct hseries {
	char	*key;
	double	 last_le, last_count, inf_count, count;
	bool	 any_bucket, has_inf, has_count, has_sum;
	int	 line;
};

static struct family **fams;	/* each allocated alone: cur stays valid */
static size_t nfams;
static struct family *cur;	/* the family whose lines we are in */
static char **series;		/* "name{labels}" of every sample */
static size_t nseries, capseries;
static struct hseries *hs;
static size_t nhs;
static int lineno;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "promparse: line %d: ", lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n ? n : 1)) == NULL) {
		fprintf(stderr, "promparse: out of memory\n");
		exit(2);
	}
	return p;
}

static char *
xstrndup(const char *s, size_t n)
{
	char *d = xrealloc(NULL, n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static bool
utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; cp = c & 0x07;
		} else {
			return false;
		}
		for (unsigned k = 1; k <= need; k++) {
			if (i + k >= n || (s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

static size_t
name_len(const char *s, bool metric)
{
	size_t n = 0;

	if (!(isalpha((unsigned char)s[0]) || s[0] == '_' ||
	    (metric && s[0] == ':')))
		return 0;
	while (isalnum((unsigned char)s[n]) || s[n] == '_' ||
	    (metric && s[n] == ':'))
		n++;
	return n;
}

static struct family *
family_get(const char *name, size_t n, bool create)
{
	struct family *f;

	for (size_t i = 0; i < nfams; i++)
		if (strlen(fams[i]->name) == n &&
		    strncmp(fams[i]->name, name, n) == 0)
			return fams[i];
	if (!create)
		return NULL;
	fams = xrealloc(fams, (nfams + 1) * sizeof(*fams));
	f = fams[nfams++] = xrealloc(NULL, sizeof(*f));
	memset(f, 0, sizeof(*f));
	f->name = xstrndup(name, n);
	return f;
}

/* Entering family f's lines: the previous family, if another, closes. */
static void
enter(struct family *f)
{
	if (f->closed)
		die("lines of %s are not together", f->name);
	if (cur != NULL && cur != f)
		cur->closed = true;
	cur = f;
}

static void
parse_comment(const char *s)
{
	const char *kw = s + 2, *name, *rest;
	struct family *f;
	size_t n;

	if (strncmp(s, "# HELP ", 7) != 0 && strncmp(s, "# TYPE ", 7) != 0)
		return;		/* a plain comment */
	name = s + 7;
	if ((n = name_len(name, true)) == 0)
		die("bad metric name in %.4s", kw);
	rest = name + n;
	if (*rest != ' ')
		die("%.4s %.*s: expected one space after the name", kw,
		    (int)n, name);
	rest++;
	f = family_get(name, n, true);
	enter(f);
	if (f->started)
		die("%.4s for %s after its samples", kw, f->name);
	if (kw[0] == 'H') {
		if (f->help)
			die("second HELP for %s", f->name);
		f->help = true;
		for (const char *p = rest; *p != '\0'; p++)
			if (*p == '\\' && (p[1] != '\\' && p[1] != 'n'))
				die("HELP %s: bad escape \\%c", f->name, p[1]);
			else if (*p == '\\')
				p++;
		return;
	}
	if (f->type != NULL)
		die("second TYPE for %s", f->name);
	if (strcmp(rest, "counter") != 0 && strcmp(rest, "gauge") != 0 &&
	    strcmp(rest, "histogram") != 0 && strcmp(rest, "summary") != 0 &&
	    strcmp(rest, "untyped") != 0)
		die("TYPE %s: unknown type '%s'", f->name, rest);
	f->type = xstrndup(rest, strlen(rest));
	if (strcmp(rest, "counter") == 0 &&
	    (n < 6 || strcmp(f->name + n - 6, "_total") != 0))
		die("counter %s is not named *_total", f->name);
}

static bool
float_ok(const char *s, double *v)
{
	const char *p = s;
	bool digits = false;

	if (strcmp(s, "NaN") == 0) {
		*v = NAN;
		return true;
	}
	if (strcmp(s, "+Inf") == 0 || strcmp(s, "Inf") == 0) {
		*v = INFINITY;
		return true;
	}
	if (strcmp(s, "-Inf") == 0) {
		*v = -INFINITY;
		return true;
	}
	if (*p == '+' || *p == '-')
		p++;
	while (isdigit((unsigned char)*p)) {
		p++;
		digits = true;
	}
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			digits = true;
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return false;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p != '\0')
		return false;
	errno = 0;
	*v = strtod(s, NULL);
	return errno == 0 || isinf(*v) || *v == 0;
}

static int
label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->k,
	    ((const struct label *)b)->k);
}

static struct hseries *
hseries_get(const char *key)
{
	for (size_t i = 0; i < nhs; i++)
		if (strcmp(hs[i].key, key) == 0)
			return &hs[i];
	hs = xrealloc(hs, (nhs + 1) * sizeof(*hs));
	memset(&hs[nhs], 0, sizeof(*hs));
	hs[nhs].key = xstrndup(key, strlen(key));
	hs[nhs].last_le = -INFINITY;
	hs[nhs].line = lineno;
	return &hs[nhs++];
}

static void
parse_sample(const char *s, bool quiet)
{
	struct label l[MAX_LABELS];
	size_t n = name_len(s, true), nl = 0, keylen;
	const char *p = s + n, *le = NULL, *suffix = "";
	struct family *f;
	char key[8192], vbuf[64];
	double v;

	if (n == 0)
		die("bad metric name");
	if (*p == '{') {
		p++;
		while (*p != '}') {
			size_t kn = name_len(p, false);
			const char *vs;

			if (kn == 0)
				die("bad label name");
			if (kn >= 2 && p[0] == '_' && p[1] == '_')
				die("reserved label name %.*s", (int)kn, p);
			if (p[kn] != '=' || p[kn + 1] != '"')
				die("expected =\" after label %.*s", (int)kn,
				    p);
			if (nl == MAX_LABELS)
				die("too many labels");
			l[nl].k = xstrndup(p, kn);
			for (size_t i = 0; i < nl; i++)
				if (strcmp(l[i].k, l[nl].k) == 0)
					die("label %s twice", l[nl].k);
			vs = p = p + kn + 2;
			while (*p != '"') {
				if (*p == '\0')
					die("unterminated label value");
				if (*p == '\\') {
					if (p[1] != '\\' && p[1] != '"' &&
					    p[1] != 'n')
						die("bad escape \\%c in label "
						    "%s", p[1], l[nl].k);
					p++;
				}
				p++;
			}
			l[nl].v = xstrndup(vs, (size_t)(p - vs));
			nl++;
			p++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				die("expected , or } after a label");
		}
		p++;
	}
	if (*p != ' ')
		die("expected one space before the value");
	p++;
	{
		const char *sp = strchr(p, ' ');
		size_t vn = sp ? (size_t)(sp - p) : strlen(p);

		if (vn == 0 || vn >= sizeof(vbuf))
			die("bad value");
		memcpy(vbuf, p, vn);
		vbuf[vn] = '\0';
		if (!float_ok(vbuf, &v))
			die("bad value '%s'", vbuf);
		if (sp != NULL) {
			const char *t = sp + 1;

			if (*t == '-')
				t++;
			if (!isdigit((unsigned char)*t))
				die("bad timestamp");
			while (isdigit((unsigned char)*t))
				t++;
			if (*t != '\0')
				die("trailing text after the timestamp");
		}
	}

	/* Which family. */
	f = family_get(s, n, false);
	if (f == NULL || (f->type != NULL &&
	    strcmp(f->type, "histogram") == 0)) {
		static const char *const sfx[] = { "_bucket", "_sum",
		    "_count" };

		f = NULL;
		for (size_t i = 0; i < 3 && f == NULL; i++) {
			size_t sl = strlen(sfx[i]);
			struct family *g;

			if (n > sl && strncmp(s + n - sl, sfx[i], sl) == 0 &&
			    (g = family_get(s, n - sl, false)) != NULL &&
			    g->type != NULL &&
			    (strcmp(g->type, "histogram") == 0 ||
			    (strcmp(g->type, "summary") == 0 && i > 0))) {
				f = g;
				suffix = sfx[i];
			}
		}
	}
	if (f == NULL)
		die("sample %.*s has no TYPE", (int)n, s);
	if (f->type == NULL || !f->help)
		die("family %s lacks %s", f->name, f->type ? "HELP" : "TYPE");
	enter(f);
	f->started = true;

	for (size_t i = 0; i < nl; i++)
		if (strcmp(l[i].k, "le") == 0)
			le = l[i].v;
	if (le != NULL && strcmp(suffix, "_bucket") != 0)
		die("label le outside a histogram bucket");
	if (strcmp(f->type, "counter") == 0 && !(v >= 0))
		die("counter %s is %s", f->name, vbuf);

	qsort(l, nl, sizeof(l[0]), label_cmp);
	keylen = (size_t)snprintf(key, sizeof(key), "%.*s", (int)n, s);
	for (size_t i = 0; i < nl && keylen < sizeof(key); i++)
		keylen += (size_t)snprintf(key + keylen, sizeof(key) - keylen,
		    "%s%s=\"%s\"", i ? "," : "{", l[i].k, l[i].v);
	if (nl > 0 && keylen < sizeof(key))
		keylen += (size_t)snprintf(key + keylen, sizeof(key) - keylen,
		    "}");
	if (keylen >= sizeof(key))
		die("series too long");
	if (nseries == capseries) {
		capseries = capseries ? capseries * 2 : 256;
		series = xrealloc(series, capseries * sizeof(*series));
	}
	series[nseries++] = xstrndup(key, keylen);
	if (!quiet)
		printf("%s %s\n", key, vbuf);

	if (strcmp(f->type, "histogram") == 0) {
		char hkey[8192];
		size_t hl = (size_t)snprintf(hkey, sizeof(hkey), "%s", f->name);
		struct hseries *h;
		double bound;

		for (size_t i = 0; i < nl; i++)
			if (strcmp(l[i].k, "le") != 0)
				hl += (size_t)snprintf(hkey + hl,
				    hl < sizeof(hkey) ? sizeof(hkey) - hl : 0,
				    ",%s=\"%s\"", l[i].k, l[i].v);
		if (hl >= sizeof(hkey))
			die("series too long");
		h = hseries_get(hkey);
		if (!(v >= 0))
			die("histogram %s%s is %s", f->name, suffix, vbuf);
		if (strcmp(suffix, "_bucket") == 0) {
			if (le == NULL)
				die("bucket without le");
			if (h->has_inf)
				die("bucket after le=\"+Inf\"");
			if (!float_ok(le, &bound) || isnan(bound))
				die("bad le \"%s\"", le);
			if (!(bound > h->last_le))
				die("le \"%s\" not increasing", le);
			if (h->any_bucket && v < h->last_count)
				die("bucket le=\"%s\" is below the one before",
				    le);
			h->last_le = bound;
			h->last_count = v;
			h->any_bucket = true;
			if (isinf(bound)) {
				h->has_inf = true;
				h->inf_count = v;
			}
		} else if (strcmp(suffix, "_count") == 0) {
			h->has_count = true;
			h->count = v;
		} else {
			h->has_sum = true;
		}
	}
	for (size_t i = 0; i < nl; i++) {
		free(l[i].k);
		free(l[i].v);
	}
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
	bool quiet = argc > 1 && strcmp(argv[1], "-q") == 0;
	size_t cap = 1 << 16, len = 0, n;
	char *in = xrealloc(NULL, cap), *line, *nl;

	while ((n = fread(in + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len == cap)
			in = xrealloc(in, cap *= 2);
	}
	if (memchr(in, '\0', len) != NULL)
		die("a NUL byte in the input");
	if (memchr(in, '\r', len) != NULL)
		die("a carriage return in the input");
	if (len > 0 && in[len - 1] != '\n')
		die("the last line has no newline");
	if (!utf8_ok((const unsigned char *)in, len))
		die("the input is not UTF-8");
	in = xrealloc(in, len + 1);
	in[len] = '\0';

	for (line = in; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = '\0';
		lineno++;
		if (*line == '\0')
			continue;
		if (*line == '#')
			parse_comment(line);
		else
			parse_sample(line, quiet);
	}
	lineno = 0;
	for (size_t i = 0; i < nfams; i++)
		if (fams[i]->type == NULL || !fams[i]->help)
			die("family %s lacks %s", fams[i]->name,
			    fams[i]->type ? "HELP" : "TYPE");
	for (size_t i = 0; i < nhs; i++) {
		lineno = hs[i].line;
		if (!hs[i].has_inf)
			die("histogram %s has no le=\"+Inf\" bucket",
			    hs[i].key);
		if (!hs[i].has_count || !hs[i].has_sum)
			die("histogram %s lacks _count or _sum", hs[i].key);
		if (hs[i].count != hs[i].inf_count)
			die("histogram %s: _count %g != +Inf bucket %g",
			    hs[i].key, hs[i].count, hs[i].inf_count);
	}
	lineno = 0;
	qsort(series, nseries, sizeof(*series), str_cmp);
	for (size_t i = 1; i < nseries; i++)
		if (strcmp(series[i - 1], series[i]) == 0)
			die("series %s twice", series[i]);
	fprintf(stderr, "promparse: %zu families, %zu samples: ok\n", nfams,
	    nseries);
	/* main's locals are gone when LeakSanitizer looks (at exit): with
	 * gcc 14 (Debian 13) nothing held this buffer any more. */
	free(in);
	return 0;
}
