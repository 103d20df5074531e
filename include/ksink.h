/*
 * ksink.h — the Kafka producer (contract §7, style.md §14).
 *
 * One librdkafka producer for the whole daemon, served from the lws event
 * loop: a timer polls it (delivery reports, errors and librdkafka's own log
 * lines all arrive on the loop thread), so nothing here needs a lock.
 * Records are copied into librdkafka (RD_KAFKA_MSG_F_COPY); a record counts
 * as delivered only when its delivery report says so.
 *
 * What is not yet accepted by librdkafka (its local queue is full, or a
 * delivery failed and must be produced again, or the producer is being
 * rebuilt after a fatal error) waits in an in-memory FIFO, and the pressure
 * callback asks the PBX sessions to stop reading until it drains: a full
 * queue is backpressure, never a sleep and never a drop.
 */
#ifndef KSINK_H
#define KSINK_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "cfg.h"
#include "histo.h"
#include "record.h"

struct ksink;

/** Called with high = true when input should pause, false when it may go on. */
typedef void ksink_pressure_fn(void *ctx, bool high);

struct ksink_env {
	struct lws_context	*context;	/* borrowed: timers */
	ksink_pressure_fn	*pressure;	/* may be NULL */
	void			*pressure_ctx;
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

/* Successful deliveries per topic: the configured topics only. */
#define KSINK_MAX_TOPICS	64

struct ksink_stats {
	uint64_t	produced;	/* delivery reports with success */
	uint64_t	failed[KSINK_FAIL_COUNT];	/* failed reports */
	const char	*topic_name[KSINK_MAX_TOPICS];	/* borrowed from cfg */
	uint64_t	topic_produced[KSINK_MAX_TOPICS];
	unsigned	ntopics;	/* + one more slot: "other" */
	struct histo	latency;	/* frame receipt → broker ack */
	uint64_t	retried;	/* failed deliveries produced again */
	uint64_t	dead_lettered;	/* refused for good → dead-letter topic */
	uint64_t	dropped;	/* dead letters refused for good: lost */
	uint64_t	rebuilds;	/* producers rebuilt after fatal errors */
	uint64_t	pending;	/* waiting in our FIFO now */
	bool		up;		/* a broker answered lately */
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
 * @brief Produce one record.
 * @param rec borrowed; copied before return. rec->topic must be set.
 * @returns 0 (handed to librdkafka) or W2K_EAGAIN (kept in our FIFO; the
 *          pressure callback has been told). Never drops.
 */
int ksink_produce(struct ksink *ks, const struct record *rec);

/**
 * @brief Shutdown: deliver what is queued for at most timeout_ms, serving
 *        delivery reports (this blocks the loop; call it once sessions are
 *        closed), then purge what is left.
 * @returns the number of records that were not delivered.
 */
uint64_t ksink_flush(struct ksink *ks, int timeout_ms);

/** @brief Destroy the producer. NULL is a no-op. */
void ksink_free(struct ksink *ks);

const struct ksink_stats *ksink_get_stats(const struct ksink *ks);

/** @returns the label for a failure reason. */
const char *ksink_fail_name(enum ksink_fail why);

#endif
