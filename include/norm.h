/*
 * norm.h — one WebSocket frame from a PBX → records (contract §5).
 *
 * norm_frame() classifies a complete frame as
 *   - events: one record per event (an extension_status frame with N entries
 *     gives N records), with envelope, stable id, key, headers and
 *     normalized data;
 *   - a command reply ({"command":…} or the v16.0 form {"status":0}), which
 *     the session handles and which is never published;
 *   - a dead letter (invalid UTF-8 or JSON, over a limit below, not an
 *     object, no event_type, too large), as one record for the dead-letter
 *     topic.
 * Pure: no I/O, no logging, no state kept between calls (only constant
 * lookup data, made once, thread-safely), so any thread may call it. The
 * caller routes records (sets record.topic); they come out with topic NULL.
 */
#ifndef NORM_H
#define NORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

enum norm_kind {
	NORM_EVENTS,	/* recs[0..nrecs) are events */
	NORM_REPLY,	/* a command reply: see reply_* */
	NORM_DEAD,	/* recs[0] is a dead letter; dead_reason says why */
};

/* Dead-letter reasons (the "reason" field, and a metric label). */
#define NORM_DL_INVALID_UTF8	"invalid_utf8"
#define NORM_DL_INVALID_JSON	"invalid_json"
#define NORM_DL_NOT_OBJECT	"not_object"
#define NORM_DL_NO_EVENT_TYPE	"no_event_type"
#define NORM_DL_TOO_LARGE	"too_large"
#define NORM_DL_TOO_DEEP	"too_deep"
#define NORM_DL_TOO_MANY_MEMBERS "too_many_members"

/*
 * Limits on a frame's JSON, beyond the size limit (pbx.max_frame). Real
 * PortSIP events nest 3 levels deep (a CDR: the frame, call_targets, one
 * target), have at most about 40 members per object, and their longest
 * arrays are call_targets (a few dozen entries for a long IVR/queue call)
 * and an extension_status snapshot's status (one entry per extension: a few
 * thousand on a large tenant; about 16000 fit in the default 4 MiB frame).
 * The limits leave ample room above that and bound what one hostile frame
 * costs (work, memory, and every consumer's parser).
 *   NORM_MAX_DEPTH     nested objects/arrays, the frame's own object
 *                      included (its record nests one level deeper);
 *                      over it: too_deep
 *   NORM_MAX_MEMBERS   members of one object, duplicate keys included
 *   NORM_MAX_ELEMENTS  elements of one array
 *   NORM_MAX_VALUES    values in the whole frame (objects, arrays, strings,
 *                      numbers, true/false/null): bounds the parse tree,
 *                      40 bytes a value, whatever pbx.max_frame is
 *                      over any of these: too_many_members
 * The first problem in the text decides the reason.
 */
#define NORM_MAX_DEPTH		32
#define NORM_MAX_MEMBERS	10000
#define NORM_MAX_ELEMENTS	100000
#define NORM_MAX_VALUES		1000000

/* At most this much of a bad frame is kept in a dead letter's "raw". */
#define NORM_DL_RAW_MAX		(64 * 1024)

struct norm_frame {
	const char	*pbx;		/* configured PBX name, borrowed */
	const unsigned char *data;	/* the frame (or its first bytes when
					   too_large), borrowed */
	size_t		 len;
	bool		 too_large;	/* the frame exceeded the size limit;
					   data holds its beginning */
	int64_t		 received_us;	/* frame receipt, µs since the epoch */
	const char	*rest_row_id;	/* NULL for a WSI frame; else the
					   frame is a CDR read back over REST
					   (restmap.h), this its row id,
					   borrowed: "source":"rest" and the
					   id of contract §10 */
};

struct norm_result {
	enum norm_kind	 kind;
	struct record	*recs;		/* owned by the result */
	size_t		 nrecs;
	const char	*dead_reason;	/* NORM_DL_*, static; NORM_DEAD only */
	/* NORM_REPLY only: */
	char		*reply_command;	/* "auth", "subscribe", …; NULL for
					   the v16.0 form; owned */
	int		 reply_status;	/* 0 ok; -1 (or other) error */
	char		*reply_error;	/* server's text or NULL; owned */
};

/**
 * @brief Normalize one frame.
 * @param in  borrowed; nothing is kept after return.
 * @param res out: overwritten; release with norm_result_clear() whatever
 *        the return value.
 * @returns 0 (res->kind says what it is) or W2K_ENOMEM (res empty).
 */
int norm_frame(const struct norm_frame *in, struct norm_result *res);

/**
 * @brief Build a dead letter for bytes that cannot be published as they are
 *        (a bad frame, or a record the broker refuses for good).
 * @param pbx    PBX name (the key), borrowed.
 * @param reason the "reason" field, borrowed (a NORM_DL_* or a Kafka
 *               error name).
 * @param raw    the bytes, borrowed; cut to NORM_DL_RAW_MAX.
 * @param truncated  raw is already only the beginning of something larger.
 * @param out    out: the record (topic NULL), owned by the caller.
 * @returns 0 or W2K_ENOMEM (out zeroed).
 */
int norm_dead_letter(const char *pbx, const char *reason,
    const unsigned char *raw, size_t len, bool truncated, int64_t received_us,
    struct record *out);

/** @brief Free what res owns and zero it. */
void norm_result_clear(struct norm_result *res);

/**
 * @brief The record id (contract §5): the first 128 bits, as 32 lowercase
 *        hex digits, of SHA-256(pbx, 0x00, frame, 0x00, decimal part index).
 * @param out 33 bytes, NUL-terminated on return.
 */
void norm_record_id(const char *pbx, const unsigned char *frame, size_t len,
    unsigned part, char out[RECORD_ID_LEN + 1]);

/** @returns the contract's class for an event type: "call", "target", "cdr",
 *  "extension", "queue", "management" or "other" (static strings). */
const char *norm_class(const char *type);

/*
 * Event types known from the PortSIP documentation (portsip-wsi.md §4),
 * for metric labels: a label value must never come from PBX data, so every
 * other type counts as "other" (NORM_TYPE_OTHER).
 */
#define NORM_NTYPES	44		/* 43 known types + "other" */
#define NORM_TYPE_OTHER	(NORM_NTYPES - 1)

/** @returns the index of type in the known list, or NORM_TYPE_OTHER. */
unsigned norm_type_index(const char *type);

/** @returns the name for an index (< NORM_NTYPES), "other" for the last. */
const char *norm_type_name(unsigned idx);

#endif
