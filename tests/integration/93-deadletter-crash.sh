#!/usr/bin/env bash
# A dead letter is durable before the record it replaces leaves the spool
# (contract §7). The daemon dies by SIGKILL right after a refusal put the
# dead letter into the spool: the test hook W2K_TEST_STOP_AFTER_DEAD_LETTER
# stops its loop there, before the turn ends and writes the spool's
# write-behind out, and the test kills it a second later (the spool's
# thread has removed what was done by then). fsync = batch with a 10 s
# group-commit window, and small segments, so the original's segment is
# done and removed if the original was acknowledged. After a restart the
# dead letter must arrive: before, the original was acknowledged at once
# and the dead letter lived only in memory.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues portsip.deadletter
cat >"$T/script" <<'S'
{"event_type":"call_start","session_id":"1","tenant_id":"1"}
{"event_type":"call_start","session_id":"2","tenant_id":"1"}
@sleep 3000
@big 200000
@end
S
start_pbxsim --script "$T/script" --subs 3
write_conf
sed -i 's/properties = { linger_ms = "5"; };/properties = { linger_ms = "5"; message_max_bytes = "100000"; };/
    s|spool = { dir = "\([^"]*\)"; };|spool = { dir = "\1"; max_bytes = "1M"; fsync = "batch"; fsync_interval_ms = 10000; };|' "$T/w2k.conf"
grep -q 'fsync_interval_ms = 10000' "$T/w2k.conf" || fail "config not patched"
export W2K_TEST_STOP_AFTER_DEAD_LETTER=1
start_daemon
wait_for 30 grep -q 'test hook: loop stopped after a dead letter' "$T/daemon.log" ||
	fail "the test hook was not reached"
sleep $((1 * TIME_SCALE))
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=
unset W2K_TEST_STOP_AFTER_DEAD_LETTER
mv "$T/daemon.log" "$T/daemon.1.log"
start_daemon
dl=$(consume portsip.deadletter 1 '%s\n') || fail "the dead letter was lost in the crash"
echo "$dl" | jq -e '.reason == "MSG_SIZE_TOO_LARGE" and .truncated == true' >/dev/null ||
	fail "dead letter: $(echo "$dl" | jq -c '.raw |= length')"
keys=$(consume portsip.calls 2 '%k\n' | sort -u | tr '\n' ' ') || fail "events missing"
[ "$keys" = "1:1 1:2 " ] || fail "keys: $keys"
ok "SIGKILL right after a refusal: the dead letter arrived after the restart"
