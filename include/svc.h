/*
 * svc.h — systemd integration (contract §9): sd_notify READY/STATUS/
 * RELOADING/STOPPING, and WATCHDOG=1 pings from the event loop.
 *
 * The watchdog ping is an lws timer on the same loop as everything else, so
 * a stuck loop stops the pings and systemd restarts the service. Outside
 * systemd (no NOTIFY_SOCKET) every call is a cheap no-op.
 */
#ifndef SVC_H
#define SVC_H

#include <stddef.h>

#include <libwebsockets.h>

struct svc;

/** Fills buf (NUL-terminated, at most len bytes) with the STATUS= text. */
typedef void svc_status_fn(void *ctx, char *buf, size_t len);

/**
 * @brief Arm the watchdog (when systemd asked for one with WATCHDOG_USEC)
 *        and the STATUS= refresh timer.
 * @param context borrowed; must outlive the svc.
 * @param fn      the STATUS= text source, called every few seconds.
 * @param svcp    out: owned by the caller (svc_free()).
 * @returns 0 or W2K_ENOMEM.
 */
int svc_new(struct lws_context *context, svc_status_fn *fn, void *ctx,
    struct svc **svcp);

/** @brief READY=1 with the current STATUS= (startup done, or reload done). */
void svc_ready(struct svc *s);

/** @brief RELOADING=1: a reload has started. */
void svc_reloading(struct svc *s);

/** @brief STOPPING=1 and no more pings or status updates. */
void svc_stopping(struct svc *s);

/** @brief Cancel the timers and free. NULL is a no-op. */
void svc_free(struct svc *s);

#endif
