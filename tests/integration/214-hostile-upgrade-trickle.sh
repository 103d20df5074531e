#!/usr/bin/env bash
# A PBX that completes TLS, reads the upgrade request and then sends its
# "101 Switching Protocols" response one byte every half second: the
# upgrade never completes. connect_timeout is 7 s here, longer than
# libwebsockets' own limit for one step of a connect (5 s in 4.1), so this
# also shows that ours is the limit that applies and names the reason:
# each attempt ends after 7 s ("timed out after 7 s", reason timeout), is
# retried with backoff, and the healthy PBX beside it keeps delivering.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
EVIL_CONNECT_TIMEOUT=7
start_good
start_slowpbx http-trickle --interval 500
hostile_conf
start_http_daemon
wait_metric 20 'wsi2kafka_pbx_up{pbx="good"}' == 1
wait_metric 20 'wsi2kafka_records_produced_total{topic="portsip.calls"}' '>' 0
attack_check 10
evil_rounds 2 8.5 6
[ "$(grep -c ' TLS ' "$T/slow.events")" -ge 2 ] || fail "TLS handshakes did not complete: not the case under test"
# Only connections that completed TLS are the case under test. lws 4.3
# (Debian 13) connecting to "localhost" (::1, refused, then 127.0.0.1)
# sometimes drops its IPv4 socket right after connect(), before a
# ClientHello ("TLS handshake failed" here at 0.0 s; "closed before
# established" in the daemon's log) and retries after the backoff.
early=$(awk '$2 == "CLOSED" && $5 + 0 < 6.5 && !/TLS handshake failed/' "$T/slow.events")
[ -z "$early" ] || fail "ended before connect_timeout (lws's own limit?): $early"
grep ' CLOSED ' "$T/slow.events" | grep -qv ' 0 bytes trickled' ||
	fail "nothing was trickled: not the case under test"
grep -q "pbx evil: connection to wss://localhost:$EVIL_PORT/wsi failed: timed out after 7 s" "$T/daemon.log" ||
	fail "no timeout logged for the evil PBX"
scrape
wait_metric 10 'wsi2kafka_pbx_connect_failures_total{pbx="evil",reason="timeout"}' '>=' "$(floor 2)"
expect 'wsi2kafka_pbx_connects_total{pbx="evil",result="ok"}' == 0
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit status $DAEMON_RC"
ok "upgrade response trickle: given up after connect_timeout (7 s) each time"
