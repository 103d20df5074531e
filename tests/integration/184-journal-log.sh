#!/usr/bin/env bash
# Log lines (contract §9, style.md §10): with JOURNAL_STREAM naming our
# stderr, every line starts with a "<N>" syslog priority and has no
# timestamp (journald adds its own); otherwise — no JOURNAL_STREAM, or one
# inherited from a parent and naming another stream — every line starts
# with a readable UTC timestamp and the level.
. "$(dirname "$0")/lib.sh"
start_pbxsim --script tests/integration/data/events.script --subs 3
# tls.verify = false logs a warning at every start: a "<4>" line.
TLS_CONF='verify = false;' BOOTSTRAP=127.0.0.1:1 write_conf

# run_once LOG ENV...: a dry run at level info until it has subscribed.
run_once() {
	local log=$1; shift
	: >"$log"
	env "$@" "${W2K_CMD[@]}" -n -l info -c "$T/w2k.conf" >"$T/daemon.out" 2>>"$log" &
	DAEMON_PID=$!
	wait_for 20 grep -q 'subscribed' "$log" || fail "no session: $(tail -n 5 "$log")"
	stop_daemon
	[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
}

# Under systemd, JOURNAL_STREAM is "dev:ino" of the stream on fd 2.
touch "$T/journal.log"
run_once "$T/journal.log" JOURNAL_STREAM="$(stat -c '%d:%i' "$T/journal.log")"
bad=$(grep -v '^<[0-7]>' "$T/journal.log" | head -n 3)
[ -z "$bad" ] || fail "lines without a <N> prefix: $bad"
grep -q '^<4>.*verify' "$T/journal.log" || fail "no <4> warning for tls.verify = false"
grep -q '^<6>.*started' "$T/journal.log" || fail "no <6> line for the start"
grep -q '^<6>.*subscribed' "$T/journal.log" || fail "no <6> line for the subscription"
grep -qE '^<[0-7]>[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$T/journal.log" &&
	fail "timestamps under journald: $(head -n 2 "$T/journal.log")"
grep -q '^<7>' "$T/journal.log" && fail "debug lines at level info"
ok "JOURNAL_STREAM = stderr: <N> prefixes (<4> warning, <6> info), no timestamps"

TS='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (error|warning|notice|info|debug): '
run_once "$T/plain.log" -u JOURNAL_STREAM
bad=$(grep -vE "$TS" "$T/plain.log" | head -n 3)
[ -z "$bad" ] || fail "lines without a timestamp: $bad"
grep -qE "${TS}.*verify" "$T/plain.log" || fail "no warning line: $(head -n 3 "$T/plain.log")"
grep -q '<[0-7]>' "$T/plain.log" && fail "<N> prefix without the journal"
ok "no JOURNAL_STREAM: timestamp and level on every line"

# A JOURNAL_STREAM inherited from a parent does not name our stderr.
run_once "$T/inherited.log" JOURNAL_STREAM=1:1
bad=$(grep -vE "$TS" "$T/inherited.log" | head -n 3)
[ -z "$bad" ] || fail "JOURNAL_STREAM of another stream changed the format: $bad"
ok "JOURNAL_STREAM naming another stream: timestamps"

# One line per event worth an operator's attention, at level info: the
# start, the connect, the login, the subscription, the stop — no chatter.
n=$(wc -l <"$T/plain.log")
[ "$n" -le 25 ] || fail "$n lines at level info for one start/stop: $(cat "$T/plain.log")"
ok "$n lines at level info for a start, one session and a stop"
