#!/usr/bin/env bash
# SIGTERM mid-stream while the brokers are down: exit 0 after the flush
# window, what is unacknowledged stays in the spool, and after a restart
# every event received before the SIGTERM is on Kafka.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
start_kmock $SPOOL_TOPICS
start_pbxsim --flood 20000 --rate 2000 --subs 3
write_conf
start_daemon
wait_for 30 grep -q 'FLOOD start' "$T/pbxsim.log" || fail "no flood"
sleep 2
kmock_cmd downall
sleep 2
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
grep -q 'FLOOD done' "$T/pbxsim.log" && fail "the flood ended: not mid-stream"
grep -q 'kept in the spool for the next start' "$T/daemon.log" ||
    fail "nothing said about the spool"
got=$(sed -n 's/.*pbx hq: .* \([0-9]*\) events.*/\1/p' "$T/daemon.log" | tail -n1)
[ -n "$got" ] && [ "$got" -gt 0 ] || fail "no event count logged"
n=$(spool_records)
[ -n "$n" ] && [ "$n" -gt 0 ] || fail "the spool is empty"
ok "SIGTERM mid-stream: exit 0, $n records kept in the spool ($got events received)"

kmock_cmd upall
restart_daemon
# The snapshots (extension_status, queue_status) carry no seq; every flood
# event received before the SIGTERM (seq 0..got-4 at least) must arrive.
want=$((got - 3))
have() { [ "$(flood_seqs | awk -v w="$want" '$1 < w' | wc -l)" -eq "$want" ]; }
wait_for 60 have || fail "$(flood_seqs | awk -v w="$want" '$1 < w' | wc -l) of the first $want events on Kafka"
ok "after the restart all $want events received before the SIGTERM are on Kafka"
