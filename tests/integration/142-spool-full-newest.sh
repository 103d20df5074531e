#!/usr/bin/env bash
# The spool full while the brokers are down, on_full = drop_newest: disk
# use stays within the bound, new records are refused, counted and logged,
# and the oldest are delivered.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
. tests/lib/metrics.sh
start_kmock $SPOOL_TOPICS
{ echo "@sleep 1500"; echo "@flood 5000"; } >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
set_spool 'max_bytes = "1M"; on_full = "drop_newest"; fsync = "always";'
set_props 'linger_ms = "5"; queue_buffering_max_messages = "50";'
start_http_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session"
kmock_cmd downall
wait_for 60 grep -q 'FLOOD done' "$T/pbxsim.log" || fail "flood not played"
# pbxsim has written every event; the daemon may still be reading (and
# dropping) them, which a full spool does not show: wait for all 5003
# (the flood and 3 snapshot records), or Kafka back too early takes some
# of them after a drop.
received_all() { scrape; [ "$(sum_series wsi2kafka_events_received_total)" -ge 5003 ]; }
wait_for 60 received_all || fail "$(sum_series wsi2kafka_events_received_total) of 5003 events received"
wait_spool_stable 20 || fail "the spool keeps changing"
b=$(spool_bytes)
[ "$b" -le 1048576 ] || fail "the spool uses $b bytes"
grep -q 'spool: full (max_bytes 1048576): dropped [0-9]* undelivered records\{0,1\} (on_full = drop_newest)' "$T/daemon.log" ||
    fail "no drop logged"
ok "spool full: $b bytes on disk, drops logged"

kmock_cmd upall
wait_for 60 accounted 5000 || fail "Kafka back: $(flood_seqs | wc -l) delivered + $(dropped_so_far) dropped < 5000"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
dropped=$(sed -n 's/.*; \([0-9]*\) dropped since start$/\1/p' "$T/daemon.log" | tail -n1)
seqs=$(flood_seqs)
n=$(echo "$seqs" | grep -c .)
[ -n "$dropped" ] && [ "$dropped" -gt 0 ] || fail "no drop count"
[ $((n + dropped)) -eq 5000 ] || fail "$n delivered + $dropped dropped != 5000"
# drop_newest: what arrived is the oldest part, from seq 0, without holes.
[ "$(echo "$seqs" | head -n1)" -eq 0 ] || fail "the oldest event is missing"
[ "$(echo "$seqs" | tail -n1)" -eq $((n - 1)) ] || fail "holes among the oldest"
ok "drop_newest: $dropped dropped and counted, the oldest $n delivered"
