/*
 * timer.c — timers in a timerfd on the lws loop (timer.h says why).
 *
 * One timerfd per set, armed (absolute, CLOCK_MONOTONIC, the clock of
 * w2k_mono_us()) for the earliest armed timer; a sorted list holds them
 * all (a handful: the Kafka tick and the group commit). lws adopts the
 * descriptor as a raw file into a vhost of its own, and calls back with
 * LWS_CALLBACK_RAW_RX_FILE when it is readable: then every timer due is
 * fired, earliest first, and the timerfd is armed for the next.
 */
#include "timer.h"
#include "log.h"
#include "w2k.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <libwebsockets.h>

struct timers {
	struct lws	*wsi;		/* the timerfd's connection, or NULL */
	int		 fd;		/* owned by lws once adopted */
	struct timer	*head;		/* armed, earliest first */
	int64_t		 set_us;	/* what the timerfd is armed for, 0 */
};

/* The timerfd for the earliest timer (or disarmed); skipped if unchanged. */
static void
rearm(struct timers *t)
{
	int64_t due = t->head != NULL ? t->head->due_us : 0;
	struct itimerspec its;

	if (due == t->set_us)
		return;
	memset(&its, 0, sizeof(its));
	if (due > 0) {
		/* it_value 0 would disarm; a due time in the past fires now */
		its.it_value.tv_sec = (time_t)(due / 1000000);
		its.it_value.tv_nsec = (long)(due % 1000000) * 1000;
	}
	if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
		log_err("timers: timerfd_settime: %s", strerror(errno));
		return;
	}
	t->set_us = due;
}

static void
unlink_timer(struct timers *t, struct timer *tm)
{
	struct timer **pp;

	for (pp = &t->head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == tm) {
			*pp = tm->next;
			break;
		}
	tm->next = NULL;
	tm->armed = false;
}

void
timer_arm(struct timers *t, struct timer *tm, int64_t in_us,
    void (*cb)(struct timer *tm))
{
	struct timer **pp;

	if (tm->armed)
		unlink_timer(t, tm);
	/* 1 at least: a due time of 0 means "disarmed" to rearm() */
	tm->due_us = w2k_mono_us() + (in_us > 0 ? in_us : 0) + 1;
	tm->cb = cb;
	tm->armed = true;
	for (pp = &t->head; *pp != NULL && (*pp)->due_us <= tm->due_us;
	    pp = &(*pp)->next)
		;
	tm->next = *pp;
	*pp = tm;
	rearm(t);
}

void
timer_cancel(struct timers *t, struct timer *tm)
{
	if (!tm->armed)
		return;
	unlink_timer(t, tm);
	rearm(t);
}

/* The timerfd is readable: fire what is due. */
static void
fire(struct timers *t)
{
	uint64_t expirations;
	int64_t now;
	struct timer *tm;

	/* Drain the expiration count (EAGAIN when a rearm raced it). */
	(void)!read(t->fd, &expirations, sizeof(expirations));
	t->set_us = 0;		/* expired, or re-armed below */
	now = w2k_mono_us();
	while ((tm = t->head) != NULL && tm->due_us <= now) {
		t->head = tm->next;
		tm->next = NULL;
		tm->armed = false;
		tm->cb(tm);	/* may arm timers, this one too */
	}
	rearm(t);
}

static int
timers_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct timers *t = lws_get_opaque_user_data(wsi);

	(void)user, (void)in, (void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (t != NULL)
			fire(t);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		/* lws closes the descriptor it adopted */
		if (t != NULL) {
			t->wsi = NULL;
			t->fd = -1;
		}
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols timer_protocols[] = {
	{ "w2k-timers", timers_cb, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

int
timers_new(struct lws_context *cx, struct timers **tp)
{
	struct lws_context_creation_info info;
	struct timers *t = calloc(1, sizeof(*t));
	lws_adopt_desc_t ad;
	struct lws_vhost *vh;

	if (t == NULL)
		return W2K_ENOMEM;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0) {
		log_err("timers: timerfd_create: %s", strerror(errno));
		free(t);
		return W2K_EIO;
	}
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.vhost_name = "wsi2kafka:timers";
	info.protocols = timer_protocols;
	memset(&ad, 0, sizeof(ad));
	ad.type = LWS_ADOPT_RAW_FILE_DESC;
	ad.fd.filefd = t->fd;
	ad.vh_prot_name = timer_protocols[0].name;
	ad.opaque = t;
	if ((vh = lws_create_vhost(cx, &info)) == NULL) {
		log_err("timers: cannot create the lws vhost");
		close(t->fd);
		free(t);
		return W2K_EIO;
	}
	ad.vh = vh;
	/* On failure lws has closed the descriptor. */
	if ((t->wsi = lws_adopt_descriptor_vhost_via_info(&ad)) == NULL) {
		log_err("timers: lws cannot adopt the timerfd");
		free(t);
		return W2K_EIO;
	}
	*tp = t;
	return 0;
}

void
timers_free(struct timers *t)
{
	if (t == NULL)
		return;
	/* The context is gone: lws closed the connection and the timerfd
	 * (RAW_CLOSE_FILE). Had it not, the descriptor would still be ours. */
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}
