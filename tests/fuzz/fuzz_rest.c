/*
 * fuzz_rest.c — libFuzzer target for the REST answer parsers (restmap.h):
 * any bytes as a token answer and as a page of CDR rows must give a token,
 * rows and records, or a refusal — never a crash, a hang or a leak. Every
 * record made must carry the REST id rule's id: a re-made record of the
 * same row has the same id.
 */
#include "restmap.h"
#include "w2k.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct restmap_token tok;
	struct restmap_page pg;
	const char *text = (const char *)data;

	if (size > 1024 * 1024)
		return 0;
	if (restmap_token_parse(text, size, &tok) == 0 &&
	    tok.access_token == NULL && !tok.two_factor)
		abort();	/* success means a token (or 2FA) */
	restmap_token_clear(&tok);

	if (restmap_page_parse(text, size, &pg) != 0)
		return 0;
	for (size_t i = 0; i < pg.nitems; i++) {
		const cJSON *row = restmap_page_row(&pg, i);
		struct restmap_row info;
		struct norm_result a, b;
		int ra, rb;

		if (row == NULL)
			abort();
		ra = restmap_record("fz", "1", row, 1, &a);
		if ((restmap_row_info(row, &info) == 0) !=
		    (ra == 0 || ra == W2K_ENOMEM) && ra != W2K_EINVAL)
			abort();
		if (ra == 0) {
			if (a.kind != NORM_EVENTS || a.nrecs != 1 ||
			    strcmp(a.recs[0].type, "call_cdr") != 0)
				abort();
			rb = restmap_record("fz", "1", row, 2, &b);
			if (rb == 0 && strcmp(a.recs[0].id, b.recs[0].id) != 0)
				abort();
			norm_result_clear(&b);
		}
		norm_result_clear(&a);
	}
	restmap_page_free(&pg);
	return 0;
}
