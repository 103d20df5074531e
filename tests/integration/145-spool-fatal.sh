#!/usr/bin/env bash
# A fatal producer error (idempotence), injected twice mid-stream with
# rd_kafka_test_fatal_error() through the test-only SIGUSR2 hook: each time
# the producer is rebuilt and what it held is produced again from the
# spool; every event arrives.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
# The hook exists only in -DW2K_TESTING builds (make check); elsewhere
# SIGUSR2 would kill the daemon.
grep -q 'test hook (SIGUSR2)' "$W2K" || { echo "ok - skipped: $W2K built without -DW2K_TESTING"; exit 0; }
start_kmock $SPOOL_TOPICS
start_pbxsim --flood 10000 --rate 2000 --subs 3
write_conf
start_daemon
wait_for 30 grep -q 'FLOOD start' "$T/pbxsim.log" || fail "no flood"
sleep 1.5
kill -USR2 "$DAEMON_PID"
wait_for 10 grep -q 'producer rebuilt' "$T/daemon.log" || fail "not rebuilt"
grep -q 'fatal producer error: .*injected by test' "$T/daemon.log" ||
    fail "fatal error not logged"
sleep 1.5
kill -USR2 "$DAEMON_PID"
rebuilt_twice() { [ "$(grep -c 'producer rebuilt' "$T/daemon.log")" -ge 2 ]; }
wait_for 10 rebuilt_twice || fail "not rebuilt twice"
grep -q 'FLOOD done' "$T/pbxsim.log" && fail "the flood ended: not mid-stream"
ok "two fatal errors mid-stream, the producer rebuilt each time"
wait_for 60 grep -q 'FLOOD done' "$T/pbxsim.log" || fail "flood not finished"
n=$(wait_flood_ids 10000 60) || fail "$n of 10000 events on Kafka"
ok "all 10000 events delivered (distinct ids)"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
[ "$(spool_records)" = 0 ] || fail "records left in the spool"
ok "clean stop, spool empty"
