#!/usr/bin/env bash
# CDR backfill (contract §10), scenario c: SIGKILL while a gap is being
# read. The gap is persisted beside the spool, so after a restart it is
# read again from its start and finished: every call on Kafka, none with
# two different ids (a row read twice gives the same id: consumers drop
# such repeats).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
start_kmock $BF_TOPICS
start_pbx_rest --calls 120 --calls-every 60 --calls-wait-sub
write_conf "$(RPS=2 backfill_conf)"
gap_by_stop 10
# Killed once the second page has been asked for (2 requests a second).
wait_for 60 test_pages 2 || fail "no paging: $(grep backfill "$T/daemon.log" | tail -n 3)"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
gap_done 1 && fail "the gap was finished before the kill: nothing tested"
grep -q '"gaps":\[\[' "$T/spool/backfill-hq.state" || fail "the gap is not in the state file: $(head -c 300 "$T/spool/backfill-hq.state")"
ok "SIGKILL during the backfill; the gap is kept beside the spool"
before=$(grep -c 'LIST' "$T/pbxsim.events")
start_daemon
wait_for 60 gap_done 1 || fail "the gap was not finished after the restart"
wait_for 60 all_calls_on_kafka || true
cdr_check "SIGKILL during backfill"
[ "$CDR_REST" -ge 90 ] || fail "only $CDR_REST from REST"
ok "after the restart the gap was read to its end ($before pages before the kill)"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC"
