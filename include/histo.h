/*
 * histo.h — a fixed-bucket latency histogram (Prometheus-style cumulative
 * buckets are computed when rendering). Pure; the owner observes, a
 * renderer reads.
 */
#ifndef HISTO_H
#define HISTO_H

#include <stdint.h>

/*
 * Upper bounds in seconds, 100 µs to 60 s, +Inf implied (issues #5, #6).
 * Roughly log-spaced, finer from 0.5 ms to 15 ms where a healthy daemon's
 * deliveries fall, so that p99 ≤ 10 ms can be told apart (10 ms is itself a
 * bound); every bound of the first layout (1 ms ... 60 s) is kept, so
 * queries on le="0.001", "0.005", "1", "60" ... keep their meaning.
 */
#define HISTO_BOUNDS { 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, \
	0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.025, \
	0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0 }
#define HISTO_NBUCKETS 25

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
