/*
 * histo.c — fixed-bucket histogram: a linear scan over the 25 bounds is
 * cheaper than anything cleverer at this size (most deliveries end it in
 * the first dozen).
 */
#include "histo.h"

static const double bounds[] = HISTO_BOUNDS;

_Static_assert(sizeof(bounds) / sizeof(bounds[0]) == HISTO_NBUCKETS,
    "HISTO_BOUNDS and HISTO_NBUCKETS disagree");

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
