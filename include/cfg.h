/*
 * cfg.h — the configuration file (contract §4): load, validate, free.
 *
 * cfg_load() turns a libconfig file into an immutable, fully validated
 * struct cfg that owns copies of every value (no config_t outlives loading).
 * Every problem is reported with the file and line it comes from, and loading
 * goes on after an error so that one run lists them all. Unknown keys are
 * errors. Secrets (passwords) are read into the struct, never logged, and
 * wiped on free.
 */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

struct cfg_strv {
	char	**v;		/* owned array of owned strings */
	size_t	  n;
};

struct cfg_url {
	char	*text;		/* as written, for logs ("wss://h:8887/wsi") */
	char	*host;		/* host name or address, without brackets */
	int	 port;		/* default 443 for wss, 80 for ws */
	char	*path;		/* "/" when the URL has none */
	bool	 tls;		/* wss:// */
};

struct cfg_sub {
	struct cfg_strv topics;		/* at least one */
	struct cfg_strv extensions;	/* may be empty */
	struct cfg_strv queues;
	struct cfg_strv tenants;
};

struct cfg_tls {
	char	*ca_file;	/* NULL: the system trust store */
	bool	 verify;	/* default true */
	char	*cert_file;	/* client certificate, NULL if none */
	char	*key_file;	/* its key; set iff cert_file is */
};

/*
 * CDR backfill over the PBX's REST API (contract §4, §10). Only meaningful
 * when enabled; every other field then holds a value (defaults applied).
 */
struct cfg_backfill {
	bool		 enabled;	/* default false */
	char		*url_text;	/* as written; NULL: derived */
	struct cfg_url	 url;		/* https://host:port/api (path kept
					   without a trailing '/') */
	char		*username;	/* default: the PBX's login */
	char		*password;	/* secret: never log; wiped on free */
	char		*password_file;	/* NULL when inline or inherited */
	char		*domain;	/* default: the PBX's domain */
	char		*tenant_id;	/* NULL: learned from live events */
	int64_t		 max_call_duration; /* s, default 4 h */
	int64_t		 max_gap;	/* s, default 7 d */
	double		 requests_per_second; /* default 5 */
	int		 line;		/* where the block starts */
};

struct cfg_pbx {
	char		*name;		/* [a-z0-9_.-]{1,64}, unique */
	struct cfg_url	*urls;		/* failover order */
	size_t		 nurls;
	char		*username;	/* exactly one of username, */
	char		*extension_number; /* extension_number is set */
	char		*password;	/* secret: never log; wiped on free */
	char		*password_file;	/* NULL when given inline */
	char		*domain;	/* NULL for the system administrator */
	bool		 insecure;	/* allow ws:// URLs */
	struct cfg_tls	 tls;
	struct cfg_sub	*subs;
	size_t		 nsubs;
	int		 ping_interval;	/* s, default 30 */
	int		 idle_timeout;	/* s, default 90 */
	int		 auth_timeout;	/* s, default 10 */
	int		 connect_timeout; /* s, default 10: TCP, TLS, upgrade */
	double		 backoff_initial; /* s, default 1.0 */
	double		 backoff_max;	/* s, default 60.0 */
	uint64_t	 max_frame;	/* bytes, default 4 MiB */
	struct cfg_backfill backfill;
	int		 line;		/* where the entry starts, for messages */
};

struct cfg_route {
	char	*match;		/* glob alternatives separated by '|' */
	char	*topic;
};

enum cfg_fsync { CFG_FSYNC_BATCH, CFG_FSYNC_ALWAYS, CFG_FSYNC_NEVER };
enum cfg_on_full { CFG_DROP_OLDEST, CFG_DROP_NEWEST };

struct cfg_kafka {
	char		*brokers;	/* required */
	struct cfg_strv	 prop_names;	/* librdkafka properties, in order */
	struct cfg_strv	 prop_values;	/* same length as prop_names */
	struct cfg_route *routes;	/* the contract's defaults if omitted */
	size_t		 nroutes;
	char		*dead_letter_topic; /* default "portsip.deadletter" */
	char		*sasl_password_file;	/* NULL if not set; the */
	char		*ssl_key_password_file;	/* secrets themselves go to
						   prop_* as sasl.password,
						   ssl.key.password */
};

struct cfg_spool {
	char		*dir;		/* default /var/lib/wsi2kafka/spool */
	uint64_t	 max_bytes;	/* default 1 GiB */
	enum cfg_fsync	 fsync;		/* default batch */
	int		 fsync_interval_ms; /* default 20 */
	enum cfg_on_full on_full;	/* default drop_oldest */
};

struct cfg {
	char		*file;		/* the path it was loaded from */
	struct cfg_pbx	*pbx;		/* at least one */
	size_t		 npbx;
	struct cfg_kafka kafka;
	struct cfg_spool spool;
	char		*http_listen;	/* "host:port"; NULL = disabled */
	enum log_level	 log_level;	/* default info */
	struct cfg_where *where;	/* private to cfg.c: file and line of
					   each setting, for cfg_check(); may
					   be NULL */
};

/**
 * Receives one problem. file may be NULL when the problem has no position
 * (e.g. the file cannot be opened); line is 0 then.
 */
typedef void cfg_error_fn(void *ctx, const char *file, int line,
    const char *msg);

/**
 * @brief Load and validate a configuration file.
 * @param path borrowed.
 * @param cfgp out: a new struct cfg owned by the caller (cfg_free()), set
 *        only on success.
 * @param fn   receives each problem; NULL logs each as
 *        "config: FILE:LINE: MESSAGE" at error level.
 * @returns 0, or W2K_EINVAL after reporting every problem found
 *          (W2K_ENOMEM on allocation failure).
 * @remark reads password_file secrets; does not touch the network, the
 *         spool or TLS files (see cfg_check()).
 */
int cfg_load(const char *path, struct cfg **cfgp, cfg_error_fn *fn, void *ctx);

/**
 * @brief As cfg_load(), from text in memory (tests, fuzzing).
 * @param name the file name used in messages and to resolve relative
 *        @include directives; borrowed.
 */
int cfg_load_string(const char *text, const char *name, struct cfg **cfgp,
    cfg_error_fn *fn, void *ctx);

enum {
	CFG_CHECK_SPOOL = 1 << 0,	/* spool dir creatable and writable */
};

/**
 * @brief The checks that touch the system: CA/cert/key files loadable,
 *        librdkafka accepting the producer configuration as a whole
 *        (a throwaway handle, no connection), and with CFG_CHECK_SPOOL the
 *        spool directory.
 * @returns 0 or W2K_EINVAL after reporting every problem through fn.
 */
int cfg_check(const struct cfg *cfg, unsigned flags, cfg_error_fn *fn,
    void *ctx);

/**
 * @brief Settings that are valid but most likely wrong: a PBX login and
 *        topics that do not match (the system administrator, without
 *        domain, may take only global_* topics; a tenant account only the
 *        others: contract §6). Not errors.
 * @param fn receives each warning; NULL logs each at warning level as
 *        "config: FILE:LINE: warning: MESSAGE".
 * @returns the number of warnings.
 */
int cfg_warnings(const struct cfg *cfg, cfg_error_fn *fn, void *ctx);

/**
 * @brief Whether the packaged systemd unit lets the daemon write dir: under
 *        ProtectSystem=strict only the unit's StateDirectory= (and the
 *        like) and ReadWritePaths= are writable. Those of
 *        systemd/wsi2kafka.service are built in (the Makefile reads them
 *        from the unit); ReadWritePaths= lines of the drop-ins (*.conf) in
 *        dropin_dir (NULL: none) are read now. Symbolic links are followed
 *        where dir exists. Touches nothing.
 * @param paths NULL, or the caller's buffer for the unit's own writable
 *        paths, space-separated, for a message; cut to len.
 * @returns true if dir is one of those paths or below one.
 */
bool cfg_unit_may_write(const char *dir, const char *dropin_dir,
    char *paths, size_t len);

/**
 * @brief A subscription's topics joined with commas ("cdr_events,
 *        queue_events"): its name in logs and the metric label "topics".
 * @param buf caller's; always NUL-terminated, cut to len.
 */
void cfg_sub_topics(const struct cfg_sub *s, char *buf, size_t len);

/** @brief Free cfg and everything it owns, wiping secrets. NULL is a no-op. */
void cfg_free(struct cfg *cfg);

/**
 * @brief Whether two PBX entries would open the very same session
 *        (every setting equal, password included). Used on reload.
 */
bool cfg_pbx_equal(const struct cfg_pbx *a, const struct cfg_pbx *b);

/**
 * @brief Parse a size: plain integer, or integer with K/M/G/T (powers of
 *        1024), e.g. "1G". Overflow-checked.
 * @returns 0 and *out, or W2K_EINVAL.
 */
int cfg_parse_size(const char *s, uint64_t *out);

/**
 * @brief Parse a duration: plain seconds, or an integer with s, m, h or d,
 *        e.g. "4h", "7d". Overflow-checked.
 * @returns 0 and *out (seconds), or W2K_EINVAL.
 */
int cfg_parse_duration(const char *s, int64_t *out);

/** @returns whether the PBX subscribes to cdr_events or global_cdr_events. */
bool cfg_pbx_has_cdr_sub(const struct cfg_pbx *p);

/**
 * @brief Every key of the schema as a dotted path ("pbx.backoff.initial"),
 *        for the test that keeps wsi2kafka.conf(5) complete.
 * @returns a static, NULL-terminated array.
 */
const char *const *cfg_schema_keys(void);

#endif
