/*
 * fuzz_spool.c — libFuzzer target for the spool reader: any bytes as a
 * segment file must be scanned, repaired and replayed without a crash, a
 * hang or a leak, and start-up must never fail because of them.
 *
 * Input: the first byte chooses whether a valid segment header is put in
 * front of the rest (bit 0), so the fuzzer reaches the records quickly;
 * the rest is the file. Besides what ASan and UBSan catch, it checks:
 *   - spool_check() (read-only) and spool_open() (repairing) agree on the
 *     number of readable records;
 *   - spool_open() succeeds, and every record it counted is handed out
 *     once, in increasing sequence, and encodes back to a record that
 *     decodes (the codec round-trips whatever the reader accepts);
 *   - once all are acknowledged the spool is empty, and after closing the
 *     directory holds no segment and no damage (retirement is complete).
 * Each record decoded straight from the input (spool_rec_decode() at every
 * offset of the first bytes) must round-trip as well.
 */
#include "log.h"
#include "spool.h"
#include "w2k.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)	do { if (!(c)) { \
	fprintf(stderr, "fuzz_spool: %s:%d: %s\n", __FILE__, __LINE__, #c); \
	abort(); } } while (0)

#define SEG_NAME	"00000000000000000001.seg"

static char dir[256];

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
cleanup(void)
{
	if (dir[0] != '\0')
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Once: a private directory, in memory when /dev/shm is there. */
static void
init(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	snprintf(dir, sizeof(dir), "%s/fuzz_spool.XXXXXX", base);
	CHECK(mkdtemp(dir) != NULL);
	atexit(cleanup);
	/* Damage is what this target feeds in: its error lines would only
	 * slow the fuzzer down. Below the lowest level nothing is written. */
	log_init((enum log_level)(LOG_LVL_ERR - 1));
}

static void
put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
write_segment(const uint8_t *data, size_t size)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, SEG_NAME);
	CHECK((fp = fopen(path, "wb")) != NULL);
	if (data[0] & 1) {
		unsigned char hdr[32];

		memset(hdr, 0, sizeof(hdr));
		memcpy(hdr, "W2KSEG1\n", 8);
		hdr[8] = 1;		/* first seq 1, little-endian */
		put_u32(hdr + 28, spool_crc32c(0, hdr, 28));
		CHECK(fwrite(hdr, 1, sizeof(hdr), fp) == sizeof(hdr));
	}
	if (size > 1)
		CHECK(fwrite(data + 1, 1, size - 1, fp) == size - 1);
	CHECK(fclose(fp) == 0);
}

static void
check_roundtrip(const struct record *rec, uint64_t seq)
{
	size_t len = spool_rec_len(rec);
	unsigned char *buf;
	struct spool_rec out;

	CHECK(len >= SPOOL_REC_MIN_LEN);
	CHECK((buf = malloc(len)) != NULL);
	spool_rec_encode(rec, seq, buf);
	CHECK(spool_rec_decode(buf, len, &out) == SPOOL_DEC_OK);
	CHECK(out.seq == seq && out.len == len);
	CHECK(out.rec.value_len == rec->value_len &&
	    out.rec.hdrs_len == rec->hdrs_len);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_spool cs = {
		.dir = dir, .max_bytes = 64 << 20, .fsync = CFG_FSYNC_NEVER,
		.fsync_interval_ms = 20, .on_full = CFG_DROP_OLDEST,
	};
	struct spool_check_result res, after;
	const struct record *rec;
	struct spool_rec sr;
	struct spool *sp;
	uint64_t seq, prev = 0, n = 0, *seqs;
	size_t i;

	if (size == 0 || size > 1 << 20)
		return 0;
	if (dir[0] == '\0')
		init();

	for (i = 0; i < size && i < 64; i++)
		if (spool_rec_decode(data + i, size - i, &sr) == SPOOL_DEC_OK)
			check_roundtrip(&sr.rec, sr.seq);

	write_segment(data, size);
	CHECK(spool_check(dir, &res, NULL, NULL) == 0);
	CHECK(spool_open(&cs, &sp) == 0);
	CHECK(spool_get_stats(sp)->records == res.records);
	CHECK((seqs = malloc((res.records + 1) * sizeof(*seqs))) != NULL);
	while (spool_next(sp, &rec, &seq) == 0) {
		CHECK(seq > prev && n < res.records);
		check_roundtrip(rec, seq);
		CHECK(spool_sent(sp, seq) == 0);
		seqs[n++] = prev = seq;
	}
	CHECK(n == res.records);
	for (i = 0; i < n; i++)
		CHECK(spool_ack(sp, seqs[i], NULL) == 0);
	CHECK(spool_get_stats(sp)->records == 0);
	CHECK(spool_inflight(sp) == 0);
	spool_close(sp);
	free(seqs);

	CHECK(spool_check(dir, &after, NULL, NULL) == 0);
	CHECK(after.segments == 0 && after.problems == 0);
	cleanup();
	CHECK(mkdir(dir, 0700) == 0);
	return 0;
}
