#!/usr/bin/env bash
# A PBX that trickles its TLS handshake, one byte a second (a record header
# announcing 16 KiB, then zeros): every byte is progress to OpenSSL, so only
# an overall bound ends it. Each attempt ends after connect_timeout (reason
# "timeout"), is retried with backoff, and the healthy PBX beside it keeps
# delivering.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
start_good
start_slowpbx tls-trickle --interval 500
hostile_conf
start_http_daemon
wait_metric 20 'wsi2kafka_pbx_up{pbx="good"}' == 1
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.calls"}' '>' 0
attack_check 10
evil_rounds 3 4.5 8
grep ' CLOSED ' "$T/slow.events" | grep -qv ' 0 bytes trickled' ||
	fail "nothing was trickled: not the case under test"
grep -q "pbx evil: connection to wss://localhost:$EVIL_PORT/wsi failed: timed out after 3 s" "$T/daemon.log" ||
	fail "no timeout logged for the evil PBX"
scrape
wait_metric 10 'wsi2kafka_pbx_connect_failures_total{pbx="evil",reason="timeout"}' '>=' "$(floor 3)"
expect 'wsi2kafka_pbx_connects_total{pbx="evil",result="ok"}' == 0
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit status $DAEMON_RC"
ok "TLS handshake trickle: given up after connect_timeout each time"
