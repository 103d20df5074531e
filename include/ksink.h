/*
 * ksink.h — the Kafka producer (contract §7, style.md §14).
 *
 * One librdkafka producer for the whole daemon, served from the lws event
 * loop: a timer polls it (delivery reports, errors and librdkafka's own log
 * lines all arrive on the loop thread), so nothing here needs a lock.
 *
 * Every record goes into the spool (spool.h) first and is produced from
 * there; it leaves the spool only when its delivery report says it was
 * delivered. What librdkafka does not take yet (its local queue is full,
 * a delivery failed, the producer is being rebuilt after a fatal error)
 * simply waits in the spool: input from the PBXs is never paused, and
 * when the spool is full its on_full policy applies.
 */
#ifndef KSINK_H
#define KSINK_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <librdkafka/rdkafka.h>

#include "cfg.h"
#include "histo.h"
#include "record.h"
#include "spool.h"

struct ksink;

struct timers;

struct ksink_env {
	struct lws_context	*context;	/* borrowed: wake-ups, a timer */
	struct timers		*timers;	/* borrowed: the poll tick and
						   the group commit */
	struct spool		*spool;		/* borrowed: must outlive the
						   sink; closed after it */
};

/* Why a delivery failed: a fixed set (metric labels). */
enum ksink_fail {
	KSINK_FAIL_TIMEOUT,	/* timed out (produced again) */
	KSINK_FAIL_TRANSPORT,	/* broker down, network (produced again) */
	KSINK_FAIL_PURGED,	/* purged at shutdown / rebuild (again) */
	KSINK_FAIL_REFUSED,	/* refused for good (dead-lettered) */
	KSINK_FAIL_OTHER,	/* any other error (produced again) */
	KSINK_FAIL_COUNT
};

/*
 * Why a topic refuses records for a cause the operator can fix (contract
 * §7): a fixed set (metric labels). Its records wait in the spool and are
 * produced again with backoff; they never become dead letters.
 */
enum ksink_refusal {
	KSINK_REF_TOPIC_AUTH,	/* TOPIC_AUTHORIZATION_FAILED: a missing ACL */
	KSINK_REF_CLUSTER_AUTH,	/* CLUSTER_AUTHORIZATION_FAILED (e.g. the
				   IdempotentWrite ACL) */
	KSINK_REF_SASL_AUTH,	/* SASL_AUTHENTICATION_FAILED, __AUTHENTICATION */
	KSINK_REF_UNKNOWN_TOPIC, /* UNKNOWN_TOPIC_OR_PART, __UNKNOWN_TOPIC,
				   __UNKNOWN_PARTITION: missing topic with
				   auto-creation off */
	KSINK_REF_INVALID_TOPIC, /* TOPIC_EXCEPTION: an invalid topic name */
	KSINK_REF_COUNT
};

/*
 * One topic that refused records at least once (they are created on the
 * first refusal and kept: counters never go back). Names are owned by the
 * sink and stay valid until ksink_free().
 */
struct ksink_topic_refusals {
	const char	*topic;
	uint64_t	 count[KSINK_REF_COUNT];	/* refusals, by reason */
	bool		 refused;	/* refusing now: its last attempt was
					   refused, no success since */
	enum ksink_refusal reason;	/* the last refusal's, when refused */
	uint64_t	 waiting;	/* records set aside until its next
					   retry (they stay in the spool) */
};

/* Successful deliveries per topic: the configured topics only. */
#define KSINK_MAX_TOPICS	64

/*
 * librdkafka's own view, from its statistics callback (every
 * statistics.interval.ms, 5 s unless kafka.properties says otherwise).
 * Brokers are the cluster's (learned from metadata) and the configured
 * bootstrap ones, at most KSINK_MAX_BROKERS: a bounded metric label.
 */
#define KSINK_MAX_BROKERS	32

struct ksink_rkstats {
	int64_t		at_us;		/* when they arrived (epoch µs); 0 never */
	uint64_t	msgs;		/* msg_cnt: records in librdkafka's queues */
	uint64_t	bytes;		/* msg_size: their bytes */
	unsigned	nbrokers;
	struct {
		char	name[128];	/* librdkafka's "host:port/id" */
		bool	up;		/* state "UP" */
	} broker[KSINK_MAX_BROKERS];
};

struct ksink_stats {
	uint64_t	produced;	/* delivery reports with success */
	uint64_t	failed[KSINK_FAIL_COUNT];	/* failed reports */
	const char	*topic_name[KSINK_MAX_TOPICS];	/* borrowed from cfg */
	uint64_t	topic_produced[KSINK_MAX_TOPICS];
	unsigned	ntopics;	/* + one more slot: "other" */
	struct histo	latency;	/* frame receipt → broker ack */
	struct histo	ack_latency;	/* rd_kafka_producev() → broker ack:
					   librdkafka's batching and the
					   brokers, the part not ours */
	uint64_t	retried;	/* failed deliveries produced again */
	uint64_t	dead_lettered;	/* refused for good → dead-letter topic */
	uint64_t	dropped;	/* lost: dead letters refused for good,
					   and records neither spooled nor
					   accepted by librdkafka */
	uint64_t	rebuilds;	/* producers rebuilt after fatal errors */
	uint64_t	pending;	/* in the spool, not yet handed to
					   librdkafka (refreshed every tick) */
	uint64_t	unspooled;	/* produced without the spool, which
					   could not be written */
	bool		up;		/* a broker answered lately */
	/* Topics that refused records (contract §7, §8): an array owned by
	 * the sink, valid until its next call; nrefusals entries. */
	const struct ksink_topic_refusals *refusals;
	unsigned	nrefusals;
	unsigned	nrefused;	/* of those, refusing now (/readyz) */
	struct ksink_rkstats rk;	/* librdkafka's statistics */
};

/**
 * @brief Create the producer: acks=all and enable.idempotence=true first,
 *        then the user's kafka.properties (they win), then bootstrap.servers.
 * @param cfg borrowed; must outlive the sink (the live configuration).
 * @param env borrowed; must outlive the sink.
 * @param ksp out: owned by the caller (ksink_free()).
 * @returns 0, W2K_EINVAL (librdkafka refused the configuration; logged),
 *          W2K_ENOMEM.
 */
int ksink_new(const struct cfg *cfg, const struct ksink_env *env,
    struct ksink **ksp);

/**
 * @brief Follow a reloaded configuration (SIGHUP). The topics counted in
 *        the statistics and the dead-letter topic follow at once; when
 *        kafka.brokers or kafka.properties changed, a new producer
 *        replaces the old one, and what the old one held goes back to the
 *        spool to be produced again (duplicates possible, nothing lost).
 * @param cfg borrowed; becomes the sink's live configuration and must
 *        outlive it (or the next reconfigure). The old one must stay valid
 *        until this returns.
 * @returns 0, or W2K_EINVAL when librdkafka refuses the new settings
 *          (logged): then nothing changed.
 */
int ksink_reconfigure(struct ksink *ks, const struct cfg *cfg);

/**
 * @brief Produce one record: append it to the spool, then hand the spool's
 *        next records to librdkafka as far as it takes them.
 * @param rec borrowed; copied before return. rec->topic must be set.
 * @returns 0 (spooled; or, when the spool cannot be written, handed to
 *          librdkafka directly), W2K_EFULL (the spool's on_full policy
 *          dropped it: counted and logged), W2K_EIO (neither spooled nor
 *          accepted: logged, counted in stats.dropped).
 */
int ksink_produce(struct ksink *ks, const struct record *rec);

/**
 * @brief Shutdown: deliver what the spool holds for at most timeout_ms,
 *        serving delivery reports (this blocks the loop; call it once the
 *        sessions are closed). What is not delivered stays in the spool.
 * @returns the number of records left undelivered (kept in the spool).
 */
uint64_t ksink_flush(struct ksink *ks, int timeout_ms);

/**
 * @brief Call after every lws_service() turn. Serves what librdkafka has
 *        for us (delivery reports, errors, logs) if it said it has any:
 *        it wakes the loop with lws_cancel_service() when its queue stops
 *        being empty, so reports are served at once rather than at the
 *        next poll tick. Then writes the records this turn appended to
 *        the spool file (spool_flush()), so they survive a crash of this
 *        process before the loop waits again. NULL is a no-op.
 */
void ksink_service(struct ksink *ks);

/**
 * @brief Destroy the producer: what librdkafka still holds is purged and
 *        stays in the spool (spool_close() comes after). NULL is a no-op.
 */
void ksink_free(struct ksink *ks);

const struct ksink_stats *ksink_get_stats(const struct ksink *ks);

/** @returns the label for a failure reason. */
const char *ksink_fail_name(enum ksink_fail why);

/** @returns the label for a refusal reason ("topic_authorization_failed",
 *  "cluster_authorization_failed", "sasl_authentication_failed",
 *  "unknown_topic", "invalid_topic"), "?" for anything else. */
const char *ksink_refusal_name(enum ksink_refusal why);

/**
 * @brief librdkafka's message.max.bytes for this configuration: the
 *        operator's kafka.properties value when set, else what the largest
 *        frame any PBX may send (pbx.max_frame) can become as a record:
 *        max_frame + max_frame/4 (normalization: ids become strings) +
 *        64 KiB (the envelope and headers), at least librdkafka's default
 *        of 1,000,000 bytes. Pure: for the unit tests too.
 * @returns bytes, or 0 when the operator's value is not a number (then
 *          librdkafka's own check reports it).
 */
uint64_t ksink_message_max_bytes(const struct cfg *cfg);

/**
 * @brief The producer's librdkafka configuration, as the daemon connects
 *        with it: the defaults of contract §4 (acks=all, idempotence, the
 *        murmur2_random partitioner, ...), then kafka.properties (they
 *        win; secrets from files are among them), then bootstrap.servers.
 *        No callbacks are set. The producer and --check-kafka (kcheck.h)
 *        both build theirs here, so the check connects as the daemon does.
 * @param cfg borrowed.
 * @param confp out: owned by the caller, who hands it to rd_kafka_new()
 *        or rd_kafka_conf_destroy()s it.
 * @returns 0, W2K_EINVAL (librdkafka refused a property; logged with its
 *          name), W2K_ENOMEM.
 */
int ksink_conf_new(const struct cfg *cfg, rd_kafka_conf_t **confp);

#endif
