/*
 * spool.h — the durable spool (contract §7): every record is appended here
 * before it is produced and leaves only when the broker acknowledged it.
 *
 * The spool is a directory of append-only segment files, each named by the
 * sequence number of its first record ("00000000000000000042.seg"). A
 * record is framed with a magic number, its length and CRC32C checksums, so
 * a torn or damaged record is recognised and set aside (in the directory's
 * corrupt/ subdirectory) while every good record around it is kept.
 * Delivered records are retired a whole segment at a time, by unlink(2),
 * which is atomic: after a crash a segment is either there, with every
 * record it had (some perhaps delivered already: duplicates, with the same
 * id), or gone because all of them had been delivered.
 *
 * The producer side is a small protocol:
 *   spool_append()          a new record → its sequence number (seq);
 *   spool_next()            the next record to hand to librdkafka (records
 *                           to produce again first, then the others in
 *                           spooled order: the backlog found at start-up,
 *                           then this run's);
 *   spool_sent()            librdkafka accepted it: it is in flight;
 *   spool_ack()             its delivery report said delivered;
 *   spool_requeue()         its delivery report said failed: again later;
 *   spool_rewind()          the producer is gone: everything in flight again.
 * Memory stays bounded whatever the spool's size: records are streamed from
 * disk; only a small entry per segment and one per record in flight are
 * kept.
 *
 * Single-threaded: call everything from the event loop thread. Nothing here
 * touches Kafka or the event loop; the owner drives spool_tick().
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "record.h"

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

/**
 * @brief Open (creating it, mode 0700, if missing) and lock the spool
 *        directory, scan every segment and repair what is damaged: a torn
 *        tail is truncated, unreadable bytes are copied to corrupt/ and
 *        skipped, records missing between segments are reported; each is
 *        logged. Damaged data never makes this fail.
 * @param cs  borrowed; copied.
 * @param spp out: the spool, owned by the caller (spool_close()).
 * @returns 0; W2K_EIO when the directory cannot be created, opened or
 *          locked (another process uses it), all logged; W2K_ENOMEM.
 */
int spool_open(const struct cfg_spool *cs, struct spool **spp);

/**
 * @brief Append one record. It is written to the file (write-behind) when
 *        256 KiB wait, before any read or sync of the file, or at the
 *        owner's next spool_flush(); durable per spool.fsync: with
 *        "always" before return, with "batch" at the next group commit
 *        (spool_tick()).
 * @param rec  borrowed; fully copied before return. rec->topic must be set.
 * @param seqp out: its sequence number.
 * @returns 0; W2K_EFULL when on_full dropped this record (drop_newest, or
 *          it is larger than max_bytes), counted and logged; W2K_EINVAL
 *          when it is too large to frame (over 1 GiB) or has no topic;
 *          W2K_EIO when the file cannot be written (logged): not spooled.
 */
int spool_append(struct spool *sp, const struct record *rec, uint64_t *seqp);

/**
 * @brief Write what spool_append() collected to the file. The owner calls
 *        it at the end of every event-loop turn that appended, so a record
 *        reaches the page cache (and survives a crash of this process)
 *        before the loop waits again.
 * @returns 0, or W2K_EIO (logged; the records stay and are written at the
 *          next call).
 */
int spool_flush(struct spool *sp);

/**
 * @brief The next record to produce, without taking it: calling again
 *        returns the same one until spool_sent() takes it.
 * @param recp out: borrowed from the spool, valid until the next spool
 *        call; never record_clear() it.
 * @param seqp out: its sequence number.
 * @returns 0, or W2K_EAGAIN when nothing waits (or too many records are
 *          in flight already).
 */
int spool_next(struct spool *sp, const struct record **recp, uint64_t *seqp);

/**
 * @brief The record spool_next() just returned was accepted by the
 *        producer: it is in flight until spool_ack() or spool_requeue().
 *        Call right after spool_next(), with no other spool call between.
 * @returns 0, or W2K_EINVAL when seq is not the record spool_next() gave.
 */
int spool_sent(struct spool *sp, uint64_t seq);

/**
 * @brief A record in flight was delivered (or is finished with: refused
 *        for good and dead-lettered). Retires segments that are done.
 * @param received_us out, may be NULL: the record's receipt time.
 * @returns 0, or W2K_EINVAL when seq is not in flight (already acked, or
 *          dropped by on_full meanwhile): nothing changes then.
 */
int spool_ack(struct spool *sp, uint64_t seq, int64_t *received_us);

/**
 * @brief A record in flight failed: spool_next() returns it again, before
 *        any other record. Unknown seqs are ignored.
 */
void spool_requeue(struct spool *sp, uint64_t seq);

/**
 * @brief The producer was destroyed: every record still in flight is
 *        produced again (oldest first), as if each had been requeued.
 */
void spool_rewind(struct spool *sp);

/**
 * @brief Periodic work: the group commit (fsync = "batch") once
 *        fsync_interval_ms have passed since the first unsynced append,
 *        retiring an idle, fully delivered segment, refreshing oldest_us,
 *        and rate-limited log lines about drops.
 * @returns microseconds until the group commit is due (0: call again now),
 *          or -1 when nothing is waiting to be synced (call it within a
 *          second or so anyway).
 */
int64_t spool_tick(struct spool *sp);

/** @returns the receipt time of a record in flight, 0 when seq is not. */
int64_t spool_received_us(const struct spool *sp, uint64_t seq);

/** @returns the number of records in flight (sent, not acked/requeued). */
uint64_t spool_inflight(const struct spool *sp);

/**
 * @brief Sync and close: what is unacknowledged stays for the next start;
 *        segments fully delivered are retired. Releases the lock. NULL is a
 *        no-op.
 */
void spool_close(struct spool *sp);

/* What spool_check() found. */
struct spool_check_result {
	uint64_t	segments;
	uint64_t	records;	/* readable records (some may have been
					   delivered already) */
	uint64_t	bytes;		/* size of the segment files */
	uint64_t	problems;	/* damage found (each reported) */
};

/** Receives one line about damage found, without a trailing newline. */
typedef void spool_report_fn(void *ctx, const char *msg);

/**
 * @brief Read-only check of a spool directory (--check-config): scans
 *        every segment like spool_open() without changing anything and
 *        reports each problem spool_open() would repair. Damage is not an
 *        error (start-up repairs it).
 * @param dir borrowed. A missing directory is fine (created at start).
 * @param fn  may be NULL.
 * @returns 0 (unreadable segments are reported and counted as problems),
 *          or W2K_EIO when the directory cannot be opened or listed
 *          (reported through fn).
 */
int spool_check(const char *dir, struct spool_check_result *res,
    spool_report_fn *fn, void *ctx);

/*
 * The record codec and the checksum, for the unit tests, the fuzz target
 * and the benchmark. A record on disk is a 16-byte header (magic, body
 * length, body CRC32C, header CRC32C; little-endian) and a body: seq,
 * received_us, flags, the lengths, the id, then topic and type (each with
 * its NUL), key, packed headers and value.
 */
#define SPOOL_REC_HDR_LEN	16
#define SPOOL_REC_FIXED_LEN	66	/* body bytes before the strings */
#define SPOOL_REC_MIN_LEN	(SPOOL_REC_HDR_LEN + SPOOL_REC_FIXED_LEN + 3)
#define SPOOL_REC_MAX_BODY	(UINT32_C(1) << 30)

/** A decoded record: rec borrows from the buffer it was decoded from. */
struct spool_rec {
	uint64_t	seq;
	size_t		len;		/* bytes it takes, header included */
	struct record	rec;		/* borrowed pointers; never clear */
};

/** @returns the encoded size of rec, or 0 when it cannot be encoded (no
 *  topic, an empty topic, or over SPOOL_REC_MAX_BODY). */
size_t spool_rec_len(const struct record *rec);

/**
 * @brief Encode rec with sequence number seq.
 * @param buf at least spool_rec_len(rec) bytes.
 */
void spool_rec_encode(const struct record *rec, uint64_t seq,
    unsigned char *buf);

enum spool_dec {
	SPOOL_DEC_OK,		/* out filled */
	SPOOL_DEC_SHORT,	/* the header is valid, the body not all there
				   yet: out->len says how many bytes it needs */
	SPOOL_DEC_BAD,		/* not a record here */
};

/**
 * @brief Decode the record at the start of buf[0..len).
 * @param out  out: on SPOOL_DEC_OK, the record, borrowing from buf.
 * @returns an enum spool_dec.
 */
enum spool_dec spool_rec_decode(const unsigned char *buf, size_t len,
    struct spool_rec *out);

/** @brief CRC32C (Castagnoli), continuing from crc (0 to start). */
uint32_t spool_crc32c(uint32_t crc, const void *buf, size_t len);

#ifdef W2K_TESTING
/** @brief Tests only: 1 uses the CPU's CRC32C instruction when it has one,
 *         0 the portable tables. */
void spool_crc32c_force(int hw);
#endif

#endif
