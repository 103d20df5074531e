/*
 * spool_bench — what the spool costs in throughput (README "Spool").
 * A benchmark, not a test: it prints numbers and asserts nothing.
 *
 *   spool_bench [DIR [RECORDS [VALUE_BYTES]]]
 *
 * DIR (default ./spool-bench) is emptied and reused; put it on the disk
 * the daemon's spool would live on, since fsync costs are the disk's.
 * For each spool.fsync mode it measures, on records shaped like the
 * daemon's (a CloudEvents header set, a key, a JSON value of VALUE_BYTES,
 * default 600):
 *   - the producer path as the daemon drives it: append, then next + sent
 *     + ack (librdkafka's part left out), with spool_tick() run as the
 *     group-commit timer would;
 *   - replay at start-up: spool_open() of a full backlog (the scan checks
 *     every checksum) and streaming it back out.
 */
#include "log.h"
#include "record.h"
#include "spool.h"
#include "w2k.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir = "spool-bench";

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
wipe(void)
{
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
mkrec(struct record *rec, unsigned i, size_t vlen)
{
	char buf[64];

	memset(rec, 0, sizeof(*rec));
	rec->topic = strdup("portsip.calls");
	rec->type = strdup("call_start");
	snprintf(buf, sizeof(buf), "883611252155219968:%u", 885337248 + i);
	rec->key = strdup(buf);
	rec->key_len = strlen(buf);
	snprintf(rec->id, sizeof(rec->id), "%032x", i);
	record_hdr_add(rec, "ce_specversion", "1.0");
	record_hdr_add(rec, "ce_id", rec->id);
	record_hdr_add(rec, "ce_source", "wsi2kafka://hq");
	record_hdr_add(rec, "ce_type", "com.portsip.wsi.call_start");
	record_hdr_add(rec, "ce_time", "2026-11-26T08:00:00Z");
	record_hdr_add(rec, "content-type", "application/json");
	rec->value = malloc(vlen);
	memset(rec->value, 'x', vlen);
	rec->value[0] = '{';
	rec->value[vlen - 1] = '}';
	rec->value_len = vlen;
	rec->received_us = w2k_now_us();
}

static double
secs(int64_t from)
{
	return (double)(w2k_mono_us() - from) / 1e6;
}

static void
report(const char *what, unsigned n, size_t bytes, double s)
{
	printf("  %-44s %9.0f records/s %8.1f MB/s  (%u in %.2f s)\n", what,
	    n / s, bytes / s / 1e6, n, s);
}

/* The daemon's producer path: append, hand out, acknowledge. */
static void
bench_cycle(const char *name, enum cfg_fsync mode, unsigned n, size_t vlen)
{
	struct cfg_spool cs = { .dir = (char *)dir, .max_bytes = UINT64_C(8) << 30,
	    .fsync = mode, .fsync_interval_ms = 20, .on_full = CFG_DROP_OLDEST };
	const struct record *out;
	struct record rec;
	struct spool *sp;
	uint64_t seq, s2;
	size_t bytes;
	int64_t t0;
	char what[64];

	wipe();
	if (spool_open(&cs, &sp) != 0)
		exit(1);
	mkrec(&rec, 0, vlen);
	bytes = spool_rec_len(&rec);
	t0 = w2k_mono_us();
	for (unsigned i = 0; i < n; i++) {
		snprintf(rec.id, sizeof(rec.id), "%032x", i);
		if (spool_append(sp, &rec, &seq) != 0)
			exit(1);
		if (spool_next(sp, &out, &s2) != 0 || spool_sent(sp, s2) != 0 ||
		    spool_ack(sp, s2, NULL) != 0)
			exit(1);
		if ((i & 63) == 0)
			spool_tick(sp);	/* the group-commit timer */
	}
	spool_close(sp);
	snprintf(what, sizeof(what), "fsync=%s: append+next+ack", name);
	report(what, n, bytes * n, secs(t0));
	record_clear(&rec);
}

/* A backlog of n records: scan at spool_open(), then stream it out. */
static void
bench_replay(unsigned n, size_t vlen)
{
	struct cfg_spool cs = { .dir = (char *)dir, .max_bytes = UINT64_C(8) << 30,
	    .fsync = CFG_FSYNC_NEVER, .fsync_interval_ms = 20,
	    .on_full = CFG_DROP_OLDEST };
	const struct record *out;
	struct record rec;
	struct spool *sp;
	uint64_t seq, bytes;
	unsigned got = 0;
	int64_t t0;

	wipe();
	if (spool_open(&cs, &sp) != 0)
		exit(1);
	mkrec(&rec, 0, vlen);
	for (unsigned i = 0; i < n; i++)
		if (spool_append(sp, &rec, &seq) != 0)
			exit(1);
	record_clear(&rec);
	spool_close(sp);
	sync();
	t0 = w2k_mono_us();
	if (spool_open(&cs, &sp) != 0)
		exit(1);
	bytes = spool_get_stats(sp)->bytes;
	report("start-up scan of the backlog (spool_open)", n, bytes, secs(t0));
	t0 = w2k_mono_us();
	while (spool_next(sp, &out, &seq) == 0) {
		spool_sent(sp, seq);
		spool_ack(sp, seq, NULL);
		got++;
	}
	report("replay of the backlog (next+sent+ack)", got, bytes, secs(t0));
	spool_close(sp);
}

int
main(int argc, char **argv)
{
	unsigned n = 200000;
	size_t vlen = 600;
	struct record rec;

	if (argc > 1)
		dir = argv[1];
	if (argc > 2)
		n = (unsigned)strtoul(argv[2], NULL, 10);
	if (argc > 3)
		vlen = strtoul(argv[3], NULL, 10);
	if (n == 0 || vlen < 2) {
		fprintf(stderr, "usage: spool_bench [DIR [RECORDS [VALUE_BYTES]]]\n");
		return 64;
	}
	log_init(LOG_LVL_WARN);
	mkrec(&rec, 0, vlen);
	printf("spool_bench: %u records of %zu bytes on disk (value %zu), in %s\n",
	    n, spool_rec_len(&rec), vlen, dir);
	record_clear(&rec);
	bench_cycle("never", CFG_FSYNC_NEVER, n, vlen);
	bench_cycle("batch", CFG_FSYNC_BATCH, n, vlen);
	/* One fdatasync per record: fewer records, or it takes minutes. */
	bench_cycle("always", CFG_FSYNC_ALWAYS, n / 50 > 0 ? n / 50 : 1, vlen);
	bench_replay(n, vlen);
	wipe();
	return 0;
}
