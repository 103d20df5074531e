#!/usr/bin/env bash
# Every broker down while events arrive: the failure shows (kafka_up 0,
# every broker_up 0, the records waiting in librdkafka's queue and in the
# spool, getting older; /readyz 503 saying Kafka is unreachable), and when
# the brokers are back everything is counted as produced, the spool is
# empty again, and the outage is in the latency histogram.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
start_kmock portsip.calls portsip.extensions portsip.queues
{
	echo "@sleep 4000"
	for i in $(seq 1 50); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"5\"}"; done
} >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
sed -i 's/properties = { linger_ms = "5"; };/properties = { linger_ms = "5"; statistics_interval_ms = "500"; };/' "$T/w2k.conf"
start_http_daemon
wait_for 20 readyz_is 200 || fail "/readyz never 200: $(cat "$T/body")"
ok "ready: session subscribed, Kafka reachable"

kmock_cmd downall
wait_for 20 readyz_is 503 || fail "/readyz stayed $(get /readyz): $(cat "$T/body")"
jq -e '.ready == false and .kafka.reachable == false and
    .not_subscribed == []' "$T/body" >/dev/null ||
	fail "/readyz body: $(cat "$T/body")"
wait_metric 20 wsi2kafka_kafka_up == 0
# Broker states come from librdkafka's statistics, every 500 ms here.
sleep 1
scrape
grep '^wsi2kafka_kafka_broker_up{' "$T/samples" | grep -qv ' 0$' &&
	fail "a broker still up: $(grep broker_up "$T/samples")"
grep -q '^wsi2kafka_kafka_broker_up{' "$T/samples" || fail "no broker series"
ok "brokers down: /readyz 503 (Kafka unreachable), kafka_up 0, every broker_up 0"

wait_for 20 grep -q 'SENT' "$T/pbxsim.events" || fail "script not played"
wait_metric 20 wsi2kafka_kafka_queue_records '>=' 50
expect 'wsi2kafka_records_produced_total{topic="portsip.calls"}' == 0
expect 'wsi2kafka_events_received_total{pbx="hq",type="call_start"}' == 50
expect 'wsi2kafka_pbx_up{pbx="hq"}' == 1
wait_metric 20 wsi2kafka_spool_records '>=' 50
expect wsi2kafka_spool_bytes '>' 0
sleep 2
scrape
expect wsi2kafka_spool_oldest_age_seconds '>=' 2
ok "50 events received during the outage, waiting in librdkafka's queue and the spool"

kmock_cmd upall
wait_for 30 readyz_is 200 || fail "/readyz after the outage: $(cat "$T/body")"
wait_metric 30 'wsi2kafka_records_produced_total{topic="portsip.calls"}' == 50
wait_metric 20 wsi2kafka_kafka_queue_records == 0
wait_metric 20 wsi2kafka_spool_records == 0
expect wsi2kafka_spool_oldest_age_seconds == 0
expect wsi2kafka_spool_dropped_total == 0
expect wsi2kafka_kafka_up == 1
# The simulator's snapshots may have been caught by the outage too.
c=$(mval wsi2kafka_delivery_latency_seconds_count)
[ "$c" -eq "$(sum_series wsi2kafka_records_produced_total)" ] ||
	fail "latency count $c, produced $(sum_series wsi2kafka_records_produced_total)"
# Each of the 50 waited out the outage (over 2 s): none is in le="1".
fast=$(mval 'wsi2kafka_delivery_latency_seconds_bucket{le="1"}')
[ $((c - fast)) -ge 50 ] || fail "only $((c - fast)) deliveries over 1 s"
[ "$(count_topic portsip.calls)" -eq 50 ] || fail "records on Kafka: $(count_topic portsip.calls)"
ok "brokers back: /readyz 200, 50 produced (as on Kafka), spool empty, slow deliveries in the histogram"

stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
