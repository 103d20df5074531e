/*
 * metrics.h — the Prometheus exposition and the /readyz verdict
 * (contract §8).
 *
 * A pure renderer: it keeps no counters of its own. Every number comes from
 * the statistics the modules already keep (pbx_get_stats(),
 * ksink_get_stats(), spool_get_stats()) and is read at the moment of the
 * scrape, so there is nothing to keep in sync and nothing to lock (all of it
 * runs on the event loop thread).
 *
 * Cardinality is bounded by construction: every label value comes from a
 * fixed set compiled into the daemon (disconnect reasons, dead-letter
 * reasons, failure reasons, known event types, session states) or from the
 * configuration (PBX names, topic names) or from librdkafka's view of the
 * cluster (broker names, at most KSINK_MAX_BROKERS) — never from PBX data.
 *
 * Two layers: metrics_render() and metrics_readyz() read live objects and
 * build a struct metrics_view; metrics_render_view() and
 * metrics_readyz_view() turn a view into text. The unit tests drive the
 * second layer with made-up statistics.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backfill.h"
#include "ksink.h"
#include "pbx.h"
#include "spool.h"

/* A growing text buffer, owned by the caller. */
struct metrics_buf {
	char	*p;		/* NUL-terminated, owned; NULL at first */
	size_t	 len;		/* bytes of text, without the NUL */
	size_t	 cap;
	size_t	 max;		/* growth bound in bytes; 0: METRICS_BUF_MAX */
};

/* Default bound on one rendering (a scrape is a few tens of KiB). */
#define METRICS_BUF_MAX		(16u * 1024 * 1024)

/** @brief Forget the text, keep the memory (for the next rendering). */
void metrics_buf_reset(struct metrics_buf *b);

/** @brief Free the memory and zero b. NULL is a no-op. */
void metrics_buf_free(struct metrics_buf *b);

/**
 * @brief Append n bytes of s (borrowed), keeping the text NUL-terminated.
 * @returns 0, W2K_ENOMEM, or W2K_EFULL (b->max would be passed; nothing
 *          appended).
 */
int metrics_buf_add(struct metrics_buf *b, const char *s, size_t n);

/**
 * What the daemon exposes. Every pointer is borrowed and must stay valid
 * while an HTTP listener that was given this struct lives; the fields may
 * be changed between scrapes (e.g. sp set once the spool is open).
 */
struct metrics_src {
	struct pbx *const	*pbx;	/* the sessions; entries may be NULL */
	size_t			 npbx;
	const struct ksink	*ks;	/* NULL in --dry-run */
	const struct spool	*sp;	/* NULL: no spool (dry run): spool
					   metrics are 0 */
	int64_t			 start_us; /* process start, µs since epoch */
	struct backfill *const	*bf;	/* CDR backfills; entries may be
					   NULL (PBX without backfill) */
	size_t			 nbf;
};

/* One PBX's CDR backfill, as the renderer sees it. */
struct metrics_bf {
	const char		*name;	/* the PBX's, borrowed */
	const struct backfill_stats *st;	/* borrowed */
};

/* One session, as the renderer sees it. */
struct metrics_pbx {
	const char		*name;	/* borrowed (cfg) */
	enum pbx_state		 state;
	const struct pbx_stats	*st;	/* borrowed */
	const struct cfg_sub	*subs;	/* borrowed (cfg), nsubs of them */
	const enum pbx_sub_state *sub_state;	/* borrowed, parallel */
	size_t			 nsubs;
};

/* A snapshot of everything rendered; all pointers borrowed. */
struct metrics_view {
	const struct metrics_pbx *pbx;
	size_t			  npbx;
	const struct ksink_stats *ks;	/* NULL: no Kafka (dry run) */
	const struct spool_stats *spool; /* NULL: rendered as 0 */
	int64_t			  now_us;	/* for ages */
	const struct metrics_bf	 *bf;	/* backfills; none: not rendered */
	size_t			  nbf;
	int64_t			  start_us;
	uint64_t		  rss_bytes;	/* 0 when unknown */
};

/**
 * @brief Append the whole exposition (text format 0.0.4) of the live
 *        objects to b.
 * @param b   caller-owned; text is appended.
 * @param src borrowed.
 * @returns 0, W2K_ENOMEM, or W2K_EFULL (b->max reached); b keeps a
 *          partial text on failure, which must not be served.
 */
int metrics_render(struct metrics_buf *b, const struct metrics_src *src);

/** @brief As metrics_render(), from a view. */
int metrics_render_view(struct metrics_buf *b, const struct metrics_view *v);

/**
 * @brief Readiness (contract §8): every PBX session subscribed, and, when
 *        there is Kafka, a broker reachable and no topic refusing
 *        records. Appends a JSON object to b:
 *        {"ready":bool,"not_subscribed":["hq",…],
 *         "pbx":[{"name":"hq","state":"waiting","subscribed":false},…],
 *         "kafka":{"enabled":true,"reachable":bool,
 *                  "refused_topics":[{"topic":"t","reason":"unknown_topic"},…]}}
 *         ({"enabled":false}
 *         in a dry run, where Kafka does not count)
 * @param ready out: the verdict (200 vs 503).
 * @returns 0, W2K_ENOMEM or W2K_EFULL.
 */
int metrics_readyz(struct metrics_buf *b, const struct metrics_src *src,
    bool *ready);

/** @brief As metrics_readyz(), from a view. */
int metrics_readyz_view(struct metrics_buf *b, const struct metrics_view *v,
    bool *ready);

/**
 * @brief Append s to b as a label value of the text format: backslash,
 *        double quote and line feed escaped (\\, \", \n).
 * @returns 0, W2K_ENOMEM or W2K_EFULL.
 */
int metrics_escape_label(struct metrics_buf *b, const char *s);

/** @returns the process's resident set size in bytes (/proc/self/statm),
 *  0 when it cannot be read. */
uint64_t metrics_rss_bytes(void);

#endif
