/*
 * main.c — command line, signals, wiring, and the startup and shutdown
 * order (style.md §15.7). The only file that exits.
 *
 * Startup: argv → config (exit 78 on any problem) → signals → spool and
 * producer (or the dry-run printer) → lws context → one session per PBX → the HTTP
 * listener (bound) → sessions started → READY=1.
 * Shutdown (SIGTERM/SIGINT): STOPPING=1 → close the PBX sessions (input
 * first) → flush Kafka for up to 10 s → free in reverse order, the spool
 * last (what is not delivered stays in it for the next start) → exit 0.
 */
#include "backfill.h"
#include "cfg.h"
#include "http.h"
#include "kcheck.h"
#include "ksink.h"
#include "log.h"
#include "pbx.h"
#include "route.h"
#include "spool.h"
#include "svc.h"
#include "timer.h"
#include "w2k.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>

#define DEFAULT_CONFIG		"/etc/wsi2kafka/wsi2kafka.conf"
#define FLUSH_TIMEOUT_MS	10000	/* contract §7 */
#define CLOSE_TIMEOUT_US	(3LL * 1000 * 1000)
#define HOUSEKEEPING_US		(200 * 1000)
#define W2K_SERV_BUF		(64 * 1024)	/* lws read size per turn */

static volatile sig_atomic_t got_term, got_hup;

struct daemon {
	struct cfg		*cfg;
	struct lws_context	*context;
	struct timers		*timers;	/* timer.h, on the context */
	struct route_table	*routes;
	struct ksink		*ks;		/* NULL in --dry-run */
	struct ksink_env	 ks_env;
	struct spool		*sp;		/* NULL in --dry-run */
	struct pbx		**pbx;
	struct pbx_env		 pbx_env;
	struct backfill		**bf;		/* parallel to pbx; NULL
						   entries: no backfill */
	struct backfill_env	 bf_env;
	char			*bf_dir;	/* the spool dir the daemon
						   started with (a reload frees
						   the cfg; spool settings
						   apply at the next start) */
	struct svc		*svc;
	struct metrics_src	 msrc;		/* what /metrics reads */
	struct http		*http;		/* NULL: http.listen unset */
	struct timer		 tm_housekeeping;	/* timer.h: no spin */
	uint64_t		 printed;	/* --dry-run records */
	/* reload: */
	const char		*path;		/* the configuration file */
	bool			 level_fixed;	/* -l given: the file's level
						   does not apply */
	struct pbx		**retiring;	/* sessions closing after a
						   reload; freed once idle */
	size_t			 nretiring;
	struct cfg		*prev_cfg;	/* what retiring sessions still
						   point into */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: wsi2kafka [-c FILE] [-t | -n | --check-kafka] [-l LEVEL] "
	    "[-V] [-h]\n"
	    "  -c, --config FILE      configuration file (default %s)\n"
	    "  -t, --check-config     load and validate everything, print a "
	    "short summary, exit\n"
	    "  -n, --dry-run          run the PBX sessions, print each record "
	    "as one JSON line\n"
	    "                         on stdout instead of producing to Kafka\n"
	    "      --check-kafka      connect to Kafka as configured, report "
	    "every topic\n"
	    "                         (exists, partitions, leaders, WRITE), "
	    "exit 0 if all\n"
	    "                         is well, 1 with a line per problem\n"
	    "  -l, --log-level LEVEL  error | warning | info | debug "
	    "(overrides the file)\n"
	    "  -V, --version\n"
	    "  -h, --help\n", DEFAULT_CONFIG);
}

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

static int
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the signal must interrupt lws's poll(). */
	if (sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0 ||
	    sigaction(SIGHUP, &sa, NULL) != 0)
		return W2K_EIO;
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL) == 0 ? 0 : W2K_EIO;
}

/* ---- sinks ------------------------------------------------------------- */

static int
emit_kafka(void *ctx, const struct record *rec)
{
	struct daemon *d = ctx;

	return ksink_produce(d->ks, rec);
}

/*
 * --dry-run: one JSON line per record on stdout, with the value embedded as
 * JSON (it is always our own valid JSON), so `jq` reads the stream.
 */
static int
emit_print(void *ctx, const struct record *rec)
{
	struct daemon *d = ctx;
	cJSON *o = cJSON_CreateObject(), *h, *v;
	const char *name, *value;
	size_t pos = 0;
	char *line;

	if (o == NULL)
		return W2K_ENOMEM;
	cJSON_AddStringToObject(o, "topic", rec->topic);
	if (rec->key != NULL) {
		char *key = strndup(rec->key, rec->key_len);

		cJSON_AddStringToObject(o, "key", key ? key : "");
		free(key);
	} else {
		cJSON_AddNullToObject(o, "key");
	}
	h = cJSON_AddObjectToObject(o, "headers");
	while (h != NULL && record_hdr_next(rec, &pos, &name, &value))
		cJSON_AddStringToObject(h, name, value);
	v = cJSON_ParseWithLength(rec->value, rec->value_len);
	if (v != NULL)
		cJSON_AddItemToObject(o, "value", v);
	if ((line = cJSON_PrintUnformatted(o)) != NULL) {
		puts(line);
		fflush(stdout);
		free(line);
		d->printed++;
	}
	cJSON_Delete(o);
	return 0;
}

/* A live record about to be emitted: its PBX's backfill indexes CDRs. */
static void
observe_record(void *ctx, struct pbx *p, const struct record *rec)
{
	struct daemon *d = ctx;

	for (size_t i = 0; d->bf != NULL && i < d->cfg->npbx; i++)
		if (d->pbx[i] == p && d->bf[i] != NULL)
			backfill_observe(d->bf[i], rec);
}

/* The backfill of PBX i when its configuration enables one. */
static int
backfill_make(struct daemon *d, const struct cfg_pbx *pc, struct pbx *p,
    struct backfill **out)
{
	*out = NULL;
	if (!pc->backfill.enabled)
		return 0;
	if (d->sp == NULL) {
		log_warn("pbx %s: backfill is off in a dry run (it keeps its "
		    "state beside the spool)", pc->name);
		return 0;
	}
	return backfill_new(pc, p, &d->bf_env, out);
}

/*
 * lws 4.1 ignores lws_service()'s timeout (§13.3-7): a signal that lands
 * just before poll() would wait for the next timer. This one bounds that.
 */
static void retiring_reap(struct daemon *d, bool force);

static void
housekeeping_cb(struct timer *tm)
{
	struct daemon *d = lws_container_of(tm, struct daemon,
	    tm_housekeeping);

	retiring_reap(d, false);

	timer_arm(d->timers, &d->tm_housekeeping, HOUSEKEEPING_US,
	    housekeeping_cb);
}

/* STATUS=: one short line an operator reads in `systemctl status`. */
static void
status_text(void *ctx, char *buf, size_t len)
{
	struct daemon *d = ctx;
	size_t up = 0, n = 0;
	int w;

	for (size_t i = 0; i < d->cfg->npbx; i++)
		if (d->pbx[i] != NULL &&
		    pbx_get_state(d->pbx[i]) == PBX_SUBSCRIBED)
			up++;
	w = snprintf(buf, len, "PBX %zu/%zu subscribed", up, d->cfg->npbx);
	if (w > 0 && (size_t)w < len)
		n = (size_t)w;
	/* Contract §6: a refused subscription shows here too. */
	for (size_t i = 0; i < d->cfg->npbx && n < len; i++) {
		size_t rej;

		if (d->pbx[i] == NULL || (rej = pbx_subs_rejected(d->pbx[i])) == 0)
			continue;
		w = snprintf(buf + n, len - n, "; %s: %zu of %zu subscription%s "
		    "rejected", pbx_name(d->pbx[i]), rej, pbx_nsubs(d->pbx[i]),
		    pbx_nsubs(d->pbx[i]) == 1 ? "" : "s");
		if (w > 0 && (size_t)w < len - n)
			n += (size_t)w;
	}
	if (d->ks != NULL) {
		const struct ksink_stats *st = ksink_get_stats(d->ks);

		const struct spool_stats *ss = spool_get_stats(d->sp);

		snprintf(buf + n, len - n, "; Kafka %s, %" PRIu64
		    " delivered; spool %" PRIu64 " records (%" PRIu64
		    " KiB), %" PRIu64 " dropped", st->up ? "up" : "down",
		    st->produced, ss->records, ss->bytes / 1024, ss->dropped);
	} else {
		snprintf(buf + n, len - n, "; dry run, %" PRIu64 " printed",
		    d->printed);
	}
}

/* ---- startup ----------------------------------------------------------- */

static void
print_spool_problem(void *ctx, const char *msg)
{
	(void)ctx;
	printf("  spool: %s\n", msg);
}

/* --check-config: what the spool holds, and damage start-up will repair. */
static int
check_spool(const struct cfg *cfg)
{
	struct spool_check_result res;

	if (spool_check(cfg->spool.dir, &res, print_spool_problem, NULL) != 0)
		return W2K_EXIT_CONFIG;
	printf("  spool: %" PRIu64 " record%s in %" PRIu64 " segment%s (%"
	    PRIu64 " bytes)%s\n", res.records, res.records == 1 ? "" : "s",
	    res.segments, res.segments == 1 ? "" : "s", res.bytes,
	    res.problems > 0 ? "; damage above is repaired at start" : "");
	return W2K_EXIT_OK;
}

/*
 * --check-config: a spool.dir outside what the packaged unit may write
 * (ProtectSystem=strict) passes here but fails under systemd. A warning:
 * the daemon may run without the unit, or the unit's drop-ins elsewhere.
 */
static void
warn_unit_paths(const struct cfg *cfg)
{
	char paths[512];

	if (cfg_unit_may_write(cfg->spool.dir,
	    "/etc/systemd/system/wsi2kafka.service.d", paths, sizeof(paths)))
		return;
	log_warn("config: %s: warning: spool.dir %s is outside what "
	    "wsi2kafka.service may write (%s; ProtectSystem=strict): under "
	    "systemd the spool cannot be opened unless a drop-in adds "
	    "ReadWritePaths=%s (systemctl edit wsi2kafka)", cfg->file,
	    cfg->spool.dir, paths, cfg->spool.dir);
}

static void
print_summary(const struct cfg *cfg)
{
	printf("configuration %s is valid\n", cfg->file);
	for (size_t i = 0; i < cfg->npbx; i++) {
		const struct cfg_pbx *pc = &cfg->pbx[i];

		printf("  pbx %s: %zu url%s (%s%s), %zu subscription%s, "
		    "tls verify %s\n", pc->name, pc->nurls,
		    pc->nurls == 1 ? "" : "s", pc->urls[0].text,
		    pc->nurls > 1 ? ", …" : "", pc->nsubs,
		    pc->nsubs == 1 ? "" : "s", pc->tls.verify ? "on" : "OFF");
		if (pc->backfill.enabled)
			printf("  pbx %s: CDR backfill over %s as %s, gaps up to "
			    "%" PRId64 " s, %g requests/s\n", pc->name,
			    pc->backfill.url.text, pc->backfill.username,
			    pc->backfill.max_gap,
			    pc->backfill.requests_per_second);
	}
	printf("  kafka: brokers %s, %zu route%s, dead letters to %s\n",
	    cfg->kafka.brokers, cfg->kafka.nroutes,
	    cfg->kafka.nroutes == 1 ? "" : "s", cfg->kafka.dead_letter_topic);
	printf("  spool: %s\n", cfg->spool.dir);
	printf("  http: %s\n", cfg->http_listen ? cfg->http_listen :
	    "disabled");
}

static int
daemon_start(struct daemon *d, bool dry_run)
{
	struct lws_context_creation_info info;
	size_t bad;
	int r;

	if ((r = route_new(d->cfg->kafka.routes, d->cfg->kafka.nroutes,
	    &d->routes, &bad)) != 0) {
		log_err("kafka.routes[%zu]: cannot compile", bad);
		return r;
	}

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	/*
	 * lws reads at most this much per socket per loop turn (default
	 * 4 KiB): at a few hundred bytes per event, a bigger buffer means
	 * far fewer poll() and read() calls per event under load.
	 */
	info.pt_serv_buf_size = W2K_SERV_BUF;
	if ((d->context = lws_create_context(&info)) == NULL) {
		log_err("cannot create the libwebsockets context");
		return W2K_EFATAL;
	}
	if ((r = timers_new(d->context, &d->timers)) != 0)
		return r;

	if (dry_run) {
		d->pbx_env.emit = emit_print;
	} else {
		/* Never fails on damaged files; only on an unusable dir. */
		if ((r = spool_open(&d->cfg->spool, &d->sp)) != 0)
			return r;
		d->ks_env.context = d->context;
		d->ks_env.timers = d->timers;
		d->ks_env.spool = d->sp;
		if ((r = ksink_new(d->cfg, &d->ks_env, &d->ks)) != 0)
			return r;
		d->pbx_env.emit = emit_kafka;
	}
	d->pbx_env.emit_ctx = d;
	d->pbx_env.context = d->context;
	d->pbx_env.routes = d->routes;
	d->pbx_env.dead_letter_topic = d->cfg->kafka.dead_letter_topic;

	d->pbx_env.observe = observe_record;
	d->pbx_env.observe_ctx = d;
	d->bf_env.context = d->context;
	if ((d->bf_dir = strdup(d->cfg->spool.dir)) == NULL)
		return W2K_ENOMEM;
	d->bf_env.state_dir = d->bf_dir;
	d->bf_env.routes = &d->pbx_env.routes;
	d->bf_env.dead_letter_topic = &d->pbx_env.dead_letter_topic;
	d->bf_env.emit = d->pbx_env.emit;
	d->bf_env.emit_ctx = d;

	if ((d->pbx = calloc(d->cfg->npbx, sizeof(*d->pbx))) == NULL ||
	    (d->bf = calloc(d->cfg->npbx, sizeof(*d->bf))) == NULL)
		return W2K_ENOMEM;
	for (size_t i = 0; i < d->cfg->npbx; i++)
		if ((r = pbx_new(&d->cfg->pbx[i], &d->pbx_env, &d->pbx[i])) != 0 ||
		    (r = backfill_make(d, &d->cfg->pbx[i], d->pbx[i],
		    &d->bf[i])) != 0)
			return r;

	/* Bound before READY=1 (contract §9); a failure names the address. */
	d->msrc.pbx = d->pbx;
	d->msrc.npbx = d->cfg->npbx;
	d->msrc.ks = d->ks;
	d->msrc.sp = d->sp;
	d->msrc.start_us = w2k_now_us();
	d->msrc.bf = d->bf;
	d->msrc.nbf = d->cfg->npbx;
	if (d->cfg->http_listen != NULL && (r = http_new(d->context,
	    d->cfg->http_listen, &d->msrc, &d->http)) != 0)
		return r;

	for (size_t i = 0; i < d->cfg->npbx; i++) {
		pbx_start(d->pbx[i]);
		if (d->bf[i] != NULL)
			backfill_start(d->bf[i]);
	}
	timer_arm(d->timers, &d->tm_housekeeping, HOUSEKEEPING_US,
	    housekeeping_cb);
	return svc_new(d->context, status_text, d, &d->svc);
}

/* ---- reload (SIGHUP) --------------------------------------------- */

/*
 * Free the sessions a reload stopped once they are closed (or all of them,
 * forced, before the next reload or at exit), then the configuration they
 * pointed into.
 */
static void
retiring_reap(struct daemon *d, bool force)
{
	size_t kept = 0;

	for (size_t i = 0; i < d->nretiring; i++) {
		if (force || pbx_idle(d->retiring[i]))
			pbx_free(d->retiring[i]);
		else
			d->retiring[kept++] = d->retiring[i];
	}
	d->nretiring = kept;
	if (kept == 0) {
		free(d->retiring);
		d->retiring = NULL;
		cfg_free(d->prev_cfg);
		d->prev_cfg = NULL;
	}
}

static struct pbx *
find_session(struct daemon *d, const char *name, size_t *idx)
{
	for (size_t i = 0; i < d->cfg->npbx; i++)
		if (d->pbx[i] != NULL && strcmp(pbx_name(d->pbx[i]), name) == 0) {
			*idx = i;
			return d->pbx[i];
		}
	return NULL;
}

/* Settings that only a restart applies: said, never ignored silently. */
static void
warn_restart_needed(const struct cfg *old, const struct cfg *nc)
{
	const char *o = old->http_listen ? old->http_listen : "";
	const char *n = nc->http_listen ? nc->http_listen : "";

	if (strcmp(o, n) != 0)
		log_warn("reload: http.listen changed: applies at the next "
		    "restart");
	if (strcmp(old->spool.dir, nc->spool.dir) != 0 ||
	    old->spool.max_bytes != nc->spool.max_bytes ||
	    old->spool.fsync != nc->spool.fsync ||
	    old->spool.fsync_interval_ms != nc->spool.fsync_interval_ms ||
	    old->spool.on_full != nc->spool.on_full)
		log_warn("reload: spool settings changed: apply at the next "
		    "restart");
}

/*
 * SIGHUP: the new file is validated completely before anything changes; a
 * bad file leaves the running configuration in force. Sessions whose
 * settings did not change keep their connection (no new auth, no gap);
 * changed and removed ones close, new ones start; routes, the dead-letter
 * topic, the Kafka producer and the log level follow the new file.
 */
static void
daemon_reload(struct daemon *d)
{
	struct route_table *nr = NULL;
	struct cfg *nc = NULL;
	struct pbx **np = NULL, **stop = NULL;
	struct backfill **nb = NULL;
	size_t bad, nstop = 0, kept = 0, started = 0, idx;
	int r;

	/* RELOADING=1 … READY=1 brackets every reload, refused ones too. */
	svc_reloading(d->svc);
	log_notice("SIGHUP: reloading %s", d->path);
	if (cfg_load(d->path, &nc, NULL, NULL) != 0 ||
	    cfg_check(nc, 0, NULL, NULL) != 0) {
		log_err("reload: %s is not valid: the running configuration "
		    "stays in force", d->path);
		cfg_free(nc);
		svc_ready(d->svc);
		return;
	}
	(void)cfg_warnings(nc, NULL, NULL);
	if (route_new(nc->kafka.routes, nc->kafka.nroutes, &nr, &bad) != 0 ||
	    (np = calloc(nc->npbx, sizeof(*np))) == NULL ||
	    (nb = calloc(nc->npbx, sizeof(*nb))) == NULL ||
	    (stop = calloc(d->cfg->npbx, sizeof(*stop))) == NULL) {
		log_err("reload: out of memory: the running configuration "
		    "stays in force");
		goto fail;
	}
	retiring_reap(d, true);	/* at most one generation closing */

	/* New sessions first: if one cannot be set up, nothing changed. */
	for (size_t j = 0; j < nc->npbx; j++) {
		struct pbx *old = find_session(d, nc->pbx[j].name, &idx);

		if (old != NULL && cfg_pbx_equal(&d->cfg->pbx[idx],
		    &nc->pbx[j]))
			continue;
		if (pbx_new(&nc->pbx[j], &d->pbx_env, &np[j]) != 0)
			goto fail;
	}
	if (d->ks != NULL && (r = ksink_reconfigure(d->ks, nc)) != 0) {
		log_err("reload: the Kafka settings were refused: the running "
		    "configuration stays in force");
		goto fail;
	}

	/* Commit. */
	for (size_t j = 0; j < nc->npbx; j++) {
		struct pbx *old = find_session(d, nc->pbx[j].name, &idx);

		if (np[j] == NULL) {		/* unchanged: keep it */
			pbx_rebind(old, &nc->pbx[j]);
			np[j] = old;
			d->pbx[idx] = NULL;
			/* Its backfill too (the settings are equal). */
			nb[j] = d->bf[idx];
			d->bf[idx] = NULL;
			if (nb[j] != NULL)
				backfill_rebind(nb[j], &nc->pbx[j], old);
			kept++;
		}
	}
	/* Backfills of changed or removed sessions: stopped (state saved)
	 * before their successors load it. */
	for (size_t i = 0; i < d->cfg->npbx; i++) {
		backfill_stop(d->bf[i]);
		backfill_free(d->bf[i]);
		d->bf[i] = NULL;
	}
	for (size_t j = 0; j < nc->npbx; j++)
		if (nb[j] == NULL && backfill_make(d, &nc->pbx[j], np[j],
		    &nb[j]) != 0)
			log_err("pbx %s: backfill could not be set up: CDR gaps "
			    "are not read until the next reload",
			    nc->pbx[j].name);
	for (size_t i = 0; i < d->cfg->npbx; i++)
		if (d->pbx[i] != NULL) {	/* removed or changed */
			log_info("reload: pbx %s: closing its session",
			    pbx_name(d->pbx[i]));
			pbx_stop(d->pbx[i]);
			stop[nstop++] = d->pbx[i];
		}
	warn_restart_needed(d->cfg, nc);
	d->pbx_env.routes = nr;
	d->pbx_env.dead_letter_topic = nc->kafka.dead_letter_topic;
	route_free(d->routes);
	d->routes = nr;
	free(d->pbx);
	d->pbx = np;
	free(d->bf);
	d->bf = nb;
	d->msrc.bf = nb;
	d->msrc.nbf = nc->npbx;
	d->retiring = stop;
	d->nretiring = nstop;
	d->prev_cfg = d->cfg;	/* freed once the stopped sessions closed */
	d->cfg = nc;
	d->msrc.pbx = d->pbx;
	d->msrc.npbx = nc->npbx;
	if (!d->level_fixed)
		log_set_level(nc->log_level);
	for (size_t j = 0; j < nc->npbx; j++) {
		if (pbx_get_state(np[j]) == PBX_STOPPED) {	/* new */
			pbx_start(np[j]);
			started++;
		}
		if (nb[j] != NULL && backfill_pbx(nb[j]) == np[j])
			backfill_start(nb[j]);
	}
	retiring_reap(d, false);
	log_notice("reload: done: %zu PBX session%s kept, %zu started, %zu "
	    "stopped", kept, kept == 1 ? "" : "s", started, nstop);
	svc_ready(d->svc);
	return;

fail:
	svc_ready(d->svc);
	for (size_t j = 0; np != NULL && j < nc->npbx; j++)
		pbx_free(np[j]);
	free(np);
	free(nb);
	free(stop);
	route_free(nr);
	cfg_free(nc);
}

/* ---- shutdown ------------------------------------------------------- */

static bool
all_sessions_closed(const struct daemon *d)
{
	for (size_t i = 0; i < d->cfg->npbx; i++)
		if (d->pbx[i] != NULL && !pbx_idle(d->pbx[i]))
			return false;
	return true;
}

static int
daemon_stop(struct daemon *d)
{
	int64_t deadline = w2k_mono_us() + CLOSE_TIMEOUT_US;
	uint64_t left = 0;

	if (d->svc != NULL)
		svc_stopping(d->svc);
	log_info("shutting down: closing PBX sessions");
	/* Before the sessions close: the last live moment is saved. */
	for (size_t i = 0; d->bf != NULL && i < d->cfg->npbx; i++)
		backfill_stop(d->bf[i]);
	/* Input first, so nothing new arrives while Kafka is flushed. */
	for (size_t i = 0; d->pbx != NULL && i < d->cfg->npbx; i++)
		if (d->pbx[i] != NULL)
			pbx_stop(d->pbx[i]);
	retiring_reap(d, false);
	while (d->pbx != NULL && !all_sessions_closed(d) &&
	    w2k_mono_us() < deadline) {
		lws_service(d->context, 0);
		ksink_service(d->ks);
	}
	for (size_t i = 0; d->pbx != NULL && i < d->cfg->npbx; i++) {
		const struct pbx_stats *st;

		if (d->pbx[i] == NULL)
			continue;
		st = pbx_get_stats(d->pbx[i]);
		log_info("pbx %s: %" PRIu64 " frames, %" PRIu64 " events, %"
		    PRIu64 " dead letters, %" PRIu64 " connects",
		    pbx_name(d->pbx[i]), st->frames, st->events,
		    st->dead_letters, st->connects_ok);
	}
	if (d->ks != NULL) {
		log_info("shutting down: flushing Kafka (up to %d s)",
		    FLUSH_TIMEOUT_MS / 1000);
		left = ksink_flush(d->ks, FLUSH_TIMEOUT_MS);
	}
	return left == 0 ? 0 : W2K_EAGAIN;
}

static void
daemon_free(struct daemon *d)
{
	if (d->timers != NULL)
		timer_cancel(d->timers, &d->tm_housekeeping);
	svc_free(d->svc);
	ksink_free(d->ks);
	retiring_reap(d, true);
	for (size_t i = 0; d->bf != NULL && i < d->cfg->npbx; i++) {
		backfill_stop(d->bf[i]);
		backfill_free(d->bf[i]);
	}
	free(d->bf);
	free(d->bf_dir);
	/* Sessions before the context: pbx_free() detaches live wsis. */
	for (size_t i = 0; d->pbx != NULL && i < d->cfg->npbx; i++)
		pbx_free(d->pbx[i]);
	free(d->pbx);
	if (d->context != NULL)
		lws_context_destroy(d->context);
	timers_free(d->timers);	/* after the context, which closed its fd */
	http_free(d->http);	/* after the context: it calls back into it */
	/* Last: what the producer did not deliver stays for the next start. */
	spool_close(d->sp);
	route_free(d->routes);
	cfg_free(d->cfg);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "check-config", no_argument, NULL, 't' },
		{ "check-kafka", no_argument, NULL, 'K' },
		{ "config", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = DEFAULT_CONFIG, *level_arg = NULL;
	bool check = false, dry_run = false, check_kafka = false;
	struct daemon d;
	enum log_level level = LOG_LVL_INFO;
	int c, r;

	while ((c = getopt_long(argc, argv, "c:hl:ntV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return W2K_EXIT_OK;
		case 'l':
			level_arg = optarg;
			break;
		case 'n':
			dry_run = true;
			break;
		case 't':
			check = true;
			break;
		case 'K':	/* --check-kafka: no short option */
			check_kafka = true;
			break;
		case 'V':
			printf("wsi2kafka %s\n", W2K_VERSION);
			return W2K_EXIT_OK;
		default:
			usage(stderr);
			return W2K_EXIT_USAGE;
		}
	}
	if (optind != argc || check + dry_run + check_kafka > 1) {
		fprintf(stderr, "wsi2kafka: %s\n", optind != argc ?
		    "unexpected argument" :
		    "-t, -n and --check-kafka exclude each other");
		usage(stderr);
		return W2K_EXIT_USAGE;
	}
	if (level_arg != NULL && log_level_parse(level_arg, &level) != 0) {
		fprintf(stderr, "wsi2kafka: unknown log level '%s'\n",
		    level_arg);
		usage(stderr);
		return W2K_EXIT_USAGE;
	}

	log_init(level);
	lws_set_log_level(log_lws_mask(), log_lws_emit);
	memset(&d, 0, sizeof(d));
	d.path = path;
	d.level_fixed = level_arg != NULL;
	if (cfg_load(path, &d.cfg, NULL, NULL) != 0 ||
	    cfg_check(d.cfg, check ? CFG_CHECK_SPOOL : 0, NULL, NULL) != 0) {
		log_err("configuration %s is not valid", path);
		cfg_free(d.cfg);
		return W2K_EXIT_CONFIG;
	}
	if (level_arg == NULL)
		log_set_level(d.cfg->log_level);
	else
		log_set_level(level);
	(void)cfg_warnings(d.cfg, NULL, NULL);
	if (check_kafka) {
		/* A report on stdout; secrets are never in it. */
		r = kcheck_run(d.cfg, stdout);
		cfg_free(d.cfg);
		return r == 0 ? W2K_EXIT_OK : r == W2K_EINVAL ?
		    W2K_EXIT_CONFIG : W2K_EXIT_FAIL;
	}
	if (check) {
		warn_unit_paths(d.cfg);
		print_summary(d.cfg);
		r = check_spool(d.cfg);
		cfg_free(d.cfg);
		return r;
	}
	if (install_signals() != 0) {
		log_err("cannot install signal handlers");
		cfg_free(d.cfg);
		return W2K_EXIT_FAIL;
	}

	if ((r = daemon_start(&d, dry_run)) != 0) {
		log_err("startup failed: %s", w2k_strerror(r));
		daemon_free(&d);
		return r == W2K_EINVAL ? W2K_EXIT_CONFIG : W2K_EXIT_FAIL;
	}
	log_info("wsi2kafka %s started: %zu PBX%s, %s", W2K_VERSION,
	    d.cfg->npbx, d.cfg->npbx == 1 ? "" : "s",
	    dry_run ? "dry run (records on stdout)" : d.cfg->kafka.brokers);
	svc_ready(d.svc);

	while (!got_term) {
		lws_service(d.context, 0);
		ksink_service(d.ks);
		if (got_hup) {
			got_hup = 0;
			daemon_reload(&d);
		}
	}
	r = daemon_stop(&d);
	daemon_free(&d);
	log_info("stopped%s", r == 0 ? "" : " (undelivered records kept in "
	    "the spool)");
	return W2K_EXIT_OK;
}
