#!/usr/bin/env bash
# librdkafka's local queue full (brokers down, a small queue): reading from
# the PBX pauses instead of dropping or blocking, and resumes when Kafka is
# back; every event arrives.
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
wait_for 30 grep -q 'pausing PBX input' "$T/daemon.log" || fail "input never paused"
sleep 2
grep -q 'FLOOD done' "$T/pbxsim.log" && fail "the PBX could send everything: not paused"
ok "queue full: PBX input paused, the simulator held back"
kmock_cmd upall
wait_for 60 grep -q 'FLOOD done' "$T/pbxsim.log" || fail "flood did not finish after resume"
grep -q 'resuming PBX input' "$T/daemon.log" || fail "input never resumed"
seqs() {
	for t in $TOPICS; do
		timeout 20 kcat -C -q -b "$BOOTSTRAP" -t $t -o beginning -e -f '%s\n' 2>/dev/null
	done | jq -r '.data.seq // empty' | sort -u | wc -l
}
all_there() { [ "$(seqs)" -eq 20000 ]; }
wait_for 60 all_there || fail "$(seqs) of 20000 events on Kafka"
ok "resumed; all 20000 events delivered"
