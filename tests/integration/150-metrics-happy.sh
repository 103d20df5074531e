#!/usr/bin/env bash
# /metrics on the happy path: a strict parse of the whole exposition, HELP
# and TYPE for every metric of contract §8, and counts equal to what the
# simulator sent and to what is on Kafka; /healthz, /readyz, 404, 405,
# HEAD; the listener bound to the configured address only.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
start_kmock portsip.cdr portsip.calls portsip.extensions portsip.queues \
    portsip.events portsip.deadletter
{
	for i in $(seq 1 25); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"7\"}"; done
	for i in $(seq 1 3); do echo "{\"event_type\":\"call_cdr\",\"session_id\":\"$i\",\"tenant_id\":\"7\"}"; done
	# Not a documented type: counted as "other", never as a label value.
	echo '{"event_type":"pbx_custom_thing","tenant_id":"7"}'
	echo '{"event_type":"call_start",'
	echo '{"broken'
	echo '[1,2,3]'
} >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
sed -i 's/properties = { linger_ms = "5"; };/properties = { linger_ms = "5"; statistics_interval_ms = "500"; };/' "$T/w2k.conf"
start_http_daemon

# Everything delivered: 25 + 3 + 1 events, 3 dead letters, and the
# simulator's snapshots (extension_status with 2 entries, 1 queue_status).
consume portsip.calls 25 >/dev/null || fail "calls not delivered"
consume portsip.deadletter 3 >/dev/null || fail "dead letters not delivered"
wait_metric 20 'wsi2kafka_delivery_latency_seconds_count' '==' 35
ok "35 records acknowledged, as counted by the latency histogram"

scrape
for m in wsi2kafka_pbx_up:gauge wsi2kafka_pbx_connects_total:counter \
    wsi2kafka_pbx_disconnects_total:counter \
    wsi2kafka_events_received_total:counter \
    wsi2kafka_records_produced_total:counter \
    wsi2kafka_records_failed_total:counter \
    wsi2kafka_dead_letters_total:counter wsi2kafka_spool_records:gauge \
    wsi2kafka_spool_bytes:gauge wsi2kafka_spool_oldest_age_seconds:gauge \
    wsi2kafka_spool_dropped_total:counter wsi2kafka_kafka_up:gauge \
    wsi2kafka_delivery_latency_seconds:histogram \
    wsi2kafka_kafka_ack_latency_seconds:histogram \
    wsi2kafka_kafka_queue_records:gauge wsi2kafka_kafka_broker_up:gauge \
    wsi2kafka_process_start_time_seconds:gauge \
    wsi2kafka_process_resident_memory_bytes:gauge; do
	grep -qx "# TYPE ${m%%:*} ${m##*:}" "$T/metrics.txt" || fail "no TYPE ${m%%:*} ${m##*:}"
	grep -q "^# HELP ${m%%:*} ." "$T/metrics.txt" || fail "no HELP ${m%%:*}"
done
ok "strict parse: $(cat "$T/promparse.err"); every contract metric has HELP and TYPE"

P='pbx="hq"'
expect "wsi2kafka_pbx_up{$P}" == 1
expect "wsi2kafka_pbx_state{$P,state=\"subscribed\"}" == 1
expect "wsi2kafka_pbx_connects_total{$P,result=\"ok\"}" == 1
expect "wsi2kafka_pbx_connects_total{$P,result=\"failed\"}" == 0
[ "$(sum_series "wsi2kafka_pbx_disconnects_total{$P,")" = 0 ] || fail "disconnects counted"
expect "wsi2kafka_events_received_total{$P,type=\"call_start\"}" == 25
expect "wsi2kafka_events_received_total{$P,type=\"call_cdr\"}" == 3
expect "wsi2kafka_events_received_total{$P,type=\"other\"}" == 1
expect "wsi2kafka_events_received_total{$P,type=\"extension_status\"}" == 2
expect "wsi2kafka_events_received_total{$P,type=\"queue_status\"}" == 1
[ "$(sum_series "wsi2kafka_events_received_total{$P,")" = 32 ] || fail "events total"
grep -q pbx_custom_thing "$T/metrics.txt" && fail "a PBX-sent type became a label value"
expect "wsi2kafka_dead_letters_total{$P,reason=\"invalid_json\"}" == 2
expect "wsi2kafka_dead_letters_total{$P,reason=\"not_object\"}" == 1
[ "$(sum_series "wsi2kafka_dead_letters_total{$P,")" = 3 ] || fail "dead letters total"
# Frames: 32 events in 31 frames, 3 bad ones, auth + 3 subscribe replies.
expect "wsi2kafka_pbx_frames_total{$P}" == 38
ok "session, event-type and dead-letter counts equal what the simulator sent"

for t in portsip.calls:25 portsip.cdr:3 portsip.events:1 portsip.extensions:2 \
    portsip.queues:1 portsip.deadletter:3; do
	expect "wsi2kafka_records_produced_total{topic=\"${t%%:*}\"}" == "${t##*:}"
	n=$(count_topic "${t%%:*}")
	[ "$n" -eq "${t##*:}" ] || fail "${t%%:*}: $n records on Kafka, metric ${t##*:}"
done
expect 'wsi2kafka_records_produced_total{topic="other"}' == 0
[ "$(sum_series wsi2kafka_records_failed_total)" = 0 ] || fail "failures counted"
expect wsi2kafka_records_retried_total == 0
expect wsi2kafka_records_dead_lettered_total == 0
expect wsi2kafka_kafka_up == 1
grep -q '^wsi2kafka_kafka_broker_up{broker=".*"} 1$' "$T/samples" || fail "no broker up"
expect wsi2kafka_kafka_pending_records == 0
ok "per-topic counts equal the records on Kafka; no failure; Kafka and a broker up"

c=$(mval wsi2kafka_delivery_latency_seconds_count)
expect 'wsi2kafka_delivery_latency_seconds_bucket{le="+Inf"}' == "$c"
expect 'wsi2kafka_delivery_latency_seconds_bucket{le="60"}' == "$c"
expect wsi2kafka_delivery_latency_seconds_sum '>' 0
expect 'wsi2kafka_delivery_latency_seconds_bucket{le="0.001"}' '<=' "$c"
expect 'wsi2kafka_delivery_latency_seconds_bucket{le="0.0001"}' '<=' "$c"
[ "$(grep -c '^wsi2kafka_delivery_latency_seconds_bucket' "$T/samples")" -eq 26 ] ||
	fail "latency buckets: $(grep -c _bucket "$T/samples")"
ok "latency histogram: 25 buckets from 100 µs to 60 s and +Inf"

# The librdkafka-and-broker part: one observation per acknowledgement, each
# no longer than the whole (a record's whole latency contains it).
expect wsi2kafka_kafka_ack_latency_seconds_count == "$c"
expect 'wsi2kafka_kafka_ack_latency_seconds_bucket{le="+Inf"}' == "$c"
expect wsi2kafka_kafka_ack_latency_seconds_sum '>' 0
expect wsi2kafka_kafka_ack_latency_seconds_sum '<=' "$(mval wsi2kafka_delivery_latency_seconds_sum)"
ok "ack latency histogram: every acknowledgement, and within the delivery latency"

expect wsi2kafka_spool_records == 0
expect wsi2kafka_spool_dropped_total == 0
now=$(date +%s)
expect wsi2kafka_process_start_time_seconds '>' $((now - 300))
expect wsi2kafka_process_start_time_seconds '<=' $((now + 1))
expect wsi2kafka_process_resident_memory_bytes '>' 1000000
grep -q '^wsi2kafka_build_info{version="[0-9.]*"} 1$' "$T/samples" || fail "build_info"
ok "spool, process and build metrics"

# Endpoints.
[ "$(get /healthz)" = 200 ] && [ "$(cat "$T/body")" = ok ] || fail "/healthz"
[ "$(get /readyz)" = 200 ] || fail "/readyz: $(cat "$T/body")"
jq -e '.ready == true and .not_subscribed == [] and .pbx[0].name == "hq" and
    .pbx[0].state == "subscribed" and .kafka.reachable == true' "$T/body" \
    >/dev/null || fail "/readyz body: $(cat "$T/body")"
grep -qi '^content-type: application/json' "$T/headers" || fail "readyz type"
[ "$(get /metrics)" = 200 ] || fail "/metrics"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/headers" || fail "metrics type: $(cat "$T/headers")"
[ "$(get /metrics?x=1)" = 200 ] || fail "/metrics with a query"
ok "/healthz, /readyz (JSON), /metrics content type"

[ "$(get /nope)" = 404 ] || fail "unknown path"
[ "$(get /metrics/x)" = 404 ] || fail "path below /metrics"
for m in POST PUT DELETE PATCH OPTIONS; do
	[ "$(get /metrics -X $m -d x)" = 405 ] || fail "$m: $(cat "$T/headers")"
	grep -qi '^allow: GET, HEAD' "$T/headers" || fail "$m: no Allow header"
done
[ "$(get /metrics -I)" = 200 ] || fail "HEAD"
len=$(sed -n 's/^content-length: *\([0-9]*\).*/\1/ip' "$T/headers")
[ "${len:-0}" -gt 1000 ] || fail "HEAD content-length: $len"
# curl does not read a body after HEAD; a raw HTTP/1.0 exchange shows one.
exec 5<>/dev/tcp/127.0.0.1/$HTTP_PORT
printf 'HEAD /metrics HTTP/1.0\r\n\r\n' >&5
timeout 10 cat <&5 >"$T/raw" || fail "HEAD over HTTP/1.0: no close"
exec 5<&-
head -n1 "$T/raw" | grep -q '^HTTP/1.[01] 200' || fail "HEAD: $(head -n1 "$T/raw")"
grep -q '# HELP' "$T/raw" && fail "HEAD sent a body"
[ "$(get /healthz)" = 200 ] || fail "served after the 405s"
ok "404 for other paths, 405 with Allow for other methods, HEAD"

# Bound where the configuration says, and nowhere else.
ss -Htln "sport = :$HTTP_PORT" >"$T/ss"
[ "$(wc -l <"$T/ss")" -eq 1 ] && grep -q " 127.0.0.1:$HTTP_PORT " "$T/ss" ||
	fail "listening sockets: $(cat "$T/ss")"
ok "listening on 127.0.0.1:$HTTP_PORT only"

stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
ok "SIGTERM: exit 0"
