/*
 * backfill.h — CDRs of WebSocket gaps, read back over the PBX's REST API
 * (contract §10, portsip-rest-cdr.md).
 *
 * One backfill per PBX with pbx.backfill.enabled. It watches the PBX's CDR
 * subscription once a second: while it is active, the PBX is "live" up to
 * the last frame received; when it is not (session down, subscription
 * refused, daemon stopped), a gap is open from the last live moment. When
 * the subscription is active again the gap closes, and once its end margin
 * has passed (so that the CDRs of calls that ended around the reconnect
 * have arrived live, and the PBX has written its rows) its CDRs are read:
 *
 *   sign in (POST /api/auth/sign_in; before v22.2.11 POST + GET /api/login,
 *   told apart by the answer) → GET /api/calllogs (else /api/cdrs) with
 *   filter on started_at from the gap's start − max_call_duration to its
 *   end, orderby started_at asc, top/skip paging with an overlap, rows
 *   de-duplicated by id → publish each row whose call ended inside the gap
 *   and whose (tenant_id, session_id) had no live call_cdr → next gap.
 *
 * A gap starts BACKFILL_MARGIN_S before the last live frame and ends that
 * long after the subscription came back; the index of live CDR sessions
 * covers both margins, so a call is published once: live or from REST.
 *
 * Persistence, beside the spool (<spool.dir>/backfill-<pbx>.state, a small
 * JSON file rewritten as tmp + fsync + rename by a writer thread, so that
 * no fsync runs on the event loop): the last live time, the gaps not yet
 * read, the learned tenant id and the index of live CDRs (with an
 * append-only journal, backfill-<pbx>.journal, written before the live
 * record goes to the spool, so a SIGKILL loses no entry; rotated to
 * .journal.old at each snapshot, removed once the snapshot is durable). A crash or a stop
 * therefore loses no gap; a gap interrupted is read again from its start
 * (the same rows give the same record ids).
 *
 * Everything but that writer runs on the lws event loop: HTTP requests are lws client
 * connections on a vhost of their own with the PBX's TLS settings, paced
 * at requests_per_second, retried with backoff on 429, 5xx and transport
 * errors, and never block the loop or the live session.
 */
#ifndef BACKFILL_H
#define BACKFILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "cfg.h"
#include "pbx.h"
#include "record.h"
#include "restmap.h"
#include "route.h"

#define BACKFILL_MARGIN_S	60	/* before and after a gap */
#define BACKFILL_TOP		100	/* rows per page */
#define BACKFILL_OVERLAP	10	/* rows a page repeats of the last */
#define BACKFILL_MAX_GAPS	64	/* pending gaps kept (merged beyond) */
#define BACKFILL_INDEX_MAX	200000	/* live CDR sessions remembered */

struct backfill;

struct backfill_env {
	struct lws_context	*context;	/* borrowed */
	const char		*state_dir;	/* the spool dir, borrowed: read
						   only by backfill_new() */
	const struct route_table *const *routes; /* borrowed: *routes may be
						   swapped between turns */
	const char *const	*dead_letter_topic; /* likewise */
	pbx_emit_fn		*emit;		/* as pbx_env's */
	void			*emit_ctx;
};

/* HTTP answers counted by class (metric label "status"). */
enum backfill_status {
	BF_ST_2XX, BF_ST_401, BF_ST_404, BF_ST_429, BF_ST_4XX, BF_ST_5XX,
	BF_ST_ERROR,		/* no answer: connect, TLS, timeout */
	BF_ST_COUNT
};

struct backfill_stats {
	uint64_t	records;	/* published from REST */
	uint64_t	requests[BF_ST_COUNT];
	uint64_t	gaps_done;
	uint64_t	skipped_live;	/* rows already delivered live */
	int64_t		gap_open_s;	/* open gap now, s; 0 when none */
};

/**
 * @brief Create the backfill of a PBX (pc->backfill.enabled) and load its
 *        state file. Nothing happens until backfill_start().
 * @param pc  borrowed; must outlive it (backfill_rebind() on reload).
 * @param p   the PBX's session, borrowed, polled for liveness.
 * @param env borrowed; must outlive it.
 * @param out owned by the caller (backfill_free()).
 * @returns 0, W2K_ENOMEM, W2K_EINVAL (lws refused the TLS settings).
 *          A damaged state file is logged and started afresh.
 */
int backfill_new(const struct cfg_pbx *pc, struct pbx *p,
    const struct backfill_env *env, struct backfill **out);

/** @brief Begin watching the CDR subscription (the once-a-second check). */
void backfill_start(struct backfill *b);

/**
 * @brief A live record the PBX's session is about to emit: a call_cdr goes
 *        into the index (journal first) before it goes to the spool.
 * @param rec borrowed.
 */
void backfill_observe(struct backfill *b, const struct record *rec);

/**
 * @brief Stop for good: the last live time is saved (a clean stop is a
 *        gap too), any request is abandoned.
 */
void backfill_stop(struct backfill *b);

/**
 * @brief Point at a new cfg entry / session after a reload.
 * @param pc, p borrowed, as in backfill_new(); the old ones may be freed
 *        once this returns.
 */
void backfill_rebind(struct backfill *b, const struct cfg_pbx *pc,
    struct pbx *p);

/** @returns the PBX it belongs to, borrowed. */
struct pbx *backfill_pbx(const struct backfill *b);

/** @returns the counters, owned by b (valid until backfill_free()). */
const struct backfill_stats *backfill_get_stats(const struct backfill *b);
/** @returns the metric label of st, a static string. */
const char *backfill_status_name(enum backfill_status st);

/** @brief Free; NULL is a no-op. Call after backfill_stop(). */
void backfill_free(struct backfill *b);

/* ---- pure parts, for tests ------------------------------------------- */

struct backfill_gap {
	int64_t	from, to;	/* Unix s: calls that ended in [from, to) */
};

/**
 * @brief Add [from, to) to a sorted list of gaps, merging overlaps; when
 *        the list is full the two closest gaps are merged.
 * @returns the new count.
 */
size_t backfill_gaps_add(struct backfill_gap *g, size_t n, size_t cap,
    int64_t from, int64_t to);

enum backfill_verdict {
	BF_PUBLISH,
	BF_SKIP_LIVE,		/* delivered live */
	BF_SKIP_OUTSIDE,	/* did not end inside the gap */
	BF_SKIP_SEEN,		/* this row id was handled in this gap */
};

/**
 * @brief What to do with a row of a gap's query.
 * @param live_seen the index holds its (tenant_id, session_id) (or its
 *        cdr_id when the row has no session_id).
 */
enum backfill_verdict backfill_judge(const struct restmap_row *row,
    const struct backfill_gap *gap, bool live_seen, bool row_seen);

/**
 * @brief The query string of one page (percent-encoded).
 * @returns 0, or W2K_EINVAL when buf is too small.
 */
int backfill_query(char *buf, size_t len, const struct backfill_gap *gap,
    int64_t max_call_duration, unsigned top, unsigned skip);

#endif
