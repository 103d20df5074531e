/*
 * norm.c — one WebSocket frame from a PBX → Kafka records (contract §5):
 * strict UTF-8 and JSON checks, normalization of the payload, envelope,
 * key, CloudEvents headers and the stable record id.
 *
 * Pure: no I/O, no logging, no state kept between calls. It must never
 * crash or loop on any input — whatever the PBX sends either becomes
 * records or one dead letter that keeps the raw bytes; the only error it
 * returns is W2K_ENOMEM. It is the hot path (every frame of every PBX), so
 * it walks the text and the tree a fixed small number of times and prints
 * the records itself instead of building a second cJSON tree.
 *
 * Pipeline for one frame:
 *   utf8_prefix()  strict UTF-8 (no overlongs, surrogates, > U+10FFFF), NULs
 *   json_scan()    strict RFC 8259 grammar, cJSON's nesting limit, and the
 *                  text span of every number literal, in document order
 *   cJSON parse    cannot fail any more except for lack of memory
 *   norm_obj()     the §5 normalization, in place, at every depth
 *   emit_*()       envelope + data printed straight into a buffer
 *
 * cJSON stores numbers as doubles, which would corrupt 64-bit ids and large
 * counters. Instead every number item keeps the index of its literal in
 * valueint (cJSON only uses valueint for its own printing, which we never
 * call) and is printed from the original text. Two private type bits ride
 * along in item->type above cJSON's own flags (cJSON masks types with 0xFF
 * and cJSON_Delete() only looks at cJSON_IsReference/StringIsConst).
 */
#include "norm.h"
#include "w2k.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define NF_QUOTED	(1 << 12)	/* number item printed as a string */
#define NF_SHADOWED	(1 << 13)	/* hidden in this split part */

/* cJSON refuses documents nested deeper than CJSON_NESTING_LIMIT (1000 in
 * 1.7.15). A record nests the payload one level deeper than the frame did
 * (inside the envelope), so frames get one level less: every record we
 * publish then parses again with cJSON — and with the many consumer-side
 * parsers that have the same 1000-level default. */
#define JSON_MAX_DEPTH	(CJSON_NESTING_LIMIT - 1)
/* cJSON copies at most 63 characters of a number before strtod(). */
#define JSON_MAX_NUMBER	63

/* Objects with more members than this are de-duplicated (and looked up
 * while splitting) through a sorted array instead of pairwise comparison:
 * an attacker-sized object must not cost O(n^2) string compares. Sorting,
 * unlike an unkeyed hash, has no worst case to craft keys for. */
#define SMALL_OBJECT	32

/* An extension_status frame is split only while the records it expands to
 * stay below this (estimated) size; beyond it the frame is published as
 * one record, so a hostile or absurd frame cannot turn 4 MiB into
 * gigabytes (each part repeats the frame's other fields and the envelope). */
#define SPLIT_MAX_BYTES	(64u * 1024 * 1024)
#define PART_OVERHEAD	512	/* envelope and key per part, about */

/* ---- small output buffer with a sticky out-of-memory flag ---- */

struct sbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	bool	 oom;
};

static bool
sb_grow(struct sbuf *sb, size_t need)
{
	size_t cap = sb->cap ? sb->cap : 256;
	char *p;

	if (sb->oom)
		return false;
	if (need > SIZE_MAX - sb->len) {
		sb->oom = true;
		return false;
	}
	while (cap < sb->len + need) {
		if (cap > SIZE_MAX / 2) {
			cap = sb->len + need;
			break;
		}
		cap *= 2;
	}
	if ((p = realloc(sb->p, cap)) == NULL) {
		sb->oom = true;
		return false;
	}
	sb->p = p;
	sb->cap = cap;
	return true;
}

static inline void
sb_put(struct sbuf *sb, const void *s, size_t n)
{
	if (sb->cap - sb->len < n && !sb_grow(sb, n))
		return;
	if (n > 0)
		memcpy(sb->p + sb->len, s, n);
	sb->len += n;
}

static inline void
sb_putc(struct sbuf *sb, char ch)
{
	if (sb->cap == sb->len && !sb_grow(sb, 1))
		return;
	sb->p[sb->len++] = ch;
}

#define sb_lit(sb, s)	sb_put((sb), (s), sizeof(s) - 1)

static void
sb_int(struct sbuf *sb, int64_t v)
{
	char buf[24], *e = buf + sizeof(buf), *q = e;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--q = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--q = '-';
	sb_put(sb, q, (size_t)(e - q));
}

/* Word-at-a-time test (the classic "has zero byte" trick): non-zero iff
 * some byte of v is b. */
#define ONES	0x0101010101010101ULL
#define HIGHS	0x8080808080808080ULL

static inline uint64_t
has_byte(uint64_t v, unsigned char b)
{
	uint64_t x = v ^ (ONES * b);

	return (x - ONES) & ~x & HIGHS;
}

/* Bytes a JSON string cannot hold as they are: control characters, '"'
 * and '\\'. */
static const unsigned char must_escape[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['"'] = 1, ['\\'] = 1,
};

/* The escaping part of sb_jstr(), from the first byte that needs it. */
static void
sb_jstr_slow(struct sbuf *sb, const unsigned char *p, const unsigned char *end)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *run = p;
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };

	for (; p < end; p++) {
		unsigned char ch = *p;

		if (!must_escape[ch])
			continue;
		sb_put(sb, run, (size_t)(p - run));
		run = p + 1;
		switch (ch) {
		case '"':	sb_lit(sb, "\\\""); break;
		case '\\':	sb_lit(sb, "\\\\"); break;
		case '\n':	sb_lit(sb, "\\n"); break;
		case '\r':	sb_lit(sb, "\\r"); break;
		case '\t':	sb_lit(sb, "\\t"); break;
		case '\b':	sb_lit(sb, "\\b"); break;
		case '\f':	sb_lit(sb, "\\f"); break;
		default:
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			sb_put(sb, esc, sizeof(esc));
			break;
		}
	}
	sb_put(sb, run, (size_t)(end - run));
	sb_putc(sb, '"');
}

/*
 * A JSON string. s is valid UTF-8 (checked up front), so only control
 * characters, '"' and '\\' need escaping; NUL bytes (dead letters only)
 * become \u0000. The common case — nothing to escape — is one pass that
 * copies while it checks.
 */
static void
sb_jstr(struct sbuf *sb, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	char *o;
	size_t i;

	if (sb->cap - sb->len < n + 2 && !sb_grow(sb, n + 2))
		return;
	o = sb->p + sb->len;
	*o++ = '"';
	for (i = 0; i < n && !must_escape[p[i]]; i++)
		o[i] = (char)p[i];
	if (i == n) {
		o[n] = '"';
		sb->len += n + 2;
		return;
	}
	sb->len += 1 + i;
	sb_jstr_slow(sb, p + i, p + n);
}

/* ---- time formatting (no gmtime_r: it takes glibc's tz lock) ---- */

/* Days since 1970-01-01 → civil date (H. Hinnant's days_from_civil
 * inverse), exact for the whole int64 range we feed it. */
static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void
put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

/*
 * "YYYY-MM-DDTHH:MM:SS[.mmm]Z" for Unix seconds (ms < 0: no fraction).
 * @returns false when the year is outside 0..9999 (not RFC 3339); the
 *          text is still written, with the year as a plain integer.
 */
static bool
fmt_time(struct sbuf *sb, int64_t secs, int ms)
{
	int64_t days = secs / 86400, rem = secs % 86400, y;
	unsigned mo, d;
	char buf[32];

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &mo, &d);
	if (y < 0 || y > 9999) {
		sb_int(sb, y);
	} else {
		put2(buf, (unsigned)(y / 100));
		put2(buf + 2, (unsigned)(y % 100));
		sb_put(sb, buf, 4);
	}
	buf[0] = '-';
	put2(buf + 1, mo);
	buf[3] = '-';
	put2(buf + 4, d);
	buf[6] = 'T';
	put2(buf + 7, (unsigned)(rem / 3600));
	buf[9] = ':';
	put2(buf + 10, (unsigned)(rem / 60 % 60));
	buf[12] = ':';
	put2(buf + 13, (unsigned)(rem % 60));
	if (ms >= 0) {
		buf[15] = '.';
		buf[16] = (char)('0' + ms / 100);
		put2(buf + 17, (unsigned)(ms % 100));
		buf[19] = 'Z';
		sb_put(sb, buf, 20);
	} else {
		buf[15] = 'Z';
		sb_put(sb, buf, 16);
	}
	return y >= 0 && y <= 9999;
}

static void
fmt_received(struct sbuf *sb, int64_t us)
{
	int64_t secs = us / 1000000, frac = us % 1000000;

	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	sb_putc(sb, '"');
	fmt_time(sb, secs, (int)(frac / 1000));
	sb_putc(sb, '"');
}

/* ---- UTF-8 ---- */

/*
 * Length of the longest valid UTF-8 prefix of s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF); *nul tells whether that
 * prefix holds a NUL byte. An ASCII fast path takes 8 bytes at a time.
 */
static size_t
utf8_prefix(const unsigned char *s, size_t n, bool *nul)
{
	size_t i = 0;
	bool z = false;

	while (i < n) {
		unsigned char c = s[i], lo2 = 0x80, hi2 = 0xBF;
		size_t need;

		if (n - i >= 8) {
			uint64_t v;

			memcpy(&v, s + i, 8);
			if ((v & HIGHS) == 0) {
				if (has_byte(v, 0) != 0)
					z = true;
				i += 8;
				continue;
			}
		}
		if (c < 0x80) {
			if (c == 0)
				z = true;
			i++;
			continue;
		}
		if (c < 0xC2)		/* continuation, or overlong lead */
			break;
		if (c < 0xE0) {
			need = 1;
		} else if (c < 0xF0) {
			need = 2;
			if (c == 0xE0)
				lo2 = 0xA0;	/* overlong */
			else if (c == 0xED)
				hi2 = 0x9F;	/* surrogates */
		} else if (c < 0xF5) {
			need = 3;
			if (c == 0xF0)
				lo2 = 0x90;	/* overlong */
			else if (c == 0xF4)
				hi2 = 0x8F;	/* above U+10FFFF */
		} else {
			break;
		}
		if (n - i <= need || s[i + 1] < lo2 || s[i + 1] > hi2 ||
		    (need >= 2 && (s[i + 2] & 0xC0) != 0x80) ||
		    (need >= 3 && (s[i + 3] & 0xC0) != 0x80))
			break;
		i += need + 1;
	}
	*nul = z;
	return i;
}

/* Whether s[0..n) is the beginning of a valid sequence cut short by the
 * end of the buffer (a too_large frame is cut at an arbitrary byte). */
static bool
utf8_cut_tail(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo2 = 0x80, hi2 = 0xBF;
	size_t need, i;

	if (c >= 0xC2 && c < 0xE0)
		need = 1;
	else if (c >= 0xE0 && c < 0xF0)
		need = 2;
	else if (c >= 0xF0 && c < 0xF5)
		need = 3;
	else
		return false;
	if (c == 0xE0)
		lo2 = 0xA0;
	else if (c == 0xED)
		hi2 = 0x9F;
	else if (c == 0xF0)
		lo2 = 0x90;
	else if (c == 0xF4)
		hi2 = 0x8F;
	if (n > need)
		return false;
	for (i = 1; i < n; i++) {
		if (i == 1 ? s[i] < lo2 || s[i] > hi2 : (s[i] & 0xC0) != 0x80)
			return false;
	}
	return true;
}

/* ---- strict JSON scan ---- */

struct span {
	size_t	off;
	size_t	len;
};

struct nctx {
	const char	*text;		/* the frame */
	struct span	*spans;		/* number literals, in text order */
	size_t		 nspans;
	size_t		 spans_cap;
	size_t		 next;		/* next span for a number item */
	struct span	 spans_buf[64];
	struct kref	*refs;		/* scratch: members sorted by key */
	size_t		 refs_cap;
};

static bool
is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* \uXXXX at s[0..]; returns the code unit or -1. */
static long
hex4(const unsigned char *s, size_t avail)
{
	long v = 0;
	int i, h;

	if (avail < 6 || s[0] != '\\' || s[1] != 'u')
		return -1;
	for (i = 2; i < 6; i++) {
		if ((h = hexval(s[i])) < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Bytes that end the plain run inside a string. */
static const unsigned char string_stop[256] = { ['"'] = 1, ['\\'] = 1 };

/*
 * Skip the string starting at s[*i] == '"'. Strict about escapes: only the
 * RFC 8259 ones, \u with four hex digits, surrogates only as a proper pair
 * (cJSON refuses the rest too) and no \u0000, which cJSON would silently
 * turn into the end of the string (data loss: we dead-letter instead).
 * Raw control characters are tolerated (cJSON accepts them and our printer
 * escapes them), so a sloppy display name does not cost a whole CDR.
 */
static bool
scan_string(const unsigned char *s, size_t n, size_t *ip)
{
	size_t i = *ip + 1;

	for (;;) {
		long u, u2;

		/* Fast skip over plain bytes. */
		while (i < n && !string_stop[s[i]])
			i++;
		if (i >= n)
			return false;
		if (s[i] == '"')
			break;
		if (i + 1 >= n)
			return false;
		switch (s[i + 1]) {
		case '"': case '\\': case '/': case 'b': case 'f':
		case 'n': case 'r': case 't':
			i += 2;
			break;
		case 'u':
			if ((u = hex4(s + i, n - i)) < 0 || u == 0 ||
			    (u >= 0xDC00 && u <= 0xDFFF))
				return false;
			if (u >= 0xD800 && u <= 0xDBFF) {
				u2 = hex4(s + i + 6, n - i - 6);
				if (u2 < 0xDC00 || u2 > 0xDFFF)
					return false;
				i += 12;
			} else {
				i += 6;
			}
			break;
		default:
			return false;
		}
	}
	*ip = i + 1;
	return true;
}

/* A number literal must match RFC 8259 exactly: it is printed back
 * verbatim, so "01", "1." or "-.5" (all accepted by strtod) are refused. */
static bool
number_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n)
		return false;
	if (s[i] == '0') {
		i++;
	} else if (s[i] >= '1' && s[i] <= '9') {
		while (i < n && is_digit(s[i]))
			i++;
	} else {
		return false;
	}
	if (i < n && s[i] == '.') {
		if (++i >= n || !is_digit(s[i]))
			return false;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !is_digit(s[i]))
			return false;
		while (i < n && is_digit(s[i]))
			i++;
	}
	return i == n;
}

static bool
is_numchar(unsigned char c)
{
	return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' ||
	    c == 'E';
}

static int
span_add(struct nctx *c, size_t off, size_t len)
{
	if (c->nspans == c->spans_cap) {
		size_t cap = c->spans_cap * 2;
		struct span *sp;

		if (cap > SIZE_MAX / sizeof(*sp))
			return W2K_ENOMEM;
		if (c->spans == c->spans_buf) {
			if ((sp = malloc(cap * sizeof(*sp))) == NULL)
				return W2K_ENOMEM;
			memcpy(sp, c->spans, c->nspans * sizeof(*sp));
		} else if ((sp = realloc(c->spans, cap * sizeof(*sp))) ==
		    NULL) {
			return W2K_ENOMEM;
		}
		c->spans = sp;
		c->spans_cap = cap;
	}
	c->spans[c->nspans].off = off;
	c->spans[c->nspans].len = len;
	c->nspans++;
	return 0;
}

/*
 * Validate s as one strict JSON text (RFC 8259: only JSON whitespace,
 * nothing after the value, at most JSON_MAX_DEPTH nested containers) and
 * record every number literal. Iterative, so 100000 '[' cost nothing but
 * a dead letter. Everything accepted here is accepted by cJSON too, so a
 * cJSON failure afterwards can only mean out of memory.
 * @returns 0, W2K_EINVAL (not valid), W2K_ENOMEM.
 */
static int
json_scan(struct nctx *c, const unsigned char *s, size_t n)
{
	unsigned char stack[JSON_MAX_DEPTH];	/* '[' or '{' */
	size_t i = 0, depth = 0, j;
	int r;
	enum { S_VALUE, S_KEY, S_AFTER } st = S_VALUE;

	while (i < n && is_ws(s[i]))
		i++;
	for (;;) {
		if (st == S_KEY) {
			if (i >= n || s[i] != '"' || !scan_string(s, n, &i))
				return W2K_EINVAL;
			while (i < n && is_ws(s[i]))
				i++;
			if (i >= n || s[i] != ':')
				return W2K_EINVAL;
			i++;
			while (i < n && is_ws(s[i]))
				i++;
			st = S_VALUE;
			continue;
		}
		if (st == S_AFTER) {
			while (i < n && is_ws(s[i]))
				i++;
			if (depth == 0)
				return i == n ? 0 : W2K_EINVAL;
			if (i >= n)
				return W2K_EINVAL;
			if (s[i] == ',') {
				i++;
				while (i < n && is_ws(s[i]))
					i++;
				st = stack[depth - 1] == '{' ? S_KEY : S_VALUE;
			} else if ((s[i] == ']' && stack[depth - 1] == '[') ||
			    (s[i] == '}' && stack[depth - 1] == '{')) {
				i++;
				depth--;
			} else {
				return W2K_EINVAL;
			}
			continue;
		}
		/* S_VALUE */
		if (i >= n)
			return W2K_EINVAL;
		switch (s[i]) {
		case '{':
		case '[':
			if (depth == JSON_MAX_DEPTH)
				return W2K_EINVAL;
			stack[depth++] = s[i++];
			while (i < n && is_ws(s[i]))
				i++;
			if (i < n && s[i] == (stack[depth - 1] == '{' ?
			    '}' : ']')) {
				i++;
				depth--;
				st = S_AFTER;
			} else {
				st = stack[depth - 1] == '{' ? S_KEY : S_VALUE;
			}
			break;
		case '"':
			if (!scan_string(s, n, &i))
				return W2K_EINVAL;
			st = S_AFTER;
			break;
		case 't':
			if (n - i < 4 || memcmp(s + i, "true", 4) != 0)
				return W2K_EINVAL;
			i += 4;
			st = S_AFTER;
			break;
		case 'f':
			if (n - i < 5 || memcmp(s + i, "false", 5) != 0)
				return W2K_EINVAL;
			i += 5;
			st = S_AFTER;
			break;
		case 'n':
			if (n - i < 4 || memcmp(s + i, "null", 4) != 0)
				return W2K_EINVAL;
			i += 4;
			st = S_AFTER;
			break;
		default:
			/* The maximal run of the characters cJSON's number
			 * parser copies; all of it must be one number. */
			for (j = i; j < n && is_numchar(s[j]); j++)
				;
			if (j == i || j - i > JSON_MAX_NUMBER ||
			    !number_ok(s + i, j - i))
				return W2K_EINVAL;
			if ((r = span_add(c, i, j - i)) != 0)
				return r;
			i = j;
			st = S_AFTER;
			break;
		}
	}
}

/* ---- key classes ---- */

enum kcls {
	K_NONE,
	K_ID,		/* id, *_id (not reg_id): numbers become strings */
	K_TIME,		/* numeric string → integer, 0 → null */
	K_INT,		/* numeric string → integer */
	K_DIRECTION,
	K_ENDED_REASON,	/* legacy name of end_reason */
	K_DID_CID,	/* legacy name of did */
};

/* Fields the envelope, the key and the reply logic look at. */
enum field {
	F_NONE,
	F_EVENT_TYPE, F_TENANT_ID, F_SESSION_ID, F_TIME, F_TIMESTAMP,
	F_ENDED_TIME, F_START_TIME, F_EXTENSION_ID, F_QUEUE_ID,
	F_QUEUE_NUMBER, F_STATUS, F_COMMAND, F_ERROR, F_ID,
	F_COUNT
};

#define KEY(k, f)	((unsigned)(k) | (unsigned)(f) << 8)
#define KEY_CLS(v)	((enum kcls)((v) & 0xff))
#define KEY_FIELD(v)	((enum field)((v) >> 8))

/* One switch on the length, then at most a few memcmp(): this runs for
 * every member of every object. */
static unsigned
classify(const char *k, size_t n)
{

#define IS(s)	(memcmp(k, s, sizeof(s) - 1) == 0)
	switch (n) {
	case 2:
		if (IS("id"))
			return KEY(K_ID, F_ID);
		break;
	case 4:
		if (IS("time"))
			return KEY(K_TIME, F_TIME);
		break;
	case 5:
		if (IS("error"))
			return KEY(K_NONE, F_ERROR);
		break;
	case 6:
		if (IS("status"))
			return KEY(K_NONE, F_STATUS);
		if (IS("reg_id"))
			return KEY(K_INT, F_NONE);	/* not an id */
		break;
	case 7:
		if (IS("command"))
			return KEY(K_NONE, F_COMMAND);
		if (IS("expires"))
			return KEY(K_INT, F_NONE);
		if (IS("did_cid"))
			return KEY(K_DID_CID, F_NONE);
		break;
	case 8:
		if (IS("queue_id"))
			return KEY(K_ID, F_QUEUE_ID);
		break;
	case 9:
		switch (k[0]) {
		case 't':
			if (IS("timestamp"))
				return KEY(K_TIME, F_TIMESTAMP);
			if (IS("tenant_id"))
				return KEY(K_ID, F_TENANT_ID);
			break;
		case 'r':
			if (IS("ring_time"))
				return KEY(K_TIME, F_NONE);
			break;
		case 'd':
			if (IS("direction"))
				return KEY(K_DIRECTION, F_NONE);
			break;
		case 'f':
			if (IS("fail_code"))
				return KEY(K_INT, F_NONE);
			break;
		}
		break;
	case 10:
		switch (k[0]) {
		case 's':
			if (IS("start_time"))
				return KEY(K_TIME, F_START_TIME);
			if (IS("session_id"))
				return KEY(K_ID, F_SESSION_ID);
			break;
		case 'e':
			if (IS("ended_time"))
				return KEY(K_TIME, F_ENDED_TIME);
			if (IS("event_type"))
				return KEY(K_NONE, F_EVENT_TYPE);
			break;
		}
		break;
	case 11:
		if (IS("status_code") || IS("last_update"))
			return KEY(K_INT, F_NONE);
		break;
	case 12:
		if (IS("extension_id"))
			return KEY(K_ID, F_EXTENSION_ID);
		if (IS("queue_number"))
			return KEY(K_NONE, F_QUEUE_NUMBER);
		if (IS("ended_reason"))
			return KEY(K_ENDED_REASON, F_NONE);
		break;
	case 13:
		if (IS("answered_time"))
			return KEY(K_TIME, F_NONE);
		break;
	}
#undef IS
	if (n >= 3 && memcmp(k + n - 3, "_id", 3) == 0)
		return KEY(K_ID, F_NONE);
	if (n >= 9 && memcmp(k + n - 9, "_duration", 9) == 0)
		return KEY(K_INT, F_NONE);
	return KEY(K_NONE, F_NONE);
}

/* ---- normalization ---- */

/* "-?[0-9]+" fitting int64 → *v. */
static bool
parse_i64(const char *s, size_t n, int64_t *v)
{
	uint64_t acc = 0, lim = (uint64_t)INT64_MAX;
	size_t i = 0;
	bool neg = false;

	if (n > 0 && s[0] == '-') {
		neg = true;
		lim++;
		i++;
	}
	if (i == n)
		return false;
	for (; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || acc > (lim - d) / 10)
			return false;
		acc = acc * 10 + d;
	}
	*v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
	return true;
}

/* Whether a number literal is zero ("0", "-0.0", "0e7"): no digit 1-9
 * before the exponent. Exact, unlike the double cJSON computed. */
static bool
literal_is_zero(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && s[i] != 'e' && s[i] != 'E'; i++)
		if (s[i] >= '1' && s[i] <= '9')
			return false;
	return true;
}

static void
make_null(cJSON *it)
{
	if (it->valuestring != NULL && !(it->type & cJSON_IsReference))
		cJSON_free(it->valuestring);
	it->valuestring = NULL;
	it->type = cJSON_NULL | (it->type & cJSON_StringIsConst);
}

static int
norm_number(struct nctx *c, cJSON *it, enum kcls kc)
{
	const struct span *sp;

	if (c->next >= c->nspans || c->next > INT_MAX)
		return W2K_EINVAL;	/* cannot happen: tree ≠ text */
	sp = &c->spans[c->next];
	it->valueint = (int)c->next++;
	if (kc == K_ID)
		it->type |= NF_QUOTED;
	else if (kc == K_TIME && literal_is_zero(c->text + sp->off, sp->len))
		make_null(it);
	return 0;
}

static void
norm_string(cJSON *it, enum kcls kc)
{
	static const struct {
		const char *from, *to;
	} dir[] = {
		{ "ext", "internal" },
		{ "in", "inbound" },
		{ "in2out", "inbound_outbound" },
		{ "out", "outbound" },
	};
	char *s = it->valuestring;
	int64_t v;
	size_t i;

	switch (kc) {
	case K_TIME:
	case K_INT:
		if (!parse_i64(s, strlen(s), &v))
			return;
		if (kc == K_TIME && v == 0) {
			make_null(it);
			return;
		}
		/* Print it as a JSON integer, i.e. raw. Leading zeros (and
		 * the sign of -0) must go: rewrite the digits in place, the
		 * canonical form is never longer. */
		if (s[s[0] == '-'] == '0') {
			struct sbuf tmp = { 0 };
			char buf[24];

			tmp.p = buf;
			tmp.cap = sizeof(buf);
			sb_int(&tmp, v);
			memcpy(s, buf, tmp.len);
			s[tmp.len] = '\0';
		}
		it->type = cJSON_Raw | (it->type & cJSON_StringIsConst);
		return;
	case K_DIRECTION:
		for (i = 0; i < W2K_ARRAY_SIZE(dir); i++) {
			if (strcmp(s, dir[i].from) == 0) {
				/* A static string: cJSON_IsReference keeps
				 * cJSON_Delete() from freeing it, as for
				 * cJSON_CreateStringReference(). */
				cJSON_free(s);
				it->valuestring = (char *)dir[i].to;
				it->type |= cJSON_IsReference;
				return;
			}
		}
		return;
	default:
		return;
	}
}

struct kref {
	cJSON	*it;
	size_t	 pos;		/* document order */
};

static int
kref_cmp(const void *a, const void *b)
{
	const struct kref *x = a, *y = b;
	int d = strcmp(x->it->string, y->it->string);

	if (d != 0)
		return d;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* c->refs[0..n) = obj's n members, sorted by key, then document order. */
static int
refs_sort(struct nctx *c, const cJSON *obj, size_t n)
{
	cJSON *it;
	size_t i;

	if (n > c->refs_cap) {
		struct kref *p;

		if (n > SIZE_MAX / sizeof(*p) ||
		    (p = realloc(c->refs, n * sizeof(*p))) == NULL)
			return W2K_ENOMEM;
		c->refs = p;
		c->refs_cap = n;
	}
	for (i = 0, it = obj->child; it != NULL && i < n; it = it->next, i++) {
		c->refs[i].it = it;
		c->refs[i].pos = i;
	}
	qsort(c->refs, i, sizeof(*c->refs), kref_cmp);
	return 0;
}

/* The member called key among the n sorted by refs_sort(), or NULL. */
static cJSON *
refs_find(const struct nctx *c, size_t n, const char *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(key, c->refs[mid].it->string);

		if (d == 0)
			return c->refs[mid].it;
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void
drop(cJSON *obj, cJSON *it)
{
	cJSON_Delete(cJSON_DetachItemViaPointer(obj, it));
}

/* Duplicate keys: cJSON keeps both; the last one wins (as in every
 * mainstream parser, and portsip-wsi.md §6 #15: extension_created really
 * does send "username" twice). This is the large-object path: equal keys
 * sort next to each other, earliest first, and all but the last of each
 * run go. */
static int
dedupe_sorted(struct nctx *c, cJSON *obj, size_t n)
{
	size_t i;
	int r;

	if ((r = refs_sort(c, obj, n)) != 0)
		return r;
	for (i = 0; i + 1 < n; i++)
		if (strcmp(c->refs[i].it->string, c->refs[i + 1].it->string)
		    == 0)
			drop(obj, c->refs[i].it);
	return 0;
}

static cJSON *
member(const cJSON *obj, const char *key)
{
	cJSON *it;

	for (it = obj->child; it != NULL; it = it->next)
		if (strcmp(it->string, key) == 0)
			return it;
	return NULL;
}

/* ended_reason → end_reason, did_cid → did; the current name wins when
 * both are present (portsip-wsi.md §4.3, §6 #14). */
static void
rename_legacy(cJSON *obj, const char *legacy, const char *current)
{
	cJSON *old = member(obj, legacy);

	if (old == NULL)
		return;
	if (member(obj, current) != NULL) {
		drop(obj, old);
		return;
	}
	if (!(old->type & cJSON_StringIsConst))
		cJSON_free(old->string);
	old->string = (char *)current;
	old->type |= cJSON_StringIsConst;
}

static int norm_obj(struct nctx *c, cJSON *obj);

static int
norm_item(struct nctx *c, cJSON *it, enum kcls kc)
{
	cJSON *el;
	int r;

	switch (it->type & 0xFF) {
	case cJSON_Number:
		return norm_number(c, it, kc);
	case cJSON_String:
		norm_string(it, kc);
		return 0;
	case cJSON_Array:
		for (el = it->child; el != NULL; el = el->next)
			if ((r = norm_item(c, el, K_NONE)) != 0)
				return r;
		return 0;
	case cJSON_Object:
		return norm_obj(c, it);
	default:
		return 0;
	}
}

/*
 * Normalize an object in place. Members are visited in document order
 * first — number items must meet their literals in the order json_scan()
 * recorded them, duplicates included — and only then are duplicates
 * removed and legacy names renamed.
 *
 * Small objects (nearly all) are de-duplicated pairwise, but on a one-byte
 * fingerprint of each key (length, first and last byte) kept in a local
 * array: a strcmp() only when fingerprints match, so a 30-member CDR costs
 * a few hundred byte compares and no pointer chasing.
 */
static int
norm_obj(struct nctx *c, cJSON *obj)
{
	cJSON *items[SMALL_OBJECT];
	unsigned char fp[SMALL_OBJECT];
	unsigned legacy = 0;
	size_t n = 0, i, k;
	cJSON *it;
	int r;

	for (it = obj->child; it != NULL; it = it->next, n++) {
		size_t kl = strlen(it->string);
		enum kcls kc = KEY_CLS(classify(it->string, kl));

		if (n < SMALL_OBJECT) {
			items[n] = it;
			fp[n] = (unsigned char)(kl * 31 + (kl ?
			    (unsigned char)it->string[0] * 7 +
			    (unsigned char)it->string[kl - 1] : 0));
		}
		if (kc == K_ENDED_REASON)
			legacy |= 1;
		else if (kc == K_DID_CID)
			legacy |= 2;
		if ((r = norm_item(c, it, kc)) != 0)
			return r;
	}
	if (n > SMALL_OBJECT) {
		if ((r = dedupe_sorted(c, obj, n)) != 0)
			return r;
	} else {
		/* Last wins: an item goes if a later one has its key. */
		for (i = 0; i + 1 < n; i++)
			for (k = i + 1; k < n; k++)
				if (fp[k] == fp[i] && strcmp(items[k]->string,
				    items[i]->string) == 0) {
					drop(obj, items[i]);
					break;
				}
	}
	if (legacy & 1)
		rename_legacy(obj, "ended_reason", "end_reason");
	if (legacy & 2)
		rename_legacy(obj, "did_cid", "did");
	return 0;
}

/* ---- reading normalized values ---- */

struct fields {
	cJSON	*f[F_COUNT];
	bool	 reply_keys_only; /* only status, error, id keys */
};

static void
fields_get(const cJSON *obj, struct fields *fs)
{
	cJSON *it;

	memset(fs, 0, sizeof(*fs));
	fs->reply_keys_only = true;
	for (it = obj->child; it != NULL; it = it->next) {
		enum field f = KEY_FIELD(classify(it->string,
		    strlen(it->string)));

		if (f != F_NONE)
			fs->f[f] = it;
		if (f != F_STATUS && f != F_ERROR && f != F_ID)
			fs->reply_keys_only = false;
	}
}

/* The text of an identifier: a string, or a number sent for an id (which
 * normalization turned into a string). */
static bool
id_text(const struct nctx *c, const cJSON *it, const char **s, size_t *n)
{
	if (it == NULL)
		return false;
	if ((it->type & 0xFF) == cJSON_String) {
		*s = it->valuestring;
		*n = strlen(it->valuestring);
		return true;
	}
	if ((it->type & 0xFF) == cJSON_Number && (it->type & NF_QUOTED)) {
		*s = c->text + c->spans[it->valueint].off;
		*n = c->spans[it->valueint].len;
		return true;
	}
	return false;
}

/* Text usable in a Kafka key: a non-empty id, or any number literal. */
static bool
key_text(const struct nctx *c, const cJSON *it, const char **s, size_t *n)
{
	if (it != NULL && (it->type & 0xFF) == cJSON_Number) {
		*s = c->text + c->spans[it->valueint].off;
		*n = c->spans[it->valueint].len;
		return true;
	}
	return id_text(c, it, s, n) && *n > 0;
}

/* An integer value after normalization (converted string or an integer
 * literal). */
static bool
int_value(const struct nctx *c, const cJSON *it, int64_t *v)
{
	if (it == NULL)
		return false;
	if ((it->type & 0xFF) == cJSON_Raw)
		return parse_i64(it->valuestring, strlen(it->valuestring), v);
	if ((it->type & 0xFF) == cJSON_Number && !(it->type & NF_QUOTED))
		return parse_i64(c->text + c->spans[it->valueint].off,
		    c->spans[it->valueint].len, v);
	return false;
}

/* The event time (contract §5): time, timestamp, ended_time, start_time;
 * the first positive integer. */
static bool
event_time(const struct nctx *c, cJSON *const *f, int64_t *t)
{
	static const enum field order[] = {
		F_TIME, F_TIMESTAMP, F_ENDED_TIME, F_START_TIME,
	};
	size_t i;

	for (i = 0; i < W2K_ARRAY_SIZE(order); i++)
		if (int_value(c, f[order[i]], t) && *t > 0)
			return true;
	return false;
}

/* ---- printing ---- */

static void
print_value(const struct nctx *c, struct sbuf *sb, const cJSON *it)
{
	const struct span *sp;
	const cJSON *el;
	bool first = true;

	switch (it->type & 0xFF) {
	case cJSON_NULL:
		sb_lit(sb, "null");
		return;
	case cJSON_False:
		sb_lit(sb, "false");
		return;
	case cJSON_True:
		sb_lit(sb, "true");
		return;
	case cJSON_Number:
		if (it->valueint < 0 || (size_t)it->valueint >= c->nspans) {
			sb_lit(sb, "null");	/* not reached */
			return;
		}
		sp = &c->spans[it->valueint];
		if (it->type & NF_QUOTED)
			sb_putc(sb, '"');
		sb_put(sb, c->text + sp->off, sp->len);
		if (it->type & NF_QUOTED)
			sb_putc(sb, '"');
		return;
	case cJSON_String:
		sb_jstr(sb, it->valuestring, strlen(it->valuestring));
		return;
	case cJSON_Raw:
		sb_put(sb, it->valuestring, strlen(it->valuestring));
		return;
	case cJSON_Array:
		sb_putc(sb, '[');
		for (el = it->child; el != NULL; el = el->next) {
			if (!first)
				sb_putc(sb, ',');
			first = false;
			print_value(c, sb, el);
		}
		sb_putc(sb, ']');
		return;
	case cJSON_Object:
		sb_putc(sb, '{');
		for (el = it->child; el != NULL; el = el->next) {
			if (!first)
				sb_putc(sb, ',');
			first = false;
			sb_jstr(sb, el->string, strlen(el->string));
			sb_putc(sb, ':');
			print_value(c, sb, el);
		}
		sb_putc(sb, '}');
		return;
	default:
		sb_lit(sb, "null");	/* not reached */
		return;
	}
}

/* The members of obj except skip and shadowed ones, without braces. */
static void
print_members(const struct nctx *c, struct sbuf *sb, const cJSON *obj,
    const cJSON *skip, bool *first)
{
	const cJSON *el;

	for (el = obj->child; el != NULL; el = el->next) {
		if (el == skip || (el->type & NF_SHADOWED))
			continue;
		if (!*first)
			sb_putc(sb, ',');
		*first = false;
		sb_jstr(sb, el->string, strlen(el->string));
		sb_putc(sb, ':');
		print_value(c, sb, el);
	}
}

/* ---- record ids ---- */

static void
hex16(const unsigned char *md, char *out)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < RECORD_ID_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[RECORD_ID_LEN] = '\0';
}

static size_t
u64dec(uint64_t v, char *buf)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

/* SHA-256 state after pbx, 0x00, frame, 0x00: shared by all parts. */
static EVP_MD_CTX *
id_prefix(const char *pbx, const unsigned char *frame, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md == NULL)
		return NULL;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, pbx, strlen(pbx)) != 1 ||
	    EVP_DigestUpdate(md, "", 1) != 1 ||
	    (len > 0 && EVP_DigestUpdate(md, frame, len) != 1) ||
	    EVP_DigestUpdate(md, "", 1) != 1) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	return md;
}

/*
 * Finish the id of one part. The prefix state is copied for every part but
 * the last, which consumes it (so a one-record frame hashes once and copies
 * nothing).
 */
static int
id_part(EVP_MD_CTX *prefix, EVP_MD_CTX **tmp, size_t part, bool last,
    char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	char num[24];
	size_t n = u64dec(part, num);
	EVP_MD_CTX *use = prefix;

	if (!last) {
		if (*tmp == NULL && (*tmp = EVP_MD_CTX_new()) == NULL)
			return W2K_ENOMEM;
		if (EVP_MD_CTX_copy_ex(*tmp, prefix) != 1)
			return W2K_ENOMEM;
		use = *tmp;
	}
	if (EVP_DigestUpdate(use, num, n) != 1 ||
	    EVP_DigestFinal_ex(use, md, &mdlen) != 1 || mdlen < 16)
		return W2K_ENOMEM;
	hex16(md, out);
	return 0;
}

void
norm_record_id(const char *pbx, const unsigned char *frame, size_t len,
    unsigned part, char out[RECORD_ID_LEN + 1])
{
	EVP_MD_CTX *md = id_prefix(pbx != NULL ? pbx : "", frame, len);

	/* Only an allocation failure inside OpenSSL gets here; the void
	 * interface leaves no way to report it, so the id is all zeros
	 * (norm_frame() itself reports W2K_ENOMEM instead). */
	if (md == NULL || id_part(md, NULL, part, true, out) != 0) {
		memset(out, '0', RECORD_ID_LEN);
		out[RECORD_ID_LEN] = '\0';
	}
	EVP_MD_CTX_free(md);
}

/* ---- known types (metric labels) ---- */

/* Sorted, for bsearch(); "other" is not in it. */
static const char *const known_types[NORM_NTYPES - 1] = {
	"call_cdr", "call_ended", "call_established", "call_fail",
	"call_hold", "call_noanswer", "call_reroute", "call_start",
	"call_unhold", "call_update_info", "cdr_target_add",
	"cdr_target_answer", "cdr_target_end", "cdr_target_fail",
	"cdr_target_noanswer", "cdr_target_ringing", "extension_agent_status",
	"extension_call", "extension_created", "extension_destroyed",
	"extension_hold", "extension_presence", "extension_register",
	"extension_status", "extension_unhold", "extension_updated",
	"queue_agent_status", "queue_caller_status", "queue_created",
	"queue_destroy", "queue_member_state", "queue_sla_breached",
	"queue_status", "queue_updated", "target_add", "target_answer",
	"target_end", "target_ended", "target_fail", "target_noanswer",
	"target_ringing", "trunk_connected", "trunk_disconnected",
};

static int
cmp_type(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

unsigned
norm_type_index(const char *type)
{
	const char *const *hit;

	if (type == NULL)
		return NORM_TYPE_OTHER;
	hit = bsearch(type, known_types, W2K_ARRAY_SIZE(known_types),
	    sizeof(known_types[0]), cmp_type);
	return hit ? (unsigned)(hit - known_types) : NORM_TYPE_OTHER;
}

const char *
norm_type_name(unsigned idx)
{
	return idx < NORM_TYPE_OTHER ? known_types[idx] : "other";
}

/* ---- classes ---- */

const char *
norm_class(const char *type)
{
	const char *rest;

	if (type == NULL)
		return "other";
	switch (type[0]) {
	case 'c':
		if (strcmp(type, "call_cdr") == 0)
			return "cdr";
		if (strncmp(type, "call_", 5) == 0)
			return "call";
		if (strncmp(type, "cdr_target_", 11) == 0)
			return "target";
		break;
	case 't':
		if (strncmp(type, "target_", 7) == 0)
			return "target";
		break;
	case 'e':
		if (strncmp(type, "extension_", 10) != 0)
			break;
		rest = type + 10;
		if (strcmp(rest, "created") == 0 ||
		    strcmp(rest, "updated") == 0 ||
		    strcmp(rest, "destroyed") == 0)
			return "management";
		return "extension";
	case 'q':
		if (strncmp(type, "queue_", 6) != 0)
			break;
		rest = type + 6;
		/* "queue_destroy", sic (portsip-wsi.md §4.6). */
		if (strcmp(rest, "created") == 0 ||
		    strcmp(rest, "updated") == 0 ||
		    strcmp(rest, "destroy") == 0)
			return "management";
		return "queue";
	}
	return "other";
}

/* ---- records ---- */

struct job {
	const struct norm_frame *in;
	const char	*pbx;
	struct nctx	*c;
	struct sbuf	 sb;		/* one value at a time */
	EVP_MD_CTX	*md;		/* id prefix, made on first use */
	EVP_MD_CTX	*md_tmp;
};

static char *
dup_bytes(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* record_hdr_add() with value = a + b, without a heap copy when short. */
static int
hdr_add2(struct record *rec, const char *name, const char *a, const char *b)
{
	char buf[256], *v = buf;
	size_t na = strlen(a), nb = strlen(b);
	int r;

	if (na + nb >= sizeof(buf) && (v = malloc(na + nb + 1)) == NULL)
		return W2K_ENOMEM;
	memcpy(v, a, na);
	memcpy(v + na, b, nb + 1);
	r = record_hdr_add(rec, name, v);
	if (v != buf)
		free(v);
	return r;
}

static int
job_id(struct job *j, size_t part, bool last, char *out)
{
	if (j->md == NULL &&
	    (j->md = id_prefix(j->pbx, j->in->data, j->in->len)) == NULL)
		return W2K_ENOMEM;
	return id_part(j->md, &j->md_tmp, part, last, out);
}

/*
 * Move the text printed into the scratch buffer to rec->value. The last
 * record of a frame takes the buffer itself (a one-record frame — nearly
 * all of them — thus prints straight into its value, no copy); earlier
 * parts get an exact copy, and the buffer is reused.
 */
static int
take_value(struct job *j, struct record *rec, bool last)
{
	if (j->sb.oom)
		return W2K_ENOMEM;
	if (last && j->sb.cap - j->sb.len < 4096) {
		if (j->sb.len == j->sb.cap && !sb_grow(&j->sb, 1))
			return W2K_ENOMEM;
		rec->value = j->sb.p;
		rec->value_len = j->sb.len;
		rec->value[j->sb.len] = '\0';	/* not part of value_len */
		memset(&j->sb, 0, sizeof(j->sb));
		return 0;
	}
	if ((rec->value = malloc(j->sb.len + 1)) == NULL)
		return W2K_ENOMEM;
	memcpy(rec->value, j->sb.p, j->sb.len);
	rec->value[j->sb.len] = '\0';
	rec->value_len = j->sb.len;
	return 0;
}

/*
 * One dead letter (contract §5). raw is the frame as a JSON string when it
 * is UTF-8 (cut at a character boundary), else raw_base64; either is cut
 * to NORM_DL_RAW_MAX bytes of the frame with "truncated":true.
 */
static int
emit_dead_rec(struct job *j, const char *reason, struct record *rec)
{
	const unsigned char *d = j->in->data;
	size_t n = j->in->len, valid, cut;
	bool nul, text, truncated = j->in->too_large;
	int r;

	rec->dead = true;
	rec->received_us = j->in->received_us;
	if ((r = job_id(j, 0, true, rec->id)) != 0)
		return r;

	valid = utf8_prefix(d, n, &nul);
	/* A too_large frame holds only the beginning of the message, which
	 * may end inside a character: that alone does not make it binary. */
	text = valid == n || (j->in->too_large && n - valid < 4 &&
	    utf8_cut_tail(d + valid, n - valid));
	cut = valid < NORM_DL_RAW_MAX ? valid : NORM_DL_RAW_MAX;
	if (text) {
		while (cut > 0 && cut < valid && (d[cut] & 0xC0) == 0x80)
			cut--;		/* back to a character boundary */
		if (cut < n)
			truncated = true;
	} else {
		cut = n < NORM_DL_RAW_MAX ? n : NORM_DL_RAW_MAX;
		if (cut < n)
			truncated = true;
	}

	j->sb.len = 0;
	sb_lit(&j->sb, "{\"schema\":\"wsi2kafka.deadletter/1\",\"id\":\"");
	sb_put(&j->sb, rec->id, RECORD_ID_LEN);
	sb_lit(&j->sb, "\",\"pbx\":");
	sb_jstr(&j->sb, j->pbx, strlen(j->pbx));
	sb_lit(&j->sb, ",\"received_at\":");
	fmt_received(&j->sb, j->in->received_us);
	sb_lit(&j->sb, ",\"reason\":");
	sb_jstr(&j->sb, reason, strlen(reason));
	if (text) {
		sb_lit(&j->sb, ",\"raw\":");
		sb_jstr(&j->sb, (const char *)d, cut);
	} else {
		size_t b64 = (cut + 2) / 3 * 4;

		sb_lit(&j->sb, ",\"raw_base64\":\"");
		if (j->sb.cap - j->sb.len < b64 + 1 && !sb_grow(&j->sb,
		    b64 + 1))
			return W2K_ENOMEM;
		EVP_EncodeBlock((unsigned char *)j->sb.p + j->sb.len, d,
		    (int)cut);
		j->sb.len += b64;
		sb_putc(&j->sb, '"');
	}
	if (truncated)
		sb_lit(&j->sb, ",\"truncated\":true");
	sb_putc(&j->sb, '}');
	if ((r = take_value(j, rec, true)) != 0)
		return r;

	if ((rec->key = dup_bytes(j->pbx, strlen(j->pbx))) == NULL ||
	    (rec->type = dup_bytes("", 0)) == NULL)
		return W2K_ENOMEM;
	rec->key_len = strlen(j->pbx);
	if ((r = record_hdr_add(rec, "content-type", "application/json")) !=
	    0 || (r = record_hdr_add(rec, "ce_id", rec->id)) != 0)
		return r;
	return 0;
}

static int
emit_dead(struct job *j, const char *reason, struct norm_result *res)
{
	res->kind = NORM_DEAD;
	res->dead_reason = reason;
	if ((res->recs = calloc(1, sizeof(*res->recs))) == NULL)
		return W2K_ENOMEM;
	res->nrecs = 1;
	return emit_dead_rec(j, reason, &res->recs[0]);
}

/*
 * The second half of the key (contract §5): session, extension, queue id,
 * queue number — the most specific id there is. A part of a split frame is
 * keyed by its extension first: that is what it describes.
 */
static bool
key_suffix(const struct nctx *c, cJSON *const *f, bool part,
    const char **s, size_t *n)
{
	if (part && key_text(c, f[F_EXTENSION_ID], s, n))
		return true;
	return key_text(c, f[F_SESSION_ID], s, n) ||
	    key_text(c, f[F_EXTENSION_ID], s, n) ||
	    key_text(c, f[F_QUEUE_ID], s, n) ||
	    key_text(c, f[F_QUEUE_NUMBER], s, n);
}

/*
 * One event record. entry == NULL: data is the whole root object. Else
 * data is root's members minus skip (the status array being split) and
 * minus those the entry overrides (NF_SHADOWED), then the entry's members.
 * f: the fields of data (merged for a part).
 */
static int
emit_event(struct job *j, const cJSON *root, const cJSON *skip,
    const cJSON *entry, cJSON *const *f, size_t part, bool last,
    struct record *rec)
{
	const struct nctx *c = j->c;
	const char *type = f[F_EVENT_TYPE]->valuestring;
	const char *cls = norm_class(type);
	const char *ts = NULL, *ss = NULL, *ks = NULL;
	size_t tn = 0, sn = 0, kn = 0;
	bool has_t, has_s, has_time, has_k;
	int64_t t = 0;
	int r;

	rec->received_us = j->in->received_us;
	if ((r = job_id(j, part, last, rec->id)) != 0)
		return r;
	has_t = id_text(c, f[F_TENANT_ID], &ts, &tn);
	has_s = id_text(c, f[F_SESSION_ID], &ss, &sn);
	has_time = event_time(c, f, &t);

	j->sb.len = 0;
	sb_lit(&j->sb, "{\"schema\":\"wsi2kafka.event/1\",\"id\":\"");
	sb_put(&j->sb, rec->id, RECORD_ID_LEN);
	sb_lit(&j->sb, "\",\"pbx\":");
	sb_jstr(&j->sb, j->pbx, strlen(j->pbx));
	sb_lit(&j->sb, ",\"type\":");
	sb_jstr(&j->sb, type, strlen(type));
	sb_lit(&j->sb, ",\"class\":\"");
	sb_put(&j->sb, cls, strlen(cls));
	sb_lit(&j->sb, "\",\"tenant_id\":");
	if (has_t)
		sb_jstr(&j->sb, ts, tn);
	else
		sb_lit(&j->sb, "null");
	sb_lit(&j->sb, ",\"session_id\":");
	if (has_s)
		sb_jstr(&j->sb, ss, sn);
	else
		sb_lit(&j->sb, "null");
	sb_lit(&j->sb, ",\"time\":");
	if (has_time)
		sb_int(&j->sb, t);
	else
		sb_lit(&j->sb, "null");
	sb_lit(&j->sb, ",\"received_at\":");
	fmt_received(&j->sb, j->in->received_us);
	sb_lit(&j->sb, ",\"data\":");
	if (entry == NULL) {
		print_value(c, &j->sb, root);
	} else {
		bool first = true;

		sb_putc(&j->sb, '{');
		print_members(c, &j->sb, root, skip, &first);
		print_members(c, &j->sb, entry, NULL, &first);
		sb_putc(&j->sb, '}');
	}
	sb_putc(&j->sb, '}');
	if ((r = take_value(j, rec, last)) != 0)
		return r;

	/* Key: "<tenant>[:<id>]"; no tenant id (or an empty one) gives a
	 * null key. */
	if (has_t && tn > 0) {
		has_k = key_suffix(c, f, entry != NULL, &ks, &kn);
		if ((rec->key = malloc(tn + 1 + kn + 1)) == NULL)
			return W2K_ENOMEM;
		memcpy(rec->key, ts, tn);
		rec->key_len = tn;
		if (has_k) {
			rec->key[tn] = ':';
			memcpy(rec->key + tn + 1, ks, kn);
			rec->key_len += 1 + kn;
		}
		rec->key[rec->key_len] = '\0';
	}

	if ((rec->type = dup_bytes(type, strlen(type))) == NULL)
		return W2K_ENOMEM;
	if ((r = record_hdr_add(rec, "ce_specversion", "1.0")) != 0 ||
	    (r = record_hdr_add(rec, "ce_id", rec->id)) != 0 ||
	    (r = hdr_add2(rec, "ce_source", "wsi2kafka://", j->pbx)) != 0 ||
	    (r = hdr_add2(rec, "ce_type", "com.portsip.wsi.", type)) != 0)
		return r;
	if (has_time) {
		char buf[64];
		struct sbuf tb = { 0 };

		/* The time is any positive int64; ce_time is left out when
		 * it is not a year RFC 3339 can spell. */
		tb.p = buf;
		tb.cap = sizeof(buf);
		if (fmt_time(&tb, t, -1) && !tb.oom) {
			buf[tb.len] = '\0';
			if ((r = record_hdr_add(rec, "ce_time", buf)) != 0)
				return r;
		}
	}
	return record_hdr_add(rec, "content-type", "application/json");
}

/*
 * Whether an extension_status frame splits into one record per entry, and
 * into how many. It does when `status` is a non-empty array of objects.
 * Otherwise — no array, an empty one, or any entry that is not an object
 * (we cannot tell what such an entry means, and splitting only the objects
 * would silently drop the rest) — the frame is published whole, as part 0,
 * so nothing is lost. Also whole when the parts would be too big in total
 * (SPLIT_MAX_BYTES).
 */
static size_t
split_count(struct job *j, const cJSON *root, const cJSON *status)
{
	const cJSON *el;
	size_t n = 0, other;
	bool first = true;

	if (status == NULL || (status->type & 0xFF) != cJSON_Array)
		return 0;
	for (el = status->child; el != NULL; el = el->next) {
		if ((el->type & 0xFF) != cJSON_Object)
			return 0;
		n++;
	}
	if (n == 0)
		return 0;
	/* Measure what every part repeats. */
	j->sb.len = 0;
	print_members(j->c, &j->sb, root, status, &first);
	other = j->sb.len + PART_OVERHEAD;
	if (j->sb.oom || j->in->len > SPLIT_MAX_BYTES ||
	    n > (SPLIT_MAX_BYTES - j->in->len) / other)
		return 0;
	return n;
}

/* Hide root's members that entry overrides. nroot > SMALL_OBJECT: root's
 * members are in c->refs, sorted (root is de-duplicated, so each key is
 * there once). */
static void
shadow(const struct nctx *c, const cJSON *root, size_t nroot,
    const cJSON *entry)
{
	const cJSON *el;
	cJSON *m;

	for (el = entry->child; el != NULL; el = el->next) {
		m = nroot > SMALL_OBJECT ? refs_find(c, nroot, el->string) :
		    member(root, el->string);
		if (m != NULL)
			m->type |= NF_SHADOWED;
	}
}

static void
unshadow(const cJSON *root)
{
	cJSON *m;

	for (m = root->child; m != NULL; m = m->next)
		m->type &= ~NF_SHADOWED;
}

static int
emit_events(struct job *j, cJSON *root, const struct fields *fs,
    struct norm_result *res)
{
	const cJSON *status = fs->f[F_STATUS], *el;
	struct fields ef;
	cJSON *mf[F_COUNT];
	size_t nparts = 0, i, k, nroot = 0;
	int r;

	res->kind = NORM_EVENTS;
	if (strcmp(fs->f[F_EVENT_TYPE]->valuestring, "extension_status") == 0)
		nparts = split_count(j, root, status);
	if (nparts == 0) {
		if ((res->recs = calloc(1, sizeof(*res->recs))) == NULL)
			return W2K_ENOMEM;
		res->nrecs = 1;
		return emit_event(j, root, NULL, NULL, fs->f, 0, true,
		    &res->recs[0]);
	}

	if ((res->recs = calloc(nparts, sizeof(*res->recs))) == NULL)
		return W2K_ENOMEM;
	res->nrecs = nparts;
	for (el = root->child; el != NULL; el = el->next)
		nroot++;
	if (nroot > SMALL_OBJECT && (r = refs_sort(j->c, root, nroot)) != 0)
		return r;
	for (i = 0, el = status->child; el != NULL; el = el->next, i++) {
		/* The part's fields: the entry's, else the frame's (but
		 * never the frame's status array). */
		fields_get(el, &ef);
		for (k = 0; k < F_COUNT; k++)
			mf[k] = ef.f[k] != NULL ? ef.f[k] :
			    k == F_STATUS ? NULL : fs->f[k];
		/* The frame's event_type is the record's type, even if an
		 * entry carries one of its own (which stays in data). */
		mf[F_EVENT_TYPE] = fs->f[F_EVENT_TYPE];
		shadow(j->c, root, nroot, el);
		r = emit_event(j, root, status, el, mf, i, i + 1 == nparts,
		    &res->recs[i]);
		unshadow(root);
		if (r != 0)
			return r;
	}
	return 0;
}

/*
 * A command reply: {"command":…} (auth, subscribe, …), or the v16.0 auth
 * reply with no command (portsip-wsi.md §2.1): only status/error/id keys
 * and a numeric status.
 *
 * reply_status: the status when it is an integer (a number or a numeric
 * string); a missing status means success (0) unless there is an `error`
 * key, then -1; any other status (wrong type, not an integer, out of int
 * range) is -1 — an unreadable status must not pass for success.
 */
static int
emit_reply(const struct nctx *c, const struct fields *fs,
    struct norm_result *res)
{
	const cJSON *cmd = fs->f[F_COMMAND], *st = fs->f[F_STATUS];
	const cJSON *err = fs->f[F_ERROR];
	int64_t v;

	res->kind = NORM_REPLY;
	if (st == NULL) {
		res->reply_status = err != NULL ? -1 : 0;
	} else if ((st->type & 0xFF) == cJSON_String) {
		res->reply_status = parse_i64(st->valuestring,
		    strlen(st->valuestring), &v) && v >= INT_MIN &&
		    v <= INT_MAX ? (int)v : -1;
	} else {
		res->reply_status = int_value(c, st, &v) && v >= INT_MIN &&
		    v <= INT_MAX ? (int)v : -1;
	}
	if (cmd != NULL && (res->reply_command = dup_bytes(cmd->valuestring,
	    strlen(cmd->valuestring))) == NULL)
		return W2K_ENOMEM;
	if (err != NULL && (err->type & 0xFF) == cJSON_String &&
	    (res->reply_error = dup_bytes(err->valuestring,
	    strlen(err->valuestring))) == NULL)
		return W2K_ENOMEM;
	return 0;
}

static int
classify_frame(struct job *j, struct norm_result *res)
{
	const unsigned char *d = j->in->data;
	size_t n = j->in->len;
	const char *end = NULL;
	struct fields fs;
	cJSON *root, *et;
	bool nul;
	int r;

	if (j->in->too_large)
		return emit_dead(j, NORM_DL_TOO_LARGE, res);
	if (utf8_prefix(d, n, &nul) != n)
		return emit_dead(j, NORM_DL_INVALID_UTF8, res);
	if (nul)
		return emit_dead(j, NORM_DL_INVALID_JSON, res);
	if ((r = json_scan(j->c, d, n)) == W2K_EINVAL)
		return emit_dead(j, NORM_DL_INVALID_JSON, res);
	if (r != 0)
		return r;
	/* json_scan() accepted it, so only memory can make cJSON fail. The
	 * end check repeats json_scan()'s for cJSON's own sake: cJSON
	 * accepts trailing text unless asked. */
	root = cJSON_ParseWithLengthOpts((const char *)d, n, &end, false);
	if (root == NULL)
		return W2K_ENOMEM;
	while (end != NULL && end < (const char *)d + n && is_ws(*end))
		end++;
	if (end != (const char *)d + n) {
		cJSON_Delete(root);
		return emit_dead(j, NORM_DL_INVALID_JSON, res);
	}
	if ((root->type & 0xFF) != cJSON_Object) {
		cJSON_Delete(root);
		return emit_dead(j, NORM_DL_NOT_OBJECT, res);
	}
	if ((r = norm_obj(j->c, root)) != 0 || j->c->next != j->c->nspans) {
		cJSON_Delete(root);
		if (r == W2K_ENOMEM)
			return r;
		return emit_dead(j, NORM_DL_INVALID_JSON, res);
	}

	fields_get(root, &fs);
	et = fs.f[F_EVENT_TYPE];
	/* A `command` that is not a string is no reply: the frame is then
	 * judged by its event_type like any other. */
	if ((fs.f[F_COMMAND] != NULL &&
	    (fs.f[F_COMMAND]->type & 0xFF) == cJSON_String) ||
	    (fs.f[F_COMMAND] == NULL && et == NULL && fs.reply_keys_only &&
	    fs.f[F_STATUS] != NULL &&
	    (fs.f[F_STATUS]->type & 0xFF) == cJSON_Number))
		r = emit_reply(j->c, &fs, res);
	else if (et == NULL || (et->type & 0xFF) != cJSON_String ||
	    et->valuestring[0] == '\0')
		r = emit_dead(j, NORM_DL_NO_EVENT_TYPE, res);
	else
		r = emit_events(j, root, &fs, res);
	cJSON_Delete(root);
	return r;
}

int
norm_frame(const struct norm_frame *in, struct norm_result *res)
{
	struct norm_frame fr = *in;
	struct nctx c;
	struct job j;
	int r;

	memset(res, 0, sizeof(*res));
	if (fr.data == NULL) {
		fr.data = (const unsigned char *)"";
		fr.len = 0;
	}
	memset(&c, 0, sizeof(c));
	c.text = (const char *)fr.data;
	c.spans = c.spans_buf;
	c.spans_cap = W2K_ARRAY_SIZE(c.spans_buf);
	memset(&j, 0, sizeof(j));
	j.in = &fr;
	j.pbx = in->pbx != NULL ? in->pbx : "";
	j.c = &c;
	/* Room for a typical record up front: growing by doubling would
	 * cost several large reallocations per frame. */
	if (fr.len < SIZE_MAX - 1024 &&
	    (j.sb.p = malloc(fr.len + 1024)) != NULL)
		j.sb.cap = fr.len + 1024;

	r = classify_frame(&j, res);

	if (c.spans != c.spans_buf)
		free(c.spans);
	free(c.refs);
	free(j.sb.p);
	EVP_MD_CTX_free(j.md);
	EVP_MD_CTX_free(j.md_tmp);
	if (r != 0) {
		norm_result_clear(res);
		return W2K_ENOMEM;
	}
	return 0;
}

/*
 * The same dead letter norm_frame() makes, for bytes the caller could not
 * publish (ksink: a record the broker refuses for good). The id is that
 * of part 0 of these bytes, so a replay gives the same dead letter.
 */
int
norm_dead_letter(const char *pbx, const char *reason,
    const unsigned char *raw, size_t len, bool truncated, int64_t received_us,
    struct record *out)
{
	struct norm_frame fr = {
		.pbx = pbx != NULL ? pbx : "",
		.data = raw != NULL ? raw : (const unsigned char *)"",
		.len = raw != NULL ? len : 0,
		.too_large = truncated,
		.received_us = received_us,
	};
	struct nctx c;
	struct job j;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	memset(&j, 0, sizeof(j));
	j.in = &fr;
	j.pbx = fr.pbx;
	j.c = &c;
	r = emit_dead_rec(&j, reason != NULL ? reason : "", out);
	free(j.sb.p);
	EVP_MD_CTX_free(j.md);
	EVP_MD_CTX_free(j.md_tmp);
	if (r != 0) {
		record_clear(out);
		return W2K_ENOMEM;
	}
	return 0;
}

void
norm_result_clear(struct norm_result *res)
{
	size_t i;

	for (i = 0; i < res->nrecs; i++)
		record_clear(&res->recs[i]);
	free(res->recs);
	free(res->reply_command);
	free(res->reply_error);
	memset(res, 0, sizeof(*res));
}
