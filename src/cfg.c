/*
 * cfg.c — the configuration file (contract §4): libconfig text → a fully
 * validated, immutable struct cfg.
 *
 * One schema table lists every key with its type, default and bounds. The
 * loader walks the libconfig tree member by member (libconfig itself accepts
 * any name, so this walk is what finds typos), converts each value through
 * its row, then runs the cross-checks a single row cannot express. Every
 * problem is reported with the file and line of the setting it concerns, and
 * loading goes on so one run lists them all. cfg_load() touches nothing but
 * the configuration and password files; the checks that need OpenSSL,
 * librdkafka or the spool directory live in cfg_check().
 *
 * Never put a password (or any other secret value) into a message.
 */
#include "cfg.h"
#include "log.h"
#include "route.h"
#include "w2k.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>
#include <librdkafka/rdkafka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define PATH_LEN	512		/* "pbx[12].subscriptions[3].topics" */
#define MSG_LEN		1024
#define CONF_MAX	(16 << 20)	/* a bigger "config" is a mistake */
#define SECRET_MAX	4096		/* a password file holds one line */

/* Where each setting was written; kept with the cfg for cfg_check(). */
struct where_ent {
	char		*path;		/* "pbx[0].tls.ca_file" */
	const char	*file;		/* interned in cfg_where.files */
	int		 line;
};

struct cfg_where {
	struct where_ent *ent;
	size_t		  n, cap;
	char		**files;	/* every file name seen, owned */
	size_t		  nfiles;
	struct cfg_strv	  prop_paths;	/* "kafka.properties.<as written>",
					   parallel to kafka.prop_names */
};

/* The text of an @include'd file, read again for integer literals. */
struct src {
	char	*file;
	char	*text;			/* NULL: could not be read */
};

struct loader {
	struct cfg	*cfg;
	cfg_error_fn	*fn;
	void		*ctx;
	const char	*name;		/* main file: settings with none */
	const char	*text;		/* the main file's text */
	char		*incdir;	/* where @include paths are resolved */
	const config_setting_t *root;
	struct src	*src;
	size_t		 nsrc;
	rd_kafka_conf_t	*scratch;	/* validates kafka.properties */
	int		 nerr;
	bool		 nomem;
};

enum ktype {
	K_GROUP,	/* { … }: keys of their own */
	K_LIST,		/* ( { … }, … ): a list of groups */
	K_STRING,
	K_STRV,		/* [ "…", … ] (or a list of strings) */
	K_BOOL,
	K_INT,		/* int, min..max */
	K_FLOAT,	/* double, fmin..fmax; integer literals accepted */
	K_SIZE,		/* uint64_t: "4M" or an integer, min..max */
	K_DURATION,	/* int64_t seconds: "4h" or an integer, min..max */
	K_ENUM,		/* int, one of names[] */
	K_LOGLEVEL,	/* enum log_level, through log_level_parse() */
	K_PROPS,	/* kafka.properties: scalars handed to librdkafka */
};

#define KF_REQUIRED	0x01	/* must be present when its group is */
#define KF_NONEMPTY	0x02	/* strings, arrays, lists: not empty */
#define KF_FMIN_OPEN	0x04	/* K_FLOAT: > fmin rather than >= fmin */

#define NOOFF		SIZE_MAX	/* type-checked here, stored by a
					   cross-check */

struct enum_name {
	const char	*name;
	int		 value;
};

struct key {
	const char	*path;		/* dotted, lists without an index */
	enum ktype	 type;
	unsigned	 flags;
	const char	*def;		/* default in file syntax, NULL: none */
	int64_t		 min, max;	/* K_INT, K_SIZE */
	double		 fmin, fmax;	/* K_FLOAT */
	size_t		 off;		/* destination in the group's object */
	size_t		 off_n;		/* K_LIST: where the count goes */
	size_t		 elsize;	/* K_LIST: size of one element */
	const struct enum_name *names;	/* K_ENUM */
	const char	*(*check)(const char *); /* K_STRING: NULL or why not */
	void		(*post)(struct loader *, const config_setting_t *,
			    void *);	/* K_LIST: after each element */
};

static void	pbx_post(struct loader *, const config_setting_t *, void *);
static void	backfill_post(struct loader *, const config_setting_t *,
		    struct cfg_pbx *, const char *);
static const char *check_name(const char *);
static const char *check_topic(const char *);
static const char *check_listen(const char *);
static const char *check_tenant(const char *);

static const struct enum_name fsync_names[] = {
	{ "batch", CFG_FSYNC_BATCH },
	{ "always", CFG_FSYNC_ALWAYS },
	{ "never", CFG_FSYNC_NEVER },
	{ NULL, 0 },
};

static const struct enum_name on_full_names[] = {
	{ "drop_oldest", CFG_DROP_OLDEST },
	{ "drop_newest", CFG_DROP_NEWEST },
	{ NULL, 0 },
};

/* K_ENUM values are stored through an int. */
_Static_assert(sizeof(enum cfg_fsync) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_on_full) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");

#define OFF(type, member)	offsetof(struct type, member)
#define KIB	(INT64_C(1) << 10)
#define MIB	(INT64_C(1) << 20)
#define PIB	(INT64_C(1) << 50)

/*
 * The schema: one row per key. Offsets are relative to the object of the
 * group the key lives in: struct cfg at the top, the element for keys under
 * a list (struct cfg_pbx, cfg_sub, cfg_route). wsi2kafka.conf(5) documents
 * every row; tests/unit/test_cfg.c keeps the two in step.
 */
static const struct key schema[] = {
	{ "pbx", K_LIST, KF_REQUIRED | KF_NONEMPTY, .off = OFF(cfg, pbx),
	    .off_n = OFF(cfg, npbx), .elsize = sizeof(struct cfg_pbx),
	    .post = pbx_post },
	{ "pbx.name", K_STRING, KF_REQUIRED, .off = OFF(cfg_pbx, name),
	    .check = check_name },
	{ "pbx.url", K_STRING, KF_NONEMPTY, .off = NOOFF },
	{ "pbx.urls", K_STRV, KF_NONEMPTY, .off = NOOFF },
	{ "pbx.username", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, username) },
	{ "pbx.extension_number", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, extension_number) },
	{ "pbx.password", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, password) },
	{ "pbx.password_file", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, password_file) },
	{ "pbx.domain", K_STRING, KF_NONEMPTY, .off = OFF(cfg_pbx, domain) },
	{ "pbx.insecure", K_BOOL, 0, "false", .off = OFF(cfg_pbx, insecure) },
	{ "pbx.tls", K_GROUP, 0, .def = NULL },
	{ "pbx.tls.ca_file", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, tls.ca_file) },
	{ "pbx.tls.verify", K_BOOL, 0, "true",
	    .off = OFF(cfg_pbx, tls.verify) },
	{ "pbx.tls.cert_file", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, tls.cert_file) },
	{ "pbx.tls.key_file", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, tls.key_file) },
	{ "pbx.subscriptions", K_LIST, KF_REQUIRED | KF_NONEMPTY,
	    .off = OFF(cfg_pbx, subs), .off_n = OFF(cfg_pbx, nsubs),
	    .elsize = sizeof(struct cfg_sub) },
	{ "pbx.subscriptions.topics", K_STRV, KF_REQUIRED | KF_NONEMPTY,
	    .off = OFF(cfg_sub, topics) },
	{ "pbx.subscriptions.extensions", K_STRV, 0,
	    .off = OFF(cfg_sub, extensions) },
	{ "pbx.subscriptions.queues", K_STRV, 0, .off = OFF(cfg_sub, queues) },
	{ "pbx.subscriptions.tenants", K_STRV, 0,
	    .off = OFF(cfg_sub, tenants) },
	{ "pbx.ping_interval", K_INT, 0, "30", 1, 3600,
	    .off = OFF(cfg_pbx, ping_interval) },
	{ "pbx.idle_timeout", K_INT, 0, "90", 2, 86400,
	    .off = OFF(cfg_pbx, idle_timeout) },
	{ "pbx.auth_timeout", K_INT, 0, "10", 1, 600,
	    .off = OFF(cfg_pbx, auth_timeout) },
	{ "pbx.connect_timeout", K_INT, 0, "10", 1, 600,
	    .off = OFF(cfg_pbx, connect_timeout) },
	{ "pbx.backoff", K_GROUP, 0, .def = NULL },
	{ "pbx.backoff.initial", K_FLOAT, KF_FMIN_OPEN, "1.0",
	    .fmin = 0, .fmax = 86400, .off = OFF(cfg_pbx, backoff_initial) },
	{ "pbx.backoff.max", K_FLOAT, KF_FMIN_OPEN, "60.0",
	    .fmin = 0, .fmax = 86400, .off = OFF(cfg_pbx, backoff_max) },
	{ "pbx.max_frame", K_SIZE, 0, "4M", KIB, 256 * MIB,
	    .off = OFF(cfg_pbx, max_frame) },
	{ "pbx.backfill", K_GROUP, 0, .def = NULL },
	{ "pbx.backfill.enabled", K_BOOL, 0, "false",
	    .off = OFF(cfg_pbx, backfill.enabled) },
	{ "pbx.backfill.url", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, backfill.url_text) },
	{ "pbx.backfill.username", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, backfill.username) },
	{ "pbx.backfill.password", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, backfill.password) },
	{ "pbx.backfill.password_file", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, backfill.password_file) },
	{ "pbx.backfill.domain", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, backfill.domain) },
	{ "pbx.backfill.tenant_id", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg_pbx, backfill.tenant_id), .check = check_tenant },
	/* REST queries span at most 5 years (portsip-rest-cdr §2). */
	{ "pbx.backfill.max_call_duration", K_DURATION, 0, "4h", 60,
	    INT64_C(7) * 86400, .off = OFF(cfg_pbx, backfill.max_call_duration) },
	{ "pbx.backfill.max_gap", K_DURATION, 0, "7d", 60,
	    INT64_C(365) * 86400, .off = OFF(cfg_pbx, backfill.max_gap) },
	{ "pbx.backfill.requests_per_second", K_FLOAT, KF_FMIN_OPEN, "5",
	    .fmin = 0, .fmax = 1000,
	    .off = OFF(cfg_pbx, backfill.requests_per_second) },

	{ "kafka", K_GROUP, KF_REQUIRED, .def = NULL },
	{ "kafka.brokers", K_STRING, KF_REQUIRED | KF_NONEMPTY,
	    .off = OFF(cfg, kafka.brokers) },
	{ "kafka.properties", K_PROPS, 0, .def = NULL },
	{ "kafka.sasl_password_file", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg, kafka.sasl_password_file) },
	{ "kafka.ssl_key_password_file", K_STRING, KF_NONEMPTY,
	    .off = OFF(cfg, kafka.ssl_key_password_file) },
	{ "kafka.routes", K_LIST, KF_NONEMPTY, .off = OFF(cfg, kafka.routes),
	    .off_n = OFF(cfg, kafka.nroutes),
	    .elsize = sizeof(struct cfg_route) },
	{ "kafka.routes.match", K_STRING, KF_REQUIRED | KF_NONEMPTY,
	    .off = OFF(cfg_route, match) },
	{ "kafka.routes.topic", K_STRING, KF_REQUIRED | KF_NONEMPTY,
	    .off = OFF(cfg_route, topic), .check = check_topic },
	{ "kafka.dead_letter_topic", K_STRING, KF_NONEMPTY,
	    "portsip.deadletter", .off = OFF(cfg, kafka.dead_letter_topic),
	    .check = check_topic },

	{ "spool", K_GROUP, 0, .def = NULL },
	{ "spool.dir", K_STRING, KF_NONEMPTY, "/var/lib/wsi2kafka/spool",
	    .off = OFF(cfg, spool.dir) },
	{ "spool.max_bytes", K_SIZE, 0, "1G", MIB, PIB,
	    .off = OFF(cfg, spool.max_bytes) },
	{ "spool.fsync", K_ENUM, 0, "batch", .off = OFF(cfg, spool.fsync),
	    .names = fsync_names },
	{ "spool.fsync_interval_ms", K_INT, 0, "20", 1, 10000,
	    .off = OFF(cfg, spool.fsync_interval_ms) },
	{ "spool.on_full", K_ENUM, 0, "drop_oldest",
	    .off = OFF(cfg, spool.on_full), .names = on_full_names },

	{ "http", K_GROUP, 0, .def = NULL },
	{ "http.listen", K_STRING, KF_REQUIRED, .off = OFF(cfg, http_listen),
	    .check = check_listen },

	{ "log", K_GROUP, 0, .def = NULL },
	{ "log.level", K_LOGLEVEL, 0, "info", .off = OFF(cfg, log_level) },
};

/* The contract's routes, used when kafka.routes is omitted. */
static const struct cfg_route default_routes[] = {
	{ "call_cdr", "portsip.cdr" },
	{ "call_*|target_*|cdr_target_*", "portsip.calls" },
	{ "extension_*", "portsip.extensions" },
	{ "queue_*", "portsip.queues" },
	{ "*", "portsip.events" },
};

/* ---- small helpers ---------------------------------------------------- */

static char *
xstrdup(struct loader *ld, const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		ld->nomem = true;
	return d;
}

static void
strv_clear(struct cfg_strv *sv, bool wipe)
{
	for (size_t i = 0; i < sv->n; i++) {
		if (wipe && sv->v[i] != NULL)
			explicit_bzero(sv->v[i], strlen(sv->v[i]));
		free(sv->v[i]);
	}
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

static int
strv_push(struct cfg_strv *sv, const char *s)
{
	char **v = realloc(sv->v, (sv->n + 1) * sizeof(*v));

	if (v == NULL)
		return W2K_ENOMEM;
	sv->v = v;
	if ((v[sv->n] = strdup(s)) == NULL)
		return W2K_ENOMEM;
	sv->n++;
	return 0;
}

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
strv_eq(const struct cfg_strv *a, const struct cfg_strv *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!str_eq(a->v[i], b->v[i]))
			return false;
	return true;
}

/*
 * Reads a whole file into a NUL-terminated buffer.
 * @returns 0, or an errno value (EFBIG when over max).
 */
static int
read_all(const char *file, size_t max, char **out)
{
	FILE *f = fopen(file, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int err = 0;

	*out = NULL;
	if (f == NULL)
		return errno;
	for (;;) {
		size_t n;

		if (cap - len < 4096) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				err = ENOMEM;
				break;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (len > max) {
			err = EFBIG;
			break;
		}
		if (n == 0) {
			if (ferror(f))
				err = errno ? errno : EIO;
			break;
		}
	}
	fclose(f);
	if (err != 0) {
		free(buf);
		return err;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/*
 * The shortest text that reads back as the same double, without an
 * exponent where it needs none: "10.0", not "1e+01" or "10".
 */
static void
fmt_float(double v, char *buf, size_t len)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v &&
		    (strchr(buf, 'e') == NULL || fabs(v) >= 1e15 ||
		    fabs(v) < 1e-4))
			break;
	}
	if (strpbrk(buf, ".eEni") == NULL && strlen(buf) + 2 < len)
		strcat(buf, ".0");
}

/* A size in the largest unit that divides it exactly: "4M", "1000". */
static void
fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u < 3 && v != 0 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
}

static const char *
type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:		return "a group { ... }";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:		return "an integer";
	case CONFIG_TYPE_FLOAT:		return "a float";
	case CONFIG_TYPE_STRING:	return "a string";
	case CONFIG_TYPE_BOOL:		return "a boolean";
	case CONFIG_TYPE_ARRAY:		return "an array [ ... ]";
	case CONFIG_TYPE_LIST:		return "a list ( ... )";
	default:			return "nothing";
	}
}

/* ---- positions and reports -------------------------------------------- */

/* "pbx[0].backoff.max" for a setting; "" for the root. */
static void
spath(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *parent = config_setting_parent(s);
	size_t l;

	buf[0] = '\0';
	if (parent == NULL)
		return;
	spath(parent, buf, len);
	l = strlen(buf);
	if (config_setting_name(s) != NULL)
		snprintf(buf + l, len - l, "%s%s", l ? "." : "",
		    config_setting_name(s));
	else
		snprintf(buf + l, len - l, "[%d]", config_setting_index(s));
}

/*
 * The path of an @include'd file from the current directory, from the name
 * libconfig gives it: libconfig 1.5 (Debian 12) names it as written,
 * relative to the include directory; 1.7 (Debian 13) as it opened it, the
 * include directory already in front ("./" too when that is ".").
 */
static const char *
include_path(const struct loader *ld, const char *file, char *buf,
    size_t len)
{
	if (file[0] == '/' || ld->incdir == NULL)
		return file;
#if LIBCONFIG_VER_MAJOR == 1 && LIBCONFIG_VER_MINOR < 7
	if (strcmp(ld->incdir, ".") != 0) {
		snprintf(buf, len, "%s/%s", ld->incdir, file);
		return buf;
	}
#else
	(void)buf, (void)len;
	if (strcmp(ld->incdir, ".") == 0 && strncmp(file, "./", 2) == 0)
		return file + 2;
#endif
	return file;
}

/*
 * A file name as the operator knows it, interned in cfg->where so it
 * outlives the config_t; settings of the main text have none.
 */
static const char *
intern_file(struct loader *ld, const char *file)
{
	struct cfg_where *w = ld->cfg->where;
	char buf[PATH_MAX];
	char **files;

	file = file == NULL ? ld->name : include_path(ld, file, buf, sizeof(buf));
	for (size_t i = 0; i < w->nfiles; i++)
		if (strcmp(w->files[i], file) == 0)
			return w->files[i];
	files = realloc(w->files, (w->nfiles + 1) * sizeof(*files));
	if (files == NULL) {
		ld->nomem = true;
		return NULL;
	}
	w->files = files;
	if ((files[w->nfiles] = strdup(file)) == NULL) {
		ld->nomem = true;
		return NULL;
	}
	return files[w->nfiles++];
}

static void
default_report(const char *file, int line, const char *msg)
{
	if (file == NULL)
		log_err("config: %s", msg);
	else if (line > 0)
		log_err("config: %s:%d: %s", file, line, msg);
	else
		log_err("config: %s: %s", file, msg);
}

static void
emit(cfg_error_fn *fn, void *ctx, const char *file, int line,
    const char *msg)
{
	if (fn != NULL)
		fn(ctx, file, line, msg);
	else
		default_report(file, line, msg);
}

/* One problem at a position, the message prefixed with path (if any). */
static void __attribute__((format(printf, 5, 0)))
vreport(struct loader *ld, const char *file, int line, const char *path,
    const char *fmt, va_list ap)
{
	char msg[MSG_LEN];
	int n = 0;

	if (path != NULL && path[0] != '\0')
		n = snprintf(msg, sizeof(msg), "%s: ", path);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;		/* a path that long is no use anyway */
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	ld->nerr++;
	emit(ld->fn, ld->ctx, file, line, msg);
}

/* A problem with setting s (or its absent child: pass that child's path). */
static void __attribute__((format(printf, 4, 5)))
report_at(struct loader *ld, const config_setting_t *s, const char *path,
    const char *fmt, ...)
{
	char buf[PATH_LEN];
	va_list ap;

	if (path == NULL) {
		spath(s, buf, sizeof(buf));
		path = buf;
	}
	va_start(ap, fmt);
	vreport(ld, intern_file(ld, config_setting_source_file(s)),
	    (int)config_setting_source_line(s), path, fmt, ap);
	va_end(ap);
}

#define report(ld, s, ...)	report_at((ld), (s), NULL, __VA_ARGS__)

/* Remembers where s was written, for cfg_check(). */
static void
where_add(struct loader *ld, const config_setting_t *s)
{
	struct cfg_where *w = ld->cfg->where;
	char path[PATH_LEN];

	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct where_ent *ent = realloc(w->ent, cap * sizeof(*ent));

		if (ent == NULL) {
			ld->nomem = true;
			return;
		}
		w->ent = ent;
		w->cap = cap;
	}
	spath(s, path, sizeof(path));
	w->ent[w->n].file = intern_file(ld, config_setting_source_file(s));
	w->ent[w->n].line = (int)config_setting_source_line(s);
	if ((w->ent[w->n].path = strdup(path)) == NULL) {
		ld->nomem = true;
		return;
	}
	w->n++;
}

/* ---- integer literals: libconfig 1.5 wraps them silently --------------- */

static bool
is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '*';
}

/* Skips white space and the three comment styles libconfig knows. */
static const char *
skip_space(const char *p)
{
	for (;;) {
		if (isspace((unsigned char)*p)) {
			p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			const char *e = strstr(p + 2, "*/");

			p = e ? e + 2 : p + strlen(p);
		} else {
			return p;
		}
	}
}

/*
 * Lexes an integer literal at p the way the operator meant it: decimal or
 * 0x hex, optional sign. @returns false if p is not one (a float, a string);
 * *ok false when it does not even fit in 64 bits.
 */
static bool
lex_int(const char *p, long long *v, bool *ok, char *lit, size_t litlen)
{
	const char *start = p;
	unsigned long long mag;
	bool neg = false, hex = false;
	char *end;

	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		hex = true;
		if (!isxdigit((unsigned char)p[2]))
			return false;
	} else if (!isdigit((unsigned char)*p)) {
		return false;
	}
	errno = 0;
	mag = strtoull(p, &end, hex ? 16 : 10);
	if (*end == '.' || *end == 'e' || *end == 'E' || *end == 'L')
		return false;
	snprintf(lit, litlen, "%.*s", (int)(end - start), start);
	*ok = errno == 0 && mag <= (unsigned long long)LLONG_MAX;
	*v = !*ok ? 0 : neg ? -(long long)mag : (long long)mag;
	return true;
}

static const char *
src_text(struct loader *ld, const char *file)
{
	char buf[PATH_MAX];
	struct src *src;

	if (file == NULL)
		return ld->text;
	for (size_t i = 0; i < ld->nsrc; i++)
		if (strcmp(ld->src[i].file, file) == 0)
			return ld->src[i].text;
	src = realloc(ld->src, (ld->nsrc + 1) * sizeof(*src));
	if (src == NULL)
		return NULL;
	ld->src = src;
	src += ld->nsrc;
	if ((src->file = strdup(file)) == NULL)
		return NULL;
	if (read_all(include_path(ld, file, buf, sizeof(buf)), CONF_MAX,
	    &src->text) != 0)
		src->text = NULL;
	ld->nsrc++;
	return src->text;
}

/*
 * libconfig 1.5 stores a plain integer literal of 2^31 or more as the low
 * 32 bits of its value (5368709120 arrives as 1073741824) and does not say
 * so: the value alone cannot tell. libconfig 1.7 stores it as a 64-bit
 * integer, right. So read the literal again from the source: the setting's
 * name on its line, '=' or ':', then the number (one with an L suffix is
 * no plain literal). @returns 1 if one such literal there has the stored
 * value, 0 if there are some and none has it (1.5 wrapped it; lit says
 * what was written), -1 if there is none (a 64-bit literal, or an odd
 * layout: trust the value).
 */
static int
literal_scan(struct loader *ld, const config_setting_t *s,
    long long stored, char *lit, size_t litlen)
{
	const char *name = config_setting_name(s);
	const char *text = src_text(ld, config_setting_source_file(s));
	unsigned line = config_setting_source_line(s);
	const char *p, *eol;
	int found = -1;
	size_t nl;

	if (text == NULL || name == NULL || line == 0)
		return -1;
	for (p = text; line > 1 && p != NULL; line--)
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	if (p == NULL)
		return -1;
	eol = strchrnul(p, '\n');
	nl = strlen(name);
	for (const char *q = p; q + nl <= eol; q++) {
		const char *r;
		long long v;
		bool ok;
		char l[64];

		if (strncmp(q, name, nl) != 0 || is_name_char(q[nl]) ||
		    (q > text && is_name_char(q[-1])))
			continue;
		r = skip_space(q + nl);
		if (*r != '=' && *r != ':')
			continue;
		if (!lex_int(skip_space(r + 1), &v, &ok, l, sizeof(l)))
			continue;
		if (ok && v == stored) {
			snprintf(lit, litlen, "%s", l);
			return 1;
		}
		if (found < 0)
			snprintf(lit, litlen, "%s", l);
		found = 0;
	}
	return found;
}

/*
 * Reads an integer setting (CONFIG_TYPE_INT or _INT64) as 64 bits and
 * refuses a plain literal of 2^31 or more, which libconfig 1.5 wraps: the
 * same file passes or fails with every libconfig (1.7 would read it
 * right). hint ends that message. @returns 0, or -1 after reporting.
 */
static int
read_int(struct loader *ld, const config_setting_t *s, long long *v,
    const char *hint)
{
	long long as_15;
	char lit[64];

	*v = config_setting_get_int64(s);
	if (config_setting_type(s) == CONFIG_TYPE_INT &&
	    literal_scan(ld, s, *v, lit, sizeof(lit)) == 0)
		as_15 = *v;		/* libconfig 1.5 wrapped it */
	else if (config_setting_type(s) == CONFIG_TYPE_INT64 &&
	    (*v < INT32_MIN || *v > INT32_MAX) &&
	    literal_scan(ld, s, *v, lit, sizeof(lit)) == 1)
		as_15 = (int32_t)(uint32_t)(unsigned long long)*v;
	else
		return 0;
	report(ld, s, "%s does not fit in 32 bits (libconfig 1.5 would "
	    "silently read it as %lld); %s", lit, as_15, hint);
	return -1;
}

/* ---- value checks ----------------------------------------------------- */

static const char *
check_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "0123456789_.-") != n)
		return "must be 1 to 64 characters of a-z, 0-9, '_', '.', '-'";
	return NULL;
}

/* Kafka's own rule for topic names (kafka.common.internals.Topic). */
static const char *
check_topic(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") != n)
		return "not a valid Kafka topic name (1 to 249 characters of "
		    "a-z, A-Z, 0-9, '.', '_', '-')";
	return NULL;
}

/*
 * host[:port] or [v6]:port from s[0..len). The host is a name or IPv4
 * address, or an IPv6 address in brackets.
 * @returns NULL with *host (owned; NULL only when out of memory) and *port
 *          (0 when absent), or why not (*host NULL).
 */
static const char *
hostport_parse(const char *s, size_t len, char **host, int *port)
{
	const char *h = s, *rest;
	size_t hl;

	*host = NULL;
	*port = 0;
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		char a6[INET6_ADDRSTRLEN + 1];
		struct in6_addr in6;

		if (close == NULL)
			return "'[' without ']' around an IPv6 address";
		h = s + 1;
		hl = (size_t)(close - h);
		if (hl == 0 || hl >= sizeof(a6))
			return "not a valid IPv6 address";
		memcpy(a6, h, hl);
		a6[hl] = '\0';
		if (inet_pton(AF_INET6, a6, &in6) != 1)
			return "not a valid IPv6 address";
		rest = close + 1;
		if (rest < s + len && *rest != ':')
			return "only ':port' may follow ']'";
	} else {
		rest = memchr(s, ':', len);
		if (rest == NULL)
			rest = s + len;
		else if (memchr(rest + 1, ':', (size_t)(s + len - rest - 1)))
			return "an IPv6 address must be in brackets: "
			    "[2001:db8::1]:8887";
		hl = (size_t)(rest - h);
		if (hl == 0)
			return "no host";
		for (size_t i = 0; i < hl; i++)
			if (!isalnum((unsigned char)h[i]) && h[i] != '.' &&
			    h[i] != '-' && h[i] != '_')
				return "not a valid host name";
	}
	if (rest < s + len) {
		long p = 0;

		rest++;
		if (rest == s + len)
			return "no port after ':'";
		for (; rest < s + len; rest++) {
			if (!isdigit((unsigned char)*rest) || p > 65535)
				return "port must be 1..65535";
			p = p * 10 + (*rest - '0');
		}
		if (p < 1 || p > 65535)
			return "port must be 1..65535";
		*port = (int)p;
	}
	*host = strndup(h, hl);
	return NULL;
}

/* A tenant id as PortSIP writes them: decimal digits. */
static const char *
check_tenant(const char *s)
{
	if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 20)
		return "must be a tenant id: up to 20 decimal digits";
	return NULL;
}

static const char *
check_listen(const char *s)
{
	const char *why;
	char *host;
	int port;

	why = hostport_parse(s, strlen(s), &host, &port);
	free(host);
	if (why == NULL && port == 0)
		why = "must be host:port, e.g. \"127.0.0.1:9464\"";
	return why;
}

static void
url_clear(struct cfg_url *u)
{
	free(u->text);
	free(u->host);
	free(u->path);
	memset(u, 0, sizeof(*u));
}

/*
 * wss://host[:port][/path] or ws://…; a query or fragment stays part of the
 * path, as it goes on the request line. The text may come from an operator
 * who pasted credentials into it, so no message repeats it.
 * @returns NULL, or why not (u then holds nothing).
 */
static const char *
url_parse(const char *text, struct cfg_url *u, bool *nomem)
{
	const char *auth, *end, *why;
	size_t alen;

	memset(u, 0, sizeof(*u));
	*nomem = false;
	if (strncasecmp(text, "wss://", 6) == 0) {
		u->tls = true;
		u->port = 443;
		auth = text + 6;
	} else if (strncasecmp(text, "ws://", 5) == 0) {
		u->port = 80;
		auth = text + 5;
	} else {
		return "must start with wss:// (or ws:// with insecure = true)";
	}
	for (const char *p = text; *p != '\0'; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return "must not contain spaces or control characters";
	end = auth + strcspn(auth, "/?#");
	alen = (size_t)(end - auth);
	if (memchr(auth, '@', alen) != NULL)
		return "user information (user@host) is not allowed in a URL; "
		    "use username and password";
	if ((why = hostport_parse(auth, alen, &u->host, &u->port)) != NULL)
		return why;
	if (u->port == 0)
		u->port = u->tls ? 443 : 80;
	if (*end == '/')
		u->path = strdup(end);
	else if (asprintf(&u->path, "/%s", end) < 0)
		u->path = NULL;
	u->text = strdup(text);
	if (u->host == NULL || u->path == NULL || u->text == NULL) {
		*nomem = true;
		url_clear(u);
	}
	return NULL;
}

/* ---- the schema walk -------------------------------------------------- */

/* The row for path prefix "." name, or NULL. */
static const struct key *
key_find(const char *prefix, const char *name)
{
	char path[PATH_LEN];

	if (name == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
	    name);
	for (size_t i = 0; i < W2K_ARRAY_SIZE(schema); i++)
		if (strcmp(schema[i].path, path) == 0)
			return &schema[i];
	return NULL;
}

/* The last component of k if k is a direct child of prefix, else NULL. */
static const char *
key_child(const struct key *k, const char *prefix)
{
	size_t pl = strlen(prefix);
	const char *leaf = k->path;

	if (pl > 0) {
		if (strncmp(k->path, prefix, pl) != 0 || k->path[pl] != '.')
			return NULL;
		leaf += pl + 1;
	}
	return strchr(leaf, '.') == NULL ? leaf : NULL;
}

/* The K_LIST a key's values live in ("" for struct cfg itself). */
static size_t
key_owner_len(const struct key *k)
{
	size_t best = 0;

	for (size_t i = 0; i < W2K_ARRAY_SIZE(schema); i++) {
		size_t l = strlen(schema[i].path);

		if (schema[i].type == K_LIST && l > best &&
		    strncmp(k->path, schema[i].path, l) == 0 &&
		    k->path[l] == '.')
			best = l;
	}
	return best;
}

static void
set_str(struct loader *ld, void *dst, const char *v)
{
	char **sp = dst;

	free(*sp);
	*sp = xstrdup(ld, v);
}

static int
enum_find(const struct enum_name *names, const char *v, int *out)
{
	for (; names->name != NULL; names++)
		if (strcasecmp(names->name, v) == 0) {
			*out = names->value;
			return 0;
		}
	return W2K_EINVAL;
}

/*
 * Sets the defaults of every key stored in obj, an object of the list
 * owner (e.g. "pbx" for struct cfg_pbx; "" for struct cfg), so that absent
 * keys and absent groups alike end up with their documented value.
 */
static void
apply_defaults(struct loader *ld, const char *owner, void *obj)
{
	for (size_t i = 0; i < W2K_ARRAY_SIZE(schema); i++) {
		const struct key *k = &schema[i];
		uint64_t size;
		char *dst;
		int ev;

		if (k->def == NULL || k->off == NOOFF ||
		    key_owner_len(k) != strlen(owner) ||
		    strncmp(k->path, owner, strlen(owner)) != 0)
			continue;
		dst = (char *)obj + k->off;
		switch (k->type) {
		case K_STRING:
			set_str(ld, dst, k->def);
			break;
		case K_BOOL:
			*(bool *)(void *)dst = strcmp(k->def, "true") == 0;
			break;
		case K_INT:
			*(int *)(void *)dst = atoi(k->def);
			break;
		case K_FLOAT:
			*(double *)(void *)dst = strtod(k->def, NULL);
			break;
		case K_SIZE:
			if (cfg_parse_size(k->def, &size) == 0)
				memcpy(dst, &size, sizeof(size));
			break;
		case K_DURATION: {
			int64_t secs;

			if (cfg_parse_duration(k->def, &secs) == 0)
				memcpy(dst, &secs, sizeof(secs));
			break;
		}
		case K_ENUM:
			if (enum_find(k->names, k->def, &ev) == 0)
				memcpy(dst, &ev, sizeof(ev));
			break;
		case K_LOGLEVEL: {
			enum log_level lvl;

			if (log_level_parse(k->def, &lvl) == 0)
				memcpy(dst, &lvl, sizeof(lvl));
			break;
		}
		default:
			break;
		}
	}
}

static void	walk_group(struct loader *, const config_setting_t *,
		    const char *, void *);

/* "must be 1..3600", "must be > 0 and <= 86400", "must be 1K..256M". */
static void
range_text(const struct key *k, char *buf, size_t len)
{
	char lo[32], hi[32];

	switch (k->type) {
	case K_FLOAT:
		fmt_float(k->fmin, lo, sizeof(lo));
		fmt_float(k->fmax, hi, sizeof(hi));
		if (k->flags & KF_FMIN_OPEN)
			snprintf(buf, len, "must be > %s and <= %s", lo, hi);
		else
			snprintf(buf, len, "must be %s..%s", lo, hi);
		break;
	case K_SIZE:
		fmt_size((uint64_t)k->min, lo, sizeof(lo));
		fmt_size((uint64_t)k->max, hi, sizeof(hi));
		snprintf(buf, len, "must be %s..%s", lo, hi);
		break;
	case K_DURATION:
		snprintf(buf, len, "must be %llds..%llds", (long long)k->min,
		    (long long)k->max);
		break;
	default:
		snprintf(buf, len, "must be %lld..%lld", (long long)k->min,
		    (long long)k->max);
		break;
	}
}

static void
load_strv(struct loader *ld, const config_setting_t *s, const struct key *k,
    void *dst)
{
	struct cfg_strv *sv = dst;
	int n = config_setting_length(s);
	bool bad = false;

	if (n == 0 && (k->flags & KF_NONEMPTY)) {
		report(ld, s, "must not be empty");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e;

		e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			report(ld, e, "must be a string, not %s",
			    type_name(config_setting_type(e)));
			bad = true;
		} else if (config_setting_get_string(e)[0] == '\0') {
			report(ld, e, "must not be empty");
			bad = true;
		}
	}
	if (bad || sv == NULL)
		return;
	strv_clear(sv, false);
	for (int i = 0; i < n; i++)
		if (strv_push(sv, config_setting_get_string(
		    config_setting_get_elem(s, (unsigned)i))) != 0)
			ld->nomem = true;
}

/* Scalars and arrays of strings: type, bounds, then store. */
static void
load_scalar(struct loader *ld, const config_setting_t *s, const struct key *k,
    void *obj)
{
	void *dst = k->off == NOOFF ? NULL : (char *)obj + k->off;
	int t = config_setting_type(s);
	bool is_int = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
	char range[96];
	const char *why, *v;
	long long iv;

	range_text(k, range, sizeof(range));
	switch (k->type) {
	case K_STRING:
		if (t != CONFIG_TYPE_STRING)
			break;
		v = config_setting_get_string(s);
		if ((k->flags & KF_NONEMPTY) && v[0] == '\0')
			report(ld, s, "must not be empty");
		else if (k->check != NULL && (why = k->check(v)) != NULL)
			report(ld, s, "%s", why);
		else if (dst != NULL)
			set_str(ld, dst, v);
		return;
	case K_STRV:
		if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
			report(ld, s, "must be an array of strings "
			    "[ \"...\" ], not %s", type_name(t));
			return;
		}
		load_strv(ld, s, k, dst);
		return;
	case K_BOOL:
		if (t != CONFIG_TYPE_BOOL)
			break;
		*(bool *)dst = config_setting_get_bool(s) != 0;
		return;
	case K_INT:
		if (!is_int)
			break;
		if (read_int(ld, s, &iv, range) != 0)
			return;
		if (iv < k->min || iv > k->max)
			report(ld, s, "%s", range);
		else
			*(int *)dst = (int)iv;
		return;
	case K_FLOAT: {
		double fv;

		if (t == CONFIG_TYPE_FLOAT) {
			fv = config_setting_get_float(s);
		} else if (is_int) {
			if (read_int(ld, s, &iv, range) != 0)
				return;
			fv = (double)iv;
		} else {
			report(ld, s, "must be a number, not %s", type_name(t));
			return;
		}
		if (!isfinite(fv) || fv > k->fmax || fv < k->fmin ||
		    ((k->flags & KF_FMIN_OPEN) && fv == k->fmin))
			report(ld, s, "%s", range);
		else
			*(double *)dst = fv;
		return;
	}
	case K_SIZE: {
		uint64_t size;

		if (t == CONFIG_TYPE_STRING) {
			if (cfg_parse_size(config_setting_get_string(s),
			    &size) != 0) {
				report(ld, s, "not a size: a number with an "
				    "optional K, M, G or T suffix, e.g. "
				    "\"512K\", \"4M\", \"1G\"");
				return;
			}
		} else if (is_int) {
			if (read_int(ld, s, &iv, "write it as a string with "
			    "a unit, e.g. \"5G\"") != 0)
				return;
			if (iv < 0) {
				report(ld, s, "must not be negative");
				return;
			}
			size = (uint64_t)iv;
		} else {
			report(ld, s, "must be a size such as \"4M\" or an "
			    "integer, not %s", type_name(t));
			return;
		}
		if (size < (uint64_t)k->min || size > (uint64_t)k->max)
			report(ld, s, "%s", range);
		else
			memcpy(dst, &size, sizeof(size));
		return;
	}
	case K_DURATION: {
		int64_t secs;

		if (t == CONFIG_TYPE_STRING) {
			if (cfg_parse_duration(config_setting_get_string(s),
			    &secs) != 0) {
				report(ld, s, "not a duration: a number of "
				    "seconds with an optional s, m, h or d "
				    "suffix, e.g. \"90s\", \"4h\", \"7d\"");
				return;
			}
		} else if (is_int) {
			if (read_int(ld, s, &iv, range) != 0)
				return;
			secs = iv;
		} else {
			report(ld, s, "must be a duration such as \"4h\" or "
			    "a number of seconds, not %s", type_name(t));
			return;
		}
		if (secs < k->min || secs > k->max)
			report(ld, s, "%s", range);
		else
			memcpy(dst, &secs, sizeof(secs));
		return;
	}
	case K_ENUM: {
		char list[128] = "";
		int ev;

		if (t != CONFIG_TYPE_STRING)
			break;
		if (enum_find(k->names, config_setting_get_string(s),
		    &ev) == 0) {
			memcpy(dst, &ev, sizeof(ev));
			return;
		}
		for (const struct enum_name *e = k->names; e->name; e++) {
			size_t l = strlen(list);

			snprintf(list + l, sizeof(list) - l, "%s%s",
			    l ? ", " : "", e->name);
		}
		report(ld, s, "must be one of %s", list);
		return;
	}
	case K_LOGLEVEL: {
		enum log_level lvl;

		if (t != CONFIG_TYPE_STRING)
			break;
		if (log_level_parse(config_setting_get_string(s), &lvl) != 0)
			report(ld, s, "must be one of error, warning, info, "
			    "debug");
		else
			memcpy(dst, &lvl, sizeof(lvl));
		return;
	}
	default:
		return;
	}
	report(ld, s, "must be %s, not %s", k->type == K_BOOL ? "a boolean "
	    "(true or false)" : k->type == K_INT ? "an integer" : "a string",
	    type_name(t));
}

static void
load_list(struct loader *ld, const config_setting_t *s, const struct key *k,
    void *obj)
{
	int t = config_setting_type(s);
	int n = config_setting_length(s);
	char *arr;
	size_t cnt;

	if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && n == 0)) {
		report(ld, s, "must be a list of groups ( { ... }, ... ), "
		    "not %s", type_name(t));
		return;
	}
	if (n == 0) {
		if (k->flags & KF_NONEMPTY)
			report(ld, s, "must not be empty");
		return;
	}
	if ((arr = calloc((size_t)n, k->elsize)) == NULL) {
		ld->nomem = true;
		return;
	}
	/* Stored at once, so that cfg_free() frees it whatever happens. */
	cnt = (size_t)n;
	memcpy((char *)obj + k->off, &arr, sizeof(arr));
	memcpy((char *)obj + k->off_n, &cnt, sizeof(cnt));
	for (int i = 0; i < n; i++) {
		const config_setting_t *e;
		void *el = arr + (size_t)i * k->elsize;

		e = config_setting_get_elem(s, (unsigned)i);
		apply_defaults(ld, k->path, el);
		if (!config_setting_is_group(e)) {
			report(ld, e, "must be a group { ... }, not %s",
			    type_name(config_setting_type(e)));
			continue;
		}
		where_add(ld, e);
		walk_group(ld, e, k->path, el);
		if (k->post != NULL)
			k->post(ld, e, el);
	}
}

/*
 * The text librdkafka gets for a libconfig scalar: the string itself, or
 * numbers and booleans written into buf.
 * @returns it, or NULL after reporting.
 */
static const char *
prop_text(struct loader *ld, const config_setting_t *s, char *buf,
    size_t len)
{
	long long iv;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		return config_setting_get_string(s);
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		if (read_int(ld, s, &iv, "write it as a string") != 0)
			return NULL;
		snprintf(buf, len, "%lld", iv);
		return buf;
	case CONFIG_TYPE_FLOAT:
		fmt_float(config_setting_get_float(s), buf, len);
		return buf;
	case CONFIG_TYPE_BOOL:
		return config_setting_get_bool(s) ? "true" : "false";
	default:
		report(ld, s, "must be a string, number or boolean, not %s",
		    type_name(config_setting_type(s)));
		return NULL;
	}
}

/*
 * kafka.properties: every member goes to librdkafka as a string, tried at
 * once on a scratch conf so a typo or bad value is reported at its line.
 * libconfig 1.5 allows neither dots nor quotes in setting names, so
 * "security.protocol" is written security_protocol: a name librdkafka does
 * not know as written is tried again with every '_' read as '.' (a few
 * real names, such as log_level, do contain '_').
 */
static void
load_props(struct loader *ld, const config_setting_t *g)
{
	struct cfg_kafka *kc = &ld->cfg->kafka;
	int n = config_setting_length(g);

	if (!config_setting_is_group(g)) {
		report(ld, g, "must be a group { name = \"value\"; ... }, "
		    "not %s", type_name(config_setting_type(g)));
		return;
	}
	if (ld->scratch == NULL &&
	    (ld->scratch = rd_kafka_conf_new()) == NULL) {
		ld->nomem = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g,
		    (unsigned)i);
		const char *name = config_setting_name(s), *val;
		char num[64], dotted[256], errstr[512], path[PATH_LEN];
		rd_kafka_conf_res_t res;

		where_add(ld, s);
		if ((val = prop_text(ld, s, num, sizeof(num))) == NULL)
			continue;
		res = rd_kafka_conf_set(ld->scratch, name, val, errstr,
		    sizeof(errstr));
		if (res == RD_KAFKA_CONF_UNKNOWN && strchr(name, '_') != NULL &&
		    strlen(name) < sizeof(dotted)) {
			strcpy(dotted, name);
			for (char *c = dotted; *c != '\0'; c++)
				if (*c == '_')
					*c = '.';
			res = rd_kafka_conf_set(ld->scratch, dotted, val,
			    errstr, sizeof(errstr));
			if (res == RD_KAFKA_CONF_UNKNOWN)
				snprintf(errstr, sizeof(errstr), "no such "
				    "librdkafka property: \"%s\" (nor \"%s\")",
				    name, dotted);
			name = dotted;
		}
		if (res != RD_KAFKA_CONF_OK) {
			report(ld, s, "%s", errstr);
			continue;
		}
		if (strcmp(name, "bootstrap.servers") == 0 ||
		    strcmp(name, "metadata.broker.list") == 0) {
			report(ld, s, "set kafka.brokers instead");
			continue;
		}
		spath(s, path, sizeof(path));
		if (strv_push(&kc->prop_names, name) != 0 ||
		    strv_push(&kc->prop_values, val) != 0 ||
		    strv_push(&ld->cfg->where->prop_paths, path) != 0)
			ld->nomem = true;
	}
}

static void read_secret(struct loader *ld, const config_setting_t *s,
    const char *name, char **out);

/*
 * kafka.sasl_password_file and kafka.ssl_key_password_file: read like a
 * PBX's password_file and handed to librdkafka as sasl.password and
 * ssl.key.password, after kafka.properties (which must not set them too).
 * Kept among the properties, so that a reload notices a new password and
 * cfg_free() wipes it with them.
 */
static void
kafka_secrets(struct loader *ld)
{
	static const struct { const char *key, *prop; } map[] = {
		{ "sasl_password_file", "sasl.password" },
		{ "ssl_key_password_file", "ssl.key.password" },
	};
	struct cfg_kafka *kc = &ld->cfg->kafka;
	const config_setting_t *k = config_setting_get_member(ld->root,
	    "kafka");

	if (k == NULL || !config_setting_is_group(k))
		return;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		const config_setting_t *s = config_setting_get_member(k,
		    map[i].key);
		char *secret = NULL, path[PATH_LEN];
		bool dup = false;

		if (s == NULL || config_setting_type(s) != CONFIG_TYPE_STRING)
			continue;
		for (size_t j = 0; j < kc->prop_names.n; j++)
			dup = dup || strcmp(kc->prop_names.v[j],
			    map[i].prop) == 0;
		if (dup) {
			report(ld, s, "give either %s or properties.%s, not "
			    "both", map[i].key, map[i].prop);
			continue;
		}
		read_secret(ld, s, config_setting_get_string(s), &secret);
		if (secret == NULL)
			continue;
		spath(s, path, sizeof(path));
		if (strv_push(&kc->prop_names, map[i].prop) != 0 ||
		    strv_push(&kc->prop_values, secret) != 0 ||
		    strv_push(&ld->cfg->where->prop_paths, path) != 0)
			ld->nomem = true;
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
}

static void
load_key(struct loader *ld, const config_setting_t *s, const struct key *k,
    void *obj)
{
	switch (k->type) {
	case K_GROUP:
		if (!config_setting_is_group(s))
			report(ld, s, "must be a group { ... }, not %s",
			    type_name(config_setting_type(s)));
		else
			walk_group(ld, s, k->path, obj);
		break;
	case K_LIST:
		load_list(ld, s, k, obj);
		break;
	case K_PROPS:
		load_props(ld, s);
		break;
	default:
		load_scalar(ld, s, k, obj);
		break;
	}
}

/*
 * Every member of grp must be a key of the schema under prefix; every
 * required key under prefix must be there.
 */
static void
walk_group(struct loader *ld, const config_setting_t *grp, const char *prefix,
    void *obj)
{
	int n = config_setting_length(grp);
	char gpath[PATH_LEN], path[2 * PATH_LEN];

	for (int i = 0; i < n; i++) {
		const config_setting_t *s;
		const struct key *k;

		s = config_setting_get_elem(grp, (unsigned)i);
		if ((k = key_find(prefix, config_setting_name(s))) == NULL) {
			report(ld, s, "unknown key");
			continue;
		}
		where_add(ld, s);
		load_key(ld, s, k, obj);
	}
	spath(grp, gpath, sizeof(gpath));
	for (size_t i = 0; i < W2K_ARRAY_SIZE(schema); i++) {
		const char *leaf = key_child(&schema[i], prefix);

		if (leaf == NULL || !(schema[i].flags & KF_REQUIRED) ||
		    config_setting_get_member(grp, leaf) != NULL)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", gpath,
		    gpath[0] ? "." : "", leaf);
		report_at(ld, grp, path, "missing (required)");
	}
}

/* ---- cross-checks ----------------------------------------------------- */

static void
add_url(struct loader *ld, struct cfg_pbx *p, const config_setting_t *s)
{
	struct cfg_url u;
	const char *why;
	bool nomem;

	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    config_setting_get_string(s)[0] == '\0')
		return;		/* reported by load_scalar() */
	if ((why = url_parse(config_setting_get_string(s), &u, &nomem))
	    != NULL) {
		report(ld, s, "%s", why);
		return;
	}
	if (nomem) {
		ld->nomem = true;
		return;
	}
	if (!u.tls && !p->insecure) {
		report(ld, s, "ws:// is only allowed with insecure = true; "
		    "use wss://");
		url_clear(&u);
		return;
	}
	p->urls[p->nurls++] = u;
}

/*
 * Where a secret file is: a relative name is looked up in
 * $CREDENTIALS_DIRECTORY when systemd set it (LoadCredential=, contract
 * §4), else taken as it is. buf holds the result when one was built.
 */
static const char *
secret_path(const char *file, char *buf, size_t len)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	int n;

	if (file[0] == '/' || dir == NULL || dir[0] == '\0')
		return file;
	n = snprintf(buf, len, "%s/%s", dir, file);
	return n > 0 && (size_t)n < len ? buf : file;
}

/*
 * Reads a secret file (a password_file, kafka.sasl_password_file,
 * kafka.ssl_key_password_file) into *out. The file must not be readable by
 * everyone (contract §3) nor writable by anyone but its owner (whoever can
 * write it chooses the password we send): mode 0600 or 0640, 0400 or 0440.
 * One trailing newline is not part of the secret.
 */
static void
read_secret(struct loader *ld, const config_setting_t *s, const char *name,
    char **out)
{
	char buf[SECRET_MAX + 2], pbuf[PATH_MAX];
	const char *file = secret_path(name, pbuf, sizeof(pbuf));
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		report(ld, s, "cannot open %s: %s", file, strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		report(ld, s, "%s is not a regular file", file);
		goto out;
	}
	if (st.st_mode & S_IROTH) {
		report(ld, s, "%s is readable by everyone (mode %04o); "
		    "chmod o-r it", file, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_mode & S_IWOTH) {
		report(ld, s, "%s is writable by everyone (mode %04o); "
		    "chmod o-w it", file, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_mode & S_IXOTH) {
		report(ld, s, "%s is accessible by others (mode %04o); "
		    "chmod o= it", file, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_mode & S_IWGRP) {
		report(ld, s, "%s is writable by its group (mode %04o); "
		    "chmod g-w it", file, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (len < sizeof(buf) - 1 &&
	    (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			report(ld, s, "cannot read %s: %s", file,
			    strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > SECRET_MAX)
		report(ld, s, "%s is too large for a password", file);
	else if (len == 0)
		report(ld, s, "%s is empty", file);
	else if (memchr(buf, '\0', len) != NULL)
		report(ld, s, "%s contains a NUL byte", file);
	else if (memchr(buf, '\n', len) != NULL)
		report(ld, s, "%s holds more than one line", file);
	else if ((*out = strndup(buf, len)) == NULL)
		ld->nomem = true;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
}

/* Exactly one of a and b; both are keys of element e at path. */
static const config_setting_t *
one_of(struct loader *ld, const config_setting_t *e, const char *path,
    const char *a, const char *b)
{
	const config_setting_t *sa = config_setting_get_member(e, a);
	const config_setting_t *sb = config_setting_get_member(e, b);
	char p[PATH_LEN];

	if (sa != NULL && sb != NULL) {
		report(ld, sb, "give either %s or %s, not both", a, b);
		return NULL;
	}
	if (sa == NULL && sb == NULL) {
		snprintf(p, sizeof(p), "%s.%s", path, a);
		report_at(ld, e, p, "missing (give %s or %s)", a, b);
		return NULL;
	}
	return sa != NULL ? sa : sb;
}

/* The setting at a dotted path under e, or the nearest that exists. */
static const config_setting_t *
nearest(const config_setting_t *e, const char *p1, const char *p2)
{
	const config_setting_t *s;

	if ((s = config_setting_get_member(e, p1)) == NULL)
		return e;
	if (p2 != NULL && config_setting_is_group(s) &&
	    config_setting_get_member(s, p2) != NULL)
		return config_setting_get_member(s, p2);
	return s;
}

bool
cfg_pbx_has_cdr_sub(const struct cfg_pbx *p)
{
	for (size_t i = 0; i < p->nsubs; i++)
		for (size_t j = 0; j < p->subs[i].topics.n; j++)
			if (strcmp(p->subs[i].topics.v[j], "cdr_events") == 0 ||
			    strcmp(p->subs[i].topics.v[j],
			    "global_cdr_events") == 0)
				return true;
	return false;
}

/*
 * pbx.backfill (contract §4, §10): the REST URL (https://, or http:// with
 * insecure = true; default: the first WSI URL's host and port, path /api),
 * the REST login (default: the WSI login), and what must hold for it to
 * work at all. Only checked when enabled: a disabled block changes nothing.
 */
static void
backfill_post(struct loader *ld, const config_setting_t *g, struct cfg_pbx *p,
    const char *path)
{
	struct cfg_backfill *bf = &p->backfill;
	const config_setting_t *s, *u, *pw, *pf;
	char sub[PATH_LEN + 32];
	bool nomem = false;

	bf->line = (int)config_setting_source_line(g);
	if (!bf->enabled)
		return;
	if (!cfg_pbx_has_cdr_sub(p)) {
		snprintf(sub, sizeof(sub), "%s.backfill.enabled", path);
		s = config_setting_get_member(g, "enabled");
		report_at(ld, s ? s : g, sub, "needs a cdr_events or "
		    "global_cdr_events subscription (backfill reads the CDRs "
		    "of its gaps)");
	}
	if ((u = config_setting_get_member(g, "url")) != NULL) {
		const char *why = NULL;
		const char *t = bf->url_text;
		char *ws = NULL;

		/* url_parse() speaks ws(s)://: map http(s):// onto it. */
		if (t == NULL)
			return;		/* reported by load_scalar() */
		if (strncasecmp(t, "https://", 8) == 0) {
			if (asprintf(&ws, "wss://%s", t + 8) < 0)
				ws = NULL;
		} else if (strncasecmp(t, "http://", 7) == 0) {
			if (asprintf(&ws, "ws://%s", t + 7) < 0)
				ws = NULL;
		} else {
			why = "must start with https:// (or http:// with "
			    "insecure = true)";
		}
		if (why == NULL && ws == NULL) {
			ld->nomem = true;
			return;
		}
		if (why == NULL)
			why = url_parse(ws, &bf->url, &nomem);
		free(ws);
		if (nomem) {
			ld->nomem = true;
			return;
		}
		if (why == NULL && !bf->url.tls && !p->insecure) {
			why = "http:// is only allowed with insecure = true; "
			    "use https://";
			url_clear(&bf->url);
		}
		if (why != NULL) {
			report(ld, u, "%s", why);
			return;
		}
		free(bf->url.text);
		bf->url.text = xstrdup(ld, t);
	} else if (p->nurls > 0) {
		const struct cfg_url *w = &p->urls[0];
		bool v6 = strchr(w->host, ':') != NULL;

		bf->url.tls = w->tls;
		bf->url.port = w->port;
		bf->url.host = xstrdup(ld, w->host);
		bf->url.path = xstrdup(ld, "/api");
		if (asprintf(&bf->url.text, "%s://%s%s%s:%d/api",
		    w->tls ? "https" : "http", v6 ? "[" : "", w->host,
		    v6 ? "]" : "", w->port) < 0) {
			bf->url.text = NULL;
			ld->nomem = true;
		}
	}
	/* No trailing '/': endpoints are appended as "/auth/sign_in". */
	if (bf->url.path != NULL) {
		size_t l = strlen(bf->url.path);

		while (l > 0 && bf->url.path[l - 1] == '/')
			bf->url.path[--l] = '\0';
	}

	pw = config_setting_get_member(g, "password");
	pf = config_setting_get_member(g, "password_file");
	s = config_setting_get_member(g, "username");
	if (pw != NULL && pf != NULL) {
		report(ld, pf, "give either password or password_file, not "
		    "both");
	} else if (s == NULL && pw == NULL && pf == NULL) {
		/* The WSI login, when it is allowed to read CDRs over REST. */
		bf->username = xstrdup(ld, p->username ? p->username :
		    p->extension_number);
		if (p->password != NULL)
			bf->password = xstrdup(ld, p->password);
	} else if (s == NULL) {
		snprintf(sub, sizeof(sub), "%s.backfill.username", path);
		report_at(ld, pw ? pw : pf, sub, "missing (a REST password "
		    "needs its username)");
	} else if (pw == NULL && pf == NULL) {
		snprintf(sub, sizeof(sub), "%s.backfill.password_file", path);
		report_at(ld, s, sub, "missing (give password or "
		    "password_file)");
	} else if (pf != NULL && bf->password_file != NULL) {
		read_secret(ld, pf, bf->password_file, &bf->password);
	}
	if (config_setting_get_member(g, "domain") == NULL && p->domain)
		bf->domain = xstrdup(ld, p->domain);
	/* A tenant_id written but refused was reported already. */
	if (config_setting_get_member(g, "tenant_id") != NULL)
		return;
	if (bf->domain == NULL && bf->tenant_id == NULL) {
		snprintf(sub, sizeof(sub), "%s.backfill.domain", path);
		report_at(ld, g, sub, "missing: the REST login is a tenant's "
		    "(a tenant admin reads its tenant's CDRs); give domain, "
		    "and tenant_id when the WSI login is the system "
		    "administrator's");
	}
	if (p->domain == NULL && bf->tenant_id == NULL) {
		snprintf(sub, sizeof(sub), "%s.backfill.tenant_id", path);
		report_at(ld, g, sub, "missing: with the system "
		    "administrator's WSI login, live events mix tenants; name "
		    "the REST login's tenant");
	}
}

/* One pbx element, after its keys: what no single row can check. */
static void
pbx_post(struct loader *ld, const config_setting_t *e, void *obj)
{
	struct cfg_pbx *p = obj;
	const config_setting_t *s, *tls;
	char path[PATH_LEN], sub[PATH_LEN + 32], num[32];

	spath(e, path, sizeof(path));
	p->line = (int)config_setting_source_line(e);

	if ((s = one_of(ld, e, path, "url", "urls")) != NULL) {
		size_t n = config_setting_is_aggregate(s) ?
		    (size_t)config_setting_length(s) : 1;

		if (n > 0 && (p->urls = calloc(n, sizeof(*p->urls))) == NULL) {
			ld->nomem = true;
		} else if (config_setting_is_aggregate(s)) {
			for (size_t i = 0; i < n; i++)
				add_url(ld, p, config_setting_get_elem(s,
				    (unsigned)i));
		} else {
			add_url(ld, p, s);
		}
	}
	one_of(ld, e, path, "username", "extension_number");
	if ((s = one_of(ld, e, path, "password", "password_file")) != NULL &&
	    p->password_file != NULL)
		read_secret(ld, s, p->password_file, &p->password);

	/* A client certificate is useless without its key and vice versa. */
	if ((tls = config_setting_get_member(e, "tls")) != NULL &&
	    config_setting_is_group(tls)) {
		const config_setting_t *c, *k;

		c = config_setting_get_member(tls, "cert_file");
		k = config_setting_get_member(tls, "key_file");
		if (c != NULL && k == NULL) {
			snprintf(sub, sizeof(sub), "%s.tls.key_file", path);
			report_at(ld, c, sub, "missing (cert_file needs it)");
		} else if (k != NULL && c == NULL) {
			snprintf(sub, sizeof(sub), "%s.tls.cert_file", path);
			report_at(ld, k, sub, "missing (key_file needs it)");
		}
	}

	/*
	 * A ping is a frame: with idle_timeout <= ping_interval a healthy but
	 * quiet session would be torn down before its first pong.
	 */
	if (p->idle_timeout <= p->ping_interval) {
		s = config_setting_get_member(e, "idle_timeout");
		snprintf(sub, sizeof(sub), "%s.idle_timeout", path);
		report_at(ld, s ? s : nearest(e, "ping_interval", NULL), sub,
		    "must be > ping_interval (%d)", p->ping_interval);
	}
	if (p->backoff_max < p->backoff_initial) {
		fmt_float(p->backoff_initial, num, sizeof(num));
		snprintf(sub, sizeof(sub), "%s.backoff.max", path);
		s = nearest(e, "backoff", "max");
		report_at(ld, s, sub, "must be >= backoff.initial (%s)", num);
	}
	if ((s = config_setting_get_member(e, "backfill")) != NULL &&
	    config_setting_is_group(s))
		backfill_post(ld, s, p, path);
}

/* The setting of pbx[i].name, for messages about it. */
static const config_setting_t *
pbx_setting(struct loader *ld, size_t i, const char *member)
{
	const config_setting_t *l = config_setting_get_member(ld->root, "pbx");
	const config_setting_t *e;

	e = l ? config_setting_get_elem(l, (unsigned)i) : NULL;
	if (e == NULL)
		return ld->root;
	return config_setting_is_group(e) && config_setting_get_member(e,
	    member) ? config_setting_get_member(e, member) : e;
}

static void
check_names_unique(struct loader *ld)
{
	struct cfg *cfg = ld->cfg;

	for (size_t j = 1; j < cfg->npbx; j++)
		for (size_t i = 0; i < j; i++) {
			const char *a = cfg->pbx[i].name, *b = cfg->pbx[j].name;
			const config_setting_t *first;

			if (a == NULL || b == NULL || strcmp(a, b) != 0)
				continue;
			first = pbx_setting(ld, i, "name");
			report(ld, pbx_setting(ld, j, "name"), "\"%s\" is "
			    "already the name of pbx[%zu] (line %u)", b, i,
			    config_setting_source_line(first));
			break;
		}
}

/* The default routes when none are written; then compile them as a test. */
static void
check_routes(struct loader *ld)
{
	struct cfg_kafka *kc = &ld->cfg->kafka;
	const config_setting_t *rs = NULL, *k;
	struct route_table *rt = NULL;
	size_t bad = 0;
	int r;

	if ((k = config_setting_get_member(ld->root, "kafka")) != NULL &&
	    config_setting_is_group(k))
		rs = config_setting_get_member(k, "routes");
	if (rs == NULL && kc->routes == NULL) {
		size_t n = W2K_ARRAY_SIZE(default_routes);

		if ((kc->routes = calloc(n, sizeof(*kc->routes))) == NULL) {
			ld->nomem = true;
			return;
		}
		kc->nroutes = n;
		for (size_t i = 0; i < n; i++) {
			kc->routes[i].match = xstrdup(ld,
			    default_routes[i].match);
			kc->routes[i].topic = xstrdup(ld,
			    default_routes[i].topic);
		}
	}
	for (size_t i = 0; i < kc->nroutes; i++)
		if (kc->routes[i].match == NULL || kc->routes[i].topic == NULL)
			return;		/* already reported */
	if (kc->nroutes == 0 || ld->nomem)
		return;
	r = route_new(kc->routes, kc->nroutes, &rt, &bad);
	route_free(rt);
	if (r == W2K_ENOMEM) {
		ld->nomem = true;
	} else if (r != 0) {
		const config_setting_t *e = rs ? config_setting_get_elem(rs,
		    (unsigned)bad) : NULL;
		const config_setting_t *m = e ?
		    config_setting_get_member(e, "match") : NULL;

		if (m != NULL)
			report(ld, m, "not a valid pattern: an empty "
			    "alternative (\"a||b\", a leading or trailing "
			    "'|')");
		else
			report(ld, ld->root, "kafka.routes[%zu]: not a valid "
			    "pattern", bad);
	}
}

/* ---- load ------------------------------------------------------------- */

static void
where_free(struct cfg_where *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->ent[i].path);
	free(w->ent);
	for (size_t i = 0; i < w->nfiles; i++)
		free(w->files[i]);
	free(w->files);
	strv_clear(&w->prop_paths, false);
	free(w);
}

/*
 * Zero every string value libconfig holds before it frees them: any may be a
 * secret (password, a sasl_password among kafka.properties), and what we
 * keep has been copied. (libconfig's scanner buffers, freed inside
 * config_read_string(), are out of our reach: password_file avoids them.)
 */
static void
wipe_strings(config_setting_t *s)
{
	const char *v;
	int n;

	if (s == NULL)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		if ((v = config_setting_get_string(s)) != NULL)
			explicit_bzero((char *)(uintptr_t)v, strlen(v));
		return;
	}
	n = config_setting_is_aggregate(s) ? config_setting_length(s) : 0;
	for (int i = 0; i < n; i++)
		wipe_strings(config_setting_get_elem(s, (unsigned)i));
}

int
cfg_load_string(const char *text, const char *name, struct cfg **cfgp,
    cfg_error_fn *fn, void *ctx)
{
	struct loader ld = { .fn = fn, .ctx = ctx, .name = name,
	    .text = text };
	config_t lc;
	char *slash;
	int r;

	if ((ld.cfg = calloc(1, sizeof(*ld.cfg))) == NULL ||
	    (ld.cfg->where = calloc(1, sizeof(*ld.cfg->where))) == NULL ||
	    (ld.cfg->file = strdup(name)) == NULL ||
	    (ld.incdir = strdup(name)) == NULL) {
		cfg_free(ld.cfg);
		return W2K_ENOMEM;
	}
	/* @include paths are relative to the file that includes them. */
	if ((slash = strrchr(ld.incdir, '/')) != NULL)
		*(slash == ld.incdir ? slash + 1 : slash) = '\0';
	else
		strcpy(ld.incdir, ".");
	apply_defaults(&ld, "", ld.cfg);

	config_init(&lc);
	/* So that a float key such as backoff.initial accepts "1". */
	config_set_options(&lc, CONFIG_OPTION_AUTOCONVERT);
	config_set_include_dir(&lc, ld.incdir);
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		ld.nerr++;
		emit(fn, ctx, intern_file(&ld, config_error_file(&lc)),
		    config_error_line(&lc), config_error_text(&lc));
	} else {
		ld.root = config_root_setting(&lc);
		walk_group(&ld, ld.root, "", ld.cfg);
		check_names_unique(&ld);
		check_routes(&ld);
		kafka_secrets(&ld);
	}
	wipe_strings(config_root_setting(&lc));
	config_destroy(&lc);

	for (size_t i = 0; i < ld.nsrc; i++) {
		free(ld.src[i].file);
		if (ld.src[i].text != NULL)	/* may hold a password */
			explicit_bzero(ld.src[i].text, strlen(ld.src[i].text));
		free(ld.src[i].text);
	}
	free(ld.src);
	free(ld.incdir);
	if (ld.scratch != NULL)
		rd_kafka_conf_destroy(ld.scratch);

	r = ld.nomem ? W2K_ENOMEM : ld.nerr ? W2K_EINVAL : 0;
	if (r != 0)
		cfg_free(ld.cfg);
	else
		*cfgp = ld.cfg;
	return r;
}

int
cfg_load(const char *path, struct cfg **cfgp, cfg_error_fn *fn, void *ctx)
{
	char *text, msg[MSG_LEN];
	int err, r;

	/*
	 * Read here rather than with config_read_file(): we get errno for the
	 * message, and the text to re-read integer literals from.
	 */
	if ((err = read_all(path, CONF_MAX, &text)) != 0) {
		if (err == ENOMEM)
			return W2K_ENOMEM;
		snprintf(msg, sizeof(msg), "%s: cannot read: %s", path,
		    err == EFBIG ? "too large for a configuration file" :
		    strerror(err));
		emit(fn, ctx, NULL, 0, msg);
		return W2K_EINVAL;
	}
	r = cfg_load_string(text, path, cfgp, fn, ctx);
	/* The file may hold an inline password. */
	explicit_bzero(text, strlen(text));
	free(text);
	return r;
}

/* ---- cfg_check -------------------------------------------------------- */

struct checker {
	const struct cfg *cfg;
	cfg_error_fn	*fn;
	void		*ctx;
	int		 nerr;
};

/*
 * A problem with the setting at path: reported where it (or, for a default,
 * its nearest written parent) was written.
 */
static void
where_find(const struct cfg *cfg, const char *path, const char **filep,
    int *linep)
{
	const struct cfg_where *w = cfg->where;
	const char *file = cfg->file;
	char p[PATH_LEN];
	int line = 0;

	snprintf(p, sizeof(p), "%s", path);
	while (w != NULL && line == 0 && p[0] != '\0') {
		char *cut;

		for (size_t i = 0; i < w->n; i++)
			if (strcmp(w->ent[i].path, p) == 0) {
				file = w->ent[i].file;
				line = w->ent[i].line;
				break;
			}
		if ((cut = strrchr(p, '.')) == NULL)
			cut = strrchr(p, '[');
		if (cut == NULL)
			break;
		*cut = '\0';
	}
	*filep = file;
	*linep = line;
}

static void __attribute__((format(printf, 3, 4)))
check_report(struct checker *ck, const char *path, const char *fmt, ...)
{
	const char *file;
	char msg[MSG_LEN];
	int line, n;
	va_list ap;

	where_find(ck->cfg, path, &file, &line);
	n = snprintf(msg, sizeof(msg), "%s: ", path);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	ck->nerr++;
	emit(ck->fn, ck->ctx, file, line, msg);
}

/* The first OpenSSL error, for a message; the queue is emptied. */
static const char *
ssl_err(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	if (r != NULL)
		snprintf(buf, len, "%s", r);
	else if (e != 0)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown TLS error");
	ERR_clear_error();
	return buf;
}

/*
 * An encrypted key would make OpenSSL prompt on the terminal; the daemon
 * cannot answer, so refuse at once.
 */
static int
no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

/* An open(2) first: errno says more than OpenSSL's reason text. */
static bool
file_readable(struct checker *ck, const char *path, const char *file)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		check_report(ck, path, "cannot open %s: %s", file,
		    strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

static void
check_tls(struct checker *ck, const struct cfg_pbx *p, size_t i)
{
	const struct cfg_tls *t = &p->tls;
	char path[PATH_LEN], err[256];
	bool cert_ok = false, key_ok = false;
	SSL_CTX *ctx;

	if (t->ca_file == NULL && t->cert_file == NULL && t->key_file == NULL)
		return;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(path, sizeof(path), "pbx[%zu].tls", i);
		check_report(ck, path, "cannot create a TLS context: %s",
		    ssl_err(err, sizeof(err)));
		return;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase_cb);
	snprintf(path, sizeof(path), "pbx[%zu].tls.ca_file", i);
	if (t->ca_file != NULL && file_readable(ck, path, t->ca_file) &&
	    SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1)
		check_report(ck, path, "cannot load CA certificates from %s: "
		    "%s", t->ca_file, ssl_err(err, sizeof(err)));
	snprintf(path, sizeof(path), "pbx[%zu].tls.cert_file", i);
	if (t->cert_file != NULL && file_readable(ck, path, t->cert_file)) {
		if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1)
			check_report(ck, path, "cannot load a certificate "
			    "from %s: %s", t->cert_file,
			    ssl_err(err, sizeof(err)));
		else
			cert_ok = true;
	}
	snprintf(path, sizeof(path), "pbx[%zu].tls.key_file", i);
	if (t->key_file != NULL && file_readable(ck, path, t->key_file)) {
		/*
		 * With the certificate loaded first, OpenSSL compares the
		 * two as it loads the key; say which failure it was.
		 */
		if (SSL_CTX_use_PrivateKey_file(ctx, t->key_file,
		    SSL_FILETYPE_PEM) != 1) {
			unsigned long e = ERR_peek_last_error();

			if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
			    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
				check_report(ck, path, "%s does not match "
				    "cert_file %s", t->key_file, t->cert_file);
			else
				check_report(ck, path, "cannot load a private "
				    "key (PEM, not encrypted) from %s: %s",
				    t->key_file, ssl_err(err, sizeof(err)));
			ERR_clear_error();
		} else {
			key_ok = true;
		}
	}
	if (cert_ok && key_ok && SSL_CTX_check_private_key(ctx) != 1)
		check_report(ck, path, "%s does not match cert_file %s",
		    t->key_file, t->cert_file);
	SSL_CTX_free(ctx);
	ERR_clear_error();
}

/* The throwaway producer must not print: its CONFWARNs are expected. */
static void
silent_log_cb(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
	(void)rk;
	(void)level;
	(void)fac;
	(void)buf;
}

/*
 * rd_kafka_new() is where librdkafka checks properties against each other
 * (acks vs enable.idempotence, SSL files, SASL mechanisms). With an empty
 * bootstrap list it connects to nothing.
 */
static void
check_kafka(struct checker *ck)
{
	const struct cfg_kafka *kc = &ck->cfg->kafka;
	const struct cfg_where *w = ck->cfg->where;
	const char *path = "kafka.properties";
	rd_kafka_conf_t *conf;
	char errstr[512];
	rd_kafka_t *rk;

	if ((conf = rd_kafka_conf_new()) == NULL) {
		check_report(ck, "kafka", "cannot create a producer "
		    "configuration");
		return;
	}
	if (rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr)) !=
	    RD_KAFKA_CONF_OK || rd_kafka_conf_set(conf, "enable.idempotence",
	    "true", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		check_report(ck, "kafka", "%s", errstr);
		rd_kafka_conf_destroy(conf);
		return;
	}
	for (size_t i = 0; i < kc->prop_names.n; i++)
		if (rd_kafka_conf_set(conf, kc->prop_names.v[i],
		    kc->prop_values.v[i], errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK)
			check_report(ck, w && i < w->prop_paths.n ?
			    w->prop_paths.v[i] : path, "%s", errstr);
	rd_kafka_conf_set(conf, "bootstrap.servers", "", errstr,
	    sizeof(errstr));
	rd_kafka_conf_set_log_cb(conf, silent_log_cb);
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
	    sizeof(errstr))) != NULL) {
		/* conf is owned by rk now. */
		rd_kafka_destroy(rk);
		return;
	}
	rd_kafka_conf_destroy(conf);
	/* Point at the property librdkafka names, if the file has it. */
	for (size_t i = 0; w != NULL && i < kc->prop_names.n &&
	    i < w->prop_paths.n; i++) {
		char q[300];

		snprintf(q, sizeof(q), "`%s`", kc->prop_names.v[i]);
		if (strstr(errstr, q) == NULL)
			snprintf(q, sizeof(q), "\"%s\"", kc->prop_names.v[i]);
		if (strstr(errstr, q) != NULL) {
			path = w->prop_paths.v[i];
			break;
		}
	}
	check_report(ck, path, "librdkafka refuses the producer "
	    "configuration: %s", errstr);
}

/* mkdir -p: every missing component, like the daemon will need. */
static int
mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	struct stat st;
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(buf))
		return ENAMETOOLONG;
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(buf, 0750) != 0 && errno != EEXIST)
			return errno;
		if (stat(buf, &st) != 0)
			return errno;
		if (!S_ISDIR(st.st_mode))
			return ENOTDIR;
		if (c == '\0')
			return 0;
		*p = c;
	}
}

static void
check_spool(struct checker *ck)
{
	const char *dir = ck->cfg->spool.dir;
	char tmp[PATH_MAX];
	int err, fd;

	if (dir == NULL)
		return;
	if ((err = mkdir_p(dir)) != 0) {
		check_report(ck, "spool.dir", "cannot create %s: %s", dir,
		    strerror(err));
		return;
	}
	if (snprintf(tmp, sizeof(tmp), "%s/.wsi2kafka-check-XXXXXX", dir) >=
	    (int)sizeof(tmp)) {
		check_report(ck, "spool.dir", "%s: %s", dir,
		    strerror(ENAMETOOLONG));
		return;
	}
	if ((fd = mkstemp(tmp)) < 0) {
		check_report(ck, "spool.dir", "cannot write in %s: %s", dir,
		    strerror(errno));
		return;
	}
	close(fd);
	unlink(tmp);
}

int
cfg_check(const struct cfg *cfg, unsigned flags, cfg_error_fn *fn, void *ctx)
{
	struct checker ck = { .cfg = cfg, .fn = fn, .ctx = ctx };

	for (size_t i = 0; i < cfg->npbx; i++)
		check_tls(&ck, &cfg->pbx[i], i);
	check_kafka(&ck);
	if (flags & CFG_CHECK_SPOOL)
		check_spool(&ck);
	return ck.nerr ? W2K_EINVAL : 0;
}

void
cfg_sub_topics(const struct cfg_sub *s, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < s->topics.n && n < len; i++) {
		int w = snprintf(buf + n, len - n, "%s%s", i ? "," : "",
		    s->topics.v[i]);

		if (w < 0)
			break;
		n += (size_t)w;
	}
}

/* ---- cfg_warnings ------------------------------------------------------ */

static void
default_warn(const char *file, int line, const char *msg)
{
	if (line > 0)
		log_warn("config: %s:%d: warning: %s", file, line, msg);
	else
		log_warn("config: %s: warning: %s", file, msg);
}

/*
 * PortSIP lets the system administrator (a login without domain) take only
 * the global_* topics, for the tenants it names, and a tenant account only
 * the tenant topics (portsip-wsi §3.6, §6 #5; contract §6). The PBX refuses
 * the others at run time, where it shows as a rejected subscription; here
 * it is only a warning, since PortSIP's rules have changed between
 * versions.
 */
int
cfg_warnings(const struct cfg *cfg, cfg_error_fn *fn, void *ctx)
{
	int nwarn = 0;

	for (size_t i = 0; i < cfg->npbx; i++) {
		const struct cfg_pbx *pc = &cfg->pbx[i];
		bool sysadmin = pc->domain == NULL;

		for (size_t j = 0; j < pc->nsubs; j++)
			for (size_t k = 0; k < pc->subs[j].topics.n; k++) {
				const char *t = pc->subs[j].topics.v[k];
				bool global = strncmp(t, "global_", 7) == 0;
				char path[PATH_LEN], msg[MSG_LEN];
				const char *file;
				int line;

				if (global == sysadmin)
					continue;
				snprintf(path, sizeof(path),
				    "pbx[%zu].subscriptions[%zu].topics", i, j);
				where_find(cfg, path, &file, &line);
				snprintf(msg, sizeof(msg), "%s: %s is a %s topic, "
				    "but pbx %s logs in as %s: PortSIP refuses "
				    "it (%s)", path, t, global ? "system" :
				    "tenant", pc->name, sysadmin ?
				    "the system administrator (no domain)" :
				    "a tenant account (domain set)", global ?
				    "global_* topics need the system "
				    "administrator: remove domain" : "tenant "
				    "topics need a tenant account with its "
				    "domain, or use the global_ topic with "
				    "tenants");
				if (fn != NULL)
					fn(ctx, file, line, msg);
				else
					default_warn(file, line, msg);
				nwarn++;
			}
	}
	return nwarn;
}

/* ---- the unit's writable paths ----------------------------------------- */

/*
 * unit_paths.h is made by the Makefile from systemd/wsi2kafka.service (the
 * one source): unit_writable[], the paths the unit lets the daemon write
 * under ProtectSystem=strict (StateDirectory= and the like, ReadWritePaths=).
 */
#include "unit_paths.h"

/*
 * in as an absolute path without ".", ".." or repeated and trailing '/',
 * symbolic links resolved as far as the path exists (as systemd resolves
 * ReadWritePaths=): a spool reached through a link out of the writable
 * paths is out. @returns false if it does not fit in out.
 */
static bool
path_canon(const char *in, char *out, size_t len)
{
	char tmp[PATH_MAX], *save, *c;
	size_t n = 0;

	if (in[0] != '/' || strlen(in) >= sizeof(tmp) || len < 2)
		return false;
	if (realpath(in, tmp) != NULL && strlen(tmp) < len) {
		strcpy(out, tmp);
		return true;
	}
	strcpy(tmp, in);
	for (c = strtok_r(tmp, "/", &save); c != NULL;
	    c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0) {
			while (n > 0 && out[--n] != '/')
				;
			continue;
		}
		if (n + 1 + strlen(c) >= len)
			return false;
		out[n++] = '/';
		strcpy(out + n, c);
		n += strlen(c);
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return true;
}

/* dir is base or below it (both canonical). */
static bool
path_under(const char *dir, const char *base)
{
	size_t n = strlen(base);

	if (strcmp(base, "/") == 0)
		return true;
	return strncmp(dir, base, n) == 0 && (dir[n] == '\0' || dir[n] == '/');
}

/* One "ReadWritePaths=" value: a '-' or '+' prefix is systemd's, not the
 * path's. */
static bool
rw_value_covers(const char *canon, char *value)
{
	char *save, *w, p[PATH_MAX];

	for (w = strtok_r(value, " \t\r\n", &save); w != NULL;
	    w = strtok_r(NULL, " \t\r\n", &save)) {
		w += strspn(w, "-+");
		if (path_canon(w, p, sizeof(p)) && path_under(canon, p))
			return true;
	}
	return false;
}

/* ReadWritePaths= of the drop-ins in dropin_dir (*.conf, `systemctl edit`
 * writes override.conf) that cover canon. */
static bool
dropins_cover(const char *canon, const char *dropin_dir)
{
	DIR *d = dropin_dir != NULL ? opendir(dropin_dir) : NULL;
	struct dirent *e;
	bool covered = false;

	if (d == NULL)
		return false;
	while (!covered && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char path[PATH_MAX], line[4096];
		FILE *f;

		if (n < 6 || strcmp(e->d_name + n - 5, ".conf") != 0 ||
		    snprintf(path, sizeof(path), "%s/%s", dropin_dir,
		    e->d_name) >= (int)sizeof(path) ||
		    (f = fopen(path, "re")) == NULL)
			continue;
		while (!covered && fgets(line, sizeof(line), f) != NULL) {
			char *v = line + strspn(line, " \t");

			if (strncmp(v, "ReadWritePaths=", 15) == 0)
				covered = rw_value_covers(canon, v + 15);
		}
		fclose(f);
	}
	closedir(d);
	return covered;
}

bool
cfg_unit_may_write(const char *dir, const char *dropin_dir, char *paths,
    size_t len)
{
	char canon[PATH_MAX], p[PATH_MAX];
	bool in = false;
	size_t n = 0;

	if (paths != NULL && len > 0)
		paths[0] = '\0';
	for (size_t i = 0; unit_writable[i] != NULL; i++) {
		if (paths != NULL && n < len)
			n += (size_t)snprintf(paths + n, len - n, "%s%s",
			    i > 0 ? " " : "", unit_writable[i]);
		if (dir != NULL && path_canon(dir, canon, sizeof(canon)) &&
		    path_canon(unit_writable[i], p, sizeof(p)) &&
		    path_under(canon, p))
			in = true;
	}
	if (!in && dir != NULL && path_canon(dir, canon, sizeof(canon)))
		in = dropins_cover(canon, dropin_dir);
	return in;
}

/* ---- free, compare, sizes --------------------------------------------- */

static void
sub_clear(struct cfg_sub *s)
{
	strv_clear(&s->topics, false);
	strv_clear(&s->extensions, false);
	strv_clear(&s->queues, false);
	strv_clear(&s->tenants, false);
}

static void
pbx_clear(struct cfg_pbx *p)
{
	free(p->name);
	for (size_t i = 0; i < p->nurls; i++)
		url_clear(&p->urls[i]);
	free(p->urls);
	free(p->username);
	free(p->extension_number);
	if (p->password != NULL)
		explicit_bzero(p->password, strlen(p->password));
	free(p->password);
	free(p->password_file);
	free(p->domain);
	free(p->tls.ca_file);
	free(p->tls.cert_file);
	free(p->tls.key_file);
	url_clear(&p->backfill.url);
	free(p->backfill.url_text);
	free(p->backfill.username);
	if (p->backfill.password != NULL)
		explicit_bzero(p->backfill.password,
		    strlen(p->backfill.password));
	free(p->backfill.password);
	free(p->backfill.password_file);
	free(p->backfill.domain);
	free(p->backfill.tenant_id);
	for (size_t i = 0; i < p->nsubs; i++)
		sub_clear(&p->subs[i]);
	free(p->subs);
}

void
cfg_free(struct cfg *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->file);
	for (size_t i = 0; i < cfg->npbx; i++)
		pbx_clear(&cfg->pbx[i]);
	free(cfg->pbx);
	free(cfg->kafka.brokers);
	strv_clear(&cfg->kafka.prop_names, false);
	/* Properties may hold secrets too (sasl.password). */
	strv_clear(&cfg->kafka.prop_values, true);
	for (size_t i = 0; i < cfg->kafka.nroutes; i++) {
		free(cfg->kafka.routes[i].match);
		free(cfg->kafka.routes[i].topic);
	}
	free(cfg->kafka.routes);
	free(cfg->kafka.dead_letter_topic);
	free(cfg->kafka.sasl_password_file);
	free(cfg->kafka.ssl_key_password_file);
	free(cfg->spool.dir);
	free(cfg->http_listen);
	where_free(cfg->where);
	free(cfg);
}

/* Everything but line, which moves when unrelated lines are edited. */
bool
cfg_pbx_equal(const struct cfg_pbx *a, const struct cfg_pbx *b)
{
	if (!str_eq(a->name, b->name) || a->nurls != b->nurls ||
	    !str_eq(a->username, b->username) ||
	    !str_eq(a->extension_number, b->extension_number) ||
	    !str_eq(a->password, b->password) ||
	    !str_eq(a->password_file, b->password_file) ||
	    !str_eq(a->domain, b->domain) || a->insecure != b->insecure ||
	    !str_eq(a->tls.ca_file, b->tls.ca_file) ||
	    a->tls.verify != b->tls.verify ||
	    !str_eq(a->tls.cert_file, b->tls.cert_file) ||
	    !str_eq(a->tls.key_file, b->tls.key_file) ||
	    a->nsubs != b->nsubs || a->ping_interval != b->ping_interval ||
	    a->idle_timeout != b->idle_timeout ||
	    a->auth_timeout != b->auth_timeout ||
	    a->connect_timeout != b->connect_timeout ||
	    a->backoff_initial != b->backoff_initial ||
	    a->backoff_max != b->backoff_max || a->max_frame != b->max_frame)
		return false;
	if (a->backfill.enabled != b->backfill.enabled ||
	    !str_eq(a->backfill.url.text, b->backfill.url.text) ||
	    !str_eq(a->backfill.username, b->backfill.username) ||
	    !str_eq(a->backfill.password, b->backfill.password) ||
	    !str_eq(a->backfill.domain, b->backfill.domain) ||
	    !str_eq(a->backfill.tenant_id, b->backfill.tenant_id) ||
	    a->backfill.max_call_duration != b->backfill.max_call_duration ||
	    a->backfill.max_gap != b->backfill.max_gap ||
	    a->backfill.requests_per_second !=
	    b->backfill.requests_per_second)
		return false;
	for (size_t i = 0; i < a->nurls; i++) {
		const struct cfg_url *u = &a->urls[i], *v = &b->urls[i];

		if (!str_eq(u->text, v->text) || !str_eq(u->host, v->host) ||
		    u->port != v->port || !str_eq(u->path, v->path) ||
		    u->tls != v->tls)
			return false;
	}
	for (size_t i = 0; i < a->nsubs; i++) {
		const struct cfg_sub *s = &a->subs[i], *t = &b->subs[i];

		if (!strv_eq(&s->topics, &t->topics) ||
		    !strv_eq(&s->extensions, &t->extensions) ||
		    !strv_eq(&s->queues, &t->queues) ||
		    !strv_eq(&s->tenants, &t->tenants))
			return false;
	}
	return true;
}

/* A number with an optional unit suffix: "<digits>[unit]", each unit a
 * multiplier; overflow past max refused. */
struct unit {
	char		 c;
	uint64_t	 mul;
};

static int
parse_units(const char *s, const struct unit *u, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	/* strtoull() would accept a sign and leading blanks. */
	if (s == NULL || !isdigit((unsigned char)*s))
		return W2K_EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return W2K_EINVAL;
	for (; u->c != '\0'; u++)
		if (*end == u->c) {
			mul = u->mul;
			end++;
			break;
		}
	if (*end != '\0' || v > max / mul)
		return W2K_EINVAL;
	*out = (uint64_t)v * mul;
	return 0;
}

int
cfg_parse_size(const char *s, uint64_t *out)
{
	static const struct unit units[] = {
		{ 'K', UINT64_C(1) << 10 }, { 'k', UINT64_C(1) << 10 },
		{ 'M', UINT64_C(1) << 20 }, { 'm', UINT64_C(1) << 20 },
		{ 'G', UINT64_C(1) << 30 }, { 'g', UINT64_C(1) << 30 },
		{ 'T', UINT64_C(1) << 40 }, { 't', UINT64_C(1) << 40 },
		{ '\0', 1 },
	};

	return parse_units(s, units, UINT64_MAX, out);
}

int
cfg_parse_duration(const char *s, int64_t *out)
{
	static const struct unit units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
		{ '\0', 1 },
	};
	uint64_t v;

	if (parse_units(s, units, INT64_MAX, &v) != 0)
		return W2K_EINVAL;
	*out = (int64_t)v;
	return 0;
}

const char *const *
cfg_schema_keys(void)
{
	static const char *keys[W2K_ARRAY_SIZE(schema) + 1];

	if (keys[0] == NULL)
		for (size_t i = 0; i < W2K_ARRAY_SIZE(schema); i++)
			keys[i] = schema[i].path;
	return keys;
}
