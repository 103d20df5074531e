#!/usr/bin/env bash
# librdkafka's local queue full (brokers down, a small queue): records wait
# in the spool, which is the backpressure: reading from the PBX never
# pauses, nothing is dropped or blocks, and every event arrives once Kafka
# is back.
. "$(dirname "$0")/lib.sh"
TOPICS="portsip.calls portsip.extensions portsip.queues portsip.cdr portsip.events"
start_kmock $TOPICS
{ echo "@sleep 1500"; echo "@flood 20000"; } >"$T/script"
start_pbxsim --script "$T/script" --subs 3
sed_props='properties = { linger_ms = "5"; queue_buffering_max_messages = "100"; };'
write_conf
sed -i "s/properties = { linger_ms = \"5\"; };/$sed_props/" "$T/w2k.conf"
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session"
kmock_cmd downall
wait_for 30 grep -q 'records wait in the spool' "$T/daemon.log" || fail "queue never full"
wait_for 60 grep -q 'FLOOD done' "$T/pbxsim.log" || fail "the PBX was held back"
grep -q 'pausing PBX input' "$T/daemon.log" && fail "PBX input paused"
ok "queue full: records wait in the spool, PBX input not paused"
kmock_cmd upall
wait_for 60 grep -q 'producer caught up: no record waits in the spool' "$T/daemon.log" || fail "never caught up"
seqs() {
	for t in $TOPICS; do
		timeout 20 kcat -C -q -b "$BOOTSTRAP" -t $t -o beginning -e -f '%s\n' 2>/dev/null
	done | jq -r '.data.seq // empty' | sort -u | wc -l
}
all_there() { [ "$(seqs)" -eq 20000 ]; }
wait_for 60 all_there || fail "$(seqs) of 20000 events on Kafka"
ok "Kafka back: all 20000 events delivered"
