#!/usr/bin/env bash
# Malformed frames become dead letters with a reason; the session stays up.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.deadletter portsip.extensions portsip.queues
cat >"$T/script" <<'S'
{"event_type":"call_start","session_id":"1","tenant_id":"2"
@invalid_utf8
[1,2,3]
{"no_event_type":true}
@big 3000
{"event_type":"call_start","session_id":"10","tenant_id":"20","time":"1705051422"}
S
start_pbxsim --script "$T/script" --subs 3
write_conf 'max_frame = "2K";'
start_daemon

dl=$(consume portsip.deadletter 5 '%k|%s\n') || fail "dead letters: $(echo "$dl" | wc -l) of 5"
echo "$dl" | cut -d'|' -f1 | grep -qv '^hq$' && fail "dead-letter key is not the PBX name: $dl"
for r in invalid_json invalid_utf8 not_object no_event_type too_large; do
	echo "$dl" | cut -d'|' -f2- | jq -e -s --arg r "$r" \
	    'any(.[]; .reason == $r and .schema == "wsi2kafka.deadletter/1" and .pbx == "hq")' \
	    >/dev/null || fail "no dead letter with reason $r: $dl"
done
echo "$dl" | cut -d'|' -f2- | jq -e -s 'any(.[]; .reason == "invalid_utf8" and has("raw_base64"))' >/dev/null ||
	fail "invalid UTF-8 not kept as raw_base64"
echo "$dl" | cut -d'|' -f2- | jq -e -s 'any(.[]; .reason == "invalid_json" and (.raw | startswith("{\"event_type\":\"call_start\"")))' >/dev/null ||
	fail "invalid JSON raw text"
ok "5 dead letters with their reasons"

ev=$(consume portsip.calls 1 '%k\n') || fail "the event after the bad frames is missing"
[ "$ev" = "20:10" ] || fail "event key $ev"
[ "$(pbx_events 'AUTH .* ok')" -eq 1 ] || fail "the session was restarted"
ok "session stayed up, next event delivered"
