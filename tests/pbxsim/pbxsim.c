/*
 * pbxsim — a PortSIP PBX "WSI" simulator (wss server) for the tests.
 *
 *   pbxsim --cert FILE --key FILE [--port N] [--port-file FILE] [--path /wsi]
 *          [--user NAME] [--password PW] [--domain D] [--v16]
 *          [--script FILE] [--loop] [--subs N] [--log FILE]
 *          [--flood N] [--rate EPS] [--tenants N] [--idle-close S]
 *          [--client-ca FILE] [--log-time] [--tls-max VERSION]
 *          [--refuse-topic TOPIC]
 *          [--calls N] [--calls-every MS] [--calls-wait-sub]
 *          [--drop-at-call N --down-calls M] [--rest-port-file FILE]
 *          [--rest-token-ttl S] [--rest-legacy] [--rest-no-calllogs]
 *          [--rest-shift] [--rest-chaos PCT] [--rest-revoke-every N]
 *          [--seed N]      (calls and the REST API: see "calls + REST")
 *
 * A test buddy for the integration tests, the demo and the benchmarks: it
 * plays the PBX side of shared/reference/portsip-wsi.md (§1-§3, payloads of
 * §4, and the "simulator behaviour" column of §6) on 127.0.0.1 only, over
 * TLS, on libwebsockets 4.1's server side. It is one file on purpose (the
 * Makefile builds it alone) and never uses the daemon's modules, so a bug
 * there cannot hide itself here. It must never hang, never buffer without
 * bound and never write the client's password anywhere.
 *
 * Protocol, per connection:
 *  - The first frame must be {"command":"auth",...}: "username" or
 *    "extension_number" equal to --user, "password" equal to --password,
 *    "domain" equal to --domain (and absent when --domain is not given).
 *    Success {"command":"auth","id":"<n>","status":0}; failure
 *    {"command":"auth","error":"access_token , username , domain or password
 *    error","id":"<n>","status":-1}, then a close frame (1008) once the reply
 *    is out. --v16 uses the v16.0 forms {"status":0} and {"error":"name or
 *    password error","status":-1}. "id" counts replies on the connection,
 *    from "1". Other commands before auth, unknown commands and bad frames
 *    (invalid JSON, binary, over 1 MiB) get {"command":"<cmd, or empty>",
 *    "error":"...","id":"<n>","status":-1} and the connection stays.
 *  - An upgrade to another path than --path, or beyond 64 connections, is
 *    refused (no 101; the TCP connection closes); plain HTTPS gets 404.
 *  - "subscribe" -> {"command":"subscribe","id":"<n>","status":0}, then one
 *    extension_status (one entry per extension of that command) when it
 *    names extension_events with "extensions", and one queue_status per
 *    queue when it names queue_events with "queues" (§4.1, §4.5
 *    reconstruction). "unsubscribe" -> status 0.
 *
 * Once a connection has had --subs (default 1) successful subscribes and its
 * replies and snapshots are out, it becomes the "player": it plays the
 * --flood prologue (if any) and then the --script. The script position is
 * global: @drop, @close, @stall, @end and a disconnect hand the rest of the
 * script to the next connection that gets ready (the cursor is not rewound).
 * One connection plays at a time. Script lines (JSON lines file):
 *   any line not starting with '@'  sent verbatim as one text frame
 *   @sleep MS          pause the script
 *   @drop              abortive close once what was sent has left the
 *                      socket (at most 2 s): no close frame, no TLS
 *                      close_notify; the client sees EOF (lws shuts down the
 *                      write side) and then a RST (SO_LINGER 0)
 *   @close             clean WebSocket close (1000)
 *   @stall             this connection sends nothing and reads nothing (so
 *                      pings go unanswered) until the client closes its end
 *                      (noticed within 200 ms)
 *   @binary HEX        one binary frame
 *   @invalid_utf8      a text frame with bytes ff fe 80 inside a JSON string
 *   @fragment N LINE   LINE as one text message in N fragments
 *   @big BYTES         one valid JSON event of exactly BYTES bytes
 *   @flood N           N generated events (see --flood)
 *   @end               stop playing on this connection, keep it open
 *   @# text            comment
 * --loop restarts the script (not the --flood prologue) at its end.
 *
 * --flood N sends N generated events: per call call_start, cdr_target_add/
 * ringing/answer/end, call_cdr with 2-4 call_targets, plus extension_call,
 * extension_presence and queue_caller_status, over --tenants tenants
 * (default 4), each with a unique session id and "seq": 0..N-1. --rate EPS
 * paces them with a timer, else they go as fast as the socket drains.
 *
 * --idle-close S closes (1001) a connection that sent nothing, not even a
 * ping, for S seconds (checked every 200 ms; stalled connections excepted).
 *
 * Output. stdout: "PORT <n>" once listening (also written to --port-file
 * via temp file + rename). --log FILE (appended to; also on stderr,
 * prefixed "pbxsim: "): one line per happening, flushed at once:
 *   LISTEN <port>                    CONNECT <c>
 *   AUTH <c> ok user=<u>             AUTH <c> fail user=<u> (<why>)
 *   SUBSCRIBE <c> <frame minus "command">     UNSUBSCRIBE <c> <...>
 *   ERROR <c> <why>                  PING <c>
 *   PLAY <c> line <l> | PLAY <c> flood    SENT <c> <messages since last>
 *   FLOOD start <n>                  FLOOD done <n>
 *   DROP <c>   CLOSE <c>   STALL <c>   END <c>   IDLE <c>
 *   LOOP       SCRIPT done           REJECT <why>
 *   DISCONNECT <c>                   EXIT
 * --log-time prefixes every --log line with the wall-clock time it was
 * written, "<unix seconds>.<microseconds> " (CLOCK_REALTIME, the daemon's
 * received_at clock), for the benchmarks (tests/bench/bench.sh times a flood
 * from "FLOOD start" to "FLOOD done").
 * SENT is logged when a script section ends on the playing connection: at
 * @sleep (if something was sent), @drop, @close, @stall, @end, at the end of
 * the script and when the player disconnects.
 *
 * Pings: lws 4.1 answers client pings itself and tells the server code
 * nothing (ws/server-ws.c, LWSWSOPC_PING). To log them and to let a ping
 * count as traffic for --idle-close, this file defines SSL_read():
 * libwebsockets calls it through the PLT, so the definition here runs first,
 * calls the real one (dlsym RTLD_NEXT) and feeds the plaintext of
 * established connections to a small frame-header parser that only looks at
 * opcodes.
 *
 * --refuse-topic TOPIC refuses every subscribe that names TOPIC, as a PBX
 * refuses a topic the account may not take (portsip-wsi §3.6, §6 #5):
 * {"command":"subscribe","error":"no permission to subscribe to TOPIC",
 * "id":"<n>","status":-1}, logged "REFUSE <c> <frame>"; the connection
 * stays, and a refused subscribe does not count towards --subs. SIGUSR1
 * lifts it (the permission was granted on the PBX): logged "ACCEPT TOPIC",
 * later subscribes to it succeed.
 *
 * --client-ca FILE (an addition to the brief) requires a client certificate
 * signed by that CA (mutual TLS, contract §4 tls.cert_file).
 *
 * --tls-max VERSION (1.0, 1.1, 1.2 or 1.3) offers TLS up to that version
 * only, from TLS 1.0 up whatever the system's OpenSSL policy says, at
 * OpenSSL security level 0 below 1.2 (OpenSSL 3 refuses TLS 1.0/1.1 at
 * level 1): a legacy PBX, which the daemon must refuse (TLS 1.2 minimum).
 *
 * Exit status: 0 after SIGTERM/SIGINT, 64 usage error, 1 other failure.
 */

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#define MAX_SESSIONS	64		/* concurrent connections */
#define RX_MAX		(1024 * 1024)	/* largest client message kept */
#define Q_MAX_FRAMES	1024		/* pause reading above this... */
#define Q_MAX_BYTES	(16u * 1024 * 1024)	/* ...or this much queued */
#define GEN_CAP		8192		/* one generated event, worst case */
#define FLOOD_BURST	256		/* flood frames per WRITEABLE */
#define WBUF_SIZE	(64 * 1024)	/* the flood's write buffer */
#define SCRIPT_MAX	(256L * 1024 * 1024)
#define BIG_MAX		(64L * 1024 * 1024)
#define TICK_US		(200 * LWS_US_PER_MS)
#define DROP_WAIT_US	(2 * LWS_US_PER_SEC)

#define TENANT_BASE	883611252155219968ULL
#define EXT_BASE	794493219508322304ULL
#define QUEUE_BASE	677046776364007424ULL
#define SESSION_BASE	885337248273272832ULL

/* ---------------------------------------------------------------- options */

static struct opts {
	const char	*cert, *key, *client_ca;
	int		 port;
	const char	*port_file;
	const char	*path;
	const char	*user, *password, *domain;
	int		 v16;
	const char	*script;
	int		 loop;
	unsigned	 subs;
	const char	*refuse_topic;
	const char	*log;
	unsigned long long flood;
	double		 rate;
	unsigned	 tenants;
	double		 idle_close;
	int		 log_time;
	int		 tls_max;	/* TLS1_1_VERSION...; 0: no limit */
	/* calls and REST (see "calls + REST") */
	unsigned long long calls, calls_every, drop_at, down_calls;
	int		 calls_wait_sub;
	const char	*rest_port_file, *rest_cert, *rest_key;
	unsigned long long token_ttl, revoke_every, seed;
	int		 rest_legacy, rest_no_calllogs, rest_shift;
	uint64_t	 chaos;
} opt = {
	.path = "/wsi", .user = "admin", .password = "secret", .subs = 1,
	.tenants = 4, .token_ttl = 3600, .seed = 1,
};

static volatile sig_atomic_t interrupted;
static volatile sig_atomic_t refuse_lifted;	/* SIGUSR1 */
static int refuse_logged;
static struct lws_context *ctx;
static int shutting_down;
static FILE *logfp;
static unsigned next_conn = 1;
static unsigned long long next_session;	/* unique session ids */

/* ---------------------------------------------------------------- logging */

/* One line per happening: bare in --log (for grep), prefixed on stderr. */
static void plog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
plog(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (logfp != NULL) {
		if (opt.log_time) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			fprintf(logfp, "%lld.%06ld ", (long long)ts.tv_sec,
			    ts.tv_nsec / 1000);
		}
		fprintf(logfp, "%s\n", line);
		fflush(logfp);
	}
	fprintf(stderr, "pbxsim: %s\n", line);
}

static void
lws_log_emit(int level, const char *line)
{
	(void)level;
	fprintf(stderr, "pbxsim: lws: %s", line);	/* line ends in \n */
}

/* Client-chosen text for a log line: printable ASCII, at most 64 bytes. */
static const char *
log_safe(const char *s, char *buf, size_t len)
{
	size_t i;

	if (s == NULL)
		return "-";
	for (i = 0; s[i] != '\0' && i + 1 < len && i < 64; i++)
		buf[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* ------------------------------------------------------------ strbuf */

struct sb {
	char	*p;
	size_t	 len, cap;
	int	 overflow;
};

static void sb_printf(struct sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len)
		b->overflow = 1;
	else
		b->len += (size_t)n;
}

/* ------------------------------------------------------------ identities */

static uint64_t
fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static unsigned long long
tenant_id(unsigned t)
{
	return TENANT_BASE + (unsigned long long)t * 1000003ULL;
}

static void
tenant_domain(unsigned t, char *buf, size_t len)
{
	if (t == 0)
		snprintf(buf, len, "%s", opt.domain ? opt.domain : "test.io");
	else
		snprintf(buf, len, "tenant%u.test.io", t);
}

static unsigned long long
ext_id(unsigned t, const char *number)
{
	return EXT_BASE + (unsigned long long)t * 100000ULL +
	    fnv1a(number) % 100000ULL;
}

static unsigned long long
queue_id(unsigned t, const char *number)
{
	return QUEUE_BASE + (unsigned long long)t * 100000ULL +
	    fnv1a(number) % 100000ULL;
}

/* ------------------------------------------------------------ frames */

/* One queued outgoing message, payload preceded by LWS_PRE bytes. */
struct frame {
	struct frame	*next;
	size_t		 len;
	int		 binary;
};

static unsigned char *
frame_payload(struct frame *f)
{
	return (unsigned char *)(f + 1) + LWS_PRE;
}

static struct frame *
frame_new(const void *data, size_t len, int binary)
{
	struct frame *f;

	if ((f = malloc(sizeof(*f) + LWS_PRE + len)) == NULL)
		return NULL;
	f->next = NULL;
	f->len = len;
	f->binary = binary;
	if (len > 0)
		memcpy(frame_payload(f), data, len);
	return f;
}

/* ------------------------------------------------------------ script */

enum op {
	OP_TEXT, OP_SLEEP, OP_DROP, OP_CLOSE, OP_STALL, OP_BINARY,
	OP_INVALID_UTF8, OP_FRAGMENT, OP_BIG, OP_FLOOD, OP_END, OP_COMMENT
};

struct line {
	enum op			 op;
	unsigned		 lineno;	/* 0: the --flood prologue */
	unsigned char		*buf;		/* LWS_PRE + len bytes */
	size_t			 len;
	unsigned long long	 n;		/* MS, N fragments, N events */
};

/*
 * The generated-call state machine behind --flood / @flood: one call is a
 * plan of steps, each step one event.
 */
enum step {
	ST_CALL_START, ST_QC_ENQUEUE, ST_T_ADD, ST_T_RING, ST_EC_RING,
	ST_T_ANSWER, ST_EC_ON, ST_QC_ANSWERED, ST_T_END, ST_EC_IDLE,
	ST_PRESENCE, ST_CDR
};

struct gen {
	uint64_t		 rng;
	unsigned long long	 calls;
	unsigned char		 plan[32], tgt[32];
	int			 nsteps, step;
	unsigned		 tenant;
	int			 dir;	/* 0 internal, 1 inbound, 2 outbound */
	int			 ntargets;
	int			 answered;	/* target index, -1: none */
	unsigned		 caller_ext, target_ext[4], queue;
	unsigned long long	 session;
	char			 call_id[32], external[16];
	long long		 t0;
};

/* The one script player (see the top of the file). */
static struct player {
	struct line		*lines;
	size_t			 nlines, loop_start, cursor;
	unsigned long long	 sub;	/* fragments / flood events done */
	int			 finished, sleeping;
	struct sess		*owner;
	lws_sorted_usec_list_t	 sul_sleep, sul_rate;
	double			 tokens;
	lws_usec_t		 last_refill;
	struct gen		 gen;
} P;

/* ------------------------------------------------------------ sessions */

struct wsparse {		/* client frame headers, for the ping tap */
	unsigned char	hdr[14];
	unsigned	hlen;
	uint64_t	skip;
};

/* Per-connection state: lws allocates it zeroed (per_session_data_size). */
struct sess {
	struct sess	*next, *prev;		/* live sessions */
	struct lws	*wsi;
	SSL		*ssl;
	unsigned	 conn, reply_id, subs;
	int		 live, authed, stalled, done_playing, rx_paused;
	int		 cdr_sub;		/* subscribed to CDRs */
	int		 close_code, close_after_queue, dropping;
	lws_usec_t	 last_rx, drop_deadline;
	unsigned long	 sent;			/* player frames this section */
	struct frame	*qh, *qt;
	size_t		 qframes, qbytes;
	char		*rx;
	size_t		 rxlen, rxcap;
	int		 rx_binary, rx_overflow;
	struct wsparse	 wp;
	unsigned char	*gbuf;			/* LWS_PRE + GEN_CAP */
	BIO		*wbuf;			/* flood write buffer (SSL's) */
};

static struct sess *sessions;
static unsigned nsessions;

static void player_assign(void);
static void calls_start(void);
static int calls_down(void);

static void
sess_link(struct sess *s)
{
	s->prev = NULL;
	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	nsessions++;
}

static void
sess_unlink(struct sess *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	nsessions--;
}

static void
enqueue(struct sess *s, struct frame *f)
{
	if (f == NULL) {
		plog("ERROR %u out of memory, reply dropped", s->conn);
		return;
	}
	if (s->qt != NULL)
		s->qt->next = f;
	else
		s->qh = f;
	s->qt = f;
	s->qframes++;
	s->qbytes += f->len;
	/*
	 * A client can make us queue replies faster than it reads them; stop
	 * reading (TCP backpressure) until the queue drains to half.
	 */
	if (!s->rx_paused && (s->qframes > Q_MAX_FRAMES ||
	    s->qbytes > Q_MAX_BYTES)) {
		s->rx_paused = 1;
		lws_rx_flow_control(s->wsi, 0);
	}
	lws_callback_on_writable(s->wsi);
}

static void
enqueue_json(struct sess *s, cJSON *j)
{
	char *txt = cJSON_PrintUnformatted(j);

	if (txt == NULL) {
		plog("ERROR %u out of memory, reply dropped", s->conn);
		return;
	}
	enqueue(s, frame_new(txt, strlen(txt), 0));
	free(txt);
}

static void
sess_free_queue(struct sess *s)
{
	struct frame *f;

	while ((f = s->qh) != NULL) {
		s->qh = f->next;
		free(f);
	}
	s->qt = NULL;
	s->qframes = s->qbytes = 0;
}

/* ------------------------------------------------------------ SSL_read tap */

typedef int (*ssl_read_fn)(SSL *, void *, int);
static ssl_read_fn real_ssl_read;

/*
 * Walk client->server frame headers (RFC 6455 §5.2) and skip payloads; only
 * the opcode matters: 0x9 is a ping.
 */
static void
tap_parse(struct sess *s, const unsigned char *p, size_t n)
{
	struct wsparse *w = &s->wp;
	unsigned need, l7;
	uint64_t plen;
	size_t k;
	unsigned i;

	while (n > 0) {
		if (w->skip > 0) {
			k = w->skip < n ? (size_t)w->skip : n;
			w->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		w->hdr[w->hlen++] = *p++;
		n--;
		if (w->hlen < 2)
			continue;
		l7 = w->hdr[1] & 0x7f;
		need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) +
		    ((w->hdr[1] & 0x80) ? 4 : 0);
		if (w->hlen < need)
			continue;
		if (l7 < 126) {
			plen = l7;
		} else {
			plen = 0;
			for (i = 0; i < (l7 == 126 ? 2u : 8u); i++)
				plen = (plen << 8) | w->hdr[2 + i];
		}
		if ((w->hdr[0] & 0x0f) == 0x9)
			plog("PING %u", s->conn);
		w->skip = plen;
		w->hlen = 0;
	}
}

/*
 * Interposed on libssl's SSL_read (see the top of the file). Only bytes of
 * connections past the WebSocket upgrade are looked at: RFC 6455 §4.1 makes
 * the client wait for the 101 before it sends frames, so the first read
 * after LWS_CALLBACK_ESTABLISHED starts on a frame boundary.
 */
int
SSL_read(SSL *ssl, void *buf, int num)
{
	struct sess *s;
	int n;

	if (real_ssl_read == NULL) {
		void *sym = dlsym(RTLD_NEXT, "SSL_read");

		if (sym == NULL) {
			fprintf(stderr, "pbxsim: dlsym(SSL_read): %s\n",
			    dlerror());
			abort();
		}
		memcpy(&real_ssl_read, &sym, sizeof(real_ssl_read));
	}
	n = real_ssl_read(ssl, buf, num);
	if (n > 0) {
		for (s = sessions; s != NULL; s = s->next) {
			if (s->ssl == ssl) {
				s->last_rx = lws_now_usecs();
				tap_parse(s, buf, (size_t)n);
				break;
			}
		}
	}
	return n;
}

static int
tap_active(void)
{
	void *sym = dlsym(RTLD_DEFAULT, "SSL_read");
	ssl_read_fn fn;

	if (sym == NULL)
		return 0;
	memcpy(&fn, &sym, sizeof(fn));
	return fn == SSL_read;
}

/* ------------------------------------------------------------ generator */

static uint64_t
rnd(struct gen *g)
{
	/* xorshift64*: fixed seed, so every run floods the same calls */
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return g->rng * 2685821657736338717ULL;
}

static unsigned
rndn(struct gen *g, unsigned n)
{
	return (unsigned)(rnd(g) % n);
}

static void
gen_plan(struct gen *g)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	int i, n = 0;

	g->tenant = rndn(g, opt.tenants);
	g->dir = (int)rndn(g, 3);
	g->ntargets = 2 + (int)rndn(g, 3);
	g->answered = rndn(g, 8) == 0 ? -1 :
	    (int)rndn(g, (unsigned)g->ntargets);
	g->caller_ext = 100 + rndn(g, 100);
	g->queue = 8000 + rndn(g, 4);
	for (i = 0; i < g->ntargets; i++)
		g->target_ext[i] = 100 + rndn(g, 100);
	for (i = 0; i < 22; i++)
		g->call_id[i] = b64[rndn(g, 64)];
	memcpy(g->call_id + 22, "..", 3);
	snprintf(g->external, sizeof(g->external), "1888%06u",
	    rndn(g, 1000000));
	g->session = SESSION_BASE + 16 * next_session++;
	g->t0 = (long long)time(NULL);

	g->plan[n++] = ST_CALL_START;
	if (g->dir == 1)
		g->plan[n++] = ST_QC_ENQUEUE;
	for (i = 0; i < g->ntargets; i++) {
		g->tgt[n] = (unsigned char)i;
		g->plan[n++] = ST_T_ADD;
		g->tgt[n] = (unsigned char)i;
		g->plan[n++] = ST_T_RING;
	}
	if (g->answered >= 0) {
		g->plan[n++] = ST_EC_RING;
		g->tgt[n] = (unsigned char)g->answered;
		g->plan[n++] = ST_T_ANSWER;
		g->plan[n++] = ST_EC_ON;
		if (g->dir == 1)
			g->plan[n++] = ST_QC_ANSWERED;
	}
	for (i = 0; i < g->ntargets; i++) {
		g->tgt[n] = (unsigned char)i;
		g->plan[n++] = ST_T_END;
	}
	if (g->answered >= 0)
		g->plan[n++] = ST_EC_IDLE;
	if (g->calls % 4 == 0)
		g->plan[n++] = ST_PRESENCE;
	g->plan[n++] = ST_CDR;
	g->nsteps = n;
	g->step = 0;
	g->calls++;
}

static const char *
dir_name(int dir)
{
	return dir == 0 ? "internal" : dir == 1 ? "inbound" : "outbound";
}

/* Caller and callee as the CDR shows them (§4.3): numbers, not URIs. */
static void
gen_parties(const struct gen *g, char *caller, char *callee, size_t len)
{
	if (g->dir == 1) {
		snprintf(caller, len, "%s", g->external);
		snprintf(callee, len, "%u", g->queue);
	} else if (g->dir == 2) {
		snprintf(caller, len, "%u", g->caller_ext);
		snprintf(callee, len, "0043%s", g->external + 4);
	} else {
		snprintf(caller, len, "%u", g->caller_ext);
		snprintf(callee, len, "%u", g->target_ext[0]);
	}
}

static void
gen_ext_event(struct sb *b, const struct gen *g, unsigned long long seq,
    const char *type, unsigned ext, const char *call_status)
{
	char num[16], dom[128];

	snprintf(num, sizeof(num), "%u", ext);
	tenant_domain(g->tenant, dom, sizeof(dom));
	sb_printf(b, "{\"event_type\":\"%s\",\"seq\":%llu,"
	    "\"extension\":\"sip:%s@%s\",", type, seq, num, dom);
	if (call_status != NULL)
		sb_printf(b, "\"call_status\":\"%s\",", call_status);
	else
		sb_printf(b, "\"presence\":\"%s\",\"presence_note\":\"%s\",",
		    (g->calls & 1) ? "AWAY" : "ONLINE",
		    (g->calls & 1) ? "Back in 10 minutes" : "");
	sb_printf(b, "\"tenant_id\":\"%llu\",\"extension_id\":\"%llu\","
	    "\"time\":\"%lld\"}", tenant_id(g->tenant), ext_id(g->tenant, num),
	    (long long)time(NULL));
}

static void
gen_target(struct sb *b, const struct gen *g, unsigned long long seq,
    const char *type, int t)
{
	char caller[32], callee[32];

	gen_parties(g, caller, callee, sizeof(caller));
	sb_printf(b, "{\"event_type\":\"%s\",\"seq\":%llu,\"time\":\"%lld\","
	    "\"session_id\":\"%llu\",\"cdr_id\":\"%llu\",\"tenant_id\":"
	    "\"%llu\",\"direction\":\"%s\",\"destination\":"
	    "\"sip:%u@192.168.1.93:%u\",\"caller\":\"%s\",\"callee\":\"%u\","
	    "\"did\":\"%s\",\"outbound_caller_id\":\"%s\",\"cli\":\"%s\"}",
	    type, seq, (long long)time(NULL), g->session, g->session + 1,
	    tenant_id(g->tenant), dir_name(g->dir), g->target_ext[t],
	    5060 + (unsigned)t, caller, g->target_ext[t],
	    g->dir == 1 ? "18800606" : "", g->dir == 2 ? "18800606" : "",
	    caller);
}

static void
gen_cdr(struct sb *b, const struct gen *g, unsigned long long seq)
{
	char caller[32], callee[32], dom[128];
	long long st = g->t0, ring = st + 1, ans, end, talk;
	int i, ok = g->answered >= 0;

	gen_parties(g, caller, callee, sizeof(caller));
	tenant_domain(g->tenant, dom, sizeof(dom));
	ans = ok ? ring + 4 : 0;
	end = ok ? ans + 20 + (long long)(g->calls % 100) : ring + 30;
	talk = ok ? end - ans : 0;
	sb_printf(b, "{\"event_type\":\"call_cdr\",\"seq\":%llu,"
	    "\"answered_time\":\"%lld\",\"call_id\":\"%s\",\"call_status\":"
	    "\"%s\",\"call_targets\":[", seq, ans, g->call_id,
	    ok ? "answered" : "noanswer");
	for (i = 0; i < g->ntargets; i++) {
		int won = i == g->answered;

		sb_printf(b, "%s{\"answered_time\":\"%lld\",\"call_type\":"
		    "\"%s\",\"callee\":\"%u\",\"caller\":\"%s\","
		    "\"destination\":\"sip:%u@192.168.1.93:%u\",\"did\":\"%s\","
		    "\"end_reason\":\"%s\",\"ended_time\":\"%lld\",\"id\":"
		    "\"%llu\",\"outbound_caller_id\":\"\",\"ring_duration\":"
		    "\"%lld\",\"ring_time\":\"%lld\",\"start_time\":\"%lld\","
		    "\"status\":\"%s\",\"status_code\":%d,\"talk_duration\":"
		    "\"%lld\",\"trunk_name\":\"%s\"}",
		    i ? "," : "", won ? ans : 0LL,
		    g->dir == 1 ? "queue_call" : "normal_call",
		    g->target_ext[i], caller, g->target_ext[i],
		    5060u + (unsigned)i,
		    g->dir == 1 ? "18800606" : "",
		    won ? "None" : (ok ? "cancelled" : "None"),
		    won ? end : (ok ? ans : end), g->session + 2 + (unsigned)i,
		    won ? ans - ring : (ok ? ans - ring : end - ring), ring, st,
		    won ? "answered" : "noanswer", won ? 0 : 487,
		    won ? talk : 0LL,
		    g->dir == 0 ? "" : "122:883631675865563136");
	}
	sb_printf(b, "],\"callee\":\"%s\",\"callee_domain\":\"%s\","
	    "\"caller\":\"%s\",\"caller_display_name\":\"%s\","
	    "\"caller_domain\":\"%s\",\"cdr_id\":\"%llu\",\"did\":\"%s\","
	    "\"direction\":\"%s\",\"ended_reason\":\"%s\",\"ended_time\":"
	    "\"%lld\",\"outbound_caller_id\":\"%s\",\"ring_duration\":\"%lld\","
	    "\"ring_time\":\"%lld\",\"session_id\":\"%llu\",\"start_time\":"
	    "\"%lld\",\"status_code\":\"0\",\"talk_duration\":%lld,"
	    "\"tenant_id\":\"%llu\",\"tenant_name\":\"Tenant %u\","
	    "\"trunk_name\":\"%s\",\"user_data\":\"\"}",
	    callee, dom, caller, g->dir == 1 ? g->external : "Ext", dom,
	    g->session + 1, g->dir == 1 ? "18800606" : "", dir_name(g->dir),
	    ok ? "callee_disconnect" : "None", end,
	    g->dir == 2 ? "18800606" : "", ok ? ans - ring : end - ring, ring,
	    g->session, st, talk, tenant_id(g->tenant), g->tenant,
	    g->dir == 0 ? "" : "122:883631675865563136");
}

/* Next flood event into buf (GEN_CAP bytes); returns its length. */
static size_t
gen_next(struct gen *g, char *buf, unsigned long long seq)
{
	struct sb b = { buf, 0, GEN_CAP, 0 };
	char caller[32], callee[32], dom[128];
	unsigned ext;
	int t;

	if (g->step >= g->nsteps)
		gen_plan(g);
	t = g->tgt[g->step];
	ext = g->answered >= 0 ? g->target_ext[g->answered] : g->caller_ext;
	switch ((enum step)g->plan[g->step++]) {
	case ST_CALL_START:
		gen_parties(g, caller, callee, sizeof(caller));
		tenant_domain(g->tenant, dom, sizeof(dom));
		sb_printf(&b, "{\"event_type\":\"call_start\",\"seq\":%llu,"
		    "\"call_id\":\"%s\",\"callee\":\"sip:%s@%s\","
		    "\"callee_display_name\":\"\",\"caller\":\"sip:%s@%s\","
		    "\"caller_display_name\":\"%s\",\"cdr_id\":\"%llu\","
		    "\"direction\":\"%s\",\"did\":\"%s\","
		    "\"outbound_caller_id\":\"%s\",\"session_id\":\"%llu\","
		    "\"tenant_id\":\"%llu\",\"time\":\"%lld\",\"user_data\":"
		    "\"\"}", seq, g->call_id,
		    callee, dom, caller, dom,
		    g->dir == 1 ? "" : "Ext", g->session + 1, dir_name(g->dir),
		    g->dir == 1 ? "18800606" : "",
		    g->dir == 2 ? "18800606" : "", g->session,
		    tenant_id(g->tenant), g->t0);
		break;
	case ST_QC_ENQUEUE:
	case ST_QC_ANSWERED: {
		char q[16];

		snprintf(q, sizeof(q), "%u", g->queue);
		sb_printf(&b, "{\"event_type\":\"queue_caller_status\","
		    "\"seq\":%llu,\"tenant_id\":\"%llu\",\"queue_id\":\"%llu\","
		    "\"updated_callers\":[{\"position\":\"1\",\"session_id\":"
		    "\"%llu\",\"caller_number\":\"%s\",\"reason\":\"%s\","
		    "\"timestamp\":\"%lld\",\"type\":\"normal\"}]}", seq,
		    tenant_id(g->tenant), queue_id(g->tenant, q), g->session,
		    g->external, g->plan[g->step - 1] == ST_QC_ENQUEUE ?
		    "enqueue" : "agent_answered", (long long)time(NULL));
		break;
	}
	case ST_T_ADD:
		gen_target(&b, g, seq, "cdr_target_add", t);
		break;
	case ST_T_RING:
		gen_target(&b, g, seq, "cdr_target_ringing", t);
		break;
	case ST_T_ANSWER:
		gen_target(&b, g, seq, "cdr_target_answer", t);
		break;
	case ST_T_END:
		gen_target(&b, g, seq, "cdr_target_end", t);
		break;
	case ST_EC_RING:
		gen_ext_event(&b, g, seq, "extension_call", ext, "RINGING");
		break;
	case ST_EC_ON:
		gen_ext_event(&b, g, seq, "extension_call", ext, "ON_CALL");
		break;
	case ST_EC_IDLE:
		gen_ext_event(&b, g, seq, "extension_call", ext, "");
		break;
	case ST_PRESENCE:
		gen_ext_event(&b, g, seq, "extension_presence", g->caller_ext,
		    NULL);
		break;
	case ST_CDR:
		gen_cdr(&b, g, seq);
		break;
	}
	if (b.overflow) {
		/* A bug in this file, not a runtime condition: fail loudly. */
		fprintf(stderr, "pbxsim: generated event exceeds %d bytes\n",
		    GEN_CAP);
		abort();
	}
	return b.len;
}

/* ------------------------------------------------------------ snapshots */

static void
add_str(cJSON *o, const char *k, const char *v)
{
	cJSON_AddItemToObject(o, k, cJSON_CreateString(v));
}

static void
add_ull(cJSON *o, const char *k, unsigned long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", v);
	add_str(o, k, buf);
}

static void
snapshot_extensions(struct sess *s, const cJSON *exts)
{
	cJSON *ev = cJSON_CreateObject(), *arr, *e;
	const cJSON *x;
	char dom[128], uri[256], now[32];
	unsigned long h;

	tenant_domain(0, dom, sizeof(dom));
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	add_str(ev, "event_type", "extension_status");
	arr = cJSON_AddArrayToObject(ev, "status");
	cJSON_ArrayForEach(x, exts) {
		h = (unsigned long)fnv1a(x->valuestring);
		e = cJSON_CreateObject();
		snprintf(uri, sizeof(uri), "sip:%s@%s", x->valuestring, dom);
		add_str(e, "extension", uri);
		add_ull(e, "extension_id", ext_id(0, x->valuestring));
		add_str(e, "call_status", h % 5 == 0 ? "ON_CALL" : "");
		cJSON_AddBoolToObject(e, "online", h % 3 != 0);
		add_str(e, "presence", h % 4 == 0 ? "AWAY" : "ONLINE");
		add_str(e, "presence_note", "");
		cJSON_AddBoolToObject(e, "push_online", h % 3 == 0);
		add_str(e, "time", now);
		cJSON_AddItemToArray(arr, e);
	}
	add_ull(ev, "tenant_id", tenant_id(0));
	enqueue_json(s, ev);
	cJSON_Delete(ev);
}

static void
snapshot_queue(struct sess *s, const char *q)
{
	cJSON *ev = cJSON_CreateObject(), *arr, *e;
	unsigned long long qid = queue_id(0, q);
	char now[32], name[96];

	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	snprintf(name, sizeof(name), "Queue %.64s", q);
	add_str(ev, "event_type", "queue_status");
	add_ull(ev, "tenant_id", tenant_id(0));
	add_ull(ev, "queue_id", qid);
	add_str(ev, "queue_number", q);
	add_str(ev, "queue_name", name);
	arr = cJSON_AddArrayToObject(ev, "waiting_list");
	e = cJSON_CreateObject();
	add_str(e, "position", "1");
	add_ull(e, "session_id", SESSION_BASE + 16 * next_session++);
	add_str(e, "caller_number", "1888722");
	add_str(e, "caller_name", "Thomas Young");
	add_str(e, "timestamp", now);
	add_str(e, "type", "normal");
	cJSON_AddItemToArray(arr, e);
	arr = cJSON_AddArrayToObject(ev, "agents");
	e = cJSON_CreateObject();
	add_str(e, "state", "QUEUE_CALL");
	add_str(e, "agent_extension_number", "101");
	add_ull(e, "session_id", SESSION_BASE + 16 * next_session++);
	add_str(e, "caller_number", "123456");
	add_str(e, "caller_name", "Ann Lee");
	add_str(e, "timestamp", now);
	cJSON_AddItemToArray(arr, e);
	e = cJSON_CreateObject();
	add_str(e, "state", "READY");
	add_str(e, "agent_extension_number", "102");
	add_str(e, "session_id", "");
	add_str(e, "caller_number", "");
	add_str(e, "caller_name", "");
	add_str(e, "timestamp", now);
	cJSON_AddItemToArray(arr, e);
	enqueue_json(s, ev);
	cJSON_Delete(ev);
}

/* ------------------------------------------------------------ commands */

static void
reply(struct sess *s, const char *cmd, const char *error)
{
	cJSON *j = cJSON_CreateObject();
	char id[16];

	snprintf(id, sizeof(id), "%u", ++s->reply_id);
	add_str(j, "command", cmd);
	if (error != NULL)
		add_str(j, "error", error);
	add_str(j, "id", id);
	cJSON_AddNumberToObject(j, "status", error ? -1 : 0);
	enqueue_json(s, j);
	cJSON_Delete(j);
}

static void
error_reply(struct sess *s, const char *cmd, const char *why)
{
	char buf[80];

	plog("ERROR %u %s: %s", s->conn,
	    log_safe(*cmd ? cmd : "-", buf, sizeof(buf)), why);
	reply(s, cmd, why);
}

static void
do_auth(struct sess *s, const cJSON *j)
{
	const char *user, *pw, *why = NULL;
	const cJSON *dom;
	char buf[80], id[16];
	cJSON *r;

	user = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j,
	    "username"));
	if (user == NULL)
		user = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j,
		    "extension_number"));
	pw = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j,
	    "password"));
	dom = cJSON_GetObjectItemCaseSensitive(j, "domain");

	if (user == NULL)
		why = "no username or extension_number";
	else if (pw == NULL)
		why = "no password";
	else if (strcmp(user, opt.user) != 0 || strcmp(pw, opt.password) != 0)
		why = "wrong user or password";
	else if (opt.domain == NULL && dom != NULL)
		why = "domain given, none expected";
	else if (opt.domain != NULL && (!cJSON_IsString(dom) ||
	    strcmp(dom->valuestring, opt.domain) != 0))
		why = "wrong or missing domain";

	s->reply_id++;
	if (why == NULL) {
		s->authed = 1;
		plog("AUTH %u ok user=%s", s->conn,
		    log_safe(user, buf, sizeof(buf)));
	} else {
		s->authed = 0;
		s->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
		s->close_after_queue = 1;
		/* the close waits for the reply; bound that wait */
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, 10);
		plog("AUTH %u fail user=%s (%s)", s->conn,
		    log_safe(user, buf, sizeof(buf)), why);
	}

	/* key order and spelling as in §2.1 */
	r = cJSON_CreateObject();
	snprintf(id, sizeof(id), "%u", s->reply_id);
	if (!opt.v16)
		add_str(r, "command", "auth");
	if (why != NULL)
		add_str(r, "error", opt.v16 ? "name or password error" :
		    "access_token , username , domain or password error");
	if (!opt.v16)
		add_str(r, "id", id);
	cJSON_AddNumberToObject(r, "status", why ? -1 : 0);
	enqueue_json(s, r);
	cJSON_Delete(r);
}

static const char *const known_topics[] = {
	"extension_events", "global_extension_events",
	"extension_management_events", "global_extension_management_events",
	"cdr_events", "global_cdr_events", "queue_events",
	"global_queue_events", "queue_management_events",
	"global_queue_management_events", "trunk_events", NULL
};

/* NULL when arr is absent or an array of strings; else why not. */
static const char *
check_str_array(const cJSON *arr, const char *name, int required, int max)
{
	static char why[96];
	const cJSON *x;
	int n = 0;

	if (arr == NULL) {
		if (!required)
			return NULL;
		snprintf(why, sizeof(why), "%s missing", name);
		return why;
	}
	if (!cJSON_IsArray(arr)) {
		snprintf(why, sizeof(why), "%s is not an array", name);
		return why;
	}
	cJSON_ArrayForEach(x, arr) {
		if (!cJSON_IsString(x) || *x->valuestring == '\0') {
			snprintf(why, sizeof(why),
			    "%s must hold non-empty strings", name);
			return why;
		}
		if (++n > max) {
			snprintf(why, sizeof(why), "more than %d %s", max,
			    name);
			return why;
		}
	}
	if (required && n == 0) {
		snprintf(why, sizeof(why), "%s is empty", name);
		return why;
	}
	return NULL;
}

static int
has_topic(const cJSON *topics, const char *name)
{
	const cJSON *x;

	cJSON_ArrayForEach(x, topics)
		if (strcmp(x->valuestring, name) == 0)
			return 1;
	return 0;
}

static void
log_frame(struct sess *s, const char *tag, cJSON *j)
{
	char *txt;

	/* The frame minus its command; a password never reaches the log. */
	cJSON_DeleteItemFromObjectCaseSensitive(j, "command");
	cJSON_DeleteItemFromObjectCaseSensitive(j, "password");
	txt = cJSON_PrintUnformatted(j);
	plog("%s %u %.900s", tag, s->conn, txt ? txt : "?");
	free(txt);
}

static void
do_subscribe(struct sess *s, cJSON *j, int unsub)
{
	const char *cmd = unsub ? "unsubscribe" : "subscribe", *why;
	const cJSON *topics, *exts, *queues, *x;
	int i;

	topics = cJSON_GetObjectItemCaseSensitive(j, "topics");
	exts = cJSON_GetObjectItemCaseSensitive(j, "extensions");
	queues = cJSON_GetObjectItemCaseSensitive(j, "queues");
	if ((why = check_str_array(topics, "topics", 1, 64)) != NULL ||
	    (why = check_str_array(exts, "extensions", 0, 10000)) != NULL ||
	    (why = check_str_array(queues, "queues", 0, 1000)) != NULL ||
	    (why = check_str_array(cJSON_GetObjectItemCaseSensitive(j,
	    "tenants"), "tenants", 0, 10000)) != NULL) {
		error_reply(s, cmd, why);
		return;
	}
	cJSON_ArrayForEach(x, topics) {
		for (i = 0; known_topics[i] != NULL; i++)
			if (strcmp(x->valuestring, known_topics[i]) == 0)
				break;
		if (known_topics[i] == NULL) {
			error_reply(s, cmd, "unknown topic");
			return;
		}
	}
	if (!unsub && opt.refuse_topic != NULL && refuse_lifted &&
	    !refuse_logged) {
		refuse_logged = 1;
		plog("ACCEPT %s", opt.refuse_topic);
	}
	if (!unsub && opt.refuse_topic != NULL && !refuse_lifted &&
	    has_topic(topics, opt.refuse_topic)) {
		char no[160];

		snprintf(no, sizeof(no), "no permission to subscribe to %s",
		    opt.refuse_topic);
		error_reply(s, cmd, no);
		log_frame(s, "REFUSE", j);
		return;
	}
	reply(s, cmd, NULL);
	if (unsub) {
		log_frame(s, "UNSUBSCRIBE", j);
		return;
	}
	/* Snapshots follow the reply (§3.4, §6 #1). */
	if (has_topic(topics, "extension_events") && cJSON_GetArraySize(exts))
		snapshot_extensions(s, exts);
	if (has_topic(topics, "queue_events"))
		cJSON_ArrayForEach(x, queues)
			snapshot_queue(s, x->valuestring);
	s->subs++;
	if (has_topic(topics, "cdr_events") ||
	    has_topic(topics, "global_cdr_events")) {
		s->cdr_sub = 1;
		if (opt.calls_wait_sub)
			calls_start();
	}
	log_frame(s, "SUBSCRIBE", j);
	if (s->subs == opt.subs)
		player_assign();
}

static void
handle_message(struct sess *s, const char *buf, size_t len, int binary)
{
	const char *cmd;
	cJSON *j;

	if (binary) {
		error_reply(s, "", "binary frames are not supported");
		return;
	}
	j = cJSON_ParseWithLength(buf, len);
	if (j == NULL || !cJSON_IsObject(j)) {
		error_reply(s, "", "invalid JSON");
		cJSON_Delete(j);
		return;
	}
	cmd = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j,
	    "command"));
	if (cmd == NULL)
		error_reply(s, "", "no command");
	else if (strcmp(cmd, "auth") == 0)
		do_auth(s, j);
	else if (!s->authed)
		error_reply(s, cmd, "not authenticated");
	else if (strcmp(cmd, "subscribe") == 0)
		do_subscribe(s, j, 0);
	else if (strcmp(cmd, "unsubscribe") == 0)
		do_subscribe(s, j, 1);
	else
		error_reply(s, cmd, "unknown command");
	cJSON_Delete(j);
}

/* ------------------------------------------------------------ player */

static void
section_end(struct sess *s, int always)
{
	if (always || s->sent > 0)
		plog("SENT %u %lu", s->conn, s->sent);
	s->sent = 0;
}

static int
ready_to_play(const struct sess *s)
{
	return s->live && s->authed && s->subs >= opt.subs && !s->stalled &&
	    !s->done_playing && !s->close_code && !s->dropping;
}

/* Give the script to the first ready connection, if it has no player. */
static void
player_assign(void)
{
	struct sess *s;

	if (shutting_down || P.finished || P.owner != NULL || P.nlines == 0)
		return;
	for (s = sessions; s != NULL; s = s->next)
		if (ready_to_play(s))
			break;
	if (s == NULL)
		return;
	P.owner = s;
	s->sent = 0;
	/* A fragmented message cannot continue on another connection. */
	if (P.cursor < P.nlines && P.lines[P.cursor].op == OP_FRAGMENT)
		P.sub = 0;
	if (P.cursor < P.nlines) {
		if (P.lines[P.cursor].lineno)
			plog("PLAY %u line %u", s->conn,
			    P.lines[P.cursor].lineno);
		else
			plog("PLAY %u flood", s->conn);
	}
	lws_callback_on_writable(s->wsi);
}

/* s stops playing (directive or disconnect); the next ready one takes over. */
static void
player_release(struct sess *s)
{
	if (P.owner != s)
		return;
	P.owner = NULL;
	P.sleeping = 0;
	lws_sul_cancel(&P.sul_sleep);
	lws_sul_cancel(&P.sul_rate);
	s->done_playing = 1;
	player_assign();
}

static void
sleep_done(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	P.sleeping = 0;
	if (P.owner != NULL)
		lws_callback_on_writable(P.owner->wsi);
}

static void
rate_tick(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	if (P.owner != NULL)
		lws_callback_on_writable(P.owner->wsi);
}

/*
 * Token bucket for --rate: tokens accrue at rate per second, at most a
 * tenth of a second's worth (and at least one) may be spent in a burst.
 */
static int
rate_allows(void)
{
	lws_usec_t now = lws_now_usecs();
	double burst = opt.rate / 10 > 1 ? opt.rate / 10 : 1;

	if (opt.rate <= 0)
		return 1;
	if (P.last_refill == 0) {
		P.last_refill = now;
		P.tokens = 1;
	}
	P.tokens += (double)(now - P.last_refill) * opt.rate / 1e6;
	if (P.tokens > burst)
		P.tokens = burst;
	P.last_refill = now;
	if (P.tokens >= 1) {
		P.tokens -= 1;
		return 1;
	}
	lws_sul_schedule(ctx, 0, &P.sul_rate, rate_tick,
	    (lws_usec_t)((1 - P.tokens) * 1e6 / opt.rate) + 1);
	return 0;
}

static int
send_frame(struct sess *s, unsigned char *payload, size_t len, int wp)
{
	/* lws keeps what the socket did not take and holds WRITEABLE back */
	if (lws_write(s->wsi, payload, len, (enum lws_write_protocol)wp) <
	    (int)len) {
		plog("ERROR %u write failed", s->conn);
		return -1;
	}
	return 0;
}

/*
 * The flood's write buffer: while a flood plays, an OpenSSL buffering BIO
 * sits between the session's SSL and its socket. Every event is still its
 * own TLS record, as a PBX writes them, and the bytes on the wire are the
 * same; but a burst leaves in one or two write()s instead of one write()
 * and one poll() per event, which made the simulator, not the daemon, what
 * a benchmark measured. The buffer is flushed at the end of every burst
 * (a --rate flood must not hold events back) and removed, once empty, when
 * the flood ends, so no later frame can sit in it.
 *
 * References: SSL_set_fd() gave the socket BIO to SSL as both rbio and
 * wbio. wbuf_on() pushes the buffer in front of it (one more reference for
 * the chain) and hands the chain to SSL as wbio; wbuf_off() gives the socket
 * BIO back as wbio, and SSL frees the buffer, dropping the chain's
 * reference. If the session closes meanwhile, SSL_free() frees the chain.
 */
static int
wbuf_on(struct sess *s)
{
	BIO *sock, *b;

	if (s->ssl == NULL || (sock = SSL_get_wbio(s->ssl)) == NULL)
		return 0;			/* no TLS: nothing to buffer */
	if ((b = BIO_new(BIO_f_buffer())) == NULL ||
	    BIO_set_write_buffer_size(b, WBUF_SIZE) <= 0 ||
	    !BIO_up_ref(sock)) {
		BIO_free(b);
		plog("ERROR %u no write buffer", s->conn);
		return -1;
	}
	BIO_push(b, sock);
	SSL_set0_wbio(s->ssl, b);	/* drops SSL's own wbio reference */
	s->wbuf = b;
	return 0;
}

/* 1 the buffer is empty; 0 the socket is full (WRITEABLE asked); -1 error */
static int
wbuf_flush(struct sess *s)
{
	if (s->wbuf == NULL || BIO_flush(s->wbuf) > 0)
		return 1;
	if (!BIO_should_retry(s->wbuf)) {
		plog("ERROR %u write failed", s->conn);
		return -1;
	}
	lws_callback_on_writable(s->wsi);
	return 0;
}

/* Only once wbuf_flush() returned 1. */
static void
wbuf_off(struct sess *s)
{
	BIO *sock = BIO_next(s->wbuf);

	BIO_up_ref(sock);		/* cannot fail: sock is referenced */
	SSL_set0_wbio(s->ssl, sock);	/* frees the buffer, not sock */
	s->wbuf = NULL;
}

static unsigned long
sock_outq(struct sess *s)
{
	int n = 0;

	if (ioctl(lws_get_socket_fd(s->wsi), SIOCOUTQ, &n) == -1)
		return 0;
	return n > 0 ? (unsigned long)n : 0;
}

/*
 * The abortive close of @drop: no close frame, no TLS close_notify (quiet
 * shutdown), and SO_LINGER 0 so the kernel answers lws's close() with a RST.
 */
static void
drop_prepare(struct sess *s)
{
	struct linger lg = { 1, 0 };
	SSL *ssl = lws_get_ssl(s->wsi);

	if (ssl != NULL)
		SSL_set_quiet_shutdown(ssl, 1);
	setsockopt(lws_get_socket_fd(s->wsi), SOL_SOCKET, SO_LINGER, &lg,
	    sizeof(lg));
}

/*
 * Send the next script frame, or run directives until one sends, sleeps or
 * ends the playing. Called from WRITEABLE of the owner with nothing else
 * queued. Returns -1 when the connection must close now.
 */
static int
player_step(struct sess *s)
{
	struct line *l;
	int wraps = 0, first, last, more;
	unsigned long long off, plen, per;
	size_t n;
	long pend;

	for (;;) {
		if (P.cursor >= P.nlines) {
			section_end(s, 1);
			if (opt.loop && P.loop_start < P.nlines && !wraps++) {
				plog("LOOP");
				P.cursor = P.loop_start;
				continue;
			}
			/* end of script, or --loop with nothing to send */
			plog("SCRIPT done");
			P.finished = 1;
			player_release(s);
			return 0;
		}
		l = &P.lines[P.cursor];
		switch (l->op) {
		case OP_COMMENT:
			P.cursor++;
			continue;
		case OP_TEXT:
		case OP_BINARY:
		case OP_INVALID_UTF8:
		case OP_BIG:
			if (send_frame(s, l->buf + LWS_PRE, l->len,
			    l->op == OP_BINARY ? LWS_WRITE_BINARY :
			    LWS_WRITE_TEXT))
				return -1;
			P.cursor++;
			s->sent++;
			lws_callback_on_writable(s->wsi);
			return 0;
		case OP_FRAGMENT:
			per = l->len / l->n;
			off = P.sub * per + (P.sub < l->len % l->n ? P.sub :
			    l->len % l->n);
			plen = per + (P.sub < l->len % l->n ? 1 : 0);
			first = P.sub == 0;
			last = P.sub + 1 == l->n;
			if (send_frame(s, l->buf + LWS_PRE + off, (size_t)plen,
			    lws_write_ws_flags(LWS_WRITE_TEXT, first, last)))
				return -1;
			if (last) {
				P.sub = 0;
				P.cursor++;
				s->sent++;
			} else {
				P.sub++;
			}
			lws_callback_on_writable(s->wsi);
			return 0;
		case OP_FLOOD:
			if (P.sub == 0)
				plog("FLOOD start %llu", l->n);
			/*
			 * Up to FLOOD_BURST frames per WRITEABLE, into the
			 * write buffer (wbuf_on()), while the socket takes
			 * them; the socket is asked (a poll()) only when the
			 * buffer has just written through to it.
			 */
			if (s->wbuf == NULL && wbuf_on(s))
				return -1;
			more = 1;
			for (int k = 0; k < FLOOD_BURST; k++) {
				if (!rate_allows()) {
					more = 0;	/* rate_tick() asks */
					break;
				}
				pend = s->wbuf ? (long)BIO_wpending(s->wbuf) : 0;
				n = gen_next(&P.gen, (char *)s->gbuf + LWS_PRE,
				    P.sub);
				if (send_frame(s, s->gbuf + LWS_PRE, n,
				    LWS_WRITE_TEXT))
					return -1;
				s->sent++;
				if (++P.sub == l->n) {
					plog("FLOOD done %llu", l->n);
					P.sub = 0;
					P.cursor++;
					break;
				}
				if ((s->wbuf == NULL ||
				    (long)BIO_wpending(s->wbuf) < pend) &&
				    lws_send_pipe_choked(s->wsi))
					break;
			}
			switch (wbuf_flush(s)) {
			case -1:
				return -1;
			case 0:
				return 0;	/* WRITEABLE asked */
			}
			if (more)
				lws_callback_on_writable(s->wsi);
			return 0;
		case OP_SLEEP:
			section_end(s, 0);
			P.cursor++;
			P.sleeping = 1;
			lws_sul_schedule(ctx, 0, &P.sul_sleep, sleep_done,
			    (lws_usec_t)l->n * LWS_US_PER_MS);
			return 0;
		case OP_END:
			section_end(s, 1);
			P.cursor++;
			plog("END %u", s->conn);
			player_release(s);
			return 0;
		case OP_STALL:
			section_end(s, 1);
			P.cursor++;
			plog("STALL %u", s->conn);
			s->stalled = 1;
			lws_rx_flow_control(s->wsi, 0);
			player_release(s);
			return 0;
		case OP_CLOSE:
			section_end(s, 1);
			P.cursor++;
			plog("CLOSE %u", s->conn);
			s->close_code = LWS_CLOSE_STATUS_NORMAL;
			player_release(s);
			lws_close_reason(s->wsi, LWS_CLOSE_STATUS_NORMAL,
			    (unsigned char *)"bye", 3);
			return -1;
		case OP_DROP:
			section_end(s, 1);
			P.cursor++;
			plog("DROP %u", s->conn);
			/*
			 * RST discards what is still in the socket's send
			 * queue; let what was "sent" reach the client first
			 * (bounded by DROP_WAIT_US, checked by the tick).
			 */
			s->dropping = 1;
			s->drop_deadline = lws_now_usecs() + DROP_WAIT_US;
			player_release(s);
			if (sock_outq(s) > 0)
				return 0;
			drop_prepare(s);
			return -1;
		}
	}
}

/* ------------------------------------------------------------ lws glue */

static int
sess_writeable(struct sess *s)
{
	struct frame *f;

	if (s->stalled || s->dropping)
		return 0;
	if (s->wbuf != NULL) {
		switch (wbuf_flush(s)) {
		case -1:
			return -1;
		case 0:
			return 0;	/* WRITEABLE asked */
		}
		if (P.owner != s || P.cursor >= P.nlines ||
		    P.lines[P.cursor].op != OP_FLOOD)
			wbuf_off(s);
	}
	if (s->close_code && !s->close_after_queue) {
		lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
		    NULL, 0);
		return -1;
	}
	/* No other data frame may go between the fragments of a message. */
	if (P.owner == s && P.sub > 0 && P.cursor < P.nlines &&
	    P.lines[P.cursor].op == OP_FRAGMENT)
		return player_step(s);

	if ((f = s->qh) != NULL) {
		if (send_frame(s, frame_payload(f), f->len,
		    f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT))
			return -1;
		s->qh = f->next;
		if (s->qh == NULL)
			s->qt = NULL;
		s->qframes--;
		s->qbytes -= f->len;
		free(f);
		if (s->rx_paused && !s->stalled &&
		    s->qframes <= Q_MAX_FRAMES / 2 &&
		    s->qbytes <= Q_MAX_BYTES / 2) {
			s->rx_paused = 0;
			lws_rx_flow_control(s->wsi, 1);
		}
		if (s->qh != NULL || s->close_code || P.owner == s)
			lws_callback_on_writable(s->wsi);
		return 0;
	}
	if (s->close_code) {
		lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
		    (unsigned char *)"auth failed", 11);
		return -1;
	}
	if (P.owner == s && !P.sleeping)
		return player_step(s);
	return 0;
}

static void
sess_receive(struct sess *s, const void *in, size_t len)
{
	s->last_rx = lws_now_usecs();
	if (s->stalled || s->close_code)
		return;			/* ignoring everything */
	if (lws_is_first_fragment(s->wsi)) {
		s->rxlen = 0;
		s->rx_overflow = 0;
		s->rx_binary = lws_frame_is_binary(s->wsi);
	}
	if (!s->rx_overflow) {
		if (s->rxlen + len > RX_MAX) {
			s->rx_overflow = 1;
		} else {
			if (s->rxlen + len > s->rxcap) {
				size_t cap = s->rxcap ? s->rxcap : 4096;
				char *p;

				while (cap < s->rxlen + len)
					cap *= 2;
				if ((p = realloc(s->rx, cap)) == NULL) {
					s->rx_overflow = 1;
					goto done;
				}
				s->rx = p;
				s->rxcap = cap;
			}
			memcpy(s->rx + s->rxlen, in, len);
			s->rxlen += len;
		}
	}
done:
	if (!lws_is_final_fragment(s->wsi) ||
	    lws_remaining_packet_payload(s->wsi) > 0)
		return;
	if (s->rx_overflow)
		error_reply(s, "", "message too large");
	else
		handle_message(s, s->rx, s->rxlen, s->rx_binary);
	s->rxlen = 0;
}

static void
sess_closed(struct sess *s)
{
	if (!s->live)
		return;
	if (P.owner == s)
		section_end(s, 1);
	s->live = 0;
	sess_unlink(s);
	plog("DISCONNECT %u", s->conn);
	sess_free_queue(s);
	free(s->rx);
	free(s->gbuf);
	s->rx = NULL;
	s->gbuf = NULL;
	s->ssl = NULL;
	s->wbuf = NULL;			/* SSL_free() frees the chain */
	player_release(s);
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct sess *s = user;
	char uri[256];

	switch (reason) {
	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
		/* user is the server SSL_CTX (--tls-max) */
		if (opt.tls_max == 0)
			return 0;
		if (!SSL_CTX_set_min_proto_version(user, TLS1_VERSION) ||
		    !SSL_CTX_set_max_proto_version(user, opt.tls_max)) {
			fprintf(stderr, "pbxsim: cannot limit TLS versions\n");
			return 1;
		}
		if (opt.tls_max < TLS1_2_VERSION)
			SSL_CTX_set_security_level(user, 0);
		return 0;

	case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
		/* len is OpenSSL's preverify_ok; lws reads 0 as "accept" */
		if (!len)
			plog("REJECT client certificate not verified");
		return len ? 0 : 1;

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0)
			uri[0] = '\0';
		if (strcmp(uri, opt.path) != 0) {
			char buf[80];

			plog("REJECT path=%s", log_safe(uri, buf, sizeof(buf)));
			return 1;
		}
		if (nsessions >= MAX_SESSIONS) {
			plog("REJECT more than %d connections", MAX_SESSIONS);
			return 1;
		}
		if (calls_down()) {
			plog("REJECT down");
			return 1;
		}
		return 0;

	case LWS_CALLBACK_HTTP:
		/* plain HTTP, not an upgrade: nothing here */
		if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;

	case LWS_CALLBACK_ESTABLISHED:
		memset(s, 0, sizeof(*s));
		if ((s->gbuf = malloc(LWS_PRE + GEN_CAP)) == NULL) {
			fprintf(stderr, "pbxsim: out of memory\n");
			return -1;
		}
		s->wsi = wsi;
		s->ssl = lws_get_ssl(wsi);
		s->conn = next_conn++;
		s->live = 1;
		s->last_rx = lws_now_usecs();
		sess_link(s);
		plog("CONNECT %u", s->conn);
		return 0;

	case LWS_CALLBACK_RECEIVE:
		if (s != NULL && s->live)
			sess_receive(s, in, len);
		return 0;

	case LWS_CALLBACK_RECEIVE_PONG:
		if (s != NULL && s->live)
			s->last_rx = lws_now_usecs();
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (s == NULL || !s->live)
			return 0;
		return sess_writeable(s);

	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (s != NULL)
			sess_closed(s);
		return 0;

	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{ "wsi", callback, sizeof(struct sess), 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ------------------------------------------------------------ calls + REST */

/*
 * --calls-every MS makes one call every MS milliseconds (--calls N of them,
 * 0: no end), on a timer of its own, whether or not a client listens: its
 * call_cdr goes to every connection subscribed to cdr_events (live), and
 * its row to the REST API's CDR table. So the REST API holds the very
 * calls reported live (or not, while nobody listened). --calls-wait-sub
 * starts the timer at the first cdr_events subscription. Logged:
 *   CALL <n> session=<id> cdr=<id> live=<connections>   CALLS done <n>
 * --drop-at-call N --down-calls M: after call N every connection is
 * dropped (abortively, once its queue has left) and upgrades are refused
 * ("REJECT down") until M more calls were made: a PBX unreachable for a
 * while. Logged DOWN and UP.
 *
 * --rest-port-file FILE serves the REST API of portsip-rest-cdr.md over
 * HTTPS on a port of its own (same certificate, or --rest-cert/--rest-key),
 * written to FILE:
 *   POST /api/auth/sign_in {username,password,domain} → {token_type,
 *     access_token, refresh_token, expires_in} (--rest-token-ttl S, default
 *     3600); POST /api/auth/refresh_token {refresh_token}; a token past
 *     its expiry, revoked or unknown gets 401.
 *   --rest-legacy: a PBX before v22.2.11: those two are 404; POST
 *     /api/login (same body) answers 200 with no body and a session cookie,
 *     GET /api/login with it → {access_token, expires_at, expires_in,
 *     role}. (Without --rest-legacy, /api/login is 404.)
 *   GET /api/calllogs and /api/cdrs (rows without session_id): filter
 *     (started_at with ge/gt/le/lt, joined by "and"), orderby (started_at
 *     asc|desc), top (1..100, default 100), skip (0-based) → {count, items}.
 *     --rest-no-calllogs: /api/calllogs is 404 (an older v22.0).
 *   --rest-shift: every 3rd call's row is held back and inserted while a
 *     client pages (one per list request with skip > 0; the rest after
 *     30 s): rows shift under the client.
 *   --rest-chaos PCT: that share of list requests fails, 429 (with
 *     Retry-After: 1) or 500/502/503 in turn (--seed N); --rest-revoke-every
 *     N: every Nth list request revokes every token (401); SIGUSR2: the
 *     next 10 list requests get 429 (a storm).
 * Logged: REST <method> <path> <status> [rows=<n> count=<n>]
 */

#define ROWS_MAX	100000
#define TOKENS_MAX	256
#define REST_BODY_MAX	(64 * 1024)
#define HOLD_US		(30 * LWS_US_PER_SEC)

struct row {
	long long	 started_us;
	cJSON		*j;		/* the /calllogs row */
	int		 held;
	lws_usec_t	 held_since;
};

static struct {
	unsigned long long made;
	int		 started, done, down, down_pending;
	unsigned long long up_at;	/* the call after which it is up */
	lws_sorted_usec_list_t sul;
	struct row	*rows;
	size_t		 nrows;
	struct {
		char	 access[40], refresh[40];
		lws_usec_t exp;
	}		 tok[TOKENS_MAX];
	unsigned	 ntok;
	char		 cookie[40];
	unsigned long long lists;	/* list requests */
	uint64_t	 rng;
} C;

static volatile sig_atomic_t storm_req;	/* SIGUSR2 */
static unsigned storm_left;

static uint64_t
crand(void)
{
	C.rng ^= C.rng >> 12;
	C.rng ^= C.rng << 25;
	C.rng ^= C.rng >> 27;
	return C.rng * 2685821657736338717ULL;
}

static void
rfc3339(long long us, char *buf, size_t len)
{
	/* Floor division, so that a time before 1970 keeps its microseconds
	 * positive; strftime() because gcc -O2's format-truncation check
	 * cannot bound struct tm's fields in a snprintf(). */
	long long frac = ((us % 1000000) + 1000000) % 1000000;
	time_t t = (time_t)((us - frac) / 1000000);
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06uZ", (unsigned)frac);
}

static long long
parse_rfc3339(const char *s)
{
	struct tm tm;
	const char *p;
	long long us = 0, scale = 100000;

	memset(&tm, 0, sizeof(tm));
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			us += (*p - '0') * scale;
	if (*p != 'Z' || p[1] != '\0')
		return -1;
	return (long long)timegm(&tm) * 1000000 + us;
}

/* One call: its live CDR to the subscribers, its row to the table. */
static void
call_make(void)
{
	static const char *const rdir[] = { "EXTENSION_CALL", "INBOUND_CALL",
	    "OUTBOUND_CALL" };
	unsigned long long sid = SESSION_BASE + 16 * next_session++;
	long long now = (long long)lws_now_usecs(), dur, ring, talk;
	struct timespec ts;
	char caller[16], callee[16], dom[128], a[40], b[40], c[40], d[40];
	char buf[2048];
	int dir = (int)(crand() % 3), live = 0, n;
	struct sess *s;
	cJSON *r;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	dur = 5 + (long long)(crand() % 60);
	ring = 1 + (long long)(crand() % 4);
	talk = dur - ring;
	snprintf(caller, sizeof(caller), "%u", 100 + (unsigned)(crand() % 100));
	snprintf(callee, sizeof(callee), "%u", 100 + (unsigned)(crand() % 100));
	tenant_domain(0, dom, sizeof(dom));
	C.made++;
	n = snprintf(buf, sizeof(buf), "{\"event_type\":\"call_cdr\","
	    "\"answered_time\":\"%lld\",\"call_id\":\"sim%llu..\","
	    "\"call_status\":\"answered\",\"call_targets\":[],"
	    "\"callee\":\"%s\",\"callee_domain\":\"%s\",\"caller\":\"%s\","
	    "\"caller_display_name\":\"Ext\",\"caller_domain\":\"%s\","
	    "\"cdr_id\":\"%llu\",\"did\":\"\",\"direction\":\"%s\","
	    "\"ended_reason\":\"callee_disconnect\",\"ended_time\":\"%lld\","
	    "\"outbound_caller_id\":\"\",\"ring_duration\":\"%lld\","
	    "\"ring_time\":\"%lld\",\"session_id\":\"%llu\",\"start_time\":"
	    "\"%lld\",\"status_code\":\"0\",\"talk_duration\":\"%lld\","
	    "\"tenant_id\":\"%llu\",\"tenant_name\":\"Tenant 0\","
	    "\"trunk_name\":\"\",\"user_data\":\"\",\"seq\":%llu}",
	    now / 1000000 - talk, sid, callee, dom, caller, dom, sid + 1,
	    dir == 0 ? "internal" : dir == 1 ? "inbound" : "outbound",
	    now / 1000000, ring, now / 1000000 - dur + 0, sid,
	    now / 1000000 - dur, talk, tenant_id(0), C.made);
	if (!C.down)
		for (s = sessions; s != NULL; s = s->next)
			if (s->live && s->cdr_sub && !s->dropping &&
			    !s->stalled) {
				enqueue(s, frame_new(buf, (size_t)n, 0));
				live++;
			}
	plog("CALL %llu session=%llu cdr=%llu live=%d", C.made, sid, sid + 1,
	    live);

	if (C.nrows < ROWS_MAX && (r = cJSON_CreateObject()) != NULL) {
		char id[24], sess_s[24];

		snprintf(id, sizeof(id), "%llu", sid + 1);
		snprintf(sess_s, sizeof(sess_s), "%llu", sid);
		rfc3339(now - dur * 1000000, a, sizeof(a));
		rfc3339(now - dur * 1000000 + ring * 1000000, b, sizeof(b));
		rfc3339(now - talk * 1000000, c, sizeof(c));
		rfc3339(now, d, sizeof(d));
		cJSON_AddStringToObject(r, "id", id);
		cJSON_AddStringToObject(r, "session_id", sess_s);
		cJSON_AddStringToObject(r, "caller", caller);
		cJSON_AddStringToObject(r, "caller_domain", dom);
		cJSON_AddStringToObject(r, "caller_display_name", "Ext");
		cJSON_AddStringToObject(r, "callee", callee);
		cJSON_AddStringToObject(r, "callee_domain", dom);
		cJSON_AddStringToObject(r, "callee_display_name", "");
		cJSON_AddStringToObject(r, "started_at", a);
		cJSON_AddStringToObject(r, "rang_at", b);
		cJSON_AddStringToObject(r, "answered_at", c);
		cJSON_AddStringToObject(r, "ended_at", d);
		snprintf(buf, sizeof(buf), "sim%llu..", sid);
		cJSON_AddStringToObject(r, "call_id", buf);
		cJSON_AddStringToObject(r, "direction", rdir[dir]);
		cJSON_AddStringToObject(r, "end_reason", "CALLEE_DISCONNECTED");
		cJSON_AddStringToObject(r, "reroute_reason", "");
		cJSON_AddNumberToObject(r, "status_code", 0);
		cJSON_AddStringToObject(r, "destination", "");
		cJSON_AddStringToObject(r, "outbound_caller_id", "");
		cJSON_AddStringToObject(r, "did_cid", "");
		cJSON_AddStringToObject(r, "trunk", "");
		cJSON_AddNumberToObject(r, "duration", (double)talk);
		C.rows[C.nrows].j = r;
		C.rows[C.nrows].started_us = now - dur * 1000000;
		C.rows[C.nrows].held = opt.rest_shift && C.made % 3 == 0;
		C.rows[C.nrows].held_since = lws_now_usecs();
		C.nrows++;
	}
	if (opt.drop_at != 0 && C.made == opt.drop_at) {
		C.down = 1;
		C.down_pending = 1;
		C.up_at = C.made + opt.down_calls;
		plog("DOWN");
	} else if (C.down && C.made >= C.up_at) {
		C.down = 0;
		plog("UP");
	}
}

static void
call_tick(lws_sorted_usec_list_t *sul)
{
	if (opt.calls != 0 && C.made >= opt.calls) {
		if (!C.done)
			plog("CALLS done %llu", C.made);
		C.done = 1;
		return;
	}
	call_make();
	lws_sul_schedule(ctx, 0, sul, call_tick,
	    (lws_usec_t)opt.calls_every * LWS_US_PER_MS);
}

static void
calls_start(void)
{
	if (C.started || opt.calls_every == 0)
		return;
	C.started = 1;
	lws_sul_schedule(ctx, 0, &C.sul, call_tick, 1);
}

static int
calls_down(void)
{
	return C.down;
}

/* The tick's part: drop what DOWN asked for once its queue has gone. */
static void
calls_tick(void)
{
	struct sess *s;
	int left = 0;
	lws_usec_t now = lws_now_usecs();

	if (C.down_pending) {
		for (s = sessions; s != NULL; s = s->next) {
			if (!s->live || s->dropping)
				continue;
			if (s->qh != NULL) {
				left++;
				continue;
			}
			s->dropping = 1;
			s->drop_deadline = now + DROP_WAIT_US;
			if (P.owner == s)
				player_release(s);
		}
		C.down_pending = left > 0;
	}
	for (size_t i = 0; i < C.nrows; i++)
		if (C.rows[i].held && now - C.rows[i].held_since > HOLD_US)
			C.rows[i].held = 0;
	if (storm_req) {
		storm_req = 0;
		storm_left = 10;
		plog("STORM 10");
	}
}

/* ---- REST ---- */

struct rsess {
	char		 uri[256];
	int		 post;
	char		*body;
	size_t		 blen;
	int		 too_big;
	char		*out;
	size_t		 olen, opos;
	int		 status;
	int		 headers_sent;
	char		 extra[128];	/* one more header line, or "" */
};

static void
new_token(char *buf, size_t len)
{
	snprintf(buf, len, "t%016llx%08llx", (unsigned long long)crand(),
	    (unsigned long long)(crand() & 0xffffffffULL));
}

static int
token_ok(struct lws *wsi)
{
	char auth[128];
	lws_usec_t now = lws_now_usecs();

	if (lws_hdr_copy(wsi, auth, sizeof(auth),
	    WSI_TOKEN_HTTP_AUTHORIZATION) <= 7 ||
	    strncmp(auth, "Bearer ", 7) != 0)
		return 0;
	for (unsigned i = 0; i < C.ntok; i++)
		if (strcmp(C.tok[i].access, auth + 7) == 0)
			return now < C.tok[i].exp;
	return 0;
}

static void
answer(struct rsess *r, int status, cJSON *j)
{
	r->status = status;
	free(r->out);
	r->out = j != NULL ? cJSON_PrintUnformatted(j) : strdup("");
	r->olen = r->out ? strlen(r->out) : 0;
	r->opos = 0;
	cJSON_Delete(j);
}

static cJSON *
err_json(const char *msg)
{
	cJSON *j = cJSON_CreateObject();

	cJSON_AddStringToObject(j, "error", msg);
	return j;
}

static cJSON *
issue_token(int legacy)
{
	cJSON *j = cJSON_CreateObject();
	unsigned i = C.ntok < TOKENS_MAX ? C.ntok++ : (unsigned)(crand() %
	    TOKENS_MAX);
	char exp[40];

	new_token(C.tok[i].access, sizeof(C.tok[i].access));
	new_token(C.tok[i].refresh, sizeof(C.tok[i].refresh));
	C.tok[i].exp = lws_now_usecs() + (lws_usec_t)opt.token_ttl *
	    LWS_US_PER_SEC;
	if (!legacy)
		cJSON_AddStringToObject(j, "token_type", "Bearer");
	cJSON_AddStringToObject(j, "access_token", C.tok[i].access);
	if (!legacy) {
		cJSON_AddStringToObject(j, "refresh_token", C.tok[i].refresh);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		rfc3339(((long long)ts.tv_sec + opt.token_ttl) * 1000000, exp,
		    sizeof(exp));
		cJSON_AddStringToObject(j, "expires_at", exp);
		cJSON_AddStringToObject(j, "role", "Admin");
	}
	cJSON_AddNumberToObject(j, "expires_in", opt.token_ttl);
	return j;
}

static int
creds_ok(const char *body, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	const char *u, *p, *d;
	int ok;

	u = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j,
	    "username"));
	p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j,
	    "password"));
	d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j,
	    "domain"));
	ok = u && p && strcmp(u, opt.user) == 0 &&
	    strcmp(p, opt.password) == 0 &&
	    (opt.domain == NULL ? d == NULL : d && strcmp(d, opt.domain) == 0);
	cJSON_Delete(j);
	return ok;
}

static int
row_cmp_asc(const void *a, const void *b)
{
	const struct row *x = *(const struct row *const *)a;
	const struct row *y = *(const struct row *const *)b;

	return x->started_us < y->started_us ? -1 :
	    x->started_us > y->started_us;
}

/* filter: clauses "started_at OP 'T'" joined by " and ". */
static int
filter_parse(const char *f, long long *lo, int *lo_incl, long long *hi,
    int *hi_incl)
{
	char buf[512], *save = NULL, *cl;

	*lo = LLONG_MIN;
	*hi = LLONG_MAX;
	*lo_incl = *hi_incl = 1;
	if (f == NULL || *f == '\0')
		return 0;
	snprintf(buf, sizeof(buf), "%s", f);
	for (cl = strtok_r(buf, "&", &save); cl != NULL; cl = NULL) {
		char *p = cl;

		while (p != NULL && *p != '\0') {
			char field[32], op[8], lit[64];
			char *next = strstr(p, " and ");
			long long t;

			if (next != NULL)
				*next = '\0';
			if (sscanf(p, " %31s %7s '%63[^']'", field, op, lit) != 3 ||
			    strcmp(field, "started_at") != 0 ||
			    (t = parse_rfc3339(lit)) < 0)
				return -1;
			if (strcmp(op, "ge") == 0 || strcmp(op, "gt") == 0) {
				*lo = t;
				*lo_incl = op[1] == 'e';
			} else if (strcmp(op, "le") == 0 ||
			    strcmp(op, "lt") == 0) {
				*hi = t;
				*hi_incl = op[1] == 'e';
			} else {
				return -1;
			}
			p = next != NULL ? next + 5 : NULL;
		}
	}
	return 0;
}

static void
rest_list(struct lws *wsi, struct rsess *r, int cdrs)
{
	/* lws_get_urlarg_by_name() stops at the first argument longer than
	 * the buffer: every buffer must hold the longest (the filter). */
	char f[1024], tmp[1024];
	const char *v;
	long long lo, hi, top = 100, skip = 0;
	int lo_incl, hi_incl, desc = 0;
	struct row **sel;
	size_t n = 0, i;
	cJSON *j, *items;

	C.lists++;
	v = lws_get_urlarg_by_name(wsi, "skip=", tmp, sizeof(tmp));
	if (v != NULL)
		skip = atoll(v);
	/* Rows inserted while a client pages (--rest-shift). */
	if (skip > 0)
		for (i = 0; i < C.nrows; i++)
			if (C.rows[i].held) {
				C.rows[i].held = 0;
				plog("INSERT row=%s", cJSON_GetStringValue(
				    cJSON_GetObjectItem(C.rows[i].j, "id")));
				break;
			}
	if (!token_ok(wsi)) {
		answer(r, 401, err_json("unauthorized"));
		return;
	}
	if (storm_left > 0) {
		storm_left--;
		snprintf(r->extra, sizeof(r->extra), "retry-after:");
		answer(r, 429, err_json("too many requests"));
		return;
	}
	if (opt.revoke_every && C.lists % opt.revoke_every == 0) {
		C.ntok = 0;
		plog("REVOKE");
		answer(r, 401, err_json("token revoked"));
		return;
	}
	if (opt.chaos > 0 && crand() % 100 < opt.chaos) {
		static const int codes[] = { 429, 500, 502, 503 };
		int code = codes[C.lists % 4];

		if (code == 429)
			snprintf(r->extra, sizeof(r->extra), "retry-after:");
		answer(r, code, err_json("chaos"));
		return;
	}
	v = lws_get_urlarg_by_name(wsi, "top=", tmp, sizeof(tmp));
	if (v != NULL)
		top = atoll(v);
	if (top < 1 || top > 100 || skip < 0) {
		answer(r, 400, err_json("bad top or skip"));
		return;
	}
	v = lws_get_urlarg_by_name(wsi, "orderby=", tmp, sizeof(tmp));
	if (v != NULL && strstr(v, "desc") != NULL)
		desc = 1;
	v = lws_get_urlarg_by_name(wsi, "filter=", f, sizeof(f));
	if (filter_parse(v, &lo, &lo_incl, &hi, &hi_incl) != 0) {
		answer(r, 400, err_json("bad filter"));
		return;
	}
	if ((sel = calloc(C.nrows + 1, sizeof(*sel))) == NULL) {
		answer(r, 500, err_json("out of memory"));
		return;
	}
	for (i = 0; i < C.nrows; i++) {
		long long t = C.rows[i].started_us;

		if (C.rows[i].held || t < lo || (t == lo && !lo_incl) ||
		    t > hi || (t == hi && !hi_incl))
			continue;
		sel[n++] = &C.rows[i];
	}
	qsort(sel, n, sizeof(*sel), row_cmp_asc);
	j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "count", (double)n);
	items = cJSON_AddArrayToObject(j, "items");
	for (i = (size_t)skip; i < n && i < (size_t)(skip + top); i++) {
		cJSON *row = cJSON_Duplicate(sel[desc ? n - 1 - i : i]->j, 1);

		if (cdrs)
			cJSON_DeleteItemFromObject(row, "session_id");
		cJSON_AddItemToArray(items, row);
	}
	plog("LIST rows=%d count=%zu skip=%lld", cJSON_GetArraySize(items), n,
	    skip);
	free(sel);
	answer(r, 200, j);
}

static void
rest_route(struct lws *wsi, struct rsess *r)
{
	const char *u = r->uri;
	int legacy = opt.rest_legacy;

	if (r->post && strcmp(u, "/api/auth/sign_in") == 0 && !legacy) {
		if (!creds_ok(r->body, r->blen))
			answer(r, 401, err_json("username or password error"));
		else
			answer(r, 200, issue_token(0));
	} else if (r->post && strcmp(u, "/api/auth/refresh_token") == 0 &&
	    !legacy) {
		cJSON *j = cJSON_ParseWithLength(r->body, r->blen);
		const char *rt = cJSON_GetStringValue(
		    cJSON_GetObjectItemCaseSensitive(j, "refresh_token"));
		int found = 0;

		for (unsigned i = 0; rt != NULL && i < C.ntok; i++)
			if (strcmp(C.tok[i].refresh, rt) == 0) {
				C.tok[i].refresh[0] = '\0';	/* used up */
				found = 1;
			}
		cJSON_Delete(j);
		if (found)
			answer(r, 200, issue_token(0));
		else
			answer(r, 401, err_json("invalid refresh token"));
	} else if (strcmp(u, "/api/login") == 0 && legacy) {
		if (r->post) {
			if (!creds_ok(r->body, r->blen)) {
				answer(r, 401, err_json("login failed"));
			} else {
				new_token(C.cookie, sizeof(C.cookie));
				snprintf(r->extra, sizeof(r->extra),
				    "set-cookie:");
				answer(r, 200, NULL);
			}
		} else {
			char ck[128];

			if (lws_hdr_copy(wsi, ck, sizeof(ck),
			    WSI_TOKEN_HTTP_COOKIE) > 0 && C.cookie[0] &&
			    strstr(ck, C.cookie) != NULL)
				answer(r, 200, issue_token(1));
			else
				answer(r, 401, err_json("not logged in"));
		}
	} else if (!r->post && strcmp(u, "/api/calllogs") == 0 &&
	    !opt.rest_no_calllogs) {
		rest_list(wsi, r, 0);
	} else if (!r->post && strcmp(u, "/api/cdrs") == 0) {
		rest_list(wsi, r, 1);
	} else {
		answer(r, 404, err_json("not found"));
	}
	plog("REST %s %s %d", r->post ? "POST" : "GET", u, r->status);
	lws_callback_on_writable(wsi);
}

static int
rest_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct rsess *r = user;
	unsigned char hb[LWS_PRE + 1024], *start = hb + LWS_PRE, *p = start,
	    *end = hb + sizeof(hb) - 1;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		memset(r, 0, sizeof(*r));
		snprintf(r->uri, sizeof(r->uri), "%s", (const char *)in);
		r->post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
		if (r->post)
			return 0;	/* the body follows */
		rest_route(wsi, r);
		return 0;
	case LWS_CALLBACK_HTTP_BODY:
		if (r->blen + len > REST_BODY_MAX) {
			r->too_big = 1;
			return 0;
		}
		{
			char *nb = realloc(r->body, r->blen + len + 1);

			if (nb == NULL)
				return -1;
			r->body = nb;
			memcpy(r->body + r->blen, in, len);
			r->blen += len;
			r->body[r->blen] = '\0';
		}
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (r->too_big)
			answer(r, 413, err_json("too large"));
		rest_route(wsi, r);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		size_t chunk;
		int final;

		if (r->out == NULL && r->status == 0)
			return 0;
		if (!r->headers_sent) {
			if (lws_add_http_common_headers(wsi,
			    (unsigned int)r->status, "application/json",
			    r->olen, &p, end))
				return -1;
			if (strcmp(r->extra, "retry-after:") == 0 &&
			    lws_add_http_header_by_token(wsi,
			    WSI_TOKEN_HTTP_RETRY_AFTER,
			    (const unsigned char *)"1", 1, &p, end))
				return -1;
			if (strcmp(r->extra, "set-cookie:") == 0) {
				char ck[80];

				snprintf(ck, sizeof(ck), "sid=%s; Path=/api",
				    C.cookie);
				if (lws_add_http_header_by_token(wsi,
				    WSI_TOKEN_HTTP_SET_COOKIE,
				    (const unsigned char *)ck, (int)strlen(ck),
				    &p, end))
					return -1;
			}
			if (lws_finalize_write_http_header(wsi, start, &p, end))
				return -1;
			r->headers_sent = 1;
			if (r->olen == 0)
				goto done;
			lws_callback_on_writable(wsi);
			return 0;
		}
		chunk = r->olen - r->opos > 16384 ? 16384 : r->olen - r->opos;
		final = r->opos + chunk == r->olen;
		{
			unsigned char *wb = malloc(LWS_PRE + chunk);

			if (wb == NULL)
				return -1;
			memcpy(wb + LWS_PRE, r->out + r->opos, chunk);
			if (lws_write(wsi, wb + LWS_PRE, chunk, final ?
			    LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
			    (int)chunk) {
				free(wb);
				return -1;
			}
			free(wb);
		}
		r->opos += chunk;
		if (!final) {
			lws_callback_on_writable(wsi);
			return 0;
		}
done:
		free(r->out);
		r->out = NULL;
		free(r->body);
		r->body = NULL;
		r->status = 0;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	case LWS_CALLBACK_CLOSED_HTTP:
		if (r != NULL) {
			free(r->out);
			free(r->body);
			r->out = r->body = NULL;
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols rest_protocols[] = {
	{ "http", rest_callback, sizeof(struct rsess), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/*
 * Timers (all sul, all cancelled before lws_context_destroy()):
 *   sul_tick, every TICK_US: keeps lws_service() returning so a signal is
 *     seen within 200 ms (lws 4.1 ignores the service timeout, style.md
 *     §13.3 #7); closes connections idle for --idle-close; finishes @drop
 *     once the socket's send queue is empty (or after DROP_WAIT_US); ends
 *     stalled connections whose peer has gone (a stalled connection reads
 *     nothing, so lws cannot notice).
 *   P.sul_sleep, one shot: the end of an @sleep.
 *   P.sul_rate, one shot: the next --rate token is due.
 * Both player timers are cancelled when the player leaves its connection.
 */
static lws_sorted_usec_list_t sul_tick;

static void
tick(lws_sorted_usec_list_t *sul)
{
	lws_usec_t now = lws_now_usecs();
	struct pollfd pfd;
	struct sess *s;

	for (s = sessions; s != NULL; s = s->next) {
		if (s->dropping) {
			/* not from WRITEABLE: that never comes if the peer
			 * stopped reading */
			if (s->dropping == 1 && (sock_outq(s) == 0 ||
			    now > s->drop_deadline)) {
				s->dropping = 2;
				drop_prepare(s);
				lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
				    LWS_TO_KILL_ASYNC);
			}
			continue;
		}
		if (s->stalled) {
			pfd.fd = lws_get_socket_fd(s->wsi);
			pfd.events = POLLRDHUP;
			pfd.revents = 0;
			if (poll(&pfd, 1, 0) == 1 &&
			    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)))
				lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
				    LWS_TO_KILL_ASYNC);
			continue;
		}
		if (opt.idle_close > 0 && !s->rx_paused && !s->close_code &&
		    !s->dropping && (double)(now - s->last_rx) >
		    opt.idle_close * 1e6) {
			plog("IDLE %u", s->conn);
			s->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
			s->close_after_queue = 0;
			if (P.owner == s) {
				section_end(s, 1);
				player_release(s);
			}
			lws_callback_on_writable(s->wsi);
			/* a client that does not read gets no close frame */
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, 5);
		}
	}
	calls_tick();
	lws_sul_schedule(ctx, 0, sul, tick, TICK_US);
}

/* ------------------------------------------------------------ setup */

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		refuse_lifted = 1;
	else if (sig == SIGUSR2)
		storm_req = 1;
	else
		interrupted = 1;
}

static unsigned char *
dup_pre(const void *data, size_t len)
{
	unsigned char *b = malloc(LWS_PRE + len + 1);

	if (b != NULL) {
		memcpy(b + LWS_PRE, data, len);
		b[LWS_PRE + len] = '\0';
	}
	return b;
}

static int
parse_ull(const char *s, unsigned long long lo, unsigned long long hi,
    unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (*s == '-' || *s == '\0')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int
parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo ||
	    v > hi)
		return -1;
	*out = v;
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static struct line *
add_line(size_t *cap)
{
	struct line *l;

	if (P.nlines == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;

		if ((l = realloc(P.lines, ncap * sizeof(*l))) == NULL)
			return NULL;
		P.lines = l;
		*cap = ncap;
	}
	l = &P.lines[P.nlines++];
	memset(l, 0, sizeof(*l));
	return l;
}

/* The @big frame: {"event_type":"call_start",...,"pad":"xxx"} of size n. */
static int
make_big(struct line *l, unsigned long long n, char *err, size_t errlen)
{
	char head[512];
	int hl;

	hl = snprintf(head, sizeof(head), "{\"event_type\":\"call_start\","
	    "\"call_id\":\"big-%u\",\"callee\":\"sip:102@test.io\","
	    "\"caller\":\"sip:101@test.io\",\"cdr_id\":\"%llu\","
	    "\"direction\":\"internal\",\"session_id\":\"%llu\","
	    "\"tenant_id\":\"%llu\",\"time\":\"%lld\",\"pad\":\"", l->lineno,
	    SESSION_BASE + 16 * next_session + 1,
	    SESSION_BASE + 16 * next_session, tenant_id(0),
	    (long long)time(NULL));
	next_session++;
	if (n < (unsigned long long)hl + 2) {
		snprintf(err, errlen, "@big needs at least %d bytes", hl + 2);
		return -1;
	}
	if ((l->buf = malloc(LWS_PRE + n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(l->buf + LWS_PRE, head, (size_t)hl);
	memset(l->buf + LWS_PRE + hl, 'x', n - (size_t)hl - 2);
	memcpy(l->buf + LWS_PRE + n - 2, "\"}", 2);
	l->len = n;
	return 0;
}

/* @invalid_utf8: bytes ff fe 80 inside a JSON string of a real event. */
static int
make_invalid_utf8(struct line *l, char *err, size_t errlen)
{
	char ev[256];
	int n;

	n = snprintf(ev, sizeof(ev), "{\"event_type\":\"extension_presence\","
	    "\"extension\":\"sip:101@test.io\",\"presence\":\"ONLINE\","
	    "\"presence_note\":\"bad \xff\xfe\x80 utf8\",\"tenant_id\":"
	    "\"%llu\",\"extension_id\":\"%llu\",\"time\":\"%lld\"}",
	    tenant_id(0), ext_id(0, "101"), (long long)time(NULL));
	l->len = (size_t)n;
	if ((l->buf = dup_pre(ev, l->len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int
parse_directive(struct line *l, char *d, char *err, size_t errlen)
{
	static const struct {
		const char	*name;
		enum op		 op;
	} noarg[] = {
		{ "@drop", OP_DROP }, { "@close", OP_CLOSE },
		{ "@stall", OP_STALL }, { "@end", OP_END },
		{ "@invalid_utf8", OP_INVALID_UTF8 },
	};
	char *arg = strchr(d, ' '), *p;
	unsigned long long v;
	size_t i;

	if (arg != NULL)
		*arg++ = '\0';
	if (strncmp(d, "@#", 2) == 0) {
		l->op = OP_COMMENT;
		return 0;
	}
	for (i = 0; i < sizeof(noarg) / sizeof(noarg[0]); i++) {
		if (strcmp(d, noarg[i].name) != 0)
			continue;
		if (arg != NULL && *arg != '\0') {
			snprintf(err, errlen, "%s takes no argument", d);
			return -1;
		}
		l->op = noarg[i].op;
		if (l->op == OP_INVALID_UTF8)
			return make_invalid_utf8(l, err, errlen);
		return 0;
	}
	if (arg == NULL) {
		snprintf(err, errlen, "%s: missing argument or unknown "
		    "directive", d);
		return -1;
	}
	if (strcmp(d, "@sleep") == 0) {
		if (parse_ull(arg, 0, 86400000, &v)) {
			snprintf(err, errlen, "@sleep MS: 0..86400000");
			return -1;
		}
		l->op = OP_SLEEP;
		l->n = v;
		return 0;
	}
	if (strcmp(d, "@flood") == 0) {
		if (parse_ull(arg, 1, 1000000000000ULL, &v)) {
			snprintf(err, errlen, "@flood N: 1..10^12");
			return -1;
		}
		l->op = OP_FLOOD;
		l->n = v;
		return 0;
	}
	if (strcmp(d, "@big") == 0) {
		if (parse_ull(arg, 1, BIG_MAX, &v)) {
			snprintf(err, errlen, "@big BYTES: up to %ld", BIG_MAX);
			return -1;
		}
		l->op = OP_BIG;
		return make_big(l, v, err, errlen);
	}
	if (strcmp(d, "@binary") == 0) {
		size_t hl = strlen(arg);

		if (hl % 2 != 0) {
			snprintf(err, errlen, "@binary HEX: odd length");
			return -1;
		}
		l->op = OP_BINARY;
		l->len = hl / 2;
		if ((l->buf = malloc(LWS_PRE + l->len + 1)) == NULL)
			goto oom;
		for (i = 0; i < l->len; i++) {
			int hi = hexval(arg[2 * i]);
			int lo = hexval(arg[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				snprintf(err, errlen, "@binary HEX: not hex");
				return -1;
			}
			l->buf[LWS_PRE + i] = (unsigned char)(hi << 4 | lo);
		}
		return 0;
	}
	if (strcmp(d, "@fragment") == 0) {
		if ((p = strchr(arg, ' ')) == NULL || p[1] == '\0') {
			snprintf(err, errlen, "@fragment N LINE");
			return -1;
		}
		*p++ = '\0';
		if (parse_ull(arg, 1, 100000, &v)) {
			snprintf(err, errlen, "@fragment N: 1..100000");
			return -1;
		}
		l->op = OP_FRAGMENT;
		l->n = v;
		l->len = strlen(p);
		if ((l->buf = dup_pre(p, l->len)) == NULL)
			goto oom;
		return 0;
	}
	snprintf(err, errlen, "unknown directive %s", d);
	return -1;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static int
load_script(void)
{
	char err[160], *data = NULL, *p, *nl;
	size_t cap = 0, len = 0;
	unsigned lineno = 0;
	struct line *l;
	FILE *fp;

	if (opt.flood > 0) {
		if ((l = add_line(&cap)) == NULL)
			goto oom;
		l->op = OP_FLOOD;
		l->n = opt.flood;
		P.loop_start = 1;
	}
	if (opt.script == NULL)
		return 0;
	if ((fp = fopen(opt.script, "rb")) == NULL) {
		fprintf(stderr, "pbxsim: %s: %s\n", opt.script,
		    strerror(errno));
		return -1;
	}
	if (fseek(fp, 0, SEEK_END) == 0) {
		long sz = ftell(fp);

		if (sz > SCRIPT_MAX) {
			fprintf(stderr, "pbxsim: %s: larger than %ld bytes\n",
			    opt.script, SCRIPT_MAX);
			fclose(fp);
			return -1;
		}
		rewind(fp);
		if (sz >= 0 && (data = malloc((size_t)sz + 1)) != NULL)
			len = fread(data, 1, (size_t)sz, fp);
	}
	if (data == NULL || ferror(fp)) {
		fprintf(stderr, "pbxsim: %s: cannot read\n", opt.script);
		fclose(fp);
		free(data);
		return -1;
	}
	fclose(fp);
	data[len] = '\0';

	for (p = data; p < data + len; p = nl + 1) {
		size_t ll;

		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(data + len - p))) == NULL)
			nl = data + len;
		*nl = '\0';
		ll = (size_t)(nl - p);
		if (ll > 0 && p[ll - 1] == '\r')
			p[--ll] = '\0';
		if (ll == 0)
			continue;
		if ((l = add_line(&cap)) == NULL)
			goto oom;
		l->lineno = lineno;
		if (*p == '@') {
			if (parse_directive(l, p, err, sizeof(err)) == -1) {
				fprintf(stderr, "pbxsim: %s:%u: %s\n",
				    opt.script, lineno, err);
				free(data);
				return -1;
			}
		} else {
			l->op = OP_TEXT;
			l->len = ll;
			if ((l->buf = dup_pre(p, ll)) == NULL)
				goto oom;
		}
	}
	free(data);
	return 0;
oom:
	fprintf(stderr, "pbxsim: out of memory\n");
	free(data);
	return -1;
}

static int
write_port_file(const char *path, int port)
{
	char tmp[PATH_MAX];
	FILE *fp;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		fprintf(stderr, "pbxsim: %s: path too long\n", path);
		return -1;
	}
	if ((fp = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "pbxsim: %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	fprintf(fp, "%d\n", port);
	if (fflush(fp) == EOF || fsync(fileno(fp)) == -1 ||
	    fclose(fp) == EOF || rename(tmp, path) == -1) {
		fprintf(stderr, "pbxsim: %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: pbxsim --cert FILE --key FILE [--port N]"
	    " [--port-file FILE]\n"
	    "              [--path /wsi] [--user NAME] [--password PW]"
	    " [--domain D] [--v16]\n"
	    "              [--script FILE] [--loop] [--subs N] [--log FILE]\n"
	    "              [--flood N] [--rate EPS] [--tenants N]"
	    " [--idle-close S]\n"
	    "              [--client-ca FILE] [--log-time]"
	    " [--tls-max 1.0|1.1|1.2|1.3] [--refuse-topic TOPIC]\n"
	    "              [--calls N] [--calls-every MS] [--calls-wait-sub]"
	    " [--drop-at-call N]\n"
	    "              [--down-calls M] [--rest-port-file FILE]"
	    " [--rest-token-ttl S]\n"
	    "              [--rest-legacy] [--rest-no-calllogs] [--rest-shift]"
	    " [--rest-chaos PCT]\n"
	    "              [--rest-revoke-every N] [--seed N]"
	    " [--rest-cert FILE --rest-key FILE]\n"
	    "defaults: --port 0 (kernel's choice, 127.0.0.1 only) --path /wsi"
	    " --user admin\n"
	    "          --password secret --subs 1 --tenants 4\n");
}

static int
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "client-ca", required_argument, NULL, 'A' },
		{ "port", required_argument, NULL, 'p' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "path", required_argument, NULL, 'u' },
		{ "user", required_argument, NULL, 'U' },
		{ "password", required_argument, NULL, 'W' },
		{ "domain", required_argument, NULL, 'd' },
		{ "v16", no_argument, NULL, '6' },
		{ "script", required_argument, NULL, 's' },
		{ "loop", no_argument, NULL, 'L' },
		{ "subs", required_argument, NULL, 'S' },
		{ "log", required_argument, NULL, 'l' },
		{ "flood", required_argument, NULL, 'f' },
		{ "rate", required_argument, NULL, 'r' },
		{ "tenants", required_argument, NULL, 't' },
		{ "idle-close", required_argument, NULL, 'i' },
		{ "log-time", no_argument, NULL, 'T' },
		{ "tls-max", required_argument, NULL, 'X' },
		{ "refuse-topic", required_argument, NULL, 'R' },
		{ "calls", required_argument, NULL, 1001 },
		{ "calls-every", required_argument, NULL, 1002 },
		{ "calls-wait-sub", no_argument, NULL, 1003 },
		{ "drop-at-call", required_argument, NULL, 1004 },
		{ "down-calls", required_argument, NULL, 1005 },
		{ "rest-port-file", required_argument, NULL, 1006 },
		{ "rest-token-ttl", required_argument, NULL, 1007 },
		{ "rest-legacy", no_argument, NULL, 1008 },
		{ "rest-no-calllogs", no_argument, NULL, 1009 },
		{ "rest-shift", no_argument, NULL, 1010 },
		{ "rest-chaos", required_argument, NULL, 1011 },
		{ "rest-revoke-every", required_argument, NULL, 1012 },
		{ "seed", required_argument, NULL, 1013 },
		{ "rest-cert", required_argument, NULL, 1014 },
		{ "rest-key", required_argument, NULL, 1015 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned long long v;
	int c, li = 0;

	while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
		switch (c) {
		case 'c': opt.cert = optarg; break;
		case 'k': opt.key = optarg; break;
		case 'A': opt.client_ca = optarg; break;
		case 'P': opt.port_file = optarg; break;
		case 'u': opt.path = optarg; break;
		case 'U': opt.user = optarg; break;
		case 'W': opt.password = optarg; break;
		case 'd': opt.domain = optarg; break;
		case '6': opt.v16 = 1; break;
		case 's': opt.script = optarg; break;
		case 'L': opt.loop = 1; break;
		case 'T': opt.log_time = 1; break;
		case 'R': opt.refuse_topic = optarg; break;
		case 'X':
			if (strcmp(optarg, "1.0") == 0)
				opt.tls_max = TLS1_VERSION;
			else if (strcmp(optarg, "1.1") == 0)
				opt.tls_max = TLS1_1_VERSION;
			else if (strcmp(optarg, "1.2") == 0)
				opt.tls_max = TLS1_2_VERSION;
			else if (strcmp(optarg, "1.3") == 0)
				opt.tls_max = TLS1_3_VERSION;
			else
				goto bad;
			break;
		case 'l': opt.log = optarg; break;
		case 'p':
			if (parse_ull(optarg, 0, 65535, &v))
				goto bad;
			opt.port = (int)v;
			break;
		case 'S':
			if (parse_ull(optarg, 1, 1000, &v))
				goto bad;
			opt.subs = (unsigned)v;
			break;
		case 'f':
			if (parse_ull(optarg, 0, 1000000000000ULL, &opt.flood))
				goto bad;
			break;
		case 't':
			if (parse_ull(optarg, 1, 100000, &v))
				goto bad;
			opt.tenants = (unsigned)v;
			break;
		case 'r':
			if (parse_double(optarg, 0.001, 1e8, &opt.rate))
				goto bad;
			break;
		case 'i':
			if (parse_double(optarg, 0.01, 86400, &opt.idle_close))
				goto bad;
			break;
		case 1001:
			if (parse_ull(optarg, 0, 1000000, &opt.calls))
				goto bad;
			break;
		case 1002:
			if (parse_ull(optarg, 1, 3600000, &opt.calls_every))
				goto bad;
			break;
		case 1003: opt.calls_wait_sub = 1; break;
		case 1004:
			if (parse_ull(optarg, 1, 1000000, &opt.drop_at))
				goto bad;
			break;
		case 1005:
			if (parse_ull(optarg, 1, 1000000, &opt.down_calls))
				goto bad;
			break;
		case 1006: opt.rest_port_file = optarg; break;
		case 1007:
			if (parse_ull(optarg, 1, 86400, &opt.token_ttl))
				goto bad;
			break;
		case 1008: opt.rest_legacy = 1; break;
		case 1009: opt.rest_no_calllogs = 1; break;
		case 1010: opt.rest_shift = 1; break;
		case 1011:
			if (parse_ull(optarg, 0, 100, &v))
				goto bad;
			opt.chaos = v;
			break;
		case 1012:
			if (parse_ull(optarg, 1, 1000000, &opt.revoke_every))
				goto bad;
			break;
		case 1014: opt.rest_cert = optarg; break;
		case 1015: opt.rest_key = optarg; break;
		case 1013:
			if (parse_ull(optarg, 1, ULLONG_MAX, &opt.seed))
				goto bad;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		continue;
bad:
		fprintf(stderr, "pbxsim: bad value for --%s: %s\n",
		    lo[li].name, optarg);
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "pbxsim: unexpected argument %s\n",
		    argv[optind]);
		usage(stderr);
		return -1;
	}
	if (opt.cert == NULL || opt.key == NULL) {
		fprintf(stderr, "pbxsim: --cert and --key are required\n");
		usage(stderr);
		return -1;
	}
	if (opt.path[0] != '/') {
		fprintf(stderr, "pbxsim: --path must start with /\n");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct sigaction sa;
	struct lws_vhost *vh;
	const char *files[3];
	int i, port, n = 0;

	if (parse_args(argc, argv) == -1)
		return 64;
	files[0] = opt.cert;
	files[1] = opt.key;
	files[2] = opt.client_ca;
	for (i = 0; i < 3; i++) {
		if (files[i] != NULL && access(files[i], R_OK) == -1) {
			fprintf(stderr, "pbxsim: %s: %s\n", files[i],
			    strerror(errno));
			return 1;
		}
	}
	if (opt.log != NULL && (logfp = fopen(opt.log, "a")) == NULL) {
		fprintf(stderr, "pbxsim: %s: %s\n", opt.log, strerror(errno));
		return 1;
	}
	P.gen.rng = 0x9E3779B97F4A7C15ULL;
	if (load_script() == -1)
		return 64;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: poll() gets EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);	/* OpenSSL writes with plain write() */

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	if (!tap_active())
		fprintf(stderr, "pbxsim: warning: SSL_read not interposed; "
		    "PING lines and ping-aware --idle-close unavailable\n");

	memset(&info, 0, sizeof(info));
	info.port = opt.port;
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_DISABLE_IPV6;
	info.ssl_cert_filepath = opt.cert;
	info.ssl_private_key_filepath = opt.key;
	if (opt.client_ca != NULL) {
		info.ssl_ca_filepath = opt.client_ca;
		info.options |=
		    LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
	}
	info.alpn = "http/1.1";	/* no h2: WSI is plain RFC 6455 (§1) */
	info.timeout_secs = 10;	/* TLS accept, close-ack and similar waits */

	if ((ctx = lws_create_context(&info)) == NULL) {
		fprintf(stderr, "pbxsim: cannot listen on 127.0.0.1:%d with "
		    "%s / %s\n", opt.port, opt.cert, opt.key);
		return 1;
	}
	vh = lws_get_vhost_by_name(ctx, "default");
	port = vh ? lws_get_vhost_listen_port(vh) : -1;
	if (port <= 0) {
		fprintf(stderr, "pbxsim: no listening port\n");
		lws_context_destroy(ctx);
		return 1;
	}
	if (opt.port_file != NULL && write_port_file(opt.port_file, port)) {
		lws_context_destroy(ctx);
		return 1;
	}
	C.rng = opt.seed * 0x9E3779B97F4A7C15ULL | 1;
	if (opt.calls_every != 0 &&
	    (C.rows = calloc(ROWS_MAX, sizeof(*C.rows))) == NULL) {
		fprintf(stderr, "pbxsim: out of memory\n");
		lws_context_destroy(ctx);
		return 1;
	}
	if (opt.rest_port_file != NULL) {
		struct lws_context_creation_info ri;
		struct lws_vhost *rv;
		int rport;

		memset(&ri, 0, sizeof(ri));
		ri.vhost_name = "rest";
		ri.port = 0;
		ri.iface = "127.0.0.1";
		ri.protocols = rest_protocols;
		ri.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
		    LWS_SERVER_OPTION_DISABLE_IPV6;
		ri.ssl_cert_filepath = opt.rest_cert ? opt.rest_cert : opt.cert;
		ri.ssl_private_key_filepath = opt.rest_key ? opt.rest_key :
		    opt.key;
		ri.alpn = "http/1.1";
		if ((rv = lws_create_vhost(ctx, &ri)) == NULL ||
		    (rport = lws_get_vhost_listen_port(rv)) <= 0 ||
		    write_port_file(opt.rest_port_file, rport)) {
			fprintf(stderr, "pbxsim: cannot serve REST\n");
			lws_context_destroy(ctx);
			return 1;
		}
		plog("REST LISTEN %d", rport);
	}
	plog("LISTEN %d", port);
	printf("PORT %d\n", port);
	fflush(stdout);
	if (!opt.calls_wait_sub)
		calls_start();

	lws_sul_schedule(ctx, 0, &sul_tick, tick, TICK_US);
	while (!interrupted && n >= 0)
		n = lws_service(ctx, 0);

	shutting_down = 1;
	lws_sul_cancel(&sul_tick);
	lws_sul_cancel(&P.sul_sleep);
	lws_sul_cancel(&P.sul_rate);
	lws_sul_cancel(&C.sul);
	lws_context_destroy(ctx);
	for (size_t k = 0; k < C.nrows; k++)
		cJSON_Delete(C.rows[k].j);
	free(C.rows);
	plog("EXIT");
	for (size_t k = 0; k < P.nlines; k++)
		free(P.lines[k].buf);
	free(P.lines);
	if (logfp != NULL)
		fclose(logfp);
	return interrupted ? 0 : 1;
}
