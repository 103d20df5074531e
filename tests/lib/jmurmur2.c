/*
 * jmurmur2 — the partition the Java Kafka client's default partitioner
 * picks for a key: Utils.toPositive(Utils.murmur2(key)) % PARTITIONS, for
 * the partitioner test (contract §4: partitioner = murmur2_random, so keys
 * co-partition with Java, Kafka Streams, ksqlDB and Flink producers).
 *
 *   jmurmur2 PARTITIONS < keys      one key a line → "<partition> <key>"
 *
 * Utils.murmur2 is written here from the Java client's published source
 * (org.apache.kafka.common.utils.Utils), not from librdkafka's, and checked
 * at start against the vectors of Kafka's own UtilsTest.testMurmur2: exit
 * 2 if one differs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t
murmur2(const unsigned char *d, size_t len)
{
	const uint32_t m = 0x5bd1e995;
	uint32_t h = 0x9747b28cu ^ (uint32_t)len;
	size_t i, n4 = len / 4;

	for (i = 0; i < n4; i++) {
		uint32_t k = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 |
		    (uint32_t)d[4 * i + 2] << 16 | (uint32_t)d[4 * i + 3] << 24;

		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len % 4) {
	case 3:
		h ^= (uint32_t)d[(len & ~(size_t)3) + 2] << 16;
		/* FALLTHROUGH */
	case 2:
		h ^= (uint32_t)d[(len & ~(size_t)3) + 1] << 8;
		/* FALLTHROUGH */
	case 1:
		h ^= (uint32_t)d[len & ~(size_t)3];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return (int32_t)h;
}

int
main(int argc, char **argv)
{
	static const struct { const char *in; int32_t want; } vec[] = {
		{ "21", -973932308 }, { "foobar", -790332482 },
		{ "a-little-bit-long-string", -985981536 },
		{ "a-little-bit-longer-string", -1486304829 },
		{ "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971 },
		{ "abc", 479470107 },
	};
	char line[4096];
	long parts;

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++)
		if (murmur2((const unsigned char *)vec[i].in,
		    strlen(vec[i].in)) != vec[i].want) {
			fprintf(stderr, "jmurmur2: murmur2(%s) differs from "
			    "Kafka's UtilsTest\n", vec[i].in);
			return 2;
		}
	if (argc != 2 || (parts = strtol(argv[1], NULL, 10)) < 1) {
		fprintf(stderr, "usage: jmurmur2 PARTITIONS < keys\n");
		return 64;
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		size_t n = strcspn(line, "\n");
		uint32_t h = (uint32_t)murmur2((unsigned char *)line, n);

		line[n] = '\0';
		printf("%ld %s\n", (long)((h & 0x7fffffff) % (uint32_t)parts),
		    line);
	}
	return 0;
}
