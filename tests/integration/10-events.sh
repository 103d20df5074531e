#!/usr/bin/env bash
# Every event type arrives normalized, on its routed topic, with its key and
# CloudEvents headers; command replies are never published.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.cdr portsip.calls portsip.extensions portsip.queues \
    portsip.events portsip.deadletter
start_pbxsim --script tests/integration/data/events.script --subs 3
write_conf
start_daemon

F='%k|%h|%s\n'
cdr=$(consume portsip.cdr 1 "$F") || fail "no call_cdr on portsip.cdr"
calls=$(consume portsip.calls 4 "$F") || fail "calls: $(echo "$calls" | wc -l) of 4"
ext=$(consume portsip.extensions 6 "$F") || fail "extensions: $(echo "$ext" | wc -l) of 6"
queues=$(consume portsip.queues 5 "$F") || fail "queues: $(echo "$queues" | wc -l) of 5"
other=$(consume portsip.events 1 "$F") || fail "no record on portsip.events"
ok "records arrived on every routed topic"

val() { cut -d'|' -f3-; }
check() {	# description jq-filter input
	echo "$3" | val | jq -e "$2" >/dev/null || fail "$1: $(echo "$3" | val)"
}

# call_cdr: envelope, key, normalization rules, headers.
[ "$(echo "$cdr" | cut -d'|' -f1)" = "883611252155219968:885337248273272832" ] ||
	fail "cdr key: $cdr"
check "cdr envelope" '.schema == "wsi2kafka.event/1" and .pbx == "hq" and
    .type == "call_cdr" and .class == "cdr" and
    .tenant_id == "883611252155219968" and
    .session_id == "885337248273272832" and .time == 1725845669 and
    (.id | test("^[0-9a-f]{32}$")) and
    (.received_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$")) and
    .source == "wsi"' "$cdr"
check "cdr data" '.data.end_reason == "callee_disconnect" and
    (.data | has("ended_reason") | not) and .data.did == "18800606" and
    (.data | has("did_cid") | not) and .data.direction == "inbound" and
    .data.start_time == 1725845648 and .data.status_code == 0 and
    .data.talk_duration == 21 and .data.ring_duration == 0 and
    .data.call_targets[0].answered_time == null and
    .data.call_targets[0].talk_duration == 7 and
    .data.call_targets[0].id == "883611252155219968"' "$cdr"
id=$(echo "$cdr" | val | jq -r .id)
hdrs=$(echo "$cdr" | cut -d'|' -f2)
for h in ce_specversion=1.0 "ce_id=$id" ce_source=wsi2kafka://hq \
    ce_type=com.portsip.wsi.call_cdr ce_time=2024-09-09T01:34:29Z \
    content-type=application/json; do
	[[ ",$hdrs," == *",$h,"* ]] || fail "cdr header $h missing in $hdrs"
done
ok "call_cdr normalized, keyed and headed"

# 64-bit ids sent as JSON numbers keep every digit.
big=$(echo "$calls" | grep '"session_id":"885337248273272833"') ||
	fail "call_start with numeric ids not found: $calls"
[ "$(echo "$big" | cut -d'|' -f1)" = "883611252155219968:885337248273272833" ] ||
	fail "numeric-id key: $big"
check "numeric ids" '.data.cdr_id == "1234567890123456789" and
    .tenant_id == "883611252155219968" and .data.direction == "outbound" and
    .time == 1705051499' "$big"
check "target class" '.class == "target"' "$(echo "$calls" | grep cdr_target_add)"
check "call class" '.class == "call" and .data.direction == "internal"' \
    "$(echo "$calls" | grep '"session_id":"798119942409949184"' | grep '"type":"call_start"')"
ok "ids as strings, classes, direction values"

# extension_status snapshot: one record per extension, keyed by extension.
n=$(echo "$ext" | grep -c '"type":"extension_status"')
[ "$n" -eq 2 ] || fail "extension_status split: $n records"
echo "$ext" | grep '"type":"extension_status"' | cut -d'|' -f1 |
	grep -qvE '^[0-9]+:[0-9]+$' && fail "extension_status keys: $ext"
check "management class" '.class == "management" and .data.username == "testuser1"' \
    "$(echo "$ext" | grep extension_created)"
check "extension class" '.class == "extension" and .time == 1703690276' \
    "$(echo "$ext" | grep extension_call)"
ok "extension_status split per extension"

[ "$(echo "$queues" | grep queue_caller_status | cut -d'|' -f1)" = \
    "676398719834259456:677046776364007424" ] || fail "queue key: $queues"
[ "$(echo "$queues" | grep queue_created | cut -d'|' -f1)" = \
    "883634229655633920:8800" ] || fail "queue_created key: $queues"
check "queue class" '.class == "queue" and .time == 1676206249' \
    "$(echo "$queues" | grep queue_sla_breached)"
check "unknown type" '.class == "other" and .type == "trunk_connected"' "$other"
ok "queue keys, other class"

# Command replies (auth, subscribe) never reach Kafka.
[ "$(count_topic portsip.deadletter)" -eq 0 ] || fail "replies published"
grep -q '"command"' <(for t in portsip.cdr portsip.calls portsip.extensions \
    portsip.queues portsip.events; do count=$(count_topic $t); \
    consume $t "$count" '%s\n'; done) && fail "a command reply was published"
ok "no command reply published"

stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
ok "SIGTERM: exit 0"
