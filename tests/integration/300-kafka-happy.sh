#!/usr/bin/env bash
# Against a real Apache Kafka 4.x broker (tests/kafka/broker.sh: KRaft,
# TLS, SASL, ACLs, no topic auto-creation), one broker for these scenarios:
#  a. SASL_SSL (the password a systemd credential: a relative
#     kafka.sasl_password_file read from $CREDENTIALS_DIRECTORY, contract
#     §4; never printed in logs, metrics, -t or --check-kafka output):
#     the PBX's realistic mix (a flood of calls and the
#     events.script of every event type) lands on the routed topics, with
#     the keys and CloudEvents headers of contract §5, every record exactly
#     once by id;
#  g. the partitioner (contract §4, murmur2_random): the partition of every
#     key on portsip.calls (7 partitions) and portsip.extensions (3) is the
#     one Java's producer picks, computed by tests/kafka/Partition.java
#     with Utils.murmur2 from the broker's own jars;
#  b. mTLS (ssl_certificate_location / ssl_key_location, the certificate's
#     CN the principal) as the other way to authenticate;
#  --check-kafka reports every topic with its partitions, exit 0, and
#     writes nothing.
# The tests read over SASL_SSL with kcat as a user with READ ACLs.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/kafka/broker.sh
. tests/kafka/records.sh
FLOOD=${FLOOD:-3000}
W2K_PW=w2k-Sasl-pw-7
kafka_start "w2k=$W2K_PW"
kafka_create_topics 7 portsip.calls
kafka_create_topics 3 portsip.cdr portsip.extensions portsip.queues portsip.events portsip.deadletter
kafka_grant User:w2k Write Describe -- "${KTOPICS[@]}"
kafka_grant User:wsi2kafka-test Write Describe -- "${KTOPICS[@]}"
kafka_reader "${KTOPICS[@]}"
mkdir -m 700 "$T/creds"
printf '%s\n' "$W2K_PW" >"$T/creds/kafka.secret"
chmod 600 "$T/creds/kafka.secret"
export CREDENTIALS_DIRECTORY=$T/creds

# all_in N: the PBX played everything and the daemon's spool is empty with
# at least N records delivered (the whole input is on Kafka).
all_in() {
	grep -q 'SCRIPT done' "$T/pbxsim.events" && scrape &&
	    [ "$(mval wsi2kafka_spool_records)" -eq 0 ] &&
	    [ "$(sum_series 'wsi2kafka_records_produced_total{')" -ge "$1" ]
}

# ---- a. SASL_SSL ----------------------------------------------------------
start_pbxsim --flood "$FLOOD" --script tests/integration/data/events.script --subs 3
PBX1=${PIDS[-1]}
write_conf
kafka_conf w2k kafka.secret
start_http_daemon
wait_for 120 all_in "$FLOOD" || fail "not everything delivered: $(grep -c . "$T/pbxsim.events") pbxsim lines, $(sum_series 'wsi2kafka_records_produced_total{') produced"
produced=$(sum_series 'wsi2kafka_records_produced_total{')
expect 'wsi2kafka_kafka_up' == 1
w2k -t -c "$T/w2k.conf" >"$T/t.out" 2>&1 || fail "-t: $(cat "$T/t.out")"
grep -q -- "$W2K_PW" "$T/daemon.log" "$T/metrics.txt" "$T/t.out" && fail "the SASL password was printed"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
krecords "$T/a.json" "${KTOPICS[@]}"
n=$(kids "$T/a.json" | wc -l)
ids=$(kids "$T/a.json" | uniq | wc -l)
seqs=$(kseqs "$T/a.json" | wc -l)
[ "$n" -eq "$produced" ] || fail "$n records on Kafka, the daemon produced $produced"
[ "$ids" -eq "$n" ] || fail "$n records but $ids distinct ids: duplicates"
[ "$seqs" -eq "$FLOOD" ] || fail "$seqs of $FLOOD flood events on Kafka"
krecords_check "$T/a.json"
korder_check "$T/a.json"
# Every event type of events.script made it (and no dead letter).
jq -r .v.type "$T/a.json" | sort -u >"$T/types"
for ty in call_cdr call_start cdr_target_add cdr_target_answer extension_call \
    extension_presence extension_agent_status extension_status extension_created \
    queue_caller_status queue_agent_status queue_sla_breached queue_created \
    queue_status trunk_connected; do
	grep -qx "$ty" "$T/types" || fail "no $ty record on Kafka"
done
[ "$(jq -r .topic "$T/a.json" | grep -c deadletter)" -eq 0 ] || fail "dead letters"
ok "a. SASL_SSL: $n records ($FLOOD flood events and the script's types) on their routes with keys and headers, each exactly once by id, in order per key"

# ---- g. the partitioner -----------------------------------------------------
for tp in portsip.calls:7 portsip.extensions:3; do
	t=${tp%:*} parts=${tp#*:}
	jq -r --arg t "$t" 'select(.topic == $t and .key != "") | "\(.p) \(.key)"' \
	    "$T/a.json" | sort -u >"$T/got"
	keys=$(cut -d' ' -f2 "$T/got" | sort -u | wc -l)
	[ "$keys" -ge 100 ] || fail "$t: only $keys distinct keys"
	[ "$(wc -l <"$T/got")" -eq "$keys" ] || fail "$t: a key on two partitions"
	cut -d' ' -f2 "$T/got" | sort -u |
	    java -Xmx64m -XX:TieredStopAtLevel=1 -XX:-UsePerfData -cp "$KAFKA_CP" tests/kafka/Partition.java "$parts" |
	    sort -u >"$T/want" || fail "Partition.java failed"
	[ "$(wc -l <"$T/want")" -eq "$keys" ] || fail "Partition.java: $(wc -l <"$T/want") of $keys keys"
	bad=$(join -1 2 -2 2 <(sort -k2 "$T/got") <(sort -k2 "$T/want") | awk '$2 != $3' | head -n 3)
	[ -z "$bad" ] || fail "$t: key, daemon's partition, Java's partition: $bad"
	used=$(cut -d' ' -f1 "$T/got" | sort -u | wc -l)
	[ "$used" -eq "$parts" ] || fail "$t: keys on $used of $parts partitions"
	ok "g. $t: $keys keys, each on the partition Java's producer picks (of $parts)"
done

# ---- --check-kafka -------------------------------------------------------
w2k --check-kafka -c "$T/w2k.conf" >"$T/check.out" 2>"$T/check.err"
rc=$?
[ "$rc" -eq 0 ] || fail "--check-kafka: exit $rc: $(cat "$T/check.out" "$T/check.err")"
for tp in portsip.calls:7 portsip.cdr:3 portsip.extensions:3 portsip.queues:3 \
    portsip.events:3 portsip.deadletter:3; do
	grep -qE "^  ${tp%:*}( \(dead-letter topic\))?: ok, ${tp#*:} partitions, leaders reachable" "$T/check.out" ||
		fail "--check-kafka does not report ${tp%:*} with ${tp#*:} partitions: $(cat "$T/check.out")"
done
grep -qi 'sasl.*ok\|authenticat.*ok' "$T/check.out" || fail "--check-kafka says nothing of SASL: $(cat "$T/check.out")"
grep -q "$W2K_PW" "$T/check.out" "$T/check.err" && fail "--check-kafka printed the password"
krecords "$T/a2.json" "${KTOPICS[@]}"
[ "$(wc -l <"$T/a2.json")" -eq "$n" ] || fail "--check-kafka wrote to a topic"
ok "--check-kafka: every topic exists with its partitions, SASL ok, exit 0, nothing written"

# ---- b. mTLS -------------------------------------------------------------
kill -TERM "$PBX1"	# the first PBX simulator is done
rm -f "$T/pbxsim.events"
F2=500
start_pbxsim --flood "$F2" --subs 3
write_conf
sed -i 's/name = "hq";/name = "mtls";/' "$T/w2k.conf"
kafka_conf_mtls
start_http_daemon
wait_for 120 grep -q 'FLOOD done' "$T/pbxsim.events" || fail "the second flood did not play"
wait_for 120 all_in "$F2" || fail "mTLS: not everything delivered"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
krecords "$T/b.json" "${KTOPICS[@]}"
n=$(kids "$T/b.json" mtls | wc -l)
ids=$(kids "$T/b.json" mtls | uniq | wc -l)
seqs=$(kseqs "$T/b.json" mtls | wc -l)
[ "$seqs" -eq "$F2" ] && [ "$ids" -eq "$n" ] ||
	fail "mTLS: $seqs of $F2 flood events, $n records, $ids distinct ids"
krecords_check "$T/b.json"
ok "b. mTLS: all $F2 flood events delivered once by id as User:wsi2kafka-test"
