/*
 * histo.h — a fixed-bucket latency histogram (Prometheus-style cumulative
 * buckets are computed when rendering). Pure; the owner observes, a
 * renderer reads.
 */
#ifndef HISTO_H
#define HISTO_H

#include <stdint.h>

/* Upper bounds in seconds, 1 ms to 60 s (issue #5), +Inf implied. */
#define HISTO_BOUNDS { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, \
	0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0 }
#define HISTO_NBUCKETS 15

struct histo {
	uint64_t	bucket[HISTO_NBUCKETS + 1];	/* per bucket, last = +Inf;
							   not cumulative */
	uint64_t	count;
	double		sum;		/* seconds */
};

/** @brief Record one observation (seconds; negative counts as 0). */
void histo_observe(struct histo *h, double seconds);

/** @returns the upper bound of bucket i (< HISTO_NBUCKETS). */
double histo_bound(unsigned i);

#endif
