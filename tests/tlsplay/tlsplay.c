/*
 * tlsplay — a PBX that cuts its WebSocket stream into TLS records of random
 * sizes, for the read-path tests (232): contract §6, "a frame is handled as
 * soon as its last byte has been read from the socket".
 *
 *   tlsplay --cert FILE --key FILE --port-file FILE --frames LIST
 *           [--log FILE] [--subs N] [--seed N] [--seconds S]
 *           [--min-passes N] [--max-passes N] [--long-pause MS]
 *   tlsplay --stamp
 *
 * pbxsim writes one frame per SSL_write() through lws, as a PBX does; the
 * daemon must not depend on that. This buddy, raw sockets and OpenSSL like
 * slowpbx, completes the WSI exchange (TLS, upgrade, every command answered
 * with status 0) and, once --subs subscribes are answered, builds the
 * server-to-client byte stream itself and plays it in passes:
 *  - pass 0, the reference: each frame in its own SSL_write(), sent at once;
 *  - passes 1, 2...: the frames in an order shuffled by the pass's seed,
 *    the stream cut into SSL_write()s of random sizes (1 byte, a few bytes,
 *    up to a record, several records), so that frames are split across
 *    records at random offsets and several frames share a record; the
 *    records gathered in memory and sent to the socket in bursts of random
 *    length, with random short pauses between bursts, and long pauses
 *    (--long-pause, default 250 ms) right after three random frame ends and
 *    after one random byte of the stream. A long pause after a frame end
 *    grows by twice --pause-per-byte (ns, default 0) per byte of that frame,
 *    so that it outlasts the frame's own processing.
 * Each pass ends with everything sent and a long pause. After frame i of a
 * pass (in the order sent, pos) comes a marker frame, a call_start of tenant
 * 7700770077 with session_id pass * 1000000 + pos: the daemon's records are
 * matched to frames through them.
 *
 * --frames LIST: a file naming one frame file per line, each sent verbatim
 * as one text frame. Passes go on until --seconds (default 30) have passed
 * and --min-passes (default 3) are done, or --max-passes are. The seed of
 * pass p >= 1 is --seed + p - 1 (--seed defaults to one from the clock):
 * `--seed S --max-passes 1` replays the pass whose seed was S.
 *
 * Output: the port on --port-file (temp file + rename); on --log (appended,
 * flushed), one line per happening, the first field the wall-clock time
 * (CLOCK_REALTIME, unix seconds with microseconds, the clock of --stamp):
 *   <t> LISTEN <port>             <t> CONNECT <c>
 *   <t> PLAY <c> <frames>         frames per pass (markers not counted)
 *   <t> PASS <p> seed <s>         (pass 0: seed -)
 *   <t> W <p> <pos> <i> f|m       frame i (or its marker) at position pos of
 *                                 pass p has left in full: its last byte
 *                                 was taken by the socket (send() returned)
 *   <t> PASSEND <p>               <t> DONE <passes>
 *   <t> CLOSED <c>                <t> ERROR <what>      <t> EXIT
 *
 * --stamp: a filter, stdin to stdout, each line prefixed with the time it
 * was read and a tab, flushed line by line: the daemon's dry-run output,
 * timed on the same clock.
 *
 * Loopback only; one connection at a time; the first that subscribes plays,
 * the others are answered and held. Exit status: 0 after SIGTERM/SIGINT or
 * the end of --stamp's input, 64 usage error, 1 other failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
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

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "../lib/rawpbx.h"

#define CMD_MAX		(64 * 1024)	/* one client frame */
#define FRAME_MAX	(64L * 1024 * 1024)
#define BURST_MAX	(256 * 1024)	/* bytes gathered before a send */
#define MARKER_TENANT	"7700770077"
#define LONG_AT_ENDS	3		/* long pauses after frame ends */

static struct {
	const char	*cert, *key, *port_file, *frames, *log;
	unsigned	 subs;
	unsigned long long seed;
	int		 seed_set;
	double		 seconds;
	unsigned	 min_passes, max_passes;
	long		 long_pause_ms;
	long		 pause_ns_per_byte;
	int		 stamp;
} opt = { .subs = 1, .seconds = 30, .min_passes = 3, .max_passes = 100000,
	.long_pause_ms = 250 };

static volatile sig_atomic_t interrupted;
static FILE *logfp;

struct frame {
	unsigned char	*data;
	size_t		 len;
};
static struct frame *frames;
static size_t nframes;

/* ------------------------------------------------------------ utilities */

static double
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void plog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
plog(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	double t = now_real();

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (logfp != NULL) {
		fprintf(logfp, "%.6f %s\n", t, line);
		fflush(logfp);
	}
}

/* splitmix64: small, good enough, the same everywhere for a seed */
static uint64_t
rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
rndn(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

static void
sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------ --stamp */

static int
stamp(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		printf("%.6f\t", now_real());
		fwrite(line, 1, (size_t)n, stdout);
		if (line[n - 1] != '\n')
			putchar('\n');
		fflush(stdout);
	}
	free(line);
	return 0;
}

/* ------------------------------------------------------------ frames */

static int
read_file(const char *path, struct frame *f)
{
	FILE *fp = fopen(path, "rb");
	long len;

	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 ||
	    (len = ftell(fp)) < 0 || len > FRAME_MAX ||
	    fseek(fp, 0, SEEK_SET) != 0 ||
	    (f->data = malloc((size_t)len + 1)) == NULL ||
	    fread(f->data, 1, (size_t)len, fp) != (size_t)len) {
		fprintf(stderr, "tlsplay: cannot read %s\n", path);
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	fclose(fp);
	f->len = (size_t)len;
	return 0;
}

static int
load_frames(const char *list)
{
	FILE *fp = fopen(list, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t n;

	if (fp == NULL) {
		fprintf(stderr, "tlsplay: cannot read %s\n", list);
		return -1;
	}
	while ((n = getline(&line, &cap, fp)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (nframes == alloc) {
			struct frame *nf;

			alloc = alloc ? 2 * alloc : 256;
			if ((nf = realloc(frames, alloc * sizeof(*nf))) ==
			    NULL)
				goto fail;
			frames = nf;
		}
		if (read_file(line, &frames[nframes]) != 0)
			goto fail;
		nframes++;
	}
	free(line);
	fclose(fp);
	if (nframes == 0) {
		fprintf(stderr, "tlsplay: no frame in %s\n", list);
		return -1;
	}
	return 0;
fail:
	free(line);
	fclose(fp);
	return -1;
}

/* The server's frame header (FIN, text, unmasked) for len bytes. */
static size_t
ws_header(unsigned char *h, size_t len)
{
	h[0] = 0x81;
	if (len < 126) {
		h[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xffff) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		return 4;
	}
	h[1] = 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	return 10;
}

/* ------------------------------------------------------------ stream */

struct stream {
	unsigned char	*buf;
	size_t		 len, cap;
	/* per frame sent: where it ends, what it is */
	size_t		*end;		/* offset just past its last byte */
	size_t		*idx;		/* frame index; (size_t)-1: marker */
	size_t		 n, ncap;
};

static int
stream_put(struct stream *s, const void *p, size_t len)
{
	if (s->len + len > s->cap) {
		size_t cap = s->cap ? s->cap : 1 << 20;
		unsigned char *nb;

		while (cap < s->len + len)
			cap *= 2;
		if ((nb = realloc(s->buf, cap)) == NULL)
			return -1;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, len);
	s->len += len;
	return 0;
}

static int
stream_frame(struct stream *s, const void *p, size_t len, size_t idx)
{
	unsigned char h[10];

	if (s->n == s->ncap) {
		size_t ncap = s->ncap ? 2 * s->ncap : 1024;
		size_t *e = realloc(s->end, ncap * sizeof(*e));
		size_t *x;

		if (e == NULL)
			return -1;
		s->end = e;
		if ((x = realloc(s->idx, ncap * sizeof(*x))) == NULL)
			return -1;
		s->idx = x;
		s->ncap = ncap;
	}
	if (stream_put(s, h, ws_header(h, len)) != 0 ||
	    stream_put(s, p, len) != 0)
		return -1;
	s->end[s->n] = s->len;
	s->idx[s->n++] = idx;
	return 0;
}

/* The pass's stream: the frames in order[], each followed by its marker. */
static int
stream_build(struct stream *s, unsigned pass, const size_t *order)
{
	char m[256];

	s->len = s->n = 0;
	for (size_t pos = 0; pos < nframes; pos++) {
		int ml = snprintf(m, sizeof(m), "{\"event_type\":\"call_start\","
		    "\"session_id\":\"%llu\",\"tenant_id\":\"" MARKER_TENANT
		    "\",\"call_id\":\"mark-%u-%zu\",\"time\":\"1705051422\"}",
		    (unsigned long long)pass * 1000000ULL + pos, pass, pos);

		if (stream_frame(s, frames[order[pos]].data,
		    frames[order[pos]].len, order[pos]) != 0 ||
		    stream_frame(s, m, (size_t)ml, (size_t)-1) != 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ connection */

struct conn {
	int		 fd;
	unsigned	 id;
	SSL		*ssl;
	BIO		*out;		/* memory BIO: SSL's wbio */
	unsigned char	 in[CMD_MAX + 16];
	size_t		 have;
	unsigned	 replies, subs;
	/* what has left, for the W lines */
	unsigned	 pass;
	size_t		 sent, next_w;	/* stream bytes sent; frames logged */
};

/* Send what SSL wrote into the memory BIO; blocking. */
static int
flush_out(struct conn *c)
{
	char *p;
	long n = BIO_get_mem_data(c->out, &p);

	while (n > 0) {
		ssize_t w = send(c->fd, p, (size_t)n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR && !interrupted)
				continue;
			return -1;
		}
		p += w;
		n -= w;
	}
	(void)BIO_reset(c->out);
	return 0;
}

/* Plaintext bytes of the stream up to end are written and sent: log W. */
static void
log_sent(struct conn *c, const struct stream *s, size_t upto)
{
	c->sent = upto;
	while (c->next_w < s->n && s->end[c->next_w] <= c->sent) {
		size_t k = c->next_w++;

		plog("W %u %zu %zu %c", c->pass, k / 2,
		    s->idx[k] == (size_t)-1 ? s->idx[k - 1] : s->idx[k],
		    s->idx[k] == (size_t)-1 ? 'm' : 'f');
	}
}

static int
ssl_write_all(struct conn *c, const void *p, size_t len)
{
	/* into the memory BIO: never blocks, never short */
	return SSL_write(c->ssl, p, (int)len) == (int)len ? 0 : -1;
}

/* One text frame in one TLS record, as a PBX answers a command. */
static int
send_text(struct conn *c, const char *txt)
{
	unsigned char b[10 + 256];
	size_t len = strlen(txt), hl;

	if (len > 256)
		return -1;
	hl = ws_header(b, len);
	memcpy(b + hl, txt, len);
	if (ssl_write_all(c, b, hl + len) != 0)
		return -1;
	return flush_out(c);
}

/*
 * One client frame (masked), unmasked into buf (NUL-terminated); its
 * opcode, or -1 when the client is gone. Extra bytes stay in c->in.
 */
static int
read_client_frame(struct conn *c, char *buf, size_t cap, size_t *len)
{
	for (;;) {
		if (c->have >= 2) {
			size_t plen = c->in[1] & 0x7f, hl = 2;

			if (plen == 126) {
				hl = 4;
				if (c->have >= 4)
					plen = (size_t)c->in[2] << 8 | c->in[3];
			} else if (plen == 127) {
				return -1;	/* not from this client */
			}
			hl += (c->in[1] & 0x80) ? 4 : 0;
			if (plen >= cap || hl + plen > sizeof(c->in))
				return -1;
			if (c->have >= hl + plen) {
				const unsigned char *mk = c->in + hl - 4;
				int op = c->in[0] & 0x0f;

				for (size_t i = 0; i < plen; i++)
					buf[i] = (char)(c->in[hl + i] ^
					    ((c->in[1] & 0x80) ? mk[i % 4] : 0));
				buf[plen] = '\0';
				*len = plen;
				memmove(c->in, c->in + hl + plen,
				    c->have - hl - plen);
				c->have -= hl + plen;
				return op;
			}
		}
		int n = SSL_read(c->ssl, c->in + c->have,
		    (int)(sizeof(c->in) - c->have));

		if (n <= 0)
			return -1;
		c->have += (size_t)n;
		if (flush_out(c) != 0)	/* anything TLS wanted to say */
			return -1;
	}
}

static int
read_upgrade(struct conn *c)
{
	char accept[64], resp[256];

	if (rawpbx_read_upgrade(c->ssl, accept, sizeof(accept), c->in,
	    sizeof(c->in), &c->have) != 0)
		return -1;
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
	if (ssl_write_all(c, resp, strlen(resp)) != 0)
		return -1;
	return flush_out(c);
}

/* Answer commands until --subs subscribes are answered. */
static int
answer_commands(struct conn *c)
{
	static char buf[CMD_MAX + 1];
	size_t len;
	int op;

	while (c->subs < opt.subs) {
		cJSON *j, *cmd;
		char reply[256];

		if ((op = read_client_frame(c, buf, sizeof(buf), &len)) < 0 ||
		    op == 8)
			return -1;
		if (op != 1)
			continue;		/* ping, pong */
		if ((j = cJSON_ParseWithLength(buf, len)) == NULL)
			return -1;
		cmd = cJSON_GetObjectItemCaseSensitive(j, "command");
		snprintf(reply, sizeof(reply), "{\"command\":\"%s\",\"id\":"
		    "\"%u\",\"status\":0}", cJSON_IsString(cmd) &&
		    strlen(cmd->valuestring) < 32 ? cmd->valuestring : "",
		    ++c->replies);
		if (cJSON_IsString(cmd) &&
		    strcmp(cmd->valuestring, "subscribe") == 0)
			c->subs++;
		cJSON_Delete(j);
		explicit_bzero(buf, len);	/* the auth command's password */
		if (send_text(c, reply) != 0)
			return -1;
	}
	return 0;
}

/* A write size: 1 byte, a few, up to a record, or several records. */
static size_t
write_size(uint64_t *rs)
{
	uint64_t r = rndn(rs, 100);

	if (r < 15)
		return 1;
	if (r < 40)
		return 2 + rndn(rs, 63);
	if (r < 70)
		return 65 + rndn(rs, 1984);
	if (r < 90)
		return 2049 + rndn(rs, 14336);
	return 16385 + rndn(rs, 49152);
}

static int
burst_end(struct conn *c, const struct stream *s, size_t off, long pause_us)
{
	if (flush_out(c) != 0)
		return -1;
	log_sent(c, s, off);
	if (pause_us > 0)
		sleep_us(pause_us);
	return interrupted ? -1 : 0;
}

static int
play_pass(struct conn *c, struct stream *s, unsigned pass, uint64_t seed)
{
	long long_us = opt.long_pause_ms * 1000;
	size_t *order, long_end[LONG_AT_ENDS], long_len[LONG_AT_ENDS];
	size_t long_byte, off = 0;
	uint64_t rs = seed;
	int r = -1;

	if ((order = malloc(nframes * sizeof(*order))) == NULL)
		return -1;
	for (size_t i = 0; i < nframes; i++)
		order[i] = i;
	for (size_t i = nframes - 1; pass > 0 && i > 0; i--) {
		size_t j = (size_t)rndn(&rs, i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	if (stream_build(s, pass, order) != 0)
		goto out;
	if (pass == 0)
		plog("PASS 0 seed -");
	else
		plog("PASS %u seed %llu", pass, (unsigned long long)seed);
	c->pass = pass;
	c->sent = c->next_w = 0;

	if (pass == 0) {		/* one SSL_write per frame, sent at once */
		size_t start = 0;

		for (size_t k = 0; k < s->n; k++) {
			if (ssl_write_all(c, s->buf + start,
			    s->end[k] - start) != 0 ||
			    burst_end(c, s, s->end[k], 0) != 0)
				goto out;
			start = s->end[k];
		}
		r = burst_end(c, s, s->len, long_us);
		goto out;
	}

	/* long pauses: after three frame ends (any frame) and one byte */
	for (int k = 0; k < LONG_AT_ENDS; k++) {
		size_t f = (size_t)rndn(&rs, s->n);

		long_end[k] = s->end[f];
		long_len[k] = s->end[f] - (f ? s->end[f - 1] : 0);
	}
	long_byte = 1 + (size_t)rndn(&rs, s->len - 1);

	while (off < s->len) {
		size_t n = write_size(&rs), stop = s->len, gathered;
		size_t stop_len = 0;
		int at_long = 0;

		/* end this write at the next long-pause point, if it is near */
		for (int k = 0; k < LONG_AT_ENDS; k++)
			if (long_end[k] > off && long_end[k] < stop) {
				stop = long_end[k];
				stop_len = long_len[k];
			}
		if (long_byte > off && long_byte < stop) {
			stop = long_byte;
			stop_len = 0;
		}
		if (n >= stop - off) {
			n = stop - off;
			at_long = stop < s->len;
		}
		if (ssl_write_all(c, s->buf + off, n) != 0)
			goto out;
		off += n;
		gathered = (size_t)BIO_pending(c->out);
		if (at_long) {
			/* longer than the frame's own work may take */
			if (burst_end(c, s, off, long_us + (long)(stop_len *
			    (size_t)opt.pause_ns_per_byte / 1000) * 2) != 0)
				goto out;
		} else if (rndn(&rs, 4) == 0 || gathered >= BURST_MAX) {
			uint64_t p = rndn(&rs, 100);

			if (burst_end(c, s, off, p < 60 ? 0 :
			    (long)rndn(&rs, 2000)) != 0)
				goto out;
		}
	}
	r = burst_end(c, s, s->len, long_us);
out:
	if (r == 0)
		plog("PASSEND %u", pass);
	free(order);
	return r;
}

static void
play(struct conn *c)
{
	struct stream s = { 0 };
	double start = now_real();
	unsigned pass;

	plog("PLAY %u %zu", c->id, nframes);
	for (pass = 0; pass <= opt.max_passes; pass++) {
		if (pass > opt.min_passes &&
		    now_real() - start >= opt.seconds)
			break;
		if (play_pass(c, &s, pass, opt.seed + pass - 1) != 0) {
			plog("ERROR %u pass %u not played to its end", c->id,
			    pass);
			pass = 0;
			break;
		}
	}
	if (pass > 0)
		plog("DONE %u", pass);
	free(s.buf);
	free(s.end);
	free(s.idx);
}

/* Until the client goes (EOF, reset) or a signal; what it sends is read. */
static void
hold(struct conn *c)
{
	unsigned char b[4096];

	while (!interrupted) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		if (poll(&pfd, 1, 200) != 1)
			continue;
		int n = SSL_read(c->ssl, b, sizeof(b));

		if (n <= 0 && SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ)
			return;
		if (flush_out(c) != 0)
			return;
	}
}

static void
serve(struct conn *c, SSL_CTX *ctx, int *played)
{
	if ((c->ssl = SSL_new(ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1 ||
	    (c->out = BIO_new(BIO_s_mem())) == NULL) {
		plog("ERROR %u TLS handshake failed", c->id);
		return;
	}
	/*
	 * From now on SSL writes into c->out and flush_out() sends it.
	 * SSL_set_fd() gave SSL two references to one socket BIO (rbio and
	 * wbio): SSL_set0_wbio() drops the wbio one and owns c->out.
	 */
	SSL_set0_wbio(c->ssl, c->out);
	if (read_upgrade(c) != 0 || answer_commands(c) != 0) {
		plog("ERROR %u exchange failed", c->id);
		return;
	}
	if (!*played) {
		*played = 1;
		play(c);
	}
	hold(c);
}

/* ------------------------------------------------------------ main */

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: tlsplay --cert FILE --key FILE --port-file FILE"
	    " --frames LIST\n"
	    "               [--log FILE] [--subs N] [--seed N] [--seconds S]\n"
	    "               [--min-passes N] [--max-passes N]"
	    " [--long-pause MS]\n"
	    "               [--pause-per-byte NS]\n"
	    "       tlsplay --stamp\n");
}

static int
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "frames", required_argument, NULL, 'f' },
		{ "log", required_argument, NULL, 'l' },
		{ "subs", required_argument, NULL, 'u' },
		{ "seed", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "min-passes", required_argument, NULL, 'm' },
		{ "max-passes", required_argument, NULL, 'M' },
		{ "long-pause", required_argument, NULL, 'L' },
		{ "pause-per-byte", required_argument, NULL, 'B' },
		{ "stamp", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned long long v;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		errno = 0;
		switch (c) {
		case 'c': opt.cert = optarg; break;
		case 'k': opt.key = optarg; break;
		case 'P': opt.port_file = optarg; break;
		case 'f': opt.frames = optarg; break;
		case 'l': opt.log = optarg; break;
		case 'T': opt.stamp = 1; break;
		case 's':
			opt.seed = strtoull(optarg, &end, 10);
			if (*end != '\0' || errno != 0)
				goto bad;
			opt.seed_set = 1;
			break;
		case 'S':
			opt.seconds = strtod(optarg, &end);
			if (*end != '\0' || !(opt.seconds >= 0) ||
			    opt.seconds > 86400)
				goto bad;
			break;
		case 'u': case 'm': case 'M': case 'L': case 'B':
			v = strtoull(optarg, &end, 10);
			if (*end != '\0' || errno != 0 || v > 1000000)
				goto bad;
			if (c == 'u')
				opt.subs = (unsigned)v;
			else if (c == 'm')
				opt.min_passes = (unsigned)v;
			else if (c == 'M')
				opt.max_passes = (unsigned)v;
			else if (c == 'B')
				opt.pause_ns_per_byte = (long)v;
			else
				opt.long_pause_ms = (long)v;
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
		fprintf(stderr, "tlsplay: bad value: %s\n", optarg);
		return -1;
	}
	if (optind != argc || (!opt.stamp && (opt.cert == NULL ||
	    opt.key == NULL || opt.port_file == NULL ||
	    opt.frames == NULL))) {
		usage(stderr);
		return -1;
	}
	if (opt.min_passes > opt.max_passes)
		opt.min_passes = opt.max_passes;
	return 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sig;
	unsigned next_conn = 1;
	int lfd, port, played = 0;
	SSL_CTX *ctx;

	if (parse_args(argc, argv) != 0)
		return 64;
	if (opt.stamp)
		return stamp();
	if (!opt.seed_set)
		opt.seed = (unsigned long long)time(NULL) * 1000003ULL +
		    (unsigned long long)getpid();
	if (load_frames(opt.frames) != 0)
		return 1;
	if (opt.log != NULL && (logfp = fopen(opt.log, "a")) == NULL) {
		fprintf(stderr, "tlsplay: %s: %s\n", opt.log, strerror(errno));
		return 1;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, opt.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, opt.key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "tlsplay: cannot load %s / %s\n", opt.cert,
		    opt.key);
		ERR_print_errors_fp(stderr);
		return 1;
	}

	memset(&sig, 0, sizeof(sig));
	sig.sa_handler = on_signal;	/* no SA_RESTART: calls return */
	sigemptyset(&sig.sa_mask);
	sigaction(SIGTERM, &sig, NULL);
	sigaction(SIGINT, &sig, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((lfd = rawpbx_listen(opt.port_file, &port)) < 0) {
		fprintf(stderr, "tlsplay: cannot listen (port file %s): %s\n",
		    opt.port_file, strerror(errno));
		return 1;
	}
	plog("LISTEN %d", port);

	while (!interrupted) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		struct conn *c;
		int fd;

		if (poll(&pfd, 1, 200) != 1)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->id = next_conn++;
		plog("CONNECT %u", c->id);
		serve(c, ctx, &played);
		plog("CLOSED %u", c->id);
		if (c->ssl != NULL)
			SSL_free(c->ssl);	/* frees c->out too */
		else
			BIO_free(c->out);
		close(fd);
		free(c);
	}
	plog("EXIT");
	close(lfd);
	SSL_CTX_free(ctx);
	for (size_t i = 0; i < nframes; i++)
		free(frames[i].data);
	free(frames);
	return 0;
}
