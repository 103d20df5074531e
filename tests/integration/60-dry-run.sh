#!/usr/bin/env bash
# --dry-run: records printed as JSON lines on stdout, nothing produced.
. "$(dirname "$0")/lib.sh"
cat >"$T/script" <<'S'
{"event_type":"call_start","session_id":"5","tenant_id":"6","time":"1705051422"}
{"event_type":"call_cdr","session_id":"5","tenant_id":"6","ended_time":"1705051499","direction":"out"}
S
start_pbxsim --script "$T/script" --subs 3
BOOTSTRAP=127.0.0.1:1 write_conf
start_daemon -n
printed() { [ "$(grep -c '"topic"' "$T/daemon.out")" -ge 5 ]; }
wait_for 20 printed ||
	fail "dry run printed $(wc -l <"$T/daemon.out") lines"
jq -e -s 'any(.[]; .topic == "portsip.cdr" and .key == "6:5" and
    .value.data.direction == "outbound" and .value.time == 1705051499 and
    .headers.ce_type == "com.portsip.wsi.call_cdr")' \
    "$T/daemon.out" >/dev/null || fail "call_cdr line: $(cat "$T/daemon.out")"
jq -e -s 'any(.[]; .topic == "portsip.calls" and .key == "6:5")' "$T/daemon.out" >/dev/null ||
	fail "call_start line"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit $DAEMON_RC"
grep -q ' kafka: ' "$T/daemon.log" &&
	fail "dry run talked to Kafka: $(grep ' kafka: ' "$T/daemon.log" | head -3)"
ok "dry run printed records as JSON lines, exit 0"
