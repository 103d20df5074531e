#!/usr/bin/env bash
# The spool full while the brokers are down (max_bytes = 1M, on_full =
# drop_oldest): disk use stays within the bound, the oldest records are
# dropped, every drop is counted and logged, and the newest are delivered.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
. tests/lib/metrics.sh
start_kmock $SPOOL_TOPICS
{ echo "@sleep 1500"; echo "@flood 5000"; } >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
set_spool 'max_bytes = "1M"; on_full = "drop_oldest";'
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
grep -q 'spool: full (max_bytes 1048576): dropped [0-9]* undelivered records\{0,1\} (on_full = drop_oldest)' "$T/daemon.log" ||
    fail "no drop logged"
ok "spool full: $b bytes on disk, drops logged"

kmock_cmd upall
newest_there() { [ "$(flood_seqs | tail -n1)" = 4999 ] && accounted 5000; }
wait_for 60 newest_there || fail "Kafka back: $(flood_seqs | wc -l) delivered + $(dropped_so_far) dropped, newest $(flood_seqs | tail -n1)"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
# The last line has the total (at the latest, the one written at exit).
dropped=$(sed -n 's/.*; \([0-9]*\) dropped since start$/\1/p' "$T/daemon.log" | tail -n1)
seqs=$(flood_seqs)
n=$(echo "$seqs" | grep -c .)
[ -n "$dropped" ] && [ "$dropped" -gt 0 ] || fail "no drop count"
# Records librdkafka already held when their segment was dropped may be
# delivered all the same: delivered + dropped covers everything.
[ $((n + dropped)) -ge 5000 ] || fail "$n delivered + $dropped dropped < 5000"
[ "$(echo "$seqs" | tail -n1)" -eq 4999 ] || fail "the newest event is missing"
[ "$n" -lt 5000 ] || fail "nothing was dropped"
# drop_oldest: what arrived is the newest part, without holes.
first=$(echo "$seqs" | awk '$1 >= 50' | head -n1)
[ $((4999 - first + 1)) -eq "$(echo "$seqs" | awk -v f="$first" '$1 >= f' | wc -l)" ] ||
    fail "holes among the newest"
ok "drop_oldest: $dropped dropped and counted, the newest $n delivered"
