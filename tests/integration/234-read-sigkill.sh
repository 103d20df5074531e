#!/usr/bin/env bash
# Contract §6 and §7: a frame whose last byte has left the socket is handled
# at once, so it is in the spool when the daemon dies. Issue #12.1: a SIGKILL
# 2 s after the PBX's last write lost 7 frames, held in OpenSSL's read-ahead
# buffer. Brokers down; the PBX sends a 670 KB CDR and 7 small frames, then
# nothing; later, with the daemon busy (SIGSTOP) while it writes, a 40 KB
# frame and 7 small ones; SIGKILL 200 ms after the PBX's last write (after
# SIGCONT). After a restart with the brokers up, all 16 frames are on Kafka,
# each once by id.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
. tests/lib/readpath.sh
start_kmock $SPOOL_TOPICS
{
	echo "@sleep $((2000 * TIME_SCALE))"
	big_cdr 1500 9400001
	for k in 1 2 3 4 5 6 7; do small_call "941$k"; done
	echo "@sleep $((3000 * TIME_SCALE))"
	sized_event 40000 9420000; echo
	for k in 1 2 3 4 5 6 7; do small_call "942$k"; done
	echo "@end"
} >"$T/script"
start_pbxsim --script "$T/script" --subs 3 --log-time
write_conf
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session"
kmock_cmd downall
t_down=$(date +%s.%N)
wait_for 20 grep -q ' SENT ' "$T/pbxsim.events" || fail "first burst not sent"
t_sent=$(grep -m1 ' SENT ' "$T/pbxsim.events" | cut -d' ' -f1)
awk -v a="$t_down" -v b="$t_sent" 'BEGIN { exit !(a < b) }' ||
	fail "the PBX wrote before the brokers were down: not the case under test"
# The second burst, written while the daemon is stopped.
sleep "$((1500 * TIME_SCALE))e-3"
kill -STOP "$DAEMON_PID"
wait_for 20 grep -q ' END ' "$T/pbxsim.events" || { kill -CONT "$DAEMON_PID"; fail "second burst not sent"; }
sleep 0.3
kill -CONT "$DAEMON_PID"
sleep "$((200 * TIME_SCALE))e-3"
kill_daemon
ok "SIGKILL 200 ms after the PBX's last write, brokers down"

kmock_cmd upall
restart_daemon
want=$(printf '%s\n' 883611252155219968:9400001 6:941{1..7} 6:9420000 6:942{1..7} | sort)
on_kafka() {
	timeout 20 kcat -C -q -b "$BOOTSTRAP" -t portsip.calls -o beginning -e -f '%k %s\n' 2>/dev/null
	timeout 20 kcat -C -q -b "$BOOTSTRAP" -t portsip.cdr -o beginning -e -f '%k %s\n' 2>/dev/null
}
got_all() {
	on_kafka | jq -R -r 'index(" ") as $k | "\(.[0:$k]) \(.[$k+1:] | fromjson | .id)"' |
	    sort -u >"$T/got"
	[ "$(cut -d' ' -f1 "$T/got" | sort -u)" = "$want" ]
}
wait_for 60 got_all || fail "on Kafka after the restart: $(cut -d' ' -f1 "$T/got" | sort -u | wc -l) of 16 frames; missing: $(comm -13 <(cut -d' ' -f1 "$T/got" | sort -u) <(echo "$want") | paste -sd' ')"
[ "$(wc -l <"$T/got")" -eq 16 ] || fail "16 frames, $(wc -l <"$T/got") distinct ids"
# the CDR whole: its 1,500 targets
on_kafka | grep '^883611252155219968:9400001 ' | head -n1 | cut -d' ' -f2- |
    jq -e '.data.call_targets | length == 1500' >/dev/null || fail "the CDR on Kafka is not whole"
ok "after the restart all 16 frames written before the SIGKILL are on Kafka (the CDR with its 1,500 targets)"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
