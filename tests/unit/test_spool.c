/*
 * test_spool.c — the spool: the record codec (round trips, every bit flip
 * and every truncation detected), and segment handling on real files in a
 * temporary directory: order, requeue and rewind, backlog/live fairness,
 * retirement by whole segments in order, on_full, torn tails, damaged
 * bytes in the middle, a missing segment, a damaged segment header, the
 * lock, and spool_check() reporting what spool_open() repairs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "record.h"
#include "spool.h"
#include "w2k.h"

/* ---- helpers ------------------------------------------------------------ */

struct fx {
	char		 dir[256];
	struct cfg_spool cs;
};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/w2k-spool.XXXXXX",
	    tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	fx->cs.dir = fx->dir;
	fx->cs.max_bytes = 64 << 20;
	fx->cs.fsync = CFG_FSYNC_BATCH;
	fx->cs.fsync_interval_ms = 20;
	fx->cs.on_full = CFG_DROP_OLDEST;
	*state = fx;
	return 0;
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	nftw(fx->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* A record like the normalizer's: id, key, CloudEvents headers, JSON. */
static void
mkrec(struct record *rec, unsigned i, size_t pad)
{
	char buf[64];

	memset(rec, 0, sizeof(*rec));
	rec->topic = strdup("portsip.calls");
	rec->type = strdup("call_start");
	snprintf(buf, sizeof(buf), "5:%u", i);
	rec->key = strdup(buf);
	rec->key_len = strlen(buf);
	snprintf(rec->id, sizeof(rec->id), "%032x", i);
	assert_int_equal(record_hdr_add(rec, "ce_id", rec->id), 0);
	assert_int_equal(record_hdr_add(rec, "content-type",
	    "application/json"), 0);
	rec->value = malloc(64 + pad);
	rec->value_len = (size_t)snprintf(rec->value, 64, "{\"n\":%u,\"p\":\"",
	    i);
	memset(rec->value + rec->value_len, 'x', pad);
	rec->value_len += pad;
	memcpy(rec->value + rec->value_len, "\"}", 2);
	rec->value_len += 2;
	rec->received_us = 1700000000000000LL + i;
}

static uint64_t
append(struct spool *sp, unsigned i, size_t pad)
{
	struct record rec;
	uint64_t seq = 0;

	mkrec(&rec, i, pad);
	assert_int_equal(spool_append(sp, &rec, &seq), 0);
	record_clear(&rec);
	return seq;
}

/* No descriptor left (at most 128 open, the rest used up): fds[] holds
 * those opened here; returns how many. fds_restore() undoes it. */
static int
fds_exhaust(struct rlimit *old, int *fds)
{
	struct rlimit low;
	int n = 0;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, old), 0);
	low = *old;
	low.rlim_cur = 128;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 256 && (fds[n] = open("/dev/null", O_RDONLY)) >= 0)
		n++;
	return n;
}

static void
fds_restore(const struct rlimit *old, int *fds, int n)
{
	while (n > 0)
		close(fds[--n]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, old), 0);
}

/* The record number (the "n" in the value) of the next record; takes it. */
static unsigned
take(struct spool *sp, uint64_t *seqp)
{
	const struct record *rec;
	unsigned n = 0;
	uint64_t seq;
	char v[32];

	assert_int_equal(spool_next(sp, &rec, &seq), 0);
	/* rec->value is not NUL-terminated: scan a terminated copy. */
	snprintf(v, sizeof(v), "%.*s", (int)rec->value_len, rec->value);
	assert_int_equal(sscanf(v, "{\"n\":%u", &n), 1);
	assert_int_equal(spool_sent(sp, seq), 0);
	if (seqp != NULL)
		*seqp = seq;
	return n;
}

static bool
nothing_next(struct spool *sp)
{
	const struct record *rec;
	uint64_t seq;

	return spool_next(sp, &rec, &seq) == W2K_EAGAIN;
}

/* Names of the segment files, oldest first; returns how many. */
static size_t
segments(const char *dir, char names[][32], size_t max)
{
	struct dirent **v;
	int n = scandir(dir, &v, NULL, alphasort);
	size_t k = 0;

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(v[i]->d_name);

		if (l > 4 && l < 32 && strcmp(v[i]->d_name + l - 4, ".seg") ==
		    0 && k < max)
			memcpy(names[k++], v[i]->d_name, l + 1);
		free(v[i]);
	}
	free(v);
	return k;
}

/*
 * Segment files once the spool's thread has removed the delivered ones
 * (it does so a moment after the acknowledgement): waits, bounded (5 s),
 * until there are no more than want.
 */
static size_t
segments_settled(const char *dir, char names[][32], size_t max, size_t want)
{
	size_t n;

	for (int i = 0; (n = segments(dir, names, max)) > want && i < 5000;
	    i++)
		usleep(1000);
	return n;
}

static off_t
file_size(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static size_t
corrupt_files(const char *dir)
{
	char path[512];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/corrupt", dir);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void
count_report(void *ctx, const char *msg)
{
	(void)msg;
	(*(unsigned *)ctx)++;
}

/* ---- codec --------------------------------------------------------------- */

static void
spool__crc32c__known_vector(void **state)
{
	(void)state;
	/* The check value of CRC-32C (RFC 3720, B.4), both implementations. */
	for (int hw = 0; hw < 2; hw++) {
#ifdef W2K_TESTING
		spool_crc32c_force(hw);
#endif
		assert_int_equal(spool_crc32c(0, "123456789", 9), 0xe3069283);
		assert_int_equal(spool_crc32c(spool_crc32c(0, "1234", 4),
		    "56789", 5), 0xe3069283);
		assert_int_equal(spool_crc32c(0, "", 0), 0);
	}
}

/* The instruction and the tables agree on every length and alignment
 * (spool_crc32c_force() exists in -DW2K_TESTING builds, as make check's). */
#ifdef W2K_TESTING
static void
spool__crc32c__hw_equals_sw(void **state)
{
	unsigned char buf[300];
	uint32_t a, b;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 131 + 7);
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 13) {
			spool_crc32c_force(0);
			a = spool_crc32c(0x12345678, buf + off, len);
			spool_crc32c_force(1);
			b = spool_crc32c(0x12345678, buf + off, len);
			assert_int_equal(a, b);
		}
}
#endif

static void
check_roundtrip(const struct record *rec, uint64_t seq)
{
	size_t len = spool_rec_len(rec);
	unsigned char *buf = malloc(len), *again = malloc(len);
	struct spool_rec out;

	assert_true(len >= SPOOL_REC_MIN_LEN);
	spool_rec_encode(rec, seq, buf);
	assert_int_equal(spool_rec_decode(buf, len, &out), SPOOL_DEC_OK);
	assert_int_equal(out.seq, seq);
	assert_int_equal(out.len, len);
	assert_string_equal(out.rec.topic, rec->topic);
	assert_string_equal(out.rec.type, rec->type ? rec->type : "");
	assert_string_equal(out.rec.id, rec->id);
	assert_int_equal(out.rec.received_us, rec->received_us);
	assert_int_equal(out.rec.dead, rec->dead);
	if (rec->key == NULL) {
		assert_null(out.rec.key);
	} else {
		assert_non_null(out.rec.key);
		assert_int_equal(out.rec.key_len, rec->key_len);
		assert_memory_equal(out.rec.key, rec->key, rec->key_len);
	}
	assert_int_equal(out.rec.hdrs_len, rec->hdrs_len);
	if (rec->hdrs_len > 0)
		assert_memory_equal(out.rec.hdrs, rec->hdrs, rec->hdrs_len);
	assert_int_equal(out.rec.value_len, rec->value_len);
	if (rec->value_len > 0)
		assert_memory_equal(out.rec.value, rec->value, rec->value_len);
	/* The decoded record encodes to the very same bytes. */
	assert_int_equal(spool_rec_len(&out.rec), len);
	spool_rec_encode(&out.rec, out.seq, again);
	assert_memory_equal(again, buf, len);
	free(buf);
	free(again);
}

static void
spool__codec__roundtrips(void **state)
{
	struct record rec;

	(void)state;
	mkrec(&rec, 7, 100);
	check_roundtrip(&rec, 1);
	check_roundtrip(&rec, UINT64_C(0x123456789abcdef));
	/* No key (null key), an empty key, no headers, empty value, dead. */
	free(rec.key);
	rec.key = NULL;
	rec.key_len = 0;
	check_roundtrip(&rec, 2);
	rec.key = strdup("");
	check_roundtrip(&rec, 3);
	free(rec.hdrs);
	rec.hdrs = NULL;
	rec.hdrs_len = 0;
	rec.value_len = 0;
	rec.dead = true;
	free(rec.type);
	rec.type = NULL;
	check_roundtrip(&rec, 4);
	record_clear(&rec);
}

/*
 * hdrs_ok() counts NULs a word at a time: against a byte count, over
 * random header blocks of every length and alignment, with bytes chosen to
 * stress the bit trick (NUL, 0x01, 0x7f, 0x80, 0xff, letters). The block
 * ends in a NUL, so only the parity decides. W2K_TEST_SEED replays.
 */
static void
spool__codec__header_nul_parity_matches_a_byte_count(void **state)
{
	static const unsigned char pick[] = { 0, 0, 0, 1, 0x7f, 0x80, 0xff, 'a' };
	const char *e = getenv("W2K_TEST_SEED");
	unsigned seed = e ? (unsigned)strtoul(e, NULL, 10) :
	    (unsigned)time(NULL);
	char buf[80 + 8];
	struct record rec;
	char *hdrs;
	size_t hl;

	(void)state;
	print_message("seed %u (W2K_TEST_SEED=%u replays)\n", seed, seed);
	srand(seed);
	mkrec(&rec, 1, 0);
	hdrs = rec.hdrs;
	hl = rec.hdrs_len;
	for (int round = 0; round < 20000; round++) {
		size_t off = (size_t)rand() % 8, len = 1 + (size_t)rand() % 80;
		unsigned nul = 1;

		for (size_t i = 0; i + 1 < len; i++) {
			buf[off + i] = (char)pick[rand() % sizeof(pick)];
			nul += buf[off + i] == '\0';
		}
		buf[off + len - 1] = '\0';
		rec.hdrs = buf + off;
		rec.hdrs_len = len;
		if ((nul % 2 == 0) != (spool_rec_len(&rec) > 0))
			fail_msg("seed %u round %d: %zu bytes at +%zu, %u NULs: "
			    "hdrs_ok() disagrees", seed, round, len, off, nul);
	}
	rec.hdrs = hdrs;
	rec.hdrs_len = hl;
	record_clear(&rec);
}

static void
spool__codec__rejects_what_cannot_be_encoded(void **state)
{
	struct record rec;
	char *topic;

	(void)state;
	mkrec(&rec, 1, 0);
	topic = rec.topic;
	rec.topic = NULL;
	assert_int_equal(spool_rec_len(&rec), 0);
	rec.topic = (char *)"";
	assert_int_equal(spool_rec_len(&rec), 0);
	rec.topic = topic;
	rec.hdrs_len--;		/* "name\0value" without its last NUL */
	assert_int_equal(spool_rec_len(&rec), 0);
	rec.hdrs_len++;
	assert_true(spool_rec_len(&rec) > 0);
	{
		/* The NULs are counted (hdrs_ok()): a name without its
		 * value, even with a NUL last, and an empty name. */
		char *hdrs = rec.hdrs;
		size_t hl = rec.hdrs_len;

		rec.hdrs = (char *)"a\0b\0c\0";
		rec.hdrs_len = 6;
		assert_int_equal(spool_rec_len(&rec), 0);
		rec.hdrs_len = 4;
		assert_true(spool_rec_len(&rec) > 0);
		rec.hdrs = (char *)"\0\0\0";
		rec.hdrs_len = 3;
		assert_int_equal(spool_rec_len(&rec), 0);
		rec.hdrs_len = 2;
		assert_true(spool_rec_len(&rec) > 0);
		rec.hdrs = hdrs;
		rec.hdrs_len = hl;
		/* Every NUL but the last one, in turn, made a byte: an odd
		 * count, whatever its place in a word. */
		for (size_t i = 0; i + 1 < hl; i++) {
			if (hdrs[i] != '\0')
				continue;
			hdrs[i] = 'x';
			assert_int_equal(spool_rec_len(&rec), 0);
			hdrs[i] = '\0';
		}
		assert_true(spool_rec_len(&rec) > 0);
	}
	record_clear(&rec);
}

static void
spool__codec__every_bit_flip__detected(void **state)
{
	struct record rec;
	struct spool_rec out;
	unsigned char *buf;
	size_t len;

	(void)state;
	mkrec(&rec, 42, 20);
	len = spool_rec_len(&rec);
	buf = malloc(len);
	spool_rec_encode(&rec, 99, buf);
	for (size_t bit = 0; bit < 8 * len; bit++) {
		enum spool_dec d;

		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		d = spool_rec_decode(buf, len, &out);
		/* A flipped length bit may ask for more bytes: never OK. */
		assert_true(d == SPOOL_DEC_BAD || d == SPOOL_DEC_SHORT);
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	assert_int_equal(spool_rec_decode(buf, len, &out), SPOOL_DEC_OK);
	free(buf);
	record_clear(&rec);
}

static void
spool__codec__every_truncation__short(void **state)
{
	struct record rec;
	struct spool_rec out;
	unsigned char *buf;
	size_t len;

	(void)state;
	mkrec(&rec, 3, 50);
	len = spool_rec_len(&rec);
	buf = malloc(len);
	spool_rec_encode(&rec, 5, buf);
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(spool_rec_decode(buf, n, &out),
		    SPOOL_DEC_SHORT);
		assert_true(out.len > n);
		assert_true(out.len <= len);
	}
	free(buf);
	record_clear(&rec);
}

/* ---- segments ------------------------------------------------------------ */

static void
spool__append_next_ack__in_order_and_retired(void **state)
{
	struct fx *fx = *state;
	struct spool *sp;
	uint64_t seqs[3], s;
	char names[8][32];
	int64_t us;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_true(nothing_next(sp));
	for (unsigned i = 0; i < 3; i++)
		seqs[i] = append(sp, i, 10);
	assert_int_equal(seqs[0], 1);
	assert_int_equal(spool_get_stats(sp)->records, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(take(sp, &s), i);
		assert_int_equal(s, seqs[i]);
	}
	assert_true(nothing_next(sp));
	assert_int_equal(spool_inflight(sp), 3);
	assert_int_equal(spool_received_us(sp, seqs[1]),
	    1700000000000000LL + 1);
	/* Acks in any order; an unknown or repeated one changes nothing. */
	assert_int_equal(spool_ack(sp, seqs[2], &us), 0);
	assert_int_equal(us, 1700000000000000LL + 2);
	assert_int_equal(spool_ack(sp, seqs[2], NULL), W2K_EINVAL);
	assert_int_equal(spool_ack(sp, 12345, NULL), W2K_EINVAL);
	assert_int_equal(spool_ack(sp, seqs[0], NULL), 0);
	assert_int_equal(spool_ack(sp, seqs[1], NULL), 0);
	assert_int_equal(spool_get_stats(sp)->records, 0);
	assert_int_equal(spool_inflight(sp), 0);
	assert_int_equal(segments(fx->dir, names, 8), 1);
	/* Everything delivered: closing retires the segment. */
	spool_close(sp);
	assert_int_equal(segments(fx->dir, names, 8), 0);
}

/*
 * Write-behind: appends reach the file at spool_flush() (or before any
 * read of the file), not one write each; a reader that needs bytes still
 * in memory gets them written first.
 */
static void
spool__write_behind__on_disk_after_flush_or_read(void **state)
{
	struct fx *fx = *state;
	struct spool_check_result res;
	char names[4][32];
	struct spool *sp;
	unsigned reports = 0;
	off_t before;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; i < 5; i++)
		append(sp, i, 40);
	assert_int_equal(segments(fx->dir, names, 4), 1);
	before = file_size(fx->dir, names[0]);
	assert_int_equal(spool_check(fx->dir, &res, count_report, &reports),
	    0);
	assert_int_equal(res.records, 0);	/* all five still in memory */
	assert_int_equal(spool_flush(sp), 0);
	assert_true(file_size(fx->dir, names[0]) > before);
	assert_int_equal(spool_check(fx->dir, &res, count_report, &reports),
	    0);
	assert_int_equal(res.records, 5);
	assert_int_equal(res.problems, 0);

	/* Taken without an explicit flush: the reader flushes first. */
	for (unsigned i = 5; i < 8; i++)
		append(sp, i, 40);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(take(sp, NULL), i);
	assert_true(nothing_next(sp));
	assert_int_equal(spool_check(fx->dir, &res, count_report, &reports),
	    0);
	assert_int_equal(res.records, 8);

	/* Closing writes what waits: all of it is there at the next open. */
	for (unsigned i = 8; i < 10; i++)
		append(sp, i, 40);
	spool_close(sp);
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(spool_get_stats(sp)->records, 10);
	spool_close(sp);
	assert_int_equal(reports, 0);
}

static void
spool__sent_without_next__refused(void **state)
{
	struct fx *fx = *state;
	const struct record *rec;
	struct spool *sp;
	uint64_t seq;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	append(sp, 0, 0);
	assert_int_equal(spool_next(sp, &rec, &seq), 0);
	assert_int_equal(spool_sent(sp, seq + 1), W2K_EINVAL);
	/* The same record again: nothing was taken. */
	assert_int_equal(spool_next(sp, &rec, &seq), 0);
	assert_int_equal(seq, 1);
	append(sp, 1, 0);	/* any other call ends the peek */
	assert_int_equal(spool_sent(sp, seq), W2K_EINVAL);
	spool_close(sp);
}

static void
spool__requeue_and_rewind__produced_again_first(void **state)
{
	struct fx *fx = *state;
	struct spool *sp;
	uint64_t s[6];

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; i < 6; i++)
		append(sp, i, 10);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(take(sp, &s[i]), i);
	spool_requeue(sp, s[1]);
	spool_requeue(sp, s[1]);	/* twice: no effect */
	spool_requeue(sp, 999);		/* unknown: ignored */
	assert_int_equal(spool_inflight(sp), 3);
	assert_int_equal(take(sp, NULL), 1);	/* before 4 */
	assert_int_equal(take(sp, &s[4]), 4);
	/* The producer is gone: 0 2 3 1 4 in flight → again, oldest first. */
	assert_int_equal(spool_ack(sp, s[2], NULL), 0);
	spool_rewind(sp);
	assert_int_equal(spool_inflight(sp), 0);
	assert_int_equal(take(sp, NULL), 0);
	assert_int_equal(take(sp, NULL), 1);
	assert_int_equal(take(sp, NULL), 3);
	assert_int_equal(take(sp, NULL), 4);
	assert_int_equal(take(sp, NULL), 5);
	assert_true(nothing_next(sp));
	assert_int_equal(spool_get_stats(sp)->records, 5);
	spool_close(sp);
}

static void
spool__reopen__backlog_replayed_in_order(void **state)
{
	struct fx *fx = *state;
	struct spool *sp;
	uint64_t s;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; i < 100; i++)
		append(sp, i, 30);
	/* 0..9 delivered, 10..19 in flight, the rest never taken. */
	for (unsigned i = 0; i < 20; i++) {
		assert_int_equal(take(sp, &s), i);
		if (i < 10)
			assert_int_equal(spool_ack(sp, s, NULL), 0);
	}
	spool_close(sp);
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	/* The segment was not all delivered: all of it comes back (the
	 * delivered ones are the allowed duplicates). */
	assert_int_equal(spool_get_stats(sp)->records, 100);
	assert_int_equal(spool_get_stats(sp)->oldest_us, 1700000000000000LL);
	for (unsigned i = 0; i < 100; i++) {
		assert_int_equal(take(sp, &s), i);
		assert_int_equal(s, i + 1);
		assert_int_equal(spool_ack(sp, s, NULL), 0);
	}
	assert_true(nothing_next(sp));
	/* New records continue the sequence. */
	assert_int_equal(append(sp, 100, 0), 101);
	spool_close(sp);
}

/*
 * Records are handed out in spooled order across a restart (contract §5:
 * one key's events reach their partition in order): the whole backlog
 * before any record of this run, whatever is appended while the backlog
 * is read, with records to produce again still first. Randomized: the
 * number of backlog records, how many live ones come in between takes and
 * when a record fails; SPOOL_SEED replays a seed.
 */
static void
spool__backlog_then_live__spooled_order(void **state)
{
	struct fx *fx = *state;
	const char *env = getenv("SPOOL_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) :
	    (unsigned)time(NULL);

	print_message("spool__backlog_then_live__spooled_order: SPOOL_SEED=%u\n",
	    seed);
	srand(seed);
	for (int round = 0; round < 20; round++) {
		struct spool *sp;
		unsigned nback = 1 + (unsigned)rand() % 40, live = 1000;
		unsigned nlive = 1 + (unsigned)rand() % 40;
		unsigned want = 0, got, total;
		uint64_t s;

		assert_int_equal(spool_open(&fx->cs, &sp), 0);
		for (unsigned i = 0; i < nback; i++)
			append(sp, i, (size_t)rand() % 50);
		spool_close(sp);
		assert_int_equal(spool_open(&fx->cs, &sp), 0);
		total = nback;
		while (want < total || live < 1000 + nlive) {
			unsigned k = (unsigned)rand() % 4;

			for (unsigned j = 0; j < k && live < 1000 + nlive;
			    j++, total++)
				append(sp, live++, 10);
			if (want == total)
				continue;
			got = take(sp, &s);
			/* the backlog's 0..nback-1, then 1000, 1001, ... */
			assert_int_equal(got, want < nback ? want :
			    1000 + (want - nback));
			if (rand() % 5 == 0) {	/* failed: again, first */
				spool_requeue(sp, s);
				assert_int_equal(take(sp, &s), got);
			}
			assert_int_equal(spool_ack(sp, s, NULL), 0);
			want++;
		}
		assert_true(nothing_next(sp));
		spool_close(sp);
	}
}

static void
spool__segments__retired_whole_and_in_order(void **state)
{
	struct fx *fx = *state;
	struct spool *sp;
	char names[64][32];
	uint64_t s[2000];
	size_t nseg, n = 0;

	fx->cs.max_bytes = 1 << 20;	/* 64 KiB segments */
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	while (segments(fx->dir, names, 64) < 4) {
		append(sp, (unsigned)n, 200);
		take(sp, &s[n]);
		n++;
	}
	nseg = segments(fx->dir, names, 64);
	assert_int_equal(nseg, 4);
	/* Everything but the first record of the first segment: nothing
	 * can go, segments are retired oldest first. */
	for (size_t i = 1; i < n; i++)
		assert_int_equal(spool_ack(sp, s[i], NULL), 0);
	assert_int_equal(segments(fx->dir, names, 64), 4);
	assert_int_equal(spool_get_stats(sp)->records, 1);
	assert_int_equal(spool_ack(sp, s[0], NULL), 0);
	/* The three sealed ones are gone; the one being written stays. */
	assert_int_equal(segments_settled(fx->dir, names, 64, 1), 1);
	assert_int_equal(spool_get_stats(sp)->records, 0);
	assert_true(spool_get_stats(sp)->bytes <= 64 * 1024);
	spool_close(sp);
	assert_int_equal(segments(fx->dir, names, 64), 0);
}

static void
spool__full_drop_oldest__bounded_and_counted(void **state)
{
	struct fx *fx = *state;
	struct spool *sp;
	uint64_t dropped;
	unsigned first;

	fx->cs.max_bytes = 1 << 20;
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; i < 6000; i++) {
		append(sp, i, 300);
		assert_true(spool_get_stats(sp)->bytes <= fx->cs.max_bytes);
	}
	dropped = spool_get_stats(sp)->dropped;
	assert_true(dropped > 0);
	assert_int_equal(spool_get_stats(sp)->records + dropped, 6000);
	/* What is left is the newest, in order. */
	first = take(sp, NULL);
	assert_int_equal(first, dropped);
	spool_close(sp);
}

static void
spool__full_drop_newest__refused_and_counted(void **state)
{
	struct fx *fx = *state;
	struct spool *sp;
	struct record rec;
	uint64_t seq, ok = 0, full = 0;

	fx->cs.max_bytes = 1 << 20;
	fx->cs.on_full = CFG_DROP_NEWEST;
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	/* Sizes vary (0..600 bytes of padding): once one record is refused,
	 * every later one is too, small or not, so the kept ones are the
	 * oldest without a hole. */
	for (unsigned i = 0; i < 6000; i++) {
		int r;

		mkrec(&rec, i, (size_t)(i * 7919 % 601));
		r = spool_append(sp, &rec, &seq);
		record_clear(&rec);
		assert_true(r == 0 || r == W2K_EFULL);
		if (r == 0) {
			assert_int_equal(full, 0);
			ok++;
		} else {
			full++;
		}
	}
	assert_true(full > 0);
	assert_int_equal(spool_get_stats(sp)->dropped, full);
	assert_int_equal(spool_get_stats(sp)->records, ok);
	assert_true(spool_get_stats(sp)->bytes <= fx->cs.max_bytes);
	assert_int_equal(take(sp, NULL), 0);	/* the oldest are kept */
	spool_close(sp);
}

static void
spool__torn_tail__truncated_and_set_aside(void **state)
{
	struct fx *fx = *state;
	struct spool_check_result res;
	char names[4][32], path[512];
	unsigned reports = 0;
	struct spool *sp;
	off_t size;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; i < 10; i++)
		append(sp, i, 50);
	spool_close(sp);
	assert_int_equal(segments(fx->dir, names, 4), 1);
	size = file_size(fx->dir, names[0]);
	snprintf(path, sizeof(path), "%s/%s", fx->dir, names[0]);
	assert_int_equal(truncate(path, size - 7), 0);	/* mid-record */

	assert_int_equal(spool_check(fx->dir, &res, count_report, &reports),
	    0);
	assert_int_equal(res.records, 9);
	assert_int_equal(res.problems, 1);
	assert_int_equal(reports, 1);
	assert_int_equal(file_size(fx->dir, names[0]), size - 7);  /* r/o */

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(spool_get_stats(sp)->records, 9);
	for (unsigned i = 0; i < 9; i++)
		assert_int_equal(take(sp, NULL), i);
	assert_true(nothing_next(sp));
	/* Cut at the last good record; the torn bytes copied aside. */
	assert_true(file_size(fx->dir, names[0]) < size - 7);
	assert_int_equal(corrupt_files(fx->dir), 1);
	spool_close(sp);

	reports = 0;
	assert_int_equal(spool_check(fx->dir, &res, count_report, &reports),
	    0);
	assert_int_equal(res.problems, 0);
	assert_int_equal(res.records, 9);
}

static void
flip(const char *dir, const char *name, off_t off)
{
	char path[512];
	unsigned char c;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void
spool__flipped_bits__bad_records_skipped_rest_kept(void **state)
{
	struct fx *fx = *state;
	struct spool_check_result res;
	char names[4][32];
	unsigned got[20], n = 0;
	struct spool *sp;
	off_t size, rec;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 10; i < 30; i++)	/* all of the same size */
		append(sp, i, 100);
	spool_close(sp);
	assert_int_equal(segments(fx->dir, names, 4), 1);
	size = file_size(fx->dir, names[0]);
	rec = (size - 32) / 20;
	flip(fx->dir, names[0], 32 + 5 * rec + rec / 2);	/* body of 5 */
	flip(fx->dir, names[0], 32 + 9 * rec + 5);	/* length of 9 */
	flip(fx->dir, names[0], 32 + 12 * rec + 9);	/* checksum of 12 */

	assert_int_equal(spool_check(fx->dir, &res, NULL, NULL), 0);
	assert_int_equal(res.records, 17);
	assert_int_equal(res.problems, 3);

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(spool_get_stats(sp)->records, 17);
	while (!nothing_next(sp))
		got[n++] = take(sp, NULL);
	assert_int_equal(n, 17);
	for (unsigned i = 0, k = 0; i < 20; i++)
		if (i != 5 && i != 9 && i != 12)
			assert_int_equal(got[k++], 10 + i);
	assert_int_equal(corrupt_files(fx->dir), 3);
	/* Nothing was truncated: the damage is in the middle. */
	assert_int_equal(file_size(fx->dir, names[0]), size);
	spool_close(sp);
	/* Found again at the next start, not copied again. */
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(spool_get_stats(sp)->records, 17);
	assert_int_equal(corrupt_files(fx->dir), 3);
	spool_close(sp);
}

static void
spool__damaged_segment_header__records_kept(void **state)
{
	struct fx *fx = *state;
	char names[4][32];
	struct spool *sp;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; i < 5; i++)
		append(sp, i, 10);
	spool_close(sp);
	assert_int_equal(segments(fx->dir, names, 4), 1);
	flip(fx->dir, names[0], 3);
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(spool_get_stats(sp)->records, 5);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(take(sp, NULL), i);
	spool_close(sp);
}

static void
spool__missing_segment__reported_rest_delivered(void **state)
{
	struct fx *fx = *state;
	struct spool_check_result res;
	char names[8][32], path[512];
	unsigned reports = 0, n = 0, prev = 0;
	struct spool *sp;
	bool gap = false;
	uint64_t total;

	fx->cs.max_bytes = 1 << 20;	/* 64 KiB segments */
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; segments(fx->dir, names, 8) < 4; i++)
		append(sp, i, 300);
	total = spool_get_stats(sp)->records;
	spool_close(sp);
	assert_int_equal(segments(fx->dir, names, 8), 4);
	snprintf(path, sizeof(path), "%s/%s", fx->dir, names[1]);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(spool_check(fx->dir, &res, count_report, &reports),
	    0);
	assert_int_equal(res.problems, 1);
	assert_int_equal(reports, 1);
	assert_int_equal(res.segments, 3);

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_true(spool_get_stats(sp)->records < total);
	for (unsigned k = 0; !nothing_next(sp); k++, n++) {
		unsigned i = take(sp, NULL);

		if (k > 0 && i != prev + 1) {
			assert_false(gap);	/* exactly one gap */
			gap = true;
		}
		prev = i;
	}
	assert_true(gap);
	assert_int_equal(n, spool_get_stats(sp)->records);
	spool_close(sp);
}

static void
spool__foreign_and_empty_files__ignored_or_removed(void **state)
{
	struct fx *fx = *state;
	char path[512], names[4][32];
	struct spool *sp;
	int fd;

	snprintf(path, sizeof(path), "%s/README", fx->dir);
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	/* An empty segment: a crash right after creating it. */
	snprintf(path, sizeof(path), "%s/00000000000000000007.seg", fx->dir);
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(spool_get_stats(sp)->records, 0);
	assert_int_equal(segments(fx->dir, names, 4), 0);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/README", fx->dir);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(corrupt_files(fx->dir), 0);
	spool_close(sp);
}

static void
spool__second_open__locked_out(void **state)
{
	struct fx *fx = *state;
	struct spool *sp, *sp2 = NULL;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(spool_open(&fx->cs, &sp2), W2K_EIO);
	assert_null(sp2);
	spool_close(sp);
	assert_int_equal(spool_open(&fx->cs, &sp2), 0);
	spool_close(sp2);
}

static void
spool__missing_dir__created_0700(void **state)
{
	struct fx *fx = *state;
	struct spool_check_result res;
	char sub[512];
	struct stat st;
	struct spool *sp;

	snprintf(sub, sizeof(sub), "%s/a/b/spool", fx->dir);
	assert_int_equal(spool_check(sub, &res, NULL, NULL), 0);
	fx->cs.dir = sub;
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	spool_close(sp);
}

static void
spool__fsync_modes__all_work(void **state)
{
	static const enum cfg_fsync modes[] = { CFG_FSYNC_ALWAYS,
	    CFG_FSYNC_BATCH, CFG_FSYNC_NEVER };
	struct fx *fx = *state;
	struct spool *sp;

	for (size_t m = 0; m < 3; m++) {
		fx->cs.fsync = modes[m];
		assert_int_equal(spool_open(&fx->cs, &sp), 0);
		for (unsigned i = 0; i < 5; i++)
			append(sp, i, 10);
		if (modes[m] == CFG_FSYNC_BATCH) {
			int64_t in = spool_tick(sp);
			int waits = 0;

			assert_true(in >= 0 && in <= 20 * 1000);
			usleep(25 * 1000);
			/* The group commit is due: handed to the sync thread,
			 * which may still be busy with the new segment's
			 * directory sync (then: ask again in 1 ms). On a busy
			 * disk that takes a while; 5 s is plenty. */
			while ((in = spool_tick(sp)) != -1 && waits++ < 5000) {
				assert_true(in >= 0 && in <= 20 * 1000);
				usleep(1000);
			}
			assert_int_equal(in, -1);
		} else {
			assert_int_equal(spool_tick(sp), -1);
		}
		for (unsigned i = 0; i < 5; i++) {
			uint64_t s;

			take(sp, &s);
			assert_int_equal(spool_ack(sp, s, NULL), 0);
		}
		spool_close(sp);
	}
}

/*
 * fsync = "batch" with a segment sealed every ~60 records while group
 * commits keep the sync thread busy: the seals that find it busy wait in
 * its queue (syncer_defer()) instead of syncing on the caller. Nothing is
 * lost or reordered, close waits for the queue, and every dup() it held
 * is closed again.
 */
static void
spool__batch_rotations__queued_seals_synced_and_closed(void **state)
{
	struct fx *fx = *state;
	struct spool *sp;
	int fds0 = open_fds();
	uint64_t s;

	fx->cs.fsync = CFG_FSYNC_BATCH;
	fx->cs.fsync_interval_ms = 1;
	/* max_bytes 64 MiB: 64 KiB segments, and room for all (~3 MiB) */
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; i < 3000; i++) {
		append(sp, i, 1000);
		if (i % 20 == 0) {
			(void)spool_flush(sp);
			usleep(1000);	/* the group commit falls due */
			(void)spool_tick(sp);
		}
	}
	assert_true(spool_get_stats(sp)->bytes > 40 * (64 << 10));
	spool_close(sp);
	assert_int_equal(open_fds(), fds0);
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	assert_int_equal(spool_get_stats(sp)->records, 3000);
	for (unsigned i = 0; i < 3000; i++) {
		assert_int_equal(take(sp, &s), i);
		assert_int_equal(spool_ack(sp, s, NULL), 0);
	}
	assert_true(nothing_next(sp));
	spool_close(sp);
	assert_int_equal(open_fds(), fds0);
}

static void
spool__dropped_while_in_flight__report_ignored(void **state)
{
	struct fx *fx = *state;
	struct spool *sp;
	uint64_t s0, s1;

	fx->cs.max_bytes = 1 << 20;
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	append(sp, 0, 300);
	append(sp, 1, 300);
	take(sp, &s0);
	take(sp, &s1);
	for (unsigned i = 2; i < 6000; i++)
		append(sp, i, 300);
	assert_true(spool_get_stats(sp)->dropped > 0);
	/* Their segment is gone: a late report changes no count. */
	spool_requeue(sp, s1);
	assert_int_equal(spool_ack(sp, s0, NULL), 0);
	assert_true(take(sp, NULL) > 1);
	spool_close(sp);
}

static void
spool__out_of_descriptors__retried_not_lost(void **state)
{
	struct fx *fx = *state;
	struct rlimit old;
	struct spool *sp;
	int fds[256], n;
	uint64_t s;

	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	for (unsigned i = 0; i < 5; i++)
		append(sp, i, 10);
	take(sp, &s);
	spool_requeue(sp, s);
	spool_close(sp);
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	take(sp, &s);
	spool_requeue(sp, s);	/* to be read back through its own fd */
	/* No descriptor left: the again reader cannot open the segment. */
	n = fds_exhaust(&old, fds);
	assert_true(nothing_next(sp));
	assert_int_equal(spool_get_stats(sp)->records, 5);
	fds_restore(&old, fds, n);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(take(sp, NULL), i);
	spool_close(sp);
}

/*
 * fsync = batch: when the group commit cannot get a descriptor for the sync
 * thread (dup() fails: out of descriptors), it stays due and is retried,
 * rather than being forgotten until the next append.
 */
static void
spool__group_commit__retried_when_no_descriptor(void **state)
{
	struct fx *fx = *state;
	struct rlimit old;
	struct spool *sp;
	int fds[256], n;
	int64_t due;

	fx->cs.fsync_interval_ms = 1;
	assert_int_equal(spool_open(&fx->cs, &sp), 0);
	append(sp, 1, 10);
	assert_int_equal(spool_flush(sp), 0);
	usleep(5000);
	n = fds_exhaust(&old, fds);
	due = spool_tick(sp);		/* dup() fails */
	fds_restore(&old, fds, n);
	/* Still waiting to be synced: a time to call again, not -1. */
	assert_true(due >= 0);
	/* Handed over now: nothing left to sync once the thread is done. */
	for (int i = 0; i < 500 && (due = spool_tick(sp)) != -1; i++)
		usleep(10000);
	assert_int_equal(due, -1);
	spool_close(sp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spool__crc32c__known_vector),
#ifdef W2K_TESTING
		cmocka_unit_test(spool__crc32c__hw_equals_sw),
#endif
		cmocka_unit_test(spool__codec__roundtrips),
		cmocka_unit_test(spool__codec__rejects_what_cannot_be_encoded),
		cmocka_unit_test(spool__codec__header_nul_parity_matches_a_byte_count),
		cmocka_unit_test(spool__codec__every_bit_flip__detected),
		cmocka_unit_test(spool__codec__every_truncation__short),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(spool__append_next_ack__in_order_and_retired),
		T(spool__write_behind__on_disk_after_flush_or_read),
		T(spool__sent_without_next__refused),
		T(spool__requeue_and_rewind__produced_again_first),
		T(spool__reopen__backlog_replayed_in_order),
		T(spool__backlog_then_live__spooled_order),
		T(spool__group_commit__retried_when_no_descriptor),
		T(spool__segments__retired_whole_and_in_order),
		T(spool__full_drop_oldest__bounded_and_counted),
		T(spool__full_drop_newest__refused_and_counted),
		T(spool__torn_tail__truncated_and_set_aside),
		T(spool__flipped_bits__bad_records_skipped_rest_kept),
		T(spool__damaged_segment_header__records_kept),
		T(spool__missing_segment__reported_rest_delivered),
		T(spool__foreign_and_empty_files__ignored_or_removed),
		T(spool__second_open__locked_out),
		T(spool__missing_dir__created_0700),
		T(spool__fsync_modes__all_work),
		T(spool__batch_rotations__queued_seals_synced_and_closed),
		T(spool__dropped_while_in_flight__report_ignored),
		T(spool__out_of_descriptors__retried_not_lost),
#undef T
	};

	log_init(LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
