/*
 * spool.h — the durable spool (contract §7). Being written (issue #3); the
 * statistics below are the part other modules (metrics, STATUS=) read.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stdint.h>

struct spool;

struct spool_stats {
	uint64_t	records;	/* unacknowledged records on disk */
	uint64_t	bytes;		/* bytes the spool uses on disk */
	int64_t		oldest_us;	/* receipt time (µs since the epoch) of
					   the oldest unacknowledged record;
					   0 when there is none */
	uint64_t	dropped;	/* records dropped by on_full, ever */
};

/** @returns the spool's statistics, valid until the next spool call. */
const struct spool_stats *spool_get_stats(const struct spool *sp);

#endif
