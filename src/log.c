/*
 * log.c — levels, journald priority prefixes, and the bridge for
 * libwebsockets' log lines. Never allocates, never blocks on anything but the
 * stderr write itself.
 */
#include "log.h"
#include "w2k.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

static enum log_level cur_level = LOG_LVL_INFO;
static int journal;		/* stderr is the journal: "<N>" prefixes */

/*
 * JOURNAL_STREAM is "dev:ino" of the stream systemd connected; it is only
 * ours if it matches our stderr (a child of a service inherits the variable
 * with a different stderr).
 */
static int
stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(enum log_level level)
{
	cur_level = level;
	journal = stderr_is_journal();
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void
log_set_level(enum log_level level)
{
	cur_level = level;
	lws_set_log_level(log_lws_mask(), log_lws_emit);
}

enum log_level
log_get_level(void)
{
	return cur_level;
}

int
log_level_parse(const char *name, enum log_level *level)
{
	static const struct { const char *name; enum log_level lvl; } t[] = {
		{ "error", LOG_LVL_ERR }, { "warning", LOG_LVL_WARN },
		{ "notice", LOG_LVL_NOTICE }, { "info", LOG_LVL_INFO },
		{ "debug", LOG_LVL_DEBUG },
	};

	for (size_t i = 0; name != NULL && i < W2K_ARRAY_SIZE(t); i++)
		if (strcasecmp(name, t[i].name) == 0) {
			*level = t[i].lvl;
			return 0;
		}
	return W2K_EINVAL;
}

static const char *
level_name(enum log_level level)
{
	switch (level) {
	case LOG_LVL_ERR:	return "error";
	case LOG_LVL_WARN:	return "warning";
	case LOG_LVL_NOTICE:	return "notice";
	case LOG_LVL_INFO:	return "info";
	default:		return "debug";
	}
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	int saved = errno;

	if (level > cur_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (journal) {
		fprintf(stderr, "<%d>%s\n", (int)level, line);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s: %s\n", when,
		    ts.tv_nsec / 1000000, level_name(level), line);
	}
	errno = saved;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_lws_emit(int lws_level, const char *line)
{
	enum log_level level = LOG_LVL_DEBUG;
	size_t n = strlen(line);

	if (lws_level & LLL_ERR)
		level = LOG_LVL_ERR;
	else if (lws_level & LLL_WARN)
		level = LOG_LVL_WARN;
	else if (lws_level & (LLL_NOTICE | LLL_USER))
		level = LOG_LVL_INFO;
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	/*
	 * lws prefixes its own timestamp ("[2026/11/26 08:00:00:0000] E: ");
	 * drop it, ours (or journald's) is enough.
	 */
	if (n > 0 && line[0] == '[') {
		const char *end = memchr(line, ']', n);

		if (end != NULL && (size_t)(end - line) + 2 <= n) {
			n -= (size_t)(end - line) + 2;
			line = end + 2;
		}
	}
	log_msg(level, "lws: %.*s", (int)n, line);
}

int
log_lws_mask(void)
{
	/*
	 * lws's NOTICE level is chatty (every vhost and protocol it creates);
	 * keep it for debug.
	 */
	int mask = LLL_ERR | LLL_USER;

	if (cur_level >= LOG_LVL_WARN)
		mask |= LLL_WARN;
	if (cur_level >= LOG_LVL_DEBUG)
		mask |= LLL_NOTICE;
	return mask;
}
