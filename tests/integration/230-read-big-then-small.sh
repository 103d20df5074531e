#!/usr/bin/env bash
# Contract §6: a frame is handled as soon as its last byte has been read
# from the socket; nothing already read waits for a timer or for the next
# socket event. Issue #12.1: a PBX sends, back to back, a conference CDR of
# about 670 KB (1,500 call targets), then 7 small frames, then nothing; with
# TLS read-ahead the frames stayed in OpenSSL's buffer until the next ping.
# Pings are off here (ping_interval 3000 s): every frame must be on the dry
# run's output within BOUND_MS (100 ms, scaled) of the PBX's write, or of
# the frame before it when the daemon was still busy with that one (plus,
# for the first frame, the CPU time of its bytes: see readpath.sh).
#  A. that sequence, three times, 3 s of silence after each;
#  B. the daemon busy (SIGSTOP) while the PBX writes a 40 KB frame and 7
#     small ones, all of which fit in the socket buffers: when it runs again
#     it reads them in one read(), and every frame must come out within the
#     bound of SIGCONT. (Before the fix, A failed one run in five, B always.)
. "$(dirname "$0")/lib.sh"
. tests/lib/readpath.sh
ROUNDS=3
for r in $(seq 1 $ROUNDS); do
	big_cdr 1500 "9000$r"
	for k in 1 2 3 4 5 6 7; do small_call "910$r$k"; done
	echo "@sleep $((3000 * TIME_SCALE))"
done >"$T/script"
{ sized_event 40000 9200000; echo; for k in 1 2 3 4 5 6 7; do small_call "920$k"; done; echo "@end"; } >>"$T/script"
start_pbxsim --script "$T/script" --subs 3 --log-time
BOOTSTRAP=127.0.0.1:1 write_conf
start_daemon_stamped -n

# first_out KEY...: "<time> <key>" of the first record of each KEY printed
# so far, in the order of the arguments.
first_out() {
	stamped_keys | awk -v keys="$*" 'BEGIN { n = split(keys, k, " ") }
	    !($2 in t) { t[$2] = $1 }
	    END { for (i = 1; i <= n; i++) if (k[i] in t) print t[k[i]], k[i] }'
}
keys_out() { [ "$(first_out "$@" | wc -l)" -eq $# ]; }
# check_round NAME T0 BOUND1 KEY...: each KEY printed, in that order; the
# first within BOUND1 ms of T0 (the PBX's write), each other within
# BOUND_MS of T0 or of the one before it, whichever is later (the daemon
# handles one frame at a time). Sets WORST: the longest of these, in ms.
check_round() {
	local name=$1 t0=$2 b1=$3; shift 3
	wait_for 10 keys_out "$@" ||
	    fail "$name: after 10 s only $(first_out "$@" | wc -l) of $# frames printed"
	WORST=$(first_out "$@" |
	    awk -v t0="$t0" -v b1="$b1" -v b="$BOUND_MS" -v name="$name" '
		{ from = (NR > 1 && prev > t0) ? prev : t0
		  ms = ($1 - from) * 1000; if (NR == 1 || ms > w) w = ms
		  if (NR > 1 && $1 < prev) { print name ": " $2 " printed before the frame sent before it" > "/dev/stderr"; bad = 1 }
		  if (ms > (NR == 1 ? b1 : b)) { printf "%s: %s printed %.1f ms after the write or the frame before (bound %d ms)\n", name, $2, ms, NR == 1 ? b1 : b > "/dev/stderr"; bad = 1 }
		  prev = $1 }
		END { printf "%.1f\n", w; exit bad }') || fail "$name: a frame late or out of order"
}

sent_rounds() { [ "$(grep -c ' SENT ' "$T/pbxsim.events")" -ge "$1" ]; }
CDR_KEY=883611252155219968
for r in $(seq 1 $ROUNDS); do
	wait_for 20 sent_rounds "$r" || fail "round $r not sent"
	t_sent=$(grep ' SENT ' "$T/pbxsim.events" | sed -n "${r}p" | cut -d' ' -f1)
	check_round "round $r" "$t_sent" "$(bound_ms 673802)" "$CDR_KEY:9000$r" 6:910"$r"{1..7}
	ok "round $r: the 670 KB CDR and 7 small frames printed, each within $WORST ms (bounds $(bound_ms 673802) ms for the CDR, $BOUND_MS ms)"
done

# B: stopped while the PBX writes (within round 3's silence).
t_stop=$(date +%s.%N)
kill -STOP "$DAEMON_PID"
wait_for 20 grep -q ' END ' "$T/pbxsim.events" || { kill -CONT "$DAEMON_PID"; fail "round B not sent"; }
t_sent=$(grep ' SENT ' "$T/pbxsim.events" | sed -n "$((ROUNDS + 1))p" | cut -d' ' -f1)
awk -v a="$t_stop" -v b="$t_sent" 'BEGIN { exit !(a < b) }' ||
	{ kill -CONT "$DAEMON_PID"; fail "round B was sent before SIGSTOP: not the case under test"; }
sleep 0.3
t_cont=$(date +%s.%N)
kill -CONT "$DAEMON_PID"
check_round "stopped round" "$t_cont" "$(bound_ms 40000)" "6:9200000" 6:920{1..7}
ok "daemon stopped while the PBX wrote: 8 frames printed, each within $WORST ms of SIGCONT or the frame before (bound $BOUND_MS ms)"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
