/*
 * spool.c — the durable queue between the PBX sessions and Kafka
 * (contract §7, spool.h).
 *
 * It must never: let a record it accepted go while the disk still holds it
 * (only a delivery report or the on_full policy ends a record's life); fail
 * to start because of damaged files (damage is set aside and logged, the
 * rest kept); hold memory that grows with the spool's size; block on
 * anything but local file I/O.
 *
 * On disk, all integers little-endian:
 *   segment = header record*            file "<first seq, 20 digits>.seg"
 *   header  = "W2KSEG1\n" first_seq:8 reserved:12 crc32c(the 28 before):4
 *   record  = magic:4 ("\xf7W2K") body_len:4 crc32c(body):4
 *             crc32c(the 12 before):4 body
 *   body    = seq:8 received_us:8 flags:1 0:1 topic_len:2 type_len:2
 *             key_len:4 hdrs_len:4 value_len:4 id:32
 *             topic NUL, type NUL, key, packed headers, value
 * The header checksum vouches for the length, so a record whose body is
 * damaged is skipped whole and the next one read; when the header itself
 * is damaged, the reader searches forward for the next valid header (the
 * magic starts with 0xf7, a byte valid UTF-8 never contains, so JSON
 * payloads rarely look like one). CRC32C rather than zlib's CRC32: it
 * detects more error patterns at the same cost (it is what Kafka's record
 * batches, ext4 and iSCSI use), and a table-driven one is a page of code
 * while zlib would be a new dependency (OpenSSL has no CRC).
 *
 * Retirement. Each segment's records are counted (nrec) and their
 * acknowledgements too (nacked); once the oldest segment is sealed and every
 * record in it acknowledged it is unlinked. unlink(2) is atomic, so a crash
 * leaves the segment either whole (its records are produced again after
 * the restart: duplicates with the same id) or gone (all were delivered):
 * no window loses a record, none comes back half. Retiring strictly in
 * order keeps the surviving segments contiguous in sequence numbers, so a
 * segment that goes missing (deleted by hand, lost with fsync = "never")
 * shows as a gap and is reported instead of passing silently.
 *
 * Durability (spool.fsync): appends are collected in memory and write(2)n
 * in one go at the end of the owner's loop turn (spool_flush()), before
 * any read of the file and before a sync; from then on a record survives
 * the daemon's crash or SIGKILL in the page cache.
 * Against power loss: "always" fdatasync()s each record before returning;
 * "batch" group-commits within fsync_interval_ms of the first unsynced
 * record (spool_tick()); "never" leaves it to the kernel's writeback. New
 * segments are synced with their directory entry at creation, and a
 * segment is synced when it is sealed, before records go to the next one,
 * so a power loss can cost only the newest records, never a hole in the
 * middle (except with "never").
 *
 * In memory: one struct seg per segment file (a few dozen bytes), one
 * struct fly per record in flight (bounded by librdkafka's queue and
 * SPOOL_MAX_INFLIGHT), two read cursors and their buffers. Records are
 * streamed from the files.
 */
#include "spool.h"
#include "log.h"
#include "w2k.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define SEG_MAGIC	"W2KSEG1\n"
#define SEG_HDR_LEN	32
#define LAZY_AVG_GUESS	1024	/* bytes a record, when nothing tells */
#define SEG_DIGITS	20
#define SEG_SUFFIX	".seg"
#define SEG_MIN_BYTES	(64 * 1024)
#define SEG_MAX_BYTES	(64 * 1024 * 1024)
#define REC_MAGIC	UINT32_C(0x4b3257f7)	/* f7 57 32 4b on disk */
#define REC_MAGIC0	0xf7
#define REC_F_DEAD	0x01
#define REC_F_KEY	0x02
#define RD_CHUNK	(64 * 1024)
#define WB_FLUSH	(256 * 1024)	/* write-behind: write at this much */
#define SYNC_RETRY_US	1000	/* the sync thread is still busy */
#define SPOOL_MAX_INFLIGHT (1u << 20)
#define SEQ_LIMIT	(UINT64_MAX / 2)
#define IDLE_RETIRE_US	(1000 * 1000)	/* retire a delivered, idle segment */
#define OLDEST_US	(500 * 1000)	/* oldest_us refresh period */
#define LOG_EVERY_US	(5LL * 1000 * 1000)	/* rate limit of repeats */
#define CORRUPT_DIR	"corrupt"

/* ---- CRC32C ------------------------------------------------------------- */

static uint32_t crc_tab[8][256];
static int crc_ready;

static void
crc_init(void)
{
	uint32_t c;
	unsigned i, k;

	if (crc_ready)
		return;
	for (i = 0; i < 256; i++) {
		c = i;
		for (k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ UINT32_C(0x82f63b78) : c >> 1;
		crc_tab[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			crc_tab[k][i] = (crc_tab[k - 1][i] >> 8) ^
			    crc_tab[0][crc_tab[k - 1][i] & 0xff];
	crc_ready = 1;
}

/* Slicing-by-8 (8 table lookups per 8 bytes), about 1-2 GB/s. */
static uint32_t
crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
	crc_init();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= crc;
		crc = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^
		    crc_tab[5][(w >> 16) & 0xff] ^ crc_tab[4][(w >> 24) & 0xff] ^
		    crc_tab[3][(w >> 32) & 0xff] ^ crc_tab[2][(w >> 40) & 0xff] ^
		    crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
		p += 8;
		len -= 8;
	}
#endif
	while (len-- > 0)
		crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/*
 * SSE4.2 has a CRC32C instruction (the same polynomial and bit order as
 * the tables), about ten times faster: every record is checksummed when
 * written and again when read back, so this was a visible share of the
 * cost per event. Chosen at run time; the tables remain for other CPUs.
 */
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc;

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)c;
	while (len-- > 0)
		crc = _mm_crc32_u8(crc, *p++);
	return crc;
}
#define CRC_HW_CAN()	__builtin_cpu_supports("sse4.2")
#else
#define crc_hw		crc_sw
#define CRC_HW_CAN()	0
#endif

static int crc_use_hw = -1;	/* -1: not decided yet */

uint32_t
spool_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (crc_use_hw < 0)
		crc_use_hw = CRC_HW_CAN() ? 1 : 0;
	return ~(crc_use_hw ? crc_hw(~crc, buf, len) : crc_sw(~crc, buf, len));
}

#ifdef W2K_TESTING
void
spool_crc32c_force(int hw)
{
	crc_use_hw = hw && CRC_HW_CAN() ? 1 : 0;
}
#endif

/* ---- little-endian fields ---------------------------------------------- */

static void
put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void
put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- record codec -------------------------------------------------------- */

/* Body offsets. */
#define B_SEQ		0
#define B_RECV		8
#define B_FLAGS		16
#define B_RSVD		17
#define B_TOPIC_LEN	18
#define B_TYPE_LEN	20
#define B_KEY_LEN	22
#define B_HDRS_LEN	26
#define B_VALUE_LEN	30
#define B_ID		34

/* Packed headers are "name\0value\0" pairs: an even number of NULs, the
 * last byte one of them. This runs twice per record (at append and at
 * read-back), so the NULs are counted eight bytes at a time, and only
 * their parity: in each word, ((b & 0x7f) + 0x7f) | b has a byte's high
 * bit set exactly when that byte is not NUL (no carry crosses bytes);
 * the complement's high bits, XORed over the words and folded, give it. */
static bool
hdrs_ok(const char *h, size_t len)
{
	const uint64_t lo7 = UINT64_C(0x7f7f7f7f7f7f7f7f);
	uint64_t acc = 0, v;
	size_t i = 0;
	unsigned odd;

	if (len == 0)
		return true;
	if (h == NULL || h[len - 1] != '\0')
		return false;
	for (; i + 8 <= len; i += 8) {
		memcpy(&v, h + i, 8);
		acc ^= ~(((v & lo7) + lo7) | v | lo7);
	}
	acc ^= acc >> 32;
	acc ^= acc >> 16;
	acc ^= acc >> 8;
	odd = (unsigned)(acc >> 7) & 1;
	for (; i < len; i++)
		odd ^= h[i] == '\0';
	return odd == 0;
}

size_t
spool_rec_len(const struct record *rec)
{
	size_t tl, yl;
	uint64_t body;

	if (rec->topic == NULL || rec->topic[0] == '\0' ||
	    (rec->value == NULL && rec->value_len > 0) ||
	    (rec->key == NULL && rec->key_len > 0) ||
	    !hdrs_ok(rec->hdrs, rec->hdrs_len))
		return 0;
	tl = strlen(rec->topic) + 1;
	yl = (rec->type != NULL ? strlen(rec->type) : 0) + 1;
	if (tl > UINT16_MAX || yl > UINT16_MAX)
		return 0;
	body = (uint64_t)SPOOL_REC_FIXED_LEN + tl + yl +
	    (rec->key != NULL ? rec->key_len : 0) + rec->hdrs_len +
	    rec->value_len;
	if (body > SPOOL_REC_MAX_BODY)
		return 0;
	return (size_t)(SPOOL_REC_HDR_LEN + body);
}

void
spool_rec_encode(const struct record *rec, uint64_t seq, unsigned char *buf)
{
	size_t tl = strlen(rec->topic) + 1;
	size_t yl = (rec->type != NULL ? strlen(rec->type) : 0) + 1;
	size_t kl = rec->key != NULL ? rec->key_len : 0;
	unsigned char *b = buf + SPOOL_REC_HDR_LEN, *p;
	size_t blen = SPOOL_REC_FIXED_LEN + tl + yl + kl + rec->hdrs_len +
	    rec->value_len;

	put64(b + B_SEQ, seq);
	put64(b + B_RECV, (uint64_t)rec->received_us);
	b[B_FLAGS] = (unsigned char)((rec->dead ? REC_F_DEAD : 0) |
	    (rec->key != NULL ? REC_F_KEY : 0));
	b[B_RSVD] = 0;
	put16(b + B_TOPIC_LEN, (uint16_t)tl);
	put16(b + B_TYPE_LEN, (uint16_t)yl);
	put32(b + B_KEY_LEN, (uint32_t)kl);
	put32(b + B_HDRS_LEN, (uint32_t)rec->hdrs_len);
	put32(b + B_VALUE_LEN, (uint32_t)rec->value_len);
	memcpy(b + B_ID, rec->id, RECORD_ID_LEN);
	p = b + SPOOL_REC_FIXED_LEN;
	memcpy(p, rec->topic, tl);
	p += tl;
	if (rec->type != NULL)
		memcpy(p, rec->type, yl);
	else
		*p = '\0';
	p += yl;
	if (kl > 0)
		memcpy(p, rec->key, kl);
	p += kl;
	if (rec->hdrs_len > 0)
		memcpy(p, rec->hdrs, rec->hdrs_len);
	p += rec->hdrs_len;
	if (rec->value_len > 0)
		memcpy(p, rec->value, rec->value_len);
	put32(buf, REC_MAGIC);
	put32(buf + 4, (uint32_t)blen);
	put32(buf + 8, spool_crc32c(0, b, blen));
	put32(buf + 12, spool_crc32c(0, buf, 12));
}

/* The header alone: magic, its checksum, a length in range. */
static bool
rec_hdr_ok(const unsigned char *p, uint32_t *blenp)
{
	uint32_t blen = get32(p + 4);

	if (get32(p) != REC_MAGIC || spool_crc32c(0, p, 12) != get32(p + 12) ||
	    blen < SPOOL_REC_FIXED_LEN + 3 || blen > SPOOL_REC_MAX_BODY)
		return false;
	*blenp = blen;
	return true;
}

/* A NUL-terminated string of exactly len bytes (NUL included). */
static bool
cstr_ok(const unsigned char *s, size_t len)
{
	return len >= 1 && s[len - 1] == '\0' && memchr(s, 0, len - 1) == NULL;
}

enum spool_dec
spool_rec_decode(const unsigned char *buf, size_t len, struct spool_rec *out)
{
	const unsigned char *b = buf + SPOOL_REC_HDR_LEN, *p;
	uint32_t blen, tl, yl, kl, hl, vl;
	unsigned flags;

	if (len < SPOOL_REC_HDR_LEN) {
		out->len = SPOOL_REC_HDR_LEN;
		return SPOOL_DEC_SHORT;
	}
	if (!rec_hdr_ok(buf, &blen))
		return SPOOL_DEC_BAD;
	if (len - SPOOL_REC_HDR_LEN < blen) {
		out->len = SPOOL_REC_HDR_LEN + (size_t)blen;
		return SPOOL_DEC_SHORT;
	}
	if (spool_crc32c(0, b, blen) != get32(buf + 8))
		return SPOOL_DEC_BAD;
	flags = b[B_FLAGS];
	tl = get16(b + B_TOPIC_LEN);
	yl = get16(b + B_TYPE_LEN);
	kl = get32(b + B_KEY_LEN);
	hl = get32(b + B_HDRS_LEN);
	vl = get32(b + B_VALUE_LEN);
	if ((flags & ~(unsigned)(REC_F_DEAD | REC_F_KEY)) != 0 ||
	    b[B_RSVD] != 0 || get64(b + B_SEQ) == 0 || tl < 2 || yl < 1 ||
	    (!(flags & REC_F_KEY) && kl != 0) ||
	    (uint64_t)SPOOL_REC_FIXED_LEN + tl + yl + kl + hl + vl != blen)
		return SPOOL_DEC_BAD;
	p = b + SPOOL_REC_FIXED_LEN;
	if (!cstr_ok(p, tl) || !cstr_ok(p + tl, yl) ||
	    !hdrs_ok((const char *)(p + tl + yl + kl), hl))
		return SPOOL_DEC_BAD;

	memset(out, 0, sizeof(*out));
	out->seq = get64(b + B_SEQ);
	out->len = SPOOL_REC_HDR_LEN + (size_t)blen;
	/* The record borrows from buf; nothing here is ever freed. */
	out->rec.received_us = (int64_t)get64(b + B_RECV);
	out->rec.dead = (flags & REC_F_DEAD) != 0;
	memcpy(out->rec.id, b + B_ID, RECORD_ID_LEN);
	out->rec.id[RECORD_ID_LEN] = '\0';
	out->rec.topic = (char *)(uintptr_t)p;
	p += tl;
	out->rec.type = (char *)(uintptr_t)p;
	p += yl;
	if (flags & REC_F_KEY) {
		out->rec.key = (char *)(uintptr_t)p;
		out->rec.key_len = kl;
	}
	p += kl;
	if (hl > 0) {
		out->rec.hdrs = (char *)(uintptr_t)p;
		out->rec.hdrs_len = hl;
	}
	p += hl;
	out->rec.value = (char *)(uintptr_t)p;
	out->rec.value_len = vl;
	return SPOOL_DEC_OK;
}

/* ---- buffered reading of a segment --------------------------------------- */

struct spool;

struct reader {
	struct spool	*sp;		/* flushed before a read; may be NULL */
	int		 fd;		/* -1: none */
	unsigned char	*buf;
	size_t		 cap;
	size_t		 len;		/* valid bytes in buf */
	uint64_t	 base;		/* file offset of buf[0] */
};

static void
rd_init(struct reader *rd)
{
	memset(rd, 0, sizeof(*rd));
	rd->fd = -1;
}

static void
rd_close(struct reader *rd)
{
	if (rd->fd >= 0)
		close(rd->fd);
	rd->fd = -1;
	rd->len = 0;
	rd->base = 0;
}

static void
rd_free(struct reader *rd)
{
	rd_close(rd);
	free(rd->buf);
	rd->buf = NULL;
	rd->cap = 0;
}

/*
 * Make the bytes [off, off + n) available, reading nothing at or past
 * limit: the end of what this process knows to be written. (Bytes past it
 * may be a failed write about to be overwritten; caching them would serve
 * stale data later.)
 * @returns how many bytes from off are in the buffer (< n only when the
 *          file or limit ends first), *pp pointing at them; W2K_EIO or
 *          W2K_ENOMEM.
 */
static int64_t
rd_fill(struct reader *rd, uint64_t off, size_t n, uint64_t limit,
    const unsigned char **pp)
{
	size_t want, got = 0;
	ssize_t r;

	*pp = NULL;
	if (off >= limit)
		return 0;
	if (n > limit - off)
		n = (size_t)(limit - off);
	if (off >= rd->base && off + n <= rd->base + rd->len) {
		uint64_t end = rd->base + rd->len < limit ?
		    rd->base + rd->len : limit;

		*pp = rd->buf + (off - rd->base);
		return (int64_t)(end - off);
	}
	/* What is read may still be in the write-behind buffer. */
	if (rd->sp != NULL && spool_flush(rd->sp) != 0)
		return W2K_EAGAIN;
	want = n > RD_CHUNK ? n : RD_CHUNK;
	if (want > limit - off)
		want = (size_t)(limit - off);
	/* Give memory back after a huge record. */
	if (want > rd->cap || (rd->cap > 4 * RD_CHUNK && want <= RD_CHUNK)) {
		unsigned char *nb = realloc(rd->buf, want);

		if (nb == NULL)
			return W2K_ENOMEM;
		rd->buf = nb;
		rd->cap = want;
	}
	rd->len = 0;
	while (got < want) {
		r = pread(rd->fd, rd->buf + got, want - got,
		    (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return W2K_EIO;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	rd->base = off;
	rd->len = got;
	*pp = rd->buf;
	return (int64_t)got;
}

/*
 * The next valid record at or after *offp and before limit, with a seq in
 * [min_seq, max_seq). What lies before it is skipped: a whole record when
 * only its body is bad (the header checksum vouches for its length), else
 * byte by byte up to the next byte that can start a header.
 * @returns 1 (out decoded, borrowing from rd; *offp = its offset), 0 (none
 *          before limit; *offp = limit), or W2K_EIO / W2K_ENOMEM (*offp =
 *          where reading failed).
 */
static int
seg_find_record(struct reader *rd, uint64_t *offp, uint64_t limit,
    uint64_t min_seq, uint64_t max_seq, struct spool_rec *out)
{
	uint64_t off = *offp, total;
	const unsigned char *p, *q;
	uint32_t blen;
	int64_t n;

	while (off < limit && limit - off >= SPOOL_REC_MIN_LEN) {
		if ((n = rd_fill(rd, off, SPOOL_REC_HDR_LEN, limit, &p)) < 0) {
			*offp = off;
			return (int)n;
		}
		if (n < SPOOL_REC_HDR_LEN)
			break;		/* the file is shorter than limit */
		if (!rec_hdr_ok(p, &blen)) {
			q = memchr(p + 1, REC_MAGIC0, (size_t)n - 1);
			off += q != NULL ? (uint64_t)(q - p) : (uint64_t)n;
			continue;
		}
		total = SPOOL_REC_HDR_LEN + (uint64_t)blen;
		if (total > limit - off) {	/* torn: claims more than
						   there is */
			off++;
			continue;
		}
		if ((n = rd_fill(rd, off, (size_t)total, limit, &p)) < 0) {
			*offp = off;
			return (int)n;
		}
		if ((uint64_t)n < total) {
			off++;
			continue;
		}
		if (spool_rec_decode(p, (size_t)total, out) != SPOOL_DEC_OK ||
		    out->seq < min_seq || out->seq >= max_seq) {
			off += total;
			continue;
		}
		*offp = off;
		return 1;
	}
	*offp = limit;
	return 0;
}

/* ---- the spool ------------------------------------------------------------ */

struct seg {
	uint64_t	first;		/* first seq: the file name */
	uint64_t	end;		/* one past the last record's seq */
	uint64_t	bytes;		/* file size (what we know is valid) */
	uint64_t	data_off;	/* offset of its first record */
	uint64_t	nrec;		/* records in it */
	uint64_t	nread;		/* of those, handed out at least once */
	uint64_t	nacked;		/* of those, acknowledged or lost */
	bool		backlog;	/* found at start-up */
	/*
	 * A backlog segment not verified yet (see scan_dir()): nrec counts
	 * the records found so far, est is what stats.records counts for it
	 * until it has been read once, last_seq the last record's seq.
	 */
	bool		lazy;
	uint64_t	est;
	uint64_t	last_seq;
};

/* A record handed to the producer and not yet acknowledged. */
struct fly {
	uint64_t	seq;		/* 0: free slot */
	int64_t		received_us;
	uint64_t	off;		/* where it starts in its segment */
	uint32_t	len;
	bool		again;		/* failed: waits in the again ring */
};

/* Reads one region's segments in order: the backlog, or this run's. */
struct cursor {
	bool		 live;
	struct seg	*seg;		/* the segment being read; NULL between */
	uint64_t	 after;		/* first seq of the last segment entered */
	uint64_t	 off;		/* offset of the next record in seg */
	uint64_t	 min_seq;	/* the next record's seq is at least this */
	struct reader	 rd;
	bool		 have;		/* rec is the record at off */
	struct spool_rec rec;
};

enum peek { PEEK_NONE, PEEK_AGAIN, PEEK_BACKLOG, PEEK_LIVE };

struct spool {
	char		*dir;
	uint64_t	 max_bytes;
	enum cfg_fsync	 fsync;
	int64_t		 fsync_us;
	enum cfg_on_full on_full;
	uint64_t	 seg_target;	/* rotate beyond this size */
	int		 dirfd;		/* open, flock()ed */

	struct seg	**segs;		/* by first seq, oldest first */
	size_t		 nsegs, capsegs;
	struct seg	*wseg;		/* the segment appended to, or NULL */
	int		 wfd;
	uint64_t	 next_seq;
	/* write-behind: wbuf[0, wpend) belongs at wseg offset wbase */
	unsigned char	*wbuf;
	size_t		 wcap, wpend;
	uint64_t	 wbase;

	struct cursor	 cur[2];	/* [0] backlog, [1] live: read in
					   this order (spooled order) */

	struct fly	*fly;		/* open addressing, linear probing */
	size_t		 flycap, nfly;	/* capacity a power of two */
	uint64_t	 nout;		/* in flight (not again) */
	uint64_t	*ring;		/* seqs to produce again, FIFO */
	size_t		 ring_head, ring_n;	/* capacity == flycap */
	struct reader	 rq;		/* reads records to produce again */
	uint64_t	 rq_first;	/* the segment rq.fd is open on */
	bool		 rq_have;
	struct spool_rec rq_rec;

	enum peek	 peek;		/* what spool_next() returned */
	uint64_t	 peek_seq;

	struct syncer	*syncer;	/* fsync = "batch": the sync thread */
	bool		 dirty;		/* appended, not yet synced */
	int64_t		 dirty_us;	/* since when (monotonic) */
	bool		 dir_dirty;	/* an unlink not yet synced */
	int64_t		 last_append_us;
	int64_t		 oldest_at_us;	/* last oldest_us refresh */
	bool		 refusing;	/* drop_newest: full until a segment
					   is removed */
	uint64_t	 drop_unlogged;
	int64_t		 drop_log_us;
	uint64_t	 io_unlogged;
	int64_t		 io_log_us;
	struct spool_stats stats;
};

static void
seg_name(char *buf, size_t len, uint64_t first)
{
	snprintf(buf, len, "%0*" PRIu64 SEG_SUFFIX, SEG_DIGITS, first);
}

/* "00000000000000000042.seg" → 42; 0 for any other name. */
static uint64_t
seg_parse_name(const char *name)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < SEG_DIGITS; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		if (v > (SEQ_LIMIT - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	return strcmp(name + SEG_DIGITS, SEG_SUFFIX) == 0 ? v : 0;
}

/* Index of the first segment whose first seq is above after. */
static size_t
seg_upper(const struct spool *sp, uint64_t after)
{
	size_t lo = 0, hi = sp->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->segs[mid]->first <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The segment holding seq, or NULL (retired or dropped). */
static struct seg *
seg_find(const struct spool *sp, uint64_t seq)
{
	size_t i = seg_upper(sp, seq);
	struct seg *s;

	if (i == 0)
		return NULL;
	s = sp->segs[i - 1];
	return seq < s->end ? s : NULL;
}

static int
seg_push(struct spool *sp, struct seg *s)
{
	if (sp->nsegs == sp->capsegs) {
		size_t cap = sp->capsegs ? 2 * sp->capsegs : 16;
		struct seg **v = realloc(sp->segs, cap * sizeof(*v));

		if (v == NULL)
			return W2K_ENOMEM;
		sp->segs = v;
		sp->capsegs = cap;
	}
	sp->segs[sp->nsegs++] = s;
	return 0;
}

/* One error line per LOG_EVERY_US about failing file I/O, with a count. */
static void
io_error(struct spool *sp, const char *what, const char *name, int err)
{
	int64_t now = w2k_mono_us();

	sp->io_unlogged++;
	if (sp->io_log_us != 0 && now - sp->io_log_us < LOG_EVERY_US)
		return;
	log_err("spool: %s %s/%s: %s (%" PRIu64 " such error%s in the last "
	    "%d s)", what, sp->dir, name, strerror(err), sp->io_unlogged,
	    sp->io_unlogged == 1 ? "" : "s", (int)(LOG_EVERY_US / 1000000));
	sp->io_log_us = now;
	sp->io_unlogged = 0;
}

/*
 * records went down: when none is left there is no oldest one. (Between
 * these transitions oldest_us is refreshed every OLDEST_US by spool_tick;
 * at the transitions it must be exact, or an empty spool would look old.)
 */
static void
records_less(struct spool *sp, uint64_t n)
{
	/* (an estimate for unverified segments may have been low) */
	sp->stats.records -= n < sp->stats.records ? n : sp->stats.records;
	if (sp->stats.records == 0)
		sp->stats.oldest_us = 0;
}

/*
 * The group commit of fsync = "batch" runs on a thread of its own: an
 * fdatasync() takes from a fraction of a millisecond to tens of them on a
 * busy disk, and on the event loop it would stall PBX input and delivery
 * reports for that long, every fsync_interval_ms. The loop hands it a
 * dup() of the segment's descriptor (so a segment sealed meanwhile cannot
 * reuse the number) and goes on; one sync at a time. A segment sealed
 * while a sync runs waits in a short queue (SYNC_SEALED_MAX) and is synced
 * next: at 50,000 events/s a 1 MiB segment fills about 50 times a second,
 * and each sync on the loop stalled it for milliseconds. Syncs that must
 * be complete before the loop continues ("always", close, and a seal when
 * that queue is full) stay on the loop (sync_data()).
 *
 * The same thread removes delivered segments (with "batch" and "never";
 * "always" keeps every file operation on the loop): an unlink frees the
 * file's blocks, and on a file system mounted with "discard" that waits
 * for the device, which took the loop a few ms per segment. With "batch"
 * the directory is synced after each round of removals. A crash before a
 * removal brings the file back: its records are produced again (duplicates
 * with their ids), never lost. Disk space comes back a little later.
 */
#define SYNC_SEALED_MAX	8
#define SYNC_GONE_MAX	64

struct syncer {
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 fd;		/* file to sync, or -1 */
	int		 dirfd;		/* directory to sync after it, or -1 */
	bool		 busy;		/* asked or syncing */
	bool		 stop;
	int		 err;		/* errno of a failed sync or unlink, 0 */
	atomic_bool	 failed;	/* err != 0, read without the lock */
	const char	*err_what;	/* ...what failed */
	uint64_t	 err_first;	/* ...its segment, for the log line */
	uint64_t	 first;		/* fd's segment */
	int		 sealed[SYNC_SEALED_MAX];	/* dup()s, oldest first */
	uint64_t	 sealed_first[SYNC_SEALED_MAX];
	unsigned	 nsealed;
	int		 spooldir;	/* dup() of the directory, for unlinks */
	bool		 dirsync;	/* sync it after them ("batch") */
	uint64_t	 gone[SYNC_GONE_MAX];	/* segments to remove */
	unsigned	 ngone;
};

/* Remove what the loop handed over (outside the lock); 0 or an errno. */
static int
syncer_unlink(struct syncer *sy, const uint64_t *gone, unsigned n,
    uint64_t *bad)
{
	char name[64];
	int err = 0;

	for (unsigned i = 0; i < n; i++) {
		seg_name(name, sizeof(name), gone[i]);
		if (unlinkat(sy->spooldir, name, 0) != 0 && errno != ENOENT &&
		    err == 0) {
			err = errno;
			*bad = gone[i];
		}
	}
	if (sy->dirsync && fsync(sy->spooldir) != 0 && err == 0) {
		err = errno;
		*bad = gone[0];
	}
	return err;
}

static void *
syncer_main(void *arg)
{
	struct syncer *sy = arg;

	pthread_mutex_lock(&sy->mu);
	for (;;) {
		while (!sy->busy && sy->nsealed == 0 && sy->ngone == 0 &&
		    !sy->stop)
			pthread_cond_wait(&sy->cv, &sy->mu);
		if (!sy->busy && sy->ngone > 0) {	/* even when stopping */
			uint64_t gone[SYNC_GONE_MAX], bad = 0;
			unsigned n = sy->ngone;
			int uerr;

			memcpy(gone, sy->gone, n * sizeof(*gone));
			sy->ngone = 0;
			pthread_mutex_unlock(&sy->mu);
			uerr = syncer_unlink(sy, gone, n, &bad);
			pthread_mutex_lock(&sy->mu);
			if (uerr != 0) {
				sy->err = uerr;
				sy->err_what = "cannot remove";
				sy->err_first = bad;
				atomic_store(&sy->failed, true);
			}
			continue;
		}
		if (!sy->busy && sy->nsealed > 0) {	/* even when stopping */
			sy->fd = sy->sealed[0];
			sy->first = sy->sealed_first[0];
			sy->nsealed--;
			memmove(sy->sealed, sy->sealed + 1,
			    sy->nsealed * sizeof(*sy->sealed));
			memmove(sy->sealed_first, sy->sealed_first + 1,
			    sy->nsealed * sizeof(*sy->sealed_first));
			sy->busy = true;
		}
		if (!sy->busy)
			break;
		int fd = sy->fd, dirfd = sy->dirfd, err = 0;
		uint64_t first = sy->first;

		pthread_mutex_unlock(&sy->mu);
		/* The file first: its name must not outlive its data. */
		if (fd >= 0 && fdatasync(fd) != 0)
			err = errno;
		if (dirfd >= 0 && fsync(dirfd) != 0 && err == 0)
			err = errno;
		if (fd >= 0)
			close(fd);
		if (dirfd >= 0)
			close(dirfd);
		pthread_mutex_lock(&sy->mu);
		sy->fd = sy->dirfd = -1;
		sy->busy = false;
		if (err != 0) {
			sy->err = err;
			sy->err_what = "fsync of";
			sy->err_first = first;
			atomic_store(&sy->failed, true);
		}
	}
	pthread_mutex_unlock(&sy->mu);
	return NULL;
}

static int
syncer_start(struct spool *sp)
{
	struct syncer *sy = calloc(1, sizeof(*sy));

	if (sy == NULL)
		return W2K_ENOMEM;
	sy->fd = sy->dirfd = -1;
	atomic_init(&sy->failed, false);
	sy->dirsync = sp->fsync == CFG_FSYNC_BATCH;
	if ((sy->spooldir = dup(sp->dirfd)) < 0) {
		free(sy);
		return W2K_EIO;
	}
	pthread_mutex_init(&sy->mu, NULL);
	pthread_cond_init(&sy->cv, NULL);
	if (pthread_create(&sy->thread, NULL, syncer_main, sy) != 0) {
		pthread_cond_destroy(&sy->cv);
		pthread_mutex_destroy(&sy->mu);
		close(sy->spooldir);
		free(sy);
		return W2K_EFATAL;
	}
	/* Named for top -H and the benchmark's per-thread CPU (15 bytes). */
	(void)pthread_setname_np(sy->thread, "w2k:spool-sync");
	sp->syncer = sy;
	return 0;
}

/* Waits for a sync under way to finish. */
static void
syncer_stop(struct spool *sp)
{
	struct syncer *sy = sp->syncer;

	if (sy == NULL)
		return;
	pthread_mutex_lock(&sy->mu);
	sy->stop = true;
	pthread_cond_signal(&sy->cv);
	pthread_mutex_unlock(&sy->mu);
	pthread_join(sy->thread, NULL);
	pthread_cond_destroy(&sy->cv);
	pthread_mutex_destroy(&sy->mu);
	if (sy->err != 0) {
		char name[64];

		seg_name(name, sizeof(name), sy->err_first);
		io_error(sp, sy->err_what, name, sy->err);
	}
	close(sy->spooldir);
	free(sy);
	sp->syncer = NULL;
}

/*
 * A sync or removal of the thread failed since the last look: log it.
 * Called from spool_tick(), often: no lock unless something failed.
 */
static void
syncer_report(struct spool *sp)
{
	struct syncer *sy = sp->syncer;
	const char *what = NULL;
	char name[64];
	int err = 0;

	if (!atomic_load(&sy->failed))
		return;
	pthread_mutex_lock(&sy->mu);
	atomic_store(&sy->failed, false);
	if (sy->err != 0) {
		err = sy->err;
		what = sy->err_what;
		sy->err = 0;
		seg_name(name, sizeof(name), sy->err_first);
	}
	pthread_mutex_unlock(&sy->mu);
	if (err != 0)
		io_error(sp, what, name, err);
}

/*
 * Hand a delivered segment's removal to the thread. @returns false when its
 * queue is full (the caller removes it on the loop).
 */
static bool
syncer_remove(struct spool *sp, uint64_t first)
{
	struct syncer *sy = sp->syncer;
	bool ok = false;

	pthread_mutex_lock(&sy->mu);
	if (sy->ngone < SYNC_GONE_MAX) {
		sy->gone[sy->ngone++] = first;
		pthread_cond_signal(&sy->cv);
		ok = true;
	}
	pthread_mutex_unlock(&sy->mu);
	return ok;
}

/*
 * Hand the current segment (file: its data) and/or the directory (after a
 * segment was created or removed) to the sync thread. @returns false when
 * the previous sync is still running (try again shortly).
 */
static bool
syncer_ask(struct spool *sp, bool file)
{
	struct syncer *sy = sp->syncer;
	bool ok = false;
	int fd;

	pthread_mutex_lock(&sy->mu);
	if (!sy->busy) {
		bool handed = true;

		if (file && sp->wfd >= 0) {
			(void)spool_flush(sp);	/* logged; the rest is synced */
			if ((fd = dup(sp->wfd)) >= 0) {
				sy->fd = fd;
				sy->first = sp->wseg->first;
			} else {
				/* Out of descriptors: the group commit is
				 * still due, and tried again shortly. */
				char name[64];
				int e = errno;

				seg_name(name, sizeof(name), sp->wseg->first);
				io_error(sp, "cannot hand over for a sync (will "
				    "retry)", name, e);
				handed = false;
			}
		}
		if (sp->dir_dirty && (fd = dup(sp->dirfd)) >= 0) {
			sy->dirfd = fd;
			sp->dir_dirty = false;
		}
		/* (without a descriptor, the next tick tries again) */
		if (sy->fd >= 0 || sy->dirfd >= 0) {
			sy->busy = true;
			pthread_cond_signal(&sy->cv);
		}
		ok = handed;
	}
	pthread_mutex_unlock(&sy->mu);
	return ok;
}

/*
 * The current segment is being sealed while the sync thread is busy: queue
 * a dup() of it, synced after the running sync. @returns false when the
 * queue is full or dup() fails (the caller syncs on the loop).
 */
static bool
syncer_defer(struct spool *sp)
{
	struct syncer *sy = sp->syncer;
	bool ok = false;
	int fd;

	pthread_mutex_lock(&sy->mu);
	if (sy->nsealed < SYNC_SEALED_MAX && (fd = dup(sp->wfd)) >= 0) {
		sy->sealed[sy->nsealed] = fd;
		sy->sealed_first[sy->nsealed] = sp->wseg->first;
		sy->nsealed++;
		pthread_cond_signal(&sy->cv);
		ok = true;
	}
	pthread_mutex_unlock(&sy->mu);
	return ok;
}

static void
sync_dir(struct spool *sp)
{
	sp->dir_dirty = false;
	if (fsync(sp->dirfd) != 0)
		io_error(sp, "fsync of", ".", errno);
}

static void
sync_data(struct spool *sp)
{
	char name[64];

	(void)spool_flush(sp);	/* a failure is logged; the rest is synced */
	sp->dirty = false;
	if (sp->wfd >= 0 && fdatasync(sp->wfd) != 0) {
		seg_name(name, sizeof(name), sp->wseg->first);
		io_error(sp, "fsync of", name, errno);
	}
}

/* ---- in-flight table and the again ring --------------------------------- */

static size_t
fly_home(const struct spool *sp, uint64_t seq)
{
	return (size_t)((seq * UINT64_C(0x9e3779b97f4a7c15)) >> 20) &
	    (sp->flycap - 1);
}

static struct fly *
fly_find(const struct spool *sp, uint64_t seq)
{
	size_t i;

	if (sp->flycap == 0)
		return NULL;
	for (i = fly_home(sp, seq); sp->fly[i].seq != 0;
	    i = (i + 1) & (sp->flycap - 1))
		if (sp->fly[i].seq == seq)
			return &sp->fly[i];
	return NULL;
}

static uint64_t
ring_front(const struct spool *sp)
{
	return sp->ring[sp->ring_head];
}

static void
ring_pop(struct spool *sp)
{
	sp->ring_head = (sp->ring_head + 1) & (sp->flycap - 1);
	sp->ring_n--;
}

static struct fly *fly_find(const struct spool *sp, uint64_t seq);

/*
 * The ring has flycap slots and holds at most one seq per again entry,
 * plus stale seqs of entries deleted meanwhile (they are skipped when they
 * come up); should it ever fill, the stale ones are squeezed out.
 */
static void
ring_push(struct spool *sp, uint64_t seq)
{
	size_t mask = sp->flycap - 1, n = 0;

	if (sp->ring_n == sp->flycap) {
		for (size_t i = 0; i < sp->ring_n; i++) {
			uint64_t s = sp->ring[(sp->ring_head + i) & mask];
			const struct fly *f = fly_find(sp, s);

			if (f != NULL && f->again)
				sp->ring[(sp->ring_head + n++) & mask] = s;
		}
		sp->ring_n = n;
	}
	sp->ring[(sp->ring_head + sp->ring_n) & mask] = seq;
	sp->ring_n++;
}

static void
fly_insert(struct spool *sp, const struct fly *f)
{
	size_t i = fly_home(sp, f->seq);

	while (sp->fly[i].seq != 0)
		i = (i + 1) & (sp->flycap - 1);
	sp->fly[i] = *f;
	sp->nfly++;
}

/* Make room for one more entry (load factor at most 1/2). */
static int
fly_reserve(struct spool *sp)
{
	struct fly *old = sp->fly, *nf;
	size_t oldcap = sp->flycap, cap, i;
	uint64_t *nr;

	if (2 * (sp->nfly + 1) <= sp->flycap)
		return 0;
	cap = oldcap ? 2 * oldcap : 1024;
	nf = calloc(cap, sizeof(*nf));
	nr = malloc(cap * sizeof(*nr));
	if (nf == NULL || nr == NULL) {
		free(nf);
		free(nr);
		return W2K_ENOMEM;
	}
	for (i = 0; i < sp->ring_n; i++)
		nr[i] = sp->ring[(sp->ring_head + i) & (oldcap - 1)];
	free(sp->ring);
	sp->ring = nr;
	sp->ring_head = 0;
	sp->fly = nf;
	sp->flycap = cap;
	sp->nfly = 0;
	for (i = 0; i < oldcap; i++)
		if (old[i].seq != 0)
			fly_insert(sp, &old[i]);
	free(old);
	return 0;
}

/* Delete with backward shift, so lookups never need tombstones. */
static void
fly_delete(struct spool *sp, struct fly *f)
{
	size_t mask = sp->flycap - 1, i = (size_t)(f - sp->fly), j = i, k;

	for (;;) {
		j = (j + 1) & mask;
		if (sp->fly[j].seq == 0)
			break;
		k = fly_home(sp, sp->fly[j].seq);
		/* Move j back to i unless its home lies cyclically in (i, j]. */
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		sp->fly[i] = sp->fly[j];
		i = j;
	}
	sp->fly[i].seq = 0;
	sp->nfly--;
}

/* ---- segments: create, seal, retire, drop ----------------------------- */

static void
cursor_leave(struct cursor *c)
{
	rd_close(&c->rd);
	c->seg = NULL;
	c->have = false;
}

/* Forget s (the oldest segment): its file is unlinked. */
static void
seg_remove(struct spool *sp, struct seg *s)
{
	char name[64];

	seg_name(name, sizeof(name), s->first);
	for (int i = 0; i < 2; i++)
		if (sp->cur[i].seg == s)
			cursor_leave(&sp->cur[i]);
	if (sp->rq.fd >= 0 && sp->rq_first == s->first) {
		rd_close(&sp->rq);
		sp->rq_have = false;
	}
	/*
	 * Without a sync of the directory a crash may bring the file back:
	 * then its records are produced again (duplicates with their ids),
	 * never lost. The spool's thread removes it and (with "batch") syncs
	 * the directory after; when its queue is full, or with "always", the
	 * loop does: "always" pays for the sync now, "batch" at the next
	 * group commit.
	 */
	if (sp->syncer != NULL && syncer_remove(sp, s->first)) {
		/* handed over */
	} else {
		if (unlinkat(sp->dirfd, name, 0) != 0 && errno != ENOENT)
			io_error(sp, "cannot remove", name, errno);
		if (sp->fsync == CFG_FSYNC_ALWAYS)
			sync_dir(sp);
		else if (sp->fsync == CFG_FSYNC_BATCH)
			sp->dir_dirty = true;
	}
	sp->stats.bytes -= s->bytes;
	sp->refusing = false;		/* room again (drop_newest) */
	/* Only the oldest segment is ever removed. */
	memmove(sp->segs, sp->segs + 1, (sp->nsegs - 1) * sizeof(*sp->segs));
	sp->nsegs--;
	free(s);
}

/* No more appends to the current segment. */
static void
seal(struct spool *sp, bool sync)
{
	if (sp->wseg == NULL)
		return;
	/*
	 * Sync before records go to the next segment: after a power loss
	 * the newest records may be gone, never ones in the middle. With
	 * "batch" the sync thread takes it, at once or after the sync it is
	 * running (syncer_defer()): a rotation then costs the loop no sync
	 * at all (one on the loop took up to tens of ms, dozens of times a
	 * second under load), and a power loss still costs only about the
	 * last group-commit window, though at a rotation that may be the end
	 * of this segment while the next one's first records survive (a torn
	 * tail at the next start). A segment with nothing unsynced needs
	 * nothing: a sync already handed over covers it. Records that still
	 * cannot be written are missing from the file, which the reader
	 * reports as lost (cursor_finish()).
	 */
	(void)spool_flush(sp);
	if (sync && sp->dirty && (sp->syncer == NULL ||
	    (!syncer_ask(sp, true) && !syncer_defer(sp))))
		sync_data(sp);
	sp->dirty = false;
	sp->wpend = 0;
	close(sp->wfd);
	sp->wfd = -1;
	sp->wseg = NULL;
}

/* Retire the oldest segments whose records are all delivered. */
static void
retire(struct spool *sp)
{
	while (sp->nsegs > 0) {
		struct seg *s = sp->segs[0];

		if (s == sp->wseg || s->lazy || s->nacked < s->nrec)
			return;
		seg_remove(sp, s);
	}
}

static int
seg_create(struct spool *sp)
{
	unsigned char hdr[SEG_HDR_LEN];
	char name[64];
	struct seg *s;
	int fd;

	seg_name(name, sizeof(name), sp->next_seq);
	fd = openat(sp->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		io_error(sp, "cannot create", name, errno);
		return W2K_EIO;
	}
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, SEG_MAGIC, 8);
	put64(hdr + 8, sp->next_seq);
	put32(hdr + 28, spool_crc32c(0, hdr, 28));
	if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    (s = calloc(1, sizeof(*s))) == NULL) {
		int err = errno;

		close(fd);
		unlinkat(sp->dirfd, name, 0);
		io_error(sp, "cannot write", name, err);
		return W2K_EIO;
	}
	/*
	 * The new file and its directory entry are made durable now: an
	 * fdatasync() of the file later does not persist its name, and
	 * records synced into a file the directory forgot would be lost.
	 */
	if (sp->fsync == CFG_FSYNC_ALWAYS ||
	    (sp->fsync == CFG_FSYNC_BATCH && sp->syncer == NULL)) {
		if (fdatasync(fd) != 0)
			io_error(sp, "fsync of", name, errno);
		sync_dir(sp);
	} else if (sp->fsync == CFG_FSYNC_BATCH) {
		/*
		 * With the sync thread: the group commit that first syncs
		 * records in this file syncs the directory after it, off the
		 * loop (a rotation used to cost three syncs on the loop).
		 */
		sp->dir_dirty = true;
	}
	s->first = s->end = sp->next_seq;
	s->bytes = s->data_off = SEG_HDR_LEN;
	if (seg_push(sp, s) != 0) {
		free(s);
		close(fd);
		unlinkat(sp->dirfd, name, 0);
		return W2K_ENOMEM;
	}
	sp->wseg = s;
	sp->wfd = fd;
	sp->wbase = SEG_HDR_LEN;
	sp->wpend = 0;
	sp->stats.bytes += SEG_HDR_LEN;
	return 0;
}

/* Count records dropped by on_full; one log line per LOG_EVERY_US. */
static void
drop_note(struct spool *sp, uint64_t n, bool force)
{
	int64_t now = w2k_mono_us();

	sp->stats.dropped += n;
	sp->drop_unlogged += n;
	if (sp->drop_unlogged == 0 || (!force && sp->drop_log_us != 0 &&
	    now - sp->drop_log_us < LOG_EVERY_US))
		return;
	log_warn("spool: full (max_bytes %" PRIu64 "): dropped %" PRIu64
	    " undelivered record%s (on_full = %s); %" PRIu64 " dropped since "
	    "start", sp->max_bytes, sp->drop_unlogged,
	    sp->drop_unlogged == 1 ? "" : "s",
	    sp->on_full == CFG_DROP_OLDEST ? "drop_oldest" : "drop_newest",
	    sp->stats.dropped);
	sp->drop_log_us = now;
	sp->drop_unlogged = 0;
}

/* on_full = drop_oldest: the oldest segment goes, delivered or not. */
static void
drop_oldest(struct spool *sp)
{
	struct seg *s = sp->segs[0];
	uint64_t n = s->nrec - s->nacked;

	if (s->lazy)	/* what stats.records counts for it */
		n = s->est > s->nacked ? s->est - s->nacked : 0;
	if (s == sp->wseg) {
		sp->wpend = 0;	/* dropped with the rest: nothing to write */
		seal(sp, false);
	}
	records_less(sp, n);
	seg_remove(sp, s);
	/* Records of s still in flight stay in the table: their delivery
	 * report finds no segment and changes nothing. */
	drop_note(sp, n, false);
}

/* Make room for a record of len bytes under max_bytes (spool.on_full). */
static int
make_room(struct spool *sp, size_t len)
{
	for (;;) {
		bool rotate = sp->wseg == NULL || (sp->wseg->nrec > 0 &&
		    sp->wseg->bytes + len > sp->seg_target);
		uint64_t want = len + (rotate ? SEG_HDR_LEN : 0);

		/*
		 * drop_newest: once full, every new record is refused until
		 * a delivered segment frees room, not only those that do not
		 * fit: a small record after a refused large one would leave a
		 * hole, and the same call's later events would arrive without
		 * their predecessor.
		 */
		if (sp->stats.bytes + want <= sp->max_bytes &&
		    !(sp->on_full == CFG_DROP_NEWEST && sp->refusing))
			return 0;
		if (sp->on_full == CFG_DROP_NEWEST || sp->nsegs == 0 ||
		    want > sp->max_bytes) {
			if (want <= sp->max_bytes)
				sp->refusing = true;
			drop_note(sp, 1, false);
			return W2K_EFULL;
		}
		drop_oldest(sp);
	}
}

static int
pwrite_all(int fd, const unsigned char *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t r = pwrite(fd, p, len, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/*
 * The live cursor usually waits exactly where the record just written
 * starts: hand it the bytes from the write buffer, which are what the file
 * now holds there, and spare it a read.
 */
static void
feed_live_cursor(struct spool *sp, const struct seg *s, size_t len)
{
	struct cursor *c = &sp->cur[1];

	if (c->seg != s || c->have || c->rd.fd < 0 ||
	    c->off != s->bytes - len || len > RD_CHUNK)
		return;
	if (c->rd.cap < RD_CHUNK) {
		unsigned char *nb = realloc(c->rd.buf, RD_CHUNK);

		if (nb == NULL)
			return;
		c->rd.buf = nb;
		c->rd.cap = RD_CHUNK;
	}
	memcpy(c->rd.buf, sp->wbuf + sp->wpend - len, len);
	c->rd.base = c->off;
	c->rd.len = len;
}

/*
 * Write-behind: appends collect in wbuf and go to the file in one write
 * when WB_FLUSH bytes are waiting, before any read of the file, before a
 * sync, and when the owner calls spool_flush() at the end of its loop
 * turn. One pwrite() per record was the largest system-call cost per
 * event; now it is one per loop turn.
 */
int
spool_flush(struct spool *sp)
{
	char name[64];

	if (sp->wpend == 0 || sp->wseg == NULL)
		return 0;
	if (pwrite_all(sp->wfd, sp->wbuf, sp->wpend, sp->wbase) != 0) {
		int err = errno;

		/*
		 * Cut a partial write off at once, so the next attempt (the
		 * records stay in wbuf) writes where the last good record
		 * ends; if even that fails, the next write overwrites it,
		 * and whatever is left at the end reads as a torn tail.
		 */
		(void)!ftruncate(sp->wfd, (off_t)sp->wbase);
		seg_name(name, sizeof(name), sp->wseg->first);
		io_error(sp, "cannot write to", name, err);
		return W2K_EIO;
	}
	sp->wbase += sp->wpend;
	sp->wpend = 0;
	return 0;
}

int
spool_append(struct spool *sp, const struct record *rec, uint64_t *seqp)
{
	size_t len = spool_rec_len(rec);
	struct seg *s;
	int r;

	sp->peek = PEEK_NONE;
	if (len == 0) {
		log_err("spool: record %s for %s cannot be spooled (too "
		    "large or malformed)", rec->id, rec->topic ? rec->topic :
		    "(no topic)");
		return W2K_EINVAL;
	}
	if ((r = make_room(sp, len)) != 0)
		return r;
	if (sp->wseg != NULL && sp->wseg->nrec > 0 &&
	    sp->wseg->bytes + len > sp->seg_target) {
		/* What waits must land in this segment, not the next. */
		if (spool_flush(sp) != 0)
			return W2K_EIO;
		seal(sp, true);
		retire(sp);
	}
	if (sp->wseg == NULL && (r = seg_create(sp)) != 0)
		return r;
	/* A failing disk: the records already waiting stay, this one is
	 * refused (the caller produces it without the spool). */
	if (sp->wpend > 0 && sp->wpend + len > WB_FLUSH &&
	    spool_flush(sp) != 0)
		return W2K_EIO;
	if (sp->wpend + len > sp->wcap) {
		size_t want = sp->wpend + len < WB_FLUSH ? WB_FLUSH :
		    sp->wpend + len;
		unsigned char *nb = realloc(sp->wbuf, want);

		if (nb == NULL)
			return W2K_ENOMEM;
		sp->wbuf = nb;
		sp->wcap = want;
	}
	s = sp->wseg;
	spool_rec_encode(rec, sp->next_seq, sp->wbuf + sp->wpend);
	sp->wpend += len;
	s->bytes += len;
	s->nrec++;
	*seqp = sp->next_seq++;
	s->end = sp->next_seq;
	sp->stats.bytes += len;
	if (sp->stats.records++ == 0)
		sp->stats.oldest_us = rec->received_us;
	feed_live_cursor(sp, s, len);
	sp->last_append_us = w2k_mono_us();
	if (sp->fsync == CFG_FSYNC_ALWAYS) {
		sp->dirty = true;
		sync_data(sp);
	} else if (sp->fsync == CFG_FSYNC_BATCH && !sp->dirty) {
		sp->dirty = true;
		sp->dirty_us = sp->last_append_us;
	}
	return 0;
}

/* ---- reading: cursors and records to produce again ------------------------ */

/* Start-up scan (and --check-config): its context (see scan_dir()). */
struct scan {
	struct spool	*sp;		/* spool_open(): repair and keep */
	int		 dirfd;
	const char	*dir;
	spool_report_fn	*fn;		/* spool_check(): report here */
	void		*ctx;
	struct spool_check_result res;
};


/* Out of file descriptors or memory: that passes; try again later. */
static bool
transient(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM ||
	    err == EINTR || err == EAGAIN;
}

static void bad_region(struct scan *sc, const char *name, int fd,
    uint64_t from, uint64_t to, bool tail);

/*
 * Bytes [c->off, to) of an unverified backlog segment hold no record: the
 * damage the start-up scan used to find, found as the segment is replayed
 * (set aside in corrupt/ and logged the same way; the file itself is left
 * as it is, and deleted once its records are delivered).
 */
static void
lazy_bad(struct spool *sp, struct cursor *c, uint64_t to)
{
	struct scan sc = { .sp = sp, .dirfd = sp->dirfd, .dir = sp->dir };
	char name[64];

	seg_name(name, sizeof(name), c->seg->first);
	bad_region(&sc, name, c->rd.fd, c->off, to, false);
}

/*
 * An unverified backlog segment has been read to its end: its records are
 * counted now (they replace the estimate in stats.records), and records
 * missing before the next segment are reported, as the start-up scan did.
 */
static void
lazy_done(struct spool *sp, struct seg *s)
{
	size_t i = seg_upper(sp, s->first);
	int64_t records = (int64_t)sp->stats.records - (int64_t)s->est +
	    (int64_t)s->nrec;

	s->lazy = false;
	sp->stats.records = records > 0 ? (uint64_t)records : 0;
	if (sp->stats.records == 0)
		sp->stats.oldest_us = 0;
	if (i < sp->nsegs && s->nrec > 0 &&
	    s->last_seq + 1 < sp->segs[i]->first)
		log_err("spool: records %" PRIu64 "..%" PRIu64 " are missing "
		    "(damaged or lost): they cannot be delivered",
		    s->last_seq + 1, sp->segs[i]->first - 1);
	if (s->nrec == 0)
		s->end = s->first;
}

/*
 * Move c onto the next segment of its region; false when there is none,
 * or when it cannot be opened just now (transient: tried again later).
 */
static bool
cursor_enter(struct spool *sp, struct cursor *c)
{
	size_t i = seg_upper(sp, c->after);
	char name[64];
	struct seg *s;
	int fd;

	if (i == sp->nsegs || sp->segs[i]->backlog == c->live)
		return false;
	s = sp->segs[i];
	seg_name(name, sizeof(name), s->first);
	fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && transient(errno)) {
		io_error(sp, "cannot open (will retry)", name, errno);
		return false;
	}
	c->seg = s;
	c->after = s->first;
	c->off = s->data_off;
	c->min_seq = s->first;
	c->have = false;
	c->rd.fd = fd;
	c->rd.len = 0;
	if (fd < 0) {
		log_err("spool: cannot open %s/%s: %s: its records cannot be "
		    "delivered", sp->dir, name, strerror(errno));
		c->off = s->bytes;	/* cursor_finish() accounts for them */
	}
	return true;
}

/* c read its sealed segment to the end: what it could not read is lost. */
static void
cursor_finish(struct spool *sp, struct cursor *c)
{
	struct seg *s = c->seg;

	if (s->lazy)
		lazy_done(sp, s);
	if (s->nread < s->nrec) {
		uint64_t lost = s->nrec - s->nread;
		char name[64];

		seg_name(name, sizeof(name), s->first);
		log_err("spool: segment %s/%s: %" PRIu64 " record%s could not "
		    "be read back: lost", sp->dir, name, lost,
		    lost == 1 ? "" : "s");
		s->nread = s->nrec;
		s->nacked += lost;
		records_less(sp, lost);
	}
	cursor_leave(c);
	retire(sp);
}

/* Decode the record at c's position; false when it has none now. */
static bool
cursor_peek(struct spool *sp, struct cursor *c)
{
	char name[64];

	while (!c->have) {
		struct seg *s;
		uint64_t off;
		int r;

		if (c->seg == NULL && !cursor_enter(sp, c))
			return false;
		s = c->seg;
		off = c->off;
		r = c->rd.fd < 0 ? 0 : seg_find_record(&c->rd, &off, s->bytes,
		    c->min_seq, s->end, &c->rec);
		if (r == 1) {
			if (s->lazy && off > c->off)
				lazy_bad(sp, c, off);
			c->off = off;
			c->have = true;
			break;
		}
		if (r == W2K_ENOMEM || r == W2K_EAGAIN)
			return false;	/* try again later */
		if (r < 0) {
			seg_name(name, sizeof(name), s->first);
			log_err("spool: cannot read %s/%s at offset %" PRIu64
			    ": %s", sp->dir, name, off, w2k_strerror(r));
		} else if (s->lazy && c->rd.fd >= 0 && c->off < s->bytes) {
			lazy_bad(sp, c, s->bytes);
		}
		c->off = s->bytes;
		if (s == sp->wseg)
			return false;	/* more is coming */
		cursor_finish(sp, c);
	}
	return true;
}

/*
 * Read the record of f (to produce it again) into sp->rq_rec.
 * @returns 0, W2K_EAGAIN (out of descriptors or memory: later), or
 *          W2K_EIO (it cannot be read back).
 */
static int
again_load(struct spool *sp, const struct fly *f, const struct seg *s)
{
	const unsigned char *p;
	char name[64];
	int64_t n;

	if (sp->rq_have && sp->rq_rec.seq == f->seq)
		return 0;
	sp->rq_have = false;
	if (sp->rq.fd < 0 || sp->rq_first != s->first) {
		rd_close(&sp->rq);
		seg_name(name, sizeof(name), s->first);
		if ((sp->rq.fd = openat(sp->dirfd, name, O_RDONLY |
		    O_CLOEXEC)) < 0) {
			if (!transient(errno))
				return W2K_EIO;
			io_error(sp, "cannot open (will retry)", name, errno);
			return W2K_EAGAIN;
		}
		sp->rq_first = s->first;
	}
	n = rd_fill(&sp->rq, f->off, f->len, s->bytes, &p);
	if (n == W2K_ENOMEM || n == W2K_EAGAIN)
		return W2K_EAGAIN;
	if (n < (int64_t)f->len ||
	    spool_rec_decode(p, f->len, &sp->rq_rec) != SPOOL_DEC_OK ||
	    sp->rq_rec.seq != f->seq)
		return W2K_EIO;
	sp->rq_have = true;
	return 0;
}

int
spool_next(struct spool *sp, const struct record **recp, uint64_t *seqp)
{
	int r;

	sp->peek = PEEK_NONE;
	if (sp->nout >= SPOOL_MAX_INFLIGHT)
		return W2K_EAGAIN;
	/* Records that failed go first: they are the oldest. */
	while (sp->ring_n > 0) {
		uint64_t seq = ring_front(sp);
		struct fly *f = fly_find(sp, seq);
		struct seg *s;

		if (f == NULL || !f->again) {
			ring_pop(sp);
			continue;
		}
		if ((s = seg_find(sp, seq)) == NULL) {	/* dropped meanwhile */
			fly_delete(sp, f);
			ring_pop(sp);
			continue;
		}
		if ((r = again_load(sp, f, s)) == W2K_EAGAIN)
			return W2K_EAGAIN;
		if (r != 0) {
			log_err("spool: record %" PRIu64 " could not be read "
			    "back to produce it again: lost", seq);
			fly_delete(sp, f);
			ring_pop(sp);
			s->nacked++;
			records_less(sp, 1);
			retire(sp);
			continue;
		}
		*recp = &sp->rq_rec.rec;
		*seqp = seq;
		sp->peek = PEEK_AGAIN;
		sp->peek_seq = seq;
		return 0;
	}
	if (fly_reserve(sp) != 0)
		return W2K_EAGAIN;	/* out of memory: try again later */
	/*
	 * Strictly in spooled order: the backlog found at start-up, then this
	 * run's records. Taking turns would let a live call_ended overtake
	 * the same call's call_answered from the backlog (contract §5: one
	 * key, one partition, in order); the backlog drains at hundreds of
	 * thousands of records a second, so new events wait little.
	 */
	for (unsigned i = 0; i < 2; i++) {
		struct cursor *c = &sp->cur[i];

		if (cursor_peek(sp, c)) {
			*recp = &c->rec.rec;
			*seqp = c->rec.seq;
			sp->peek = i == 0 ? PEEK_BACKLOG : PEEK_LIVE;
			sp->peek_seq = c->rec.seq;
			return 0;
		}
	}
	return W2K_EAGAIN;
}

int
spool_sent(struct spool *sp, uint64_t seq)
{
	enum peek pk = sp->peek;
	struct fly f;

	sp->peek = PEEK_NONE;
	if (pk == PEEK_NONE || seq != sp->peek_seq)
		return W2K_EINVAL;
	if (pk == PEEK_AGAIN) {
		fly_find(sp, seq)->again = false;
		ring_pop(sp);
	} else {
		unsigned i = pk == PEEK_BACKLOG ? 0 : 1;
		struct cursor *c = &sp->cur[i];

		memset(&f, 0, sizeof(f));
		f.seq = seq;
		f.received_us = c->rec.rec.received_us;
		f.off = c->off;
		f.len = (uint32_t)c->rec.len;
		fly_insert(sp, &f);	/* room reserved by spool_next() */
		c->seg->nread++;
		if (c->seg->lazy) {	/* verified now: counted */
			c->seg->nrec++;
			c->seg->last_seq = seq;
		}
		c->off += c->rec.len;
		c->min_seq = seq + 1;
		c->have = false;
	}
	sp->nout++;
	return 0;
}

int
spool_ack(struct spool *sp, uint64_t seq, int64_t *received_us)
{
	struct fly *f;
	struct seg *s;

	sp->peek = PEEK_NONE;
	if ((f = fly_find(sp, seq)) == NULL)
		return W2K_EINVAL;
	if (received_us != NULL)
		*received_us = f->received_us;
	if (!f->again)
		sp->nout--;
	/* An again entry's ring slot is skipped once the entry is gone. */
	fly_delete(sp, f);
	if ((s = seg_find(sp, seq)) != NULL) {
		s->nacked++;
		records_less(sp, 1);
		retire(sp);
	}
	return 0;
}

void
spool_requeue(struct spool *sp, uint64_t seq)
{
	struct fly *f;

	sp->peek = PEEK_NONE;
	if ((f = fly_find(sp, seq)) == NULL || f->again)
		return;
	sp->nout--;
	if (seg_find(sp, seq) == NULL) {	/* dropped by on_full */
		fly_delete(sp, f);
		return;
	}
	f->again = true;
	ring_push(sp, seq);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void
spool_rewind(struct spool *sp)
{
	uint64_t *v;
	size_t i, n = 0;

	sp->peek = PEEK_NONE;
	if (sp->nout == 0)
		return;
	/* Oldest first; without memory for sorting, in table order. */
	if ((v = malloc(sp->nout * sizeof(*v))) != NULL) {
		for (i = 0; i < sp->flycap; i++)
			if (sp->fly[i].seq != 0 && !sp->fly[i].again)
				v[n++] = sp->fly[i].seq;
		if (n > 0)
			qsort(v, n, sizeof(*v), cmp_u64);
		for (i = 0; i < n; i++)
			spool_requeue(sp, v[i]);
		free(v);
		return;
	}
	/* Requeueing may delete entries, which moves others: repeat. */
	while (sp->nout > 0)
		for (i = 0; i < sp->flycap; i++)
			if (sp->fly[i].seq != 0 && !sp->fly[i].again)
				spool_requeue(sp, sp->fly[i].seq);
}

int64_t
spool_received_us(const struct spool *sp, uint64_t seq)
{
	const struct fly *f = fly_find(sp, seq);

	return f != NULL ? f->received_us : 0;
}

uint64_t
spool_inflight(const struct spool *sp)
{
	return sp->nout;
}

const struct spool_stats *
spool_get_stats(const struct spool *sp)
{
	return &sp->stats;
}

/* ---- periodic work ----------------------------------------------------- */

/*
 * The oldest unacknowledged record is either handed out already (in the
 * table) or the next one a cursor reads (records are appended in receipt
 * order, so what follows a cursor is younger).
 */
static void
refresh_oldest(struct spool *sp)
{
	int64_t oldest = INT64_MAX;
	size_t i;

	for (i = 0; i < sp->flycap; i++)
		if (sp->fly[i].seq != 0 && sp->fly[i].received_us < oldest &&
		    seg_find(sp, sp->fly[i].seq) != NULL)
			oldest = sp->fly[i].received_us;
	for (i = 0; i < 2; i++)
		if (cursor_peek(sp, &sp->cur[i]) &&
		    sp->cur[i].rec.rec.received_us < oldest)
			oldest = sp->cur[i].rec.rec.received_us;
	sp->stats.oldest_us = sp->stats.records == 0 || oldest == INT64_MAX ?
	    0 : oldest;
	sp->oldest_at_us = w2k_mono_us();
}

int64_t
spool_tick(struct spool *sp)
{
	int64_t now = w2k_mono_us();
	bool busy = false, due;

	sp->peek = PEEK_NONE;
	if (sp->syncer != NULL)
		syncer_report(sp);
	due = sp->dirty && now - sp->dirty_us >= sp->fsync_us;
	if (sp->syncer != NULL) {
		if (due || sp->dir_dirty) {
			if (syncer_ask(sp, due))
				sp->dirty = sp->dirty && !due;
			else
				busy = true;	/* the last one still runs */
		}
	} else {
		if (due)
			sync_data(sp);
		if (sp->dir_dirty)
			sync_dir(sp);
	}
	/*
	 * A segment whose records are all delivered and that has seen no
	 * append for a while is retired now rather than when it fills up:
	 * on a quiet system a crash then replays (almost) nothing.
	 */
	if (sp->wseg != NULL && sp->nsegs == 1 &&
	    sp->wseg->nacked == sp->wseg->nrec &&
	    now - sp->last_append_us >= IDLE_RETIRE_US) {
		seal(sp, false);
		retire(sp);
		if (sp->dir_dirty)
			sync_dir(sp);
	}
	if (now - sp->oldest_at_us >= OLDEST_US)
		refresh_oldest(sp);
	if (sp->drop_unlogged > 0 && now - sp->drop_log_us >= LOG_EVERY_US)
		drop_note(sp, 0, true);
	if (busy)
		return SYNC_RETRY_US;
	if (!sp->dirty)
		return -1;
	return now - sp->dirty_us >= sp->fsync_us ? 0 :
	    sp->dirty_us + sp->fsync_us - now;
}

/* ---- scanning at start-up (and for --check-config) ---------------------- */

static void
scan_note(struct scan *sc, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
scan_note(struct scan *sc, enum log_level lvl, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (sc->sp != NULL)
		log_msg(lvl, "spool: %s", buf);
	else if (sc->fn != NULL)
		sc->fn(sc->ctx, buf);
}

/*
 * Copy bytes [from, to) of a damaged segment into corrupt/ before they are
 * truncated or skipped, so nothing is destroyed that someone might still
 * want to look at. The copy is synced before the caller truncates. Its
 * name carries the offset and the checksum of the bytes, so the same
 * damage found again at the next start is not copied twice.
 */
static void
set_aside(struct scan *sc, const char *name, int fd, uint64_t from,
    uint64_t to, char *where, size_t wlen)
{
	char tmp[128], final[160];
	unsigned char buf[RD_CHUNK];
	uint32_t crc = 0;
	uint64_t off;
	int cfd, ofd = -1;

	snprintf(where, wlen, "(could not be set aside)");
	if (mkdirat(sc->dirfd, CORRUPT_DIR, 0700) != 0 && errno != EEXIST)
		goto fail;
	if ((cfd = openat(sc->dirfd, CORRUPT_DIR, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0)
		goto fail;
	snprintf(tmp, sizeof(tmp), "%s.%" PRIu64 ".tmp", name, from);
	if ((ofd = openat(cfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0)
		goto fail_dir;
	for (off = from; off < to; ) {
		size_t n = to - off < sizeof(buf) ? (size_t)(to - off) :
		    sizeof(buf);
		ssize_t r = pread(fd, buf, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (pwrite_all(ofd, buf, (size_t)r, off - from) != 0)
			goto fail_tmp;
		crc = spool_crc32c(crc, buf, (size_t)r);
		off += (uint64_t)r;
	}
	if (fdatasync(ofd) != 0)
		goto fail_tmp;
	close(ofd);
	ofd = -1;
	snprintf(final, sizeof(final), "%s.%" PRIu64 ".%08" PRIx32, name,
	    from, crc);
	if (renameat2(cfd, tmp, cfd, final, RENAME_NOREPLACE) != 0) {
		if (errno != EEXIST)
			goto fail_tmp;
		unlinkat(cfd, tmp, 0);	/* the same bytes are there already */
	}
	fsync(cfd);
	close(cfd);
	snprintf(where, wlen, "%s/%s/%s", sc->dir, CORRUPT_DIR, final);
	return;
fail_tmp:
	if (ofd >= 0)
		close(ofd);
	unlinkat(cfd, tmp, 0);
fail_dir:
	close(cfd);
fail:
	log_warn("spool: cannot set aside damaged bytes of %s: %s", name,
	    strerror(errno));
}

/* Bytes [from, to) of a segment are not records. */
static void
bad_region(struct scan *sc, const char *name, int fd, uint64_t from,
    uint64_t to, bool tail)
{
	char where[PATH_MAX];
	uint64_t n = to - from;

	sc->res.problems++;
	if (sc->sp == NULL) {
		scan_note(sc, LOG_LVL_WARN, "segment %s: %s of %" PRIu64
		    " byte%s at offset %" PRIu64 " (%s at the next start)",
		    name, tail ? "torn tail" : "unreadable data", n,
		    n == 1 ? "" : "s", from, tail ? "truncated" :
		    "set aside");
		return;
	}
	set_aside(sc, name, fd, from, to, where, sizeof(where));
	if (tail) {
		/* A record cut short by a crash or power loss: the contract's
		 * "truncated, logged". */
		if (ftruncate(fd, (off_t)from) != 0 || fdatasync(fd) != 0)
			log_warn("spool: cannot truncate %s: %s", name,
			    strerror(errno));
		scan_note(sc, LOG_LVL_WARN, "segment %s/%s: torn tail of %"
		    PRIu64 " byte%s at offset %" PRIu64 " (an interrupted "
		    "write): truncated; the bytes are in %s", sc->dir, name, n,
		    n == 1 ? "" : "s", from, where);
	} else {
		scan_note(sc, LOG_LVL_ERR, "segment %s/%s: %" PRIu64
		    " unreadable byte%s at offset %" PRIu64 " (bad checksum): "
		    "set aside in %s; the records around them are kept",
		    sc->dir, name, n, n == 1 ? "" : "s", from, where);
	}
}

struct seg_scan {
	uint64_t	nrec;
	uint64_t	end;		/* one past the last good seq */
	uint64_t	data_off;
	uint64_t	size;		/* after repair */
	bool		unreadable;	/* could not be opened or read */
};

/*
 * Scan one segment file: count its good records, report (and with sc->sp,
 * repair) the bytes between and after them. limit: the next segment's
 * first seq; a record claiming a seq at or beyond it cannot be genuine.
 */
static void
scan_segment(struct scan *sc, uint64_t first, uint64_t limit,
    struct seg_scan *out)
{
	struct reader rd;
	struct spool_rec rec;
	const unsigned char *p;
	char name[64];
	uint64_t off, expect;
	struct stat st;
	int64_t n;
	int r;

	memset(out, 0, sizeof(*out));
	out->end = first;
	seg_name(name, sizeof(name), first);
	rd_init(&rd);
	rd.fd = openat(sc->dirfd, name, (sc->sp ? O_RDWR : O_RDONLY) |
	    O_CLOEXEC);
	if (rd.fd < 0 || fstat(rd.fd, &st) != 0) {
		scan_note(sc, LOG_LVL_ERR, "cannot open %s/%s: %s: its records "
		    "cannot be delivered", sc->dir, name, strerror(errno));
		sc->res.problems++;
		out->unreadable = true;
		rd_free(&rd);
		return;
	}
	out->size = (uint64_t)st.st_size;
	/* A valid header: records start after it; else search from 0. */
	n = rd_fill(&rd, 0, SEG_HDR_LEN, out->size, &p);
	expect = n >= SEG_HDR_LEN && memcmp(p, SEG_MAGIC, 8) == 0 &&
	    get64(p + 8) == first &&
	    spool_crc32c(0, p, 28) == get32(p + 28) ? SEG_HDR_LEN : 0;
	off = expect;
	for (;;) {
		r = seg_find_record(&rd, &off, out->size, out->end, limit,
		    &rec);
		if (r < 0) {
			scan_note(sc, LOG_LVL_ERR, "cannot read %s/%s at "
			    "offset %" PRIu64 ": %s: the rest of it cannot be "
			    "delivered", sc->dir, name, off, w2k_strerror(r));
			sc->res.problems++;
			out->unreadable = true;
			break;
		}
		if (r == 0)
			break;
		if (off > expect)
			bad_region(sc, name, rd.fd, expect, off, false);
		if (out->nrec++ == 0)
			out->data_off = off;
		out->end = rec.seq + 1;
		off += rec.len;
		expect = off;
	}
	if (!out->unreadable && expect < out->size) {
		bad_region(sc, name, rd.fd, expect, out->size, true);
		if (sc->sp != NULL)
			out->size = expect;
	}
	rd_free(&rd);
}

static int
list_segments(int dirfd, uint64_t **vp, size_t *np)
{
	uint64_t *v = NULL, first;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	*vp = NULL;
	*np = 0;
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return W2K_EIO;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return W2K_EIO;
	}
	while ((de = readdir(d)) != NULL) {
		if ((first = seg_parse_name(de->d_name)) == 0)
			continue;	/* not ours: corrupt/, tests' files */
		if (n == cap) {
			uint64_t *nv;

			cap = cap ? 2 * cap : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				free(v);
				closedir(d);
				return W2K_ENOMEM;
			}
			v = nv;
		}
		v[n++] = first;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_u64);
	*vp = v;
	*np = n;
	return 0;
}

/*
 * An older backlog segment at start-up: kept unverified, its records
 * estimated from its size (avg bytes a record), its header checked.
 * @returns 0, or W2K_ENOMEM.
 */
static int
lazy_segment(struct scan *sc, uint64_t first, uint64_t limit, uint64_t avg)
{
	unsigned char hdr[SEG_HDR_LEN];
	char name[64];
	struct stat st;
	struct seg *s;
	int fd;

	seg_name(name, sizeof(name), first);
	if ((fd = openat(sc->dirfd, name, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0) {
		scan_note(sc, LOG_LVL_ERR, "cannot open %s/%s: %s: its records "
		    "cannot be delivered", sc->dir, name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL || seg_push(sc->sp, s) != 0) {
		free(s);
		close(fd);
		return W2K_ENOMEM;
	}
	s->first = first;
	s->end = limit;		/* its records' seqs are below the next's */
	s->bytes = (uint64_t)st.st_size;
	/* A valid header: records start after it; else search from 0. */
	s->data_off = pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    memcmp(hdr, SEG_MAGIC, 8) == 0 && get64(hdr + 8) == first &&
	    spool_crc32c(0, hdr, 28) == get32(hdr + 28) ? SEG_HDR_LEN : 0;
	close(fd);
	s->backlog = true;
	s->lazy = true;
	s->est = s->bytes > s->data_off ?
	    (s->bytes - s->data_off + avg - 1) / avg : 0;
	sc->sp->stats.bytes += s->bytes;
	sc->sp->stats.records += s->est;
	sc->res.segments++;
	sc->res.records += s->est;
	sc->res.bytes += s->bytes;
	return 0;
}

/* Every segment, oldest first; with sc->sp, repaired and kept there. */
static int
scan_dir(struct scan *sc)
{
	uint64_t *firsts, prev_end = 0, next_seq = 1, avg = 0;
	bool have_prev = false;
	struct seg_scan ss, last;
	char name[64];
	size_t n, i, newest;
	int r;

	if ((r = list_segments(sc->dirfd, &firsts, &n)) != 0) {
		scan_note(sc, LOG_LVL_ERR, "cannot list %s: %s", sc->dir,
		    w2k_strerror(r));
		return r;
	}
	/*
	 * At start-up (sc->sp) only the newest segment that holds records is
	 * read and checked now: a crash can tear only the segment being
	 * written, and its end gives the next sequence number. The older
	 * ones are verified as they are replayed (lazy_bad(), lazy_done()),
	 * so READY=1 does not wait for gigabytes to be read (contract §9).
	 * --check-config (no sc->sp) still reads everything.
	 */
	newest = n;
	if (sc->sp != NULL) {
		while (newest > 0) {
			scan_segment(sc, firsts[newest - 1], SEQ_LIMIT, &last);
			if (last.nrec > 0 || last.unreadable)
				break;
			/* nothing to deliver: an empty segment (a crash right
			 * after creating it), or only damage, set aside */
			seg_name(name, sizeof(name), firsts[newest - 1]);
			unlinkat(sc->dirfd, name, 0);
			newest--;
		}
		if (newest > 0 && last.nrec > 0)
			avg = (last.size - last.data_off) / last.nrec;
		if (avg == 0)
			avg = LAZY_AVG_GUESS;
	}
	for (i = 0; i < n && i < newest; i++) {
		uint64_t first = firsts[i];
		uint64_t limit = i + 1 < n ? firsts[i + 1] : SEQ_LIMIT;
		struct seg *s;

		if (sc->sp != NULL && i + 1 < newest) {
			if ((r = lazy_segment(sc, first, limit, avg)) ==
			    W2K_ENOMEM) {
				free(firsts);
				return r;
			}
			if (first >= next_seq)
				next_seq = first + 1;
			have_prev = false;
			continue;
		}
		if (sc->sp != NULL)
			ss = last;	/* the newest: read above */
		else
			scan_segment(sc, first, limit, &ss);
		if (ss.unreadable && ss.nrec == 0) {
			/* Kept as it is, its end unknown: new segments must
			 * not take its name. */
			if (first >= next_seq)
				next_seq = first + 1;
			have_prev = false;
			continue;
		}
		/* Segments are retired oldest first, so those left follow
		 * each other without gaps: a gap is a segment gone missing. */
		if (have_prev && first > prev_end) {
			scan_note(sc, LOG_LVL_ERR, "records %" PRIu64 "..%"
			    PRIu64 " are missing (a segment file was removed "
			    "or lost): they cannot be delivered", prev_end,
			    first - 1);
			sc->res.problems++;
		}
		have_prev = ss.nrec > 0;
		prev_end = ss.end;
		if (ss.end > next_seq)
			next_seq = ss.end;
		if (ss.nrec == 0) {
			/* Nothing to deliver: an empty segment (a crash
			 * right after creating it) or only damage, reported
			 * and set aside above. */
			if (sc->sp != NULL) {
				seg_name(name, sizeof(name), first);
				unlinkat(sc->dirfd, name, 0);
			}
			continue;
		}
		sc->res.segments++;
		sc->res.records += ss.nrec;
		sc->res.bytes += ss.size;
		if (sc->sp == NULL)
			continue;
		if ((s = calloc(1, sizeof(*s))) == NULL ||
		    seg_push(sc->sp, s) != 0) {
			free(s);
			free(firsts);
			return W2K_ENOMEM;
		}
		s->first = first;
		s->end = ss.end;
		s->bytes = ss.size;
		s->data_off = ss.data_off;
		s->nrec = ss.nrec;
		s->backlog = true;
		sc->sp->stats.bytes += ss.size;
		sc->sp->stats.records += ss.nrec;
	}
	free(firsts);
	if (sc->sp != NULL) {
		sc->sp->next_seq = next_seq;
		if (sc->sp->fsync != CFG_FSYNC_NEVER)
			sync_dir(sc->sp);
	}
	return 0;
}

/* mkdir -p, the last component with mode 0700. */
static int
mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

int
spool_open(const struct cfg_spool *cs, struct spool **spp)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	struct scan sc;
	int r;

	if (sp == NULL || (sp->dir = strdup(cs->dir)) == NULL) {
		free(sp);
		return W2K_ENOMEM;
	}
	crc_init();
	sp->max_bytes = cs->max_bytes;
	sp->fsync = cs->fsync;
	sp->fsync_us = (int64_t)cs->fsync_interval_ms * 1000;
	sp->on_full = cs->on_full;
	/* About a thousand segments when full: drop_oldest drops 0.1 %, and
	 * memory per segment stays negligible. */
	sp->seg_target = cs->max_bytes / 1024;
	if (sp->seg_target < SEG_MIN_BYTES)
		sp->seg_target = SEG_MIN_BYTES;
	if (sp->seg_target > SEG_MAX_BYTES)
		sp->seg_target = SEG_MAX_BYTES;
	sp->wfd = sp->dirfd = -1;
	rd_init(&sp->rq);
	sp->rq.sp = sp;
	for (int i = 0; i < 2; i++) {
		rd_init(&sp->cur[i].rd);
		sp->cur[i].rd.sp = sp;
		sp->cur[i].live = i == 1;
	}
	if (mkdir_p(sp->dir) != 0 ||
	    (sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_err("spool: cannot create or open %s: %s", sp->dir,
		    strerror(errno));
		spool_close(sp);
		return W2K_EIO;
	}
	/* Two processes appending to one spool would corrupt it. */
	if (flock(sp->dirfd, LOCK_EX | LOCK_NB) != 0) {
		log_err("spool: %s: %s", sp->dir, errno == EWOULDBLOCK ?
		    "in use by another process (another wsi2kafka?)" :
		    strerror(errno));
		spool_close(sp);
		return W2K_EIO;
	}
	memset(&sc, 0, sizeof(sc));
	sc.sp = sp;
	sc.dirfd = sp->dirfd;
	sc.dir = sp->dir;
	if ((r = scan_dir(&sc)) != 0) {
		if (r == W2K_ENOMEM) {
			spool_close(sp);
			return r;
		}
		/* Unlistable: start empty, keep what is there untouched.
		 * (Appends would fail the same way and be reported.) */
		sp->next_seq = 1;
	}
	/* The live cursor starts after the backlog. */
	sp->cur[1].after = sp->nsegs > 0 ? sp->segs[sp->nsegs - 1]->first : 0;
	if (sp->stats.records > 0)
		log_notice("spool %s: %" PRIu64 " record%s (%" PRIu64 " bytes) "
		    "from an earlier run to deliver", sp->dir,
		    sp->stats.records, sp->stats.records == 1 ? "" : "s",
		    sp->stats.bytes);
	else
		log_info("spool %s: empty", sp->dir);
	if (sp->fsync != CFG_FSYNC_ALWAYS && (r = syncer_start(sp)) != 0) {
		log_err("spool: cannot start the sync thread");
		spool_close(sp);
		return r;
	}
	refresh_oldest(sp);
	sp->peek = PEEK_NONE;
	*spp = sp;
	return 0;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	sp->peek = PEEK_NONE;
	syncer_stop(sp);	/* its sync finishes; seal() syncs the rest */
	if (sp->dirfd >= 0) {
		seal(sp, sp->fsync != CFG_FSYNC_NEVER);
		retire(sp);
		if (sp->fsync != CFG_FSYNC_NEVER)
			sync_dir(sp);
		if (sp->drop_unlogged > 0)
			drop_note(sp, 0, true);
		if (sp->stats.records > 0)
			log_notice("spool %s: %" PRIu64 " undelivered record%s "
			    "kept for the next start", sp->dir,
			    sp->stats.records, sp->stats.records == 1 ? "" :
			    "s");
		close(sp->dirfd);	/* releases the lock */
	}
	for (int i = 0; i < 2; i++)
		rd_free(&sp->cur[i].rd);
	rd_free(&sp->rq);
	for (size_t i = 0; i < sp->nsegs; i++)
		free(sp->segs[i]);
	free(sp->segs);
	free(sp->fly);
	free(sp->ring);
	free(sp->wbuf);
	free(sp->dir);
	free(sp);
}

int
spool_check(const char *dir, struct spool_check_result *res,
    spool_report_fn *fn, void *ctx)
{
	struct scan sc;
	int r;

	memset(&sc, 0, sizeof(sc));
	memset(res, 0, sizeof(*res));
	sc.dir = dir;
	sc.fn = fn;
	sc.ctx = ctx;
	if ((sc.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;	/* created at start */
		scan_note(&sc, LOG_LVL_ERR, "cannot open %s: %s", dir,
		    strerror(errno));
		return W2K_EIO;
	}
	r = scan_dir(&sc);
	close(sc.dirfd);
	*res = sc.res;
	return r;
}
