/*
 * test_timer.c — timers in a timerfd on a real lws 4.1 loop: they fire in
 * order and not early; cancelling and re-arming; a periodic timer does not
 * make the loop spin (lws's own timers do, in their last millisecond: the
 * reason for the module); the timerfd is closed with the context.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fds.h"

#include <string.h>

#include <libwebsockets.h>

#include "timer.h"
#include "w2k.h"

struct fx {
	struct lws_context	*cx;
	struct timers		*t;
	int			 fds0;	/* descriptors before the context */
	int			 lws_leak; /* what lws itself leaves (setup) */
};

struct probe {
	struct timer	tm;
	int64_t		want_us;	/* not before this */
	int64_t		fired_us;
	int		order;		/* 1, 2, 3 … as fired */
	int		repeat;		/* periodic: re-arms left */
	int64_t		period_us;
	struct timers	*t;
	long		last_turn;	/* loop_turns at the last firing */
	int		spun;		/* firings after more than 5 turns */
};

static int fired_count;
static long loop_turns;		/* lws_service() calls, all tests */

static int
setup(void **state)
{
	struct lws_context_creation_info info;
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	/* lws 4.3.5 (Debian 13) leaves its event pipe (an eventfd) open at
	 * every lws_context_destroy() (lws issue 2744; 4.1 does not): what a
	 * bare context leaves behind is not the timers' leak. */
	fx->fds0 = open_fds();
	assert_non_null(fx->cx = lws_create_context(&info));
	lws_context_destroy(fx->cx);
	fx->lws_leak = open_fds() - fx->fds0;
	fx->fds0 = open_fds();
	assert_non_null(fx->cx = lws_create_context(&info));
	assert_int_equal(timers_new(fx->cx, &fx->t), 0);
	fired_count = 0;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	lws_context_destroy(fx->cx);
	timers_free(fx->t);
	/* The timerfd went with the context, the vhost and lws's own too. */
	assert_int_equal(open_fds(), fx->fds0 + fx->lws_leak);
	free(fx);
	return 0;
}

static void
probe_cb(struct timer *tm)
{
	struct probe *p = (struct probe *)tm;	/* tm is the first member */

	p->fired_us = w2k_mono_us();
	p->order = ++fired_count;
	p->spun += loop_turns - p->last_turn > 5;
	p->last_turn = loop_turns;
	if (p->repeat-- > 0) {
		p->want_us = p->fired_us + p->period_us;
		timer_arm(p->t, &p->tm, p->period_us, probe_cb);
	}
}

static void
arm(struct fx *fx, struct probe *p, int64_t in_us)
{
	p->t = fx->t;
	p->want_us = w2k_mono_us() + in_us;
	timer_arm(fx->t, &p->tm, in_us, probe_cb);
}

/* Serve the loop until n timers fired or 3 s; returns lws_service() calls. */
static long
serve_until(struct fx *fx, int n)
{
	int64_t end = w2k_mono_us() + 3 * 1000 * 1000;
	long turns = 0;

	while (fired_count < n && w2k_mono_us() < end) {
		lws_service(fx->cx, 0);
		turns++;
		loop_turns++;
	}
	assert_true(fired_count >= n);
	return turns;
}

static void
timer__three_armed__fire_in_order_never_early(void **state)
{
	struct fx *fx = *state;
	struct probe a = { 0 }, b = { 0 }, c = { 0 };

	arm(fx, &a, 30 * 1000);
	arm(fx, &b, 10 * 1000);
	arm(fx, &c, 20 * 1000);
	assert_true(timer_armed(&a.tm) && timer_armed(&b.tm));
	serve_until(fx, 3);
	assert_int_equal(b.order, 1);
	assert_int_equal(c.order, 2);
	assert_int_equal(a.order, 3);
	assert_true(a.fired_us >= a.want_us && b.fired_us >= b.want_us &&
	    c.fired_us >= c.want_us);
	assert_false(timer_armed(&a.tm));
}

static void
timer__cancel_and_rearm__only_the_last_arming_counts(void **state)
{
	struct fx *fx = *state;
	struct probe a = { 0 }, b = { 0 };

	arm(fx, &a, 5 * 1000);
	timer_cancel(fx->t, &a.tm);
	timer_cancel(fx->t, &a.tm);		/* twice: a no-op */
	assert_false(timer_armed(&a.tm));
	arm(fx, &b, 5 * 1000);
	arm(fx, &b, 25 * 1000);			/* moved later */
	serve_until(fx, 1);
	assert_int_equal(b.order, 1);
	assert_true(b.fired_us >= b.want_us);
	assert_int_equal(a.order, 0);
	/* Due at once: the next loop turn. */
	arm(fx, &a, 0);
	serve_until(fx, 2);
	assert_int_equal(a.order, 2);
}

/*
 * Twenty firings 5 ms apart: a handful of loop turns each. With an
 * lws_sul timer of the same period lws 4.1 spins on poll(…, 0) through
 * the last millisecond of every wait (hundreds of turns per firing here),
 * which this module exists to avoid. lws 4.3 (Debian 13) has a timer of
 * its own, due about 0.1 s after the context is made and then every 30 s,
 * and spins through its last millisecond once: the one or two intervals
 * it falls in may take many turns, the others a handful.
 */
static void
timer__periodic__loop_does_not_spin(void **state)
{
	struct fx *fx = *state;
	struct probe p = { 0 };
	long turns;

	p.period_us = 5 * 1000;
	p.repeat = 19;
	p.last_turn = loop_turns;
	arm(fx, &p, p.period_us);
	turns = serve_until(fx, 20);
	/* One turn per firing, a few more for lws's own housekeeping. */
	if (p.spun > 2)
		fail_msg("%d of 20 firings came after more than 5 loop turns "
		    "(%ld turns in all)", p.spun, turns);
	assert_true(p.fired_us >= p.want_us);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    timer__three_armed__fire_in_order_never_early, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    timer__cancel_and_rearm__only_the_last_arming_counts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    timer__periodic__loop_does_not_spin, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
