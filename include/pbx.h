/*
 * pbx.h — one PortSIP WSI session per configured PBX (contract §6).
 *
 * A session connects (TLS 1.2 or later, with SNI, certificate and host
 * name verification), upgrades to a WebSocket, authenticates with the
 * `auth` command, sends one `subscribe` per configured subscription and
 * then streams frames: every complete frame
 * is normalized (norm.h), routed (route.h) and handed to the environment's
 * emit function. Any close, error, missed pong or idle_timeout of silence
 * reconnects with exponential backoff and full jitter, trying the next URL.
 * Every phase is bounded in time, so a PBX that stalls or trickles bytes
 * cannot hold a session: connect_timeout for TCP, TLS and the upgrade
 * together, auth_timeout for the auth reply, idle_timeout for silence and
 * for any one frame to complete.
 *
 * All sessions live in one libwebsockets context and run on its event loop
 * thread; nothing here blocks, except that Debian's lws resolves host names
 * with a blocking getaddrinfo() inside connect. pbx.c never touches Kafka.
 */
#ifndef PBX_H
#define PBX_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "cfg.h"
#include "norm.h"
#include "record.h"
#include "route.h"

struct pbx;

enum pbx_state {
	PBX_STOPPED,		/* not started, or stopped for good */
	PBX_WAITING,		/* backoff: the next connect is scheduled */
	PBX_CONNECTING,		/* TCP, TLS and the WebSocket upgrade */
	PBX_AUTHENTICATING,	/* auth sent, waiting for its reply */
	PBX_SUBSCRIBED,		/* every subscribe sent: streaming */
};

/*
 * What the PBX made of one configured subscription (contract §6), a metric
 * label. A subscription is pending until the reply to its subscribe comes,
 * active after a reply with status 0 (until the session ends), rejected
 * after one with another status (until a later reply accepts it: it stays
 * rejected across reconnects, so a dashboard stays red until the PBX says
 * yes). Rejected subscriptions are sent again on every new session and
 * every PBX_SUB_RETRY_S within one.
 */
enum pbx_sub_state {
	PBX_SUB_PENDING,
	PBX_SUB_ACTIVE,
	PBX_SUB_REJECTED,
	PBX_SUB_STATE_COUNT
};

#define PBX_SUB_RETRY_S		300	/* a rejected subscription, again */

/* Why a session ended: a small fixed set, usable as a metric label. */
enum pbx_disc {
	PBX_DISC_CLOSED,	/* the PBX closed the connection */
	PBX_DISC_ERROR,		/* connect or transport error */
	PBX_DISC_TLS,		/* TLS handshake / verification failed */
	PBX_DISC_AUTH,		/* the PBX rejected our credentials */
	PBX_DISC_TIMEOUT,	/* no auth reply within auth_timeout; for a
				   connect: not up within connect_timeout */
	PBX_DISC_IDLE,		/* idle_timeout of silence (pings
				   unanswered), or a frame not complete
				   within it */
	PBX_DISC_STOPPED,	/* we stopped it (shutdown, reload) */
	PBX_DISC_COUNT
};

/**
 * Where records go. emit() borrows rec for the duration of the call (it
 * copies what it keeps) and returns 0 or a negative code; it has logged
 * any failure itself (the session goes on either way).
 */
typedef int pbx_emit_fn(void *ctx, const struct record *rec);

struct pbx;
/**
 * Sees every event record of a session just before emit() does (the
 * backfill's index of live CDRs must hold a CDR before the spool does).
 * rec is borrowed for the call.
 */
typedef void pbx_observe_fn(void *ctx, struct pbx *p, const struct record *rec);

struct pbx_env {
	struct lws_context	*context;	/* borrowed */
	const struct route_table *routes;	/* borrowed; may be swapped
						   between frames (reload) */
	const char		*dead_letter_topic; /* borrowed, likewise */
	pbx_emit_fn		*emit;
	void			*emit_ctx;
	pbx_observe_fn		*observe;	/* NULL: none */
	void			*observe_ctx;
};

/* Dead-letter reasons counted per session: a fixed set (metric labels). */
enum pbx_dl {
	PBX_DL_INVALID_UTF8, PBX_DL_INVALID_JSON, PBX_DL_NOT_OBJECT,
	PBX_DL_NO_EVENT_TYPE, PBX_DL_TOO_LARGE, PBX_DL_TOO_DEEP,
	PBX_DL_TOO_MANY_MEMBERS,	/* norm.h limits */
	PBX_DL_NO_ROUTE,	/* an event no route matched */
	PBX_DL_COUNT
};

/* Counters kept per session, for logs, STATUS= and metrics. */
struct pbx_stats {
	uint64_t	connects_ok;
	uint64_t	connects_failed;
	uint64_t	connect_failures[PBX_DISC_COUNT]; /* by reason: only
						   ERROR, TLS, TIMEOUT */
	uint64_t	disconnects[PBX_DISC_COUNT];
	uint64_t	frames;		/* complete frames received */
	uint64_t	events;		/* event records emitted */
	uint64_t	events_by_type[NORM_NTYPES];	/* norm_type_index() */
	uint64_t	dead_letters;
	uint64_t	dead_by_reason[PBX_DL_COUNT];
	uint64_t	replies;	/* command replies handled */
};

/**
 * @brief Create a session (not yet connected).
 * @param pc  borrowed; must outlive the session (owned by the live cfg).
 * @param env borrowed; must outlive the session.
 * @param pp  out: the session, owned by the caller (pbx_free()).
 * @returns 0, W2K_ENOMEM, or W2K_EINVAL when lws refuses the TLS settings
 *          (logged with the PBX name).
 */
int pbx_new(const struct cfg_pbx *pc, const struct pbx_env *env,
    struct pbx **pp);

/** @brief Schedule the first connect (right away). */
void pbx_start(struct pbx *p);

/**
 * @brief Close the session for good: no reconnect afterwards. The close
 *        completes on the event loop; pbx_idle() tells when it is done.
 */
void pbx_stop(struct pbx *p);

/** @returns true when the session has no connection and no timer left. */
bool pbx_idle(const struct pbx *p);

/**
 * @brief Free a stopped session. Call after pbx_stop() once pbx_idle(), or
 *        after lws_context_destroy(). NULL is a no-op.
 */
void pbx_free(struct pbx *p);

/** @brief Rebind the session to a new cfg entry that cfg_pbx_equal()s the
 *        old one (reload): nothing else changes. */
void pbx_rebind(struct pbx *p, const struct cfg_pbx *pc);

enum pbx_state pbx_get_state(const struct pbx *p);
const char *pbx_state_name(enum pbx_state st);
const char *pbx_disc_name(enum pbx_disc why);
const char *pbx_dl_name(enum pbx_dl reason);
const char *pbx_name(const struct pbx *p);
const struct pbx_stats *pbx_get_stats(const struct pbx *p);

/** @returns the number of configured subscriptions (pc->nsubs). */
size_t pbx_nsubs(const struct pbx *p);

/** @returns the configured subscriptions (pbx_nsubs() of them), borrowed
 *  from the live cfg: valid until a reload frees it. */
const struct cfg_sub *pbx_subs(const struct pbx *p);

/** @returns their states, parallel to pbx_subs(), borrowed: valid until
 *  the next event-loop turn. */
const enum pbx_sub_state *pbx_sub_states(const struct pbx *p);

/**
 * @returns whether CDRs arrive live now: the session is subscribed and a
 *          cdr_events or global_cdr_events subscription is active.
 */
bool pbx_cdr_live(const struct pbx *p);

/** @returns when the last complete frame arrived (µs since the epoch; 0
 *  before the first). */
int64_t pbx_last_frame_us(const struct pbx *p);

/** @returns how many subscriptions are rejected now. */
size_t pbx_subs_rejected(const struct pbx *p);

const char *pbx_sub_state_name(enum pbx_sub_state st);

#endif
