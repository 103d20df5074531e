#!/usr/bin/env bash
# password_file modes: a file others can read or write, or its group can
# write, is a configuration error naming the file, the line of the setting
# and the mode, with exit status 78, both for --check-config and at start;
# 0600, 0640, 0400 and 0440 pass. On reload (SIGHUP) a secret file that
# became group-writable is refused the same way and the running session
# stays up.
. "$(dirname "$0")/lib.sh"
certs
PBX_PORT=1 write_conf
expect_refused() {	# MODE WORDS
	chmod "$1" "$T/hq.secret"
	w2k -t -c "$T/w2k.conf" >"$T/check.out" 2>&1
	rc=$?
	[ "$rc" = 78 ] || fail "mode $1: --check-config exit $rc, not 78: $(cat "$T/check.out")"
	grep -Eq "w2k\.conf:[0-9]+: pbx\[0\]\.password_file: $T/hq\.secret is $2 \(mode $1\)" "$T/check.out" ||
		fail "mode $1: no 'file:line: ... $2 (mode $1)': $(cat "$T/check.out")"
	w2k -c "$T/w2k.conf" >"$T/start.out" 2>&1
	rc=$?
	[ "$rc" = 78 ] || fail "mode $1: start exit $rc, not 78: $(cat "$T/start.out")"
	grep -q "is $2 (mode $1)" "$T/start.out" || fail "mode $1: start did not say why"
}
expect_refused 0644 'readable by everyone'
expect_refused 0604 'readable by everyone'
expect_refused 0666 'readable by everyone'
expect_refused 0602 'writable by everyone'
expect_refused 0601 'accessible by others'
expect_refused 0660 'writable by its group'
expect_refused 0620 'writable by its group'
ok "world-readable, world-writable, other-accessible and group-writable password files refused (exit 78, file:line)"
for m in 0600 0640 0400 0440; do
	chmod "$m" "$T/hq.secret"
	w2k -t -c "$T/w2k.conf" >"$T/check.out" 2>&1 || fail "mode $m refused: $(cat "$T/check.out")"
done
ok "0600, 0640, 0400 and 0440 accepted"

# Reload: the running session stays when the file turns group-writable.
chmod 0600 "$T/hq.secret"
start_pbxsim
write_conf
start_daemon -n
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "not subscribed"
chmod 0660 "$T/hq.secret"
kill -HUP "$DAEMON_PID"
wait_for 20 grep -q 'reload: .* is not valid' "$T/daemon.log" || fail "reload not refused"
grep -Eq "config: $T/w2k\.conf:[0-9]+: pbx\[0\]\.password_file: .* writable by its group \(mode 0660\)" "$T/daemon.log" ||
	fail "reload: no file:line reason"
kill -0 "$DAEMON_PID" || fail "daemon died"
[ "$(pbx_events 'DISCONNECT')" -eq 0 ] || fail "the session was dropped"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit status $DAEMON_RC"
ok "reload with a group-writable password file refused, session kept"
