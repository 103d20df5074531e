/*
 * w2k.c — error texts and clocks shared by every module.
 */
#include "w2k.h"

#include <time.h>

const char *
w2k_strerror(int err)
{
	switch (err) {
	case W2K_OK:		return "success";
	case W2K_ENOMEM:	return "out of memory";
	case W2K_EINVAL:	return "invalid input";
	case W2K_EIO:		return "I/O error";
	case W2K_EAGAIN:	return "try again later";
	case W2K_EFULL:		return "limit reached";
	case W2K_EFATAL:	return "fatal error";
	default:		return "unknown error";
	}
}

static int64_t
clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
w2k_now_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

int64_t
w2k_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}
