/*
 * http.c — /metrics, /healthz, /readyz on an lws server vhost.
 *
 * Per request: LWS_CALLBACK_HTTP renders the whole body into the
 * connection's buffer (so its Content-Length is known and HTTP/1.1
 * keep-alive works), writes the headers, and asks for WRITEABLE; each
 * WRITEABLE then writes one chunk of at most HTTP_CHUNK bytes (one
 * lws_write() per callback, style.md §13.3-8) until the last, which ends
 * the transaction. http.c never blocks and never touches the PBXs or
 * Kafka: it reads statistics through metrics.h.
 *
 * What bounds a misbehaving client (checked against lws 4.1.6):
 *  - headers larger than lws's header space (max_http_header_data,
 *    4 KiB by default) close the connection;
 *  - a request not complete within HTTP_TIMEOUT_S (timeout_secs_ah_idle),
 *    however slowly it trickles, closes it; so does an idle keep-alive
 *    connection after HTTP_TIMEOUT_S (keepalive_timeout);
 *  - a request body (any method but GET and HEAD) is never read: the
 *    answer is 405 and the connection closes after it (a method lws does
 *    not know at all never reaches us: lws answers 403 and closes);
 *  - beyond HTTP_MAX_CONNS connections, new ones are refused at accept().
 */
#include "http.h"
#include "log.h"
#include "w2k.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_CHUNK		4096	/* body bytes per WRITEABLE */
#define HTTP_KEEP_BUF		(64 * 1024) /* keep a smaller buffer between
					       requests, free a larger one */
#define HTTP_REFUSED_LOG_US	(60LL * 1000 * 1000)

#define TYPE_METRICS	"text/plain; version=0.0.4; charset=utf-8"
#define TYPE_TEXT	"text/plain; charset=utf-8"
#define TYPE_JSON	"application/json"

struct http {
	const struct metrics_src *src;
	struct lws_vhost	*vhost;
	char			*listen;	/* as configured, for logs */
	/* Numeric; lws keeps a pointer to it (iface), so it lives here. */
	char			 addr[INET6_ADDRSTRLEN + 1];
	unsigned		 nconn;		/* connections open now */
	uint64_t		 refused;	/* over HTTP_MAX_CONNS, ever */
	int64_t			 refused_log_us;
};

/* Per connection (lws per-session data; zeroed by lws, freed by lws). */
struct http_conn {
	struct metrics_buf	 body;		/* owned */
	size_t			 sent;
	bool			 busy;		/* a response is on its way */
	bool			 head;		/* HEAD: headers only */
	bool			 close;		/* close after the response */
};

/* ---- one request ------------------------------------------------------- */

static int
body_text(struct http_conn *c, const char *s)
{
	return metrics_buf_add(&c->body, s, strlen(s));
}

/*
 * Choose the answer and render it. Returns the status; *type is set.
 */
static unsigned
answer(struct http *h, struct lws *wsi, struct http_conn *c, const char *path,
    const char **type)
{
	bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	bool head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
	bool ready = false;
	unsigned status = HTTP_STATUS_OK;
	int r;

	*type = TYPE_TEXT;
	c->head = head;
	if (!get && !head) {
		/* A body may follow; we never read it: close afterwards. */
		c->close = true;
		status = HTTP_STATUS_METHOD_NOT_ALLOWED;
		r = body_text(c, "method not allowed\n");
	} else if (strcmp(path, "/metrics") == 0) {
		*type = TYPE_METRICS;
		r = metrics_render(&c->body, h->src);
	} else if (strcmp(path, "/healthz") == 0) {
		/* Answering at all proves the loop runs. */
		r = body_text(c, "ok\n");
	} else if (strcmp(path, "/readyz") == 0) {
		*type = TYPE_JSON;
		r = metrics_readyz(&c->body, h->src, &ready);
		if (!ready)
			status = HTTP_STATUS_SERVICE_UNAVAILABLE;
	} else {
		status = HTTP_STATUS_NOT_FOUND;
		r = body_text(c, "not found\n");
	}
	if (r != 0) {
		log_err("http: %s: cannot render the answer: %s", path,
		    w2k_strerror(r));
		metrics_buf_reset(&c->body);
		*type = TYPE_TEXT;
		status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
		if (body_text(c, "internal error\n") != 0)
			metrics_buf_reset(&c->body);
	}
	return status;
}

static int
on_request(struct http *h, struct lws *wsi, struct http_conn *c,
    const char *path)
{
	uint8_t buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
	    *end = buf + sizeof(buf) - 1;
	const char *type;
	unsigned status;

	if (c->busy)		/* a pipelined request before we finished */
		return -1;
	metrics_buf_reset(&c->body);
	c->sent = 0;
	c->close = false;
	status = answer(h, wsi, c, path ? path : "", &type);
	log_debug("http: %s %s: %u, %zu bytes", c->head ? "HEAD" :
	    c->close ? "(other method)" : "GET", path ? path : "", status,
	    c->body.len);
	if (lws_add_http_common_headers(wsi, status, type, c->body.len, &p,
	    end) != 0 ||
	    lws_add_http_header_by_name(wsi,
	    (const unsigned char *)"cache-control:",
	    (const unsigned char *)"no-store", 8, &p, end) != 0)
		return -1;
	if (c->close) {
		/*
		 * 405. The request may carry a body, which we never read, and
		 * lws would end the transaction when the body is complete,
		 * before any WRITEABLE. So the headers and the short text go
		 * out in one write now, as lws_return_http_status() does for
		 * HTTP/1, and the connection closes.
		 */
		if (lws_add_http_header_by_name(wsi,
		    (const unsigned char *)"allow:",
		    (const unsigned char *)"GET, HEAD", 9, &p, end) != 0 ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
		    (const unsigned char *)"close", 5, &p, end) != 0 ||
		    lws_finalize_http_header(wsi, &p, end) != 0 ||
		    (size_t)(end - p) < c->body.len)
			return -1;
		memcpy(p, c->body.p, c->body.len);
		p += c->body.len;
		lws_write(wsi, start, (size_t)(p - start),
		    LWS_WRITE_HTTP_HEADERS);
		return -1;
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end) != 0)
		return -1;
	c->busy = true;
	lws_callback_on_writable(wsi);
	return 0;
}

static int
on_writeable(struct lws *wsi, struct http_conn *c)
{
	uint8_t buf[LWS_PRE + HTTP_CHUNK];
	enum lws_write_protocol wp = LWS_WRITE_HTTP_FINAL;
	size_t n = c->head ? 0 : c->body.len - c->sent;

	if (!c->busy)		/* lws may call back more often than asked */
		return 0;
	if (n > HTTP_CHUNK) {
		n = HTTP_CHUNK;
		wp = LWS_WRITE_HTTP;
	}
	if (n > 0)
		memcpy(buf + LWS_PRE, c->body.p + c->sent, n);
	if (lws_write(wsi, buf + LWS_PRE, n, wp) != (int)n)
		return -1;
	c->sent += n;
	if (wp != LWS_WRITE_HTTP_FINAL) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	c->busy = false;
	if (c->body.cap > HTTP_KEEP_BUF)
		metrics_buf_free(&c->body);
	if (c->close)
		return -1;
	/* Non-zero: HTTP/1.0 or "Connection: close" — close it. */
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- the protocol ------------------------------------------------------ */

static int
http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct lws_vhost *vh = lws_get_vhost(wsi);
	struct http *h = vh != NULL ? lws_vhost_user(vh) : NULL;
	struct http_conn *c = user;
	int64_t now;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		/* On the listening wsi, before accept() becomes a wsi. */
		if (h == NULL || h->nconn < HTTP_MAX_CONNS)
			return 0;
		h->refused++;
		now = w2k_mono_us();
		if (now - h->refused_log_us >= HTTP_REFUSED_LOG_US) {
			log_warn("http %s: %u connections open: refusing more "
			    "(%" PRIu64 " refused so far)", h->listen,
			    h->nconn, h->refused);
			h->refused_log_us = now;
		}
		return 1;

	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		/* Mark the wsi: WSI_DESTROY comes for the listener too. */
		if (h != NULL) {
			lws_set_opaque_user_data(wsi, h);
			h->nconn++;
		}
		break;

	case LWS_CALLBACK_WSI_DESTROY:
		if ((h = lws_get_opaque_user_data(wsi)) != NULL) {
			h->nconn--;
			lws_set_opaque_user_data(wsi, NULL);
		}
		return 0;

	case LWS_CALLBACK_HTTP:
		if (h == NULL || c == NULL)
			return -1;
		return on_request(h, wsi, c, in);

	case LWS_CALLBACK_HTTP_BODY:
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/*
		 * A GET with a body (other methods were closed after their
		 * 405): ignore it. Not lws_callback_http_dummy(), which would
		 * end the transaction before the answer is written.
		 */
		return 0;

	case LWS_CALLBACK_HTTP_WRITEABLE:
		return c != NULL ? on_writeable(wsi, c) : -1;

	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		/* lws frees the per-session data, not what it points to. */
		if (c != NULL) {
			metrics_buf_free(&c->body);
			c->busy = false;
		}
		break;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols http_protocols[] = {
	{ .name = "wsi2kafka-http", .callback = http_cb,
	  .per_session_data_size = sizeof(struct http_conn) },
	{ .name = NULL },
};

/* ---- listener ---------------------------------------------------------- */

/*
 * "host:port" or "[v6]:port" → a numeric address lws binds exactly.
 * Why numeric: lws 4.1's iface takes an interface name or an address
 * literal, not a host name; and on an IPv6-enabled context an IPv4 literal
 * silently binds the wildcard address (checked with ss on 4.1.6), which is
 * why IPv4 vhosts get LWS_SERVER_OPTION_DISABLE_IPV6 (a per-vhost option).
 */
static int
resolve(const char *listen, char *addr, size_t addrlen, int *port,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct addrinfo hints, *res = NULL;
	const char *colon = strrchr(listen, ':'), *h = listen;
	char host[256];
	size_t hl;
	int e;

	if (colon == NULL || colon == listen)
		return W2K_EINVAL;
	hl = (size_t)(colon - listen);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return W2K_EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if ((e = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		log_err("http: cannot listen on %s: %s", listen,
		    gai_strerror(e));
		return W2K_EIO;
	}
	if (getnameinfo(res->ai_addr, res->ai_addrlen, addr, (socklen_t)addrlen,
	    NULL, 0, NI_NUMERICHOST) != 0 || res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return W2K_EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	*port = atoi(colon + 1);
	freeaddrinfo(res);
	return 0;
}

/*
 * lws reports a failed bind only in its log, without errno in words: try
 * the same bind (same SO_REUSEADDR) first, to name the reason. A port taken
 * between this probe and lws's own bind still fails cleanly in lws.
 */
static int
probe_bind(const char *listen, const struct sockaddr_storage *ss,
    socklen_t sslen)
{
	int fd, one = 1, e;

	if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (const struct sockaddr *)ss, sslen) != 0) {
		e = errno;
		if (fd >= 0)
			close(fd);
		log_err("http: cannot listen on %s: %s", listen, strerror(e));
		return W2K_EIO;
	}
	close(fd);
	return 0;
}

int
http_new(struct lws_context *context, const char *listen,
    const struct metrics_src *src, struct http **hp)
{
	struct lws_context_creation_info info;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct http *h;
	int port, r;

	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->listen = strdup(listen)) == NULL) {
		free(h);
		return W2K_ENOMEM;
	}
	h->src = src;
	if ((r = resolve(listen, h->addr, sizeof(h->addr), &port, &ss,
	    &sslen)) != 0 || (r = probe_bind(listen, &ss, sslen)) != 0) {
		if (r == W2K_EINVAL)
			log_err("http: cannot listen on %s: not host:port",
			    listen);
		free(h->listen);
		free(h);
		return W2K_EIO;
	}

	memset(&info, 0, sizeof(info));
	/* ':' cannot occur in a PBX name, whose vhosts share the context. */
	info.vhost_name = "wsi2kafka:http";
	info.iface = h->addr;
	info.port = port;
	info.protocols = http_protocols;
	info.user = h;
	info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	if (ss.ss_family == AF_INET)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.timeout_secs = HTTP_TIMEOUT_S;
	info.timeout_secs_ah_idle = HTTP_TIMEOUT_S;
	info.keepalive_timeout = HTTP_TIMEOUT_S;
	if ((h->vhost = lws_create_vhost(context, &info)) == NULL) {
		log_err("http: cannot listen on %s", listen);
		free(h->listen);
		free(h);
		return W2K_EIO;
	}
	log_info("http: listening on %s (/metrics /healthz /readyz)", listen);
	*hp = h;
	return 0;
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	free(h->listen);
	free(h);
}
