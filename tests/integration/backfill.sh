# tests/integration/backfill.sh — sourced (after lib.sh) by the 4xx CDR
# backfill tests (contract §10): pbxsim makes calls on a timer (their
# call_cdr live to whoever subscribes, their rows to its REST API), and
# cdr_check counts, per call the simulator made, what reached Kafka.

# Gap margins of 2 s instead of a minute, pages of 20 rows instead of 100
# (so that a few dozen calls take several pages): W2K_TESTING builds only.
export W2K_TEST_BACKFILL_MARGIN_S=${W2K_TEST_BACKFILL_MARGIN_S:-2}
export W2K_TEST_BACKFILL_TOP=${W2K_TEST_BACKFILL_TOP:-20}
BF_TOPICS="portsip.cdr portsip.calls portsip.extensions portsip.queues portsip.events"

# start_pbx_rest ARGS...: pbxsim with its REST API; sets REST_PORT.
start_pbx_rest() {
	start_pbxsim --rest-port-file "$T/rest.port" "$@"
	wait_for 20 test -s "$T/rest.port" || fail "pbxsim: no REST port"
	REST_PORT=$(cat "$T/rest.port")
}

# backfill_conf [MORE]: the pbx.backfill block for write_conf.
backfill_conf() {
	echo "backfill = { enabled = true; url = \"https://localhost:$REST_PORT/api\"; max_call_duration = \"2m\"; requests_per_second = ${RPS:-50}; $* };"
}

calls_made() { grep -c '^CALL ' "$T/pbxsim.events" 2>/dev/null || true; }
call_made() { [ "$(calls_made)" -ge "$1" ]; }
calls_done() { grep -q '^CALLS done' "$T/pbxsim.events"; }

# cdr_fetch: every record of portsip.cdr as "cdr_id source id" lines (the
# call by its cdr_id: rows of /api/cdrs have no session_id).
cdr_fetch() {
	timeout $((30 * TIME_SCALE)) kcat -C -q -b "$BOOTSTRAP" -t portsip.cdr \
	    -o beginning -e -f '%s\n' 2>"$T/kcat.err" |
	    jq -r '[.data.cdr_id, .source, .id] | @tsv' >"$T/cdr.tsv"
}
cdr_sessions() { cdr_fetch; cut -f1 "$T/cdr.tsv" | sort -u | wc -l; }
all_calls_on_kafka() { [ "$(cdr_sessions)" -ge "$(calls_made)" ]; }

# cdr_check LABEL: each call the simulator made is on Kafka exactly once
# (records with equal ids, a replay, count once: consumers drop them);
# calls made while nobody listened came from REST. Prints the counts.
cdr_check() {
	local made live rest dup eq missing extra notrest
	cdr_fetch
	sed -n 's/^CALL [0-9]* session=[0-9]* cdr=\([0-9]*\) live=\([0-9]*\).*/\1 \2/p' \
	    "$T/pbxsim.events" | sort >"$T/calls.txt"
	made=$(wc -l <"$T/calls.txt")
	live=$(awk -F'\t' '$2 == "wsi" { print $1 }' "$T/cdr.tsv" | sort -u | wc -l)
	rest=$(awk -F'\t' '$2 == "rest" { print $1 }' "$T/cdr.tsv" | sort -u | wc -l)
	# A call twice: more than one distinct record id for its session.
	dup=$(sort -u "$T/cdr.tsv" | cut -f1,3 | sort -u | cut -f1 | uniq -d | wc -l)
	eq=$(( $(wc -l <"$T/cdr.tsv") - $(cut -f1,3 "$T/cdr.tsv" | sort -u | wc -l) ))
	missing=$(comm -23 <(cut -d' ' -f1 "$T/calls.txt") <(cut -f1 "$T/cdr.tsv" | sort -u) | wc -l)
	extra=$(comm -13 <(cut -d' ' -f1 "$T/calls.txt") <(cut -f1 "$T/cdr.tsv" | sort -u) | wc -l)
	# Calls nobody was subscribed for can only have come from REST.
	notrest=$(comm -12 <(awk '$2 == 0 { print $1 }' "$T/calls.txt" | sort) \
	    <(awk -F'\t' '$2 == "wsi" { print $1 }' "$T/cdr.tsv" | sort -u) | wc -l)
	echo "# $1: CDRs made by the simulator $made, delivered live $live," \
	    "delivered by backfill $rest, duplicates $dup (equal-id repeats $eq)"
	CDR_MADE=$made CDR_LIVE=$live CDR_REST=$rest CDR_DUP=$dup
	[ "$missing" -eq 0 ] || fail "$1: $missing calls never reached Kafka"
	[ "$extra" -eq 0 ] || fail "$1: $extra sessions on Kafka the simulator never made"
	[ "$dup" -eq 0 ] || fail "$1: $dup calls published twice with different ids"
	[ "$notrest" -eq 0 ] || fail "$1: $notrest calls made while not subscribed came as live"
}

# gap_lines: how many gaps the daemon finished (one log line each).
gap_lines() { grep -c 'backfill: gap ' "$T/daemon.log" 2>/dev/null || true; }
gap_done() { [ "$(gap_lines)" -ge "${1:-1}" ]; }

# test_pages N: the simulator has answered N CDR list requests.
test_pages() { [ "$(grep -c '^LIST ' "$T/pbxsim.events")" -ge "$1" ]; }

# gap_read_then_check LABEL [GAP_WAIT]: the simulator done, a gap read (up
# to GAP_WAIT s, default 60), the records delivered; then cdr_check.
gap_read_then_check() {
	wait_for 60 calls_done || fail "the simulator did not finish its calls"
	wait_for "${2:-60}" gap_done 1 || fail "no gap read: $(grep backfill "$T/daemon.log" | tail -n 5)"
	wait_for 60 all_calls_on_kafka || true
	cdr_check "$1"
}

# gap_by_stop FIRST [UNTIL]: the daemon up until the simulator made FIRST
# calls, then stopped (a clean stop is a gap) until it made UNTIL calls (by
# default all of them), then started again.
gap_by_stop() {
	start_daemon
	wait_for 30 call_made "$1" || fail "calls did not start (made $(calls_made))"
	stop_daemon
	if [ -n "${2:-}" ]; then
		wait_for 30 call_made "$2" || fail "calls stopped at $(calls_made)"
	else
		wait_for 60 calls_done || fail "the simulator did not finish its calls"
	fi
	start_daemon
}

# free_port (http.listen): the shared one, below the ephemeral range where
# kmock, pbxsim and outgoing connections get their ports.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/ports.sh"
