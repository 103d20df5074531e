/*
 * ksink.c — the librdkafka producer on the lws event loop, fed from the
 * spool (contract §7, style.md §14).
 *
 * Every record is appended to the spool first (ksink_produce()) and handed
 * to librdkafka from there as fast as librdkafka takes it: spool_next()
 * picks the record (those to produce again first, then the backlog found at
 * start-up and live records in turn), rd_kafka_producev() copies it,
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
 * Delivery reports:
 *   success                      → spool_ack(): the record may leave
 *   refused for good (too large, invalid, not authorized) → a dead letter
 *                                  carrying it is appended to the spool,
 *                                  then it is acked; a dead letter refused
 *                                  for good is logged and dropped (there is
 *                                  nowhere further)
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
#include "log.h"
#include "norm.h"
#include "spool.h"
#include "timer.h"
#include "w2k.h"

#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

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
#define KSINK_DL_SMALL		512	/* raw bytes kept after a size refusal */

/*
 * The msg opaque: a spool sequence number, or for a record the spool could
 * not take, this bit and the receipt time (µs since the epoch, < 2^62).
 */
#define OPAQUE_UNSPOOLED	(UINT64_C(1) << 63)
_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t),
    "the msg opaque carries a 64-bit sequence number");

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

static bool
refused_for_good(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_MSG:
	case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
		return true;
	default:
		return false;
	}
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

static bool
size_refusal(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	    err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
	    err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/*
 * A record the broker (or librdkafka's own limits) refuses for good.
 * An event becomes a dead letter on the dead-letter topic, carrying the
 * original value as "raw" — cut to KSINK_DL_SMALL bytes when the refusal
 * was about size, so that the dead letter itself fits. A dead letter that
 * is refused for good has nowhere left to go: it is logged with its id and
 * dropped, rather than retried forever.
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
	if (strcmp(rec->topic, ks->cfg->kafka.dead_letter_topic) == 0) {
		log_err("kafka: %s refused dead letter %s for good (%s): "
		    "dropped", rec->topic, id, rd_kafka_err2str(err));
		ks->stats.dropped++;
		return 0;
	}
	if (size_refusal(err) && len > KSINK_DL_SMALL)
		len = KSINK_DL_SMALL;
	if (norm_dead_letter(pbx, rd_kafka_err2name(err),
	    (const unsigned char *)rec->value, len, len < rec->value_len,
	    rec->received_us, dl) != 0 ||
	    (dl->topic = strdup(ks->cfg->kafka.dead_letter_topic)) == NULL) {
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

/* Into the spool (or, failing that, directly to librdkafka). */
static int
store(struct ksink *ks, const struct record *rec)
{
	uint64_t seq;
	int r = spool_append(ks->sp, rec, &seq);

	/* W2K_EFULL: on_full dropped it, counted and logged by the spool. */
	if (r == 0 || r == W2K_EFULL)
		return r;
	return produce_unspooled(ks, rec);
}

/* Records from the spool to librdkafka, at most budget of them. */
static void
drain(struct ksink *ks, unsigned budget)
{
	const struct record *rec;
	rd_kafka_resp_err_t err;
	struct record dl;
	uint64_t seq;
	int r;

	while (budget-- > 0 && ks->rk != NULL && !ks->rebuilding) {
		if (spool_next(ks->sp, &rec, &seq) != 0) {
			set_stalled(ks, false);		/* nothing waits */
			return;
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
		if (!refused_for_good(err)) {
			/* Unknown topic, fatal state…: try on the next tick. */
			log_failure(ks, rec->topic, err, "kept for retry");
			return;
		}
		/* Refused before it left: dead letter first, then done. The
		 * dead letter is built before rec (borrowed) goes stale. */
		if ((r = dead_letter_for(ks, rec, err, &dl)) < 0)
			return;
		spool_sent(ks->sp, seq);
		if (r == 1)
			store(ks, &dl);
		spool_ack(ks->sp, seq, NULL);
		record_clear(&dl);
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

/*
 * A failed record refused for good: its dead letter goes into the spool
 * before the original is acked, so a crash in between leaves both (a
 * duplicate) rather than neither.
 */
static void
refused_in_report(struct ksink *ks, const rd_kafka_message_t *rkm,
    uint64_t seq, bool spooled, int64_t received_us)
{
	struct record rec, dl;
	int r;

	if (record_from_msg(&rec, rkm, received_us) != 0 ||
	    (r = dead_letter_for(ks, &rec, rkm->err, &dl)) < 0) {
		record_clear(&rec);
		log_err("kafka: out of memory handling a refused record: "
		    "producing it again");
		if (spooled)
			spool_requeue(ks->sp, seq);
		else
			store(ks, &rec);
		return;
	}
	if (r == 1)
		store(ks, &dl);
	if (spooled)
		spool_ack(ks->sp, seq, NULL);
	record_clear(&dl);
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
		if (spooled)
			spool_ack(ks->sp, seq, NULL);
		return;
	}
	ks->stats.failed[classify_failure(rkm->err)]++;
	if (refused_for_good(rkm->err)) {
		refused_in_report(ks, rkm, seq, spooled, us);
		return;
	}
	log_failure(ks, rd_kafka_topic_name(rkm->rkt), rkm->err,
	    "producing again");
	ks->stats.retried++;
	if (spooled) {
		spool_requeue(ks->sp, seq);
		return;
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

static int
producer_create(struct ksink *ks, const struct cfg *cfg, rd_kafka_t **rkp)
{
	const struct cfg_kafka *kc = &cfg->kafka;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char errstr[512];
	int r = 0;

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
	r |= conf_set(conf, "message.timeout.ms", "0");
	r |= conf_set(conf, "queue.buffering.max.kbytes", "16384");
	r |= conf_set(conf, "queue.buffering.max.messages", "16384");
	r |= conf_set(conf, "log.queue", "true");
	r |= conf_set(conf, "client.id", "wsi2kafka");
	r |= conf_set(conf, "statistics.interval.ms", "5000");	/* stats_cb */
	for (size_t i = 0; i < kc->prop_names.n; i++)
		r |= conf_set(conf, kc->prop_names.v[i], kc->prop_values.v[i]);
	r |= conf_set(conf, "bootstrap.servers", kc->brokers);
	if (r != 0) {
		rd_kafka_conf_destroy(conf);
		return W2K_EINVAL;
	}
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
	*rkp = rk;
	return 0;
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
		if (spool_get_stats(ks->sp)->records == 0 &&
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
	free(ks);
}

const struct ksink_stats *
ksink_get_stats(const struct ksink *ks)
{
	return &ks->stats;
}
