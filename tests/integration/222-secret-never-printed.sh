#!/usr/bin/env bash
# The password never appears in what the daemon prints, logs, serves or
# publishes (contract §6), whatever happens: authenticated sessions with
# debug logging, a reload, --check-config, rejected logins, --dry-run with
# an inline password, a PBX whose refusal repeats the password it was sent,
# and crashes (SIGSEGV: the sanitizer build prints its report; SIGABRT).
# Afterwards every file of the test (logs, stdout, the
# crash reports, /metrics scrapes, every record on every Kafka topic, the
# spool) is searched for each password (the PBX's, and the Kafka one of
# kafka.sasl_password_file); only the password files and the
# configuration file that holds the inline one may contain them.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
GOOD=Gd9xQ7-never-PRINT-e4
WRONG=Wr5kP2-never-PRINT-b8
KSECRET=Kf3mZ8-never-PRINT-c1	# kafka.sasl_password_file (unused by the mock)
TOPICS="portsip.calls portsip.extensions portsip.queues portsip.cdr portsip.events portsip.deadletter"
start_kmock $TOPICS
cat >"$T/script" <<'S'
{"event_type":"call_start","session_id":"1","tenant_id":"7"}
{"event_type":"call_cdr","session_id":"1","tenant_id":"7","ended_reason":"x"}
{"no_event_type":true}
S
start_pbxsim --script "$T/script" --subs 3 --password "$GOOD"
write_conf
printf '%s\n' "$GOOD" >"$T/hq.secret"
printf '%s\n' "$KSECRET" >"$T/kafka.secret"
chmod 600 "$T/kafka.secret"
sed -i "s|dead_letter_topic = \"portsip.deadletter\";|dead_letter_topic = \"portsip.deadletter\"; sasl_password_file = \"$T/kafka.secret\";|" "$T/w2k.conf"
grep -q sasl_password_file "$T/w2k.conf" || fail "no sasl_password_file in the config"

# 1. Authenticated, debug logging, records on Kafka, /metrics, a reload,
#    --check-config, then SIGSEGV.
start_http_daemon -l debug
consume portsip.calls 1 >/dev/null || fail "no record on Kafka"
scrape; cp "$T/metrics.txt" "$T/metrics.1"
kill -HUP "$DAEMON_PID"
wait_for 20 grep -q 'reload: done' "$T/daemon.log" || fail "reload"
scrape; cp "$T/metrics.txt" "$T/metrics.2"
w2k -t -c "$T/w2k.conf" -l debug >"$T/check.out" 2>&1 || fail "check-config"
grep -q 'is valid' "$T/check.out" || fail "check-config summary"
kill -SEGV "$DAEMON_PID"
wait "$DAEMON_PID"; rc=$?; DAEMON_PID=
[ "$rc" -ne 0 ] || fail "SIGSEGV: exit status 0"
mv "$T/daemon.log" "$T/run1.log"; mv "$T/daemon.out" "$T/run1.out"
ok "authenticated run, reload, check-config, SIGSEGV (exit $rc)"

# 2. The wrong password: rejected logins with debug logging, then SIGABRT.
printf '%s\n' "$WRONG" >"$T/hq.secret"
start_daemon -l debug
rejected_twice() { [ "$(grep -c 'authentication rejected' "$T/daemon.log")" -ge 2 ]; }
wait_for 20 rejected_twice || fail "logins not rejected twice"
kill -ABRT "$DAEMON_PID"
wait "$DAEMON_PID"; rc=$?; DAEMON_PID=
[ "$rc" -ne 0 ] || fail "SIGABRT: exit status 0"
mv "$T/daemon.log" "$T/run2.log"; mv "$T/daemon.out" "$T/run2.out"
ok "rejected logins, SIGABRT (exit $rc)"

# 2b. A PBX that echoes the password in its refusal: the text is logged,
#     the password is not.
GOOD_PORT=$PBX_PORT
start_slowpbx auth-echo
PBX_PORT=$EVIL_PORT write_conf
printf '%s\n' "$WRONG" >"$T/hq.secret"
start_daemon -l debug
wait_for 20 rejected_twice || fail "echoing PBX: logins not rejected twice"
grep -q 'authentication rejected by .*(not shown: the reply repeats the password)' "$T/daemon.log" ||
	fail "the echoed refusal is not logged as expected: $(grep rejected "$T/daemon.log" | head -n 1)"
stop_daemon
mv "$T/daemon.log" "$T/run2b.log"; mv "$T/daemon.out" "$T/run2b.out"
PBX_PORT=$GOOD_PORT write_conf
ok "a refusal that repeats the password is logged without it"

# 3. Inline password: --check-config and --dry-run (records on stdout).
sed "s|password_file = \"$T/hq.secret\";|password = \"$GOOD\";|" "$T/w2k.conf" >"$T/inline.conf"
grep -q "password = \"$GOOD\"" "$T/inline.conf" || fail "inline.conf"
w2k -t -c "$T/inline.conf" -l debug >"$T/check-inline.out" 2>&1 || fail "check-config inline"
"${W2K_CMD[@]}" -n -c "$T/inline.conf" -l debug >"$T/dry.out" 2>"$T/dry.log" &
DAEMON_PID=$!	# (not `w2k ... &`: see start_daemon in lib.sh)
wait_for 20 grep -q '"schema":"wsi2kafka.event/1"' "$T/dry.out" || fail "dry run printed no record"
stop_daemon
ok "inline password: check-config and dry run"

# Everything the runs left, and everything published.
for t in $TOPICS; do
	timeout 20 kcat -C -q -b "$BOOTSTRAP" -t "$t" -o beginning -e \
	    -f '%t %k %h %s\n' >>"$T/kafka.records" 2>/dev/null
done
[ -s "$T/kafka.records" ] || fail "no records read back"
grep -q 'AddressSanitizer\|SEGV\|Segmentation' "$T/run1.log" ||
	echo "note - no crash report in run1.log (not a sanitizer build?)"
hits=$(grep -a -r -l -e "$GOOD" -e "$WRONG" -e "$KSECRET" "$T" |
    grep -v -e "^$T/hq.secret$" -e "^$T/inline.conf$" -e "^$T/script$" \
    -e "^$T/kafka.secret$")
[ -z "$hits" ] || fail "a password was printed: $(for f in $hits; do
	echo "$f:"; grep -a -n -e "$GOOD" -e "$WRONG" -e "$KSECRET" "$f" | head -n 3; done)"
ok "neither password in $(find "$T" -type f | wc -l) files: logs, stdout, crash reports, /metrics, Kafka records, spool"
