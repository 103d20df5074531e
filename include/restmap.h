/*
 * restmap.h — the PBX's REST answers (portsip-rest-cdr.md) → what the
 * backfill needs: tokens, pages of CDR rows, and each row as a call_cdr
 * record (contract §10).
 *
 * A row is rewritten as the WSI call_cdr payload it stands for (the WSI
 * names and value sets: started_at → start_time in Unix seconds, direction
 * INBOUND_CALL → inbound, end_reason CALLER_DISCONNECTED →
 * caller_disconnected, did_cid → did, trunk → trunk_name, duration →
 * talk_duration, id → cdr_id; other fields kept under their names), then
 * normalized by norm_frame() like any frame, with the REST id rule and
 * "source":"rest". So a REST record and a live one differ only where the
 * PBX's two interfaces do.
 *
 * Pure: no I/O, no logging, no state; any thread may call it. Everything
 * here takes hostile input (a PBX, or whatever answers on its port).
 */
#ifndef RESTMAP_H
#define RESTMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "norm.h"

#define RESTMAP_BODY_MAX	(8 * 1024 * 1024)	/* one answer */
#define RESTMAP_ID_MAX		128	/* longer row ids are refused */

struct cJSON;

/* A sign-in, refresh or GET /api/login answer. */
struct restmap_token {
	char	*access_token;	/* owned, secret: wipe (restmap_token_clear) */
	char	*refresh_token;	/* owned, secret; NULL when none */
	int64_t	 expires_in;	/* s; 0 when the answer gives none */
	int64_t	 expires_at;	/* Unix s (legacy GET /api/login); 0: none */
	bool	 two_factor;	/* {"two_factor_enabled":true}: unusable */
};

/**
 * @brief Read a token answer.
 * @param out overwritten; release with restmap_token_clear().
 * @returns 0 (out->access_token set, unless two_factor), W2K_EINVAL when
 *          the body holds no usable token, W2K_ENOMEM.
 */
int restmap_token_parse(const char *body, size_t len,
    struct restmap_token *out);

/** @brief Wipe and free what t owns; zero it. */
void restmap_token_clear(struct restmap_token *t);

/* One page of GET /api/calllogs or /api/cdrs: {"count":N,"items":[...]}. */
struct restmap_page {
	struct cJSON	*root;	/* owned */
	const struct cJSON *items; /* borrowed from root: the array */
	size_t		 nitems;
	int64_t		 count;	/* the answer's count; -1 when absent */
};

/**
 * @brief Parse a page.
 * @param out overwritten; release with restmap_page_free().
 * @returns 0, W2K_EINVAL (not such an object), W2K_ENOMEM.
 */
int restmap_page_parse(const char *body, size_t len,
    struct restmap_page *out);

void restmap_page_free(struct restmap_page *pg);

/** @returns row i of a page (borrowed from it), i < nitems. */
const struct cJSON *restmap_page_row(const struct restmap_page *pg,
    size_t i);

/* What the backfill decides a row by. */
struct restmap_row {
	char	 id[RESTMAP_ID_MAX + 1];	/* the row id (opaque) */
	char	 session_id[RESTMAP_ID_MAX + 1]; /* "" when none (/cdrs) */
	int64_t	 started;	/* Unix s; 0 when blank */
	int64_t	 ended;		/* Unix s; 0 when blank */
};

/**
 * @brief The decisive fields of a row.
 * @returns 0, or W2K_EINVAL when the row is no object or its id is
 *          missing, empty, too long or not a string/integer.
 */
int restmap_row_info(const struct cJSON *row, struct restmap_row *out);

/**
 * @brief A row as a call_cdr record (topic NULL: the caller routes it).
 * @param pbx       the PBX name, borrowed.
 * @param tenant_id the REST login's tenant (rows carry none), borrowed;
 *                  NULL gives tenant_id null and a null key.
 * @param res       out: as norm_frame() (one record, NORM_EVENTS);
 *                  release with norm_result_clear() whatever the return.
 * @returns 0, W2K_EINVAL (restmap_row_info() refuses the row), W2K_ENOMEM.
 */
int restmap_record(const char *pbx, const char *tenant_id,
    const struct cJSON *row, int64_t received_us, struct norm_result *res);

/**
 * @brief RFC 3339 ("2024-08-20T06:00:59.457188Z", "…+08:00"; a space for
 *        the 'T' too) to Unix seconds (the fraction is dropped).
 * @returns 0, or W2K_EINVAL.
 */
int restmap_time(const char *s, int64_t *secs);

/** @brief Unix seconds as "YYYY-MM-DDThh:mm:ssZ" (buf ≥ 32 bytes). */
void restmap_fmt_time(int64_t secs, char *buf, size_t len);

#endif
