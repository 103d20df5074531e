#!/usr/bin/env bash
# Every broker down for 30 s while 10,000 events arrive: librdkafka holds
# what its (small, here) queue takes, the spool holds everything, PBX input
# never pauses, and once the brokers are back every event is delivered.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
start_kmock $SPOOL_TOPICS
{ echo "@sleep 1500"; echo "@flood 10000"; } >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
set_props 'linger_ms = "5"; queue_buffering_max_messages = "1000";'
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session"
kmock_cmd downall
down_at=$SECONDS
wait_for 60 grep -q 'FLOOD done' "$T/pbxsim.log" || fail "flood not played"
grep -q 'pausing PBX input' "$T/daemon.log" && fail "PBX input paused"
ok "10000 events received while all brokers are down, input never paused"

wait_for 20 grep -q 'records wait in the spool' "$T/daemon.log" ||
    fail "librdkafka's queue never filled"
wait_spool_stable 20 || fail "the spool keeps changing"
n=$(spool_records)
[ -n "$n" ] && [ "$n" -ge 10000 ] || fail "the spool holds ${n:-?} records"
ok "the spool holds them ($n records, $(spool_bytes) bytes)"

left=$((30 - (SECONDS - down_at)))
[ "$left" -gt 0 ] && sleep "$left"
kmock_cmd upall
n=$(wait_flood_ids 10000 90) || fail "$n of 10000 events on Kafka"
ok "after a 30 s outage all 10000 events delivered (distinct ids)"

# Everything acknowledged: the spool empties (its last segment is retired
# at the latest at a clean stop).
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
n=$(spool_records)
[ "$n" = 0 ] || fail "$n records left in the spool"
grep -q 'kept for the next start' "$T/daemon.log" && fail "records kept"
ok "clean stop: the spool is empty"
