#!/usr/bin/env bash
# Per-key order across a restart (contract §5: all events of one call land
# in one partition, in order). 40 calls: their first two events
# (call_start, call_ringing) come while Kafka is down and wait in the
# spool; the daemon is killed (SIGKILL) and started again, Kafka still down,
# with librdkafka's queue kept tiny so the records wait in the spool, not
# in librdkafka; the same calls' last two events (call_answered,
# call_ended, the calls in reverse order) arrive live on the new session.
# Then Kafka comes back: on
# every partition each call's events must come in the order the PBX sent
# them (seq 0, 1, 2, 3), duplicates (equal ids) aside. The old spool took
# turns between the backlog and live records, so a live call_answered
# overtook the same call's call_ringing from the backlog.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues portsip.cdr \
    portsip.events portsip.deadletter
kmock_cmd downall
start_pbxsim --script tests/integration/data/order-restart.script --subs 3
# A tiny librdkafka queue: records wait in the spool, where the order of
# the backlog and the live records is the spool's to decide.
write_conf "" ""
sed -i 's/properties = { linger_ms = "5"; };/properties = { linger_ms = "5"; queue_buffering_max_messages = "4"; };/' "$T/w2k.conf"
start_daemon
sent_first() { [ "$(pbx_events '^SENT 1 ')" -ge 1 ]; }
wait_for 30 sent_first || fail "pbxsim did not send the first half"
sleep 1		# the frames are read, normalized and spooled at once
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
ok "daemon killed with the first half of each call spooled"

start_daemon
sent_second() { [ "$(pbx_events '^SENT 2 ')" -ge 1 ]; }
wait_for 30 sent_second || fail "pbxsim did not send the second half on the new session"
sleep 1
kmock_cmd upall
all_there() { [ "$(count_topic portsip.calls)" -ge 160 ]; }
wait_for 60 all_there || fail "only $(count_topic portsip.calls) of 160 records delivered"

# partition, key, id, seq: per partition in offset order.
timeout $((30 * TIME_SCALE)) kcat -C -q -b "$BOOTSTRAP" -t portsip.calls -o beginning -e \
    -f '%p %k %s\n' 2>/dev/null | while read -r p k v; do
	printf '%s %s %s %s\n' "$p" "$k" "$(jq -r .id <<<"$v")" "$(jq -r .data.seq <<<"$v")"
done >"$T/order"
[ "$(awk '{ print $3 }' "$T/order" | sort -u | wc -l)" -eq 160 ] ||
	fail "$(awk '{ print $3 }' "$T/order" | sort -u | wc -l) distinct ids of 160"
bad=$(awk '!seen[$3]++ { if (($1, $2) in last && $4 < last[$1, $2]) print; last[$1, $2] = $4 }' "$T/order")
[ -z "$bad" ] || fail "events of one call out of order on their partition: $(echo "$bad" | head -n 3)"
ok "160 records, every call's events in order on its partition across the restart"
