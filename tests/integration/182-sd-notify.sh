#!/usr/bin/env bash
# sd_notify on a NOTIFY_SOCKET the test owns (contract §9): READY=1 after
# startup, STATUS= naming the PBX sessions, Kafka and the spool depth,
# WATCHDOG=1 every WATCHDOG_USEC/2 from the daemon's own pid when
# WATCHDOG_PID is its pid (none when it is another's), STOPPING=1 on SIGTERM
# and no ping after it.
. "$(dirname "$0")/lib.sh"
LISTEN=$B/tests/notify_listen
[ -x "$LISTEN" ] || fail "$LISTEN not built (make tests)"

# start_listener NAME: a datagram socket $T/NAME.sock, messages in $T/NAME.msgs
start_listener() {
	"$LISTEN" "$T/$1.sock" 120 >"$T/$1.msgs" 2>"$T/$1.err" &
	PIDS+=($!)
	wait_for 10 test -S "$T/$1.sock" || fail "notify_listen did not start: $(cat "$T/$1.err")"
}
count() { grep -c -- "$2" "$T/$1.msgs" 2>/dev/null || true; }
at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }

start_kmock portsip.calls portsip.extensions portsip.queues portsip.cdr \
    portsip.events portsip.deadletter
start_pbxsim --script tests/integration/data/events.script --subs 3
write_conf
start_listener notify

# WATCHDOG_PID must be the daemon's own pid: exec keeps the shell's.
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=1000000 \
    bash -c 'export WATCHDOG_PID=$$; exec "$@"' sh \
    "${W2K_CMD[@]}" -c "$T/w2k.conf" >"$T/daemon.out" 2>"$T/daemon.log" &
DAEMON_PID=$!

wait_for 20 at_least notify 'READY=1' 1 || fail "no READY=1: $(cat "$T/notify.msgs")"
grep -m1 'READY=1' "$T/notify.msgs" | grep -q "^pid=$DAEMON_PID	" ||
	fail "READY=1 not from the main pid $DAEMON_PID: $(grep -m1 READY=1 "$T/notify.msgs")"
grep -m1 'READY=1' "$T/notify.msgs" | grep -q '	STATUS=' ||
	fail "READY=1 without a STATUS=: $(grep -m1 READY=1 "$T/notify.msgs")"
ok "READY=1 (with STATUS=) from the main pid after startup"

# STATUS= kept current: refreshed until it shows the subscribed session and
# a reachable Kafka.
current() { grep 'STATUS=' "$T/notify.msgs" | tail -n 1 | grep -q "$1"; }
wait_for 20 current 'PBX 1/1 subscribed' ||
	fail "STATUS= never showed the session: $(grep STATUS= "$T/notify.msgs" | tail -n 3)"
wait_for 20 current 'Kafka up' ||
	fail "STATUS= never showed Kafka up: $(grep STATUS= "$T/notify.msgs" | tail -n 3)"
current 'spool [0-9]* records' ||
	fail "STATUS= does not show the spool depth: $(grep STATUS= "$T/notify.msgs" | tail -n 1)"
[ "$(count notify 'STATUS=')" -ge 2 ] || fail "STATUS= sent once only"
ok "STATUS= refreshed: $(grep STATUS= "$T/notify.msgs" | tail -n 1 | sed 's/.*STATUS=//')"

# WATCHDOG_USEC=1 s: a ping every 0.5 s, all from the main pid.
n0=$(count notify 'WATCHDOG=1')
sleep 3
n1=$(count notify 'WATCHDOG=1')
[ $((n1 - n0)) -ge 4 ] && [ $((n1 - n0)) -le 8 ] ||
	fail "$((n1 - n0)) WATCHDOG=1 in 3 s with WATCHDOG_USEC=1000000 (want about 6)"
grep 'WATCHDOG=1' "$T/notify.msgs" | grep -qv "^pid=$DAEMON_PID	" &&
	fail "a WATCHDOG=1 from another pid"
grep -q 'watchdog' "$T/daemon.log" || fail "the watchdog interval was not logged"
ok "WATCHDOG=1 every 0.5 s ($((n1 - n0)) in 3 s) from the main pid"

stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
at_least notify 'STOPPING=1' 1 || fail "no STOPPING=1: $(tail -n 3 "$T/notify.msgs")"
after=$(sed -n '/STOPPING=1/,$p' "$T/notify.msgs" | grep -c 'WATCHDOG=1')
[ "$after" -eq 0 ] || fail "$after WATCHDOG=1 after STOPPING=1"
ok "SIGTERM: STOPPING=1, no watchdog ping after it, exit 0"

# WATCHDOG_PID naming another process: the pings are not for us.
start_listener other
NOTIFY_SOCKET=$T/other.sock WATCHDOG_USEC=1000000 WATCHDOG_PID=1 \
    "${W2K_CMD[@]}" -c "$T/w2k.conf" >"$T/daemon.out" 2>"$T/daemon.log" &
DAEMON_PID=$!
wait_for 20 at_least other 'READY=1' 1 || fail "no READY=1 (second run)"
sleep 2
[ "$(count other 'WATCHDOG=1')" -eq 0 ] || fail "pinged although WATCHDOG_PID is not ours"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC (second run)"
ok "WATCHDOG_PID of another process: no pings"

# Outside systemd (no NOTIFY_SOCKET) nothing breaks.
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session without NOTIFY_SOCKET"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC without NOTIFY_SOCKET"
ok "without NOTIFY_SOCKET: runs and stops as usual"
