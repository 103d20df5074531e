/*
 * fuzz_cfg.c — libFuzzer target for the configuration loader: any bytes as
 * a configuration file must give either a valid struct cfg or reported
 * errors, never a crash, a hang or a leak of ours.
 */
#include "cfg.h"
#include "w2k.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5 leaks a buffer on some syntax errors: not ours to fix. */
const char *
__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

static void
count_error(void *ctx, const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	if (msg == NULL || *msg == '\0')
		abort();	/* every problem must say what it is */
	(*(unsigned *)ctx)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg *cfg = NULL;
	unsigned errors = 0;
	char *text;
	int r;

	if (size > 64 * 1024 || (text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	r = cfg_load_string(text, "fuzz.conf", &cfg, count_error, &errors);
	/* Success and reported errors exclude each other. */
	if ((r == 0) != (errors == 0) && r != W2K_ENOMEM)
		abort();
	if (r == 0 && (cfg == NULL || cfg->npbx == 0))
		abort();
	cfg_free(cfg);
	free(text);
	return 0;
}
