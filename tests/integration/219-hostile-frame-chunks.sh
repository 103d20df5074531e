#!/usr/bin/env bash
# A PBX that authenticates the daemon, then starts a frame that never
# completes (its header announces 1 TiB) and sends 70000 bytes of it every
# second: more than lws's 64 KiB buffer, so a piece reaches the session
# every second and resets the idle clock. The frame's own bound must end
# it: a frame must complete within idle_timeout ("a frame ... is still
# incomplete after 4 s", reason idle), with no more than max_frame (1M
# here) buffered meanwhile. Retried with backoff; the healthy PBX beside
# it keeps delivering.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
start_good
start_slowpbx frame-trickle --chunk 70000
hostile_conf
start_http_daemon
wait_metric 20 'wsi2kafka_pbx_up{pbx="good"}' == 1
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.calls"}' '>' 0
attack_check 12
# The frame's clock starts at the first tick that sees it unfinished (up
# to 1 s), then 4 s, then the next tick and the close.
evil_rounds 2 8 8
grep -q "pbx evil: a frame from wss://localhost:$EVIL_PORT/wsi is still incomplete after 4 s" "$T/daemon.log" ||
	fail "the incomplete frame was not logged"
grep -q "pbx evil: nothing received from" "$T/daemon.log" &&
	fail "idle_timeout ended it, not the frame bound: not the case under test"
scrape
wait_metric 10 'wsi2kafka_pbx_disconnects_total{pbx="evil",reason="idle"}' '>=' "$(floor 2)"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit status $DAEMON_RC"
ok "70 KB/s frame trickle: ended by the frame bound each time"
