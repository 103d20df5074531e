/*
 * spoolgen — write a backlog into a spool directory, as a daemon would
 * leave it after a long Kafka outage, for the start-up tests (111).
 *
 *   spoolgen DIR BYTES [VALUE_BYTES]
 *
 * Appends records shaped like the daemon's (topic portsip.calls, a key
 * "7:<n>", a CloudEvents header set and a JSON event value of about
 * VALUE_BYTES, default 8192, with "seq": n) through spool_append() with
 * fsync = "never" until the spool holds BYTES, then closes it: every record
 * stays unacknowledged, a backlog for the next spool_open(). Segments are
 * sized as for spool.max_bytes = 2 × BYTES. Prints "RECORDS <n> SEGMENTS
 * <m>" on stdout. Exit status 0, or 1 (with a message) on any failure.
 */
#include "log.h"
#include "record.h"
#include "spool.h"
#include "w2k.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	struct cfg_spool cs = { 0 };
	const struct spool_stats *st;
	struct spool *sp;
	uint64_t bytes, n = 0, seq;
	size_t vlen = 8192;
	char key[32], id[40];

	if (argc < 3 || cfg_parse_size(argv[2], &bytes) != 0 ||
	    (argc > 3 && (vlen = strtoul(argv[3], NULL, 10)) < 64)) {
		fprintf(stderr, "usage: spoolgen DIR BYTES [VALUE_BYTES >= 64]\n");
		return 1;
	}
	log_init(LOG_LVL_WARN);
	cs.dir = argv[1];
	cs.max_bytes = 2 * bytes;
	cs.fsync = CFG_FSYNC_NEVER;
	cs.fsync_interval_ms = 20;
	cs.on_full = CFG_DROP_NEWEST;
	if (spool_open(&cs, &sp) != 0)
		return 1;
	for (st = spool_get_stats(sp); st->bytes < bytes; n++) {
		struct record rec;
		int w;

		memset(&rec, 0, sizeof(rec));
		rec.topic = strdup("portsip.calls");
		rec.type = strdup("call_start");
		snprintf(key, sizeof(key), "7:%" PRIu64, n);
		rec.key = strdup(key);
		rec.key_len = strlen(key);
		snprintf(id, sizeof(id), "%032" PRIx64, n + 1);
		memcpy(rec.id, id, RECORD_ID_LEN + 1);
		rec.value = malloc(vlen + 1);
		if (rec.topic == NULL || rec.type == NULL || rec.key == NULL ||
		    rec.value == NULL ||
		    record_hdr_add(&rec, "ce_specversion", "1.0") != 0 ||
		    record_hdr_add(&rec, "ce_id", rec.id) != 0 ||
		    record_hdr_add(&rec, "content-type",
		    "application/json") != 0) {
			fprintf(stderr, "spoolgen: out of memory\n");
			return 1;
		}
		w = snprintf(rec.value, vlen + 1, "{\"schema\":\"wsi2kafka.event/1"
		    "\",\"id\":\"%s\",\"type\":\"call_start\",\"data\":{\"seq\":%"
		    PRIu64 ",\"pad\":\"", id, n);
		memset(rec.value + w, 'x', vlen - (size_t)w - 3);
		memcpy(rec.value + vlen - 3, "\"}}", 3);
		rec.value_len = vlen;
		rec.received_us = w2k_now_us();
		if (spool_append(sp, &rec, &seq) != 0) {
			fprintf(stderr, "spoolgen: append failed\n");
			return 1;
		}
		record_clear(&rec);
	}
	printf("RECORDS %" PRIu64 "\n", n);
	spool_close(sp);
	return 0;
}
