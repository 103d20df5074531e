#!/usr/bin/env bash
# f. The real broker is killed with SIGKILL in the middle of a flood (at a
# random point: SEED=N replays one) and restarted from its log a few
# seconds later: nothing is lost (every flood event is on Kafka), and a
# record written twice (produced again after the kill, when its
# acknowledgement was lost with the connection) carries the same id as
# its first copy. The duplicates are counted and printed.
. "$(dirname "$0")/lib.sh"
# What this tests is the broker's log and the producer's retries, which
# the daemon's valgrind runs of 90-broker-outage and 110-spool-sigkill
# cover on its side; the ASan pass runs it.
not_under_valgrind "a broker's SIGKILL and restart (ASan pass only)"
. tests/lib/metrics.sh
. tests/kafka/broker.sh
. tests/kafka/records.sh
SEED=${SEED:-$RANDOM}
RANDOM=$SEED
FLOOD=${FLOOD:-12000}
RATE=${RATE:-1500}
KILL_AT=$((FLOOD / 8 + RANDOM % (FLOOD / 3)))	# records delivered before the kill
DOWN_MS=$((500 + RANDOM % 3000))
echo "seed $SEED: SIGKILL after $KILL_AT records, down ${DOWN_MS} ms (replay: SEED=$SEED)"
W2K_PW=w2k-Kill-pw-3
kafka_start "w2k=$W2K_PW"
kafka_create_topics 3 "${KTOPICS[@]}"
kafka_grant User:w2k Write Describe -- "${KTOPICS[@]}"
kafka_reader "${KTOPICS[@]}"
printf '%s\n' "$W2K_PW" >"$T/kafka.secret"
chmod 600 "$T/kafka.secret"

start_pbxsim --flood "$FLOOD" --rate "$RATE" --subs 3
write_conf
kafka_conf w2k "$T/kafka.secret"
start_http_daemon
produced() { scrape && [ "$(sum_series 'wsi2kafka_records_produced_total{')" -ge "$1" ]; }
wait_for 60 produced "$KILL_AT" || fail "only $(sum_series 'wsi2kafka_records_produced_total{') records delivered"
grep -q 'FLOOD done' "$T/pbxsim.events" && fail "the flood ended before the kill: raise FLOOD or lower RATE"
kafka_kill
before=$(sum_series 'wsi2kafka_records_produced_total{')
ok "broker killed (SIGKILL) mid-flood, $before records delivered before"
sleep "$(awk -v m="$DOWN_MS" 'BEGIN { print m / 1000 }')"
kafka_restart
ok "broker restarted from its log"

all_in() {
	grep -q 'FLOOD done' "$T/pbxsim.events" && scrape &&
	    [ "$(mval wsi2kafka_spool_records)" -eq 0 ] &&
	    [ "$(sum_series 'wsi2kafka_records_produced_total{')" -ge "$FLOOD" ]
}
wait_for 180 all_in || fail "not everything delivered after the restart: $(sum_series 'wsi2kafka_records_produced_total{') produced, spool $(mval wsi2kafka_spool_records)"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"

krecords "$T/all.json" "${KTOPICS[@]}"
n=$(wc -l <"$T/all.json")
ids=$(kids "$T/all.json" | uniq | wc -l)
seqs=$(kseqs "$T/all.json" | wc -l)
[ "$seqs" -eq "$FLOOD" ] || fail "$seqs of $FLOOD flood events on Kafka: lost"
# One id per flood event, however many copies of it there are.
bad=$(jq -r 'select(.v.data.seq != null) | "\(.v.data.seq) \(.v.id)"' "$T/all.json" | sort -u |
    awk '{ c[$1]++ } END { for (s in c) if (c[s] > 1) print s }' | head -n 3)
[ -z "$bad" ] || fail "flood events with two different ids: seq $bad"
flood_ids=$(jq -r "select(.v.data.seq != null) | .v.id" "$T/all.json" | sort -u | wc -l)
[ "$flood_ids" -eq "$FLOOD" ] || fail "$flood_ids distinct ids for $FLOOD events"
krecords_check "$T/all.json"
korder_check "$T/all.json"
ok "f. nothing lost, in order per key: all $FLOOD events on Kafka; $((n - ids)) duplicates, each with its original's id ($n records; seed $SEED)"
