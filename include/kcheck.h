/*
 * kcheck.h — `wsi2kafka --check-kafka`: connect to Kafka as the daemon
 * would and say, for every routed topic and the dead-letter topic, whether
 * records could go there.
 *
 * It uses the producer's own configuration (ksink_conf_new(): the same
 * brokers, TLS, SASL and secrets) but produces nothing: it asks for
 * metadata (never letting the broker auto-create a topic) and the
 * partitions' offsets from their leaders, and, where the librdkafka in use
 * can (2.3 and later: DescribeTopics with authorized operations), whether
 * the principal may WRITE. It blocks; it runs before and instead of the
 * daemon, never inside the event loop.
 */
#ifndef KCHECK_H
#define KCHECK_H

#include <stdio.h>

#include "cfg.h"

/* Bounds of the check's waits, in milliseconds. */
#define KCHECK_CONNECT_MS	15000	/* first connection and authentication */
#define KCHECK_REQUEST_MS	10000	/* each later request */

/**
 * @brief Check Kafka for cfg: connection, TLS and SASL, then each topic
 *        of kafka.routes (once each, in order) and kafka.dead_letter_topic:
 *        exists and its partition count, its leaders reachable, WRITE
 *        authorization (or "not checked"). One line per finding on out,
 *        a last line with the number of problems. Secrets are never
 *        printed. Writes nothing to any topic.
 * @param cfg borrowed, checked (cfg_check()).
 * @param out borrowed: where the report goes (stdout).
 * @returns the number of problems (0: all well), or W2K_EINVAL when
 *          librdkafka refused the configuration, W2K_ENOMEM (logged).
 * @remark Blocks for up to KCHECK_CONNECT_MS plus KCHECK_REQUEST_MS per
 *         request. Single-threaded use only.
 */
int kcheck_run(const struct cfg *cfg, FILE *out);

#endif
