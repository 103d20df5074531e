# tests/lib/spool.sh — helpers for the spool tests (tests/integration/1NN-*),
# sourced after lib.sh. The flood events of pbxsim carry "seq": 0..N-1 and
# each a distinct id, so counting distinct ids on Kafka counts what arrived
# (duplicates after a crash are allowed and carry the same id).

SPOOL_TOPICS="portsip.calls portsip.extensions portsip.queues portsip.cdr portsip.events"

# all_values: every record value on the spool tests' topics, one per line.
all_values() {
	local t
	for t in $SPOOL_TOPICS; do
		timeout 30 kcat -C -q -b "$BOOTSTRAP" -t "$t" -o beginning -e \
		    -f '%s\n' 2>/dev/null
	done
}

# flood_ids: distinct ids of flood events (those with data.seq) on Kafka.
flood_ids() { all_values | jq -r 'select(.data.seq != null) | .id' | sort -u | wc -l; }

# flood_seqs: the distinct flood seqs on Kafka, sorted, one per line.
flood_seqs() { all_values | jq -r '.data.seq // empty' | sort -n -u; }

# dropped_so_far: the spool's drop count as last logged (0 before any).
dropped_so_far() {
	sed -n 's/.*; \([0-9]*\) dropped since start$/\1/p' "$T/daemon.log" |
	    tail -n1 | grep . || echo 0
}

# accounted N: each of N flood events is on Kafka or counted as dropped (for
# wait_for: once the brokers are back, librdkafka may take its reconnect
# backoff, up to 10 s, before it delivers anything).
accounted() { [ $(($(flood_seqs | wc -l) + $(dropped_so_far))) -ge "$1" ]; }

# wait_flood_ids N SECONDS: until N distinct flood ids are on Kafka.
wait_flood_ids() {
	local end=$((SECONDS + $2 * TIME_SCALE)) n
	while :; do
		n=$(flood_ids)
		[ "$n" -ge "$1" ] && return 0
		[ $SECONDS -lt $end ] || { echo "$n"; return 1; }
		sleep 2
	done
}

# spool_records: what `wsi2kafka -t` reports the spool holds (read-only).
spool_records() {
	w2k -t -c "$T/w2k.conf" 2>/dev/null |
	    sed -n 's/^  spool: \([0-9]*\) records\{0,1\} in .*/\1/p'
}

# spool_bytes: total size of the segment files.
spool_bytes() { cat "$T"/spool/*.seg 2>/dev/null | wc -c; }

# wait_spool_stable SECONDS: until the segment files stop growing for 1 s.
wait_spool_stable() {
	local end=$((SECONDS + $1 * TIME_SCALE)) a b
	a=$(spool_bytes)
	while :; do
		sleep 1
		b=$(spool_bytes)
		[ "$a" -eq "$b" ] && [ "$b" -gt 0 ] && return 0
		[ $SECONDS -lt $end ] || return 1
		a=$b
	done
}

# restart_daemon: start again, keeping the previous run's log as
# daemon.N.log (they are all shown by fail()).
RUNS=0
restart_daemon() {
	RUNS=$((RUNS + 1))
	[ -f "$T/daemon.log" ] && mv "$T/daemon.log" "$T/daemon.$RUNS.log"
	start_daemon "$@"
}

# kill_daemon: SIGKILL, as a crash or a power cut would stop it.
kill_daemon() {
	kill -KILL "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
}

# set_props PROPS: replace the test config's kafka.properties body.
set_props() {
	sed -i "s/properties = { linger_ms = \"5\"; };/properties = { $1 };/" \
	    "$T/w2k.conf"
}

# set_spool SETTINGS: add settings to the test config's spool group.
set_spool() {
	sed -i "s|^spool = { dir = \"$T/spool\"; };\$|spool = { dir = \"$T/spool\"; $1 };|" \
	    "$T/w2k.conf"
	grep -q "^spool = { dir = \"$T/spool\"; $1 };\$" "$T/w2k.conf" ||
	    fail "set_spool: no spool line in the config"
}
