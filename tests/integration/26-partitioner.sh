#!/usr/bin/env bash
# The partitioner is the Java client's (contract §4: murmur2_random): for
# each of a few hundred real keys (tenant:session of a flood of calls) the
# partition the daemon produced to equals Utils.toPositive(Utils.murmur2(
# key)) % partitions, computed by tests/lib/jmurmur2.c (checked against
# Kafka's own UtilsTest vectors). librdkafka's default partitioner
# (consistent_random, CRC32) puts most of them elsewhere.
. "$(dirname "$0")/lib.sh"
JM=$B/tests/jmurmur2
[ -x "$JM" ] || fail "$JM not built (make tests)"
start_kmock portsip.calls portsip.extensions portsip.queues portsip.cdr \
    portsip.events portsip.deadletter
start_pbxsim --flood 4000 --subs 3
write_conf
start_daemon
enough() { [ "$(count_topic portsip.calls)" -ge 2500 ]; }
wait_for 60 enough || fail "only $(count_topic portsip.calls) records on portsip.calls"
timeout $((30 * TIME_SCALE)) kcat -C -q -b "$BOOTSTRAP" -t portsip.calls -o beginning -e \
    -f '%p %k\n' 2>/dev/null | sort -u >"$T/got"
keys=$(cut -d' ' -f2 "$T/got" | sort -u | wc -l)
[ "$keys" -ge 100 ] || fail "only $keys distinct keys"
cut -d' ' -f2 "$T/got" | sort -u | "$JM" 4 | sort -u >"$T/want" || fail "jmurmur2 failed"
bad=$(join -1 2 -2 2 <(sort -k2 "$T/got") <(sort -k2 "$T/want") | awk '$2 != $3' | head -n 3)
[ -z "$bad" ] || fail "key, daemon's partition, Java's partition: $bad"
[ "$(wc -l <"$T/got")" -eq "$keys" ] || fail "a key was produced to two partitions"
ok "$keys keys, each on the partition Java's murmur2 partitioner picks"
