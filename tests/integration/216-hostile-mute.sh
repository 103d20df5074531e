#!/usr/bin/env bash
# A PBX that completes TLS and the WebSocket upgrade, then sends nothing and
# reads nothing: the auth command is never answered. Each session ends after
# auth_timeout (disconnect reason "timeout"), is retried with backoff, and
# the healthy PBX beside it keeps delivering.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
start_good
start_slowpbx mute
hostile_conf
start_http_daemon
wait_metric 20 'wsi2kafka_pbx_up{pbx="good"}' == 1
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.calls"}' '>' 0
attack_check 10
# auth_timeout 3 s, checked each second, plus the close (at most 2 s).
evil_rounds 3 6 8
[ "$(grep -c ' UPGRADE ' "$T/slow.events")" -ge 3 ] || fail "upgrades did not complete: not the case under test"
grep -q "pbx evil: no auth reply from wss://localhost:$EVIL_PORT/wsi within 3 s" "$T/daemon.log" ||
	fail "auth timeout not logged"
grep -q "pbx evil: disconnected from .* (timeout)" "$T/daemon.log" || fail "reason timeout not logged"
scrape
wait_metric 10 'wsi2kafka_pbx_disconnects_total{pbx="evil",reason="timeout"}' '>=' "$(floor 3)"
wait_metric 10 'wsi2kafka_pbx_connects_total{pbx="evil",result="ok"}' '>=' "$(floor 3)"
expect 'wsi2kafka_pbx_up{pbx="evil"}' == 0
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit status $DAEMON_RC"
ok "silent PBX after the upgrade: given up after auth_timeout each time"
