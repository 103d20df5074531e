/*
 * ksink.c — the librdkafka producer on the lws event loop, fed from the
 * spool (contract §7, style.md §14).
 *
 * Every record is appended to the spool first (ksink_produce()) and handed
 * to librdkafka from there as fast as librdkafka takes it: spool_next()
 * picks the record (those to produce again first, then the others in
 * spooled order, the backlog found at start-up before this run's: one key's
 * records reach their partition in the order they were received, across
 * restarts), rd_kafka_producev() copies it,
 * spool_sent() marks it in flight. RD_KAFKA_RESP_ERR__QUEUE_FULL ends the
 * round until the next tick: the spool is the backpressure, so input from
 * the PBXs never pauses, and when the spool is full its on_full policy
 * applies. The only thing that travels through librdkafka is the msg
 * opaque: the record's spool sequence number.
 *
 * Periodic work (all on the loop thread; tm_* are timer.h timers, which
 * unlike lws's own do not make lws 4.1 spin in their last millisecond):
 *   tm_poll      every KSINK_POLL_US, and at once when
 *                librdkafka wakes the loop (queue_event_cb,
 *                ksink_service()): rd_kafka_poll(rk, 0) serves delivery
 *                reports and the error, statistics and log callbacks, then
 *                up to KSINK_DRAIN_TICK records go from the spool to
 *                librdkafka, then spool_tick();
 *   flush        ksink_service(), after every lws_service() turn that
 *                appended: the spool's write-behind buffer goes to the file
 *                before the loop waits again (not a zero-delay timer: that
 *                made lws poll() once more per turn, at 10,000 events/s
 *                one more syscall per event);
 *   tm_sync      armed while the spool holds unsynced appends (fsync =
 *                "batch"): fires when the group-commit window ends;
 *   sul_rebuild  one shot, after a fatal producer error.
 *
 * Delivery reports (and rd_kafka_producev() errors, the same way):
 *   success                      → spool_ack(): the record may leave
 *   refused for good, because of the record (too large, invalid)
 *                                → a dead letter carrying its first 64 KiB
 *                                  is appended to the spool; the original
 *                                  is acked when the dead letter is
 *                                  delivered (refused_done()); a dead
 *                                  letter refused for good is logged and
 *                                  dropped (there is nowhere further)
 *   refused for a cause the operator can fix (ACL, unknown topic: see
 *   refusal_of())                → the topic is blocked with backoff and
 *                                  its records set aside (struct ktopic),
 *                                  never dead-lettered; the other topics
 *                                  flow
 *   anything else (timeouts, brokers down, purges) → spool_requeue():
 *                                  produced again, from the spool
 * and RD_KAFKA_RESP_ERR__FATAL (idempotence) rebuilds the producer from a
 * timer, never from inside librdkafka's callback; spool_rewind() then
 * produces again whatever the old producer held.
 *
 * When the spool cannot be written (a failing disk, or one full before
 * max_bytes), a record is produced directly, marked "unspooled" in its
 * opaque: it then lives only in this process, which beats dropping it.
 *
 * This file never blocks the loop, except ksink_flush() at shutdown.
 */
#include "ksink.h"
#include "backoff.h"
#include "log.h"
#include "norm.h"
#include "spool.h"
#include "timer.h"
#include "w2k.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

/*
 * The poll tick is a fallback: delivery reports, errors and logs wake the
 * loop themselves (queue_event_cb), and records are handed over as they are
 * appended, so nothing waits on it.
 */
#define KSINK_POLL_US		(100 * 1000)
/* Records per poll tick, at most: 500k/s from the ticks alone, so a
 * backlog drains fast, and a tick still takes only a few ms of the loop. */
#define KSINK_DRAIN_TICK	5000
#define KSINK_DRAIN_NOW		8	/* after each new record */
#define KSINK_ERRLOG_US		(5LL * 1000 * 1000)	/* log flood bound */
/* A refusing topic: one log line a minute, retries with this backoff (s). */
#define KSINK_REFLOG_US		(60LL * 1000 * 1000)
#define KSINK_REF_BO_INITIAL	1.0
#define KSINK_REF_BO_MAX	30.0
/* What a record may add to its frame (ids become strings, the envelope). */
#define KSINK_ENVELOPE		(64 * 1024)
/* librdkafka's message framing beyond key, value and headers, rounded up
 * (rd_kafka_msg_max_wire_size(): the v2 record overhead). */
#define KSINK_WIRE_SLACK	256

/*
 * The msg opaque: a spool sequence number, or for a record the spool could
 * not take, this bit and the receipt time (µs since the epoch, < 2^62).
 */
#define OPAQUE_UNSPOOLED	(UINT64_C(1) << 63)
_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t),
    "the msg opaque carries a 64-bit sequence number");

/*
 * A topic that refused records for a cause the operator can fix (contract
 * §7). Its records are set aside: taken from the spool (spool_sent(), so
 * they stay on disk and count as in flight) and their seqs kept in park;
 * when the backoff ends they go back with spool_requeue(), oldest first,
 * and are produced again before anything else. While blocked, every record
 * of the topic that comes up is set aside too, so a later record never
 * overtakes an earlier one of the same topic (contract §5), and records of
 * other topics flow past.
 */
struct ktopic {
	char		*name;		/* owned; also pub's name */
	bool		 blocked;	/* set its records aside until retry_us */
	int64_t		 retry_us;	/* monotonic */
	struct backoff	 bo;
	uint64_t	*park;		/* seqs set aside, owned */
	size_t		 npark, cappark;
	int64_t		 log_us;	/* last log line (monotonic), 0: none */
	uint64_t	 unlogged;	/* refusals since that line */
};

/* A refused record whose dead letter is not delivered yet: the original
 * stays in the spool (in flight) until it is (contract §7, §5). */
struct dlwait {
	uint64_t	dl_seq;		/* the dead letter's spool seq */
	uint64_t	orig_seq;	/* the original's */
};

struct ksink {
	const struct cfg	*cfg;
	const struct ksink_env	*env;
	struct spool		*sp;		/* borrowed from env */
	rd_kafka_t		*rk;
	struct timer		 tm_poll;
	struct timer		 tm_sync;
	bool			 flush_due;	/* appended this loop turn */
	atomic_bool		 wake;	/* librdkafka has events for us */
	lws_sorted_usec_list_t	 sul_rebuild;
	bool			 rebuilding;	/* fatal error: no producing */
	bool			 destroying;	/* in producer_destroy() */
	bool			 stalled;	/* librdkafka's queue is full */
	bool			 stall_logged;	/* ...and that was logged */
	int64_t			 stall_log_us;
	int64_t			 last_errlog_us;
	uint64_t		 errs_since_log;
	uint64_t		 max_msg;	/* the producer's message.max.bytes */
	struct ktopic		*kt;		/* topics that refused, owned */
	struct ksink_topic_refusals *ref;	/* parallel to kt, owned */
	unsigned		 nkt, capkt;
	unsigned		 nblocked;	/* kt[] with blocked set */
	struct dlwait		*dlw;		/* owned */
	size_t			 ndlw, capdlw;
	struct ksink_stats	 stats;
};

#ifdef W2K_TESTING
/*
 * Test-only hook, compiled only with -DW2K_TESTING (`make check` builds so;
 * release builds do not): SIGUSR2 makes the next poll tick call
 * rd_kafka_test_fatal_error() on the live producer, as a broker breaking
 * the idempotence sequence would, so that the integration tests can drive
 * the rebuild-and-replay path (tests/integration/145-spool-fatal.sh).
 */
static volatile sig_atomic_t test_fatal;

static void
on_sigusr2(int sig)
{
	(void)sig;
	test_fatal = 1;
}

/*
 * W2K_TEST_STOP_AFTER_DEAD_LETTER=1: right after a refused record's dead
 * letter went into the spool, stop the loop for good (the spool's own
 * thread goes on, removing segments that are done), so that the test can
 * SIGKILL the daemon before this loop turn ends and writes the spool's
 * write-behind out. A crash in that window must lose neither the record
 * nor its dead letter (tests/integration/93-deadletter-crash.sh).
 */
static void
test_after_dead_letter(void)
{
	const char *v = getenv("W2K_TEST_STOP_AFTER_DEAD_LETTER");

	if (v == NULL || strcmp(v, "1") != 0)
		return;
	log_warn("kafka: test hook: loop stopped after a dead letter, "
	    "waiting for SIGKILL");
	for (;;)
		pause();
}
#else
static void test_after_dead_letter(void) { }
#endif

/* ---- produce ------------------------------------------------------------ */

/*
 * librdkafka's queue is full: records wait in the spool. With a slow
 * broker that can change every tick, so the line is written at most every
 * KSINK_ERRLOG_US, and "caught up" only after a "full" line.
 */
static void
set_stalled(struct ksink *ks, bool stalled)
{
	int64_t now = w2k_mono_us();

	if (ks->stalled == stalled)
		return;
	ks->stalled = stalled;
	if (stalled && now - ks->stall_log_us >= KSINK_ERRLOG_US) {
		log_info("kafka: producer queue full: records wait in the "
		    "spool (%" PRIu64 " now)", spool_get_stats(ks->sp)->records);
		ks->stall_log_us = now;
		ks->stall_logged = true;
	} else if (!stalled && ks->stall_logged) {
		log_info("kafka: producer caught up: no record waits in the "
		    "spool");
		ks->stall_logged = false;
	}
}

/* Hand one record to librdkafka (copied: RD_KAFKA_MSG_F_COPY). */
static rd_kafka_resp_err_t
produce_one(struct ksink *ks, const struct record *rec, uint64_t opaque)
{
	rd_kafka_headers_t *hdrs = NULL;
	rd_kafka_resp_err_t err;
	const char *name, *value;
	size_t pos = 0;

	if (rec->hdrs_len > 0) {
		hdrs = rd_kafka_headers_new(8);
		while (record_hdr_next(rec, &pos, &name, &value))
			rd_kafka_header_add(hdrs, name, -1, value, -1);
	}
	err = rd_kafka_producev(ks->rk,
	    RD_KAFKA_V_TOPIC(rec->topic),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_KEY(rec->key, rec->key_len),
	    RD_KAFKA_V_VALUE(rec->value, rec->value_len),
	    RD_KAFKA_V_HEADERS(hdrs),
	    RD_KAFKA_V_OPAQUE((void *)(uintptr_t)opaque),
	    RD_KAFKA_V_END);
	/* On success the message owns the headers; on failure we still do. */
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != NULL)
		rd_kafka_headers_destroy(hdrs);
	return err;
}

/*
 * Refused because of the record itself (contract §7): it becomes a dead
 * letter. Nothing the operator can fix belongs here (see refusal_of()).
 */
static bool
refused_for_good(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_MSG:
	case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
		return true;
	default:
		return false;
	}
}

/*
 * Refused for a cause the operator can fix (contract §7): the topic's
 * records wait in the spool and are tried again with backoff.
 * @returns the reason, or KSINK_REF_COUNT for any other error.
 */
static enum ksink_refusal
refusal_of(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		return KSINK_REF_TOPIC_AUTH;
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		return KSINK_REF_CLUSTER_AUTH;
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		return KSINK_REF_SASL_AUTH;
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
		return KSINK_REF_UNKNOWN_TOPIC;
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
		return KSINK_REF_INVALID_TOPIC;
	default:
		return KSINK_REF_COUNT;
	}
}

static const char *const refusal_names[] = {
	[KSINK_REF_TOPIC_AUTH] = "topic_authorization_failed",
	[KSINK_REF_CLUSTER_AUTH] = "cluster_authorization_failed",
	[KSINK_REF_SASL_AUTH] = "sasl_authentication_failed",
	[KSINK_REF_UNKNOWN_TOPIC] = "unknown_topic",
	[KSINK_REF_INVALID_TOPIC] = "invalid_topic",
};

const char *
ksink_refusal_name(enum ksink_refusal why)
{
	return (unsigned)why < W2K_ARRAY_SIZE(refusal_names) ?
	    refusal_names[why] : "?";
}

/* ---- topics that refuse records ------------------------------------------ */

static uint32_t
ksink_rand(void *ctx)
{
	struct ksink *ks = ctx;
	uint32_t r = 0;

	if (lws_get_random(ks->env->context, &r, sizeof(r)) != sizeof(r))
		r = (uint32_t)w2k_mono_us();	/* jitter only; not security */
	return r;
}

static struct ktopic *
topic_find(struct ksink *ks, const char *name)
{
	for (unsigned i = 0; i < ks->nkt; i++)
		if (strcmp(ks->kt[i].name, name) == 0)
			return &ks->kt[i];
	return NULL;
}

/* The entry for name, made on its first refusal; NULL without memory. */
static struct ktopic *
topic_get(struct ksink *ks, const char *name)
{
	struct ktopic *kt = topic_find(ks, name), *nkt;
	struct ksink_topic_refusals *nref;
	unsigned cap;
	char *dup;

	if (kt != NULL)
		return kt;
	if (ks->nkt == ks->capkt) {
		cap = ks->capkt ? ks->capkt * 2 : 8;
		if ((nkt = realloc(ks->kt, cap * sizeof(*nkt))) == NULL)
			return NULL;
		ks->kt = nkt;
		if ((nref = realloc(ks->ref, cap * sizeof(*nref))) == NULL)
			return NULL;
		ks->ref = nref;
		ks->capkt = cap;
	}
	if ((dup = strdup(name)) == NULL)
		return NULL;
	kt = &ks->kt[ks->nkt];
	memset(kt, 0, sizeof(*kt));
	memset(&ks->ref[ks->nkt], 0, sizeof(ks->ref[0]));
	kt->name = dup;
	backoff_init(&kt->bo, KSINK_REF_BO_INITIAL, KSINK_REF_BO_MAX);
	ks->ref[ks->nkt].topic = dup;
	ks->nkt++;
	ks->stats.refusals = ks->ref;
	ks->stats.nrefusals = ks->nkt;
	return kt;
}

static struct ksink_topic_refusals *
topic_pub(struct ksink *ks, const struct ktopic *kt)
{
	return &ks->ref[kt - ks->kt];
}

/*
 * Set seq (taken from the spool: spool_sent() or in flight) aside until
 * the topic's next retry. @returns 0, or W2K_ENOMEM (then the caller
 * hands it back with spool_requeue()).
 */
static int
topic_park(struct ksink *ks, struct ktopic *kt, uint64_t seq)
{
	if (kt->npark == kt->cappark) {
		size_t cap = kt->cappark ? kt->cappark * 2 : 64;
		uint64_t *p = realloc(kt->park, cap * sizeof(*p));

		if (p == NULL)
			return W2K_ENOMEM;
		kt->park = p;
		kt->cappark = cap;
	}
	kt->park[kt->npark++] = seq;
	topic_pub(ks, kt)->waiting = kt->npark;
	return 0;
}

/*
 * The topic refused a record for a cause the operator can fix: count it,
 * block the topic until its next retry (backoff), log once a minute.
 */
static void
topic_refused(struct ksink *ks, struct ktopic *kt, rd_kafka_resp_err_t err,
    enum ksink_refusal why)
{
	struct ksink_topic_refusals *pub = topic_pub(ks, kt);
	int64_t now = w2k_mono_us(), delay;

	pub->count[why]++;
	pub->reason = why;
	if (!pub->refused) {
		pub->refused = true;
		ks->stats.nrefused++;
	}
	kt->unlogged++;
	if (!kt->blocked) {
		kt->blocked = true;
		ks->nblocked++;
		delay = backoff_next(&kt->bo, false, ksink_rand, ks);
		kt->retry_us = now + delay;
	}
	if (kt->log_us != 0 && now - kt->log_us < KSINK_REFLOG_US)
		return;
	log_err("kafka: topic %s refuses records: %s (%s; %" PRIu64
	    " refusal%s since the last line): its records wait in the spool "
	    "and are tried again in %.1f s, the other topics flow",
	    kt->name, rd_kafka_err2str(err), ksink_refusal_name(why),
	    kt->unlogged, kt->unlogged == 1 ? "" : "s",
	    (double)(kt->retry_us - now) / 1e6);
	kt->log_us = now;
	kt->unlogged = 0;
}

static int
cmp_seq(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The backoff ended: what was set aside is produced again, oldest first. */
static void
topic_release(struct ksink *ks, struct ktopic *kt)
{
	kt->blocked = false;
	ks->nblocked--;
	if (kt->npark > 1)
		qsort(kt->park, kt->npark, sizeof(*kt->park), cmp_seq);
	for (size_t i = 0; i < kt->npark; i++)
		spool_requeue(ks->sp, kt->park[i]);
	kt->npark = 0;
	topic_pub(ks, kt)->waiting = 0;
}

/* Every tick: topics whose backoff ended. */
static void
topics_retry(struct ksink *ks)
{
	int64_t now;

	if (ks->nblocked == 0)
		return;
	now = w2k_mono_us();
	for (unsigned i = 0; i < ks->nkt; i++)
		if (ks->kt[i].blocked && now >= ks->kt[i].retry_us)
			topic_release(ks, &ks->kt[i]);
}

/* A record of topic was delivered: if it was refusing, it is not now. */
static void
topic_delivered(struct ksink *ks, const char *topic)
{
	struct ktopic *kt;
	struct ksink_topic_refusals *pub;

	if (ks->stats.nrefused == 0 || (kt = topic_find(ks, topic)) == NULL)
		return;
	pub = topic_pub(ks, kt);
	if (!pub->refused)
		return;
	pub->refused = false;
	ks->stats.nrefused--;
	backoff_reset(&kt->bo);
	kt->log_us = 0;
	log_notice("kafka: topic %s takes records again", kt->name);
}

/* Records set aside by refusing topics, all of them. */
static uint64_t
topics_parked(const struct ksink *ks)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < ks->nkt; i++)
		n += ks->kt[i].npark;
	return n;
}

/*
 * The producer is gone (spool_rewind() hands back everything in flight,
 * what was set aside included): forget the parked seqs and the blocks;
 * the new producer finds out for itself. The counters stay.
 */
static void
topics_forget(struct ksink *ks)
{
	for (unsigned i = 0; i < ks->nkt; i++) {
		ks->kt[i].blocked = false;
		ks->kt[i].npark = 0;
		ks->ref[i].waiting = 0;
	}
	ks->nblocked = 0;
	ks->ndlw = 0;
}

/*
 * A record of topic refused for a cause the operator can fix (refusal
 * why): the topic is blocked, and the record (seq, in flight in the spool,
 * when spooled) set aside. A record not in the spool is the caller's to
 * append: drain() sets it aside from there.
 */
static void
set_aside(struct ksink *ks, const char *topic, uint64_t seq, bool spooled,
    rd_kafka_resp_err_t err, enum ksink_refusal why)
{
	struct ktopic *kt = topic_get(ks, topic);

	if (kt == NULL) {
		log_err("kafka: out of memory setting a record of %s aside: "
		    "producing it again", topic);
		if (spooled)
			spool_requeue(ks->sp, seq);
		return;
	}
	topic_refused(ks, kt, err, why);
	if (spooled && topic_park(ks, kt, seq) != 0)
		spool_requeue(ks->sp, seq);
}

/* One log line per KSINK_ERRLOG_US at most, with the count in between. */
static void
log_failure(struct ksink *ks, const char *topic, rd_kafka_resp_err_t err,
    const char *what)
{
	int64_t now = w2k_mono_us();

	ks->errs_since_log++;
	if (now - ks->last_errlog_us < KSINK_ERRLOG_US)
		return;
	log_warn("kafka: delivery to %s failed: %s (%" PRIu64 " failure%s "
	    "in the last %d s): %s", topic, rd_kafka_err2str(err),
	    ks->errs_since_log, ks->errs_since_log == 1 ? "" : "s",
	    (int)(KSINK_ERRLOG_US / 1000000), what);
	ks->last_errlog_us = now;
	ks->errs_since_log = 0;
}

/*
 * Whether rec is a dead letter (wsi2kafka.deadletter/1) rather than an
 * event: the spool keeps the flag; a record rebuilt from a delivery report
 * has only its value, which a dead letter always starts so (norm.c).
 */
static bool
is_dead_letter(const struct record *rec)
{
	static const char pre[] = "{\"schema\":\"wsi2kafka.deadletter/1\"";

	return rec->dead || (rec->value_len >= sizeof(pre) - 1 &&
	    memcmp(rec->value, pre, sizeof(pre) - 1) == 0);
}

/*
 * A record refused for good, for a cause in the record itself (too large,
 * invalid). An event — a no-route event on the dead-letter topic included —
 * becomes a dead letter on the dead-letter topic carrying its value as
 * "raw", the first NORM_DL_RAW_MAX (64 KiB) bytes of it (contract §5), or
 * less when the producer's own message.max.bytes (an operator's setting)
 * would refuse that too. A dead letter refused for good has nowhere left
 * to go: it is logged with its id and dropped, counted.
 * @param rec borrowed; not kept.
 * @param dl  out, when 1 is returned: the dead letter (topic set), owned
 *            by the caller.
 * @returns 1 (produce dl, then the original is done), 0 (rec was a dead
 *          letter: dropped, counted; the original is done), W2K_ENOMEM
 *          (keep the original: it is tried again).
 */
static int
dead_letter_for(struct ksink *ks, const struct record *rec,
    rd_kafka_resp_err_t err, struct record *dl)
{
	const char *name, *value, *pbx = "", *id = "?";
	size_t pos = 0, len = rec->value_len;

	memset(dl, 0, sizeof(*dl));
	while (record_hdr_next(rec, &pos, &name, &value)) {
		if (strcmp(name, "ce_source") == 0 &&
		    strncmp(value, "wsi2kafka://", 12) == 0)
			pbx = value + 12;
		else if (strcmp(name, "ce_id") == 0)
			id = value;
	}
	if (is_dead_letter(rec)) {
		log_err("kafka: %s refused dead letter %s for good (%s): "
		    "dropped", rec->topic, id, rd_kafka_err2str(err));
		ks->stats.dropped++;
		return 0;
	}
	for (;;) {
		if (norm_dead_letter(pbx, rd_kafka_err2name(err),
		    (const unsigned char *)rec->value, len,
		    len < rec->value_len, rec->received_us, dl) != 0) {
			log_err("kafka: out of memory building a dead letter");
			return W2K_ENOMEM;
		}
		/* norm cut raw to NORM_DL_RAW_MAX; escaping may have grown
		 * it past a small message.max.bytes: cut further then. */
		if (ks->max_msg == 0 || dl->value_len + dl->key_len +
		    dl->hdrs_len + KSINK_WIRE_SLACK <= ks->max_msg ||
		    len < 64)
			break;
		record_clear(dl);
		len = (len < NORM_DL_RAW_MAX ? len : NORM_DL_RAW_MAX) / 2;
	}
	if ((dl->topic = strdup(ks->cfg->kafka.dead_letter_topic)) == NULL) {
		record_clear(dl);
		log_err("kafka: out of memory building a dead letter");
		return W2K_ENOMEM;
	}
	log_err("kafka: %s refused record %s for good (%s): sent to %s",
	    rec->topic, id, rd_kafka_err2str(err), dl->topic);
	ks->stats.dead_lettered++;
	return 1;
}

/*
 * The spool could not take rec (logged there): produce it directly. It is
 * then only in librdkafka's memory, but not lost while this process lives.
 */
static int
produce_unspooled(struct ksink *ks, const struct record *rec)
{
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__STATE;

	if (ks->rk != NULL && !ks->rebuilding && !ks->destroying &&
	    (err = produce_one(ks, rec, OPAQUE_UNSPOOLED |
	    ((uint64_t)rec->received_us & ~OPAQUE_UNSPOOLED))) ==
	    RD_KAFKA_RESP_ERR_NO_ERROR) {
		ks->stats.unspooled++;
		return 0;
	}
	log_err("kafka: record %s for %s could neither be spooled nor "
	    "produced (%s): lost", rec->id, rec->topic, rd_kafka_err2str(err));
	ks->stats.dropped++;
	return W2K_EIO;
}

/*
 * Into the spool (or, failing that, directly to librdkafka): *seqp is its
 * seq on 0, else 0. The spool's write-behind is written out at the end of
 * this loop turn (flush_due), also when this runs from a delivery report
 * rather than ksink_produce().
 */
static int
store_seq(struct ksink *ks, const struct record *rec, uint64_t *seqp)
{
	int r = spool_append(ks->sp, rec, seqp);

	if (r == 0) {
		ks->flush_due = true;
		return 0;
	}
	*seqp = 0;
	/* W2K_EFULL: on_full dropped it, counted and logged by the spool. */
	if (r == W2K_EFULL)
		return r;
	return produce_unspooled(ks, rec);
}

static int
store(struct ksink *ks, const struct record *rec)
{
	uint64_t seq;
	return store_seq(ks, rec, &seq);
}

static void arm_sync(struct ksink *ks, int64_t in);

/* The original waits for its dead letter: acked when that is delivered. */
static int
dlwait_add(struct ksink *ks, uint64_t dl_seq, uint64_t orig_seq)
{
	if (ks->ndlw == ks->capdlw) {
		size_t cap = ks->capdlw ? ks->capdlw * 2 : 16;
		struct dlwait *p = realloc(ks->dlw, cap * sizeof(*p));

		if (p == NULL)
			return W2K_ENOMEM;
		ks->dlw = p;
		ks->capdlw = cap;
	}
	ks->dlw[ks->ndlw].dl_seq = dl_seq;
	ks->dlw[ks->ndlw].orig_seq = orig_seq;
	ks->ndlw++;
	return 0;
}

/* Record seq left the spool: if it was a dead letter, its original too. */
static void
dlwait_done(struct ksink *ks, uint64_t seq)
{
	for (size_t i = 0; i < ks->ndlw; i++) {
		if (ks->dlw[i].dl_seq != seq)
			continue;
		spool_ack(ks->sp, ks->dlw[i].orig_seq, NULL);
		ks->dlw[i] = ks->dlw[--ks->ndlw];
		return;
	}
}

/*
 * After dead_letter_for() returned r for the record seq (taken from the
 * spool, or not in it: !spooled): its dead letter dl (r == 1) goes into
 * the spool, and the original is acked only once the dead letter is
 * delivered (dlwait_done()), so that a crash at any point leaves one of
 * them in the spool, whatever spool.fsync says: both survive, the
 * original to be refused (and dead-lettered, with the same id) again.
 * Without a seq for the dead letter (not spooled) or memory for the wait,
 * the original is acked now, as a dead letter dropped (r == 0) is.
 */
static void
refused_done(struct ksink *ks, int r, struct record *dl, uint64_t seq,
    bool spooled)
{
	uint64_t dseq = 0;

	if (r == 1) {
		store_seq(ks, dl, &dseq);
		record_clear(dl);
		/* The group commit is due now, not at the next append. */
		arm_sync(ks, spool_tick(ks->sp));
		test_after_dead_letter();
		if (spooled && dseq != 0 && dlwait_add(ks, dseq, seq) == 0)
			return;
	}
	if (spooled) {
		spool_ack(ks->sp, seq, NULL);
		dlwait_done(ks, seq);
	}
}

/*
 * Records from the spool to librdkafka, at most budget of them. A record
 * of a topic that refuses records is set aside (set_aside()), and the
 * next one is taken: one topic never holds up the others.
 */
static void
drain(struct ksink *ks, unsigned budget)
{
	const struct record *rec;
	enum ksink_refusal why;
	rd_kafka_resp_err_t err;
	struct ktopic *kt;
	struct record dl;
	uint64_t seq;
	int r;

	while (budget-- > 0 && ks->rk != NULL && !ks->rebuilding) {
		if (spool_next(ks->sp, &rec, &seq) != 0) {
			set_stalled(ks, false);		/* nothing waits */
			return;
		}
		if (ks->nblocked > 0 && (kt = topic_find(ks, rec->topic)) !=
		    NULL && kt->blocked) {
			spool_sent(ks->sp, seq);
			if (topic_park(ks, kt, seq) != 0) {
				spool_requeue(ks->sp, seq);
				return;		/* no memory: next tick */
			}
			continue;
		}
		err = produce_one(ks, rec, seq);
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			set_stalled(ks, true);
			return;
		}
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			spool_sent(ks->sp, seq);
			continue;
		}
		if ((why = refusal_of(err)) != KSINK_REF_COUNT) {
			char *topic = strdup(rec->topic);

			spool_sent(ks->sp, seq);
			if (topic == NULL) {
				spool_requeue(ks->sp, seq);
				return;
			}
			set_aside(ks, topic, seq, true, err, why);
			free(topic);
			continue;
		}
		if (!refused_for_good(err)) {
			/* The producer's fatal state…: try on the next tick
			 * (a rebuild is under way). */
			log_failure(ks, rec->topic, err, "kept for retry");
			return;
		}
		/* Refused before it left: dead letter first, then done. The
		 * dead letter is built before rec (borrowed) goes stale. */
		if ((r = dead_letter_for(ks, rec, err, &dl)) < 0)
			return;
		spool_sent(ks->sp, seq);
		refused_done(ks, r, &dl, seq, true);
	}
}

/* Arm the group-commit timer: in µs from now, -1 when nothing waits. */
static void ksink_sync_cb(struct timer *tm);

static void
arm_sync(struct ksink *ks, int64_t in)
{
	if (in < 0 || timer_armed(&ks->tm_sync))
		return;
	timer_arm(ks->env->timers, &ks->tm_sync, in, ksink_sync_cb);
}

static void
ksink_sync_cb(struct timer *tm)
{
	struct ksink *ks = lws_container_of(tm, struct ksink, tm_sync);

	arm_sync(ks, spool_tick(ks->sp));
}

int
ksink_produce(struct ksink *ks, const struct record *rec)
{
	int r = store(ks, rec);

	/* The spool collects this turn's appends in memory (write-behind);
	 * ksink_service() writes them out in one go after the turn. */
	ks->flush_due = true;
	drain(ks, KSINK_DRAIN_NOW);
	/* Under load the group commit is armed already: no spool_tick()
	 * (a clock read and the sync thread's lock) per record then. */
	if (!timer_armed(&ks->tm_sync))
		arm_sync(ks, spool_tick(ks->sp));
	return r;
}

/* ---- callbacks (all on the loop thread, from rd_kafka_poll) ------------ */

/* Rebuild a struct record from a failed message (owned by the caller). */
static int
record_from_msg(struct record *rec, const rd_kafka_message_t *rkm,
    int64_t received_us)
{
	rd_kafka_headers_t *hdrs = NULL;
	const char *topic = rd_kafka_topic_name(rkm->rkt);
	const void *value;
	const char *name;
	size_t size, i = 0;

	memset(rec, 0, sizeof(*rec));
	rec->received_us = received_us;
	if ((rec->topic = strdup(topic)) == NULL)
		goto oom;
	if (rkm->key != NULL) {
		if ((rec->key = malloc(rkm->key_len + 1)) == NULL)
			goto oom;
		memcpy(rec->key, rkm->key, rkm->key_len);
		rec->key_len = rkm->key_len;
	}
	if ((rec->value = malloc(rkm->len + 1)) == NULL)
		goto oom;
	if (rkm->len > 0)
		memcpy(rec->value, rkm->payload, rkm->len);
	rec->value_len = rkm->len;
	if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
		while (rd_kafka_header_get_all(hdrs, i++, &name, &value,
		    &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
			char v[512];

			snprintf(v, sizeof(v), "%.*s", (int)size,
			    value ? (const char *)value : "");
			if (record_hdr_add(rec, name, v) != 0)
				goto oom;
		}
	return 0;
oom:
	record_clear(rec);
	return W2K_ENOMEM;
}

static const char *const fail_names[] = {
	[KSINK_FAIL_TIMEOUT] = "timeout", [KSINK_FAIL_TRANSPORT] = "transport",
	[KSINK_FAIL_PURGED] = "purged", [KSINK_FAIL_REFUSED] = "refused",
	[KSINK_FAIL_OTHER] = "other",
};

const char *
ksink_fail_name(enum ksink_fail why)
{
	return (unsigned)why < W2K_ARRAY_SIZE(fail_names) ?
	    fail_names[why] : "?";
}

static enum ksink_fail
classify_failure(rd_kafka_resp_err_t err)
{
	if (refused_for_good(err))
		return KSINK_FAIL_REFUSED;
	switch (err) {
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return KSINK_FAIL_TIMEOUT;
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
	case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
	case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
		return KSINK_FAIL_TRANSPORT;
	case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
	case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
		return KSINK_FAIL_PURGED;
	default:
		return KSINK_FAIL_OTHER;
	}
}

/* Per-topic delivery counts: the configured topics, then "other". */
static void
count_topic(struct ksink *ks, const char *topic)
{
	struct ksink_stats *st = &ks->stats;
	unsigned i;

	for (i = 0; i < st->ntopics; i++)
		if (strcmp(st->topic_name[i], topic) == 0)
			break;
	st->topic_produced[i]++;	/* i == ntopics: the "other" slot */
}

/* A failed record refused for good: see refused_done(). */
static void
refused_in_report(struct ksink *ks, const rd_kafka_message_t *rkm,
    uint64_t seq, bool spooled, int64_t received_us)
{
	struct record rec, dl;
	int r;

	if (record_from_msg(&rec, rkm, received_us) != 0 ||
	    (r = dead_letter_for(ks, &rec, rkm->err, &dl)) < 0) {
		log_err("kafka: out of memory handling a refused record: "
		    "producing it again");
		if (spooled)
			spool_requeue(ks->sp, seq);
		else if (rec.topic != NULL)
			store(ks, &rec);
		record_clear(&rec);
		return;
	}
	refused_done(ks, r, &dl, seq, spooled);
	record_clear(&rec);
}

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
	struct ksink *ks = opaque;
	uint64_t op = (uint64_t)(uintptr_t)rkm->_private;
	bool spooled = !(op & OPAQUE_UNSPOOLED);
	uint64_t seq = spooled ? op : 0;
	int64_t us = spooled ? spool_received_us(ks->sp, seq) :
	    (int64_t)(op & ~OPAQUE_UNSPOOLED);
	enum ksink_refusal why;
	struct record rec;
	int64_t lat;

	(void)rk;
	if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		ks->stats.produced++;
		ks->stats.up = true;
		count_topic(ks, rd_kafka_topic_name(rkm->rkt));
		/* A record dropped by on_full meanwhile has no time left. */
		if (us > 0)
			histo_observe(&ks->stats.latency,
			    (double)(w2k_now_us() - us) / 1e6);
		/* From the last produce (a retry starts it again): tells a
		 * slow broker or linger.ms apart from a slow daemon. */
		if ((lat = rd_kafka_message_latency(rkm)) >= 0)
			histo_observe(&ks->stats.ack_latency,
			    (double)lat / 1e6);
		topic_delivered(ks, rd_kafka_topic_name(rkm->rkt));
		if (spooled) {
			spool_ack(ks->sp, seq, NULL);
			if (ks->ndlw > 0)
				dlwait_done(ks, seq);
		}
		return;
	}
	ks->stats.failed[classify_failure(rkm->err)]++;
	if (refused_for_good(rkm->err)) {
		refused_in_report(ks, rkm, seq, spooled, us);
		return;
	}
	if ((why = refusal_of(rkm->err)) != KSINK_REF_COUNT) {
		set_aside(ks, rd_kafka_topic_name(rkm->rkt), seq, spooled,
		    rkm->err, why);
		if (spooled)
			return;
	} else {
		log_failure(ks, rd_kafka_topic_name(rkm->rkt), rkm->err,
		    "producing again");
		ks->stats.retried++;
		if (spooled) {
			spool_requeue(ks->sp, seq);
			return;
		}
	}
	/* Not in the spool: try to put it there now. */
	if (record_from_msg(&rec, rkm, us) != 0) {
		log_err("kafka: out of memory producing a record again: "
		    "record lost");
		ks->stats.dropped++;
		return;
	}
	store(ks, &rec);
	record_clear(&rec);
}

static void ksink_rebuild_cb(lws_sorted_usec_list_t *sul);

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct ksink *ks = opaque;
	char fatal[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		log_err("kafka: fatal producer error: %s: rebuilding the "
		    "producer", fatal);
		if (!ks->rebuilding) {
			ks->rebuilding = true;
			/* Not from inside librdkafka's own callback. */
			lws_sul_schedule(ks->env->context, 0, &ks->sul_rebuild,
			    ksink_rebuild_cb, 1);
		}
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		if (ks->stats.up)
			log_err("kafka: all brokers are down: %s", reason);
		ks->stats.up = false;
		return;
	}
	/*
	 * librdkafka recovers from the rest by itself (§14.3-9), and its
	 * log callback has already said so: debug only, no double lines.
	 */
	log_debug("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/*
 * librdkafka's statistics (STATISTICS.md), served by rd_kafka_poll() on
 * the loop thread: keep what the metrics export (queue depth, each
 * broker's connection state). Only real brokers count: source "learned"
 * (from metadata) or "configured" (bootstrap); librdkafka's internal and
 * logical brokers have no connection of their own. stats.up follows them
 * (true when one is UP, false when none is): this is librdkafka's current
 * view, so after an outage Kafka shows up again without waiting for the
 * next delivery report. Returning 0 lets librdkafka free json.
 */
static int
stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
	struct ksink_rkstats *rs = &((struct ksink *)opaque)->stats.rk;
	cJSON *root = cJSON_ParseWithLength(json, json_len), *b, *x;
	unsigned n = 0, up = 0;

	(void)rk;
	if (root == NULL)
		return 0;
	x = cJSON_GetObjectItemCaseSensitive(root, "msg_cnt");
	rs->msgs = cJSON_IsNumber(x) && x->valuedouble > 0 ?
	    (uint64_t)x->valuedouble : 0;
	x = cJSON_GetObjectItemCaseSensitive(root, "msg_size");
	rs->bytes = cJSON_IsNumber(x) && x->valuedouble > 0 ?
	    (uint64_t)x->valuedouble : 0;
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(root,
	    "brokers")) {
		const char *src = cJSON_GetStringValue(
		    cJSON_GetObjectItemCaseSensitive(b, "source"));
		const char *st = cJSON_GetStringValue(
		    cJSON_GetObjectItemCaseSensitive(b, "state"));

		if (n == KSINK_MAX_BROKERS || b->string == NULL ||
		    src == NULL || st == NULL || (strcmp(src, "learned") != 0 &&
		    strcmp(src, "configured") != 0))
			continue;
		snprintf(rs->broker[n].name, sizeof(rs->broker[n].name), "%s",
		    b->string);
		rs->broker[n].up = strcmp(st, "UP") == 0;
		up += rs->broker[n].up;
		n++;
	}
	rs->nbrokers = n;
	rs->at_us = w2k_now_us();
	((struct ksink *)opaque)->stats.up = up > 0;
	cJSON_Delete(root);
	return 0;
}

static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	enum log_level lvl = LOG_LVL_DEBUG;

	(void)rk;
	if (level <= LOG_ERR)
		lvl = LOG_LVL_ERR;
	else if (level == LOG_WARNING)
		lvl = LOG_LVL_WARN;
	else if (level <= LOG_INFO)
		lvl = LOG_LVL_INFO;
	log_msg(lvl, "kafka: %s: %s", fac, buf);
}

/* ---- producer lifecycle --------------------------------------------------- */

static int
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) !=
	    RD_KAFKA_CONF_OK) {
		log_err("kafka: property %s: %s", name, errstr);
		return W2K_EINVAL;
	}
	return 0;
}

/*
 * Delivery reports wait in librdkafka's main queue until rd_kafka_poll().
 * Polling only from the KSINK_POLL_US tick would add up to that much to
 * every record's latency, so librdkafka calls this (on one of its own
 * threads) when the queue goes from empty to non-empty: it raises a flag
 * and wakes the event loop (lws_cancel_service() is lws's thread-safe
 * wake-up), whose next turn calls ksink_service().
 */
static void
queue_event_cb(rd_kafka_t *rk, void *opaque)
{
	struct ksink *ks = opaque;

	(void)rk;
	/* One wake-up until the loop serves: reports that come meanwhile
	 * are served by the same rd_kafka_poll(). */
	if (!atomic_exchange(&ks->wake, true))
		lws_cancel_service(ks->env->context);
}

/* Turn queue_event_cb on (on) or off for rk's main queue. */
static void
queue_events(struct ksink *ks, rd_kafka_t *rk, bool on)
{
	rd_kafka_queue_t *q = rd_kafka_queue_get_main(rk);

	rd_kafka_queue_cb_event_enable(q, on ? queue_event_cb : NULL,
	    on ? ks : NULL);
	rd_kafka_queue_destroy(q);	/* the handle only; rk keeps the queue */
}

int
ksink_conf_new(const struct cfg *cfg, rd_kafka_conf_t **confp)
{
	const struct cfg_kafka *kc = &cfg->kafka;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char num[32];
	uint64_t max_msg;
	int r = 0;

	if (conf == NULL)
		return W2K_ENOMEM;
	/*
	 * Defaults first, the user's properties after them (they win).
	 * message.timeout.ms=0: librdkafka retries for as long as it takes;
	 * a user's timeout only hands the record back to be produced again
	 * from the spool, never loses it. The local queue is bounded well
	 * below librdkafka's defaults (1 GiB, 100,000 messages) so memory
	 * stays small: 16,384 records (a sixth of a second at 100,000
	 * events/s keeps the brokers busy) cost about 25 MiB with their
	 * headers; beyond it records wait in the spool (backpressure).
	 */
	r |= conf_set(conf, "acks", "all");
	r |= conf_set(conf, "enable.idempotence", "true");
	/*
	 * The Java client's partitioner (contract §4): a key lands in the
	 * partition a Java, Kafka Streams, ksqlDB or Flink producer would
	 * put it in, so downstream jobs can co-partition. (librdkafka's own
	 * default, consistent_random, hashes with CRC32.)
	 */
	r |= conf_set(conf, "partitioner", "murmur2_random");
	r |= conf_set(conf, "message.timeout.ms", "0");
	r |= conf_set(conf, "queue.buffering.max.kbytes", "16384");
	r |= conf_set(conf, "queue.buffering.max.messages", "16384");
	r |= conf_set(conf, "log.queue", "true");
	r |= conf_set(conf, "client.id", "wsi2kafka");
	r |= conf_set(conf, "statistics.interval.ms", "5000");	/* stats_cb */
	/*
	 * A valid frame's record must fit (contract §5: max_frame), and
	 * librdkafka's local queue must hold two of them. The operator's
	 * properties, set after, still win.
	 */
	max_msg = ksink_message_max_bytes(cfg);
	if (max_msg != 0) {
		snprintf(num, sizeof(num), "%" PRIu64, max_msg);
		r |= conf_set(conf, "message.max.bytes", num);
		if (max_msg / 1024 * 2 > 16384) {
			snprintf(num, sizeof(num), "%" PRIu64,
			    max_msg / 1024 * 2);
			r |= conf_set(conf, "queue.buffering.max.kbytes", num);
		}
	}
	for (size_t i = 0; i < kc->prop_names.n; i++)
		r |= conf_set(conf, kc->prop_names.v[i], kc->prop_values.v[i]);
	r |= conf_set(conf, "bootstrap.servers", kc->brokers);
	if (r != 0) {
		rd_kafka_conf_destroy(conf);
		return W2K_EINVAL;
	}
	*confp = conf;
	return 0;
}

static int
producer_create(struct ksink *ks, const struct cfg *cfg, rd_kafka_t **rkp)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char errstr[512], num[32];
	uint64_t max_msg = ksink_message_max_bytes(cfg);
	size_t size;
	int r;

	if ((r = ksink_conf_new(cfg, &conf)) != 0)
		return r;
	/* What librdkafka will enforce: dead letters are cut to fit it. */
	size = sizeof(num);
	if (rd_kafka_conf_get(conf, "message.max.bytes", num, &size) ==
	    RD_KAFKA_CONF_OK)
		max_msg = strtoull(num, NULL, 10);
	rd_kafka_conf_set_opaque(conf, ks);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_stats_cb(conf, stats_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL) {
		log_err("kafka: cannot create the producer: %s", errstr);
		rd_kafka_conf_destroy(conf);	/* not taken on failure */
		return W2K_EINVAL;
	}
	/* conf is owned by rk now. Logs go to the main queue we poll. */
	rd_kafka_set_log_queue(rk, NULL);
	queue_events(ks, rk, true);
	ks->max_msg = max_msg;
	*rkp = rk;
	return 0;
}

uint64_t
ksink_message_max_bytes(const struct cfg *cfg)
{
	const struct cfg_kafka *kc = &cfg->kafka;
	uint64_t frame = 0, v;
	char *end;

	for (size_t i = 0; i < kc->prop_names.n; i++) {
		if (strcmp(kc->prop_names.v[i], "message.max.bytes") != 0)
			continue;
		errno = 0;
		v = strtoull(kc->prop_values.v[i], &end, 10);
		return errno == 0 && end != kc->prop_values.v[i] &&
		    *end == '\0' ? v : 0;
	}
	for (size_t i = 0; i < cfg->npbx; i++)
		if (cfg->pbx[i].max_frame > frame)
			frame = cfg->pbx[i].max_frame;
	v = frame + frame / 4 + KSINK_ENVELOPE;
	/* librdkafka's range is 1000 .. 1,000,000,000; its default 1e6. */
	return v < 1000000 ? 1000000 : v > 1000000000 ? 1000000000 : v;
}

static int
producer_new(struct ksink *ks)
{
	return producer_create(ks, ks->cfg, &ks->rk);
}

/*
 * Purge what librdkafka still holds and serve the delivery reports of the
 * purge: they fail with __PURGE_QUEUE/__PURGE_INFLIGHT and dr_msg_cb hands
 * each back to the spool (spool_requeue()), which still has it on disk.
 * Then destroy; spool_rewind() covers any report that never came.
 */
static void
producer_destroy(struct ksink *ks)
{
	if (ks->rk == NULL)
		return;
	ks->destroying = true;
	queue_events(ks, ks->rk, false);
	rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE |
	    RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(ks->rk, 0);
	rd_kafka_flush(ks->rk, 100);	/* serves the purge reports */
	rd_kafka_destroy(ks->rk);
	ks->rk = NULL;
	ks->destroying = false;
	spool_rewind(ks->sp);
	topics_forget(ks);
}

/* After a fatal error: a new producer, and everything in flight again. */
static int
rebuild(struct ksink *ks)
{
	const struct spool_stats *st;

	producer_destroy(ks);
	if (producer_new(ks) != 0)
		return W2K_EFATAL;
	ks->rebuilding = false;
	ks->stats.rebuilds++;
	st = spool_get_stats(ks->sp);
	log_notice("kafka: producer rebuilt; %" PRIu64 " record%s in the "
	    "spool to produce", st->records, st->records == 1 ? "" : "s");
	drain(ks, KSINK_DRAIN_TICK);
	return 0;
}

static void
ksink_rebuild_cb(lws_sorted_usec_list_t *sul)
{
	struct ksink *ks = lws_container_of(sul, struct ksink, sul_rebuild);

	/* The same configuration worked before: try again in a second. */
	if (rebuild(ks) != 0)
		lws_sul_schedule(ks->env->context, 0, &ks->sul_rebuild,
		    ksink_rebuild_cb, 1000 * 1000);
}

static void
update_pending(struct ksink *ks)
{
	uint64_t records = spool_get_stats(ks->sp)->records;
	uint64_t out = spool_inflight(ks->sp);

	ks->stats.pending = records > out ? records - out : 0;
}

/* Delivery reports and callbacks, then records from the spool. */
static void
serve(struct ksink *ks)
{
	atomic_store(&ks->wake, false);
	if (ks->rk != NULL)
		rd_kafka_poll(ks->rk, 0);
#ifdef W2K_TESTING
	if (test_fatal && ks->rk != NULL && !ks->rebuilding) {
		test_fatal = 0;
		log_warn("kafka: test hook (SIGUSR2): injecting a fatal "
		    "producer error");
		rd_kafka_test_fatal_error(ks->rk,
		    RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
		    "injected by test");
	}
#endif
	topics_retry(ks);
	drain(ks, KSINK_DRAIN_TICK);
	arm_sync(ks, spool_tick(ks->sp));
	update_pending(ks);
}

static void
ksink_poll_cb(struct timer *tm)
{
	struct ksink *ks = lws_container_of(tm, struct ksink, tm_poll);

	serve(ks);
	timer_arm(ks->env->timers, &ks->tm_poll, KSINK_POLL_US, ksink_poll_cb);
}

void
ksink_service(struct ksink *ks)
{
	if (ks == NULL)
		return;
	if (atomic_load(&ks->wake))
		serve(ks);
	if (ks->flush_due) {
		ks->flush_due = false;
		/* A failure is logged, and the records stay for the next
		 * append's turn (the disk is not retried every turn). */
		(void)spool_flush(ks->sp);
	}
}

/*
 * The topics deliveries are counted under: every route's, the dead-letter
 * topic, each once; the slot after them counts anything else. The names
 * are borrowed from ks->cfg: on a reload they are set again from the new
 * one, and a topic that stays keeps its count (a counter never goes
 * back); the counts of topics no longer configured go to "other".
 */
static void
topics_init(struct ksink *ks)
{
	const struct cfg_kafka *kc = &ks->cfg->kafka;
	struct ksink_stats *st = &ks->stats;
	const char *old_name[KSINK_MAX_TOPICS];
	uint64_t old_count[KSINK_MAX_TOPICS], other;
	unsigned nold = st->ntopics;

	memcpy(old_name, st->topic_name, nold * sizeof(*old_name));
	memcpy(old_count, st->topic_produced, (nold + 1) * sizeof(*old_count));
	other = old_count[nold];
	memset(st->topic_name, 0, sizeof(st->topic_name));
	memset(st->topic_produced, 0, sizeof(st->topic_produced));
	st->ntopics = 0;
	for (size_t i = 0; i <= kc->nroutes; i++) {
		const char *t = i < kc->nroutes ? kc->routes[i].topic :
		    kc->dead_letter_topic;
		unsigned j;

		for (j = 0; j < st->ntopics; j++)
			if (strcmp(st->topic_name[j], t) == 0)
				break;
		if (j == st->ntopics && st->ntopics + 1 < KSINK_MAX_TOPICS)
			st->topic_name[st->ntopics++] = t;
	}
	for (unsigned i = 0; i < nold; i++) {
		unsigned j;

		for (j = 0; j < st->ntopics; j++)
			if (strcmp(st->topic_name[j], old_name[i]) == 0)
				break;
		if (j < st->ntopics)
			st->topic_produced[j] += old_count[i];
		else
			other += old_count[i];
	}
	st->topic_produced[st->ntopics] += other;
}

static bool
strv_equal(const struct cfg_strv *a, const struct cfg_strv *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

int
ksink_reconfigure(struct ksink *ks, const struct cfg *cfg)
{
	const struct cfg_kafka *o = &ks->cfg->kafka, *n = &cfg->kafka;
	rd_kafka_t *rk = NULL;

	if (strcmp(o->brokers, n->brokers) != 0 ||
	    ksink_message_max_bytes(ks->cfg) != ksink_message_max_bytes(cfg) ||
	    !strv_equal(&o->prop_names, &n->prop_names) ||
	    !strv_equal(&o->prop_values, &n->prop_values)) {
		/* The new producer first: refused, nothing has changed. */
		if (producer_create(ks, cfg, &rk) != 0)
			return W2K_EINVAL;
		/* What the old one holds goes back to the spool (its reports
		 * are served with the old configuration still in place). */
		lws_sul_cancel(&ks->sul_rebuild);
		producer_destroy(ks);
		ks->rk = rk;
		rk = NULL;		/* ownership moved to ks */
		ks->rebuilding = false;
		log_notice("kafka: new producer for the reloaded settings "
		    "(brokers %s)", n->brokers);
	}
	ks->cfg = cfg;
	topics_init(ks);
	drain(ks, KSINK_DRAIN_TICK);
	return 0;
}

int
ksink_new(const struct cfg *cfg, const struct ksink_env *env,
    struct ksink **ksp)
{
	struct ksink *ks = calloc(1, sizeof(*ks));
	int r;

	if (ks == NULL)
		return W2K_ENOMEM;
	ks->cfg = cfg;
	ks->env = env;
	ks->sp = env->spool;
	topics_init(ks);
	if ((r = producer_new(ks)) != 0) {
		free(ks);
		return r;
	}
#ifdef W2K_TESTING
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigusr2;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR2, &sa, NULL);
	}
#endif
	update_pending(ks);
	timer_arm(env->timers, &ks->tm_poll, KSINK_POLL_US, ksink_poll_cb);
	*ksp = ks;
	return 0;
}

uint64_t
ksink_flush(struct ksink *ks, int timeout_ms)
{
	int64_t deadline = w2k_mono_us() + (int64_t)timeout_ms * 1000;
	uint64_t left;

	timer_cancel(ks->env->timers, &ks->tm_poll);
	lws_sul_cancel(&ks->sul_rebuild);
	timer_cancel(ks->env->timers, &ks->tm_sync);
	ks->flush_due = false;
	(void)spool_flush(ks->sp);
	/* Deliver what the spool holds, as far as the time allows; the
	 * loop is not served meanwhile, so a rebuild happens here. */
	while (w2k_mono_us() < deadline) {
		if (ks->rebuilding && rebuild(ks) != 0)
			break;
		if (ks->rk == NULL)
			break;
		drain(ks, KSINK_DRAIN_TICK);
		spool_tick(ks->sp);
		/* What refusing topics set aside waits for the next start. */
		if (spool_get_stats(ks->sp)->records <= topics_parked(ks) &&
		    rd_kafka_outq_len(ks->rk) == 0)
			break;
		rd_kafka_poll(ks->rk, 50);
	}
	spool_tick(ks->sp);
	left = spool_get_stats(ks->sp)->records;
	update_pending(ks);
	if (left > 0)
		log_notice("kafka: %" PRIu64 " record%s not delivered within "
		    "%d s: kept in the spool for the next start", left,
		    left == 1 ? "" : "s", timeout_ms / 1000);
	return left;
}

void
ksink_free(struct ksink *ks)
{
	if (ks == NULL)
		return;
	timer_cancel(ks->env->timers, &ks->tm_poll);
	timer_cancel(ks->env->timers, &ks->tm_sync);
	lws_sul_cancel(&ks->sul_rebuild);
	/* What librdkafka held goes back to the spool, which keeps it. */
	producer_destroy(ks);
	for (unsigned i = 0; i < ks->nkt; i++) {
		free(ks->kt[i].name);
		free(ks->kt[i].park);
	}
	free(ks->kt);
	free(ks->ref);
	free(ks->dlw);
	free(ks);
}

const struct ksink_stats *
ksink_get_stats(const struct ksink *ks)
{
	return &ks->stats;
}
