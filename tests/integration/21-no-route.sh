#!/usr/bin/env bash
# An event no route matches goes to the dead-letter topic as its normal
# record (schema wsi2kafka.event/1, its key) with the header
# dead_letter_reason: no_route, and is never dropped: when Kafka refuses it
# for good (too large), a dead letter carrying its first 64 KiB takes its
# place (before, it was taken for a dead letter and dropped).
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.deadletter
{
	echo '{"event_type":"mystery_event","tenant_id":"7","session_id":"9"}'
	printf '{"event_type":"mystery_event","tenant_id":"7","session_id":"10","pad":"%s"}\n' \
	    "$(head -c 200000 /dev/zero | tr '\0' x)"
	echo '{"event_type":"call_start","session_id":"2","tenant_id":"1"}'
} >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
sed -i 's/properties = { linger_ms = "5"; };/properties = { linger_ms = "5"; message_max_bytes = "100000"; };\n  routes = ( { match = "call_*|extension_*|queue_*"; topic = "portsip.calls"; } );/' "$T/w2k.conf"
start_daemon
routed() { timeout 20 kcat -C -q -b "$BOOTSTRAP" -t portsip.calls -o beginning -e -f '%k\n' 2>/dev/null | grep -qx 1:2; }
wait_for 30 routed || fail "the routed event did not flow"
consume portsip.deadletter 2 '%k|%h|%s\n' >"$T/dl" || fail "got $(wc -l <"$T/dl") of 2 records on the dead-letter topic"
ev=$(grep '"schema":"wsi2kafka.event/1"' "$T/dl") || fail "no event record: $(cut -c1-300 "$T/dl")"
[ "${ev%%|*}" = "7:9" ] || fail "no-route event key: ${ev%%|*}"
echo "$ev" | cut -d'|' -f2 | grep -q 'dead_letter_reason=no_route' || fail "no header: $(echo "$ev" | cut -d'|' -f2)"
echo "$ev" | cut -d'|' -f3- | jq -e '.type == "mystery_event" and .class == "other"' >/dev/null || fail "event: $ev"
dl=$(grep '"schema":"wsi2kafka.deadletter/1"' "$T/dl") || fail "the refused no-route event was dropped"
echo "$dl" | cut -d'|' -f3- | jq -e '.reason == "MSG_SIZE_TOO_LARGE" and .truncated == true and
    (.raw | length) == 65536 and (.raw | contains("\"session_id\":\"10\""))' >/dev/null ||
	fail "dead letter: $(echo "$dl" | cut -d'|' -f3- | jq -c '.raw |= length')"
grep -q 'dropped' "$T/daemon.log" && fail "something was dropped: $(grep dropped "$T/daemon.log")"
ok "a no-route event on the dead-letter topic in the event schema; one too large for Kafka dead-lettered, not dropped"
