/*
 * kcheck.c — `wsi2kafka --check-kafka` (kcheck.h): can records reach
 * every topic? Asked of the brokers with the daemon's own producer
 * configuration, before an operator starts the daemon or when it is not
 * ready.
 *
 * Steps, each bounded: a producer handle (never used to produce) →
 * metadata without topics until a broker answers (TLS and SASL done),
 * or a TLS/SASL failure, or KCHECK_CONNECT_MS → per topic: metadata for
 * that topic alone (exists? partitions? leaders?), the offsets of one
 * partition per leader broker (is the leader reachable, with these
 * credentials?) → with librdkafka 2.3 or later, DescribeTopics with the
 * authorized operations (WRITE?); older ones cannot ask without
 * producing, and the report says "not checked".
 *
 * This file must never write to a topic nor create one (allow.auto.create
 * .topics is forced off: a metadata request would otherwise create a
 * missing topic on brokers that auto-create), nor print a secret.
 */
#include "kcheck.h"
#include "ksink.h"
#include "log.h"
#include "w2k.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

/* librdkafka 2.6.1 fixed the SCRAM client-final-message (PR #4895). */
#define SCRAM_FIXED_VERSION	0x020601ff
/* librdkafka 2.3.0 returns the authorized operations of a topic. */
#define AUTHZ_OPS_VERSION	0x020300ff
#define MAX_LEADERS		64	/* brokers remembered as reachable */

/* What the error callback saw: the most telling failure so far. */
enum kc_fail { KC_NONE, KC_OTHER, KC_TRANSPORT, KC_TLS, KC_SASL };

struct kcheck {
	rd_kafka_t	*rk;
	FILE		*out;
	enum kc_fail	 fail;
	char		 why[512];	/* librdkafka's text for fail */
	int		 problems;
	int32_t		 ok_leaders[MAX_LEADERS];	/* answered */
	size_t		 nok;
};

/*
 * Served by rd_kafka_poll() on this thread. librdkafka reports TLS and
 * SASL failures as __SSL and __AUTHENTICATION (broker connection errors);
 * keep the most specific one seen, so that a later "all brokers down"
 * does not hide why they are down.
 */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kcheck *kc = opaque;
	enum kc_fail f;

	(void)rk;
	switch (err) {
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
		f = KC_SASL;
		break;
	case RD_KAFKA_RESP_ERR__SSL:
		f = KC_TLS;
		break;
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR__RESOLVE:
		f = KC_TRANSPORT;
		break;
	default:
		f = KC_OTHER;
		break;
	}
	log_debug("kafka: %s: %s", rd_kafka_err2name(err), reason);
	/* "1/1 brokers are down" says less than the connection's error. */
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && kc->fail >= f)
		return;
	if (f >= kc->fail) {
		kc->fail = f;
		snprintf(kc->why, sizeof(kc->why), "%s", reason);
	}
}

/* librdkafka's own lines (log.queue: on this thread): debug only, the
 * report says what matters. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	log_debug("kafka: %s: %s", fac, buf);
}

static void
problem(struct kcheck *kc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One line of the report that is a problem (exit status 1). */
static void
problem(struct kcheck *kc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(kc->out, fmt, ap);
	va_end(ap);
	fputc('\n', kc->out);
	kc->problems++;
}

static void
conf_get(const rd_kafka_conf_t *conf, const char *name, char *buf,
    size_t len)
{
	size_t n = len;

	if (rd_kafka_conf_get(conf, name, buf, &n) != RD_KAFKA_CONF_OK)
		buf[0] = '\0';
}

/*
 * A hint for a SASL failure: librdkafka before 2.6.1 repeats the client
 * nonce in the SCRAM client-final-message; Apache Kafka 4.x compares the
 * nonce strictly (RFC 5802; CVE-2024-56128) and answers "invalid
 * credentials" however right the password is.
 */
static void
scram_hint(struct kcheck *kc, const char *mech)
{
	if (strncmp(mech, "SCRAM-", 6) != 0 ||
	    rd_kafka_version() >= SCRAM_FIXED_VERSION)
		return;
	fprintf(kc->out, "  note: librdkafka %s (before 2.6.1) cannot "
	    "authenticate with SCRAM to Apache Kafka 4.x brokers, even with "
	    "the right password (it repeats the client nonce, which Kafka 4 "
	    "refuses as invalid credentials): use SASL/PLAIN over TLS, client "
	    "certificates, or librdkafka 2.6.1 or later\n",
	    rd_kafka_version_str());
}

/* Wait for a broker to answer metadata: connected, TLS and SASL done. */
static bool
connect_wait(struct kcheck *kc)
{
	int64_t end = w2k_mono_us() + (int64_t)KCHECK_CONNECT_MS * 1000;
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;

	while (w2k_mono_us() < end) {
		err = rd_kafka_metadata(kc->rk, 0, NULL, &md, 1000);
		rd_kafka_poll(kc->rk, 0);	/* error_cb */
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			rd_kafka_metadata_destroy(md);
			return true;
		}
		/* librdkafka retries these for ever: no use waiting. */
		if (kc->fail == KC_SASL || kc->fail == KC_TLS)
			return false;
		if (kc->fail == KC_NONE) {
			kc->fail = KC_OTHER;
			snprintf(kc->why, sizeof(kc->why), "%s",
			    rd_kafka_err2str(err));
		}
	}
	return false;
}

static bool
leader_known(const struct kcheck *kc, int32_t id)
{
	for (size_t i = 0; i < kc->nok; i++)
		if (kc->ok_leaders[i] == id)
			return true;
	return false;
}

/*
 * Is every leader of the topic reachable? One partition per leader not yet
 * known reachable: its offsets are asked of the leader itself (ListOffsets
 * goes to the partition's leader, over a connection of its own, with the
 * same TLS and SASL). Writes the brokers to buf; false on the first that
 * does not answer (its id and the error in buf).
 */
static bool
leaders_reachable(struct kcheck *kc, const struct rd_kafka_metadata_topic *mt,
    char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < mt->partition_cnt; i++) {
		const struct rd_kafka_metadata_partition *mp = &mt->partitions[i];
		rd_kafka_resp_err_t err;
		int64_t lo, hi;
		bool seen = false;

		for (int j = 0; j < i; j++)
			if (mt->partitions[j].leader == mp->leader)
				seen = true;
		if (seen)
			continue;
		if (!leader_known(kc, mp->leader)) {
			err = rd_kafka_query_watermark_offsets(kc->rk,
			    mt->topic, mp->id, &lo, &hi, KCHECK_REQUEST_MS);
			if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
				snprintf(buf, len, "the leader of partition "
				    "%" PRId32 ", broker %" PRId32 ", does not "
				    "answer: %s", mp->id, mp->leader,
				    rd_kafka_err2str(err));
				return false;
			}
			if (kc->nok < MAX_LEADERS)
				kc->ok_leaders[kc->nok++] = mp->leader;
		}
		if (n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%" PRId32,
			    n == 0 ? "" : ", ", mp->leader);
	}
	return true;
}

#if RD_KAFKA_VERSION >= AUTHZ_OPS_VERSION
/*
 * WRITE authorization, from the authorized operations DescribeTopics
 * returns (KIP-430; librdkafka 2.3). 1 allowed, 0 not, -1 unknown (the
 * broker did not say).
 */
static int
write_allowed(struct kcheck *kc, const char *topic)
{
	const char *names[1] = { topic };
	rd_kafka_TopicCollection_t *tc;
	rd_kafka_AdminOptions_t *opts;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev;
	rd_kafka_error_t *e;
	int allowed = -1;

	if ((q = rd_kafka_queue_new(kc->rk)) == NULL)
		return -1;
	tc = rd_kafka_TopicCollection_of_topic_names(names, 1);
	opts = rd_kafka_AdminOptions_new(kc->rk,
	    RD_KAFKA_ADMIN_OP_DESCRIBETOPICS);
	rd_kafka_AdminOptions_set_request_timeout(opts, KCHECK_REQUEST_MS,
	    NULL, 0);
	if ((e = rd_kafka_AdminOptions_set_include_authorized_operations(opts,
	    1)) != NULL)
		rd_kafka_error_destroy(e);
	rd_kafka_DescribeTopics(kc->rk, tc, opts, q);
	ev = rd_kafka_queue_poll(q, KCHECK_REQUEST_MS + 1000);
	if (ev != NULL && rd_kafka_event_error(ev) == 0) {
		const rd_kafka_DescribeTopics_result_t *res =
		    rd_kafka_event_DescribeTopics_result(ev);
		const rd_kafka_TopicDescription_t **td;
		size_t ntd = 0, nops = 0;

		td = res ? rd_kafka_DescribeTopics_result_topics(res, &ntd) :
		    NULL;
		if (ntd == 1 && rd_kafka_TopicDescription_error(td[0]) == NULL) {
			const rd_kafka_AclOperation_t *ops =
			    rd_kafka_TopicDescription_authorized_operations(
			    td[0], &nops);

			if (ops != NULL) {
				allowed = 0;
				for (size_t i = 0; i < nops; i++)
					if (ops[i] == RD_KAFKA_ACL_OPERATION_WRITE ||
					    ops[i] == RD_KAFKA_ACL_OPERATION_ALL)
						allowed = 1;
			}
		}
	}
	if (ev != NULL)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_TopicCollection_destroy(tc);
	rd_kafka_queue_destroy(q);
	return allowed;
}
#endif

/* One topic: exists, partitions, leaders, WRITE. */
static void
check_topic(struct kcheck *kc, const char *name, bool dead_letter)
{
	const struct rd_kafka_metadata *md = NULL;
	const struct rd_kafka_metadata_topic *mt;
	rd_kafka_topic_t *rkt;
	rd_kafka_resp_err_t err;
	char leaders[256], write[128];
	const char *what = dead_letter ? " (dead-letter topic)" : "";

	if ((rkt = rd_kafka_topic_new(kc->rk, name, NULL)) == NULL) {
		problem(kc, "  %s%s: invalid topic name: %s", name, what,
		    rd_kafka_err2str(rd_kafka_last_error()));
		return;
	}
	err = rd_kafka_metadata(kc->rk, 0, rkt, &md, KCHECK_REQUEST_MS);
	rd_kafka_topic_destroy(rkt);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		problem(kc, "  %s%s: no metadata: %s", name, what,
		    rd_kafka_err2str(err));
		return;
	}
	mt = md->topic_cnt == 1 ? &md->topics[0] : NULL;
	if (mt == NULL) {
		problem(kc, "  %s%s: not in the metadata", name, what);
	} else if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
		problem(kc, "  %s%s: does not exist: create it (docs/kafka.md)",
		    name, what);
	} else if (mt->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
		problem(kc, "  %s%s: not authorized (DESCRIBE): grant WRITE "
		    "and DESCRIBE on it", name, what);
	} else if (mt->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		problem(kc, "  %s%s: %s", name, what, rd_kafka_err2str(mt->err));
	} else if (mt->partition_cnt == 0) {
		problem(kc, "  %s%s: no partitions", name, what);
	} else if (!leaders_reachable(kc, mt, leaders, sizeof(leaders))) {
		problem(kc, "  %s%s: %d partitions, but %s", name, what,
		    mt->partition_cnt, leaders);
	} else {
		int allowed = -1;

#if RD_KAFKA_VERSION >= AUTHZ_OPS_VERSION
		allowed = write_allowed(kc, name);
		snprintf(write, sizeof(write), "%s", allowed == 1 ?
		    "WRITE authorized" : "WRITE not checked (the broker did "
		    "not say)");
#else
		snprintf(write, sizeof(write), "WRITE not checked (librdkafka "
		    "%s cannot ask; 2.3 can)", rd_kafka_version_str());
#endif
		if (allowed == 0)
			problem(kc, "  %s%s: %d partitions, leaders reachable "
			    "(broker %s), but WRITE is not authorized: grant "
			    "it", name, what, mt->partition_cnt, leaders);
		else
			fprintf(kc->out, "  %s%s: ok, %d partitions, leaders "
			    "reachable (broker %s); %s\n", name, what,
			    mt->partition_cnt, leaders, write);
	}
	rd_kafka_metadata_destroy(md);
}

/* Has name been checked already (an earlier route, the dead letters)? */
static bool
topic_seen(const struct cfg_kafka *k, size_t upto, const char *name)
{
	for (size_t i = 0; i < upto; i++)
		if (strcmp(k->routes[i].topic, name) == 0)
			return true;
	return false;
}

int
kcheck_run(const struct cfg *cfg, FILE *out)
{
	const struct cfg_kafka *k = &cfg->kafka;
	struct kcheck kc = { .out = out };
	rd_kafka_conf_t *conf;
	char errstr[512], proto[32], mech[64];
	int r;

	if ((r = ksink_conf_new(cfg, &conf)) != 0)
		return r;
	conf_get(conf, "security.protocol", proto, sizeof(proto));
	for (char *c = proto; *c != '\0'; c++)	/* librdkafka says "sasl_ssl" */
		*c = (char)toupper((unsigned char)*c);
	conf_get(conf, "sasl.mechanisms", mech, sizeof(mech));
	/* A check creates nothing, even on brokers that auto-create, and
	 * needs no statistics. */
	if (rd_kafka_conf_set(conf, "allow.auto.create.topics", "false",
	    errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "statistics.interval.ms", "0", errstr,
	    sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		log_err("kafka: %s", errstr);
		rd_kafka_conf_destroy(conf);
		return W2K_EINVAL;
	}
	rd_kafka_conf_set_opaque(conf, &kc);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	if ((kc.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
	    sizeof(errstr))) == NULL) {
		log_err("kafka: cannot create a client: %s", errstr);
		rd_kafka_conf_destroy(conf);	/* not taken on failure */
		return W2K_EINVAL;
	}
	rd_kafka_set_log_queue(kc.rk, NULL);	/* log_cb on this thread */

	if (!connect_wait(&kc)) {
		problem(&kc, "kafka %s (%s%s%s): cannot connect: %s%s",
		    k->brokers, proto, mech[0] && strstr(proto, "SASL") ?
		    ", SASL " : "", strstr(proto, "SASL") ? mech : "",
		    kc.fail == KC_SASL ? "SASL authentication failed: " :
		    kc.fail == KC_TLS ? "TLS failed: " : "", kc.why);
		if (kc.fail == KC_SASL)
			scram_hint(&kc, mech);
		fprintf(out, "  topics not checked\n");
	} else {
		fprintf(out, "kafka %s (%s%s%s): connected%s%s\n", k->brokers,
		    proto, strstr(proto, "SASL") ? ", SASL " : "",
		    strstr(proto, "SASL") ? mech : "",
		    strstr(proto, "SSL") ? ", TLS ok" : "",
		    strstr(proto, "SASL") ? ", SASL authentication ok" : "");
		for (size_t i = 0; i < k->nroutes; i++)
			if (!topic_seen(k, i, k->routes[i].topic))
				check_topic(&kc, k->routes[i].topic, false);
		if (!topic_seen(k, k->nroutes, k->dead_letter_topic))
			check_topic(&kc, k->dead_letter_topic, true);
	}
	rd_kafka_poll(kc.rk, 0);
	if (rd_kafka_fatal_error(kc.rk, errstr, sizeof(errstr)) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR)
		problem(&kc, "producer: fatal error: %s", errstr);
	rd_kafka_destroy(kc.rk);
	if (kc.problems == 0)
		fprintf(out, "--check-kafka: all well\n");
	else
		fprintf(out, "--check-kafka: %d problem%s\n", kc.problems,
		    kc.problems == 1 ? "" : "s");
	return kc.problems;
}
