/*
 * backfill.c — CDRs of WebSocket gaps over the PBX's REST API (backfill.h).
 *
 * Why lws's HTTP client and not libcurl: it is already linked and already
 * runs the loop; a request is one more client connection on the same
 * poll(), with the PBX's TLS settings on a vhost like the WSI session's
 * (same CA, verification and client certificate code paths, TLS 1.2 at
 * least), and no second event loop, thread or dependency to integrate,
 * package and audit. libcurl's multi interface would need its sockets
 * and timers bridged into lws by hand for the same result.
 *
 * Layout: the gap bookkeeping and its persistence; the live index; the
 * worker (one request at a time: sign-in, refresh, page); the HTTP client.
 */
#include "backfill.h"
#include "backoff.h"
#include "log.h"
#include "norm.h"
#include "w2k.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define BF_TICK_US		(1000 * 1000)
#define BF_REQ_TIMEOUT_S	30
#define BF_MAX_PASSES		5	/* re-reads while rows are inserted */
#define BF_MAX_SKIP		1000000	/* a server that never ends a list */
#define BF_RETRY_MAX_S		300	/* Retry-After honoured up to this */
#define BF_TOKEN_SLACK_S	60	/* refresh this long before expiry */
#define BF_TOKEN_DEFAULT_S	1800	/* a token without expires_in */
#define BF_STATE_MAX		(64 * 1024 * 1024)
#define BF_KEY_SEP		'\x1f'
#define BF_BODY_CAP		4096	/* a sign-in body, printed */
#define BF_SAVE_US		(5LL * 1000 * 1000)

/* ---- a set of strings (open addressing) ------------------------------ */

struct strset {
	char	**slot;
	size_t	  cap, n;	/* cap: a power of two, or 0 */
};

static uint64_t
fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static void
strset_clear(struct strset *ss)
{
	for (size_t i = 0; i < ss->cap; i++)
		free(ss->slot[i]);
	free(ss->slot);
	memset(ss, 0, sizeof(*ss));
}

static bool
strset_has(const struct strset *ss, const char *s)
{
	if (ss->cap == 0)
		return false;
	for (size_t i = fnv(s) & (ss->cap - 1);; i = (i + 1) & (ss->cap - 1)) {
		if (ss->slot[i] == NULL)
			return false;
		if (strcmp(ss->slot[i], s) == 0)
			return true;
	}
}

/* Takes s (owned) unless it is already there (then freed). */
static int
strset_put(struct strset *ss, char *s)
{
	size_t i;

	if (ss->n + 1 > ss->cap / 2) {
		struct strset big = { NULL, ss->cap ? ss->cap * 2 : 64, 0 };

		if ((big.slot = calloc(big.cap, sizeof(char *))) == NULL) {
			free(s);
			return W2K_ENOMEM;
		}
		for (size_t k = 0; k < ss->cap; k++) {
			if (ss->slot[k] == NULL)
				continue;
			for (i = fnv(ss->slot[k]) & (big.cap - 1);
			    big.slot[i] != NULL; i = (i + 1) & (big.cap - 1))
				;
			big.slot[i] = ss->slot[k];
			big.n++;
		}
		free(ss->slot);
		*ss = big;
	}
	for (i = fnv(s) & (ss->cap - 1); ss->slot[i] != NULL;
	    i = (i + 1) & (ss->cap - 1))
		if (strcmp(ss->slot[i], s) == 0) {
			free(s);
			return 0;
		}
	ss->slot[i] = s;
	ss->n++;
	return 0;
}

/* ---- state ------------------------------------------------------------ */

struct live_ent {
	int64_t	 ts;		/* Unix s the live CDR arrived */
	char	*tenant, *session, *cdr;	/* owned; "" when none */
};

enum req_kind { RQ_NONE, RQ_SIGNIN, RQ_LOGIN_POST, RQ_LOGIN_GET, RQ_REFRESH,
	RQ_PAGE };

enum flavor { FL_UNKNOWN, FL_SIGNIN, FL_LEGACY };

struct backfill {
	const struct cfg_pbx	*pc;	/* borrowed */
	struct pbx		*p;	/* borrowed */
	const struct backfill_env *env;	/* borrowed */
	struct lws_vhost	*vhost;
	char			*state_path, *journal_path, *journal_old;
	int			 journal_fd;
	/*
	 * The writer thread: the loop hands it a snapshot of the state (the
	 * JSON text) and it writes tmp + fsync + rename + fsync(dir), so no
	 * fsync ever runs on the event loop. At each snapshot the loop
	 * renames the journal to journal_old and starts a new one; the
	 * thread removes journal_old once a snapshot holding its entries is
	 * durable and no newer one is waiting.
	 */
	pthread_t		 wr_thread;
	pthread_mutex_t		 wr_mu;
	pthread_cond_t		 wr_cv;
	char			*wr_text;	/* pending snapshot, owned */
	bool			 wr_quit, wr_running, wr_busy, wr_init;
	bool			 stopping, started, killed;
	uint64_t		 connects;	/* the session's, last tick */
	lws_sorted_usec_list_t	 sul_tick, sul_work;

	/* gap bookkeeping (persisted) */
	int64_t			 last_live;	/* Unix s; 0: never live */
	bool			 live;		/* now (not persisted) */
	int64_t			 open_from;	/* open gap since; 0: none */
	struct backfill_gap	 gaps[BACKFILL_MAX_GAPS];
	size_t			 ngaps;
	char			*tenant;	/* cfg's, or learned */
	bool			 dirty, gaps_dirty, pruned_dirty;
	int64_t			 saved_live;
	int64_t			 saved_at_us;	/* mono: the last save */

	/* the index of live CDRs, oldest first (a ring) */
	struct live_ent		*idx;
	size_t			 idx_head, idx_n, idx_cap;
	struct strset		 idx_set;	/* keys of idx */
	bool			 idx_pruned;	/* idx_set must be rebuilt */
	bool			 idx_full_logged, tenant_logged;

	/* the gap being read */
	bool			 working;
	struct backfill_gap	 cur;
	unsigned		 skip, pass, top;
	char			 prev_first[RESTMAP_ID_MAX + 1];
	int64_t			 pass_count;	/* count at the pass's start */
	struct strset		 seen;		/* row ids of this gap */
	uint64_t		 rows, published, skipped_live, nreq;
	bool			 use_cdrs;	/* /api/calllogs is 404 */
	enum flavor		 flavor;

	/* the token */
	char			*token, *refresh;	/* secret */
	int64_t			 token_exp;	/* mono µs */
	char			*cookie;	/* legacy login; secret */

	/* requests */
	struct lws		*wsi;
	enum req_kind		 kind;
	char			 path[2048];
	char			*body;		/* POST body (secret) */
	size_t			 body_len;
	char			*resp;
	size_t			 resp_len, resp_cap;
	bool			 resp_over, completed;
	int			 status;
	char			 conn_err[200];	/* the last connect error */
	int64_t			 retry_after_s;
	int64_t			 next_req_us;	/* mono: rate limit */
	int64_t			 req_start_us;
	struct backoff		 bo;
	unsigned		 unauthorized;	/* 401s in a row */
	int64_t			 last_err_log_us;

	struct backfill_stats	 stats;
};

static const char *const status_names[] = {
	[BF_ST_2XX] = "2xx", [BF_ST_401] = "401", [BF_ST_404] = "404",
	[BF_ST_429] = "429", [BF_ST_4XX] = "4xx", [BF_ST_5XX] = "5xx",
	[BF_ST_ERROR] = "error",
};

const char *
backfill_status_name(enum backfill_status st)
{
	return (unsigned)st < BF_ST_COUNT ? status_names[st] : "?";
}

static int64_t
margin_s(void)
{
#ifdef W2K_TESTING
	/* Tests only: a minute per gap edge would make them slow. */
	const char *e = getenv("W2K_TEST_BACKFILL_MARGIN_S");

	if (e != NULL && atoi(e) > 0)
		return atoi(e);
#endif
	return BACKFILL_MARGIN_S;
}

static unsigned
page_top(void)
{
#ifdef W2K_TESTING
	/* Tests only: paging through 100-row pages needs many calls. */
	const char *e = getenv("W2K_TEST_BACKFILL_TOP");

	if (e != NULL && atoi(e) > BACKFILL_OVERLAP && atoi(e) <= 100)
		return (unsigned)atoi(e);
#endif
	return BACKFILL_TOP;
}

static int64_t
now_s(void)
{
	return w2k_now_us() / 1000000;
}

static void
wipe_free(char **s)
{
	if (*s != NULL)
		explicit_bzero(*s, strlen(*s));
	free(*s);
	*s = NULL;
}

/* ---- pure parts ------------------------------------------------------- */

size_t
backfill_gaps_add(struct backfill_gap *g, size_t n, size_t cap,
    int64_t from, int64_t to)
{
	size_t i, j;

	if (to <= from || cap == 0)
		return n;
	/* Insert in order of start. */
	for (i = 0; i < n && g[i].from <= from; i++)
		;
	if (n == cap) {
		/* Full: merge the two closest neighbours to make room. */
		size_t best = 0;
		int64_t d = INT64_MAX;

		for (j = 0; j + 1 < n; j++)
			if (g[j + 1].from - g[j].to < d) {
				d = g[j + 1].from - g[j].to;
				best = j;
			}
		if (n >= 2) {
			if (g[best + 1].to > g[best].to)
				g[best].to = g[best + 1].to;
			memmove(&g[best + 1], &g[best + 2],
			    (n - best - 2) * sizeof(*g));
			n--;
		} else {
			if (from < g[0].from)
				g[0].from = from;
			if (to > g[0].to)
				g[0].to = to;
			return 1;
		}
		for (i = 0; i < n && g[i].from <= from; i++)
			;
	}
	memmove(&g[i + 1], &g[i], (n - i) * sizeof(*g));
	g[i].from = from;
	g[i].to = to;
	n++;
	/* Merge what now overlaps or touches. */
	for (j = 0; j + 1 < n;) {
		if (g[j + 1].from <= g[j].to) {
			if (g[j + 1].to > g[j].to)
				g[j].to = g[j + 1].to;
			memmove(&g[j + 1], &g[j + 2],
			    (n - j - 2) * sizeof(*g));
			n--;
		} else {
			j++;
		}
	}
	return n;
}

enum backfill_verdict
backfill_judge(const struct restmap_row *row, const struct backfill_gap *gap,
    bool live_seen, bool row_seen)
{
	if (row_seen)
		return BF_SKIP_SEEN;
	/* A blank ended_at: the call has not ended (or the row is broken). */
	if (row->ended <= 0 || row->ended < gap->from || row->ended >= gap->to)
		return BF_SKIP_OUTSIDE;
	if (live_seen)
		return BF_SKIP_LIVE;
	return BF_PUBLISH;
}

int
backfill_query(char *buf, size_t len, const struct backfill_gap *gap,
    int64_t max_call_duration, unsigned top, unsigned skip)
{
	char a[32], b[32];
	int w;

	restmap_fmt_time(gap->from - max_call_duration, a, sizeof(a));
	restmap_fmt_time(gap->to, b, sizeof(b));
	/* filter=started_at ge 'A' and started_at lt 'B' */
	w = snprintf(buf, len, "filter=started_at%%20ge%%20%%27%s%%27%%20and"
	    "%%20started_at%%20lt%%20%%27%s%%27&orderby=started_at%%20asc"
	    "&top=%u&skip=%u", a, b, top, skip);
	return w > 0 && (size_t)w < len ? 0 : W2K_EINVAL;
}

/* ---- the live index --------------------------------------------------- */

static char *
index_key(const char *tenant, char kind, const char *id)
{
	char *k;

	if (asprintf(&k, "%c%s%c%s", kind, tenant, BF_KEY_SEP, id) < 0)
		return NULL;
	return k;
}

static void
idx_ent_free(struct live_ent *e)
{
	free(e->tenant);
	free(e->session);
	free(e->cdr);
	memset(e, 0, sizeof(*e));
}

static struct live_ent *
idx_at(struct backfill *b, size_t i)
{
	return &b->idx[(b->idx_head + i) % b->idx_cap];
}

static int
idx_set_add(struct backfill *b, const struct live_ent *e)
{
	char *k;

	if (e->session[0] != '\0') {
		if ((k = index_key(e->tenant, 's', e->session)) == NULL ||
		    strset_put(&b->idx_set, k) != 0)
			return W2K_ENOMEM;
	}
	if (e->cdr[0] != '\0') {
		if ((k = index_key(e->tenant, 'c', e->cdr)) == NULL ||
		    strset_put(&b->idx_set, k) != 0)
			return W2K_ENOMEM;
	}
	return 0;
}

/* Takes the strings of e. */
static int
idx_add(struct backfill *b, struct live_ent *e)
{
	if (b->idx_n == b->idx_cap) {
		size_t ncap = b->idx_cap ? b->idx_cap * 2 : 256;
		struct live_ent *n;

		if (b->idx_cap >= BACKFILL_INDEX_MAX) {
			/* Full: the oldest goes (logged once). */
			if (!b->idx_full_logged) {
				log_warn("pbx %s: backfill: the index of live "
				    "CDRs is full (%d); the oldest are "
				    "forgotten: a gap reaching back to them "
				    "may publish such a call again",
				    b->pc->name, BACKFILL_INDEX_MAX);
				b->idx_full_logged = true;
			}
			idx_ent_free(idx_at(b, 0));
			b->idx_head = (b->idx_head + 1) % b->idx_cap;
			b->idx_n--;
			b->idx_pruned = true;
		} else {
			if ((n = calloc(ncap, sizeof(*n))) == NULL) {
				idx_ent_free(e);
				return W2K_ENOMEM;
			}
			for (size_t i = 0; i < b->idx_n; i++)
				n[i] = *idx_at(b, i);
			free(b->idx);
			b->idx = n;
			b->idx_cap = ncap;
			b->idx_head = 0;
		}
	}
	*idx_at(b, b->idx_n++) = *e;
	b->dirty = true;
	return idx_set_add(b, e);
}

static bool
idx_has(struct backfill *b, const struct restmap_row *row)
{
	char *k;
	bool has;

	if (b->tenant == NULL)
		return false;
	if (b->idx_pruned) {
		strset_clear(&b->idx_set);
		for (size_t i = 0; i < b->idx_n; i++)
			(void)idx_set_add(b, idx_at(b, i));
		b->idx_pruned = false;
	}
	/* /calllogs rows: (tenant, session_id); /cdrs rows have none: their
	 * id stands for the live cdr_id (portsip-rest-cdr.md §3). */
	if (row->session_id[0] != '\0')
		k = index_key(b->tenant, 's', row->session_id);
	else
		k = index_key(b->tenant, 'c', row->id);
	if (k == NULL)
		return false;
	has = strset_has(&b->idx_set, k);
	free(k);
	return has;
}

/*
 * Entries older than any gap may need: the earliest pending gap's start
 * (or the last live time) minus a margin, less a minute of clock slack.
 */
static void
idx_prune(struct backfill *b)
{
	int64_t keep = b->last_live;

	if (b->open_from != 0 && b->open_from < keep)
		keep = b->open_from;
	if (b->ngaps > 0 && b->gaps[0].from < keep)
		keep = b->gaps[0].from;
	if (b->working && b->cur.from < keep)
		keep = b->cur.from;
	keep -= 2 * margin_s() + 60;
	while (b->idx_n > 0 && idx_at(b, 0)->ts < keep) {
		idx_ent_free(idx_at(b, 0));
		b->idx_head = (b->idx_head + 1) % b->idx_cap;
		b->idx_n--;
		b->idx_pruned = true;
		b->pruned_dirty = true;
	}
}

/* ---- persistence ------------------------------------------------------ */

static cJSON *
state_json(const struct backfill *b)
{
	cJSON *o = cJSON_CreateObject(), *g, *ix;

	if (o == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "version", 1);
	cJSON_AddStringToObject(o, "pbx", b->pc->name);
	cJSON_AddNumberToObject(o, "last_live", (double)b->last_live);
	if (b->tenant != NULL)
		cJSON_AddStringToObject(o, "tenant_id", b->tenant);
	if ((g = cJSON_AddArrayToObject(o, "gaps")) == NULL)
		goto fail;
	/* The gap being read stays in the list until it is done. */
	for (size_t i = 0; i < b->ngaps; i++) {
		cJSON *e = cJSON_CreateArray();

		if (e == NULL)
			goto fail;
		cJSON_AddItemToArray(g, e);
		cJSON_AddItemToArray(e, cJSON_CreateNumber(
		    (double)b->gaps[i].from));
		cJSON_AddItemToArray(e, cJSON_CreateNumber(
		    (double)b->gaps[i].to));
	}
	if ((ix = cJSON_AddArrayToObject(o, "index")) == NULL)
		goto fail;
	for (size_t i = 0; i < b->idx_n; i++) {
		const struct live_ent *le = &b->idx[(b->idx_head + i) %
		    b->idx_cap];
		cJSON *e = cJSON_CreateArray();

		if (e == NULL)
			goto fail;
		cJSON_AddItemToArray(ix, e);
		cJSON_AddItemToArray(e, cJSON_CreateNumber((double)le->ts));
		cJSON_AddItemToArray(e, cJSON_CreateString(le->tenant));
		cJSON_AddItemToArray(e, cJSON_CreateString(le->session));
		cJSON_AddItemToArray(e, cJSON_CreateString(le->cdr));
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return W2K_EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The writer thread's one job: a snapshot on disk, durably. */
static int
state_write(const char *path, const char *text)
{
	char tmp[4096], dir[4096], *slash;
	int fd, dfd, r = W2K_EIO;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && write_all(fd, text, strlen(text)) == 0 &&
	    fsync(fd) == 0 && close(fd) == 0) {
		fd = -1;
		if (rename(tmp, path) == 0)
			r = 0;
	}
	if (fd >= 0)
		close(fd);
	snprintf(dir, sizeof(dir), "%s", path);
	if (r == 0 && (slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			if (fsync(dfd) != 0)
				r = W2K_EIO;
			close(dfd);
		}
	}
	return r;
}

static void *
writer_main(void *arg)
{
	struct backfill *b = arg;
	char *text;
	int r;

	pthread_mutex_lock(&b->wr_mu);
	for (;;) {
		while (b->wr_text == NULL && !b->wr_quit)
			pthread_cond_wait(&b->wr_cv, &b->wr_mu);
		if (b->wr_text == NULL)
			break;		/* quit, nothing left to write */
		text = b->wr_text;
		b->wr_text = NULL;
		b->wr_busy = true;
		pthread_mutex_unlock(&b->wr_mu);
		r = state_write(b->state_path, text);
		/* Not b->pc->name: a reload may free pc meanwhile; the
		 * path (immutable, ours) names the PBX. */
		if (r != 0)
			log_err("backfill: cannot write %s: %s", b->state_path,
			    strerror(errno));
		free(text);
		pthread_mutex_lock(&b->wr_mu);
		b->wr_busy = false;
		/* journal_old was rotated at this snapshot or before one
		 * (see state_save()): its entries are on disk now. Not
		 * written: it stays. */
		if (r == 0)
			(void)unlink(b->journal_old);
		pthread_cond_broadcast(&b->wr_cv);
	}
	pthread_mutex_unlock(&b->wr_mu);
	return NULL;
}

/*
 * A snapshot for the writer thread. The journal is rotated with it: its
 * entries are in the snapshot, and journal_old stays until a snapshot is
 * durable (a crash before leaves both on disk: a set, no harm).
 */
static int
state_save(struct backfill *b)
{
	char *text;
	cJSON *o;

	if ((o = state_json(b)) == NULL)
		return W2K_ENOMEM;
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (text == NULL)
		return W2K_ENOMEM;
	/*
	 * Rotated under the lock, and only when no journal_old is left: one
	 * that is still there belongs to a snapshot not yet on disk, and
	 * must not be replaced. Its successor then keeps growing; its
	 * entries are in this snapshot too (a set: repeats do no harm). So
	 * a journal_old always predates the snapshot the writer finishes,
	 * which may then remove it.
	 */
	if (b->wr_running)
		pthread_mutex_lock(&b->wr_mu);
	if (b->journal_fd >= 0 && access(b->journal_old, F_OK) != 0) {
		close(b->journal_fd);
		if (rename(b->journal_path, b->journal_old) != 0)
			log_warn("pbx %s: backfill: cannot rename %s: %s",
			    b->pc->name, b->journal_path, strerror(errno));
		b->journal_fd = open(b->journal_path, O_WRONLY | O_CREAT |
		    O_APPEND | O_CLOEXEC, 0600);
		if (b->journal_fd < 0)
			log_err("pbx %s: backfill: cannot open %s: %s",
			    b->pc->name, b->journal_path, strerror(errno));
	}
	if (b->wr_running) {
		free(b->wr_text);	/* superseded */
		b->wr_text = text;
		pthread_cond_signal(&b->wr_cv);
		pthread_mutex_unlock(&b->wr_mu);
	} else {
		/* No thread (it could not start): write here, once. */
		int r = state_write(b->state_path, text);

		free(text);
		if (r != 0)
			log_err("pbx %s: backfill: cannot write %s: %s",
			    b->pc->name, b->state_path, strerror(errno));
		else
			(void)unlink(b->journal_old);
	}
	b->dirty = b->gaps_dirty = b->pruned_dirty = false;
	b->saved_live = b->last_live;
	b->saved_at_us = w2k_mono_us();
	return 0;
}

/* Wait until every snapshot handed over is on disk (stop, free). */
static void
writer_drain(struct backfill *b)
{
	if (!b->wr_running)
		return;
	pthread_mutex_lock(&b->wr_mu);
	while (b->wr_text != NULL || b->wr_busy)
		pthread_cond_wait(&b->wr_cv, &b->wr_mu);
	pthread_mutex_unlock(&b->wr_mu);
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
	    n <= BF_STATE_MAX && fseek(fp, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		*len = fread(buf, 1, (size_t)n, fp);
		buf[*len] = '\0';
	}
	fclose(fp);
	return buf;
}

static char *
dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static void
add_entry(struct backfill *b, int64_t ts, const char *t, const char *s,
    const char *c)
{
	struct live_ent e = { ts, dup_or_empty(t), dup_or_empty(s),
	    dup_or_empty(c) };

	if (e.tenant == NULL || e.session == NULL || e.cdr == NULL) {
		idx_ent_free(&e);
		return;
	}
	(void)idx_add(b, &e);
}

static void
state_load(struct backfill *b)
{
	size_t len = 0;
	char *text = read_file(b->state_path, &len), *line, *save = NULL;
	cJSON *o = NULL, *v;

	if (text == NULL) {
		if (errno != ENOENT)
			log_err("pbx %s: backfill: cannot read %s: %s",
			    b->pc->name, b->state_path, strerror(errno));
		else
			log_info("pbx %s: backfill: no state yet (%s): gaps "
			    "are counted from the first live CDR "
			    "subscription on", b->pc->name, b->state_path);
	} else if ((o = cJSON_ParseWithLength(text, len)) == NULL ||
	    !cJSON_IsObject(o)) {
		log_err("pbx %s: backfill: %s is damaged: started afresh (a "
		    "gap before now is not read)", b->pc->name,
		    b->state_path);
	} else {
		v = cJSON_GetObjectItemCaseSensitive(o, "last_live");
		if (cJSON_IsNumber(v) && v->valuedouble > 0)
			b->last_live = (int64_t)v->valuedouble;
		v = cJSON_GetObjectItemCaseSensitive(o, "tenant_id");
		if (b->tenant == NULL && cJSON_IsString(v))
			b->tenant = strdup(v->valuestring);
		v = cJSON_GetObjectItemCaseSensitive(o, "gaps");
		for (cJSON *e = cJSON_IsArray(v) ? v->child : NULL; e != NULL;
		    e = e->next) {
			cJSON *f = cJSON_GetArrayItem(e, 0);
			cJSON *t = cJSON_GetArrayItem(e, 1);

			if (cJSON_IsNumber(f) && cJSON_IsNumber(t))
				b->ngaps = backfill_gaps_add(b->gaps, b->ngaps,
				    BACKFILL_MAX_GAPS, (int64_t)f->valuedouble,
				    (int64_t)t->valuedouble);
		}
		v = cJSON_GetObjectItemCaseSensitive(o, "index");
		for (cJSON *e = cJSON_IsArray(v) ? v->child : NULL; e != NULL;
		    e = e->next) {
			cJSON *ts = cJSON_GetArrayItem(e, 0);

			if (cJSON_IsNumber(ts))
				add_entry(b, (int64_t)ts->valuedouble,
				    cJSON_GetStringValue(cJSON_GetArrayItem(e,
				    1)), cJSON_GetStringValue(
				    cJSON_GetArrayItem(e, 2)),
				    cJSON_GetStringValue(cJSON_GetArrayItem(e,
				    3)));
		}
	}
	cJSON_Delete(o);
	free(text);

	/* The journals: entries written since the state (a torn last line
	 * is ignored), the rotated one first. */
	for (int j = 0; j < 2; j++) {
		if ((text = read_file(j == 0 ? b->journal_old :
		    b->journal_path, &len)) == NULL)
			continue;
		for (line = strtok_r(text, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save)) {
			char *f[4], *sp = NULL;
			int nf = 0;

			for (char *t = strtok_r(line, "\t", &sp);
			    t != NULL && nf < 4; t = strtok_r(NULL, "\t", &sp))
				f[nf++] = t;
			if (nf == 4 && f[3][0] == '=')	/* the end mark */
				add_entry(b, strtoll(f[0], NULL, 10),
				    f[1][0] == '-' ? "" : f[1],
				    f[2][0] == '-' ? "" : f[2],
				    f[3][1] == '\0' ? "" : f[3] + 1);
		}
		free(text);
	}
	if (b->last_live > 0) {
		/* Stopped or killed: a gap from the last live moment. */
		b->open_from = b->last_live;
		log_info("pbx %s: backfill: CDRs not live since %" PRId64
		    " (%" PRId64 " s ago), %zu gap%s waiting, %zu live CDR%s "
		    "indexed", b->pc->name, b->last_live,
		    now_s() - b->last_live, b->ngaps, b->ngaps == 1 ? "" : "s",
		    b->idx_n, b->idx_n == 1 ? "" : "s");
	}
	b->saved_live = b->last_live;
}

/* ---- the worker -------------------------------------------------------- */

static void work_cb(lws_sorted_usec_list_t *sul);
static int req_start(struct backfill *b, enum req_kind kind);

static uint32_t
bf_rand(void *ctx)
{
	struct backfill *b = ctx;
	uint32_t r = 0;

	if (lws_get_random(b->env->context, &r, sizeof(r)) != sizeof(r))
		r = (uint32_t)w2k_mono_us();	/* jitter only */
	return r;
}

/* The next request, no earlier than the rate limit allows. */
static void
work_schedule(struct backfill *b, int64_t delay_us)
{
	int64_t now = w2k_mono_us(), at = now + delay_us;

	if (at < b->next_req_us)
		at = b->next_req_us;
	lws_sul_schedule(b->env->context, 0, &b->sul_work, work_cb,
	    at - now > 0 ? at - now : 1);
}

/* Transient failure: the same step again after a backoff (or Retry-After). */
static void
work_retry(struct backfill *b, const char *what)
{
	int64_t d = backoff_next(&b->bo, false, bf_rand, b);

	if (b->retry_after_s > 0)
		d = (b->retry_after_s > BF_RETRY_MAX_S ? BF_RETRY_MAX_S :
		    b->retry_after_s) * 1000000;
	/* One line a minute at most: a 429 storm must not flood the log. */
	if (w2k_mono_us() - b->last_err_log_us >= 60LL * 1000000 ||
	    b->last_err_log_us == 0) {
		log_warn("pbx %s: backfill: %s; retrying in %.1f s",
		    b->pc->name, what, (double)d / 1e6);
		b->last_err_log_us = w2k_mono_us();
	} else {
		log_debug("pbx %s: backfill: %s; retrying in %.1f s",
		    b->pc->name, what, (double)d / 1e6);
	}
	work_schedule(b, d);
}

static void
token_drop(struct backfill *b)
{
	wipe_free(&b->token);
	wipe_free(&b->refresh);
	wipe_free(&b->cookie);
	b->token_exp = 0;
}

static void
gap_log(struct backfill *b)
{
	char a[32], z[32];

	restmap_fmt_time(b->cur.from, a, sizeof(a));
	restmap_fmt_time(b->cur.to, z, sizeof(z));
	log_notice("pbx %s: backfill: gap %s - %s (%" PRId64 " s): %" PRIu64
	    " rows read, %" PRIu64 " published, %" PRIu64 " skipped as "
	    "already live (%" PRIu64 " requests, %u pass%s, %s)", b->pc->name,
	    a, z, b->cur.to - b->cur.from, b->rows, b->published,
	    b->skipped_live, b->nreq, b->pass + 1, b->pass ? "es" : "",
	    b->use_cdrs ? "/api/cdrs" : "/api/calllogs");
}

static void
gap_done(struct backfill *b)
{
	gap_log(b);
	b->stats.gaps_done++;
	/* Remove exactly what was read (other gaps may have merged in). */
	for (size_t i = 0; i < b->ngaps; i++)
		if (b->gaps[i].from == b->cur.from &&
		    b->gaps[i].to == b->cur.to) {
			memmove(&b->gaps[i], &b->gaps[i + 1],
			    (b->ngaps - i - 1) * sizeof(b->gaps[0]));
			b->ngaps--;
			break;
		}
	b->working = false;
	strset_clear(&b->seen);
	b->gaps_dirty = b->dirty = true;
	(void)state_save(b);
}

/* Pick the next ready gap. */
static bool
gap_begin(struct backfill *b)
{
	int64_t now = now_s();
	const struct cfg_backfill *bc = &b->pc->backfill;

	if (b->ngaps == 0 || b->gaps[0].to > now)
		return false;
	if (b->tenant == NULL) {
		if (!b->tenant_logged)
			log_warn("pbx %s: backfill: a gap waits until the tenant "
			    "id is known: from the first live CDR, or set "
			    "backfill.tenant_id", b->pc->name);
		b->tenant_logged = true;
		return false;
	}
	b->cur = b->gaps[0];
	if (b->cur.to - b->cur.from > bc->max_gap) {
		char a[32];

		restmap_fmt_time(b->cur.from, a, sizeof(a));
		log_warn("pbx %s: backfill: the gap from %s lasted %" PRId64
		    " s, more than max_gap (%" PRId64 " s): only its last %"
		    PRId64 " s are read", b->pc->name, a,
		    b->cur.to - b->cur.from, bc->max_gap, bc->max_gap);
		b->gaps[0].from = b->cur.from = b->cur.to - bc->max_gap;
		b->gaps_dirty = true;
	}
	b->working = true;
	b->skip = b->pass = 0;
	b->pass_count = -1;
	b->rows = b->published = b->skipped_live = b->nreq = 0;
	b->top = page_top();
	strset_clear(&b->seen);
	return true;
}

static void
work_cb(lws_sorted_usec_list_t *sul)
{
	struct backfill *b = lws_container_of(sul, struct backfill, sul_work);
	int64_t now = w2k_mono_us();
	enum req_kind k;

	if (b->stopping || b->wsi != NULL)
		return;
	if (!b->working && !gap_begin(b))
		return;		/* the tick calls again */
	if (b->token == NULL)
		k = b->flavor == FL_LEGACY ? RQ_LOGIN_POST : RQ_SIGNIN;
	else if (now >= b->token_exp)
		k = b->refresh != NULL ? RQ_REFRESH : b->flavor == FL_LEGACY ?
		    RQ_LOGIN_POST : RQ_SIGNIN;
	else
		k = RQ_PAGE;
	if (k != RQ_PAGE && k != RQ_REFRESH)
		token_drop(b);
	if (req_start(b, k) != 0)
		work_retry(b, "cannot start a request");
}

static void
work_kick(struct backfill *b)
{
	if (!b->stopping && b->wsi == NULL &&
	    !lws_dll2_is_detached(&b->sul_work.list))
		return;		/* already scheduled */
	if (!b->stopping && b->wsi == NULL)
		work_schedule(b, 0);
}

/* ---- answers ----------------------------------------------------------- */

static void
take_token(struct backfill *b, struct restmap_token *t)
{
	int64_t life = t->expires_in;

	if (life <= 0 && t->expires_at > 0)
		life = t->expires_at - now_s();
	if (life <= 0)
		life = BF_TOKEN_DEFAULT_S;
	token_drop(b);
	b->token = t->access_token;
	b->refresh = t->refresh_token;
	t->access_token = t->refresh_token = NULL;
	/* Refresh a minute early, or at half the lifetime of a short one. */
	b->token_exp = w2k_mono_us() + (life > 2 * BF_TOKEN_SLACK_S ?
	    life - BF_TOKEN_SLACK_S : life / 2) * 1000000;
	b->unauthorized = 0;
}

static void
publish_row(struct backfill *b, const cJSON *row)
{
	const struct route_table *rt = *b->env->routes;
	struct norm_result res;
	const char *topic;
	int r;

	r = restmap_record(b->pc->name, b->tenant, row, w2k_now_us(), &res);
	if (r != 0 || res.nrecs != 1) {
		log_warn("pbx %s: backfill: a row could not be made a "
		    "record (%s)", b->pc->name, r == W2K_ENOMEM ?
		    "out of memory" : "not a CDR");
		norm_result_clear(&res);
		return;
	}
	if ((topic = route_lookup(rt, "call_cdr")) == NULL)
		topic = *b->env->dead_letter_topic;
	if ((res.recs[0].topic = strdup(topic)) != NULL) {
		b->env->emit(b->env->emit_ctx, &res.recs[0]);
		b->published++;
		b->stats.records++;
	}
	norm_result_clear(&res);
}

static void
page_done(struct backfill *b)
{
	struct restmap_page pg;

	if (restmap_page_parse(b->resp, b->resp_len, &pg) != 0) {
		work_retry(b, "the PBX's CDR list is not {\"items\":[...]}");
		return;
	}
	struct restmap_row first;
	bool same_first = false;

	if (b->skip == 0)
		b->pass_count = pg.count;
	/* The same first row as the page before, at another skip: the
	 * server ignores skip. */
	if (pg.nitems > 0 &&
	    restmap_row_info(restmap_page_row(&pg, 0), &first) == 0) {
		same_first = b->skip > 0 && strcmp(first.id, b->prev_first) == 0;
		memcpy(b->prev_first, first.id, sizeof(b->prev_first));
	}
	for (size_t i = 0; i < pg.nitems; i++) {
		const cJSON *row = restmap_page_row(&pg, i);
		struct restmap_row info;
		enum backfill_verdict v;
		char *id;

		if (restmap_row_info(row, &info) != 0) {
			log_debug("pbx %s: backfill: a row without a usable "
			    "id ignored", b->pc->name);
			continue;
		}
		v = backfill_judge(&info, &b->cur, idx_has(b, &info),
		    strset_has(&b->seen, info.id));
		if (v == BF_SKIP_SEEN)
			continue;
		b->rows++;
		if ((id = strdup(info.id)) != NULL)
			(void)strset_put(&b->seen, id);
		if (v == BF_SKIP_LIVE) {
			b->skipped_live++;
			b->stats.skipped_live++;
		} else if (v == BF_PUBLISH) {
			publish_row(b, row);
		}
	}
	backoff_reset(&b->bo);
	/*
	 * A server that ignores top or skip (the parameters are documented
	 * only in prose) must not make us page for ever: more rows than
	 * asked for, or the same page again at another skip, ends the
	 * pass.
	 */
	if (pg.nitems > b->top || same_first) {
		log_warn("pbx %s: backfill: the PBX ignores %s: this pass "
		    "ends here (%" PRIu64 " rows read)", b->pc->name,
		    pg.nitems > b->top ? "top" : "skip", b->rows);
	} else if (pg.nitems >= b->top && b->skip < BF_MAX_SKIP) {
		/* Rows shift while we page: the next page repeats the last
		 * BACKFILL_OVERLAP rows of this one (ids de-duplicate). */
		b->skip += (unsigned)pg.nitems - BACKFILL_OVERLAP;
		restmap_page_free(&pg);
		work_schedule(b, 0);
		return;
	}
	/* The end of a pass. Rows inserted before the point reached would
	 * not be seen: when the total moved, read again (bounded). */
	if (pg.count >= 0 && b->pass_count >= 0 && pg.count != b->pass_count &&
	    b->pass + 1 < BF_MAX_PASSES) {
		log_debug("pbx %s: backfill: %" PRId64 " rows became %" PRId64
		    " while paging: reading the gap again", b->pc->name,
		    b->pass_count, pg.count);
		b->pass++;
		b->skip = 0;
		restmap_page_free(&pg);
		work_schedule(b, 0);
		return;
	}
	restmap_page_free(&pg);
	gap_done(b);
	work_schedule(b, 0);
}

static enum backfill_status
status_class(int st)
{
	if (st >= 200 && st < 300)
		return BF_ST_2XX;
	if (st == 401)
		return BF_ST_401;
	if (st == 404)
		return BF_ST_404;
	if (st == 429)
		return BF_ST_429;
	if (st >= 500 && st < 600)
		return BF_ST_5XX;
	if (st > 0)
		return BF_ST_4XX;
	return BF_ST_ERROR;
}

static const char *
kind_name(enum req_kind k)
{
	switch (k) {
	case RQ_SIGNIN:		return "sign-in";
	case RQ_LOGIN_POST:	return "login";
	case RQ_LOGIN_GET:	return "login (GET)";
	case RQ_REFRESH:	return "token refresh";
	case RQ_PAGE:		return "CDR query";
	default:		return "request";
	}
}

/* A complete answer (or none: status 0). */
static void
req_done(struct backfill *b)
{
	enum req_kind k = b->kind;
	int st = b->status;
	struct restmap_token t;
	char what[400];

	b->stats.requests[status_class(st)]++;
	b->nreq++;
	log_debug("pbx %s: backfill: %s -> %d (%zu bytes)", b->pc->name,
	    kind_name(k), st, b->resp_len);
	if (b->stopping)
		return;
	if (st == 0 || st == 429 || st >= 500 || b->resp_over) {
		const char *ce = b->conn_err;

		if (st == 0)
			snprintf(what, sizeof(what), "%s: no answer from %s%s%s%s",
			    kind_name(k), b->pc->backfill.url.text,
			    *ce ? " (" : "", ce, *ce ? ")" : "");
		else if (st >= 500)
			snprintf(what, sizeof(what), "%s: HTTP %d", kind_name(k), st);
		else
			snprintf(what, sizeof(what), "%s: %s", kind_name(k),
			    b->resp_over ? "answer too large" :
			    "429 Too Many Requests");
		work_retry(b, what);
		return;
	}
	switch (k) {
	case RQ_SIGNIN:
	case RQ_LOGIN_POST:
		if ((st == 404 || st == 405) && k == RQ_SIGNIN) {
			/* v22.2.11 and later have /api/auth/sign_in, older
			 * ones /api/login: the answer tells which. */
			b->flavor = FL_LEGACY;
			log_info("pbx %s: backfill: /api/auth/sign_in answered "
			    "%d: trying /api/login (before v22.2.11)",
			    b->pc->name, st);
			work_schedule(b, 0);
			return;
		}
		if (st == 404 || st == 405) {
			/* Neither: not the REST API. From the top, slowly. */
			b->flavor = FL_SIGNIN;
			log_err("pbx %s: backfill: neither /api/auth/sign_in "
			    "nor /api/login at %s (HTTP %d): is backfill.url "
			    "the REST API (https://HOST:8887/api)?",
			    b->pc->name, b->pc->backfill.url.text, st);
			work_schedule(b, backoff_next(&b->bo, true, bf_rand, b));
			return;
		}
		if (st != 200 && st != 201) {
			log_err("pbx %s: backfill: %s rejected by %s (HTTP "
			    "%d): check backfill.username/password/domain "
			    "(a tenant admin without two-factor "
			    "authentication)", b->pc->name, kind_name(k),
			    b->pc->backfill.url.text, st);
			work_schedule(b, backoff_next(&b->bo, true, bf_rand, b));
			return;
		}
		if (k == RQ_SIGNIN)
			b->flavor = FL_SIGNIN;
		if (restmap_token_parse(b->resp, b->resp_len, &t) == 0 &&
		    t.two_factor) {
			log_err("pbx %s: backfill: the REST account has "
			    "two-factor authentication: use one without",
			    b->pc->name);
			restmap_token_clear(&t);
			work_schedule(b, backoff_next(&b->bo, true, bf_rand, b));
			return;
		}
		if (t.access_token != NULL) {
			take_token(b, &t);
			restmap_token_clear(&t);
			work_schedule(b, 0);
			return;
		}
		restmap_token_clear(&t);
		if (k == RQ_LOGIN_POST) {
			/* v22.0/22.1: the token comes from GET /api/login. */
			if (req_start(b, RQ_LOGIN_GET) != 0)
				work_retry(b, "cannot start a request");
			return;
		}
		work_retry(b, "sign-in answered without a token");
		return;
	case RQ_LOGIN_GET:
	case RQ_REFRESH:
		if (st == 200 && restmap_token_parse(b->resp, b->resp_len,
		    &t) == 0 && t.access_token != NULL) {
			take_token(b, &t);
			restmap_token_clear(&t);
			work_schedule(b, 0);
			return;
		}
		if (st == 200)
			restmap_token_clear(&t);
		/* Sign in from scratch. */
		log_info("pbx %s: backfill: %s failed (HTTP %d): signing in "
		    "again", b->pc->name, kind_name(k), st);
		token_drop(b);
		work_schedule(b, k == RQ_REFRESH ? 0 :
		    backoff_next(&b->bo, false, bf_rand, b));
		return;
	case RQ_PAGE:
		if (st == 401) {
			/* Expired or revoked: sign in again (a few times in
			 * a row at once, then with backoff). */
			token_drop(b);
			log_info("pbx %s: backfill: the token was refused "
			    "(401): signing in again", b->pc->name);
			work_schedule(b, ++b->unauthorized <= 2 ? 0 :
			    backoff_next(&b->bo, false, bf_rand, b));
			return;
		}
		if (st == 404 && !b->use_cdrs) {
			log_info("pbx %s: backfill: /api/calllogs answered "
			    "404: reading /api/cdrs (rows without session_id: "
			    "matched to live CDRs by cdr_id)", b->pc->name);
			b->use_cdrs = true;
			b->skip = 0;
			work_schedule(b, 0);
			return;
		}
		if (st != 200) {
			log_err("pbx %s: backfill: CDR query refused (HTTP "
			    "%d): the REST account must be the tenant's "
			    "Admin or QueueManager", b->pc->name, st);
			work_schedule(b, backoff_next(&b->bo, true, bf_rand, b));
			return;
		}
		page_done(b);
		return;
	default:
		return;
	}
}

/* ---- HTTP client -------------------------------------------------------- */

static int bf_callback(struct lws *, enum lws_callback_reasons, void *,
    void *, size_t);

static const struct lws_protocols bf_protocols[] = {
	{ .name = "wsi2kafka-rest", .callback = bf_callback,
	  .rx_buffer_size = 16384 },
	{ .name = NULL }
};

/* The POST body holds the password: all of its buffer is wiped (the
 * LWS_PRE headroom before the text is not a string: no strlen() on it). */
static void
body_free(struct backfill *b)
{
	if (b->body != NULL)
		explicit_bzero(b->body, LWS_PRE + BF_BODY_CAP);
	free(b->body);
	b->body = NULL;
}

static void
req_clear(struct backfill *b)
{
	body_free(b);
	b->body_len = 0;
	free(b->resp);
	b->resp = NULL;
	b->resp_len = b->resp_cap = 0;
	b->resp_over = b->completed = false;
	b->status = 0;
	b->conn_err[0] = '\0';
	b->retry_after_s = 0;
}

static int
json_body(struct backfill *b, cJSON *o)
{
	/* Preallocated, so no realloc leaves the password behind. */
	size_t cap = BF_BODY_CAP;

	if ((b->body = malloc(LWS_PRE + cap)) == NULL)
		return W2K_ENOMEM;
	if (!cJSON_PrintPreallocated(o, b->body + LWS_PRE, (int)cap, false)) {
		explicit_bzero(b->body, LWS_PRE + cap);
		free(b->body);
		b->body = NULL;
		return W2K_EINVAL;
	}
	b->body_len = strlen(b->body + LWS_PRE);
	return 0;
}

static int
req_body(struct backfill *b, enum req_kind k)
{
	const struct cfg_backfill *bc = &b->pc->backfill;
	cJSON *o = cJSON_CreateObject();
	int r = W2K_ENOMEM;

	if (o == NULL)
		return W2K_ENOMEM;
	/* References: the secret is printed once, into the wiped body. */
	if (k == RQ_REFRESH) {
		if (!cJSON_AddItemToObject(o, "refresh_token",
		    cJSON_CreateStringReference(b->refresh)))
			goto out;
	} else if (!cJSON_AddItemToObject(o, "username",
	    cJSON_CreateStringReference(bc->username)) ||
	    !cJSON_AddItemToObject(o, "password",
	    cJSON_CreateStringReference(bc->password ? bc->password : "")) ||
	    (bc->domain != NULL && !cJSON_AddItemToObject(o, "domain",
	    cJSON_CreateStringReference(bc->domain)))) {
		goto out;
	}
	r = json_body(b, o);
out:
	cJSON_Delete(o);
	return r;
}

static int
req_start(struct backfill *b, enum req_kind k)
{
	const struct cfg_backfill *bc = &b->pc->backfill;
	struct lws_client_connect_info i;
	const char *method = "POST", *ep;
	char q[512];
	double rps = bc->requests_per_second;

	req_clear(b);
	b->kind = k;
	switch (k) {
	case RQ_SIGNIN:	ep = "/auth/sign_in"; break;
	case RQ_LOGIN_POST: ep = "/login"; break;
	case RQ_LOGIN_GET: ep = "/login"; method = "GET"; break;
	case RQ_REFRESH: ep = "/auth/refresh_token"; break;
	default:	ep = b->use_cdrs ? "/cdrs" : "/calllogs"; method = "GET";
			break;
	}
	if (k == RQ_PAGE) {
		if (backfill_query(q, sizeof(q), &b->cur,
		    bc->max_call_duration, b->top, b->skip) != 0)
			return W2K_EINVAL;
		snprintf(b->path, sizeof(b->path), "%s%s?%s", bc->url.path, ep,
		    q);
	} else {
		snprintf(b->path, sizeof(b->path), "%s%s", bc->url.path, ep);
	}
	if (strcmp(method, "POST") == 0 && req_body(b, k) != 0)
		return W2K_ENOMEM;

	memset(&i, 0, sizeof(i));
	i.context = b->env->context;
	i.vhost = b->vhost;
	i.address = bc->url.host;
	i.port = bc->url.port;
	i.path = b->path;
	i.host = bc->url.host;
	i.origin = bc->url.host;
	i.method = method;
	i.protocol = bf_protocols[0].name;
	i.local_protocol_name = bf_protocols[0].name;
	i.alpn = "http/1.1";
	i.opaque_user_data = b;
	i.pwsi = &b->wsi;
	/* A redirect would take the token to wherever it points. */
	i.ssl_connection = LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
	if (bc->url.tls) {
		i.ssl_connection |= LCCSCF_USE_SSL;
		if (!b->pc->tls.verify)
			i.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
			    LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
			    LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
	}
	b->req_start_us = w2k_mono_us();
	b->next_req_us = b->req_start_us + (int64_t)(1e6 / rps);
	log_debug("pbx %s: backfill: %s %s", b->pc->name, method,
	    k == RQ_PAGE ? b->path : ep);
	if (lws_client_connect_via_info(&i) == NULL) {
		b->wsi = NULL;
		b->stats.requests[BF_ST_ERROR]++;
		return W2K_EIO;
	}
	return 0;
}

static void
resp_append(struct backfill *b, const void *in, size_t len)
{
	if (b->resp_over)
		return;
	if (b->resp_len + len > RESTMAP_BODY_MAX) {
		b->resp_over = true;
		return;
	}
	if (b->resp_len + len + 1 > b->resp_cap) {
		size_t nc = (b->resp_len + len + 1) * 2;
		char *n = realloc(b->resp, nc);

		if (n == NULL) {
			b->resp_over = true;
			return;
		}
		b->resp = n;
		b->resp_cap = nc;
	}
	memcpy(b->resp + b->resp_len, in, len);
	b->resp_len += len;
	b->resp[b->resp_len] = '\0';
}

/* The connection ended: complete or not, the answer is judged once. */
static void
req_end(struct backfill *b, struct lws *wsi)
{
	if (b->wsi != wsi && b->wsi != NULL)
		return;
	b->wsi = NULL;
	if (!b->completed)
		b->status = 0;
	b->completed = true;
	req_done(b);
}

static int
add_header(struct lws *wsi, const char *name, const char *value,
    unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
	    (const unsigned char *)value, (int)strlen(value), p, end);
}

static int
bf_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct backfill *b = lws_get_opaque_user_data(wsi);

	if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS) {
		/* TLS 1.2 at least, as for WSI (pbx.c). */
		SSL_CTX_set_min_proto_version(user, TLS1_2_VERSION);
		return 0;
	}
	if (b == NULL)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = (unsigned char **)in, *end = (*p) + len;
		char auth[4096];

		if (b->token != NULL && (b->kind == RQ_PAGE)) {
			snprintf(auth, sizeof(auth), "Bearer %s", b->token);
			if (add_header(wsi, "authorization:", auth, p, end)) {
				explicit_bzero(auth, sizeof(auth));
				return -1;
			}
			explicit_bzero(auth, sizeof(auth));
		}
		if (b->cookie != NULL && b->kind == RQ_LOGIN_GET &&
		    add_header(wsi, "cookie:", b->cookie, p, end))
			return -1;
		if (add_header(wsi, "accept:", "application/json", p, end))
			return -1;
		if (b->body != NULL) {
			char cl[24];

			snprintf(cl, sizeof(cl), "%zu", b->body_len);
			if (add_header(wsi, "content-type:",
			    "application/json", p, end) ||
			    add_header(wsi, "content-length:", cl, p, end))
				return -1;
			lws_client_http_body_pending(wsi, 1);
			lws_callback_on_writable(wsi);
		}
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
		    BF_REQ_TIMEOUT_S);
		break;
	}
	case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
		if (b->body == NULL)
			break;
		lws_client_http_body_pending(wsi, 0);
		if (lws_write(wsi, (unsigned char *)b->body + LWS_PRE,
		    b->body_len, LWS_WRITE_HTTP_FINAL) != (int)b->body_len)
			return -1;
		body_free(b);
		break;
	case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP: {
		char v[256];

		b->status = (int)lws_http_client_http_response(wsi);
		if (lws_hdr_copy(wsi, v, sizeof(v),
		    WSI_TOKEN_HTTP_RETRY_AFTER) > 0)
			b->retry_after_s = strtoll(v, NULL, 10);
		if (b->kind == RQ_LOGIN_POST && lws_hdr_copy(wsi, v, sizeof(v),
		    WSI_TOKEN_HTTP_SET_COOKIE) > 0) {
			/* name=value; attributes: only name=value goes back */
			v[strcspn(v, ";")] = '\0';
			wipe_free(&b->cookie);
			b->cookie = strdup(v);
			explicit_bzero(v, sizeof(v));
		}
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
		    BF_REQ_TIMEOUT_S);
		break;
	}
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
		char buf[LWS_PRE + 16384], *px = buf + LWS_PRE;
		int lenx = sizeof(buf) - LWS_PRE;

		if (lws_http_client_read(wsi, &px, &lenx) < 0)
			return -1;
		return 0;
	}
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		resp_append(b, in, len);
		break;
	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		b->completed = true;
		b->wsi = NULL;
		lws_set_opaque_user_data(wsi, NULL);
		req_done(b);
		return -1;	/* no keep-alive: one request, one connection */
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
		/*
		 * lws 4.1 says no more than "connect SSL err 1" of a refused
		 * certificate; the SSL object still knows why (as pbx.c).
		 */
		SSL *ssl = lws_get_ssl(wsi);
		long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

		if (vr != X509_V_OK)
			snprintf(b->conn_err, sizeof(b->conn_err), "certificate "
			    "verify failed: %s", X509_verify_cert_error_string(vr));
		else
			snprintf(b->conn_err, sizeof(b->conn_err), "%.*s",
			    in ? (int)len : 0, in ? (const char *)in : "");
		for (char *c = b->conn_err; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
				*c = '?';
		lws_set_opaque_user_data(wsi, NULL);
		req_end(b, wsi);
		break;
	}
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
	case LWS_CALLBACK_WSI_DESTROY:
		lws_set_opaque_user_data(wsi, NULL);
		req_end(b, wsi);
		break;
	default:
		break;
	}
	return 0;
}

/* ---- the tick: liveness and gaps ------------------------------------- */

static void
tick_cb(lws_sorted_usec_list_t *sul)
{
	struct backfill *b = lws_container_of(sul, struct backfill, sul_tick);
	int64_t now = now_s(), m = margin_s();
	bool live = b->p != NULL && pbx_cdr_live(b->p);
	uint64_t conn = b->p != NULL ? pbx_get_stats(b->p)->connects_ok : 0;

	if (b->stopping)
		return;
	/* A session that ended and came back between two ticks: a gap all
	 * the same, from the last frame seen before. */
	if (live && b->live && conn != b->connects && b->open_from == 0 &&
	    b->last_live != 0)
		b->open_from = b->last_live;
	b->connects = conn;
	if (live) {
		int64_t lf = pbx_last_frame_us(b->p) / 1000000;

		if (b->open_from != 0) {
			/* The gap closes: its CDRs are read once the end
			 * margin has passed. */
			int64_t from = b->open_from - m, to = now + m;

			b->ngaps = backfill_gaps_add(b->gaps, b->ngaps,
			    BACKFILL_MAX_GAPS, from, to);
			log_info("pbx %s: backfill: CDRs live again after %"
			    PRId64 " s: the gap is read in %" PRId64 " s",
			    b->pc->name, now - b->open_from, m);
			b->open_from = 0;
			b->gaps_dirty = b->dirty = true;
		}
		if (lf > b->last_live) {
			b->last_live = lf;
			b->dirty = true;
		}
		if (b->last_live == 0) {
			b->last_live = now;
			b->dirty = true;
		}
	} else if (b->open_from == 0 && b->last_live != 0) {
		b->open_from = b->last_live;
		log_info("pbx %s: backfill: CDRs are not live: a gap is open "
		    "since %" PRId64 " s", b->pc->name, now - b->last_live);
		b->dirty = true;
	}
	b->live = live;
	b->stats.gap_open_s = b->open_from != 0 ? now - b->open_from : 0;
	idx_prune(b);
	/*
	 * Gaps are saved at once; the last live time (and a pruned index)
	 * every BF_SAVE_US: a crash then makes the next gap start up to that
	 * much earlier, well inside its margin, and the journal keeps every
	 * live CDR in between.
	 */
	if (b->gaps_dirty || ((b->pruned_dirty ||
	    b->last_live != b->saved_live) &&
	    w2k_mono_us() - b->saved_at_us >= BF_SAVE_US))
		(void)state_save(b);
	if (!b->working && b->ngaps > 0)
		work_kick(b);
	lws_sul_schedule(b->env->context, 0, &b->sul_tick, tick_cb,
	    BF_TICK_US);
}

/* ---- public ------------------------------------------------------------ */

/* Tenant, session and cdr ids of a live call_cdr record's value. */
void
backfill_observe(struct backfill *b, const struct record *rec)
{
	cJSON *o, *d;
	const char *t, *s, *c;
	char line[512];
	int n;

	if (b == NULL || rec->dead || rec->type == NULL ||
	    strcmp(rec->type, "call_cdr") != 0)
		return;
	if ((o = cJSON_ParseWithLength(rec->value, rec->value_len)) == NULL)
		return;
	d = cJSON_GetObjectItemCaseSensitive(o, "data");
	t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o,
	    "tenant_id"));
	s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o,
	    "session_id"));
	c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d,
	    "cdr_id"));
	if (t == NULL || t[0] == '\0' || (b->pc->backfill.tenant_id != NULL &&
	    strcmp(t, b->pc->backfill.tenant_id) != 0)) {
		cJSON_Delete(o);
		return;		/* another tenant's: not ours to read back */
	}
	if (b->tenant == NULL && (b->tenant = strdup(t)) != NULL) {
		log_info("pbx %s: backfill: tenant id %s (learned from a live "
		    "CDR)", b->pc->name, t);
		b->dirty = b->gaps_dirty = true;
	}
	/* Journal first (the record goes to the spool after us). */
	n = snprintf(line, sizeof(line), "%" PRId64 "\t%s\t%s\t=%s\n",
	    rec->received_us / 1000000, t, s && s[0] ? s : "-", c ? c : "");
	if (b->journal_fd >= 0 && n > 0 && (size_t)n < sizeof(line) &&
	    strchr(t, '\t') == NULL && (!s || strchr(s, '\t') == NULL) &&
	    (!c || strchr(c, '\t') == NULL) &&
	    write_all(b->journal_fd, line, (size_t)n) != 0)
		log_warn("pbx %s: backfill: cannot write %s: %s", b->pc->name,
		    b->journal_path, strerror(errno));
	add_entry(b, rec->received_us / 1000000, t, s, c);
	cJSON_Delete(o);
}

int
backfill_new(const struct cfg_pbx *pc, struct pbx *p,
    const struct backfill_env *env, struct backfill **out)
{
	struct lws_context_creation_info info;
	struct backfill *b;
	char name[128];
	static char **vnames;
	static size_t nvnames;
	char **nv;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return W2K_ENOMEM;
	b->pc = pc;
	b->p = p;
	b->env = env;
	b->journal_fd = -1;
	backoff_init(&b->bo, 1.0, 60.0);
	if (pc->backfill.tenant_id != NULL &&
	    (b->tenant = strdup(pc->backfill.tenant_id)) == NULL)
		goto nomem;
	if (asprintf(&b->state_path, "%s/backfill-%s.state", env->state_dir,
	    pc->name) < 0) {
		b->state_path = NULL;
		goto nomem;
	}
	if (asprintf(&b->journal_path, "%s/backfill-%s.journal",
	    env->state_dir, pc->name) < 0) {
		b->journal_path = NULL;
		goto nomem;
	}
	if (asprintf(&b->journal_old, "%s.old", b->journal_path) < 0) {
		b->journal_old = NULL;
		goto nomem;
	}
	state_load(b);
	pthread_mutex_init(&b->wr_mu, NULL);
	pthread_cond_init(&b->wr_cv, NULL);
	b->wr_init = true;
	if (pthread_create(&b->wr_thread, NULL, writer_main, b) == 0) {
		b->wr_running = true;
		(void)pthread_setname_np(b->wr_thread, "w2k:backfill");
	} else
		log_warn("pbx %s: backfill: no writer thread: the state is "
		    "written on the event loop", pc->name);
	b->journal_fd = open(b->journal_path, O_WRONLY | O_CREAT | O_APPEND |
	    O_CLOEXEC, 0600);
	if (b->journal_fd < 0)
		log_err("pbx %s: backfill: cannot open %s: %s", pc->name,
		    b->journal_path, strerror(errno));

	/* lws keeps the vhost name pointer for the context's life: one
	 * copy per distinct name, for the process's (as pbx.c does). */
	snprintf(name, sizeof(name), "%s/rest", pc->name);
	memset(&info, 0, sizeof(info));
	for (size_t i = 0; i < nvnames && info.vhost_name == NULL; i++)
		if (strcmp(vnames[i], name) == 0)
			info.vhost_name = vnames[i];
	if (info.vhost_name == NULL) {
		if ((nv = realloc(vnames, (nvnames + 1) * sizeof(*nv))) ==
		    NULL)
			goto nomem;
		vnames = nv;
		if ((vnames[nvnames] = strdup(name)) == NULL)
			goto nomem;
		info.vhost_name = vnames[nvnames++];
	}
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = bf_protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = pc->tls.ca_file;
	info.client_ssl_cert_filepath = pc->tls.cert_file;
	info.client_ssl_private_key_filepath = pc->tls.key_file;
	info.ssl_client_options_set = (long)(SSL_OP_NO_SSLv2 |
	    SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
	if ((b->vhost = lws_create_vhost(env->context, &info)) == NULL) {
		log_err("pbx %s: backfill: cannot set up TLS", pc->name);
		backfill_free(b);
		return W2K_EINVAL;
	}
	*out = b;
	return 0;
nomem:
	backfill_free(b);
	return W2K_ENOMEM;
}

void
backfill_start(struct backfill *b)
{
	if (b->started && !b->stopping)
		return;		/* kept across a reload */
	b->stopping = false;
	b->started = true;
	log_info("pbx %s: backfill enabled: REST %s, CDR gaps read with a "
	    "margin of %" PRId64 " s", b->pc->name, b->pc->backfill.url.text,
	    margin_s());
	lws_sul_schedule(b->env->context, 0, &b->sul_tick, tick_cb, 1);
}

void
backfill_stop(struct backfill *b)
{
	if (b == NULL || b->stopping)
		return;
	b->stopping = true;
	lws_sul_cancel(&b->sul_tick);
	lws_sul_cancel(&b->sul_work);
	if (b->wsi != NULL) {
		lws_set_opaque_user_data(b->wsi, NULL);
		lws_set_timeout(b->wsi, PENDING_TIMEOUT_USER_OK,
		    LWS_TO_KILL_ASYNC);
		b->wsi = NULL;
		b->killed = true;	/* its vhost goes with the context */
	}
	if (b->started) {
		/* A clean stop is a gap too: from the last live frame. */
		if (b->p != NULL && pbx_cdr_live(b->p) &&
		    pbx_last_frame_us(b->p) / 1000000 > b->last_live)
			b->last_live = pbx_last_frame_us(b->p) / 1000000;
		(void)state_save(b);
		writer_drain(b);	/* on disk before the process goes */
	}
}

void
backfill_rebind(struct backfill *b, const struct cfg_pbx *pc, struct pbx *p)
{
	b->pc = pc;
	b->p = p;
}

struct pbx *
backfill_pbx(const struct backfill *b)
{
	return b->p;
}

const struct backfill_stats *
backfill_get_stats(const struct backfill *b)
{
	return &b->stats;
}

void
backfill_free(struct backfill *b)
{
	if (b == NULL)
		return;
	lws_sul_cancel(&b->sul_tick);
	lws_sul_cancel(&b->sul_work);
	if (b->wsi != NULL)
		lws_set_opaque_user_data(b->wsi, NULL);
	if (b->vhost != NULL && b->wsi == NULL && !b->killed)
		lws_vhost_destroy(b->vhost);
	if (b->wr_running) {
		pthread_mutex_lock(&b->wr_mu);
		b->wr_quit = true;
		pthread_cond_signal(&b->wr_cv);
		pthread_mutex_unlock(&b->wr_mu);
		pthread_join(b->wr_thread, NULL);	/* writes what is left */
	}
	if (b->wr_init) {
		pthread_mutex_destroy(&b->wr_mu);
		pthread_cond_destroy(&b->wr_cv);
	}
	free(b->wr_text);
	if (b->journal_fd >= 0)
		close(b->journal_fd);
	for (size_t i = 0; i < b->idx_n; i++)
		idx_ent_free(idx_at(b, i));
	free(b->idx);
	strset_clear(&b->idx_set);
	strset_clear(&b->seen);
	token_drop(b);
	req_clear(b);
	free(b->tenant);
	free(b->state_path);
	free(b->journal_path);
	free(b->journal_old);
	free(b);
}
