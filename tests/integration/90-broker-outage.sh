#!/usr/bin/env bash
# All brokers down while events arrive: nothing is lost, everything is
# delivered once they are back.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues
{
	echo "@sleep 1500"
	for i in $(seq 1 200); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"5\"}"; done
} >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session"
kmock_cmd downall
wait_for 20 grep -q 'SENT' "$T/pbxsim.events" || fail "script not played"
sleep 5
kmock_cmd upall
keys=$(consume portsip.calls 200 '%k\n') || fail "got $(echo "$keys" | sort -u | wc -l) of 200"
[ "$(echo "$keys" | sort -u | wc -l)" -eq 200 ] || fail "distinct: $(echo "$keys" | sort -u | wc -l)"
ok "200 events sent during a 5 s outage, all delivered after it"
