/*
 * norm_bench — what norm_frame() costs (README "Performance"). A benchmark,
 * not a test: it prints numbers and asserts nothing but its own sanity.
 *
 *   norm_bench [SECONDS_PER_ROW [ROW]]   ROW: "mix" or a row name's start
 *
 * Frames are shaped like pbxsim's --flood (tests/pbxsim/pbxsim.c): per
 * call a call_start, cdr_target_add/ringing per target, extension_call
 * ringing/on call/idle, cdr_target_answer/end, extension_presence for one
 * call in four, queue_caller_status for inbound calls, and a call_cdr with
 * 2-4 call_targets, over 4 tenants. One row per event kind (frames of that
 * kind only) and a "mix" row with the flood's own order, plus an
 * extension_status snapshot of 50 extensions (split into 50 records).
 *
 * Each row normalizes its frames in a loop for SECONDS_PER_ROW (default 1)
 * of CPU time and prints frames, records and input MB per CPU second (one
 * core) and a digest (FNV-1a) of every
 * record produced in one pass over the row's frames: two builds of norm.c
 * that print the same digests produced byte-identical records (values,
 * keys, headers, ids).
 */
#include "norm.h"
#include "w2k.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NCALLS		512		/* distinct calls generated */
#define MAX_FRAMES	(NCALLS * 24)

struct frame {
	char	*p;
	size_t	 n;
	int	 kind;
};

enum kind {
	K_CALL_START, K_TARGET, K_EXT_CALL, K_PRESENCE, K_QUEUE_CALLER,
	K_CDR, K_EXT_STATUS, K_NKINDS
};

static const char *const kind_name[K_NKINDS] = {
	"call_start", "cdr_target_*", "extension_call", "extension_presence",
	"queue_caller_status", "call_cdr (2-4 targets)",
	"extension_status (50)",
};

static struct frame frames[MAX_FRAMES + 1];
static size_t nframes;
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static unsigned
rndn(unsigned n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (unsigned)(rng * 2685821657736338717ULL % n);
}

static void
add(int kind, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0 || nframes == MAX_FRAMES) {
		fprintf(stderr, "norm_bench: out of memory\n");
		exit(1);
	}
	frames[nframes].p = p;
	frames[nframes].n = (size_t)n;
	frames[nframes].kind = kind;
	nframes++;
}

#define T0		1725845648LL
#define TENANT(t)	(883611252155219968ULL + (t) * 1000003ULL)
#define EXTID(t, e)	(794493219508322304ULL + (t) * 100000ULL + (e))

static const char *const dirs[] = { "internal", "inbound", "outbound" };

static void
ext_event(unsigned long long seq, unsigned t, unsigned ext, const char *type,
    const char *cs, unsigned call)
{
	char cs_or_presence[96];

	if (cs != NULL)
		snprintf(cs_or_presence, sizeof(cs_or_presence),
		    "\"call_status\":\"%s\"", cs);
	else
		snprintf(cs_or_presence, sizeof(cs_or_presence),
		    "\"presence\":\"%s\",\"presence_note\":\"%s\"",
		    call & 1 ? "AWAY" : "ONLINE",
		    call & 1 ? "Back in 10 minutes" : "");
	add(cs != NULL ? K_EXT_CALL : K_PRESENCE,
	    "{\"event_type\":\"%s\",\"seq\":%llu,\"extension\":"
	    "\"sip:%u@tenant%u.test.io\",%s,\"tenant_id\":\"%llu\","
	    "\"extension_id\":\"%llu\",\"time\":\"%lld\"}", type, seq, ext, t,
	    cs_or_presence, TENANT(t), EXTID(t, ext), T0 + seq);
}

static void
target(unsigned long long seq, unsigned t, unsigned long long sess, int dir,
    const char *type, unsigned ext, int i, const char *caller)
{
	add(K_TARGET, "{\"event_type\":\"%s\",\"seq\":%llu,\"time\":\"%lld\","
	    "\"session_id\":\"%llu\",\"cdr_id\":\"%llu\",\"tenant_id\":"
	    "\"%llu\",\"direction\":\"%s\",\"destination\":"
	    "\"sip:%u@192.168.1.93:%u\",\"caller\":\"%s\",\"callee\":\"%u\","
	    "\"did\":\"%s\",\"outbound_caller_id\":\"%s\",\"cli\":\"%s\"}",
	    type, seq, T0 + seq, sess, sess + 1, TENANT(t), dirs[dir], ext,
	    5060 + i, caller, ext, dir == 1 ? "18800606" : "",
	    dir == 2 ? "18800606" : "", caller);
}

static void
cdr(unsigned long long seq, unsigned t, unsigned long long sess, int dir,
    int ntg, const unsigned *tg, int won, const char *caller,
    const char *callee, unsigned call)
{
	char buf[8192];
	size_t n = 0;
	long long st = T0, ring = st + 1, ans = won >= 0 ? ring + 4 : 0;
	long long end = won >= 0 ? ans + 20 + call % 100 : ring + 30;
	long long talk = won >= 0 ? end - ans : 0;
	int i;

	for (i = 0; i < ntg; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
		    "%s{\"answered_time\":\"%lld\",\"call_type\":\"%s\","
		    "\"callee\":\"%u\",\"caller\":\"%s\",\"destination\":"
		    "\"sip:%u@192.168.1.93:%u\",\"did\":\"%s\",\"end_reason\":"
		    "\"%s\",\"ended_time\":\"%lld\",\"id\":\"%llu\","
		    "\"outbound_caller_id\":\"\",\"ring_duration\":\"%lld\","
		    "\"ring_time\":\"%lld\",\"start_time\":\"%lld\",\"status\":"
		    "\"%s\",\"status_code\":%d,\"talk_duration\":\"%lld\","
		    "\"trunk_name\":\"%s\"}", i ? "," : "",
		    i == won ? ans : 0LL,
		    dir == 1 ? "queue_call" : "normal_call", tg[i], caller,
		    tg[i], 5060u + (unsigned)i, dir == 1 ? "18800606" : "",
		    i == won ? "None" : won >= 0 ? "cancelled" : "None",
		    i == won ? end : won >= 0 ? ans : end, sess + 2 + i,
		    (won >= 0 ? ans : end) - ring, ring, st,
		    i == won ? "answered" : "noanswer", i == won ? 0 : 487,
		    i == won ? talk : 0LL,
		    dir == 0 ? "" : "122:883631675865563136");
	add(K_CDR, "{\"event_type\":\"call_cdr\",\"seq\":%llu,"
	    "\"answered_time\":\"%lld\","
	    "\"call_id\":\"Q0sXhDgxnowmQp1P9swHLw..\",\"call_status\":\"%s\","
	    "\"call_targets\":[%s],\"callee\":\"%s\","
	    "\"callee_domain\":\"tenant%u.test.io\",\"caller\":\"%s\","
	    "\"caller_display_name\":\"%s\",\"caller_domain\":"
	    "\"tenant%u.test.io\",\"cdr_id\":\"%llu\",\"did\":\"%s\","
	    "\"direction\":\"%s\",\"ended_reason\":\"%s\",\"ended_time\":"
	    "\"%lld\",\"outbound_caller_id\":\"%s\",\"ring_duration\":\"%lld\","
	    "\"ring_time\":\"%lld\",\"session_id\":\"%llu\",\"start_time\":"
	    "\"%lld\",\"status_code\":\"0\",\"talk_duration\":%lld,"
	    "\"tenant_id\":\"%llu\",\"tenant_name\":\"Tenant %u\","
	    "\"trunk_name\":\"%s\",\"user_data\":\"\"}", seq, ans,
	    won >= 0 ? "answered" : "noanswer", buf, callee, t, caller,
	    dir == 1 ? "18881234" : "Ext", t, sess + 1,
	    dir == 1 ? "18800606" : "", dirs[dir],
	    won >= 0 ? "callee_disconnect" : "None", end,
	    dir == 2 ? "18800606" : "", (won >= 0 ? ans : end) - ring, ring,
	    sess, st, talk, TENANT(t), t,
	    dir == 0 ? "" : "122:883631675865563136");
}

/* The flood: NCALLS calls, each as pbxsim plays it. */
static void
gen_flood(void)
{
	unsigned long long seq = 0;
	unsigned call;

	for (call = 0; call < NCALLS; call++) {
		unsigned t = rndn(4), caller_ext = 100 + rndn(100), tg[4];
		unsigned queue = 8000 + rndn(4), ext;
		int dir = (int)rndn(3), ntg = 2 + (int)rndn(3), i;
		int won = rndn(8) == 0 ? -1 : (int)rndn((unsigned)ntg);
		unsigned long long sess = 885337248273272832ULL + 16ULL * call;
		char caller[32], callee[32];

		for (i = 0; i < ntg; i++)
			tg[i] = 100 + rndn(100);
		if (dir == 1) {
			snprintf(caller, sizeof(caller), "1888%06u",
			    rndn(1000000));
			snprintf(callee, sizeof(callee), "%u", queue);
		} else {
			snprintf(caller, sizeof(caller), "%u", caller_ext);
			snprintf(callee, sizeof(callee), dir == 2 ?
			    "0043%06u" : "%u", dir == 2 ? rndn(1000000) :
			    tg[0]);
		}
		ext = won >= 0 ? tg[won] : caller_ext;
		add(K_CALL_START, "{\"event_type\":\"call_start\",\"seq\":%llu,"
		    "\"call_id\":\"Q0sXhDgxnowmQp1P9swHLw..\",\"callee\":"
		    "\"sip:%s@tenant%u.test.io\",\"callee_display_name\":\"\","
		    "\"caller\":\"sip:%s@tenant%u.test.io\","
		    "\"caller_display_name\":\"%s\",\"cdr_id\":\"%llu\","
		    "\"direction\":\"%s\",\"did\":\"%s\","
		    "\"outbound_caller_id\":\"%s\",\"session_id\":\"%llu\","
		    "\"tenant_id\":\"%llu\",\"time\":\"%lld\",\"user_data\":"
		    "\"\"}", seq++, callee, t, caller, t,
		    dir == 1 ? "" : "Ext", sess + 1, dirs[dir],
		    dir == 1 ? "18800606" : "", dir == 2 ? "18800606" : "",
		    sess, TENANT(t), T0);
		if (dir == 1)
			add(K_QUEUE_CALLER, "{\"event_type\":"
			    "\"queue_caller_status\",\"seq\":%llu,"
			    "\"tenant_id\":\"%llu\",\"queue_id\":\"%llu\","
			    "\"updated_callers\":[{\"position\":\"1\","
			    "\"session_id\":\"%llu\",\"caller_number\":\"%s\","
			    "\"reason\":\"enqueue\",\"timestamp\":\"%lld\","
			    "\"type\":\"normal\"}]}", seq++, TENANT(t),
			    EXTID(t, queue), sess, caller, T0);
		for (i = 0; i < ntg; i++) {
			target(seq++, t, sess, dir, "cdr_target_add", tg[i], i,
			    caller);
			target(seq++, t, sess, dir, "cdr_target_ringing",
			    tg[i], i, caller);
		}
		if (won >= 0) {
			ext_event(seq++, t, ext, "extension_call", "RINGING",
			    call);
			target(seq++, t, sess, dir, "cdr_target_answer",
			    tg[won], won, caller);
			ext_event(seq++, t, ext, "extension_call", "ON_CALL",
			    call);
			if (dir == 1)
				add(K_QUEUE_CALLER, "{\"event_type\":"
				    "\"queue_caller_status\",\"seq\":%llu,"
				    "\"tenant_id\":\"%llu\",\"queue_id\":"
				    "\"%llu\",\"updated_callers\":[{"
				    "\"position\":\"1\",\"session_id\":"
				    "\"%llu\",\"caller_number\":\"%s\","
				    "\"reason\":\"agent_answered\","
				    "\"timestamp\":\"%lld\",\"type\":"
				    "\"normal\"}]}", seq++, TENANT(t),
				    EXTID(t, queue), sess, caller, T0);
		}
		for (i = 0; i < ntg; i++)
			target(seq++, t, sess, dir, "cdr_target_end", tg[i], i,
			    caller);
		if (won >= 0)
			ext_event(seq++, t, ext, "extension_call", "", call);
		if (call % 4 == 0)
			ext_event(seq++, t, caller_ext, "extension_presence",
			    NULL, call);
		cdr(seq++, t, sess, dir, ntg, tg, won, caller, callee, call);
	}
}

/* An extension_status snapshot of 50 extensions (KB-22.3 shape). */
static void
gen_status(struct frame *f)
{
	char *buf = malloc(65536);
	size_t n = 0;
	int i;

	if (buf == NULL)
		exit(1);
	n += (size_t)snprintf(buf + n, 65536 - n,
	    "{\"event_type\":\"extension_status\",\"status\":[");
	for (i = 0; i < 50; i++)
		n += (size_t)snprintf(buf + n, 65536 - n, "%s{\"extension\":"
		    "\"sip:%d@test.io\",\"extension_id\":\"%llu\","
		    "\"call_status\":\"%s\",\"online\":%s,\"presence\":\"%s\","
		    "\"presence_note\":\"\",\"push_online\":false,\"time\":"
		    "\"1704186780\"}", i ? "," : "", 100 + i,
		    EXTID(0, 100 + i), i % 3 ? "" : "ON_CALL",
		    i % 2 ? "true" : "false", i % 5 ? "ONLINE" : "AWAY");
	n += (size_t)snprintf(buf + n, 65536 - n,
	    "],\"tenant_id\":\"794493068765036544\"}");
	f->p = buf;
	f->n = n;
	f->kind = K_EXT_STATUS;
}

/* CPU time of this thread: what a frame costs, even on a busy machine
 * (wall-clock rates would count the time other processes ran). */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n-- > 0)
		h = (h ^ *s++) * 0x100000001b3ULL;
	return h;
}

/* One frame through norm_frame(); folds the records into *h when h. */
static size_t
one(const struct frame *f, uint64_t *h)
{
	struct norm_frame in = {
		.pbx = "hq", .data = (const unsigned char *)f->p, .len = f->n,
		.received_us = INT64_C(1732608000123456),
	};
	struct norm_result res;
	size_t i, n;

	if (norm_frame(&in, &res) != 0 || res.kind != NORM_EVENTS) {
		fprintf(stderr, "norm_bench: frame not normalized: %.*s\n",
		    (int)f->n, f->p);
		exit(1);
	}
	for (i = 0; h != NULL && i < res.nrecs; i++) {
		const struct record *rec = &res.recs[i];

		*h = fnv(*h, rec->value, rec->value_len);
		*h = fnv(*h, rec->key != NULL ? rec->key : "", rec->key_len);
		*h = fnv(*h, rec->hdrs, rec->hdrs_len);
		*h = fnv(*h, rec->id, RECORD_ID_LEN);
		*h = fnv(*h, rec->type, strlen(rec->type) + 1);
	}
	n = res.nrecs;
	norm_result_clear(&res);
	return n;
}

/* Rows: kind < K_NKINDS, or -1 for the mix. */
static void
row(int kind, double secs)
{
	const struct frame *sel[MAX_FRAMES + 1];
	size_t nsel = 0, i, bytes = 0, recs = 0, frames_done = 0;
	uint64_t h = 0xcbf29ce484222325ULL;
	double t0, t;

	for (i = 0; i < nframes; i++)
		if (kind < 0 || frames[i].kind == kind)
			sel[nsel++] = &frames[i];
	if (nsel == 0)
		return;
	for (i = 0; i < nsel; i++)
		one(sel[i], &h);
	t0 = now();
	do {
		for (i = 0; i < nsel; i++) {
			recs += one(sel[i], NULL);
			bytes += sel[i]->n;
		}
		frames_done += nsel;
	} while ((t = now() - t0) < secs);
	printf("%-24s %6zu B %10.0f frames/s %10.0f records/s %7.1f MB/s"
	    "  digest %016" PRIx64 "\n", kind < 0 ? "mix (pbxsim --flood)" :
	    kind_name[kind], bytes / frames_done,
	    (double)frames_done / t, (double)recs / t, (double)bytes / t / 1e6,
	    h);
}

int
main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	const char *only = argc > 2 ? argv[2] : NULL;
	int k;

	if (secs <= 0) {
		fprintf(stderr, "usage: norm_bench [SECONDS_PER_ROW [ROW]]\n");
		return 64;
	}
	gen_flood();
	gen_status(&frames[nframes++]);
	printf("norm_frame(), per CPU second of one core, %zu distinct frames; "
	    "%.1f s per row\n", nframes, secs);
	for (k = 0; k < K_NKINDS; k++)
		if (only == NULL || strncmp(only, kind_name[k],
		    strlen(only)) == 0)
			row(k, secs);
	if (only == NULL || strcmp(only, "mix") == 0)
		row(-1, secs);
	for (size_t i = 0; i < nframes; i++)
		free(frames[i].p);
	return 0;
}
