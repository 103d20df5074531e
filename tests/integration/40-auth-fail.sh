#!/usr/bin/env bash
# A wrong password: logged with the server's text, retried at backoff.max
# (no tight loop), and the password never printed.
. "$(dirname "$0")/lib.sh"
start_pbxsim
write_conf
printf 'wrong-Pa55word\n' >"$T/hq.secret"
BOOTSTRAP=127.0.0.1:1
start_daemon
wait_for 20 grep -q 'authentication rejected' "$T/daemon.log" || fail "rejection not logged"
grep 'authentication rejected' "$T/daemon.log" | grep -q 'password error' ||
	fail "server's text missing: $(grep rejected "$T/daemon.log")"
sleep 4
n=$(pbx_events 'AUTH .* fail')
# backoff.max = 1 s: about 5 attempts in ~5 s; a tight loop would be hundreds.
[ "$n" -ge 2 ] && [ "$n" -le 8 ] || fail "$n auth attempts in ~5 s"
kill -0 "$DAEMON_PID" || fail "daemon died"
stop_daemon
grep -r -l -e 'wrong-Pa55word' -e 's3cret-Pa55' "$T"/daemon.log "$T"/daemon.out &&
	fail "password printed"
ok "$n attempts in ~5 s, server text logged, password never printed"
