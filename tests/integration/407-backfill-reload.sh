#!/usr/bin/env bash
# CDR backfill across reloads (SIGHUP): an unchanged file keeps the session
# and its backfill (no gap); a changed backfill block restarts the PBX's
# session, and the short gap that makes is read back like any other. Every
# call on Kafka exactly once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
start_kmock $BF_TOPICS
start_pbx_rest --calls 90 --calls-every 100 --calls-wait-sub
write_conf "$(backfill_conf)"
start_daemon
wait_for 30 call_made 15 || fail "calls did not start"
kill -HUP "$DAEMON_PID"
wait_for 20 grep -q 'reload: done: 1 PBX session kept' "$T/daemon.log" || fail "unchanged file: session not kept"
[ "$(grep -c 'backfill enabled' "$T/daemon.log")" -eq 1 ] || fail "the backfill was restarted by an unchanged file"
ok "an unchanged file keeps the session and its backfill"
wait_for 30 call_made 35 || fail "calls stopped"
write_conf "$(RPS=40 backfill_conf)"
kill -HUP "$DAEMON_PID"
wait_for 20 grep -q 'reload: done: 0 PBX sessions kept, 1 started, 1 stopped' "$T/daemon.log" ||
	fail "changed backfill: $(grep 'reload:' "$T/daemon.log" | tail -n 2)"
gap_read_then_check "reloads"
ok "a changed backfill block restarts the session; its gap was read back"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC"
