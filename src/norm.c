/*
 * norm.c — one WebSocket frame from a PBX → Kafka records (contract §5):
 * strict UTF-8 and JSON checks, limits, normalization of the payload,
 * envelope, key, CloudEvents headers and the stable record id.
 *
 * Pure: no I/O, no logging, no state kept between calls (the SHA-256
 * method and the type table are made once, with pthread_once()). It must
 * never crash or loop on any input — whatever the PBX sends either
 * becomes records or one dead letter that keeps the raw bytes; the only
 * error it returns is W2K_ENOMEM. It is the hot path (every frame of every
 * PBX), so it reads the text twice (UTF-8, then JSON), builds a flat tree
 * in one array without a malloc per value (on the stack for most frames),
 * prints each record on the stack and allocates only what the record
 * keeps: value, key, type, headers.
 *
 * Pipeline for one frame:
 *   utf8_prefix()  strict UTF-8 (no overlongs, surrogates, > U+10FFFF), NULs
 *   json_parse()   strict RFC 8259 grammar and the limits (NORM_MAX_*) in
 *                  one pass that builds the tree: strings point into the
 *                  frame (or, when they hold escapes, into one buffer of
 *                  decoded text), numbers keep their literal, and every
 *                  value is normalized (§5) as it is read, every object
 *                  de-duplicated and its legacy names renamed as it closes
 *   emit_*()       envelope + data printed straight into a buffer
 *
 * Numbers are never converted to doubles, which would corrupt 64-bit ids
 * and large counters: they are printed from the original text.
 *
 * Why frames are not parsed with cJSON, the project's JSON library (used
 * for the commands the session sends and librdkafka's statistics): it
 * turns every number into a double, it has no bound on members or
 * elements (only a compile-time nesting limit of 1000) and it allocates
 * every value on its own. A strict validating scan had to run before it
 * anyway (grammar, number spans, limits); that one pass now builds the
 * tree too, instead of the text being parsed twice (2.7 times less CPU
 * per frame, README "Performance").
 */
#include "norm.h"
#include "w2k.h"

#include <openssl/evp.h>

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* cJSON (which many consumers use) copies at most 63 characters of a
 * number before strtod() and refuses longer ones; so do we, so that every
 * record we publish parses again there. */
#define JSON_MAX_NUMBER	63

/* Objects with more members than this are de-duplicated (and looked up
 * while splitting) through a sorted array instead of pairwise comparison:
 * a 10000-member object must not cost 5*10^7 key compares. Sorting, unlike
 * an unkeyed hash, has no worst case to craft keys for. */
#define SMALL_OBJECT	32

/* Nodes kept on the stack before the tree moves to the heap: enough for
 * every event but large CDRs and extension_status snapshots. */
#define INLINE_NODES	160

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
	char	*fixed;		/* the caller's buffer p starts in, or NULL:
				   never realloc()ed nor freed */
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
	if (sb->p != NULL && sb->p == sb->fixed) {
		if ((p = malloc(cap)) != NULL)
			memcpy(p, sb->p, sb->len);
	} else {
		p = realloc(sb->p, cap);
	}
	if (p == NULL) {
		sb->oom = true;
		return false;
	}
	sb->p = p;
	sb->cap = cap;
	return true;
}

/* Free what sb allocated. */
static void
sb_free(struct sbuf *sb)
{
	if (sb->p != sb->fixed)
		free(sb->p);
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

/* Non-zero iff some byte of v is below b (b <= 128). */
static inline uint64_t
has_less(uint64_t v, unsigned char b)
{
	return (v - ONES * b) & ~v & HIGHS;
}

/* The offset of the first byte flagged in a non-zero has_byte() or
 * has_less() result of 8 bytes loaded with memcpy(): the lowest flag is
 * always a true one (a false one only appears above a true one, where
 * the subtraction borrowed). */
static inline size_t
first_flagged(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (size_t)__builtin_ctzll(m) >> 3;
#else
	(void)m;
	return 0;	/* the caller's byte loop finds it */
#endif
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
	for (i = 0; n - i >= 8; i += 8) {
		uint64_t v, m;

		memcpy(&v, p + i, 8);
		memcpy(o + i, p + i, 8);
		m = has_byte(v, '"') | has_byte(v, '\\') | has_less(v, 0x20);
		if (m != 0) {
			i += first_flagged(m);
			break;
		}
	}
	for (; i < n && !must_escape[p[i]]; i++)
		o[i] = (char)p[i];
	if (i == n) {
		o[n] = '"';
		sb->len += n + 2;
		return;
	}
	sb->len += 1 + i;
	sb_jstr_slow(sb, p + i, p + n);
}

/* A JSON string known to need no escaping (no control character, '"' or
 * '\\': the parser checked). */
static inline void
sb_jstr_plain(struct sbuf *sb, const char *s, size_t n)
{
	char *o;

	if (sb->cap - sb->len < n + 2 && !sb_grow(sb, n + 2))
		return;
	o = sb->p + sb->len;
	o[0] = '"';
	if (n > 0)
		memcpy(o + 1, s, n);
	o[n + 1] = '"';
	sb->len += n + 2;
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
 * every member of every object, once. */
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

/* ---- the tree ---- */

/* Value types, after normalization. */
enum ntype {
	N_NULL, N_FALSE, N_TRUE,
	N_NUM,		/* a number literal, printed as sent */
	N_STR,
	N_INT,		/* a numeric string made an integer (§5) */
	N_ARR, N_OBJ,
};

#define NF_QUOTED	0x01	/* N_NUM printed as a string (an id) */
#define NF_SHADOWED	0x02	/* hidden in this split part */
#define NF_DROPPED	0x04	/* a duplicate key that lost */
#define NF_PLAIN	0x08	/* N_STR needs no escaping when printed */
#define NF_KEY_PLAIN	0x10	/* nor does the key */

/*
 * One value. The tree is one array: children and siblings are indices
 * (0, the root, is nobody's child, so 0 means none). Strings are neither
 * copied nor NUL-terminated: they point into the frame, or into the
 * decoded-text buffer when they held escapes.
 */
struct node {
	const char	*key;	/* member name, decoded; NULL in arrays, root */
	union {
		const char *s;	/* N_STR: the bytes; N_NUM: the literal */
		int64_t	 v;	/* N_INT */
	} u;
	uint32_t	 klen;
	uint32_t	 len;	/* N_STR, N_NUM: of u.s; N_ARR, N_OBJ:
				   number of children */
	uint32_t	 child;	/* first child */
	uint32_t	 next;	/* next sibling */
	uint16_t	 kc;	/* classify(key) */
	uint8_t		 type;	/* enum ntype */
	uint8_t		 flags;	/* NF_* */
};

/* What a value costs, as norm.h says (NORM_MAX_VALUES). */
_Static_assert(sizeof(struct node) <= 40, "struct node grew");

struct kref {
	struct node	*it;
	size_t		 pos;		/* document order */
};

struct nctx {
	const char	*text;		/* the frame */
	size_t		 textlen;
	struct node	*nodes;		/* the tree; nodes[0] is the root */
	size_t		 nnodes;
	size_t		 cap;
	char		*dec;		/* decoded strings (only those with
					   escapes), textlen bytes */
	size_t		 declen;
	struct kref	*refs;		/* scratch: members sorted by key */
	size_t		 refs_cap;
	struct node	 nodes_buf[INLINE_NODES];
};

static void
nctx_init(struct nctx *c, const unsigned char *text, size_t len)
{
	c->text = (const char *)text;
	c->textlen = len;
	c->nodes = c->nodes_buf;
	c->nnodes = 0;
	c->cap = INLINE_NODES;
	c->dec = NULL;
	c->declen = 0;
	c->refs = NULL;
	c->refs_cap = 0;
}

static void
nctx_free(struct nctx *c)
{
	if (c->nodes != c->nodes_buf)
		free(c->nodes);
	free(c->dec);
	free(c->refs);
}

static int
node_new(struct nctx *c, uint32_t *idx)
{
	struct node *nd;

	if (c->nnodes == c->cap) {
		size_t cap = c->cap * 2 < NORM_MAX_VALUES ? c->cap * 2 :
		    NORM_MAX_VALUES;

		if (cap <= c->cap || cap > SIZE_MAX / sizeof(*nd))
			return W2K_ENOMEM;	/* not reached: json_parse()
						   stops at NORM_MAX_VALUES */
		if (c->nodes == c->nodes_buf) {
			if ((nd = malloc(cap * sizeof(*nd))) == NULL)
				return W2K_ENOMEM;
			memcpy(nd, c->nodes, c->nnodes * sizeof(*nd));
		} else if ((nd = realloc(c->nodes, cap * sizeof(*nd))) ==
		    NULL) {
			return W2K_ENOMEM;
		}
		c->nodes = nd;
		c->cap = cap;
	}
	*idx = (uint32_t)c->nnodes;
	nd = &c->nodes[c->nnodes++];
	nd->child = 0;
	nd->next = 0;
	nd->len = 0;
	nd->flags = 0;
	return 0;
}

static bool
key_eq(const struct node *a, const char *k, size_t n)
{
	return a->klen == n && memcmp(a->key, k, n) == 0;
}

/* ---- normalization of scalars (contract §5) ---- */

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
 * before the exponent. Exact, unlike a double. */
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
norm_number(struct node *nd, enum kcls kc)
{
	nd->type = N_NUM;
	if (kc == K_ID)
		nd->flags |= NF_QUOTED;
	else if (kc == K_TIME && literal_is_zero(nd->u.s, nd->len))
		nd->type = N_NULL;
}

static void
norm_string(struct node *nd, enum kcls kc)
{
	static const struct {
		const char *from, *to;
		uint32_t flen, tlen;
	} dir[] = {
		{ "ext", "internal", 3, 8 },
		{ "in", "inbound", 2, 7 },
		{ "in2out", "inbound_outbound", 6, 16 },
		{ "out", "outbound", 3, 8 },
	};
	int64_t v;
	size_t i;

	nd->type = N_STR;
	switch (kc) {
	case K_TIME:
	case K_INT:
		if (!parse_i64(nd->u.s, nd->len, &v))
			return;
		/* A time of 0: not answered, not rung. Otherwise the value
		 * is printed as a JSON integer in canonical form (no
		 * leading zeros, no -0). */
		if (kc == K_TIME && v == 0) {
			nd->type = N_NULL;
			return;
		}
		nd->type = N_INT;
		nd->u.v = v;
		return;
	case K_DIRECTION:
		for (i = 0; i < W2K_ARRAY_SIZE(dir); i++) {
			if (nd->len == dir[i].flen &&
			    memcmp(nd->u.s, dir[i].from, dir[i].flen) == 0) {
				nd->u.s = dir[i].to;
				nd->len = dir[i].tlen;
				nd->flags |= NF_PLAIN;
				return;
			}
		}
		return;
	default:
		return;
	}
}

/* ---- objects: duplicate keys, legacy names ---- */

/* Keys in byte order (a prefix first): the order of strcmp(), as they
 * hold no NUL. */
static int
keycmp(const char *a, size_t an, const char *b, size_t bn)
{
	int d = memcmp(a, b, an < bn ? an : bn);

	if (d != 0)
		return d;
	return an < bn ? -1 : an > bn;
}

static int
kref_cmp(const void *a, const void *b)
{
	const struct kref *x = a, *y = b;
	int d = keycmp(x->it->key, x->it->klen, y->it->key, y->it->klen);

	if (d != 0)
		return d;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* c->refs[0..n) = obj's n members, sorted by key, then document order. */
static int
refs_sort(struct nctx *c, const struct node *obj, size_t n)
{
	uint32_t it;
	size_t i;

	if (n > c->refs_cap) {
		struct kref *p;

		if (n > SIZE_MAX / sizeof(*p) ||
		    (p = realloc(c->refs, n * sizeof(*p))) == NULL)
			return W2K_ENOMEM;
		c->refs = p;
		c->refs_cap = n;
	}
	for (i = 0, it = obj->child; it != 0 && i < n;
	    it = c->nodes[it].next, i++) {
		c->refs[i].it = &c->nodes[it];
		c->refs[i].pos = i;
	}
	qsort(c->refs, i, sizeof(*c->refs), kref_cmp);
	return 0;
}

/* The member called key among the n sorted by refs_sort(), or NULL. */
static struct node *
refs_find(const struct nctx *c, size_t n, const char *key, size_t klen)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct node *m = c->refs[mid].it;
		int d = keycmp(key, klen, m->key, m->klen);

		if (d == 0)
			return c->refs[mid].it;
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static struct node *
member(const struct nctx *c, const struct node *obj, const char *key,
    size_t klen)
{
	uint32_t it;

	for (it = obj->child; it != 0; it = c->nodes[it].next)
		if (key_eq(&c->nodes[it], key, klen))
			return &c->nodes[it];
	return NULL;
}

/* Take the members marked NF_DROPPED out of obj's list. */
static void
relink(struct nctx *c, struct node *obj)
{
	uint32_t it, *link = &obj->child;

	obj->len = 0;
	for (it = obj->child; it != 0; it = c->nodes[it].next) {
		if (c->nodes[it].flags & NF_DROPPED)
			continue;
		*link = it;
		link = &c->nodes[it].next;
		obj->len++;
	}
	*link = 0;
}

/* ended_reason → end_reason, did_cid → did; the current name wins when
 * both are present (portsip-wsi.md §4.3, §6 #14). */
static void
rename_legacy(struct nctx *c, struct node *obj, const char *legacy,
    const char *current)
{
	struct node *old = member(c, obj, legacy, strlen(legacy));

	if (old == NULL)
		return;
	if (member(c, obj, current, strlen(current)) != NULL) {
		old->flags |= NF_DROPPED;
		relink(c, obj);
		return;
	}
	old->key = current;
	old->klen = (uint32_t)strlen(current);
	old->flags |= NF_KEY_PLAIN;
}

/*
 * An object is complete: remove duplicate keys, then rename legacy keys.
 * Duplicate keys: the last one wins (as in every mainstream parser, and
 * portsip-wsi.md §6 #15: extension_created really does send "username"
 * twice).
 *
 * Small objects (nearly all) are de-duplicated on a one-byte fingerprint
 * of each key (length, first and last byte) kept in a local array: only a
 * fingerprint seen before leads to comparisons, a memcmp() only when
 * fingerprints match, so a 30-member CDR costs about one pass. Larger ones
 * are sorted: equal keys sort next to each other, earliest first, and all
 * but the last of each run go.
 */
static int
obj_close(struct nctx *c, uint32_t idx)
{
	struct node *obj = &c->nodes[idx], *m;
	struct node *items[SMALL_OBJECT];
	unsigned char fp[SMALL_OBJECT];
	unsigned legacy = 0;
	size_t n = obj->len, i, k;
	bool dropped = false;
	uint32_t it;
	int r;

	for (i = 0, it = obj->child; it != 0; it = m->next, i++) {
		m = &c->nodes[it];
		if (KEY_CLS(m->kc) == K_ENDED_REASON)
			legacy |= 1;
		else if (KEY_CLS(m->kc) == K_DID_CID)
			legacy |= 2;
		if (i < SMALL_OBJECT) {
			items[i] = m;
			fp[i] = (unsigned char)(m->klen * 31 + (m->klen ?
			    (unsigned char)m->key[0] * 7 +
			    (unsigned char)m->key[m->klen - 1] : 0));
		}
	}
	if (n > SMALL_OBJECT) {
		if ((r = refs_sort(c, obj, n)) != 0)
			return r;
		for (i = 0; i + 1 < n; i++) {
			if (key_eq(c->refs[i].it, c->refs[i + 1].it->key,
			    c->refs[i + 1].it->klen)) {
				c->refs[i].it->flags |= NF_DROPPED;
				dropped = true;
			}
		}
	} else {
		/* Last wins: each member drops the earlier ones with its key.
		 * Only a fingerprint seen before (a bit in seen) calls for a
		 * look back, so objects without duplicates cost one pass. */
		uint64_t seen[4] = { 0 };

		for (k = 0; k < n; k++) {
			unsigned f = fp[k];

			if (seen[f >> 6] & (UINT64_C(1) << (f & 63))) {
				for (i = 0; i < k; i++) {
					if (fp[i] != f || (items[i]->flags &
					    NF_DROPPED) || !key_eq(items[i],
					    items[k]->key, items[k]->klen))
						continue;
					items[i]->flags |= NF_DROPPED;
					dropped = true;
				}
			}
			seen[f >> 6] |= UINT64_C(1) << (f & 63);
		}
	}
	if (dropped)
		relink(c, obj);
	if (legacy & 1)
		rename_legacy(c, obj, "ended_reason", "end_reason");
	if (legacy & 2)
		rename_legacy(c, obj, "did_cid", "did");
	return 0;
}

/* ---- strict JSON parse ---- */

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

static char *
put_utf8(char *d, unsigned long cp)
{
	if (cp < 0x80) {
		*d++ = (char)cp;
	} else if (cp < 0x800) {
		*d++ = (char)(0xC0 | cp >> 6);
		*d++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*d++ = (char)(0xE0 | cp >> 12);
		*d++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*d++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*d++ = (char)(0xF0 | cp >> 18);
		*d++ = (char)(0x80 | (cp >> 12 & 0x3F));
		*d++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*d++ = (char)(0x80 | (cp & 0x3F));
	}
	return d;
}

/* Bytes that end the plain run inside a string: control characters,
 * '"' and '\\' (the bytes a JSON string cannot hold as they are). */
static const unsigned char string_stop[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['"'] = 1, ['\\'] = 1,
};

/*
 * The string starting at text[*ip] == '"'. Strict about escapes: only the
 * RFC 8259 ones, \u with four hex digits, surrogates only as a proper pair
 * and no \u0000 (a NUL inside a value would be cut by every C consumer:
 * we dead-letter instead). Raw control characters are tolerated (our
 * printer escapes them), so a sloppy display name does not cost a whole
 * CDR. A string without escapes is its bytes in the frame; one with
 * escapes is decoded into c->dec, which decoding never overflows (an
 * escape is never shorter than what it stands for). *plain tells whether
 * the string can be printed as it is (no escape, no control character).
 * @returns 0 (*out, *outlen, *plain set, *ip past the closing quote),
 *          W2K_EINVAL, W2K_ENOMEM.
 */
static int
scan_string(struct nctx *c, size_t *ip, const char **out, uint32_t *outlen,
    bool *plain)
{
	const unsigned char *s = (const unsigned char *)c->text;
	size_t n = c->textlen, i = *ip + 1, start = i, run;
	char *d = NULL, *d0 = NULL;
	bool ctrl = false;

	for (;;) {
		long u, u2;

		/* Fast skip over plain bytes, 8 at a time; a raw control
		 * character is only noted. */
		for (run = i;;) {
			for (; n - i >= 8; i += 8) {
				uint64_t v, m;

				memcpy(&v, s + i, 8);
				m = has_byte(v, '"') | has_byte(v, '\\') |
				    has_less(v, 0x20);
				if (m != 0) {
					i += first_flagged(m);
					break;
				}
			}
			while (i < n && !string_stop[s[i]])
				i++;
			if (i >= n || s[i] >= 0x20)
				break;
			ctrl = true;
			i++;
		}
		if (i >= n)
			return W2K_EINVAL;
		if (d != NULL) {
			memcpy(d, s + run, i - run);
			d += i - run;
		}
		if (s[i] == '"')
			break;
		if (d == NULL) {
			if (c->dec == NULL && (c->dec = malloc(n)) == NULL)
				return W2K_ENOMEM;
			d = d0 = c->dec + c->declen;
			memcpy(d, s + start, i - start);
			d += i - start;
		}
		if (i + 1 >= n)
			return W2K_EINVAL;
		switch (s[i + 1]) {
		case '"':	*d++ = '"'; break;
		case '\\':	*d++ = '\\'; break;
		case '/':	*d++ = '/'; break;
		case 'b':	*d++ = '\b'; break;
		case 'f':	*d++ = '\f'; break;
		case 'n':	*d++ = '\n'; break;
		case 'r':	*d++ = '\r'; break;
		case 't':	*d++ = '\t'; break;
		case 'u':
			if ((u = hex4(s + i, n - i)) < 0 || u == 0 ||
			    (u >= 0xDC00 && u <= 0xDFFF))
				return W2K_EINVAL;
			if (u >= 0xD800 && u <= 0xDBFF) {
				u2 = hex4(s + i + 6, n - i - 6);
				if (u2 < 0xDC00 || u2 > 0xDFFF)
					return W2K_EINVAL;
				d = put_utf8(d, 0x10000 +
				    ((unsigned long)(u - 0xD800) << 10) +
				    (unsigned long)(u2 - 0xDC00));
				i += 12;
			} else {
				d = put_utf8(d, (unsigned long)u);
				i += 6;
			}
			continue;
		default:
			return W2K_EINVAL;
		}
		i += 2;
	}
	if (d == NULL) {
		*out = c->text + start;
		*outlen = (uint32_t)(i - start);
	} else {
		*out = d0;
		*outlen = (uint32_t)(d - d0);
		c->declen += (size_t)(d - d0);
	}
	*plain = d == NULL && !ctrl;
	*ip = i + 1;
	return 0;
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

/*
 * Parse the frame as one strict JSON text (RFC 8259: only JSON whitespace,
 * nothing after the value) within the limits of norm.h, into c->nodes,
 * normalizing as it goes. Iterative, so 100000 '[' cost nothing but a
 * dead letter. The first problem in text order decides the reason.
 * @param why out: on W2K_EINVAL, the dead-letter reason (NORM_DL_*).
 * @returns 0, W2K_EINVAL (refused: see *why), W2K_ENOMEM.
 */
static int
json_parse(struct nctx *c, const char **why)
{
	struct {
		uint32_t node;		/* the container */
		uint32_t last;		/* its last child so far, 0: none */
	} stack[NORM_MAX_DEPTH];
	const unsigned char *s = (const unsigned char *)c->text;
	size_t n = c->textlen, i = 0, depth = 0, j;
	const char *key = NULL;
	uint32_t klen = 0, id;
	unsigned kc = KEY(K_NONE, F_NONE);
	struct node *nd, *top;
	bool kplain = false, plain;
	int r;
	enum { S_VALUE, S_KEY, S_AFTER } st = S_VALUE;

	*why = NORM_DL_INVALID_JSON;
	while (i < n && is_ws(s[i]))
		i++;
	for (;;) {
		if (st == S_KEY) {
			if (i >= n || s[i] != '"')
				return W2K_EINVAL;
			if (c->nodes[stack[depth - 1].node].len ==
			    NORM_MAX_MEMBERS) {
				*why = NORM_DL_TOO_MANY_MEMBERS;
				return W2K_EINVAL;
			}
			if ((r = scan_string(c, &i, &key, &klen, &kplain)) !=
			    0)
				return r;
			kc = classify(key, klen);
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
			top = &c->nodes[stack[depth - 1].node];
			if (s[i] == ',') {
				i++;
				while (i < n && is_ws(s[i]))
					i++;
				st = top->type == N_OBJ ? S_KEY : S_VALUE;
			} else if (s[i] == ']' && top->type == N_ARR) {
				i++;
				depth--;
			} else if (s[i] == '}' && top->type == N_OBJ) {
				i++;
				depth--;
				if ((r = obj_close(c, stack[depth].node)) != 0)
					return r;
			} else {
				return W2K_EINVAL;
			}
			continue;
		}

		/* S_VALUE: a new node, linked to its container. */
		if (i >= n)
			return W2K_EINVAL;
		if (c->nnodes == NORM_MAX_VALUES || (depth > 0 &&
		    c->nodes[stack[depth - 1].node].type == N_ARR &&
		    c->nodes[stack[depth - 1].node].len ==
		    NORM_MAX_ELEMENTS)) {
			*why = NORM_DL_TOO_MANY_MEMBERS;
			return W2K_EINVAL;
		}
		if ((r = node_new(c, &id)) != 0)
			return r;
		nd = &c->nodes[id];
		nd->key = NULL;
		nd->klen = 0;
		nd->kc = KEY(K_NONE, F_NONE);
		if (depth > 0) {
			top = &c->nodes[stack[depth - 1].node];
			if (stack[depth - 1].last != 0)
				c->nodes[stack[depth - 1].last].next = id;
			else
				top->child = id;
			stack[depth - 1].last = id;
			top->len++;
			if (top->type == N_OBJ) {	/* the key just read */
				nd->key = key;
				nd->klen = klen;
				nd->kc = (uint16_t)kc;
				if (kplain)
					nd->flags |= NF_KEY_PLAIN;
			}
		}
		switch (s[i]) {
		case '{':
		case '[':
			if (depth == NORM_MAX_DEPTH) {
				*why = NORM_DL_TOO_DEEP;
				return W2K_EINVAL;
			}
			nd->type = s[i] == '{' ? N_OBJ : N_ARR;
			stack[depth].node = id;
			stack[depth].last = 0;
			depth++;
			i++;
			while (i < n && is_ws(s[i]))
				i++;
			if (i < n && s[i] == (nd->type == N_OBJ ? '}' : ']')) {
				i++;
				depth--;
				st = S_AFTER;
			} else {
				st = nd->type == N_OBJ ? S_KEY : S_VALUE;
			}
			break;
		case '"':
			if ((r = scan_string(c, &i, &nd->u.s, &nd->len,
			    &plain)) != 0)
				return r;
			if (plain)
				nd->flags |= NF_PLAIN;
			norm_string(nd, KEY_CLS(nd->kc));
			st = S_AFTER;
			break;
		case 't':
			if (n - i < 4 || memcmp(s + i, "true", 4) != 0)
				return W2K_EINVAL;
			nd->type = N_TRUE;
			i += 4;
			st = S_AFTER;
			break;
		case 'f':
			if (n - i < 5 || memcmp(s + i, "false", 5) != 0)
				return W2K_EINVAL;
			nd->type = N_FALSE;
			i += 5;
			st = S_AFTER;
			break;
		case 'n':
			if (n - i < 4 || memcmp(s + i, "null", 4) != 0)
				return W2K_EINVAL;
			nd->type = N_NULL;
			i += 4;
			st = S_AFTER;
			break;
		default:
			/* The maximal run of number characters; all of it
			 * must be one number. */
			for (j = i; j < n && is_numchar(s[j]); j++)
				;
			if (j == i || j - i > JSON_MAX_NUMBER ||
			    !number_ok(s + i, j - i))
				return W2K_EINVAL;
			nd->u.s = c->text + i;
			nd->len = (uint32_t)(j - i);
			norm_number(nd, KEY_CLS(nd->kc));
			i = j;
			st = S_AFTER;
			break;
		}
	}
}

/* ---- reading normalized values ---- */

struct fields {
	struct node	*f[F_COUNT];
	bool		 reply_keys_only; /* only status, error, id keys */
};

static void
fields_get(struct nctx *c, const struct node *obj, struct fields *fs)
{
	uint32_t it;

	memset(fs, 0, sizeof(*fs));
	fs->reply_keys_only = true;
	for (it = obj->child; it != 0; it = c->nodes[it].next) {
		enum field f = KEY_FIELD(c->nodes[it].kc);

		/* A renamed legacy key has no field, under either name. */
		if (f != F_NONE)
			fs->f[f] = &c->nodes[it];
		if (f != F_STATUS && f != F_ERROR && f != F_ID)
			fs->reply_keys_only = false;
	}
}

/* The text of an identifier: a string, or a number sent for an id (which
 * normalization turned into a string). */
static bool
id_text(const struct node *it, const char **s, size_t *n)
{
	if (it == NULL)
		return false;
	if (it->type == N_STR || (it->type == N_NUM &&
	    (it->flags & NF_QUOTED))) {
		*s = it->u.s;
		*n = it->len;
		return true;
	}
	return false;
}

/* Text usable in a Kafka key: a non-empty id, or any number literal. */
static bool
key_text(const struct node *it, const char **s, size_t *n)
{
	if (it != NULL && it->type == N_NUM) {
		*s = it->u.s;
		*n = it->len;
		return true;
	}
	return id_text(it, s, n) && *n > 0;
}

/* An integer value after normalization (converted string or an integer
 * literal). */
static bool
int_value(const struct node *it, int64_t *v)
{
	if (it == NULL)
		return false;
	if (it->type == N_INT) {
		*v = it->u.v;
		return true;
	}
	if (it->type == N_NUM && !(it->flags & NF_QUOTED))
		return parse_i64(it->u.s, it->len, v);
	return false;
}

/* The event time (contract §5): time, timestamp, ended_time, start_time;
 * the first positive integer. */
static bool
event_time(struct node *const *f, int64_t *t)
{
	static const enum field order[] = {
		F_TIME, F_TIMESTAMP, F_ENDED_TIME, F_START_TIME,
	};
	size_t i;

	for (i = 0; i < W2K_ARRAY_SIZE(order); i++)
		if (int_value(f[order[i]], t) && *t > 0)
			return true;
	return false;
}

/* ---- printing ---- */

/* "key": */
static void
print_key(struct sbuf *sb, const struct node *el)
{
	if (el->flags & NF_KEY_PLAIN)
		sb_jstr_plain(sb, el->key, el->klen);
	else
		sb_jstr(sb, el->key, el->klen);
	sb_putc(sb, ':');
}

static void
print_value(const struct nctx *c, struct sbuf *sb, const struct node *it)
{
	const struct node *el;
	uint32_t k;
	bool first = true;

	switch (it->type) {
	case N_NULL:
		sb_lit(sb, "null");
		return;
	case N_FALSE:
		sb_lit(sb, "false");
		return;
	case N_TRUE:
		sb_lit(sb, "true");
		return;
	case N_NUM:
		if (it->flags & NF_QUOTED) {
			sb_putc(sb, '"');
			sb_put(sb, it->u.s, it->len);
			sb_putc(sb, '"');
		} else {
			sb_put(sb, it->u.s, it->len);
		}
		return;
	case N_STR:
		if (it->flags & NF_PLAIN)
			sb_jstr_plain(sb, it->u.s, it->len);
		else
			sb_jstr(sb, it->u.s, it->len);
		return;
	case N_INT:
		sb_int(sb, it->u.v);
		return;
	case N_ARR:
		sb_putc(sb, '[');
		for (k = it->child; k != 0; k = el->next) {
			el = &c->nodes[k];
			if (!first)
				sb_putc(sb, ',');
			first = false;
			print_value(c, sb, el);
		}
		sb_putc(sb, ']');
		return;
	case N_OBJ:
		sb_putc(sb, '{');
		for (k = it->child; k != 0; k = el->next) {
			el = &c->nodes[k];
			if (!first)
				sb_putc(sb, ',');
			first = false;
			print_key(sb, el);
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
print_members(const struct nctx *c, struct sbuf *sb, const struct node *obj,
    const struct node *skip, bool *first)
{
	const struct node *el;
	uint32_t k;

	for (k = obj->child; k != 0; k = el->next) {
		el = &c->nodes[k];
		if (el == skip || (el->flags & NF_SHADOWED))
			continue;
		if (!*first)
			sb_putc(sb, ',');
		*first = false;
		print_key(sb, el);
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

/*
 * OpenSSL 3 looks the implementation of EVP_sha256() up again, under a
 * lock, in every EVP_DigestInit_ex(); fetched once, SHA-256 costs that
 * lookup once per process instead of once per frame. The fetched method
 * is immutable and lives as long as the process (like its provider); if
 * the fetch fails, EVP_sha256() still works, only slower.
 */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *
sha256(void)
{
	if (pthread_once(&sha256_once, sha256_fetch) != 0 || sha256_md == NULL)
		return EVP_sha256();
	return sha256_md;
}

/* SHA-256 state after pbx, 0x00, frame, 0x00: shared by all parts. */
static EVP_MD_CTX *
id_prefix(const char *pbx, const unsigned char *frame, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md == NULL)
		return NULL;
	if (EVP_DigestInit_ex(md, sha256(), NULL) != 1 ||
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

/* Sorted (metric label order); "other" is not in it. */
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

/*
 * norm_type_index() runs for every record (a metric label): a hash table
 * of the known types, built once, finds a type with one or two length
 * compares and one memcmp() — no strcmp() chain. Slots hold index + 1
 * (0: empty); linear probing; the table is never more than a third full.
 */
#define TYPE_SLOTS	128
static pthread_once_t types_once = PTHREAD_ONCE_INIT;
static unsigned char type_slot[TYPE_SLOTS];
static unsigned char type_len[NORM_NTYPES - 1];

static unsigned
type_hash(const char *s, size_t n)
{
	return (unsigned)(n * 31 + (unsigned char)s[0] * 7 +
	    (unsigned char)s[n - 1]) % TYPE_SLOTS;
}

static void
types_build(void)
{
	unsigned i, h;

	for (i = 0; i < W2K_ARRAY_SIZE(known_types); i++) {
		type_len[i] = (unsigned char)strlen(known_types[i]);
		h = type_hash(known_types[i], type_len[i]);
		while (type_slot[h] != 0)
			h = (h + 1) % TYPE_SLOTS;
		type_slot[h] = (unsigned char)(i + 1);
	}
}

unsigned
norm_type_index(const char *type)
{
	size_t n;
	unsigned h, k;

	if (type == NULL || (n = strlen(type)) == 0 ||
	    pthread_once(&types_once, types_build) != 0)
		return NORM_TYPE_OTHER;
	for (h = type_hash(type, n); (k = type_slot[h]) != 0;
	    h = (h + 1) % TYPE_SLOTS)
		if (type_len[k - 1] == n &&
		    memcmp(known_types[k - 1], type, n) == 0)
			return k - 1;
	return NORM_TYPE_OTHER;
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

/* Longer frames are refused as too_large: the tree's lengths and indices
 * are 32-bit (pbx.max_frame is at most 256 MiB). */
#define NORM_TEXT_MAX	UINT32_MAX

struct job {
	const struct norm_frame *in;
	const char	*pbx;
	size_t		 pbxlen;
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

/* One header for hdrs_set(): the value is a + b (b may be empty). */
struct hdr {
	const char	*name;
	const char	*a;
	size_t		 alen;
	const char	*b;
	size_t		 blen;
};

/* rec->hdrs = h[0..nh) packed as record.h says ("name\0value\0"…), in
 * one allocation instead of one realloc() per header. No piece may hold
 * a NUL byte (pbx names, types and ids do not). */
static int
hdrs_set(struct record *rec, const struct hdr *h, size_t nh)
{
	size_t i, len = 0, nl;
	char *p;

	for (i = 0; i < nh; i++)
		len += strlen(h[i].name) + h[i].alen + h[i].blen + 2;
	if ((p = malloc(len)) == NULL)
		return W2K_ENOMEM;
	rec->hdrs = p;
	rec->hdrs_len = len;
	for (i = 0; i < nh; i++) {
		nl = strlen(h[i].name) + 1;
		memcpy(p, h[i].name, nl);
		p += nl;
		memcpy(p, h[i].a, h[i].alen);
		p += h[i].alen;
		if (h[i].blen > 0)
			memcpy(p, h[i].b, h[i].blen);
		p += h[i].blen;
		*p++ = '\0';
	}
	return 0;
}

/*
 * A CDR read back over REST (contract §10): SHA-256 over the PBX name, a
 * zero byte, "rest", a zero byte and the REST row id, so that a re-read of
 * the same row gives the same id whatever else the row says by then.
 */
static int
rest_id(const char *pbx, const char *row_id, char *out)
{
	EVP_MD_CTX *md = id_prefix(pbx, (const unsigned char *)"rest", 4);
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen;
	int r = W2K_ENOMEM;

	if (md != NULL &&
	    EVP_DigestUpdate(md, row_id, strlen(row_id)) == 1 &&
	    EVP_DigestFinal_ex(md, d, &dlen) == 1 && dlen >= 16) {
		hex16(d, out);
		r = 0;
	}
	EVP_MD_CTX_free(md);
	return r;
}

static int
job_id(struct job *j, size_t part, bool last, char *out)
{
	if (j->in->rest_row_id != NULL)
		return rest_id(j->pbx, j->in->rest_row_id, out);
	if (j->md == NULL &&
	    (j->md = id_prefix(j->pbx, j->in->data, j->in->len)) == NULL)
		return W2K_ENOMEM;
	return id_part(j->md, &j->md_tmp, part, last, out);
}

/*
 * Move the text printed into the scratch buffer to rec->value: an exact
 * copy (the scratch buffer starts on norm_frame()'s stack, and is reused
 * for the next part), or, for the last record of a frame too large for
 * that stack buffer, the heap buffer itself when it is not much larger.
 */
static int
take_value(struct job *j, struct record *rec, bool last)
{
	if (j->sb.oom)
		return W2K_ENOMEM;
	if (last && j->sb.p != j->sb.fixed && j->sb.cap - j->sb.len < 4096) {
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
	sb_jstr(&j->sb, j->pbx, j->pbxlen);
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

	if ((rec->key = dup_bytes(j->pbx, j->pbxlen)) == NULL ||
	    (rec->type = dup_bytes("", 0)) == NULL)
		return W2K_ENOMEM;
	rec->key_len = j->pbxlen;
	{
		const struct hdr h[] = {
			{ "content-type", "application/json", 16, NULL, 0 },
			{ "ce_id", rec->id, RECORD_ID_LEN, NULL, 0 },
		};

		return hdrs_set(rec, h, W2K_ARRAY_SIZE(h));
	}
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
key_suffix(struct node *const *f, bool part, const char **s, size_t *n)
{
	if (part && key_text(f[F_EXTENSION_ID], s, n))
		return true;
	return key_text(f[F_SESSION_ID], s, n) ||
	    key_text(f[F_EXTENSION_ID], s, n) ||
	    key_text(f[F_QUEUE_ID], s, n) ||
	    key_text(f[F_QUEUE_NUMBER], s, n);
}

/*
 * One event record. entry == NULL: data is the whole root object. Else
 * data is root's members minus skip (the status array being split) and
 * minus those the entry overrides (NF_SHADOWED), then the entry's members.
 * f: the fields of data (merged for a part).
 */
static int
emit_event(struct job *j, const struct node *root, const struct node *skip,
    const struct node *entry, struct node *const *f, size_t part, bool last,
    struct record *rec)
{
	const struct nctx *c = j->c;
	const struct node *et = f[F_EVENT_TYPE];
	const char *cls, *ts = NULL, *ss = NULL, *ks = NULL;
	size_t tn = 0, sn = 0, kn = 0, cn, nh;
	bool has_t, has_s, has_time, has_k;
	char tbuf[64];
	struct sbuf tb = { 0 };
	int64_t t = 0;
	int r;

	rec->received_us = j->in->received_us;
	if ((r = job_id(j, part, last, rec->id)) != 0)
		return r;
	if ((rec->type = dup_bytes(et->u.s, et->len)) == NULL)
		return W2K_ENOMEM;
	cls = norm_class(rec->type);
	cn = strlen(cls);
	has_t = id_text(f[F_TENANT_ID], &ts, &tn);
	has_s = id_text(f[F_SESSION_ID], &ss, &sn);
	has_time = event_time(f, &t);

	j->sb.len = 0;
	sb_lit(&j->sb, "{\"schema\":\"wsi2kafka.event/1\",\"id\":\"");
	sb_put(&j->sb, rec->id, RECORD_ID_LEN);
	sb_lit(&j->sb, "\",\"pbx\":");
	sb_jstr(&j->sb, j->pbx, j->pbxlen);
	sb_lit(&j->sb, ",\"type\":");
	sb_jstr(&j->sb, et->u.s, et->len);
	sb_lit(&j->sb, ",\"class\":\"");
	sb_put(&j->sb, cls, cn);
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
	/* Live events only: CDRs read back over REST say "rest" (§10). */
	if (j->in->rest_row_id != NULL)
		sb_lit(&j->sb, ",\"source\":\"rest\",\"data\":");
	else
		sb_lit(&j->sb, ",\"source\":\"wsi\",\"data\":");
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
		has_k = key_suffix(f, entry != NULL, &ks, &kn);
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

	/* The time is any positive int64; ce_time is left out when it is
	 * not a year RFC 3339 can spell. */
	tb.p = tb.fixed = tbuf;		/* 28 bytes at most: never grows */
	tb.cap = sizeof(tbuf);
	if (!has_time || !fmt_time(&tb, t, -1) || tb.oom)
		tb.len = 0;
	{
		struct hdr h[] = {
			{ "ce_specversion", "1.0", 3, NULL, 0 },
			{ "ce_id", rec->id, RECORD_ID_LEN, NULL, 0 },
			{ "ce_source", "wsi2kafka://", 12, j->pbx, j->pbxlen },
			{ "ce_type", "com.portsip.wsi.", 16, et->u.s, et->len },
			{ "ce_time", tb.p, tb.len, NULL, 0 },
			{ "content-type", "application/json", 16, NULL, 0 },
		};

		nh = W2K_ARRAY_SIZE(h);
		if (tb.len == 0) {	/* no ce_time */
			h[4] = h[5];
			nh--;
		}
		r = hdrs_set(rec, h, nh);
	}
	sb_free(&tb);
	return r;
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
split_count(struct job *j, const struct node *root, const struct node *status)
{
	const struct nctx *c = j->c;
	uint32_t el;
	size_t n = 0, other;
	bool first = true;

	if (status == NULL || status->type != N_ARR)
		return 0;
	for (el = status->child; el != 0; el = c->nodes[el].next) {
		if (c->nodes[el].type != N_OBJ)
			return 0;
		n++;
	}
	if (n == 0)
		return 0;
	/* Measure what every part repeats. */
	j->sb.len = 0;
	print_members(c, &j->sb, root, status, &first);
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
shadow(const struct nctx *c, const struct node *root, size_t nroot,
    const struct node *entry)
{
	const struct node *el;
	struct node *m;
	uint32_t k;

	for (k = entry->child; k != 0; k = el->next) {
		el = &c->nodes[k];
		m = nroot > SMALL_OBJECT ? refs_find(c, nroot, el->key,
		    el->klen) : member(c, root, el->key, el->klen);
		if (m != NULL)
			m->flags |= NF_SHADOWED;
	}
}

static void
unshadow(const struct nctx *c, const struct node *root)
{
	uint32_t k;

	for (k = root->child; k != 0; k = c->nodes[k].next)
		c->nodes[k].flags &= (uint8_t)~NF_SHADOWED;
}

static int
emit_events(struct job *j, const struct node *root, const struct fields *fs,
    struct norm_result *res)
{
	struct nctx *c = j->c;
	const struct node *status = fs->f[F_STATUS], *et = fs->f[F_EVENT_TYPE];
	const struct node *el;
	struct fields ef;
	struct node *mf[F_COUNT];
	size_t nparts = 0, i, k, nroot = root->len;
	uint32_t e;
	int r;

	res->kind = NORM_EVENTS;
	if (et->len == 16 && memcmp(et->u.s, "extension_status", 16) == 0)
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
	if (nroot > SMALL_OBJECT && (r = refs_sort(c, root, nroot)) != 0)
		return r;
	for (i = 0, e = status->child; e != 0; e = el->next, i++) {
		el = &c->nodes[e];
		/* The part's fields: the entry's, else the frame's (but
		 * never the frame's status array). */
		fields_get(c, el, &ef);
		for (k = 0; k < F_COUNT; k++)
			mf[k] = ef.f[k] != NULL ? ef.f[k] :
			    k == F_STATUS ? NULL : fs->f[k];
		/* The frame's event_type is the record's type, even if an
		 * entry carries one of its own (which stays in data). */
		mf[F_EVENT_TYPE] = fs->f[F_EVENT_TYPE];
		shadow(c, root, nroot, el);
		r = emit_event(j, root, status, el, mf, i, i + 1 == nparts,
		    &res->recs[i]);
		unshadow(c, root);
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
emit_reply(const struct fields *fs, struct norm_result *res)
{
	const struct node *cmd = fs->f[F_COMMAND], *st = fs->f[F_STATUS];
	const struct node *err = fs->f[F_ERROR];
	int64_t v;

	res->kind = NORM_REPLY;
	if (st == NULL) {
		res->reply_status = err != NULL ? -1 : 0;
	} else if (st->type == N_STR) {
		res->reply_status = parse_i64(st->u.s, st->len, &v) &&
		    v >= INT_MIN && v <= INT_MAX ? (int)v : -1;
	} else {
		res->reply_status = int_value(st, &v) && v >= INT_MIN &&
		    v <= INT_MAX ? (int)v : -1;
	}
	if (cmd != NULL && (res->reply_command = dup_bytes(cmd->u.s,
	    cmd->len)) == NULL)
		return W2K_ENOMEM;
	if (err != NULL && err->type == N_STR &&
	    (res->reply_error = dup_bytes(err->u.s, err->len)) == NULL)
		return W2K_ENOMEM;
	return 0;
}

static int
classify_frame(struct job *j, struct norm_result *res)
{
	const unsigned char *d = j->in->data;
	size_t n = j->in->len;
	const char *why;
	struct fields fs;
	const struct node *root, *et, *cmd;
	bool nul;
	int r;

	if (j->in->too_large || n > NORM_TEXT_MAX)
		return emit_dead(j, NORM_DL_TOO_LARGE, res);
	if (utf8_prefix(d, n, &nul) != n)
		return emit_dead(j, NORM_DL_INVALID_UTF8, res);
	if (nul)
		return emit_dead(j, NORM_DL_INVALID_JSON, res);
	if ((r = json_parse(j->c, &why)) == W2K_EINVAL)
		return emit_dead(j, why, res);
	if (r != 0)
		return r;
	root = &j->c->nodes[0];
	if (root->type != N_OBJ)
		return emit_dead(j, NORM_DL_NOT_OBJECT, res);

	fields_get(j->c, root, &fs);
	et = fs.f[F_EVENT_TYPE];
	cmd = fs.f[F_COMMAND];
	/* A `command` that is not a string is no reply: the frame is then
	 * judged by its event_type like any other. */
	if ((cmd != NULL && cmd->type == N_STR) ||
	    (cmd == NULL && et == NULL && fs.reply_keys_only &&
	    fs.f[F_STATUS] != NULL && fs.f[F_STATUS]->type == N_NUM))
		return emit_reply(&fs, res);
	if (et == NULL || et->type != N_STR || et->len == 0)
		return emit_dead(j, NORM_DL_NO_EVENT_TYPE, res);
	return emit_events(j, root, &fs, res);
}

int
norm_frame(const struct norm_frame *in, struct norm_result *res)
{
	struct norm_frame fr = *in;
	struct nctx c;
	struct job j;
	char out[8192];
	int r;

	memset(res, 0, sizeof(*res));
	if (fr.data == NULL) {
		fr.data = (const unsigned char *)"";
		fr.len = 0;
	}
	nctx_init(&c, fr.data, fr.len);
	memset(&j, 0, sizeof(j));
	j.in = &fr;
	j.pbx = in->pbx != NULL ? in->pbx : "";
	j.pbxlen = strlen(j.pbx);
	j.c = &c;
	/* Records are printed on the stack (nearly all fit) and then copied
	 * to their exact size. A larger one gets room for the frame and the
	 * envelope up front: growing by doubling would cost several large
	 * reallocations. */
	j.sb.p = j.sb.fixed = out;
	j.sb.cap = sizeof(out);
	if (fr.len > sizeof(out) - 1024 && fr.len < SIZE_MAX - 1024) {
		char *big = malloc(fr.len + 1024);

		if (big != NULL) {	/* else sb_grow() tries again */
			j.sb.p = big;
			j.sb.cap = fr.len + 1024;
		}
	}

	r = classify_frame(&j, res);

	nctx_free(&c);
	sb_free(&j.sb);
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
	struct job j;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&j, 0, sizeof(j));
	j.in = &fr;
	j.pbx = fr.pbx;
	j.pbxlen = strlen(j.pbx);
	r = emit_dead_rec(&j, reason != NULL ? reason : "", out);
	sb_free(&j.sb);
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
