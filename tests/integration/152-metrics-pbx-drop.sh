#!/usr/bin/env bash
# A PBX that drops the session, then goes away and comes back: connects
# and disconnects are counted with their reasons, wsi2kafka_pbx_up follows
# the session, and /readyz turns 503 naming the PBX, then 200 again.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
start_kmock portsip.calls portsip.extensions portsip.queues portsip.deadletter
{
	for i in $(seq 1 10); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"7\"}"; done
	echo "@drop"
	for i in $(seq 11 20); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"7\"}"; done
	echo "@close"
	for i in $(seq 21 25); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"7\"}"; done
} >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
sed -i 's/properties = { linger_ms = "5"; };/properties = { linger_ms = "5"; statistics_interval_ms = "500"; };/' "$T/w2k.conf"
start_http_daemon

keys=$(consume portsip.calls 25 '%k\n') || fail "got $(echo "$keys" | sort -u | wc -l) of 25"
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.calls"}' == 25
P='pbx="hq"'
expect "wsi2kafka_events_received_total{$P,type=\"call_start\"}" == 25
expect "wsi2kafka_pbx_connects_total{$P,result=\"ok\"}" == 3
# @drop ends in EOF or a reset, @close in a close frame: closed or error.
d=$(sum_series "wsi2kafka_pbx_disconnects_total{$P,")
[ "$d" -eq 2 ] || fail "disconnects: $d: $(grep disconnects "$T/samples")"
[ $(($(mval "wsi2kafka_pbx_disconnects_total{$P,reason=\"closed\"}") + \
    $(mval "wsi2kafka_pbx_disconnects_total{$P,reason=\"error\"}"))) -eq 2 ] ||
	fail "disconnect reasons: $(grep disconnects "$T/samples")"
expect "wsi2kafka_pbx_up{$P}" == 1
wait_for 10 readyz_is 200 || fail "/readyz: $(cat "$T/body")"
ok "25 events over 3 connections; 3 connects, 2 disconnects (closed/error)"

# The PBX goes away: the session is down, and says so.
kill -TERM "${PIDS[1]}"
wait "${PIDS[1]}" 2>/dev/null
wait_for 20 readyz_is 503 || fail "/readyz stayed $(get /readyz)"
jq -e '.ready == false and .not_subscribed == ["hq"] and
    .pbx[0].subscribed == false and .kafka.reachable == true' "$T/body" >/dev/null ||
	fail "/readyz body: $(cat "$T/body")"
wait_metric 20 "wsi2kafka_pbx_connects_total{$P,result=\"failed\"}" '>=' 1
expect "wsi2kafka_pbx_up{$P}" == 0
expect "wsi2kafka_pbx_state{$P,state=\"subscribed\"}" == 0
[ "$(sum_series "wsi2kafka_pbx_state{$P,")" = 1 ] || fail "one state at a time"
expect "wsi2kafka_pbx_disconnects_total{$P,reason=\"closed\"}" '>=' 1
ok "PBX gone: /readyz 503 naming hq, pbx_up 0, failed connects counted"

# It comes back on the same port: ready again.
rm -f "$T/pbx.port"
"$PBXSIM" --cert "$CERTS/server.pem" --key "$CERTS/server.key" \
    --port "$PBX_PORT" --port-file "$T/pbx.port" --log "$T/pbxsim.events" \
    --user admin --password "s3cret-Pa55" --domain test.io --subs 3 \
    >>"$T/pbxsim.log" 2>&1 &
PIDS+=($!)
wait_for 20 test -s "$T/pbx.port" || fail "pbxsim did not restart"
wait_for 30 readyz_is 200 || fail "/readyz after the PBX came back: $(cat "$T/body")"
jq -e '.ready == true and .not_subscribed == []' "$T/body" >/dev/null ||
	fail "/readyz body: $(cat "$T/body")"
scrape
expect "wsi2kafka_pbx_up{$P}" == 1
expect "wsi2kafka_pbx_connects_total{$P,result=\"ok\"}" == 4
ok "PBX back: /readyz 200, pbx_up 1, a 4th connect"

stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
scrape_after=$(get /metrics)
[ "$scrape_after" = 000 ] || fail "still answering after exit: $scrape_after"
ok "exit 0; the listener is gone"
