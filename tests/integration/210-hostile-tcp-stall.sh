#!/usr/bin/env bash
# A PBX that accepts TCP but never starts TLS (reads nothing, sends
# nothing): each attempt ends after connect_timeout, counted as a failed
# connect with reason "timeout", and is retried with backoff; meanwhile a
# second, healthy PBX in the same daemon keeps delivering and /healthz
# answers.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
start_good
start_slowpbx accept
hostile_conf
start_http_daemon
wait_metric 20 'wsi2kafka_pbx_up{pbx="good"}' == 1
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.calls"}' '>' 0
attack_check 10
# connect_timeout 3 s, checked each second; backoff up to 1 s.
evil_rounds 3 4.5 8
grep -q "pbx evil: connection to wss://localhost:$EVIL_PORT/wsi failed: timed out after 3 s" "$T/daemon.log" ||
	fail "no timeout logged for the evil PBX"
scrape
wait_metric 10 'wsi2kafka_pbx_connect_failures_total{pbx="evil",reason="timeout"}' '>=' "$(floor 3)"
wait_metric 10 'wsi2kafka_pbx_connects_total{pbx="evil",result="failed"}' '>=' "$(floor 3)"
expect 'wsi2kafka_pbx_connects_total{pbx="evil",result="ok"}' == 0
expect 'wsi2kafka_pbx_connect_failures_total{pbx="good",reason="timeout"}' == 0
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit status $DAEMON_RC"
ok "TCP stall: given up after connect_timeout each time, reason timeout"
