/*
 * metrics.c — Prometheus text exposition format 0.0.4 and the /readyz
 * verdict, rendered from the modules' own statistics at scrape time.
 *
 * Every family gets its HELP and TYPE lines, even when it has no sample
 * (the per-topic family in a dry run), so a dashboard finds every name.
 * Fixed label sets are rendered in full, zeros included, so that rate()
 * and increase() see a series from its first scrape on rather than from
 * the first event of a kind. metrics.c never allocates anything but the
 * caller's buffer (and one small array per call) and never blocks: the
 * only system call is a read of /proc/self/statm.
 */
#include "metrics.h"
#include "w2k.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- buffer ------------------------------------------------------------ */

void
metrics_buf_reset(struct metrics_buf *b)
{
	b->len = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void
metrics_buf_free(struct metrics_buf *b)
{
	if (b == NULL)
		return;
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Room for need more bytes plus the NUL. */
static int
buf_reserve(struct metrics_buf *b, size_t need)
{
	size_t max = b->max ? b->max : METRICS_BUF_MAX, cap;
	char *p;

	if (need >= max || b->len >= max - need)
		return W2K_EFULL;
	if (b->len + need < b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap <= b->len + need)
		cap *= 2;
	if (cap > max)
		cap = max;
	if ((p = realloc(b->p, cap)) == NULL)
		return W2K_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
metrics_buf_add(struct metrics_buf *b, const char *s, size_t n)
{
	int r;

	if ((r = buf_reserve(b, n)) != 0)
		return r;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int __attribute__((format(printf, 2, 3)))
buf_printf(struct metrics_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return W2K_EINVAL;
	if ((size_t)n < sizeof(small))
		return metrics_buf_add(b, small, (size_t)n);
	/* Longer than any line we print today; format in place. */
	if ((r = buf_reserve(b, (size_t)n)) != 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int
metrics_escape_label(struct metrics_buf *b, const char *s)
{
	const char *run = s;
	int r = 0;

	for (; *s != '\0' && r == 0; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" :
		    *s == '\n' ? "\\n" : NULL;

		if (esc == NULL)
			continue;
		if ((r = metrics_buf_add(b, run, (size_t)(s - run))) == 0)
			r = metrics_buf_add(b, esc, 2);
		run = s + 1;
	}
	return r != 0 ? r : metrics_buf_add(b, run, strlen(run));
}

/* ---- exposition ------------------------------------------------------- */

/*
 * One rendering: the first error sticks and every later append is a
 * no-op, so the family code below reads as a list rather than a ladder
 * of error checks.
 */
struct out {
	struct metrics_buf	*b;
	int			 err;
};

struct lbl {
	const char	*k, *v;
};

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	if (o->err == 0)
		o->err = buf_printf(o->b, "# HELP %s %s\n# TYPE %s %s\n", name,
		    help, name, type);
}

/* name{k="v",…} value — value already formatted. */
static void
sample(struct out *o, const char *name, const struct lbl *l, size_t nl,
    const char *value)
{
	if (o->err == 0)
		o->err = metrics_buf_add(o->b, name, strlen(name));
	for (size_t i = 0; i < nl && o->err == 0; i++) {
		if ((o->err = buf_printf(o->b, "%s%s=\"", i ? "," : "{",
		    l[i].k)) == 0 &&
		    (o->err = metrics_escape_label(o->b, l[i].v)) == 0)
			o->err = metrics_buf_add(o->b, "\"", 1);
	}
	if (o->err == 0)
		o->err = buf_printf(o->b, "%s %s\n", nl ? "}" : "", value);
}

static void
sample_u64(struct out *o, const char *name, const struct lbl *l, size_t nl,
    uint64_t v)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRIu64, v);
	sample(o, name, l, nl, s);
}

static void
sample_dbl(struct out *o, const char *name, const struct lbl *l, size_t nl,
    double v)
{
	char s[40];

	/* %.17g round-trips a double; the format takes any float syntax. */
	snprintf(s, sizeof(s), "%.17g", v);
	sample(o, name, l, nl, s);
}

#define L(...)	((const struct lbl[]){ __VA_ARGS__ })
#define NL(...)	(sizeof((const struct lbl[]){ __VA_ARGS__ }) / \
	sizeof(struct lbl))
#define U64(o, name, v, ...) \
	sample_u64(o, name, L(__VA_ARGS__), NL(__VA_ARGS__), v)

static const enum pbx_state states[] = {
	PBX_STOPPED, PBX_WAITING, PBX_CONNECTING, PBX_AUTHENTICATING,
	PBX_SUBSCRIBED,
};

/* The reasons a connection attempt can fail for (pbx.h). */
static const enum pbx_disc connect_reasons[] = {
	PBX_DISC_ERROR, PBX_DISC_TLS, PBX_DISC_TIMEOUT,
};

/*
 * One series per distinct topics label and state: subscriptions of one
 * PBX naming the same topics (different extensions, say) add up, so no
 * label set is exported twice.
 */
static void
render_subs(struct out *o, const struct metrics_pbx *mp)
{
	char a[256], b[256];

	for (size_t j = 0; j < mp->nsubs; j++) {
		uint64_t n[PBX_SUB_STATE_COUNT] = { 0 };
		bool seen = false;

		cfg_sub_topics(&mp->subs[j], a, sizeof(a));
		for (size_t k = 0; k < j && !seen; k++) {
			cfg_sub_topics(&mp->subs[k], b, sizeof(b));
			seen = strcmp(a, b) == 0;
		}
		if (seen)
			continue;
		for (size_t k = j; k < mp->nsubs; k++) {
			cfg_sub_topics(&mp->subs[k], b, sizeof(b));
			if (strcmp(a, b) == 0)
				n[mp->sub_state[k]]++;
		}
		for (unsigned s = 0; s < PBX_SUB_STATE_COUNT; s++)
			U64(o, "wsi2kafka_pbx_subscriptions", n[s],
			    { "pbx", mp->name }, { "topics", a },
			    { "state",
			    pbx_sub_state_name((enum pbx_sub_state)s) });
	}
}

static void
render_pbx(struct out *o, const struct metrics_view *v)
{
	family(o, "wsi2kafka_pbx_up", "gauge",
	    "1 when the PBX session is authenticated and subscribed, else 0.");
	for (size_t i = 0; i < v->npbx; i++)
		U64(o, "wsi2kafka_pbx_up", v->pbx[i].state == PBX_SUBSCRIBED,
		    { "pbx", v->pbx[i].name });

	family(o, "wsi2kafka_pbx_state", "gauge",
	    "The PBX session's state: 1 for the current one, 0 for the "
	    "others.");
	for (size_t i = 0; i < v->npbx; i++)
		for (size_t s = 0; s < W2K_ARRAY_SIZE(states); s++)
			U64(o, "wsi2kafka_pbx_state",
			    v->pbx[i].state == states[s],
			    { "pbx", v->pbx[i].name },
			    { "state", pbx_state_name(states[s]) });

	family(o, "wsi2kafka_pbx_connects_total", "counter",
	    "Connection attempts to the PBX by result: ok (WebSocket "
	    "established) or failed (DNS, TCP, TLS or upgrade).");
	for (size_t i = 0; i < v->npbx; i++) {
		U64(o, "wsi2kafka_pbx_connects_total",
		    v->pbx[i].st->connects_ok, { "pbx", v->pbx[i].name },
		    { "result", "ok" });
		U64(o, "wsi2kafka_pbx_connects_total",
		    v->pbx[i].st->connects_failed, { "pbx", v->pbx[i].name },
		    { "result", "failed" });
	}

	family(o, "wsi2kafka_pbx_connect_failures_total", "counter",
	    "Failed connection attempts to the PBX by reason: error (DNS, "
	    "TCP, upgrade refused), tls (certificate or handshake refused), "
	    "timeout (not up within connect_timeout).");
	for (size_t i = 0; i < v->npbx; i++)
		for (size_t r = 0; r < W2K_ARRAY_SIZE(connect_reasons); r++)
			U64(o, "wsi2kafka_pbx_connect_failures_total",
			    v->pbx[i].st->connect_failures[connect_reasons[r]],
			    { "pbx", v->pbx[i].name },
			    { "reason", pbx_disc_name(connect_reasons[r]) });

	family(o, "wsi2kafka_pbx_disconnects_total", "counter",
	    "Established PBX sessions that ended, by reason.");
	for (size_t i = 0; i < v->npbx; i++)
		for (unsigned r = 0; r < PBX_DISC_COUNT; r++)
			U64(o, "wsi2kafka_pbx_disconnects_total",
			    v->pbx[i].st->disconnects[r],
			    { "pbx", v->pbx[i].name },
			    { "reason", pbx_disc_name((enum pbx_disc)r) });

	family(o, "wsi2kafka_pbx_frames_total", "counter",
	    "Complete WebSocket frames received from the PBX (events, "
	    "command replies and dead letters).");
	for (size_t i = 0; i < v->npbx; i++)
		U64(o, "wsi2kafka_pbx_frames_total", v->pbx[i].st->frames,
		    { "pbx", v->pbx[i].name });

	family(o, "wsi2kafka_events_received_total", "counter",
	    "Event records from the PBX by event type; types the PortSIP "
	    "documentation does not list count as other.");
	for (size_t i = 0; i < v->npbx; i++)
		for (unsigned t = 0; t < NORM_NTYPES; t++)
			U64(o, "wsi2kafka_events_received_total",
			    v->pbx[i].st->events_by_type[t],
			    { "pbx", v->pbx[i].name },
			    { "type", norm_type_name(t) });

	family(o, "wsi2kafka_dead_letters_total", "counter",
	    "Frames from the PBX published on the dead-letter topic, by "
	    "reason.");
	for (size_t i = 0; i < v->npbx; i++)
		for (unsigned r = 0; r < PBX_DL_COUNT; r++)
			U64(o, "wsi2kafka_dead_letters_total",
			    v->pbx[i].st->dead_by_reason[r],
			    { "pbx", v->pbx[i].name },
			    { "reason", pbx_dl_name((enum pbx_dl)r) });

	family(o, "wsi2kafka_pbx_subscriptions", "gauge",
	    "Configured subscriptions by what the PBX made of them: active "
	    "(accepted in this session), pending (no reply yet), rejected "
	    "(refused; sent again every 5 minutes and on every new session).");
	for (size_t i = 0; i < v->npbx; i++)
		render_subs(o, &v->pbx[i]);
}

/* Deliveries per topic; the "other" slot merges into a topic so named. */
static void
render_topics(struct out *o, const struct ksink_stats *ks)
{
	uint64_t other = ks->topic_produced[ks->ntopics];
	bool merged = false;

	for (unsigned i = 0; i < ks->ntopics; i++) {
		uint64_t n = ks->topic_produced[i];

		if (strcmp(ks->topic_name[i], "other") == 0) {
			n += other;
			merged = true;
		}
		U64(o, "wsi2kafka_records_produced_total", n,
		    { "topic", ks->topic_name[i] });
	}
	if (!merged)
		U64(o, "wsi2kafka_records_produced_total", other,
		    { "topic", "other" });
}

/* A histogram family: name, help, cumulative buckets, +Inf, sum, count. */
static void
render_histo(struct out *o, const char *name, const char *help,
    const struct histo *h)
{
	char bucket[96], sum[96], count[96], le[32];
	uint64_t cum = 0;

	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	snprintf(sum, sizeof(sum), "%s_sum", name);
	snprintf(count, sizeof(count), "%s_count", name);
	family(o, name, "histogram", help);
	for (unsigned i = 0; i < HISTO_NBUCKETS; i++) {
		cum += h->bucket[i];
		snprintf(le, sizeof(le), "%g", histo_bound(i));
		U64(o, bucket, cum, { "le", le });
	}
	cum += h->bucket[HISTO_NBUCKETS];
	U64(o, bucket, cum, { "le", "+Inf" });
	sample_dbl(o, sum, NULL, 0, h->sum);
	sample_u64(o, count, NULL, 0, h->count);
}

static void
render_kafka(struct out *o, const struct ksink_stats *ks)
{
	static const struct ksink_stats none;
	const struct ksink_stats *s = ks != NULL ? ks : &none;

	family(o, "wsi2kafka_kafka_up", "gauge",
	    "1 when a Kafka broker is reachable (librdkafka's broker states "
	    "and delivery reports), else 0.");
	sample_u64(o, "wsi2kafka_kafka_up", NULL, 0, s->up);

	family(o, "wsi2kafka_records_produced_total", "counter",
	    "Records the brokers acknowledged, by topic.");
	if (ks != NULL)
		render_topics(o, ks);

	family(o, "wsi2kafka_records_failed_total", "counter",
	    "Failed delivery reports by reason. Every failed record is "
	    "produced again, except refused ones, which become dead letters.");
	for (unsigned r = 0; r < KSINK_FAIL_COUNT; r++)
		U64(o, "wsi2kafka_records_failed_total", s->failed[r],
		    { "reason", ksink_fail_name((enum ksink_fail)r) });

	/* Topics appear on their first refusal (they are configured
	 * topics, so the label set stays bounded). */
	family(o, "wsi2kafka_kafka_refusals_total", "counter",
	    "Records a topic refused for a cause the operator can fix "
	    "(missing ACL, unknown topic, ...), by topic and reason: they "
	    "wait in the spool and are produced again with backoff.");
	for (unsigned i = 0; i < s->nrefusals; i++)
		for (unsigned r = 0; r < KSINK_REF_COUNT; r++)
			U64(o, "wsi2kafka_kafka_refusals_total",
			    s->refusals[i].count[r],
			    { "topic", s->refusals[i].topic },
			    { "reason", ksink_refusal_name(
			    (enum ksink_refusal)r) });
	family(o, "wsi2kafka_kafka_topic_refusing", "gauge",
	    "1 while the topic refuses records (its last attempt was "
	    "refused, none delivered since), else 0.");
	for (unsigned i = 0; i < s->nrefusals; i++)
		U64(o, "wsi2kafka_kafka_topic_refusing",
		    s->refusals[i].refused ? 1 : 0,
		    { "topic", s->refusals[i].topic });

	family(o, "wsi2kafka_kafka_topic_waiting_records", "gauge",
	    "Records of the topic set aside while it refuses records: they "
	    "stay in the spool and are produced at its next retry.");
	for (unsigned i = 0; i < s->nrefusals; i++)
		U64(o, "wsi2kafka_kafka_topic_waiting_records",
		    s->refusals[i].waiting,
		    { "topic", s->refusals[i].topic });

	family(o, "wsi2kafka_records_retried_total", "counter",
	    "Records produced again after a failed delivery.");
	sample_u64(o, "wsi2kafka_records_retried_total", NULL, 0, s->retried);

	family(o, "wsi2kafka_records_dead_lettered_total", "counter",
	    "Records the brokers refused for good, re-published on the "
	    "dead-letter topic.");
	sample_u64(o, "wsi2kafka_records_dead_lettered_total", NULL, 0,
	    s->dead_lettered);

	family(o, "wsi2kafka_records_lost_total", "counter",
	    "Records lost: dead letters the brokers refused for good, or "
	    "records that could be neither spooled nor produced (each "
	    "logged).");
	sample_u64(o, "wsi2kafka_records_lost_total", NULL, 0, s->dropped);

	family(o, "wsi2kafka_kafka_pending_records", "gauge",
	    "Spooled records not yet handed to librdkafka (its local queue "
	    "is full or the brokers are down); they wait on disk.");
	sample_u64(o, "wsi2kafka_kafka_pending_records", NULL, 0, s->pending);

	family(o, "wsi2kafka_kafka_queue_records", "gauge",
	    "Records in librdkafka's queues, not yet acknowledged "
	    "(statistics msg_cnt, refreshed every statistics.interval.ms).");
	sample_u64(o, "wsi2kafka_kafka_queue_records", NULL, 0, s->rk.msgs);

	family(o, "wsi2kafka_kafka_queue_bytes", "gauge",
	    "Bytes of the records in librdkafka's queues (statistics "
	    "msg_size).");
	sample_u64(o, "wsi2kafka_kafka_queue_bytes", NULL, 0, s->rk.bytes);

	family(o, "wsi2kafka_kafka_broker_up", "gauge",
	    "1 when librdkafka's connection to the broker is up (statistics "
	    "state UP), else 0.");
	for (unsigned i = 0; i < s->rk.nbrokers; i++)
		U64(o, "wsi2kafka_kafka_broker_up", s->rk.broker[i].up,
		    { "broker", s->rk.broker[i].name });

	family(o, "wsi2kafka_kafka_producer_rebuilds_total", "counter",
	    "Producers rebuilt after a fatal librdkafka error.");
	sample_u64(o, "wsi2kafka_kafka_producer_rebuilds_total", NULL, 0,
	    s->rebuilds);

	render_histo(o, "wsi2kafka_delivery_latency_seconds",
	    "Seconds from frame receipt to the broker's acknowledgement of "
	    "its record.", &s->latency);
	render_histo(o, "wsi2kafka_kafka_ack_latency_seconds",
	    "Seconds from handing a record to librdkafka to the broker's "
	    "acknowledgement: linger.ms, queueing in librdkafka and the "
	    "broker round trip.", &s->ack_latency);
}

static void
render_spool(struct out *o, const struct spool_stats *sp, int64_t now_us)
{
	static const struct spool_stats none;
	const struct spool_stats *s = sp != NULL ? sp : &none;
	double age = 0;

	if (s->oldest_us > 0 && now_us > s->oldest_us)
		age = (double)(now_us - s->oldest_us) / 1e6;
	family(o, "wsi2kafka_spool_records", "gauge",
	    "Records in the spool not yet acknowledged by the brokers.");
	sample_u64(o, "wsi2kafka_spool_records", NULL, 0, s->records);
	family(o, "wsi2kafka_spool_bytes", "gauge",
	    "Bytes the spool uses on disk.");
	sample_u64(o, "wsi2kafka_spool_bytes", NULL, 0, s->bytes);
	family(o, "wsi2kafka_spool_oldest_age_seconds", "gauge",
	    "Age of the oldest unacknowledged record in the spool; 0 when "
	    "it is empty.");
	sample_dbl(o, "wsi2kafka_spool_oldest_age_seconds", NULL, 0, age);
	family(o, "wsi2kafka_spool_dropped_total", "counter",
	    "Records dropped because the spool was full (spool.on_full).");
	sample_u64(o, "wsi2kafka_spool_dropped_total", NULL, 0, s->dropped);
}

static void
render_process(struct out *o, const struct metrics_view *v)
{
	char s[48];

	family(o, "wsi2kafka_build_info", "gauge",
	    "Always 1; the version of the running daemon as a label.");
	U64(o, "wsi2kafka_build_info", 1, { "version", W2K_VERSION });
	family(o, "wsi2kafka_process_start_time_seconds", "gauge",
	    "Start time of the process, seconds since the Unix epoch.");
	/* Milliseconds as decimals: exact, where a double would print
	 * 1700000000.1229999. */
	snprintf(s, sizeof(s), "%" PRId64 ".%03d", v->start_us / 1000000,
	    (int)(v->start_us / 1000 % 1000));
	sample(o, "wsi2kafka_process_start_time_seconds", NULL, 0, s);
	family(o, "wsi2kafka_process_resident_memory_bytes", "gauge",
	    "Resident memory of the process in bytes.");
	sample_u64(o, "wsi2kafka_process_resident_memory_bytes", NULL, 0,
	    v->rss_bytes);
}

/* Contract §8: only with backfill (a PBX with backfill.enabled). */
static void
render_backfill(struct out *o, const struct metrics_view *v)
{
	if (v->nbf == 0)
		return;
	family(o, "wsi2kafka_backfill_records_total", "counter",
	    "call_cdr records read back over the PBX's REST API after a "
	    "WebSocket gap and published (source rest).");
	for (size_t i = 0; i < v->nbf; i++)
		U64(o, "wsi2kafka_backfill_records_total", v->bf[i].st->records,
		    { "pbx", v->bf[i].name });
	family(o, "wsi2kafka_backfill_requests_total", "counter",
	    "REST requests of the CDR backfill by answer: 2xx, 401, 404, "
	    "429, 4xx (others), 5xx, error (no answer).");
	for (size_t i = 0; i < v->nbf; i++)
		for (unsigned s = 0; s < BF_ST_COUNT; s++)
			U64(o, "wsi2kafka_backfill_requests_total",
			    v->bf[i].st->requests[s], { "pbx", v->bf[i].name },
			    { "status",
			    backfill_status_name((enum backfill_status)s) });
	family(o, "wsi2kafka_backfill_gap_seconds", "gauge",
	    "How long CDRs have not been live (the open gap), 0 when none.");
	for (size_t i = 0; i < v->nbf; i++)
		U64(o, "wsi2kafka_backfill_gap_seconds",
		    (uint64_t)(v->bf[i].st->gap_open_s > 0 ?
		    v->bf[i].st->gap_open_s : 0), { "pbx", v->bf[i].name });
}

int
metrics_render_view(struct metrics_buf *b, const struct metrics_view *v)
{
	struct out o = { b, 0 };

	render_pbx(&o, v);
	render_backfill(&o, v);
	render_kafka(&o, v->ks);
	render_spool(&o, v->spool, v->now_us);
	render_process(&o, v);
	return o.err;
}

/* ---- live objects ------------------------------------------------------ */

uint64_t
metrics_rss_bytes(void)
{
	unsigned long long size, resident;
	char text[128];
	long page = sysconf(_SC_PAGESIZE);
	ssize_t n;
	int fd;

	if ((fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0 || page <= 0)
		return 0;
	text[n] = '\0';
	if (sscanf(text, "%llu %llu", &size, &resident) != 2)
		return 0;
	return (uint64_t)resident * (uint64_t)page;
}

/* Build a view of the live objects; *pv is malloc'ed (free it). */
static int
view_build(const struct metrics_src *src, struct metrics_view *v,
    struct metrics_pbx **pv, struct metrics_bf **pb)
{
	struct metrics_pbx *mp = NULL;
	struct metrics_bf *mb = NULL;
	size_t n = 0, nb = 0;

	memset(v, 0, sizeof(*v));
	if (src->npbx > 0 &&
	    (mp = calloc(src->npbx, sizeof(*mp))) == NULL)
		return W2K_ENOMEM;
	for (size_t i = 0; i < src->npbx; i++) {
		if (src->pbx[i] == NULL)
			continue;
		mp[n].name = pbx_name(src->pbx[i]);
		mp[n].state = pbx_get_state(src->pbx[i]);
		mp[n].st = pbx_get_stats(src->pbx[i]);
		mp[n].subs = pbx_subs(src->pbx[i]);
		mp[n].sub_state = pbx_sub_states(src->pbx[i]);
		mp[n].nsubs = pbx_nsubs(src->pbx[i]);
		n++;
	}
	v->pbx = mp;
	v->npbx = n;
	if (src->nbf > 0 && (mb = calloc(src->nbf, sizeof(*mb))) == NULL) {
		free(mp);
		return W2K_ENOMEM;
	}
	for (size_t i = 0; i < src->nbf; i++) {
		if (src->bf[i] == NULL || backfill_pbx(src->bf[i]) == NULL)
			continue;
		mb[nb].name = pbx_name(backfill_pbx(src->bf[i]));
		mb[nb].st = backfill_get_stats(src->bf[i]);
		nb++;
	}
	v->bf = mb;
	v->nbf = nb;
	*pb = mb;
	v->ks = src->ks != NULL ? ksink_get_stats(src->ks) : NULL;
	if (src->sp != NULL)		/* no spool in a dry run: zeros */
		v->spool = spool_get_stats(src->sp);
	v->now_us = w2k_now_us();
	v->start_us = src->start_us;
	*pv = mp;
	return 0;
}

int
metrics_render(struct metrics_buf *b, const struct metrics_src *src)
{
	struct metrics_view v;
	struct metrics_pbx *mp;
	struct metrics_bf *mb;
	int r;

	if ((r = view_build(src, &v, &mp, &mb)) != 0)
		return r;
	v.rss_bytes = metrics_rss_bytes();
	r = metrics_render_view(b, &v);
	free(mp);
	free(mb);
	return r;
}

/* ---- readiness --------------------------------------------------------- */

/* s as a JSON string (quotes included); control characters as \u00XX. */
static void
json_str(struct out *o, const char *s)
{
	if (o->err == 0)
		o->err = metrics_buf_add(o->b, "\"", 1);
	for (; *s != '\0' && o->err == 0; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			o->err = buf_printf(o->b, "\\%c", c);
		else if (c < 0x20)
			o->err = buf_printf(o->b, "\\u%04x", c);
		else
			o->err = metrics_buf_add(o->b, s, 1);
	}
	if (o->err == 0)
		o->err = metrics_buf_add(o->b, "\"", 1);
}

static void
text(struct out *o, const char *s)
{
	if (o->err == 0)
		o->err = metrics_buf_add(o->b, s, strlen(s));
}

int
metrics_readyz_view(struct metrics_buf *b, const struct metrics_view *v,
    bool *ready)
{
	struct out o = { b, 0 };
	bool ok = v->ks == NULL || (v->ks->up && v->ks->nrefused == 0);
	bool first = true;

	for (size_t i = 0; i < v->npbx; i++) {
		ok = ok && v->pbx[i].state == PBX_SUBSCRIBED;
		for (size_t j = 0; j < v->pbx[i].nsubs; j++)
			ok = ok && v->pbx[i].sub_state[j] != PBX_SUB_REJECTED;
	}
	text(&o, ok ? "{\"ready\":true,\"not_subscribed\":[" :
	    "{\"ready\":false,\"not_subscribed\":[");
	for (size_t i = 0; i < v->npbx; i++) {
		if (v->pbx[i].state == PBX_SUBSCRIBED)
			continue;
		text(&o, first ? "" : ",");
		json_str(&o, v->pbx[i].name);
		first = false;
	}
	text(&o, "],\"pbx\":[");
	for (size_t i = 0; i < v->npbx; i++) {
		text(&o, i ? ",{\"name\":" : "{\"name\":");
		json_str(&o, v->pbx[i].name);
		text(&o, ",\"state\":");
		json_str(&o, pbx_state_name(v->pbx[i].state));
		text(&o, v->pbx[i].state == PBX_SUBSCRIBED ?
		    ",\"subscribed\":true" : ",\"subscribed\":false");
		/* Contract §6: a refused subscription, and which. */
		text(&o, ",\"rejected_subscriptions\":[");
		first = true;
		for (size_t j = 0; j < v->pbx[i].nsubs; j++) {
			char t[256];

			if (v->pbx[i].sub_state[j] != PBX_SUB_REJECTED)
				continue;
			cfg_sub_topics(&v->pbx[i].subs[j], t, sizeof(t));
			text(&o, first ? "" : ",");
			json_str(&o, t);
			first = false;
		}
		text(&o, "]}");
	}
	/*
	 * Only the verdict on Kafka, not the per-broker states: those come
	 * from librdkafka's statistics, up to an interval older than the
	 * verdict, and a body must not contradict itself.
	 */
	text(&o, v->ks == NULL ? "],\"kafka\":{\"enabled\":false}}\n" :
	    v->ks->up ? "],\"kafka\":{\"enabled\":true,\"reachable\":true" :
	    "],\"kafka\":{\"enabled\":true,\"reachable\":false");
	if (v->ks != NULL) {
		/* Topics refusing records (contract §7, §8), with why. */
		text(&o, ",\"refused_topics\":[");
		first = true;
		for (unsigned i = 0; i < v->ks->nrefusals; i++) {
			const struct ksink_topic_refusals *t =
			    &v->ks->refusals[i];

			if (!t->refused)
				continue;
			text(&o, first ? "{\"topic\":" : ",{\"topic\":");
			json_str(&o, t->topic);
			text(&o, ",\"reason\":");
			json_str(&o, ksink_refusal_name(t->reason));
			text(&o, "}");
			first = false;
		}
		text(&o, "]}}\n");
	}
	*ready = ok;
	return o.err;
}

int
metrics_readyz(struct metrics_buf *b, const struct metrics_src *src,
    bool *ready)
{
	struct metrics_view v;
	struct metrics_pbx *mp;
	struct metrics_bf *mb;
	int r;

	*ready = false;
	if ((r = view_build(src, &v, &mp, &mb)) != 0)
		return r;
	r = metrics_readyz_view(b, &v, ready);
	free(mp);
	free(mb);
	return r;
}
