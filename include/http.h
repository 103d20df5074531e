/*
 * http.h — the HTTP listener for /metrics, /healthz and /readyz
 * (contract §8, http.listen of §4).
 *
 * A libwebsockets server vhost on the daemon's one context: requests are
 * served on the event loop thread, between PBX frames and Kafka polls, and
 * never block it. The response is rendered whole when the request arrives
 * (a consistent snapshot) and written in chunks as the socket accepts them,
 * so a slow reader costs memory for its own response only. Requests are
 * bounded by lws (header size, HTTP_TIMEOUT_S to send them, idle
 * keep-alive) and by a cap on concurrent connections (HTTP_MAX_CONNS), so
 * a slow or huge request can neither stall the loop nor use up the file
 * descriptors the PBX sessions need.
 *
 *   GET|HEAD /metrics  200, Prometheus text format 0.0.4 (metrics.h)
 *   GET|HEAD /healthz  200 "ok" while the event loop runs
 *   GET|HEAD /readyz   200 or 503, a JSON object saying why (metrics.h)
 *   other paths        404;  other methods  405 with "Allow: GET, HEAD"
 */
#ifndef HTTP_H
#define HTTP_H

#include <libwebsockets.h>

#include "metrics.h"

struct http;

/* Time a client has to send its request, and to keep an idle connection. */
#define HTTP_TIMEOUT_S		5
/* Connections served at once; more are refused at accept(). */
#define HTTP_MAX_CONNS		32

/**
 * @brief Listen on a host:port ("127.0.0.1:9464", "[::1]:9464", or a host
 *        name, resolved once, here) and serve the endpoints.
 * @param context borrowed; every connection lives in it.
 * @param listen  http.listen as configured; borrowed (copied).
 * @param src     borrowed; read at every request; must outlive h.
 * @param hp      out: owned by the caller (http_free()).
 * @returns 0; W2K_EIO when the address cannot be bound (in use, not a
 *          local address, no permission) or resolved; W2K_ENOMEM. Every
 *          failure is logged once, naming the address.
 * @remark the bind happens here, before return: READY=1 may follow.
 */
int http_new(struct lws_context *context, const char *listen,
    const struct metrics_src *src, struct http **hp);

/**
 * @brief Free the listener. Call after lws_context_destroy(), which closes
 *        the listening socket and every connection and calls back into h
 *        while doing so. NULL is a no-op.
 */
void http_free(struct http *h);

#endif
