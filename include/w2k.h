/*
 * w2k.h — basics shared by every module: error codes and small helpers.
 *
 * Functions across the code base return 0 on success or one of the negative
 * codes below; the code is logged once, where the context is richest, and then
 * only propagated (style.md §15.3).
 */
#ifndef W2K_H
#define W2K_H

#include <stddef.h>
#include <stdint.h>

enum w2k_err {
	W2K_OK = 0,
	W2K_ENOMEM = -1,	/* allocation failed */
	W2K_EINVAL = -2,	/* bad input: config, frame, argument */
	W2K_EIO = -3,		/* system call or file failed */
	W2K_EAGAIN = -4,	/* transient: accepted for later / retry later */
	W2K_EFULL = -5,		/* a bound was hit */
	W2K_EFATAL = -6,	/* unrecoverable for this component */
};

/**
 * @brief Text for a w2k_err code.
 * @returns a static string; never NULL (unknown codes give "unknown error").
 */
const char *w2k_strerror(int err);

/* Exit codes of the command line (contract §3, sysexits.h). */
#define W2K_EXIT_OK	0
#define W2K_EXIT_FAIL	1
#define W2K_EXIT_USAGE	64
#define W2K_EXIT_CONFIG	78

#define W2K_UNUSED	__attribute__((unused))
#define W2K_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/** @brief Microseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t w2k_now_us(void);

/** @brief Microseconds of CLOCK_MONOTONIC, for durations and timers. */
int64_t w2k_mono_us(void);

#endif
