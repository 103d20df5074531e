#!/usr/bin/env bash
# A short message.timeout.ms (the operator's choice; ours is 0, infinite)
# during an outage: librdkafka times the records out, they are produced
# again from the spool, over and over, and none is lost.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
start_kmock $SPOOL_TOPICS
{ echo "@sleep 1500"; echo "@flood 2000"; } >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
set_props 'linger_ms = "5"; message_timeout_ms = "1500";'
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session"
kmock_cmd downall
wait_for 60 grep -q 'FLOOD done' "$T/pbxsim.log" || fail "flood not played"
wait_for 20 grep -q 'failed: Local: Message timed out .*: producing again' "$T/daemon.log" ||
    fail "no timeout seen"
sleep 6		# several timeouts in a row
ok "records time out in librdkafka and are produced again from the spool"
kmock_cmd upall
n=$(wait_flood_ids 2000 60) || fail "$n of 2000 events on Kafka"
ok "all 2000 events delivered after the outage (distinct ids)"
