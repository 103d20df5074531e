#!/usr/bin/env bash
# A record Kafka refuses for good (here: larger than the operator's
# message.max.bytes) goes to the dead-letter topic with the error as its
# reason and the first 64 KiB of the record as "raw" (contract §5), marked
# truncated; the rest flows.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues portsip.deadletter
cat >"$T/script" <<'S'
@big 200000
{"event_type":"call_start","session_id":"2","tenant_id":"1"}
S
start_pbxsim --script "$T/script" --subs 3
write_conf
sed -i 's/properties = { linger_ms = "5"; };/properties = { linger_ms = "5"; message_max_bytes = "100000"; };/' "$T/w2k.conf"
start_daemon
dl=$(consume portsip.deadletter 1 '%k|%s\n') || fail "no dead letter"
echo "${dl#*|}" | jq -e '.reason == "MSG_SIZE_TOO_LARGE" and .truncated == true and
    (.raw | length) == 65536 and (.raw | startswith("{\"schema\":\"wsi2kafka.event/1\"")) and
    .pbx == "hq"' >/dev/null || fail "dead letter: $(echo "${dl#*|}" | jq -c '.raw |= length')"
k=$(consume portsip.calls 1 '%k\n') || fail "the next event did not flow"
[ "$k" = "1:2" ] || fail "key $k"
grep -q 'refused record .* for good' "$T/daemon.log" || fail "refusal not logged"
ok "oversized record dead-lettered with reason MSG_SIZE_TOO_LARGE and its first 64 KiB, the rest flowed"
