/*
 * ksink.c — librdkafka producer on the lws event loop.
 *
 * Periodic work (one timer): every KSINK_POLL_US, rd_kafka_poll(rk, 0)
 * serves delivery reports, error and log callbacks on this thread, then the
 * FIFO of records waiting for librdkafka is drained as far as it accepts.
 *
 * Failure handling, by delivery-report error:
 *   success                      → counted, done
 *   refused for good (too large, invalid, not authorized) → re-published on
 *                                  the dead-letter topic with the reason;
 *                                  a refused dead letter is logged and
 *                                  dropped (there is nowhere further)
 *   anything else (timeouts, brokers down, purges) → produced again
 * and RD_KAFKA_RESP_ERR__FATAL (idempotence) rebuilds the producer from a
 * timer, never from inside librdkafka's callback.
 *
 * This file never blocks the loop, except ksink_flush() at shutdown.
 */
#include "ksink.h"
#include "log.h"
#include "norm.h"
#include "w2k.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <librdkafka/rdkafka.h>

#define KSINK_POLL_US		(10 * 1000)
#define KSINK_ERRLOG_US		(5LL * 1000 * 1000)	/* log flood bound */
#define KSINK_DL_SMALL		512	/* raw bytes kept after a size refusal */

struct pend {
	struct pend	*next;
	struct record	 rec;
};

struct ksink {
	const struct cfg	*cfg;
	const struct ksink_env	*env;
	rd_kafka_t		*rk;
	lws_sorted_usec_list_t	 sul_poll;
	lws_sorted_usec_list_t	 sul_rebuild;
	struct pend		*head, *tail;	/* FIFO, oldest first */
	bool			 pressure;	/* told the sessions to pause */
	bool			 rebuilding;
	int64_t			 last_errlog_us;
	uint64_t		 errs_since_log;
	struct ksink_stats	 stats;
};

/* ---- FIFO -------------------------------------------------------------- */

static void
set_pressure(struct ksink *ks, bool high)
{
	if (ks->pressure == high)
		return;
	ks->pressure = high;
	if (high)
		log_warn("kafka: producer queue full: pausing PBX input");
	else
		log_info("kafka: producer queue drained: resuming PBX input");
	if (ks->env->pressure != NULL)
		ks->env->pressure(ks->env->pressure_ctx, high);
}

/* Take ownership of rec's buffers (rec is zeroed). */
static int
pend_push(struct ksink *ks, struct record *rec)
{
	struct pend *pe = malloc(sizeof(*pe));

	if (pe == NULL)
		return W2K_ENOMEM;
	pe->rec = *rec;
	memset(rec, 0, sizeof(*rec));
	pe->next = NULL;
	if (ks->tail != NULL)
		ks->tail->next = pe;
	else
		ks->head = pe;
	ks->tail = pe;
	ks->stats.pending++;
	set_pressure(ks, true);
	return 0;
}

static void
pend_pop(struct ksink *ks)
{
	struct pend *pe = ks->head;

	ks->head = pe->next;
	if (ks->head == NULL)
		ks->tail = NULL;
	record_clear(&pe->rec);
	free(pe);
	ks->stats.pending--;
}

/* ---- produce ------------------------------------------------------------ */

/*
 * Hand one record to librdkafka. The opaque carries the receipt time, for
 * the latency of the delivery report.
 */
static rd_kafka_resp_err_t
produce_one(struct ksink *ks, const struct record *rec)
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
	    RD_KAFKA_V_OPAQUE((void *)(intptr_t)rec->received_us),
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
 * dropped, rather than retried forever with every PBX paused behind it.
 * @returns true when rec (now the dead letter) must be produced, false
 *          when it was dropped (rec cleared).
 */
static bool
handle_refusal(struct ksink *ks, struct record *rec, rd_kafka_resp_err_t err)
{
	const char *name, *value, *pbx = "", *id = "?";
	size_t pos = 0, len = rec->value_len;
	struct record dl;

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
		record_clear(rec);
		return false;
	}
	if (size_refusal(err) && len > KSINK_DL_SMALL)
		len = KSINK_DL_SMALL;
	if (norm_dead_letter(pbx, rd_kafka_err2name(err),
	    (const unsigned char *)rec->value, len, len < rec->value_len,
	    rec->received_us, &dl) != 0 ||
	    (dl.topic = strdup(ks->cfg->kafka.dead_letter_topic)) == NULL) {
		record_clear(&dl);
		/* Without memory keep the original: it is retried. */
		log_err("kafka: out of memory building a dead letter");
		return true;
	}
	log_err("kafka: %s refused record %s for good (%s): sent to %s",
	    rec->topic, id, rd_kafka_err2str(err), dl.topic);
	ks->stats.dead_lettered++;
	record_clear(rec);
	*rec = dl;
	return true;
}

/* Drain the FIFO into librdkafka as far as it accepts. */
static void
drain(struct ksink *ks)
{
	rd_kafka_resp_err_t err;

	while (ks->head != NULL && !ks->rebuilding) {
		struct record *rec = &ks->head->rec;

		err = produce_one(ks, rec);
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return;
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			pend_pop(ks);
			continue;
		}
		if (refused_for_good(err)) {
			if (!handle_refusal(ks, rec, err))
				pend_pop(ks);
			continue;	/* as a dead letter, or the next */
		}
		/* Unknown topic, fatal state…: keep it, try on the next tick. */
		log_failure(ks, rec->topic, err, "kept for retry");
		return;
	}
	if (ks->head == NULL)
		set_pressure(ks, false);
}

int
ksink_produce(struct ksink *ks, const struct record *rec)
{
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
	bool direct = ks->head == NULL && !ks->rebuilding;
	struct record copy;

	/* FIFO first: what waits there is older and must go first. */
	if (direct && (err = produce_one(ks, rec)) == RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	if (record_copy(&copy, rec) != 0) {
		log_err("kafka: out of memory queueing a record for %s: "
		    "record lost", rec->topic);
		return W2K_ENOMEM;
	}
	if (direct && refused_for_good(err)) {
		if (!handle_refusal(ks, &copy, err))
			return 0;
		if (produce_one(ks, &copy) == RD_KAFKA_RESP_ERR_NO_ERROR) {
			record_clear(&copy);
			return 0;
		}
	}
	if (pend_push(ks, &copy) != 0) {
		record_clear(&copy);
		log_err("kafka: out of memory queueing a record for %s: "
		    "record lost", rec->topic);
		return W2K_ENOMEM;
	}
	return W2K_EAGAIN;
}

/* ---- callbacks (all on the loop thread, from rd_kafka_poll) ------------ */

/* Rebuild a struct record from a failed message, to produce it again. */
static int
record_from_msg(struct record *rec, const rd_kafka_message_t *rkm)
{
	rd_kafka_headers_t *hdrs = NULL;
	const char *topic = rd_kafka_topic_name(rkm->rkt);
	const void *value;
	const char *name;
	size_t size, i = 0;

	memset(rec, 0, sizeof(*rec));
	rec->received_us = (int64_t)(intptr_t)rkm->_private;
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

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
	struct ksink *ks = opaque;
	struct record rec;

	(void)rk;
	if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		ks->stats.produced++;
		ks->stats.up = true;
		count_topic(ks, rd_kafka_topic_name(rkm->rkt));
		histo_observe(&ks->stats.latency,
		    (double)(w2k_now_us() - (int64_t)(intptr_t)rkm->_private)
		    / 1e6);
		return;
	}
	ks->stats.failed[classify_failure(rkm->err)]++;
	if (record_from_msg(&rec, rkm) != 0) {
		log_err("kafka: out of memory re-queueing a failed record for "
		    "%s: record lost", rd_kafka_topic_name(rkm->rkt));
		return;
	}
	if (refused_for_good(rkm->err)) {
		if (!handle_refusal(ks, &rec, rkm->err))
			return;
	} else {
		log_failure(ks, rec.topic, rkm->err, "producing again");
		ks->stats.retried++;
	}
	if (pend_push(ks, &rec) != 0) {
		log_err("kafka: out of memory re-queueing a failed record");
		record_clear(&rec);
	}
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

static int
producer_new(struct ksink *ks)
{
	const struct cfg_kafka *kc = &ks->cfg->kafka;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512];
	int r = 0;

	/*
	 * Defaults first, the user's properties after them (they win).
	 * message.timeout.ms=0: librdkafka retries for as long as it takes;
	 * a timeout would only hand the record back to us to produce again.
	 * The local queue is bounded well below librdkafka's 1 GiB default so
	 * memory stays small; beyond it, input pauses (backpressure).
	 */
	r |= conf_set(conf, "acks", "all");
	r |= conf_set(conf, "enable.idempotence", "true");
	r |= conf_set(conf, "message.timeout.ms", "0");
	r |= conf_set(conf, "queue.buffering.max.kbytes", "65536");
	r |= conf_set(conf, "log.queue", "true");
	r |= conf_set(conf, "client.id", "wsi2kafka");
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
	ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (ks->rk == NULL) {
		log_err("kafka: cannot create the producer: %s", errstr);
		rd_kafka_conf_destroy(conf);	/* not taken on failure */
		return W2K_EINVAL;
	}
	/* conf is owned by rk now. Logs go to the main queue we poll. */
	rd_kafka_set_log_queue(ks->rk, NULL);
	return 0;
}

/*
 * Purge what librdkafka still holds and serve the delivery reports of the
 * purge: they fail with __PURGE_QUEUE/__PURGE_INFLIGHT, and dr_msg_cb puts
 * each back in our FIFO. Then destroy.
 */
static void
producer_destroy(struct ksink *ks)
{
	if (ks->rk == NULL)
		return;
	rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE |
	    RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(ks->rk, 0);
	rd_kafka_flush(ks->rk, 100);	/* serves the purge reports */
	rd_kafka_destroy(ks->rk);
	ks->rk = NULL;
}

static void
ksink_rebuild_cb(lws_sorted_usec_list_t *sul)
{
	struct ksink *ks = lws_container_of(sul, struct ksink, sul_rebuild);

	producer_destroy(ks);
	if (producer_new(ks) != 0) {
		/* Same configuration worked before: try again in a second. */
		lws_sul_schedule(ks->env->context, 0, &ks->sul_rebuild,
		    ksink_rebuild_cb, 1000 * 1000);
		return;
	}
	ks->rebuilding = false;
	ks->stats.rebuilds++;
	log_notice("kafka: producer rebuilt; %" PRIu64 " record%s to "
	    "produce again", ks->stats.pending,
	    ks->stats.pending == 1 ? "" : "s");
	drain(ks);
}

static void
ksink_poll_cb(lws_sorted_usec_list_t *sul)
{
	struct ksink *ks = lws_container_of(sul, struct ksink, sul_poll);

	if (ks->rk != NULL)
		rd_kafka_poll(ks->rk, 0);
	drain(ks);
	lws_sul_schedule(ks->env->context, 0, &ks->sul_poll, ksink_poll_cb,
	    KSINK_POLL_US);
}

/* The topics deliveries are counted under: every route's, the dead-letter
 * topic, each once; the slot after them counts anything else. */
static void
topics_init(struct ksink *ks)
{
	const struct cfg_kafka *kc = &ks->cfg->kafka;
	struct ksink_stats *st = &ks->stats;

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
	topics_init(ks);
	if ((r = producer_new(ks)) != 0) {
		free(ks);
		return r;
	}
	lws_sul_schedule(env->context, 0, &ks->sul_poll, ksink_poll_cb,
	    KSINK_POLL_US);
	*ksp = ks;
	return 0;
}

uint64_t
ksink_flush(struct ksink *ks, int timeout_ms)
{
	int64_t deadline = w2k_mono_us() + (int64_t)timeout_ms * 1000;
	uint64_t left;

	lws_sul_cancel(&ks->sul_poll);
	lws_sul_cancel(&ks->sul_rebuild);
	if (ks->rebuilding && ks->rk != NULL) {
		producer_destroy(ks);
		if (producer_new(ks) == 0)
			ks->rebuilding = false;
	}
	while (ks->rk != NULL && w2k_mono_us() < deadline) {
		drain(ks);
		if (ks->head == NULL && rd_kafka_outq_len(ks->rk) == 0)
			break;
		rd_kafka_poll(ks->rk, 50);
	}
	left = ks->stats.pending + (ks->rk ? (uint64_t)rd_kafka_outq_len(ks->rk)
	    : 0);
	if (left > 0)
		log_err("kafka: %" PRIu64 " record%s not delivered within "
		    "%d ms", left, left == 1 ? "" : "s", timeout_ms);
	return left;
}

void
ksink_free(struct ksink *ks)
{
	if (ks == NULL)
		return;
	lws_sul_cancel(&ks->sul_poll);
	lws_sul_cancel(&ks->sul_rebuild);
	producer_destroy(ks);
	while (ks->head != NULL)
		pend_pop(ks);
	free(ks);
}

const struct ksink_stats *
ksink_get_stats(const struct ksink *ks)
{
	return &ks->stats;
}
