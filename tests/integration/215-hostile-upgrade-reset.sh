#!/usr/bin/env bash
# A PBX that completes TLS, reads the upgrade request and then resets the
# connection instead of answering. Each attempt is a failed connect
# (reason error) with a log line, retried with backoff (never a tight
# loop), the session never stays "connecting"; the healthy PBX beside it
# keeps delivering. (How libwebsockets 4.1 reports such an end varies:
# "read failed", or, after a TLS alert, only by destroying the connection;
# pbx.c handles both, see its WSI_DESTROY case.)
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
start_good
start_slowpbx upgrade-close
hostile_conf
start_http_daemon
wait_metric 20 'wsi2kafka_pbx_up{pbx="good"}' == 1
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.calls"}' '>' 0
attack_check 6
# backoff 0.2..1 s: 6 s and more give at least 5 attempts, never hundreds.
evil_rounds 5 1 40
n=$(grep -c ' HANGUP ' "$T/slow.events")
[ "$n" -ge 5 ] || fail "no hang-ups: not the case under test"
f=$(grep -c "pbx evil: connection to wss://localhost:$EVIL_PORT/wsi failed: " "$T/daemon.log")
[ "$f" -ge $((n - 1)) ] || fail "$n hang-ups, $f failures logged"
scrape
expect 'wsi2kafka_pbx_connect_failures_total{pbx="evil",reason="error"}' '>=' $((n - 1))
expect 'wsi2kafka_pbx_connects_total{pbx="evil",result="ok"}' == 0
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit status $DAEMON_RC"
ok "reset before the upgrade response: each counted, logged, retried"
