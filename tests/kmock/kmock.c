/*
 * kmock — host librdkafka's mock Kafka cluster on loopback for the tests.
 *
 *   kmock [--brokers N] [--partitions P] [--topics t1,t2,...]
 *         [--bootstrap-file FILE] [--control FIFO]
 *
 * A test buddy (style.md §14.5): there is no Kafka broker in Debian 12, so
 * the integration tests, the demo and the benchmarks talk to the mock
 * cluster that librdkafka carries for its own tests (rdkafka_mock.h, "an
 * experimental public API that is NOT covered by the librdkafka API or ABI
 * stability guarantees"). A producer handle exists only to host the cluster;
 * kmock itself never produces or consumes.
 *
 * On start it creates N brokers (default 3) listening on 127.0.0.1 at
 * kernel-chosen ports, creates every --topics topic with P partitions
 * (default 4) and replication factor min(3, N), writes the bootstrap list to
 * --bootstrap-file (temp file + rename, so readers never see half a line) and
 * prints "BOOTSTRAP <list>" on stdout.
 *
 * It then reads line commands from the --control FIFO (opened O_RDWR, so a
 * writer closing its end never produces EOF) or, without --control, from
 * stdin (EOF on stdin only ends command input; kmock keeps serving until a
 * signal). Each command gets one line on stdout:
 *
 *   down ID | up ID        broker ID (1..N) stops / resumes serving
 *   downall | upall        every broker
 *   create TOPIC PARTS     new topic, replication factor min(3, N)
 *   rtt ID MS              add MS milliseconds of latency to broker ID
 *   topic_error TOPIC ERR  every Metadata answer about TOPIC carries ERR
 *                          (rd_kafka_mock_topic_set_error()): a missing
 *                          ACL (TOPIC_AUTHORIZATION_FAILED) or a topic
 *                          that does not exist (UNKNOWN_TOPIC_OR_PART);
 *                          NO_ERROR lifts it. ERR is librdkafka's error
 *                          name without RD_KAFKA_RESP_ERR_ (as
 *                          rd_kafka_err2name() prints it), or a number.
 *   request_errors KEY ERR N   the next N requests of Kafka API key KEY
 *                          (0 Produce, 3 Metadata, 22 InitProducerId...)
 *                          to any broker fail with ERR
 *                          (rd_kafka_mock_push_request_errors_array()).
 *   broker_errors ID KEY ERR N  the same for broker ID only: with "leader",
 *                          a refusal of one topic (the mock has no ACLs;
 *                          a Produce request fails as a whole, so the
 *                          topic must be the only one its broker leads)
 *   leader TOPIC ID        broker ID leads every partition of TOPIC
 *                          (--partitions of them); the client learns it
 *                          at its next metadata refresh
 *   ping                   does nothing (lets a test wait for kmock)
 *   quit                   exit 0
 *
 *   -> "OK <command as normalised>" or "ERR <command>: <why>"
 *
 * SIGTERM and SIGINT also exit 0.
 *
 * Behaviour of the 2.0.2 mock worth knowing (checked with kcat 1.7.1 and a
 * small acks=all, enable.idempotence=true producer against this helper):
 *  - Auto-creation: any Metadata request naming an unknown topic creates it
 *    (kcat -P, kcat -C, kcat -G and kcat -L -t all did), with the mock's
 *    default of 4 partitions whatever --partitions says (that applies only to
 *    --topics and "create"), replication min(3, N). So a typo in a topic
 *    name is not an error here. Tests should still name every topic in
 *    --topics so partition counts are theirs and nothing depends on this.
 *  - "down ID" closes the broker's connections and refuses new ones
 *    ("Connection refused"); leadership does not move, so records for the
 *    partitions it leads wait in the producer until "up ID".
 *  - All brokers down for 10 s: an acks=all, enable.idempotence=true
 *    producer keeps its records queued (no error while message.timeout.ms,
 *    default 300 s, has not expired, no fatal idempotence error) and
 *    delivers every one of them after "upall", once each and in order per
 *    partition; how soon (1-8 s in three runs) depends on the client's
 *    reconnect backoff (reconnect.backoff.max.ms, 10 s by default).
 *  - Each mock command is a synchronous round trip to the mock's thread,
 *    which can miss its wake-up when commands come back to back (then it
 *    notices them only at its 1 s poll timeout; "downall" took 1-2 s).
 *    kmock waits 20 ms before each mock call, which avoids that; commands
 *    then take about 20 ms per broker. The OK line is printed after the
 *    change took effect, so tests should wait for it rather than sleep.
 *  - Retention: each partition keeps only its last 5 MiB of record batches
 *    (at most 100000 batches; rdkafka_mock.c: max_size, max_cnt, not
 *    settable through the API). Older records are dropped and the log start
 *    offset moves: 200000 records of 400 B to one partition left the last
 *    10855 readable from offset 189145. A test that counts everything with
 *    "kcat -C -o beginning -e" must stay well under 5 MiB per partition (or
 *    add partitions); a benchmark must count while it runs. The upside:
 *    memory stays bounded in long runs. Not a performance reference.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define KMOCK_MAX_BROKERS	32
#define KMOCK_MAX_PARTITIONS	10000
#define KMOCK_LINE_MAX		1024

static volatile sig_atomic_t interrupted;

struct opts {
	int		 brokers;
	int		 partitions;
	const char	*topics;
	const char	*bootstrap_file;
	const char	*control;
};

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: kmock [--brokers N] [--partitions P] [--topics t1,t2,...]\n"
	    "             [--bootstrap-file FILE] [--control FIFO]\n"
	    "commands (FIFO or stdin): down ID | up ID | downall | upall |\n"
	    "             create TOPIC PARTS | rtt ID MS | topic_error TOPIC ERR |\n"
	    "             request_errors APIKEY ERR N |\n"
	    "             broker_errors ID APIKEY ERR N | leader TOPIC ID | ping | quit\n");
}

static int
parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/* Write text to path via temp + rename: readers see all or nothing. */
static int
write_file_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	FILE *fp;
	int n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		fprintf(stderr, "kmock: %s: path too long\n", path);
		return -1;
	}
	if ((fp = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "kmock: %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	if (fputs(text, fp) == EOF || fflush(fp) == EOF ||
	    fsync(fileno(fp)) == -1) {
		fprintf(stderr, "kmock: %s: %s\n", tmp, strerror(errno));
		fclose(fp);
		unlink(tmp);
		return -1;
	}
	if (fclose(fp) == EOF || rename(tmp, path) == -1) {
		fprintf(stderr, "kmock: %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* librdkafka's own log lines (warnings and worse) go to stderr, prefixed. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 4)
		fprintf(stderr, "kmock: rdkafka %s: %s\n", fac, buf);
}

/*
 * Called before every mock call. The 2.0.2 mock thread serves its command
 * queue, then drains its wake-up pipe; a command queued between the two
 * loses its wake-up and waits for the thread's 1 s poll timeout (seen with
 * strace: "downall" took 1-2 s). Letting the thread finish its previous
 * round first avoids that.
 */
static void
mock_settle(void)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

static int
create_topic(rd_kafka_mock_cluster_t *mc, const char *topic, int parts,
    int brokers, char *why, size_t whylen)
{
	rd_kafka_resp_err_t err;

	if (*topic == '\0' || strlen(topic) > 249) {
		snprintf(why, whylen, "bad topic name");
		return -1;
	}
	mock_settle();
	err = rd_kafka_mock_topic_create(mc, topic, parts,
	    brokers < 3 ? brokers : 3);
	if (err) {
		snprintf(why, whylen, "%s", rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

/* A librdkafka error by name ("TOPIC_AUTHORIZATION_FAILED") or number. */
static int
parse_err(const char *s, rd_kafka_resp_err_t *out)
{
	const struct rd_kafka_err_desc *d;
	size_t n;
	int v;

	if (parse_int(s, -200, 200, &v) == 0) {
		*out = (rd_kafka_resp_err_t)v;
		return 0;
	}
	rd_kafka_get_err_descs(&d, &n);
	for (size_t i = 0; i < n; i++)
		if (d[i].name != NULL && strcmp(d[i].name, s) == 0) {
			*out = d[i].code;
			return 0;
		}
	return -1;
}

static int
set_broker(rd_kafka_mock_cluster_t *mc, int id, int up, char *why,
    size_t whylen)
{
	rd_kafka_resp_err_t err;

	mock_settle();
	err = up ? rd_kafka_mock_broker_set_up(mc, id) :
	    rd_kafka_mock_broker_set_down(mc, id);
	if (err) {
		snprintf(why, whylen, "%s", rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

/*
 * Run one command line. Returns 1 for "quit", else 0; the answer line is
 * printed here.
 */
static int
run_command(rd_kafka_mock_cluster_t *mc, const struct opts *o, char *line)
{
	char *argv[5], *save = NULL, *tok, norm[KMOCK_LINE_MAX];
	char why[256] = "";
	int argc = 0, id, n, i, rc = -1;
	size_t off = 0;

	for (tok = strtok_r(line, " \t\r", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\r", &save)) {
		if (argc == 5) {
			printf("ERR %s: too many arguments\n", argv[0]);
			return 0;
		}
		argv[argc++] = tok;
	}
	if (argc == 0)
		return 0;		/* blank lines are not commands */

	norm[0] = '\0';
	for (i = 0; i < argc; i++) {
		n = snprintf(norm + off, sizeof(norm) - off, "%s%s",
		    i ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(norm) - off)
			break;
		off += (size_t)n;
	}

	if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) &&
	    argc == 2) {
		if (parse_int(argv[1], 1, o->brokers, &id) == -1)
			snprintf(why, sizeof(why), "broker id must be 1..%d",
			    o->brokers);
		else
			rc = set_broker(mc, id, argv[0][0] == 'u', why,
			    sizeof(why));
	} else if ((strcmp(argv[0], "downall") == 0 ||
	    strcmp(argv[0], "upall") == 0) && argc == 1) {
		rc = 0;
		for (id = 1; id <= o->brokers && rc == 0; id++)
			rc = set_broker(mc, id, argv[0][0] == 'u', why,
			    sizeof(why));
	} else if (strcmp(argv[0], "create") == 0 && argc == 3) {
		if (parse_int(argv[2], 1, KMOCK_MAX_PARTITIONS, &n) == -1)
			snprintf(why, sizeof(why), "partitions must be 1..%d",
			    KMOCK_MAX_PARTITIONS);
		else
			rc = create_topic(mc, argv[1], n, o->brokers, why,
			    sizeof(why));
	} else if (strcmp(argv[0], "rtt") == 0 && argc == 3) {
		if (parse_int(argv[1], 1, o->brokers, &id) == -1 ||
		    parse_int(argv[2], 0, 600000, &n) == -1) {
			snprintf(why, sizeof(why),
			    "usage: rtt ID(1..%d) MS(0..600000)", o->brokers);
		} else {
			mock_settle();
			if (rd_kafka_mock_broker_set_rtt(mc, id, n) == 0)
				rc = 0;
			else
				snprintf(why, sizeof(why), "set_rtt failed");
		}
	} else if (strcmp(argv[0], "topic_error") == 0 && argc == 3) {
		rd_kafka_resp_err_t err;

		if (parse_err(argv[2], &err) == -1) {
			snprintf(why, sizeof(why), "unknown error %s", argv[2]);
		} else {
			mock_settle();
			rd_kafka_mock_topic_set_error(mc, argv[1], err);
			rc = 0;
		}
	} else if (strcmp(argv[0], "request_errors") == 0 && argc == 4) {
		rd_kafka_resp_err_t err, *v;

		if (parse_int(argv[1], 0, 100, &id) == -1 ||
		    parse_err(argv[2], &err) == -1 ||
		    parse_int(argv[3], 1, 100000, &n) == -1) {
			snprintf(why, sizeof(why), "usage: request_errors "
			    "APIKEY(0..100) ERR N(1..100000)");
		} else if ((v = calloc((size_t)n, sizeof(*v))) == NULL) {
			snprintf(why, sizeof(why), "out of memory");
		} else {
			for (i = 0; i < n; i++)
				v[i] = err;
			mock_settle();
			rd_kafka_mock_push_request_errors_array(mc,
			    (int16_t)id, (size_t)n, v);
			free(v);
			rc = 0;
		}
	} else if (strcmp(argv[0], "broker_errors") == 0 && argc == 5) {
		int key;
		rd_kafka_resp_err_t err;

		if (parse_int(argv[1], 1, o->brokers, &id) == -1 ||
		    parse_int(argv[2], 0, 100, &key) == -1 ||
		    parse_err(argv[3], &err) == -1 ||
		    parse_int(argv[4], 1, 100000, &n) == -1) {
			snprintf(why, sizeof(why), "usage: broker_errors "
			    "ID(1..%d) APIKEY(0..100) ERR N(1..100000)",
			    o->brokers);
		} else {
			mock_settle();
			for (rc = 0, i = 0; i < n && rc == 0; i++)
				if (rd_kafka_mock_broker_push_request_error_rtts(
				    mc, id, (int16_t)key, 1, err, 0) != 0) {
					snprintf(why, sizeof(why), "failed");
					rc = -1;
				}
		}
	} else if (strcmp(argv[0], "leader") == 0 && argc == 3) {
		if (parse_int(argv[2], 1, o->brokers, &id) == -1) {
			snprintf(why, sizeof(why), "broker id must be 1..%d",
			    o->brokers);
		} else {
			mock_settle();
			for (rc = 0, i = 0; i < o->partitions && rc == 0; i++)
				if (rd_kafka_mock_partition_set_leader(mc,
				    argv[1], i, id) != 0) {
					snprintf(why, sizeof(why), "failed");
					rc = -1;
				}
		}
	} else if ((strcmp(argv[0], "ping") == 0 ||
	    strcmp(argv[0], "quit") == 0) && argc == 1) {
		rc = 0;
	} else {
		snprintf(why, sizeof(why), "unknown command or wrong arguments"
		    " (down ID, up ID, downall, upall, create TOPIC PARTS,"
		    " rtt ID MS, topic_error TOPIC ERR,"
		    " request_errors APIKEY ERR N, broker_errors ID APIKEY ERR N,"
		    " leader TOPIC ID, ping, quit)");
	}

	if (rc == 0)
		printf("OK %s\n", norm);
	else
		printf("ERR %s: %s\n", norm, why);
	fflush(stdout);
	return rc == 0 && strcmp(argv[0], "quit") == 0;
}

static int
open_control(const char *path)
{
	struct stat st;
	int fd;

	if (path == NULL)
		return STDIN_FILENO;
	if (stat(path, &st) == -1) {
		if (errno != ENOENT || mkfifo(path, 0600) == -1) {
			fprintf(stderr, "kmock: %s: %s\n", path,
			    strerror(errno));
			return -1;
		}
	} else if (!S_ISFIFO(st.st_mode)) {
		fprintf(stderr, "kmock: %s: not a FIFO\n", path);
		return -1;
	}
	/*
	 * O_RDWR: we hold a writer ourselves, so read() never returns EOF when
	 * the test's "echo down 1 > fifo" closes its end, and open() does not
	 * block waiting for a writer (Linux fifo(7)).
	 */
	if ((fd = open(path, O_RDWR | O_CLOEXEC)) == -1) {
		fprintf(stderr, "kmock: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return fd;
}

/*
 * Read commands until quit, a signal or a fatal read error. Lines longer than
 * KMOCK_LINE_MAX are answered with ERR and skipped.
 */
static void
control_loop(rd_kafka_mock_cluster_t *mc, const struct opts *o, int fd)
{
	char buf[KMOCK_LINE_MAX + 1];
	size_t len = 0;
	int skipping = 0, input = 1;
	struct pollfd pfd;
	ssize_t n;
	char *nl;

	while (!interrupted) {
		pfd.fd = input ? fd : -1;
		pfd.events = POLLIN;
		pfd.revents = 0;
		/* a signal just before poll() is seen 200 ms late, not lost */
		if (poll(&pfd, 1, 200) == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "kmock: poll: %s\n", strerror(errno));
			return;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(fd, buf + len, KMOCK_LINE_MAX - len);
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fprintf(stderr, "kmock: read control: %s\n",
			    strerror(errno));
			return;
		}
		if (n == 0) {
			/* Only stdin can end; keep serving until a signal. */
			fprintf(stderr, "kmock: end of command input; "
			    "running until SIGTERM/SIGINT\n");
			input = 0;
			continue;
		}
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = memchr(buf, '\n', len)) != NULL) {
			*nl = '\0';
			if (!skipping && strlen(buf) != (size_t)(nl - buf)) {
				printf("ERR NUL byte in command\n");
				fflush(stdout);
			} else if (!skipping && run_command(mc, o, buf)) {
				return;
			}
			skipping = 0;
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len);
			buf[len] = '\0';
		}
		if (len == KMOCK_LINE_MAX) {
			if (!skipping) {
				printf("ERR line longer than %d bytes\n",
				    KMOCK_LINE_MAX - 1);
				fflush(stdout);
			}
			skipping = 1;
			len = 0;
		}
	}
}

static const struct option lopts[] = {
	{ "brokers", required_argument, NULL, 'b' },
	{ "partitions", required_argument, NULL, 'p' },
	{ "topics", required_argument, NULL, 't' },
	{ "bootstrap-file", required_argument, NULL, 'f' },
	{ "control", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int
main(int argc, char **argv)
{
	struct opts o = { 3, 4, NULL, NULL, NULL };
	char errstr[512], why[256], *list, *save = NULL, *t;
	rd_kafka_mock_cluster_t *mc;
	struct sigaction sa;
	rd_kafka_conf_t *conf;
	const char *boot;
	rd_kafka_t *rk;
	int c, li = 0, fd, rc = 0;

	while ((c = getopt_long(argc, argv, "h", lopts, &li)) != -1) {
		switch (c) {
		case 'b':
			if (parse_int(optarg, 1, KMOCK_MAX_BROKERS, &o.brokers))
				goto bad;
			break;
		case 'p':
			if (parse_int(optarg, 1, KMOCK_MAX_PARTITIONS,
			    &o.partitions))
				goto bad;
			break;
		case 't':
			o.topics = optarg;
			break;
		case 'f':
			o.bootstrap_file = optarg;
			break;
		case 'c':
			o.control = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
		continue;
bad:
		fprintf(stderr, "kmock: bad value for --%s: %s (brokers 1..%d,"
		    " partitions 1..%d)\n", lopts[li].name, optarg,
		    KMOCK_MAX_BROKERS, KMOCK_MAX_PARTITIONS);
		return 64;
	}
	if (optind < argc) {
		fprintf(stderr, "kmock: unexpected argument %s\n",
		    argv[optind]);
		usage(stderr);
		return 64;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: poll() gets EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((fd = open_control(o.control)) == -1)
		return 1;

	/*
	 * The hosting handle never connects anywhere: no bootstrap.servers (so
	 * silence its "no bootstrap servers" notice by logging warnings only).
	 */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (rd_kafka_conf_set(conf, "client.id", "kmock", errstr,
	    sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kmock: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
	    sizeof(errstr))) == NULL) {
		fprintf(stderr, "kmock: rd_kafka_new: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	if ((mc = rd_kafka_mock_cluster_new(rk, o.brokers)) == NULL) {
		fprintf(stderr, "kmock: cannot create the mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}

	if (o.topics != NULL) {
		if ((list = strdup(o.topics)) == NULL) {
			fprintf(stderr, "kmock: out of memory\n");
			rc = 1;
			goto out;
		}
		for (t = strtok_r(list, ",", &save); t != NULL;
		    t = strtok_r(NULL, ",", &save)) {
			if (create_topic(mc, t, o.partitions, o.brokers, why,
			    sizeof(why)) == -1) {
				fprintf(stderr, "kmock: topic %s: %s\n", t,
				    why);
				rc = 1;
				break;
			}
		}
		free(list);
		if (rc)
			goto out;
	}

	boot = rd_kafka_mock_cluster_bootstraps(mc);
	if (o.bootstrap_file != NULL) {
		char line[1024];

		snprintf(line, sizeof(line), "%s\n", boot);
		if (write_file_atomic(o.bootstrap_file, line) == -1) {
			rc = 1;
			goto out;
		}
	}
	printf("BOOTSTRAP %s\n", boot);
	fflush(stdout);
	fprintf(stderr, "kmock: %d broker(s) at %s\n", o.brokers, boot);

	control_loop(mc, &o, fd);
	fprintf(stderr, "kmock: exiting\n");
out:
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	if (o.control != NULL)
		close(fd);
	return rc;
}
