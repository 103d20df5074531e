#!/usr/bin/env bash
# SIGKILL (as a crash would stop it) with records in the spool: at the next
# start every one is produced again and delivered; a second SIGKILL while
# that replay is under way loses nothing either.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
start_kmock $SPOOL_TOPICS
{ echo "@sleep 1500"; echo "@flood 3000"; } >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session"
kmock_cmd downall
wait_for 60 grep -q 'FLOOD done' "$T/pbxsim.log" || fail "flood not played"
wait_spool_stable 20 || fail "the spool keeps changing"
kill_daemon
n=$(spool_records)
[ -n "$n" ] && [ "$n" -ge 3000 ] || fail "the spool holds ${n:-?} records"
ok "SIGKILL with $n records spooled"

kmock_cmd upall
restart_daemon
wait_for 20 grep -q 'from an earlier run to deliver' "$T/daemon.log" ||
    fail "no replay announced"
# Kill it again while it replays (or just after): still nothing lost.
sleep 0.3
kill_daemon
restart_daemon
n=$(wait_flood_ids 3000 60) || fail "$n of 3000 events on Kafka"
ok "after two SIGKILLs all 3000 events delivered (distinct ids)"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
[ "$(spool_records)" = 0 ] || fail "records left in the spool"
ok "spool empty after a clean stop"
