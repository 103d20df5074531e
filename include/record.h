/*
 * record.h — one Kafka record as it travels from the normalizer through
 * the spool to the producer: topic, key, headers, value.
 *
 * A record owns all of its buffers. Headers are packed as consecutive
 * NUL-terminated "name\0value\0" pairs so the whole record is a handful of
 * flat byte strings, easy to copy, persist and hand to librdkafka.
 */
#ifndef RECORD_H
#define RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_ID_LEN 32	/* hex digits of the record id */

struct record {
	char	*topic;		/* owned; NULL until routed */
	char	*key;		/* owned; NULL = null key */
	size_t	 key_len;
	char	*value;		/* owned; JSON, not NUL-terminated on purpose */
	size_t	 value_len;
	char	*hdrs;		/* owned; packed "name\0value\0"…, may be NULL */
	size_t	 hdrs_len;
	char	*type;		/* owned; event type ("" for dead letters) */
	char	 id[RECORD_ID_LEN + 1];	/* lowercase hex, NUL-terminated */
	bool	 dead;		/* a dead letter */
	int64_t	 received_us;	/* frame receipt, µs since the epoch */
};

/** @brief Free every buffer of rec and zero it; rec itself is not freed. */
void record_clear(struct record *rec);

/**
 * @brief Append one header to rec->hdrs.
 * @param name, value borrowed; copied. Neither may contain a NUL byte.
 * @returns 0 or W2K_ENOMEM (rec unchanged).
 */
int record_hdr_add(struct record *rec, const char *name, const char *value);

/**
 * @brief Iterate headers: pass *pos = 0 first.
 * @param name, value out: point into rec->hdrs (borrowed from rec).
 * @returns true while a header was produced.
 */
bool record_hdr_next(const struct record *rec, size_t *pos,
    const char **name, const char **value);

#endif
