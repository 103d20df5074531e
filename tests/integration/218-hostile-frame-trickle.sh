#!/usr/bin/env bash
# A PBX that authenticates the daemon, then starts a frame that never
# completes (its header announces 1 TiB) and trickles its payload one byte
# a second. lws hands a frame over in pieces of its 64 KiB buffer, so
# nothing reaches the session and idle_timeout ends it ("nothing received
# ... for 4 s", reason idle). The session is retried with backoff and the
# healthy PBX beside it keeps delivering. (219 trickles faster.)
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
start_good
start_slowpbx frame-trickle
hostile_conf
start_http_daemon
wait_metric 20 'wsi2kafka_pbx_up{pbx="good"}' == 1
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.calls"}' '>' 0
attack_check 10
# idle_timeout 4 s after the last subscribe, checked each second, + close.
evil_rounds 2 7 8
[ "$(grep -c ' AUTH ' "$T/slow.events")" -ge 2 ] || fail "auth not answered: not the case under test"
grep ' CLOSED ' "$T/slow.events" | grep -qv ' 0 bytes trickled' ||
	fail "nothing was trickled: not the case under test"
grep -q "pbx evil: nothing received from wss://localhost:$EVIL_PORT/wsi for 4 s" "$T/daemon.log" ||
	fail "idle not logged"
scrape
wait_metric 10 'wsi2kafka_pbx_disconnects_total{pbx="evil",reason="idle"}' '>=' "$(floor 2)"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit status $DAEMON_RC"
ok "1 byte/s frame trickle: ended by idle_timeout each time"
