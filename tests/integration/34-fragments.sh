#!/usr/bin/env bash
# A message in several WebSocket fragments is reassembled into one event.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.cdr portsip.calls portsip.extensions portsip.queues
cat >"$T/script" <<'S'
@fragment 7 {"event_type":"call_cdr","session_id":"77","tenant_id":"3","ended_time":"1705051499","call_targets":[{"id":"1","start_time":"1705051400"},{"id":"2","start_time":"0"}]}
S
start_pbxsim --script "$T/script" --subs 3
write_conf
start_daemon
v=$(consume portsip.cdr 1 '%k|%s\n') || fail "no record"
[ "${v%%|*}" = "3:77" ] || fail "key: $v"
echo "${v#*|}" | jq -e '.data.call_targets[1].start_time == null and .data.call_targets[0].start_time == 1705051400' >/dev/null ||
	fail "value: $v"
ok "7 fragments reassembled into one record"
