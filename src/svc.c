/*
 * svc.c — sd_notify on the event loop.
 *
 * Periodic work: svc_watchdog_cb every WATCHDOG_USEC / 2 (only when systemd
 * set WATCHDOG_USEC for us), svc_status_cb every SVC_STATUS_US.
 */
#include "svc.h"
#include "log.h"
#include "w2k.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#define SVC_STATUS_US	(5 * 1000 * 1000)

struct svc {
	struct lws_context	*context;
	svc_status_fn		*status;
	void			*ctx;
	uint64_t		 watchdog_us;	/* 0: no watchdog */
	bool			 stopping;
	lws_sorted_usec_list_t	 sul_watchdog;
	lws_sorted_usec_list_t	 sul_status;
};

static void
notify_status(struct svc *s, const char *prefix)
{
	char status[512];

	s->status(s->ctx, status, sizeof(status));
	sd_notifyf(0, "%sSTATUS=%s", prefix, status);
}

static void
svc_watchdog_cb(lws_sorted_usec_list_t *sul)
{
	struct svc *s = lws_container_of(sul, struct svc, sul_watchdog);

	if (s->stopping)
		return;
	sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(s->context, 0, &s->sul_watchdog, svc_watchdog_cb,
	    (lws_usec_t)(s->watchdog_us / 2));
}

static void
svc_status_cb(lws_sorted_usec_list_t *sul)
{
	struct svc *s = lws_container_of(sul, struct svc, sul_status);

	if (s->stopping)
		return;
	notify_status(s, "");
	lws_sul_schedule(s->context, 0, &s->sul_status, svc_status_cb,
	    SVC_STATUS_US);
}

int
svc_new(struct lws_context *context, svc_status_fn *fn, void *ctx,
    struct svc **svcp)
{
	struct svc *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return W2K_ENOMEM;
	s->context = context;
	s->status = fn;
	s->ctx = ctx;
	/* > 0: systemd wants pings from us (WATCHDOG_USEC, WATCHDOG_PID). */
	if (sd_watchdog_enabled(0, &s->watchdog_us) > 0 && s->watchdog_us > 0) {
		log_info("systemd watchdog: pinging every %.1f s",
		    (double)s->watchdog_us / 2e6);
		svc_watchdog_cb(&s->sul_watchdog);
	} else {
		s->watchdog_us = 0;
	}
	lws_sul_schedule(context, 0, &s->sul_status, svc_status_cb,
	    SVC_STATUS_US);
	*svcp = s;
	return 0;
}

void
svc_ready(struct svc *s)
{
	notify_status(s, "READY=1\n");
}

void
svc_reloading(struct svc *s)
{
	(void)s;
	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
}

void
svc_stopping(struct svc *s)
{
	s->stopping = true;
	lws_sul_cancel(&s->sul_watchdog);
	lws_sul_cancel(&s->sul_status);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void
svc_free(struct svc *s)
{
	if (s == NULL)
		return;
	lws_sul_cancel(&s->sul_watchdog);
	lws_sul_cancel(&s->sul_status);
	free(s);
}
