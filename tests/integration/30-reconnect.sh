#!/usr/bin/env bash
# The PBX drops the session: the daemon reconnects, authenticates and
# subscribes again, and nothing received is lost.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues
{
	for i in $(seq 1 20); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"7\",\"time\":\"1705051422\"}"; done
	echo "@drop"
	for i in $(seq 21 40); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"7\",\"time\":\"1705051422\"}"; done
	echo "@close"
	for i in $(seq 41 60); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"7\",\"time\":\"1705051422\"}"; done
} >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
start_daemon

keys=$(consume portsip.calls 60 '%k\n') || fail "got $(echo "$keys" | sort -u | wc -l) of 60"
[ "$(echo "$keys" | sort -u | wc -l)" -eq 60 ] || fail "distinct keys: $(echo "$keys" | sort -u | wc -l)"
ok "60 events across 3 connections, none lost"

[ "$(pbx_events 'AUTH .* ok')" -ge 3 ] || fail "auth count $(pbx_events 'AUTH .* ok')"
[ "$(pbx_events 'SUBSCRIBE')" -ge 9 ] || fail "subscribe count $(pbx_events SUBSCRIBE)"
grep -q 'reconnecting' "$T/daemon.log" || fail "no reconnect logged"
ok "re-authenticated and re-subscribed after each drop"
