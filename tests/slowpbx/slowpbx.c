/*
 * slowpbx — a hostile PBX for the slow-loris tests (200-229): it accepts
 * the daemon's connections and then stalls or trickles, one way per run.
 *
 *   slowpbx --mode MODE --port-file FILE [--log FILE] [--interval MS]
 *           [--chunk BYTES] [--cert FILE --key FILE] [--lifetime S]
 *
 * Modes (what each connection gets):
 *   accept         TCP accepted, then nothing: no byte read or written, so
 *                  the TLS handshake never starts
 *   tls-trickle    a TLS record header announcing 16 KiB of handshake, then
 *                  one zero byte per --interval: the handshake never ends
 *   http-trickle   a real TLS handshake and the upgrade request read, then
 *                  the 101 response one byte per --interval, never ending
 *   upgrade-close  a real TLS handshake and the upgrade request read, then
 *                  the connection reset (no close_notify): no response
 *   auth-echo      TLS and upgrade, then the auth command refused with an
 *                  error text that repeats the password it carried (a PBX
 *                  echoing its input), then the connection held open
 *   mute           TLS and a valid upgrade (101), then nothing at all: the
 *                  auth command is never answered, pings never ponged
 *   frame-trickle  TLS, upgrade, the auth command answered with status 0,
 *                  then a text frame header announcing 1 TiB and --chunk
 *                  payload bytes (default 1) per --interval: the frame never
 *                  completes. (lws 4.1 hands a frame over in pieces of its
 *                  rx buffer, 64 KiB for the daemon: a --chunk of 65536 or
 *                  more makes a piece arrive every interval.)
 * (--cert and --key are needed by every mode but accept and tls-trickle;
 * --chunk applies to the trickles after the TLS handshake.)
 *
 * A test buddy like pbxsim, but raw: plain sockets and OpenSSL with
 * blocking I/O, one thread per connection, since lws cannot be made to
 * misbehave this way. Loopback only; at most 32 connections at once (more
 * are closed at once); each lives at most --lifetime seconds (default 120)
 * so that nothing outlives a test by long. It never writes what the client
 * sent anywhere (the auth command holds a password) but, in auth-echo, back
 * to the client.
 *
 * Output: the port on --port-file (temp file + rename), and one line per
 * happening on --log (appended, flushed; also on stderr with "slowpbx: "),
 * with seconds since the start:
 *   <t> LISTEN <port>
 *   <t> CONNECT <c>
 *   <t> TLS <c>                       handshake done
 *   <t> HANGUP <c>                    we closed it (upgrade-close)
 *   <t> UPGRADE <c>                   101 sent (mute, frame-trickle)
 *   <t> AUTH <c>                      auth reply sent (frame-trickle,
 *                                     auth-echo)
 *   <t> CLOSED <c> after <s> s, <n> bytes trickled
 *   <t> EXPIRED <c> after <s> s       --lifetime reached: we closed it
 *   <t> EXIT
 * CLOSED means the client went away (EOF, reset, or a failed write).
 *
 * Exit status: 0 after SIGTERM/SIGINT, 64 usage error, 1 other failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "../lib/rawpbx.h"

#define MAX_CONNS	32
#define FRAME_LEN	(1ULL << 40)	/* what frame-trickle announces */
#define CHUNK_MAX	(1024 * 1024)

enum mode { M_ACCEPT, M_TLS_TRICKLE, M_HTTP_TRICKLE, M_UPGRADE_CLOSE,
	M_AUTH_ECHO, M_MUTE, M_FRAME_TRICKLE };

static const char *const mode_names[] = {
	[M_ACCEPT] = "accept", [M_TLS_TRICKLE] = "tls-trickle",
	[M_HTTP_TRICKLE] = "http-trickle", [M_UPGRADE_CLOSE] = "upgrade-close",
	[M_AUTH_ECHO] = "auth-echo", [M_MUTE] = "mute",
	[M_FRAME_TRICKLE] = "frame-trickle",
};

static struct {
	enum mode	 mode;
	int		 mode_set;
	const char	*port_file, *log, *cert, *key;
	long		 interval_ms;
	long		 chunk;
	long		 lifetime_s;
} opt = { .interval_ms = 1000, .chunk = 1, .lifetime_s = 120 };

static volatile sig_atomic_t interrupted;
static SSL_CTX *ctx;
static FILE *logfp;
static struct timespec t0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int nconns;
static unsigned next_conn = 1;

struct conn {
	int		 fd;
	unsigned	 id;
	SSL		*ssl;
	struct timespec	 start;
	unsigned long	 trickled;
};

static double
since(const struct timespec *a)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - a->tv_sec) +
	    (double)(now.tv_nsec - a->tv_nsec) / 1e9;
}

static void plog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
plog(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	if (logfp != NULL) {
		fprintf(logfp, "%.3f %s\n", since(&t0), line);
		fflush(logfp);
	}
	fprintf(stderr, "slowpbx: %.3f %s\n", since(&t0), line);
	pthread_mutex_unlock(&lock);
}

/*
 * Whether the client has gone: EOF (RDHUP), reset or error. Waits up to
 * ms for it. Data the client sends meanwhile is left unread (POLLIN is not
 * asked for), so a stalled connection stays stalled.
 */
static int
peer_gone(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

	if (poll(&pfd, 1, ms) == 1 &&
	    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
		return 1;
	return 0;
}

/* One byte, raw or through TLS; -1 when the client is gone. */
static int
put_byte(struct conn *c, unsigned char b)
{
	if (c->ssl != NULL)
		return SSL_write(c->ssl, &b, 1) == 1 ? 0 : -1;
	return send(c->fd, &b, 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int
put_all(struct conn *c, const void *buf, size_t len)
{
	return SSL_write(c->ssl, buf, (int)len) == (int)len ? 0 : -1;
}

/* n bytes of src, from *pos on, cycling. */
static int
put_cycle(struct conn *c, const unsigned char *src, size_t srclen,
    size_t *pos, size_t n)
{
	unsigned char *b;
	int r;

	if (n == 1) {
		r = put_byte(c, src[*pos]);
		*pos = (*pos + 1) % srclen;
		return r;
	}
	if ((b = malloc(n)) == NULL)
		return -1;
	for (size_t k = 0; k < n; k++) {
		b[k] = src[*pos];
		*pos = (*pos + 1) % srclen;
	}
	r = put_all(c, b, n);
	free(b);
	return r;
}

/*
 * Wait for the client to go (or --lifetime), trickling bytes of src (one,
 * or --chunk after the handshake) per --interval when src is not NULL,
 * cycling when it runs out: a frame payload; the 101 text never runs out
 * before the client gives up.
 */
static void
hold(struct conn *c, const unsigned char *src, size_t srclen)
{
	size_t i = 0, n = c->ssl != NULL ? (size_t)opt.chunk : 1;

	for (;;) {
		if (interrupted)
			return;
		if (since(&c->start) > (double)opt.lifetime_s) {
			plog("EXPIRED %u after %.1f s", c->id,
			    since(&c->start));
			return;
		}
		if (peer_gone(c->fd, (int)opt.interval_ms))
			break;
		if (src != NULL) {
			if (put_cycle(c, src, srclen, &i, n) != 0)
				break;
			c->trickled += n;
		}
	}
	plog("CLOSED %u after %.1f s, %lu bytes trickled", c->id,
	    since(&c->start), c->trickled);
}

/*
 * Read one client frame (masked, RFC 6455 §5.3) into buf, unmasked and
 * NUL-terminated. Small frames only: the auth command.
 */
static int
read_frame(struct conn *c, unsigned char *buf, size_t cap)
{
	unsigned char in[4096];
	size_t have = 0, hlen, plen;
	int n;

	for (;;) {
		if (have >= 2) {
			plen = in[1] & 0x7f;
			hlen = 2 + (plen == 126 ? 2 : 0) + 4;
			if (plen == 127)
				return -1;
			if (plen == 126 && have >= 4)
				plen = (size_t)in[2] << 8 | in[3];
			if (plen < cap && have >= hlen + plen)
				break;
			if (plen >= cap || hlen + plen > sizeof(in))
				return -1;
		}
		n = SSL_read(c->ssl, in + have, (int)(sizeof(in) - have));
		if (n <= 0)
			return -1;
		have += (size_t)n;
	}
	for (size_t i = 0; i < plen; i++)
		buf[i] = in[hlen + i] ^ in[hlen - 4 + i % 4];
	buf[plen] = '\0';
	return 0;
}

static void
serve(struct conn *c)
{
	static const unsigned char zero = 0;
	static const unsigned char tls_hdr[] = { 0x16, 0x03, 0x03, 0x40, 0x00 };
	static const char reply[] = "{\"command\":\"auth\",\"id\":\"1\","
	    "\"status\":0}";
	char accept[64], resp[256];
	unsigned char buf[4096];
	int n;

	switch (opt.mode) {
	case M_ACCEPT:
		hold(c, NULL, 0);
		return;
	case M_TLS_TRICKLE:
		for (size_t i = 0; i < sizeof(tls_hdr); i++)
			if (put_byte(c, tls_hdr[i]) != 0)
				goto gone;
		hold(c, &zero, 1);
		return;
	default:
		break;
	}

	if ((c->ssl = SSL_new(ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1) {
		plog("CLOSED %u after %.1f s, TLS handshake failed (%s)",
		    c->id, since(&c->start),
		    ERR_error_string(ERR_get_error(), NULL));
		return;
	}
	plog("TLS %u", c->id);
	if (rawpbx_read_upgrade(c->ssl, accept, sizeof(accept), NULL, 0,
	    NULL) != 0)
		goto gone;
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
	if (opt.mode == M_HTTP_TRICKLE) {
		hold(c, (const unsigned char *)resp, strlen(resp));
		return;
	}
	if (opt.mode == M_UPGRADE_CLOSE) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		/* abortive: a RST, no close_notify */
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		plog("HANGUP %u", c->id);
		return;
	}
	if (put_all(c, resp, strlen(resp)) != 0)
		goto gone;
	plog("UPGRADE %u", c->id);
	if (opt.mode == M_MUTE) {
		hold(c, NULL, 0);
		return;
	}
	if (opt.mode == M_AUTH_ECHO) {
		char *pw, *end, txt[1024];
		int len;

		if (read_frame(c, buf, sizeof(buf)) != 0 ||
		    (pw = strstr((char *)buf, "\"password\":\"")) == NULL ||
		    (end = strchr(pw += 12, '"')) == NULL)
			goto gone;
		len = snprintf(txt, sizeof(txt), "{\"command\":\"auth\","
		    "\"error\":\"password %.*s is wrong\",\"id\":\"1\","
		    "\"status\":-1}", (int)(end - pw), pw);
		if (len <= 0 || len > 125)
			goto gone;
		buf[0] = 0x81;
		buf[1] = (unsigned char)len;
		memcpy(buf + 2, txt, (size_t)len);
		explicit_bzero(txt, sizeof(txt));
		if (put_all(c, buf, 2 + (size_t)len) != 0)
			goto gone;
		explicit_bzero(buf, sizeof(buf));
		plog("AUTH %u", c->id);
		hold(c, NULL, 0);
		return;
	}

	/* frame-trickle: take the auth command, answer it, then trickle. */
	if ((n = SSL_read(c->ssl, buf, sizeof(buf))) <= 0)
		goto gone;
	buf[0] = 0x81;			/* FIN, text */
	buf[1] = (unsigned char)(sizeof(reply) - 1);
	memcpy(buf + 2, reply, sizeof(reply) - 1);
	if (put_all(c, buf, 2 + sizeof(reply) - 1) != 0)
		goto gone;
	plog("AUTH %u", c->id);
	buf[0] = 0x81;
	buf[1] = 127;			/* 64-bit length follows */
	for (int i = 0; i < 8; i++)
		buf[2 + i] = (unsigned char)(FRAME_LEN >> (56 - 8 * i));
	if (put_all(c, buf, 10) != 0)
		goto gone;
	hold(c, (const unsigned char *)"x", 1);
	return;
gone:
	plog("CLOSED %u after %.1f s, %lu bytes trickled", c->id,
	    since(&c->start), c->trickled);
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;

	serve(c);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&lock);
	nconns--;
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: slowpbx --mode accept|tls-trickle|http-trickle|"
	    "upgrade-close|auth-echo|mute|frame-trickle\n"
	    "               --port-file FILE [--log FILE] [--interval MS]"
	    " [--chunk BYTES]\n"
	    "               [--cert FILE --key FILE] [--lifetime S]\n");
}

static int
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "log", required_argument, NULL, 'l' },
		{ "interval", required_argument, NULL, 'i' },
		{ "chunk", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "lifetime", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			for (size_t i = 0; i < sizeof(mode_names) /
			    sizeof(mode_names[0]); i++)
				if (strcmp(optarg, mode_names[i]) == 0) {
					opt.mode = (enum mode)i;
					opt.mode_set = 1;
				}
			if (!opt.mode_set)
				goto bad;
			break;
		case 'P': opt.port_file = optarg; break;
		case 'l': opt.log = optarg; break;
		case 'c': opt.cert = optarg; break;
		case 'k': opt.key = optarg; break;
		case 'i':
			opt.interval_ms = strtol(optarg, &end, 10);
			if (*end != '\0' || opt.interval_ms < 10 ||
			    opt.interval_ms > 60000)
				goto bad;
			break;
		case 'C':
			opt.chunk = strtol(optarg, &end, 10);
			if (*end != '\0' || opt.chunk < 1 ||
			    opt.chunk > CHUNK_MAX)
				goto bad;
			break;
		case 't':
			opt.lifetime_s = strtol(optarg, &end, 10);
			if (*end != '\0' || opt.lifetime_s < 1 ||
			    opt.lifetime_s > 3600)
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
		fprintf(stderr, "slowpbx: bad value: %s\n", optarg);
		return -1;
	}
	if (optind != argc || !opt.mode_set || opt.port_file == NULL ||
	    (opt.mode != M_ACCEPT && opt.mode != M_TLS_TRICKLE &&
	    (opt.cert == NULL || opt.key == NULL))) {
		usage(stderr);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sig;
	pthread_attr_t attr;
	int lfd, port;

	if (parse_args(argc, argv) != 0)
		return 64;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (opt.log != NULL && (logfp = fopen(opt.log, "a")) == NULL) {
		fprintf(stderr, "slowpbx: %s: %s\n", opt.log, strerror(errno));
		return 1;
	}
	if (opt.cert != NULL) {
		if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
		    SSL_CTX_use_certificate_chain_file(ctx, opt.cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, opt.key,
		    SSL_FILETYPE_PEM) != 1) {
			fprintf(stderr, "slowpbx: cannot load %s / %s\n",
			    opt.cert, opt.key);
			ERR_print_errors_fp(stderr);
			return 1;
		}
	}

	memset(&sig, 0, sizeof(sig));
	sig.sa_handler = on_signal;	/* no SA_RESTART: poll() returns */
	sigemptyset(&sig.sa_mask);
	sigaction(SIGTERM, &sig, NULL);
	sigaction(SIGINT, &sig, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((lfd = rawpbx_listen(opt.port_file, &port)) < 0) {
		fprintf(stderr, "slowpbx: cannot listen (port file %s): %s\n",
		    opt.port_file, strerror(errno));
		return 1;
	}
	plog("LISTEN %d (%s)", port, mode_names[opt.mode]);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

	while (!interrupted) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		struct conn *c;
		pthread_t th;
		int fd;

		if (poll(&pfd, 1, 200) != 1)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		pthread_mutex_lock(&lock);
		if (nconns >= MAX_CONNS || (c = calloc(1, sizeof(*c))) ==
		    NULL) {
			pthread_mutex_unlock(&lock);
			close(fd);
			continue;
		}
		nconns++;
		c->id = next_conn++;
		pthread_mutex_unlock(&lock);
		c->fd = fd;
		clock_gettime(CLOCK_MONOTONIC, &c->start);
		plog("CONNECT %u", c->id);
		if (pthread_create(&th, &attr, conn_main, c) != 0) {
			close(fd);
			free(c);
			pthread_mutex_lock(&lock);
			nconns--;
			pthread_mutex_unlock(&lock);
		}
	}
	plog("EXIT");
	close(lfd);
	return 0;
}
