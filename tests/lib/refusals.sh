# tests/lib/refusals.sh — refusals the operator can fix (contract §7):
# shared by tests 96-99, sourced after tests/integration/lib.sh and
# tests/lib/metrics.sh.
#
# A PBX floods mixed event types (call_*, cdr_target_*, call_cdr,
# extension_*, queue_*: every default route) while some topics refuse
# records; frames that are not JSON make dead letters meanwhile. After
# the refusal is lifted every record must be on Kafka, by id, exactly
# the set the daemon received: nothing dropped, nothing dead-lettered
# but the invalid frames.

TOPICS=(portsip.cdr portsip.calls portsip.extensions portsip.queues portsip.events portsip.deadletter)
FLOOD=${FLOOD:-3000}
NBAD=${NBAD:-20}

# refusal_start [KMOCK_TOPICS...]: kmock (3 brokers), the PBX, no daemon.
refusal_start() {
	start_kmock "${@:-${TOPICS[@]}}"
	{
		for i in $(seq 1 "$NBAD"); do
			echo "not json, frame $i"
			echo "@sleep 300"
		done
	} >"$T/script"
}

# refusal_daemon [PROPERTIES]: the PBX floods FLOOD events at 300/s, then
# plays the NBAD invalid frames; the daemon with /metrics and extra
# librdkafka properties (libconfig syntax, e.g. 'a_b = "1";').
refusal_daemon() {
	start_pbxsim --flood "$FLOOD" --rate 300 --script "$T/script" --subs 3
	write_conf
	sed -i "s/properties = { linger_ms = \"5\"; };/properties = { linger_ms = \"5\"; ${1:-} };/" "$T/w2k.conf"
	start_http_daemon
}

# refusal_seen TOPIC REASON: /readyz 503 naming TOPIC with REASON, the
# counter, the gauge and the log line.
refusal_seen() {
	wait_for 60 readyz_is 503 || fail "/readyz did not go 503"
	wait_for 60 readyz_names "$1" "$2" || fail "/readyz does not name $1 ($2): $(cat "$T/body")"
	wait_metric 30 "wsi2kafka_kafka_refusals_total{reason=\"$2\",topic=\"$1\"}" '>' 0
	expect "wsi2kafka_kafka_topic_refusing{topic=\"$1\"}" == 1
	grep -q "kafka: topic $1 refuses records: .*($2;" "$T/daemon.log" ||
		fail "no log line naming $1 and $2"
	ok "$1 refused ($2): /readyz 503 names it, counted, logged"
}
readyz_names() {
	[ "$(get /readyz)" = 503 ] && jq -e --arg t "$1" --arg r "$2" \
	    '.ready == false and any(.kafka.refused_topics[]; .topic == $t and .reason == $r)' \
	    "$T/body" >/dev/null
}

# other_topics_flow REFUSED_TOPIC...: every record of the other topics is
# delivered while those are still refused. Waits for the whole input
# (the flood and the invalid frames), then compares per-topic deliveries
# with what the daemon received.
other_topics_flow() {
	local want got t sel
	# The invalid frames come after the flood: then everything is in.
	wait_metric 90 'wsi2kafka_dead_letters_total{pbx="hq",reason="invalid_json"}' '>=' "$NBAD"
	for t in "${TOPICS[@]}"; do
		printf '%s\n' "$@" | grep -qx "$t" && continue
		case $t in
		portsip.cdr) sel='type="call_cdr"' ;;
		portsip.calls) sel='type="(call_[a-bd-z]|call_c[a-ce-z]|target_|cdr_target_)' ;;
		portsip.extensions) sel='type="extension_' ;;
		portsip.queues) sel='type="queue_' ;;
		*) continue ;;
		esac
		scrape
		want=$(grep -E "^wsi2kafka_events_received_total\{pbx=\"hq\",$sel" "$T/samples" |
		    awk '{ s += $NF } END { print s + 0 }')
		[ "$want" -gt 0 ] || fail "no $t events received"
		wait_metric 60 "wsi2kafka_records_produced_total{topic=\"$t\"}" '>=' "$want"
		for r in "$@"; do
			expect "wsi2kafka_kafka_topic_refusing{topic=\"$r\"}" == 1
		done
	done
	ok "the other topics flowed while $* refused records"
}

# all_delivered: readiness back to 200, then every record on Kafka once
# by id (duplicates only with equal ids), nothing lost, no dead letter but
# the NBAD invalid frames.
all_delivered() {
	local t n total=0 ids
	wait_for 90 readyz_is 200 || fail "/readyz did not come back to 200: $(cat "$T/body")"
	scrape
	n=$(sum_series 'wsi2kafka_events_received_total{')
	[ "$n" -ge "$FLOOD" ] || fail "received $n events, flood was $FLOOD"
	wait_for 60 produced_at_least $((n + NBAD)) ||
		fail "produced $(sum_series 'wsi2kafka_records_produced_total{') of $((n + NBAD))"
	for t in "${TOPICS[@]}"; do
		timeout $((30 * TIME_SCALE)) kcat -C -q -b "$BOOTSTRAP" -t "$t" -o beginning -e \
		    -f '%s\n' 2>/dev/null | jq -r '.id + " " + (.schema | sub("wsi2kafka.";"")) + " " + (.reason // "")' >>"$T/ids"
	done
	total=$(wc -l <"$T/ids")
	ids=$(cut -d' ' -f1 "$T/ids" | sort -u | wc -l)
	[ "$ids" -eq $((n + NBAD)) ] || fail "$ids distinct ids on Kafka, want $((n + NBAD)) ($n events, $NBAD dead letters; $total records)"
	[ "$(grep -c ' deadletter/1 ' "$T/ids")" -ge "$NBAD" ] || fail "dead letters missing"
	grep ' deadletter/1 ' "$T/ids" | grep -v ' invalid_json$' | head -3 | grep . &&
		fail "records were dead-lettered for a Kafka refusal"
	expect 'wsi2kafka_records_lost_total' == 0
	expect 'wsi2kafka_records_dead_lettered_total' == 0
	expect 'wsi2kafka_spool_dropped_total' == 0
	ok "all $n events and $NBAD dead letters delivered once by id ($total records), none lost or dead-lettered; /readyz 200"
}
produced_at_least() { scrape; [ "$(sum_series 'wsi2kafka_records_produced_total{')" -ge "$1" ]; }
