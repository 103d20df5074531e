#!/usr/bin/env bash
# CDR backfill (contract §10): SIGKILL while live CDRs stream. The last
# live time on disk may then be a few seconds old, so the gap read after
# the restart reaches back over calls that were delivered live just before
# the kill: the journal of live CDRs (written before each record goes to
# the spool) must keep every one of them from being published again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
start_kmock $BF_TOPICS
start_pbx_rest --calls 80 --calls-every 100 --calls-wait-sub
write_conf "$(backfill_conf)"
start_daemon
wait_for 30 call_made 30 || fail "calls did not start"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
nj=$(cat "$T/spool/backfill-hq.journal" "$T/spool/backfill-hq.journal.old" 2>/dev/null | wc -l)
[ "$nj" -gt 0 ] || fail "no journal of live CDRs"
ok "SIGKILL with live CDRs in the journal ($nj since the last durable state)"
wait_for 30 call_made 50 || fail "calls stopped at $(calls_made)"
start_daemon
gap_read_then_check "SIGKILL with live CDRs"
sk=$(sed -n 's/.*backfill: gap .* \([0-9]*\) skipped as already live.*/\1/p' "$T/daemon.log" | head -n 1)
ok "each call once; $sk calls of the gap skipped as already live"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC"
