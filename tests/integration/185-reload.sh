#!/usr/bin/env bash
# SIGHUP reload (contract §9, the issue's reload list), against two PBX
# simulators streaming numbered events and a mock Kafka cluster:
#  - a good changed file (a route): RELOADING=1 then READY=1, the new route
#    takes the next records; the unchanged PBX keeps its session (no second
#    CONNECT/AUTH/SUBSCRIBE on the simulator);
#  - bad files (an unknown key; a missing password file beside a route
#    change): the error is logged with file:line / the file's name, READY=1
#    follows, the daemon runs on and the old configuration stays in force
#    (records still follow the old routes);
#  - a PBX added: its session connects, authenticates, subscribes, and its
#    records arrive; a PBX removed: its session closes (DISCONNECT on its
#    simulator), the other one is untouched;
#  - a Kafka property change: records keep flowing;
#  - at the end no record of the unchanged PBX is missing: its sequence
#    numbers on Kafka have no gap, across every reload.
. "$(dirname "$0")/lib.sh"
LISTEN=$B/tests/notify_listen
[ -x "$LISTEN" ] || fail "$LISTEN not built (make tests)"
TOPICS="portsip.calls portsip.extensions portsip.queues portsip.cdr portsip.events portsip.deadletter reload.extensions"
start_kmock $TOPICS
certs
printf 's3cret-Pa55\n' >"$T/hq.secret"
chmod 600 "$T/hq.secret"

# hq: the PBX that stays; a steady flood of numbered events all along.
start_pbxsim --flood 1000000 --rate 100 --subs 3
HQ_PORT=$PBX_PORT
HQ_EVENTS=$T/pbxsim.events

# branch: the PBX that is added, then removed.
"$PBXSIM" --cert "$CERTS/server.pem" --key "$CERTS/server.key" \
    --port-file "$T/branch.port" --log "$T/branch.events" \
    --user admin --password "s3cret-Pa55" --domain test.io \
    --flood 1000000 --rate 20 --subs 3 >"$T/branch.log" 2>&1 &
PIDS+=($!)
wait_for 20 test -s "$T/branch.port" || fail "second pbxsim did not start"
BRANCH_PORT=$(cat "$T/branch.port")

# pbx NAME PORT [PASSWORD_FILE]: one entry of the pbx list.
pbx() {
	cat <<PBX
  {
    name = "$1";
    url = "wss://localhost:$2/wsi";
    username = "admin";
    password_file = "${3:-$T/hq.secret}";
    domain = "test.io";
    tls = { ca_file = "$CERTS/ca.pem"; };
    subscriptions = (
      { topics = [ "extension_events" ]; extensions = [ "101", "102" ]; },
      { topics = [ "cdr_events" ]; },
      { topics = [ "queue_events" ]; queues = [ "8001" ]; }
    );
    ping_interval = 5;
    idle_timeout = 15;
    backoff = { initial = 0.2; max = 1.0; };
  }
PBX
}
ROUTES_NEW='routes = (
    { match = "call_cdr";                     topic = "portsip.cdr"; },
    { match = "call_*|target_*|cdr_target_*"; topic = "portsip.calls"; },
    { match = "extension_*";                  topic = "reload.extensions"; },
    { match = "queue_*";                      topic = "portsip.queues"; },
    { match = "*";                            topic = "portsip.events"; }
  );'
# conf PBX_LIST ROUTES LINGER_MS: the whole file, replaced atomically.
conf() {
	cat >"$T/next.conf" <<CONF
pbx = (
$1
);
kafka = {
  brokers = "$BOOTSTRAP";
  properties = { linger_ms = "$3"; };
  $2
  dead_letter_topic = "portsip.deadletter";
};
spool = { dir = "$T/spool"; };
log = { level = "debug"; };
CONF
	mv "$T/next.conf" "$T/w2k.conf"
}

count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }
N=$T/notify.msgs
# hq_untouched: still the first and only session on the hq simulator.
hq_untouched() {
	[ "$(count "$HQ_EVENTS" '^CONNECT ')" -eq 1 ] &&
	[ "$(count "$HQ_EVENTS" '^AUTH .* ok')" -eq 1 ] &&
	[ "$(count "$HQ_EVENTS" '^SUBSCRIBE ')" -eq 3 ] &&
	[ "$(count "$HQ_EVENTS" '^DISCONNECT ')" -eq 0 ]
}
hq_state() {
	echo "CONNECT $(count "$HQ_EVENTS" '^CONNECT '), AUTH ok $(count "$HQ_EVENTS" '^AUTH .* ok')," \
	    "SUBSCRIBE $(count "$HQ_EVENTS" '^SUBSCRIBE '), DISCONNECT $(count "$HQ_EVENTS" '^DISCONNECT ')"
}
alive() { kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon exited"; }
# reload WHAT: SIGHUP, then RELOADING=1 and after it READY=1.
reload() {
	local r0 y0 lr ly
	r0=$(count "$N" 'RELOADING=1') y0=$(count "$N" 'READY=1')
	kill -HUP "$DAEMON_PID"
	wait_for 20 at_least "$N" 'RELOADING=1' $((r0 + 1)) ||
		fail "$1: no RELOADING=1 after SIGHUP: $(tail -n 3 "$N")"
	wait_for 20 at_least "$N" 'READY=1' $((y0 + 1)) ||
		fail "$1: no READY=1 after RELOADING=1: $(tail -n 3 "$N")"
	lr=$(grep -n 'RELOADING=1' "$N" | tail -n 1 | cut -d: -f1)
	ly=$(grep -n 'READY=1' "$N" | tail -n 1 | cut -d: -f1)
	[ "$ly" -gt "$lr" ] || fail "$1: READY=1 came before RELOADING=1"
	alive
}
more_than() { [ "$(count_topic "$1")" -gt "$2" ]; }
pbx_records() {	# NAME: records of that PBX on the topics it floods
	for t in portsip.calls reload.extensions portsip.queues; do
		timeout 20 kcat -C -q -b "$BOOTSTRAP" -t $t -o beginning -e -f '%s\n' 2>/dev/null
	done | jq -r --arg p "$1" 'select(.pbx == $p) | .id' | wc -l
}
pbx_records_above() { [ "$(pbx_records "$1")" -gt "$2" ]; }

# ---- start: hq only, the default routes --------------------------------
conf "$(pbx hq "$HQ_PORT")" "" 5
"$LISTEN" "$T/notify.sock" 280 >"$N" 2>"$T/listen.err" &
PIDS+=($!)
wait_for 10 test -S "$T/notify.sock" || fail "notify_listen: $(cat "$T/listen.err")"
NOTIFY_SOCKET=$T/notify.sock start_daemon
wait_for 20 at_least "$N" 'READY=1' 1 || fail "no READY=1 at startup"
wait_for 20 at_least "$HQ_EVENTS" '^SUBSCRIBE ' 3 || fail "hq did not subscribe: $(hq_state)"
wait_for 30 more_than portsip.extensions 0 || fail "no extension records before the reload"
ok "started: hq subscribed, extension records on portsip.extensions"

# ---- a good file: extension_* now goes to reload.extensions -------------
conf "$(pbx hq "$HQ_PORT")" "$ROUTES_NEW" 5
reload "route change"
wait_for 20 more_than reload.extensions 0 ||
	fail "the new route took no record: $(grep -i reload "$T/daemon.log" | tail -n 3)"
hq_untouched || fail "hq session disturbed by the reload: $(hq_state)"
ok "route change: RELOADING=1 then READY=1, new records follow the new route, hq session kept"

sleep 1.5	# what was routed before the reload has landed by now
E1=$(count_topic portsip.extensions)
X1=$(count_topic reload.extensions)

# ---- bad files: refused, the running configuration stays ---------------
conf "$(pbx hq "$HQ_PORT" | sed 's/^\(    ping_interval = 5;\)$/\1 colour = "blue";/')" "$ROUTES_NEW" 5
line=$(grep -n 'colour' "$T/w2k.conf" | cut -d: -f1)
[ -n "$line" ] || fail "test bug: no colour line"
reload "unknown key"
wait_for 10 grep -q "w2k.conf:$line:.*colour" "$T/daemon.log" ||
	fail "no file:line error for the unknown key (line $line): $(tail -n 5 "$T/daemon.log")"
ok "bad file (unknown key): 'w2k.conf:$line: … colour' logged, READY=1, still running"

# Valid syntax, default routes again, but a password file that is missing:
# complete validation must refuse it before anything of it applies.
conf "$(pbx hq "$HQ_PORT" "$T/missing.secret")" "" 5
reload "missing password file"
wait_for 10 grep -q 'missing.secret' "$T/daemon.log" ||
	fail "no error naming the missing password file: $(tail -n 5 "$T/daemon.log")"
ok "bad file (missing password file): refused with the file named, READY=1, still running"

wait_for 20 more_than reload.extensions $((X1 + 5)) ||
	fail "records stopped flowing after the bad files ($X1 → $(count_topic reload.extensions))"
sleep 1
[ "$(count_topic portsip.extensions)" -eq "$E1" ] ||
	fail "the refused file's routes were applied: portsip.extensions $E1 → $(count_topic portsip.extensions)"
hq_untouched || fail "hq session disturbed by a refused file: $(hq_state)"
ok "after the refused files: the old routes still in force, records flowing, hq session kept"

# ---- a PBX added -------------------------------------------------------
conf "$(pbx hq "$HQ_PORT"),
$(pbx branch "$BRANCH_PORT")" "$ROUTES_NEW" 5
reload "PBX added"
wait_for 20 at_least "$T/branch.events" '^AUTH .* ok' 1 ||
	fail "the added PBX did not authenticate: $(tail -n 5 "$T/branch.events" 2>&1)"
wait_for 20 at_least "$T/branch.events" '^SUBSCRIBE ' 3 || fail "the added PBX did not subscribe"
wait_for 30 pbx_records_above branch 0 || fail "no record of the added PBX on Kafka"
hq_untouched || fail "hq session disturbed by adding a PBX: $(hq_state)"
ok "PBX added: connected, authenticated, subscribed, records on Kafka; hq session kept"

# ---- the PBX removed ---------------------------------------------------
conf "$(pbx hq "$HQ_PORT")" "$ROUTES_NEW" 5
reload "PBX removed"
wait_for 15 at_least "$T/branch.events" '^DISCONNECT ' 1 ||
	fail "the removed PBX's session did not close: $(tail -n 3 "$T/branch.events")"
sleep 2
[ "$(count "$T/branch.events" '^CONNECT ')" -eq 1 ] ||
	fail "the removed PBX reconnected: $(count "$T/branch.events" '^CONNECT ') CONNECTs"
hq_untouched || fail "hq session disturbed by removing a PBX: $(hq_state)"
ok "PBX removed: its session closed and stays closed; hq session kept"

# ---- a Kafka change ----------------------------------------------------
X2=$(count_topic reload.extensions)
conf "$(pbx hq "$HQ_PORT")" "$ROUTES_NEW" 50
reload "Kafka property change"
wait_for 20 more_than reload.extensions $((X2 + 5)) ||
	fail "records stopped after the Kafka change ($X2 → $(count_topic reload.extensions))"
hq_untouched || fail "hq session disturbed by a Kafka change: $(hq_state)"
ok "Kafka property change: applied, records keep flowing, hq session kept"

# ---- nothing lost ------------------------------------------------------
sleep 1
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
got=$(sed -n 's/.*pbx hq: .* \([0-9]*\) events.*/\1/p' "$T/daemon.log" | tail -n 1)
for t in $TOPICS; do
	timeout 30 kcat -C -q -b "$BOOTSTRAP" -t $t -o beginning -e -f '%s\n' 2>/dev/null
done | jq -r 'select(.pbx == "hq") | .data.seq // empty' | sort -n -u >"$T/seqs"
n=$(wc -l <"$T/seqs")
max=$(tail -n 1 "$T/seqs")
[ "$n" -gt 0 ] && [ "$max" -eq $((n - 1)) ] ||
	fail "hq sequence numbers have gaps: $n distinct, highest ${max:-none}"
[ -n "$got" ] && [ "$n" -ge $((got - 3)) ] ||
	fail "$n of ${got:-?} hq events on Kafka"
ok "no record lost across the reloads: hq events 0..$max all on Kafka ($got received)"
