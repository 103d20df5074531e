/*
 * timer.h — timers on the lws event loop that fire on time, without
 * spinning.
 *
 * lws 4.1 sleeps in poll() for the time to its next timer (lws_sul) in whole
 * milliseconds, rounded down: in the last millisecond before each of them
 * the loop calls poll(…, 0) over and over. For a timer that fires every few
 * milliseconds (the spool's group commit) that is a core spinning a
 * noticeable share of the time. These timers live in one timerfd, which
 * lws polls like a socket (a raw-file connection of a vhost of its own):
 * the kernel wakes the loop when the earliest is due, to the microsecond,
 * and lws's own timeout is not shortened by them.
 *
 * Loop thread only. A struct timer is the caller's (embedded in its own
 * struct), borrowed while armed.
 */
#ifndef TIMER_H
#define TIMER_H

#include <stdbool.h>
#include <stdint.h>

struct lws_context;
struct timers;

struct timer {
	int64_t		 due_us;	/* w2k_mono_us() clock, while armed */
	void		(*cb)(struct timer *tm);
	struct timer	*next;		/* armed ones, earliest first */
	bool		 armed;
};

/**
 * @brief The timer set of a context: a vhost "wsi2kafka:timers" and the
 *        timerfd it polls.
 * @param cx borrowed; must outlive the set's use (lws_context_destroy()
 *           closes the timerfd's connection, then call timers_free()).
 * @param tp out: owned by the caller (timers_free()).
 * @returns 0, W2K_ENOMEM, or W2K_EIO (logged) when the timerfd or the vhost
 *          cannot be made.
 */
int timers_new(struct lws_context *cx, struct timers **tp);

/**
 * @brief Fire tm's cb in_us microseconds from now (0 or less: on the next
 *        loop turn). Arming an armed timer moves it. The callback runs on
 *        the loop, with tm disarmed (it may arm it again).
 * @param tm borrowed until it fires or timer_cancel().
 */
void timer_arm(struct timers *t, struct timer *tm, int64_t in_us,
    void (*cb)(struct timer *tm));

/** @brief Disarm tm (a no-op when it is not armed). */
void timer_cancel(struct timers *t, struct timer *tm);

/** @returns whether tm waits to fire. */
static inline bool
timer_armed(const struct timer *tm)
{
	return tm->armed;
}

/**
 * @brief Free the set; armed timers are dropped without firing. Call after
 *        lws_context_destroy(). NULL is a no-op.
 */
void timers_free(struct timers *t);

#endif
