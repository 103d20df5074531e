#!/usr/bin/env bash
# Dead letters of every kind (a frame nested too deep included) are counted
# by reason, per PBX, exactly as many as the simulator sent; a record Kafka
# refuses for good is counted as dead-lettered, a dead letter it refuses as
# lost; and the dead-letter topic holds what the metrics say.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
start_kmock portsip.calls portsip.extensions portsip.deadletter
cat >"$T/script" <<'S'
{"event_type":"call_start","session_id":"1","tenant_id":"2"
@invalid_utf8
[1,2,3]
{"no_event_type":true}
{"event_type":"call_start","session_id":"5","tenant_id":"2","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
@big 10000
@big 3000
{"event_type":"queue_member_state","tenant_id":"2"}
{"event_type":"call_start","session_id":"10","tenant_id":"20"}
S
start_pbxsim --script "$T/script" --subs 3
# max_frame 8K: the 10000-byte frame is too large for the session; the
# 3000-byte one passes it, but not message.max.bytes = 2000 (a refusal for
# good), and so does the too_large dead letter, which keeps 8 KiB of its
# frame: it has nowhere left to go and is lost, which must show. No route
# for queue_*: the queue_status snapshot and the
# queue_member_state event go to the dead-letter topic as no_route.
write_conf 'max_frame = "8K";'
sed -i -e 's/properties = { linger_ms = "5"; };/properties = { linger_ms = "5"; message_max_bytes = "2000"; };/' \
    -e 's/^  dead_letter_topic = /  routes = ( { match = "call_*"; topic = "portsip.calls"; },\n    { match = "extension_*"; topic = "portsip.extensions"; } );\n  dead_letter_topic = /' \
    "$T/w2k.conf"
start_http_daemon

consume portsip.calls 1 >/dev/null || fail "the good event did not arrive"
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.deadletter"}' == 8
P='pbx="hq"'
for r in invalid_json:1 invalid_utf8:1 not_object:1 no_event_type:1 \
    too_large:1 too_deep:1 too_many_members:0 no_route:2; do
	expect "wsi2kafka_dead_letters_total{$P,reason=\"${r%%:*}\"}" == "${r##*:}"
done
[ "$(sum_series "wsi2kafka_dead_letters_total{$P,")" = 8 ] || fail "dead letters total"
expect wsi2kafka_records_dead_lettered_total == 1
expect wsi2kafka_records_lost_total == 1
ok "8 dead letters by reason (as sent); refused by Kafka: 1 record dead-lettered, 1 dead letter lost"

n=$(count_topic portsip.deadletter)
[ "$n" -eq 8 ] || fail "$n records on portsip.deadletter, metrics say 8"
expect 'wsi2kafka_records_produced_total{topic="portsip.calls"}' == 1
# The refused call_start was an event before it was refused: 2 received.
expect "wsi2kafka_events_received_total{$P,type=\"call_start\"}" == 2
expect "wsi2kafka_events_received_total{$P,type=\"queue_member_state\"}" == 0
expect "wsi2kafka_pbx_up{$P}" == 1
expect "wsi2kafka_pbx_connects_total{$P,result=\"ok\"}" == 1
ok "the dead-letter topic holds the 8 records counted; the session stayed up"

stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
