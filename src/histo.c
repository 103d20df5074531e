/*
 * histo.c — fixed-bucket histogram: a linear scan over 15 bounds is
 * cheaper than anything cleverer at this size.
 */
#include "histo.h"

static const double bounds[HISTO_NBUCKETS] = HISTO_BOUNDS;

void
histo_observe(struct histo *h, double seconds)
{
	unsigned i = 0;

	if (seconds < 0)
		seconds = 0;
	while (i < HISTO_NBUCKETS && seconds > bounds[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum += seconds;
}

double
histo_bound(unsigned i)
{
	return i < HISTO_NBUCKETS ? bounds[i] : 0;
}
