/*
 * log.h — the one place log lines are written.
 *
 * Lines go to stderr. Under systemd (JOURNAL_STREAM names our stderr) each
 * line carries a "<N>" priority prefix for journald and no timestamp; on a
 * terminal each line starts with an ISO 8601 timestamp and the level name.
 * libwebsockets' and librdkafka's own logs are routed through here, so an
 * operator reads one stream. Single-threaded: call only from the event loop
 * thread (librdkafka's logs are forwarded to it with log.queue=true).
 *
 * Never pass a secret to these functions: there is no redaction layer.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERR = 3,	/* syslog priorities, so "<N>" is the level */
	LOG_LVL_WARN = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/** @brief Detect journald, set the initial level. Call once, first. */
void log_init(enum log_level level);

/** @brief Change the level (config, -l, reload). */
void log_set_level(enum log_level level);

/** @returns the current level. */
enum log_level log_get_level(void);

/**
 * @brief Parse "error" | "warning" | "info" | "debug" (also "notice").
 * @param name borrowed, may be NULL.
 * @returns 0 and *level set, or W2K_EINVAL.
 */
int log_level_parse(const char *name, enum log_level *level);

/** @brief Write one line at level (a trailing newline is added). */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

#define log_err(...)	log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)	do { if (log_get_level() >= LOG_LVL_DEBUG) \
	log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

/**
 * @brief lws_set_log_level() emit function: maps lws levels onto ours.
 * @param line borrowed; lws ends it with a newline, which is stripped.
 */
void log_lws_emit(int lws_level, const char *line);

/** @returns the lws log mask matching the current level. */
int log_lws_mask(void);

#endif
