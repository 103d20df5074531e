/*
 * pbx.c — the PortSIP WSI session state machine on libwebsockets 4.1.
 *
 *   WAITING --connect--> CONNECTING --ESTABLISHED--> AUTHENTICATING
 *   --auth reply status 0--> (subscribes written) --> SUBSCRIBED
 *   any failure --> WAITING (backoff, next URL)        stop --> STOPPED
 *
 * What this file must never do: block, touch Kafka, or put the password
 * anywhere but the one auth frame on the wire (wiped once written).
 *
 * Liveness is ours, not lws's: one 1 s tick per connected session sends a
 * WebSocket ping every ping_interval, closes after idle_timeout without any
 * frame (pongs count) and after auth_timeout without an auth reply. lws's
 * own validity pings are pushed out of the way (a policy of 65535 s) so
 * that every disconnect has exactly one reason we can name and count.
 *
 * A hostile or broken PBX must not hold a session (nor the loop, which
 * never waits on a socket): the same tick runs from the moment a connect
 * starts and ends the attempt after connect_timeout, however slowly the
 * TLS handshake or the upgrade response trickles in; and since a trickle
 * keeps resetting the idle clock, any one frame must also complete within
 * idle_timeout of the first tick that saw it incomplete.
 *
 * TLS: 1.2 or later, whatever the system's OpenSSL policy allows; the
 * certificate and the host name are verified unless tls.verify = false.
 * When a handshake fails, the log says why in words (the X509 verify
 * result, or the TLS alert), not lws 4.1's "connect SSL err 1".
 */
#include "pbx.h"
#include "backoff.h"
#include "log.h"
#include "norm.h"
#include "w2k.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define PBX_TICK_US		(1000 * 1000)
#define PBX_HEALTHY_US		(60LL * 1000 * 1000)	/* contract §6 */
#define PBX_CLOSE_GRACE_S	2	/* backstop when WRITEABLE never comes */
#define PBX_DRAIN_MAX		256	/* TLS records per PBX per loop turn */
#define PBX_TLS_READ_BUF	(128 * 1024)	/* read_buffer_attach() */
#define PBX_SECRET_FRAME_MAX	(1024 * 1024)	/* the auth frame, escaped */

struct pbx_msg {
	unsigned char	*buf;	/* LWS_PRE headroom + payload */
	size_t		 len;	/* payload bytes */
	bool		 secret;/* wipe before free (auth) */
};

struct pbx {
	const struct cfg_pbx	*pc;	/* borrowed: the live cfg */
	const struct pbx_env	*env;	/* borrowed */
	struct lws_vhost	*vhost;	/* ours: this PBX's TLS settings */
	struct lws		*wsi;	/* borrowed; NULL when not connected */
	enum pbx_state		 state;
	bool			 stopping;
	bool			 closing;	/* close requested, reason set */
	enum pbx_disc		 close_reason;
	size_t			 url_idx;
	struct backoff		 bo;
	lws_sorted_usec_list_t	 sul_connect;
	lws_sorted_usec_list_t	 sul_tick;
	lws_sorted_usec_list_t	 sul_drain;	/* the read path: drain_arm() */
	bool			 draining;	/* in pbx_drain_cb() */
	int64_t			 last_rx_us;	/* monotonic */
	int64_t			 connect_start_us;
	int64_t			 partial_since_us; /* a frame incomplete */
	uint64_t		 partial_frames;   /* stats.frames then */
	int64_t			 last_ping_us;
	int64_t			 auth_sent_us;
	int64_t			 subscribed_us;
	/* send queue: auth, then one subscribe per subscription */
	struct pbx_msg		*sendq;		/* 1 + nsubs slots */
	size_t			 sendq_cap, nsend, sent;
	size_t			 nsubs_queued;
	/*
	 * Per subscription (pc->nsubs): its state, whether its rejection was
	 * logged in this session, and whether a subscribe for it awaits its
	 * reply. Replies carry no reference to the command they answer
	 * (portsip-wsi §3.4), so they are matched in the order the commands
	 * were sent: await[] is that FIFO, at most one entry per subscription.
	 */
	enum pbx_sub_state	*sub_state;
	bool			*sub_logged;
	bool			*sub_awaited;
	size_t			*await;
	size_t			 await_head, await_n;
	int64_t			 sub_sent_us;	/* last (re)subscribe, mono */
	bool			 ping_due;
	/* frame reassembly, bounded by max_frame */
	unsigned char		*rx;
	size_t			 rx_len, rx_cap, rx_total;
	bool			 rx_in_msg, rx_too_large;
	int64_t			 rx_received_us;
	int64_t			 last_frame_us;	/* wall: pbx_last_frame_us() */
	struct pbx_stats	 stats;
};

static const lws_retry_bo_t idle_policy = {
	/* lws's validity pings off in practice (see the file comment) */
	.secs_since_valid_ping = 65535,
	.secs_since_valid_hangup = 65535,
};

static int pbx_callback(struct lws *, enum lws_callback_reasons, void *,
    void *, size_t);

static const struct lws_protocols pbx_protocols[] = {
	{ .name = "wsi2kafka-pbx", .callback = pbx_callback,
	  .rx_buffer_size = 65536 },
	{ .name = NULL }
};

static const char *const state_names[] = {
	[PBX_STOPPED] = "stopped", [PBX_WAITING] = "waiting",
	[PBX_CONNECTING] = "connecting",
	[PBX_AUTHENTICATING] = "authenticating",
	[PBX_SUBSCRIBED] = "subscribed",
};

static const char *const disc_names[] = {
	[PBX_DISC_CLOSED] = "closed", [PBX_DISC_ERROR] = "error",
	[PBX_DISC_TLS] = "tls", [PBX_DISC_AUTH] = "auth",
	[PBX_DISC_TIMEOUT] = "timeout", [PBX_DISC_IDLE] = "idle",
	[PBX_DISC_STOPPED] = "stopped",
};

static const char *const dl_names[] = {
	[PBX_DL_INVALID_UTF8] = NORM_DL_INVALID_UTF8,
	[PBX_DL_INVALID_JSON] = NORM_DL_INVALID_JSON,
	[PBX_DL_NOT_OBJECT] = NORM_DL_NOT_OBJECT,
	[PBX_DL_NO_EVENT_TYPE] = NORM_DL_NO_EVENT_TYPE,
	[PBX_DL_TOO_LARGE] = NORM_DL_TOO_LARGE,
	[PBX_DL_TOO_DEEP] = NORM_DL_TOO_DEEP,
	[PBX_DL_TOO_MANY_MEMBERS] = NORM_DL_TOO_MANY_MEMBERS,
	[PBX_DL_NO_ROUTE] = "no_route",
};

const char *
pbx_dl_name(enum pbx_dl reason)
{
	return (unsigned)reason < W2K_ARRAY_SIZE(dl_names) ?
	    dl_names[reason] : "?";
}

static void
count_dead_letter(struct pbx *p, const char *reason)
{
	for (unsigned i = 0; i < PBX_DL_COUNT; i++)
		if (strcmp(reason, dl_names[i]) == 0)
			p->stats.dead_by_reason[i]++;
	p->stats.dead_letters++;
}

const char *
pbx_state_name(enum pbx_state st)
{
	return (unsigned)st < W2K_ARRAY_SIZE(state_names) ?
	    state_names[st] : "?";
}

const char *
pbx_disc_name(enum pbx_disc why)
{
	return (unsigned)why < W2K_ARRAY_SIZE(disc_names) ?
	    disc_names[why] : "?";
}

const char *
pbx_name(const struct pbx *p)
{
	return p->pc->name;
}

enum pbx_state
pbx_get_state(const struct pbx *p)
{
	return p->state;
}

const struct pbx_stats *
pbx_get_stats(const struct pbx *p)
{
	return &p->stats;
}

static const struct cfg_url *
cur_url(const struct pbx *p)
{
	return &p->pc->urls[p->url_idx];
}

static uint32_t
pbx_rand(void *ctx)
{
	struct pbx *p = ctx;
	uint32_t r = 0;

	if (lws_get_random(p->env->context, &r, sizeof(r)) != sizeof(r))
		r = (uint32_t)w2k_mono_us();	/* jitter only; not security */
	return r;
}

/* ---- send queue ---------------------------------------------------- */

static void
sendq_clear(struct pbx *p)
{
	for (size_t i = 0; i < p->nsend; i++) {
		if (p->sendq[i].secret)
			explicit_bzero(p->sendq[i].buf, LWS_PRE + p->sendq[i].len);
		free(p->sendq[i].buf);
	}
	p->nsend = p->sent = p->nsubs_queued = 0;
	p->ping_due = false;
}

/* Forget the messages already written (their slots are reused). */
static void
sendq_clear_sent(struct pbx *p)
{
	size_t n = p->nsubs_queued;

	if (p->sent == p->nsend) {
		sendq_clear(p);
		p->nsubs_queued = n;
	}
}

/* Print a cJSON command into a new queue slot (with LWS_PRE headroom). */
static int
sendq_push(struct pbx *p, cJSON *cmd, bool secret)
{
	struct pbx_msg *m;
	char *text;
	size_t len;

	if (p->nsend == p->sendq_cap)
		return W2K_EFULL;
	if ((text = cJSON_PrintUnformatted(cmd)) == NULL)
		return W2K_ENOMEM;
	len = strlen(text);
	m = &p->sendq[p->nsend];
	if ((m->buf = malloc(LWS_PRE + len)) == NULL) {
		if (secret)
			explicit_bzero(text, len);
		free(text);
		return W2K_ENOMEM;
	}
	memcpy(m->buf + LWS_PRE, text, len);
	if (secret)
		explicit_bzero(text, len);
	free(text);
	m->len = len;
	m->secret = secret;
	p->nsend++;
	return 0;
}

/*
 * The auth frame goes straight into its slot through
 * cJSON_PrintPreallocated(), which never reallocates: cJSON_Print*() grows
 * its buffer with realloc() and would leave pieces of the password behind
 * in freed memory. A buffer found too small is wiped before it is freed.
 */
static int
sendq_push_secret(struct pbx *p, cJSON *cmd)
{
	struct pbx_msg *m = &p->sendq[p->nsend];

	if (p->nsend == p->sendq_cap)
		return W2K_EFULL;
	for (size_t cap = 512; cap <= PBX_SECRET_FRAME_MAX; cap *= 2) {
		if ((m->buf = malloc(LWS_PRE + cap)) == NULL)
			return W2K_ENOMEM;
		if (cJSON_PrintPreallocated(cmd, (char *)m->buf + LWS_PRE,
		    (int)cap, false)) {
			m->len = strlen((char *)m->buf + LWS_PRE);
			m->secret = true;
			p->nsend++;
			return 0;
		}
		explicit_bzero(m->buf, LWS_PRE + cap);
		free(m->buf);
		m->buf = NULL;
	}
	return W2K_ENOMEM;
}

static int
queue_auth(struct pbx *p)
{
	const struct cfg_pbx *pc = p->pc;
	cJSON *cmd = cJSON_CreateObject();
	int r = W2K_ENOMEM;

	/*
	 * String references, not copies: the password then exists only in
	 * the cfg and in the printed frame, which is wiped once written
	 * (on_writeable()) or when the session ends (sendq_clear()).
	 */
	if (cmd == NULL ||
	    !cJSON_AddItemToObject(cmd, "command",
	    cJSON_CreateStringReference("auth")) ||
	    !cJSON_AddItemToObject(cmd,
	    pc->username ? "username" : "extension_number",
	    cJSON_CreateStringReference(pc->username ? pc->username :
	    pc->extension_number)) ||
	    !cJSON_AddItemToObject(cmd, "password",
	    cJSON_CreateStringReference(pc->password)) ||
	    (pc->domain != NULL && !cJSON_AddItemToObject(cmd, "domain",
	    cJSON_CreateStringReference(pc->domain))))
		goto out;
	r = sendq_push_secret(p, cmd);
out:
	cJSON_Delete(cmd);
	return r;
}

static int
add_strv(cJSON *cmd, const char *name, const struct cfg_strv *sv)
{
	cJSON *arr;

	if (sv->n == 0)
		return 0;
	if ((arr = cJSON_AddArrayToObject(cmd, name)) == NULL)
		return W2K_ENOMEM;
	for (size_t i = 0; i < sv->n; i++)
		if (!cJSON_AddItemToArray(arr,
		    cJSON_CreateStringReference(sv->v[i])))
			return W2K_ENOMEM;
	return 0;
}

/* How long a rejected subscription waits before it is sent again. */
static int64_t
sub_retry_us(void)
{
#ifdef W2K_TESTING
	/* Tests only: the 5 minutes of contract §6 would make tests slow. */
	const char *e = getenv("W2K_TEST_SUB_RETRY_S");

	if (e != NULL && atoi(e) > 0)
		return (int64_t)atoi(e) * 1000000;
#endif
	return (int64_t)PBX_SUB_RETRY_S * 1000000;
}

/* Queue the subscribe of subscription i; its reply is awaited in order. */
static int
queue_subscribe(struct pbx *p, size_t i)
{
	const struct cfg_sub *s = &p->pc->subs[i];
	cJSON *cmd = cJSON_CreateObject();
	int r = W2K_ENOMEM;

	if (cmd != NULL && cJSON_AddStringToObject(cmd, "command",
	    "subscribe") != NULL &&
	    add_strv(cmd, "topics", &s->topics) == 0 &&
	    add_strv(cmd, "extensions", &s->extensions) == 0 &&
	    add_strv(cmd, "queues", &s->queues) == 0 &&
	    add_strv(cmd, "tenants", &s->tenants) == 0)
		r = sendq_push(p, cmd, false);
	cJSON_Delete(cmd);
	if (r != 0)
		return r;
	p->await[(p->await_head + p->await_n++) % p->pc->nsubs] = i;
	p->sub_awaited[i] = true;
	p->sub_sent_us = w2k_mono_us();
	return 0;
}

static int
queue_subscribes(struct pbx *p)
{
	int r;

	for (size_t i = 0; i < p->pc->nsubs; i++) {
		if ((r = queue_subscribe(p, i)) != 0)
			return r;
		p->nsubs_queued++;
	}
	return 0;
}

/*
 * Send the rejected subscriptions again (contract §6: permissions can be
 * fixed on the PBX without restarting anything). Only once everything
 * queued before has been written, so the queue's slots can be reused.
 */
static void
resubscribe_rejected(struct pbx *p)
{
	size_t n = 0;

	if (p->sent < p->nsend)
		return;
	sendq_clear_sent(p);
	for (size_t i = 0; i < p->pc->nsubs; i++) {
		if (p->sub_state[i] != PBX_SUB_REJECTED || p->sub_awaited[i])
			continue;
		if (queue_subscribe(p, i) != 0) {
			log_err("pbx %s: cannot build a subscribe command",
			    p->pc->name);
			break;
		}
		n++;
	}
	if (n > 0) {
		log_info("pbx %s: sending %zu rejected subscription%s again",
		    p->pc->name, n, n == 1 ? "" : "s");
		lws_callback_on_writable(p->wsi);
	}
}

/* ---- connection lifecycle ---------------------------------------- */

static void pbx_connect_cb(lws_sorted_usec_list_t *sul);
static void pbx_tick_cb(lws_sorted_usec_list_t *sul);

static void
rx_reset(struct pbx *p)
{
	p->rx_len = p->rx_total = 0;
	p->rx_in_msg = p->rx_too_large = false;
}

/*
 * The one place a connection ends, whatever ended it: an established one
 * (counted as a disconnect) or an attempt that failed (counted by the
 * caller as a failed connect). Schedules the next connect unless the
 * session is stopping.
 */
/*
 * The session is gone: what was active is pending again (the next session
 * subscribes anew); a rejection stays until a reply accepts it.
 */
static void
subs_session_ended(struct pbx *p)
{
	for (size_t i = 0; i < p->pc->nsubs; i++) {
		if (p->sub_state[i] == PBX_SUB_ACTIVE)
			p->sub_state[i] = PBX_SUB_PENDING;
		p->sub_logged[i] = false;
		p->sub_awaited[i] = false;
	}
	p->await_head = p->await_n = 0;
}

static void
session_ended(struct pbx *p, enum pbx_disc why, bool established)
{
	int64_t delay;

	p->wsi = NULL;		/* lws never clears *pwsi on close (§13.3-4) */
	lws_sul_cancel(&p->sul_tick);
	lws_sul_cancel(&p->sul_drain);
	sendq_clear(p);
	rx_reset(p);
	subs_session_ended(p);
	p->closing = false;
	if (established)
		p->stats.disconnects[why]++;
	if (p->stopping) {
		p->state = PBX_STOPPED;
		return;
	}
	if (p->pc->nurls > 1)
		p->url_idx = (p->url_idx + 1) % p->pc->nurls;
	delay = backoff_next(&p->bo, why == PBX_DISC_AUTH, pbx_rand, p);
	p->state = PBX_WAITING;
	log_info("pbx %s: reconnecting to %s in %.1f s", p->pc->name,
	    cur_url(p)->text, (double)delay / 1e6);
	lws_sul_schedule(p->env->context, 0, &p->sul_connect, pbx_connect_cb,
	    delay);
}

/*
 * Ask for the connection to close, from anywhere on the loop: the close
 * itself happens in WRITEABLE (returning -1 there is the only clean way to
 * drop a client connection in lws 4.1); the timeout is the backstop for a
 * socket that never becomes writeable. A connection still connecting gets
 * no WRITEABLE: lws kills it on its next turn (CONNECTION_ERROR follows).
 */
static void
request_close(struct pbx *p, enum pbx_disc why)
{
	if (p->wsi == NULL || p->closing)
		return;
	p->closing = true;
	p->close_reason = why;
	if (p->state == PBX_CONNECTING) {
		lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK,
		    LWS_TO_KILL_ASYNC);
		return;
	}
	lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, PBX_CLOSE_GRACE_S);
	lws_callback_on_writable(p->wsi);
}

static void
pbx_connect_cb(lws_sorted_usec_list_t *sul)
{
	struct pbx *p = lws_container_of(sul, struct pbx, sul_connect);
	const struct cfg_url *u = cur_url(p);
	struct lws_client_connect_info i;

	if (p->stopping)
		return;
	memset(&i, 0, sizeof(i));
	i.context = p->env->context;
	i.vhost = p->vhost;
	i.address = u->host;
	i.port = u->port;
	i.path = u->path;
	i.host = u->host;	/* Host header, SNI and the name verified */
	i.origin = u->host;
	i.protocol = NULL;	/* WSI uses no subprotocol (portsip-wsi §1) */
	i.local_protocol_name = pbx_protocols[0].name;
	i.retry_and_idle_policy = &idle_policy;
	i.opaque_user_data = p;
	i.pwsi = &p->wsi;
	if (u->tls) {
		i.ssl_connection = LCCSCF_USE_SSL;
		if (!p->pc->tls.verify)
			i.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
			    LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
			    LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
	}
	p->state = PBX_CONNECTING;
	p->connect_start_us = w2k_mono_us();
	p->partial_since_us = 0;
	/* Bounds the attempt (connect_timeout); cancelled if it ends first. */
	lws_sul_schedule(p->env->context, 0, &p->sul_tick, pbx_tick_cb,
	    PBX_TICK_US);
	log_debug("pbx %s: connecting to %s", p->pc->name, u->text);
	/*
	 * NULL means it failed before any callback could report it (with
	 * Debian's blocking DNS, a name that does not resolve ends here):
	 * no CONNECTION_ERROR follows, so retry from here (§13.3-3).
	 */
	if (lws_client_connect_via_info(&i) == NULL) {
		log_warn("pbx %s: cannot connect to %s", p->pc->name, u->text);
		p->stats.connects_failed++;
		session_ended(p, PBX_DISC_ERROR, false);
	}
}

static void
pbx_tick_cb(lws_sorted_usec_list_t *sul)
{
	struct pbx *p = lws_container_of(sul, struct pbx, sul_tick);
	const struct cfg_pbx *pc = p->pc;
	int64_t now = w2k_mono_us();

	if (p->wsi == NULL)
		return;
	if (p->state == PBX_CONNECTING) {
		int64_t left = p->connect_start_us +
		    (int64_t)pc->connect_timeout * 1000000 - now;

		/*
		 * TCP, TLS and the upgrade response have connect_timeout
		 * together, from the start of the attempt. lws arms a limit
		 * of its own at each step (the context's timeout_secs, 5 s
		 * in 4.1) and ends a stalled upgrade without telling us why
		 * (see WSI_DESTROY): each tick replaces it with ours plus a
		 * margin, so that ours decides, and names the reason
		 * (connect_failed(), when CONNECTION_ERROR reports the kill).
		 */
		if (p->closing)
			goto again;
		if (left <= 0) {
			request_close(p, PBX_DISC_TIMEOUT);
		} else {
			lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK,
			    (int)(left / 1000000) + 2);
		}
		goto again;
	}
	if (p->state == PBX_AUTHENTICATING &&
	    now - p->auth_sent_us > (int64_t)pc->auth_timeout * 1000000) {
		log_warn("pbx %s: no auth reply from %s within %d s",
		    pc->name, cur_url(p)->text, pc->auth_timeout);
		request_close(p, PBX_DISC_TIMEOUT);
	}
	if (now - p->last_rx_us > (int64_t)pc->idle_timeout * 1000000) {
		log_warn("pbx %s: nothing received from %s for %d s",
		    pc->name, cur_url(p)->text, pc->idle_timeout);
		request_close(p, PBX_DISC_IDLE);
	}
	/*
	 * A frame that never completes: a byte now and then keeps the idle
	 * clock above from running out, so the frame itself must complete
	 * within idle_timeout of the first tick that saw it unfinished (a
	 * frame completed in between, seen by the frame count, restarts
	 * the clock). What it may buffer meanwhile is bounded by max_frame.
	 */
	if (!p->rx_in_msg) {
		p->partial_since_us = 0;
	} else if (p->partial_since_us == 0 ||
	    p->partial_frames != p->stats.frames) {
		p->partial_since_us = now;
		p->partial_frames = p->stats.frames;
	} else if (!p->closing && now - p->partial_since_us >
	    (int64_t)pc->idle_timeout * 1000000) {
		log_warn("pbx %s: a frame from %s is still incomplete after "
		    "%d s (%zu bytes so far)", pc->name, cur_url(p)->text,
		    pc->idle_timeout, p->rx_total);
		request_close(p, PBX_DISC_IDLE);
	}
	if (now - p->last_ping_us >= (int64_t)pc->ping_interval * 1000000) {
		p->ping_due = true;
		p->last_ping_us = now;
		lws_callback_on_writable(p->wsi);
	}
	if (p->state == PBX_SUBSCRIBED && p->bo.attempt != 0 &&
	    now - p->subscribed_us >= PBX_HEALTHY_US)
		backoff_reset(&p->bo);
	if (p->state == PBX_SUBSCRIBED && !p->closing &&
	    pbx_subs_rejected(p) > 0 && now - p->sub_sent_us >= sub_retry_us())
		resubscribe_rejected(p);
again:
	lws_sul_schedule(p->env->context, 0, &p->sul_tick, pbx_tick_cb,
	    PBX_TICK_US);
}

/* ---- frames ---------------------------------------------------------- */

/* The reply to the oldest subscribe still awaited (see pbx.await). */
static void
subscribe_reply(struct pbx *p, int status, const char *err)
{
	char topics[256];
	size_t i;

	if (p->await_n == 0) {
		log_debug("pbx %s: unexpected subscribe reply ignored",
		    p->pc->name);
		return;
	}
	i = p->await[p->await_head];
	p->await_head = (p->await_head + 1) % p->pc->nsubs;
	p->await_n--;
	p->sub_awaited[i] = false;
	cfg_sub_topics(&p->pc->subs[i], topics, sizeof(topics));
	if (status == 0) {
		if (p->sub_state[i] == PBX_SUB_REJECTED)
			log_notice("pbx %s: subscription to %s accepted by %s "
			    "now", p->pc->name, topics, cur_url(p)->text);
		else
			log_debug("pbx %s: subscription to %s ok",
			    p->pc->name, topics);
		p->sub_state[i] = PBX_SUB_ACTIVE;
		return;
	}
	p->sub_state[i] = PBX_SUB_REJECTED;
	if (!p->sub_logged[i]) {	/* once per session (contract §6) */
		p->sub_logged[i] = true;
		log_err("pbx %s: subscribe to %s rejected by %s: %s (sent "
		    "again every %lld s and on every new session)",
		    p->pc->name, topics, cur_url(p)->text, err,
		    (long long)(sub_retry_us() / 1000000));
	} else {
		log_debug("pbx %s: subscribe to %s rejected again: %s",
		    p->pc->name, topics, err);
	}
}

static void
handle_reply(struct pbx *p, const struct norm_result *res)
{
	const char *cmd = res->reply_command;
	const char *err = res->reply_error ? res->reply_error : "no reason given";

	/* A PBX may echo what it was sent: never log the password back. */
	if (p->pc->password != NULL && p->pc->password[0] != '\0' &&
	    strstr(err, p->pc->password) != NULL)
		err = "(not shown: the reply repeats the password)";
	p->stats.replies++;
	/*
	 * v16.0 answers without "command" ({"status":0}): such a reply is
	 * the auth reply while authenticating, else the next awaited
	 * subscribe's.
	 */
	if ((cmd != NULL && strcmp(cmd, "subscribe") == 0) ||
	    (cmd == NULL && p->state != PBX_AUTHENTICATING && p->await_n > 0)) {
		subscribe_reply(p, res->reply_status, err);
		return;
	}
	if (cmd == NULL || strcmp(cmd, "auth") == 0) {
		if (p->state != PBX_AUTHENTICATING) {
			log_debug("pbx %s: unexpected auth reply ignored",
			    p->pc->name);
			return;
		}
		if (res->reply_status != 0) {
			log_err("pbx %s: authentication rejected by %s: %s",
			    p->pc->name, cur_url(p)->text, err);
			request_close(p, PBX_DISC_AUTH);
			return;
		}
		log_info("pbx %s: authenticated to %s", p->pc->name,
		    cur_url(p)->text);
		if (queue_subscribes(p) != 0) {
			log_err("pbx %s: cannot build subscribe commands",
			    p->pc->name);
			request_close(p, PBX_DISC_ERROR);
			return;
		}
		lws_callback_on_writable(p->wsi);
		return;
	}
	/* Any other command's reply (we send none): logged, nothing more. */
	if (res->reply_status != 0)
		log_err("pbx %s: %s rejected by %s: %s", p->pc->name,
		    cmd == NULL ? "command" : cmd, cur_url(p)->text, err);
	else
		log_debug("pbx %s: %s ok", p->pc->name,
		    cmd == NULL ? "command" : cmd);
}

static void
emit(struct pbx *p, struct record *rec, const char *topic)
{
	if ((rec->topic = strdup(topic)) == NULL) {
		log_err("pbx %s: out of memory routing a record", p->pc->name);
		return;
	}
	p->env->emit(p->env->emit_ctx, rec);
}

static void
handle_frame(struct pbx *p)
{
	struct norm_frame in = {
		.pbx = p->pc->name, .data = p->rx, .len = p->rx_len,
		.too_large = p->rx_too_large,
		.received_us = p->rx_received_us,
	};
	struct norm_result res;

	p->stats.frames++;
	p->last_frame_us = p->rx_received_us;
	if (norm_frame(&in, &res) != 0) {
		/* Nothing to publish without memory; the next frame may fit. */
		log_err("pbx %s: out of memory normalizing a %zu-byte frame",
		    p->pc->name, p->rx_total);
		norm_result_clear(&res);
		return;
	}
	switch (res.kind) {
	case NORM_REPLY:
		handle_reply(p, &res);
		break;
	case NORM_DEAD:
		count_dead_letter(p, res.dead_reason);
		log_warn("pbx %s: dead letter (%s), %zu-byte frame",
		    p->pc->name, res.dead_reason, p->rx_total);
		emit(p, &res.recs[0], p->env->dead_letter_topic);
		break;
	case NORM_EVENTS:
		for (size_t i = 0; i < res.nrecs; i++) {
			const char *topic = route_lookup(p->env->routes,
			    res.recs[i].type);

			/*
			 * No route: the record is kept, on the dead-letter
			 * topic in the event schema, marked (README), rather
			 * than dropped in silence; without memory for the
			 * mark it goes unmarked, still never dropped.
			 */
			if (topic == NULL) {
				topic = p->env->dead_letter_topic;
				if (record_hdr_add(&res.recs[i],
				    "dead_letter_reason", "no_route") != 0)
					log_err("pbx %s: out of memory marking "
					    "a no-route event: sent unmarked",
					    p->pc->name);
				count_dead_letter(p, "no_route");
				log_warn("pbx %s: no route for event type "
				    "'%s': sent to %s", p->pc->name,
				    res.recs[i].type, topic);
			} else {
				p->stats.events++;
				p->stats.events_by_type[norm_type_index(
				    res.recs[i].type)]++;
			}
			if (p->env->observe != NULL)
				p->env->observe(p->env->observe_ctx, p,
				    &res.recs[i]);
			emit(p, &res.recs[i], topic);
		}
		break;
	}
	norm_result_clear(&res);
}

/*
 * The read path. Contract §6: a frame is handled as soon as its last byte
 * has been read from the socket; nothing already read waits for a timer or
 * for the next socket event.
 *
 * A PBX writes one TLS record per event, and lws (4.1 and 4.3) calls
 * SSL_read() once per poll() wake-up, which returns at most one record.
 * A buffering BIO between OpenSSL and the socket (set at ESTABLISHED) takes
 * whatever the socket holds in one read() (PBX_TLS_READ_BUF): under load far
 * fewer system calls per event than a poll() and two read()s per record
 * (docs/performance.md). It replaces OpenSSL's own read-ahead, which does
 * the same but moves everything left in its buffer to the buffer's start
 * before each record (ssl3_read_n() aligning the payload): with a 128 KiB
 * buffer, tens of KiB moved per ~650-byte event, 45 % of the daemon's
 * instructions. The BIO hands each record over with one copy of its own
 * bytes. But the whole records left in the BIO's buffer wake no poll(), and
 * lws only looks again when SSL_pending() says the record it just read is
 * not used up: it knows nothing of buffered bytes. Nor does anything in lws's
 * callbacks tell us that it read one: a record in the middle of a large
 * frame delivers no RECEIVE (lws hands the payload over only when its
 * 64 KiB rx buffer is full or the frame ends).
 *
 * So the drain is tied to the socket itself: a callback on the socket BIO
 * below the buffer arms the drain timer (zero delay, which also keeps
 * the next poll() from sleeping) whenever a read() returned bytes. The
 * drain services the connection while OpenSSL or the buffer holds anything,
 * and stops only when they hold nothing, or when OpenSSL says it needs more
 * bytes from the socket: SSL_peek() decrypts a whole record if one is
 * buffered (the following lws_service_fd() then hands it to lws), and
 * fails with SSL_ERROR_WANT_READ only after its read() of the non-blocking
 * socket returned EAGAIN, when poll() will wake us for the rest. It services at
 * most PBX_DRAIN_MAX records per loop turn, so that one PBX cannot starve
 * the others, and re-arms itself while anything remains. lws's own buffers
 * (its rx buflist, its pending-TLS list) are lws's: it does not sleep in
 * poll() while they hold anything.
 */
static void pbx_drain_cb(lws_sorted_usec_list_t *sul);

static void
drain_arm(struct pbx *p)
{
	if (lws_dll2_is_detached(&p->sul_drain.list))
		lws_sul_schedule(p->env->context, 0, &p->sul_drain,
		    pbx_drain_cb, 1);
}

/*
 * The socket BIO's callback (BIO_set_callback_ex()): its argument is the
 * wsi, which owns the SSL and so outlives the BIO; the session is found
 * through the wsi (NULL once pbx_free() ran). Reads made by the drain
 * itself are its own business.
 */
static long
sock_bio_cb(BIO *b, int oper, const char *argp, size_t len, int argi,
    long argl, int ret, size_t *processed)
{
	struct lws *wsi = (struct lws *)BIO_get_callback_arg(b);
	struct pbx *p;

	(void)argp; (void)len; (void)argi; (void)argl;
	if (oper == (BIO_CB_READ | BIO_CB_RETURN) && ret > 0 &&
	    processed != NULL && *processed > 0 && wsi != NULL &&
	    (p = lws_get_opaque_user_data(wsi)) != NULL && p->wsi == wsi &&
	    !p->draining)
		drain_arm(p);
	return ret;
}

/*
 * Put a buffering BIO (PBX_TLS_READ_BUF) between OpenSSL's reads and the
 * socket BIO lws made, which stays OpenSSL's write BIO. The chain takes a
 * reference of its own to the socket BIO, so SSL_free() frees each once.
 * Without the memory for it, OpenSSL's read-ahead does the same job at the
 * cost of its realigning copies.
 *
 * lws sets SSL_MODE_RELEASE_BUFFERS: OpenSSL then frees its record buffer
 * (about 17 KiB) whenever it is empty, which without read-ahead is after
 * every record, and allocates it again for the next one. The session
 * keeps it instead.
 */
static void
read_buffer_attach(SSL *ssl, BIO *sock)
{
	BIO *buf = BIO_new(BIO_f_buffer());

	SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);

	if (buf == NULL || BIO_set_read_buffer_size(buf, PBX_TLS_READ_BUF) != 1 ||
	    BIO_up_ref(sock) != 1) {
		BIO_free(buf);
		ERR_clear_error();
		log_warn("pbx: out of memory for the TLS read buffer: using "
		    "OpenSSL's read-ahead");
		SSL_set_read_ahead(ssl, 1);
		return;
	}
	SSL_set0_rbio(ssl, BIO_push(buf, sock));	/* drops one ref of sock */
}

static void
drain_attach(struct pbx *p, struct lws *wsi)
{
	SSL *ssl = lws_get_ssl(wsi);
	BIO *rbio;

	if (ssl == NULL || (rbio = SSL_get_rbio(ssl)) == NULL)
		return;
	BIO_set_callback_arg(rbio, (char *)wsi);
	BIO_set_callback_ex(rbio, sock_bio_cb);
	read_buffer_attach(ssl, rbio);
	drain_arm(p);	/* whatever came before the callback was there */
}

/*
 * Whether OpenSSL (or the buffer below it) holds a whole record (or
 * decrypted bytes) for lws to read: false when it holds nothing, or part
 * of a record with the socket drained (SSL_ERROR_WANT_READ). A failure
 * other than WANT_READ (the PBX's close_notify, an alert, a reset) is true:
 * lws's SSL_read() meets it too, and closes.
 */
static bool
tls_record_ready(SSL *ssl, bool *failed)
{
	unsigned char c;
	int n;

	*failed = false;
	if (SSL_pending(ssl) > 0)
		return true;
	if (!SSL_has_pending(ssl) && BIO_ctrl_pending(SSL_get_rbio(ssl)) == 0)
		return false;
	if ((n = SSL_peek(ssl, &c, 1)) > 0)
		return true;
	n = SSL_get_error(ssl, n);
	ERR_clear_error();
	if (n == SSL_ERROR_WANT_READ)
		return false;
	*failed = true;
	return true;
}

static void
pbx_drain_cb(lws_sorted_usec_list_t *sul)
{
	struct pbx *p = lws_container_of(sul, struct pbx, sul_drain);
	struct lws_pollfd pfd;
	bool failed = false;
	int i;

	p->draining = true;
	for (i = 0; i < PBX_DRAIN_MAX && !failed && p->wsi != NULL; i++) {
		SSL *ssl = lws_get_ssl(p->wsi);
		int before;

		if (ssl == NULL || !tls_record_ready(ssl, &failed))
			break;
		before = SSL_pending(ssl);
		pfd.fd = lws_get_socket_fd(p->wsi);
		pfd.events = pfd.revents = LWS_POLLIN;
		lws_service_fd(p->env->context, &pfd);
		/*
		 * lws took nothing (a state where it reads no data, such as
		 * a close under way): what it left is its to take.
		 */
		if (p->wsi != NULL && (ssl = lws_get_ssl(p->wsi)) != NULL &&
		    before > 0 && SSL_pending(ssl) == before)
			break;
	}
	p->draining = false;
	if (i == PBX_DRAIN_MAX && p->wsi != NULL)
		drain_arm(p);		/* the rest on the next loop turn */
}

/* Append a piece of a message; keep at most max_frame bytes. */
static void
rx_append(struct pbx *p, const void *in, size_t len)
{
	size_t keep, want;

	if (!p->rx_in_msg) {
		rx_reset(p);
		p->rx_in_msg = true;
		p->rx_received_us = w2k_now_us();
	}
	p->rx_total += len;
	if (!p->rx_too_large && p->rx_total > p->pc->max_frame) {
		/*
		 * Over the limit: keep only what a dead letter shows and
		 * drop the rest as it streams in, so a hostile PBX cannot
		 * make us buffer more than max_frame.
		 */
		p->rx_too_large = true;
		if (p->rx_len > NORM_DL_RAW_MAX)
			p->rx_len = NORM_DL_RAW_MAX;
	}
	keep = len;
	if (p->rx_too_large)
		keep = p->rx_len < NORM_DL_RAW_MAX ?
		    NORM_DL_RAW_MAX - p->rx_len : 0;
	if (keep > len)
		keep = len;
	if (keep == 0)
		return;
	if (p->rx_len + keep > p->rx_cap) {
		unsigned char *nb;

		want = p->rx_cap ? p->rx_cap : 4096;
		while (want < p->rx_len + keep)
			want *= 2;
		if ((nb = realloc(p->rx, want)) == NULL) {
			/* Treat as too large: a dead letter, not a crash. */
			p->rx_too_large = true;
			return;
		}
		p->rx = nb;
		p->rx_cap = want;
	}
	memcpy(p->rx + p->rx_len, in, keep);
	p->rx_len += keep;
}

static int
on_writeable(struct pbx *p, struct lws *wsi)
{
	struct pbx_msg *m;

	if (p->closing) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, NULL, 0);
		return -1;
	}
	if (p->sent < p->nsend) {
		m = &p->sendq[p->sent];
		if (lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) <
		    (int)m->len) {
			log_warn("pbx %s: write to %s failed", p->pc->name,
			    cur_url(p)->text);
			return -1;
		}
		if (m->secret) {
			/* The password has left: wipe our copy now. */
			explicit_bzero(m->buf, LWS_PRE + m->len);
			p->auth_sent_us = w2k_mono_us();
		}
		p->sent++;
		if (p->state == PBX_AUTHENTICATING && p->nsubs_queued &&
		    p->sent == p->nsend) {
			p->state = PBX_SUBSCRIBED;
			p->subscribed_us = w2k_mono_us();
			log_info("pbx %s: subscribed (%zu subscription%s) on %s",
			    p->pc->name, p->nsubs_queued,
			    p->nsubs_queued == 1 ? "" : "s", cur_url(p)->text);
		}
		if (p->sent < p->nsend || p->ping_due)
			lws_callback_on_writable(wsi);
		return 0;
	}
	if (p->ping_due) {
		unsigned char buf[LWS_PRE + 1];

		p->ping_due = false;
		if (lws_write(wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0)
			return -1;
	}
	return 0;
}

/* ---- TLS ------------------------------------------------------------ */

/*
 * Our slot on every client SSL: the first fatal alert of its handshake,
 * sent or received, kept by tls_alert_cb() so that a refused handshake can
 * be named. Allocated with the first client SSL_CTX.
 */
static int tls_alert_idx = -1;

#define TLS_ALERT_SEEN	0x10000
#define TLS_ALERT_SENT	0x20000

static void
tls_alert_cb(const SSL *cssl, int where, int ret)
{
	SSL *ssl = (SSL *)(uintptr_t)cssl;	/* ex_data is ours to set */

	if (!(where & SSL_CB_ALERT) || (ret >> 8) != SSL3_AL_FATAL ||
	    tls_alert_idx < 0 || SSL_get_ex_data(ssl, tls_alert_idx) != NULL)
		return;
	SSL_set_ex_data(ssl, tls_alert_idx, (void *)(uintptr_t)(
	    TLS_ALERT_SEEN | ((where & SSL_CB_WRITE) ? TLS_ALERT_SENT : 0) |
	    (ret & 0xffff)));
}

/*
 * lws hands us each client SSL_CTX it creates, once
 * (LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS; lws may share one
 * between vhosts whose TLS settings are equal, and ours are the same for
 * all). TLS 1.2 is the floor whatever the system's OpenSSL policy says
 * (pbx_new() also sets it as SSL_OP_NO_* options, which lws applies to the
 * context itself); the alert callback serves tls_failure().
 */
static void
tls_client_ctx_setup(SSL_CTX *ctx)
{
	if (ctx == NULL)
		return;
	if (tls_alert_idx < 0)
		tls_alert_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	SSL_CTX_set_info_callback(ctx, tls_alert_cb);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		log_err("pbx: cannot set TLS 1.2 as the minimum version");
}

/* A TLS alert in words; OpenSSL 3.0 names none newer than TLS 1.2. */
static const char *
alert_name(uintptr_t a)
{
	switch (a & 0xff) {
	case SSL_AD_MISSING_EXTENSION:
		return "missing extension";
	case SSL_AD_CERTIFICATE_REQUIRED:
		return "certificate required";
	case SSL_AD_NO_APPLICATION_PROTOCOL:
		return "no application protocol";
	default:
		return SSL_alert_desc_string_long((int)(a & 0xffff));
	}
}

/*
 * Why a TLS connect failed, in words, or NULL when TLS is not the reason.
 * lws 4.1 passes CONNECTION_ERROR no more than "connect SSL err 1:
 * error:00000001:lib(0)::reason(1)", but the SSL object still exists then:
 * its verify result names a refused certificate, and the alert kept by
 * tls_alert_cb() a refused handshake (protocol version, client certificate).
 */
static const char *
tls_failure(const struct pbx *p, struct lws *wsi, char *buf, size_t len)
{
	SSL *ssl = lws_get_ssl(wsi);
	uintptr_t a = 0;
	long vr;

	if (ssl == NULL)
		return NULL;
	vr = SSL_get_verify_result(ssl);
	if (tls_alert_idx >= 0)
		a = (uintptr_t)SSL_get_ex_data(ssl, tls_alert_idx);
	if (vr == X509_V_ERR_HOSTNAME_MISMATCH)
		snprintf(buf, len, "certificate verify failed: hostname "
		    "mismatch (the certificate is not for %s)",
		    cur_url(p)->host);
	else if (vr != X509_V_OK)
		snprintf(buf, len, "certificate verify failed: %s",
		    X509_verify_cert_error_string(vr));
	else if ((a & TLS_ALERT_SEEN) && (a & 0xff) == SSL_AD_PROTOCOL_VERSION)
		snprintf(buf, len, "TLS handshake failed: no common protocol "
		    "version (TLS 1.2 or later required; alert \"%s\" %s)",
		    alert_name(a),
		    (a & TLS_ALERT_SENT) ? "sent" : "from the PBX");
	else if (a & TLS_ALERT_SEEN)
		snprintf(buf, len, "TLS %s: alert \"%s\" %s",
		    SSL_is_init_finished(ssl) ? "error" : "handshake failed",
		    alert_name(a),
		    (a & TLS_ALERT_SENT) ? "sent" : "from the PBX");
	else
		return NULL;
	return buf;
}

static enum pbx_disc
classify_error(const char *in, size_t len)
{
	static const char *const tls_words[] = {
		"ssl", "tls", "cert", "x509", "verify",
	};
	char buf[256];

	if (in == NULL)
		return PBX_DISC_ERROR;
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, in, len);
	buf[len] = '\0';
	/* lws's own limits ("Timed out waiting SSL") before the TLS words */
	if (strcasestr(buf, "timed out") != NULL ||
	    strcasestr(buf, "timeout") != NULL)
		return PBX_DISC_TIMEOUT;
	for (size_t i = 0; i < W2K_ARRAY_SIZE(tls_words); i++)
		if (strcasestr(buf, tls_words[i]) != NULL)
			return PBX_DISC_TLS;
	return PBX_DISC_ERROR;
}

/*
 * An attempt that never became a WebSocket: count it by reason, say why
 * (ours when we ended it, the TLS reason, or lws's text), retry.
 */
static void
connect_failed(struct pbx *p, struct lws *wsi, const char *in, size_t len)
{
	char buf[384];
	const char *text = buf;
	enum pbx_disc why;

	if (p->closing) {		/* connect_timeout, or a stop */
		why = p->close_reason;
		snprintf(buf, sizeof(buf), "timed out after %d s (TCP, TLS "
		    "handshake and WebSocket upgrade: connect_timeout)",
		    p->pc->connect_timeout);
	} else if (tls_failure(p, wsi, buf, sizeof(buf)) != NULL) {
		why = PBX_DISC_TLS;
	} else {
		why = classify_error(in, len);
		snprintf(buf, sizeof(buf), "%.*s", in ? (int)len : 7,
		    in ? in : "unknown");
	}
	if (why != PBX_DISC_STOPPED) {
		p->stats.connects_failed++;
		p->stats.connect_failures[why]++;
		log_warn("pbx %s: connection to %s failed: %s", p->pc->name,
		    cur_url(p)->text, text);
	}
	session_ended(p, why, false);
}

static int
pbx_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct pbx *p = lws_get_opaque_user_data(wsi);
	enum pbx_disc why;

	/* With a stand-in wsi, no session: before the lookup below. */
	if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS) {
		tls_client_ctx_setup(user);
		return 0;
	}
	if (p == NULL)		/* freed while lws still held the wsi */
		return 0;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (p->state != PBX_CONNECTING && p->wsi != wsi)
			break;
		connect_failed(p, wsi, in, len);
		break;

	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		p->wsi = wsi;
		p->stats.connects_ok++;
		p->state = PBX_AUTHENTICATING;
		p->last_rx_us = p->last_ping_us = w2k_mono_us();
		p->auth_sent_us = p->last_rx_us;
		rx_reset(p);
		drain_attach(p, wsi);	/* the read path: see drain_arm() */
		log_info("pbx %s: connected to %s", p->pc->name,
		    cur_url(p)->text);
		if (queue_auth(p) != 0) {
			log_err("pbx %s: cannot build the auth command",
			    p->pc->name);
			return -1;
		}
		lws_callback_on_writable(wsi);
		lws_sul_schedule(p->env->context, 0, &p->sul_tick, pbx_tick_cb,
		    PBX_TICK_US);
		break;

	case LWS_CALLBACK_CLIENT_RECEIVE:
		p->last_rx_us = w2k_mono_us();
		rx_append(p, in, len);
		if (lws_is_final_fragment(wsi) &&
		    lws_remaining_packet_payload(wsi) == 0) {
			handle_frame(p);
			p->rx_in_msg = false;
		}
		break;

	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		p->last_rx_us = w2k_mono_us();
		break;

	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(p, wsi);

	case LWS_CALLBACK_CLIENT_CLOSED:
		if (p->wsi != wsi)
			break;
		why = p->closing ? p->close_reason : PBX_DISC_CLOSED;
		if (why != PBX_DISC_STOPPED)
			log_warn("pbx %s: disconnected from %s (%s)",
			    p->pc->name, cur_url(p)->text, pbx_disc_name(why));
		session_ended(p, why, true);
		break;

	case LWS_CALLBACK_WSI_DESTROY:
		/*
		 * Still ours: neither CONNECTION_ERROR nor CLOSED came. lws
		 * 4.1.6 does that to some connects that end while it waits
		 * for the upgrade response: when its own time limit for the
		 * step runs out (pbx_tick_cb() now keeps that from coming
		 * first), and at times when the PBX refuses the client
		 * certificate after the handshake (test 204). Without this
		 * the session would stay "connecting" for ever: a session
		 * must never be left without a reconnect.
		 */
		if (p->wsi != wsi)
			break;
		if (p->state == PBX_CONNECTING) {
			static const char none[] = "the connection ended "
			    "before the WebSocket upgrade, no reason given";

			connect_failed(p, wsi, none, sizeof(none) - 1);
			break;
		}
		why = p->closing ? p->close_reason : PBX_DISC_CLOSED;
		log_warn("pbx %s: disconnected from %s (%s)", p->pc->name,
		    cur_url(p)->text, pbx_disc_name(why));
		session_ended(p, why, true);
		break;

	default:
		break;
	}
	return 0;
}

/* ---- public ---------------------------------------------------------- */

/*
 * lws keeps the vhost name pointer, not a copy, for as long as the vhost
 * lives, which is until the context goes: longer than the cfg the name
 * comes from, which a reload frees (ASan caught lws reading the freed name
 * while it served an HTTP request after a reload, test 222). So names are
 * kept here, one copy per distinct name, for the life of the process.
 * NULL: no memory.
 */
static const char *
vhost_name(const char *name)
{
	static char **names;
	static size_t n;
	char **nv;

	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return names[i];
	if ((nv = realloc(names, (n + 1) * sizeof(*nv))) == NULL)
		return NULL;
	names = nv;
	if ((names[n] = strdup(name)) == NULL)
		return NULL;
	return names[n++];
}

/* The session's own allocations (not its vhost). */
static void
pbx_free_mem(struct pbx *p)
{
	free(p->sendq);
	free(p->sub_state);
	free(p->sub_logged);
	free(p->sub_awaited);
	free(p->await);
	free(p);
}

int
pbx_new(const struct cfg_pbx *pc, const struct pbx_env *env,
    struct pbx **pp)
{
	struct lws_context_creation_info info;
	struct pbx *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return W2K_ENOMEM;
	p->pc = pc;
	p->env = env;
	p->state = PBX_STOPPED;
	p->sendq_cap = 1 + pc->nsubs;
	if ((p->sendq = calloc(p->sendq_cap, sizeof(*p->sendq))) == NULL ||
	    (p->sub_state = calloc(pc->nsubs + 1, sizeof(*p->sub_state))) ==
	    NULL ||
	    (p->sub_logged = calloc(pc->nsubs + 1, sizeof(bool))) == NULL ||
	    (p->sub_awaited = calloc(pc->nsubs + 1, sizeof(bool))) == NULL ||
	    (p->await = calloc(pc->nsubs + 1, sizeof(size_t))) == NULL) {
		pbx_free_mem(p);
		return W2K_ENOMEM;
	}
	backoff_init(&p->bo, pc->backoff_initial, pc->backoff_max);

	/*
	 * One vhost per PBX: in lws the client TLS settings (CA, client
	 * certificate) belong to a vhost, and PBXs may differ in them.
	 */
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	if ((info.vhost_name = vhost_name(pc->name)) == NULL) {
		pbx_free_mem(p);
		return W2K_ENOMEM;
	}
	info.protocols = pbx_protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = pc->tls.ca_file;
	info.client_ssl_cert_filepath = pc->tls.cert_file;
	info.client_ssl_private_key_filepath = pc->tls.key_file;
	/* TLS 1.2 at least (see also tls_client_ctx_setup()). */
	info.ssl_client_options_set = (long)(SSL_OP_NO_SSLv2 |
	    SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
	info.retry_and_idle_policy = &idle_policy;
	if ((p->vhost = lws_create_vhost(env->context, &info)) == NULL) {
		log_err("pbx %s: cannot set up TLS (ca_file, cert_file or "
		    "key_file rejected)", pc->name);
		pbx_free_mem(p);
		return W2K_EINVAL;
	}
	if (!pc->tls.verify)
		log_warn("pbx %s: tls.verify = false: the PBX's certificate "
		    "is NOT checked; anyone on the path can read the "
		    "password and the events", pc->name);
	*pp = p;
	return 0;
}

void
pbx_start(struct pbx *p)
{
	p->stopping = false;
	p->state = PBX_WAITING;
	lws_sul_schedule(p->env->context, 0, &p->sul_connect, pbx_connect_cb,
	    1);
}

void
pbx_stop(struct pbx *p)
{
	p->stopping = true;
	lws_sul_cancel(&p->sul_connect);
	if (p->wsi != NULL)
		request_close(p, PBX_DISC_STOPPED);
	else
		p->state = PBX_STOPPED;
}

bool
pbx_idle(const struct pbx *p)
{
	return p->wsi == NULL && p->state == PBX_STOPPED;
}

void
pbx_rebind(struct pbx *p, const struct cfg_pbx *pc)
{
	p->pc = pc;
}

void
pbx_free(struct pbx *p)
{
	if (p == NULL)
		return;
	lws_sul_cancel(&p->sul_connect);
	lws_sul_cancel(&p->sul_tick);
	lws_sul_cancel(&p->sul_drain);
	/*
	 * The vhost holds this PBX's SSL_CTX and CA store: a reload that
	 * replaces the session must not leave it behind. Destroyed only when
	 * no connection is left on it; a session freed while connected (a
	 * forced reap, or exit) leaves its vhost to lws_context_destroy().
	 */
	if (p->vhost != NULL && pbx_idle(p))
		lws_vhost_destroy(p->vhost);
	if (p->wsi != NULL)	/* lws may still call back: make it a no-op */
		lws_set_opaque_user_data(p->wsi, NULL);
	sendq_clear(p);
	free(p->rx);
	pbx_free_mem(p);
}

size_t
pbx_nsubs(const struct pbx *p)
{
	return p->pc->nsubs;
}

const struct cfg_sub *
pbx_subs(const struct pbx *p)
{
	return p->pc->subs;
}

const enum pbx_sub_state *
pbx_sub_states(const struct pbx *p)
{
	return p->sub_state;
}

bool
pbx_cdr_live(const struct pbx *p)
{
	if (p->state != PBX_SUBSCRIBED || p->closing)
		return false;
	for (size_t i = 0; i < p->pc->nsubs; i++) {
		const struct cfg_strv *t = &p->pc->subs[i].topics;

		if (p->sub_state[i] != PBX_SUB_ACTIVE)
			continue;
		for (size_t j = 0; j < t->n; j++)
			if (strcmp(t->v[j], "cdr_events") == 0 ||
			    strcmp(t->v[j], "global_cdr_events") == 0)
				return true;
	}
	return false;
}

int64_t
pbx_last_frame_us(const struct pbx *p)
{
	return p->last_frame_us;
}

size_t
pbx_subs_rejected(const struct pbx *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->pc->nsubs; i++)
		n += p->sub_state[i] == PBX_SUB_REJECTED;
	return n;
}

const char *
pbx_sub_state_name(enum pbx_sub_state st)
{
	static const char *const names[] = {
		[PBX_SUB_PENDING] = "pending", [PBX_SUB_ACTIVE] = "active",
		[PBX_SUB_REJECTED] = "rejected",
	};

	return (unsigned)st < PBX_SUB_STATE_COUNT ? names[st] : "unknown";
}
