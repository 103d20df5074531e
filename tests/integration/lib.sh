# tests/integration/lib.sh — shared by the integration tests (sourced).
#
# Every test gets its own temporary directory, real peers on loopback
# (pbxsim: a TLS WebSocket PBX simulator; kmock: librdkafka's mock Kafka
# cluster), free ports picked by the kernel, bounded waits and a cleanup
# trap that stops everything it started.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
B=${B:-build}
W2K=$B/wsi2kafka
PBXSIM=$B/tests/pbxsim
KMOCK=$B/tests/kmock
T=$(mktemp -d "${TMPDIR:-/tmp}/w2k-test.XXXXXX")
PIDS=()
DAEMON_PID=
# W2K_WRAP: a command every run of the daemon goes through (w2k, W2K_CMD,
# start_daemon), e.g. "valgrind --leak-check=full" (make check-valgrind).
# Under valgrind each run logs to $T/valgrind.PID.log, and cleanup judges
# every log (valgrind_verdict).
read -r -a W2K_CMD <<<"${W2K_WRAP:-}"
UNDER_VALGRIND=0
if [ ${#W2K_CMD[@]} -gt 0 ] && [ "${W2K_CMD[0]##*/}" = valgrind ]; then
	UNDER_VALGRIND=1
	W2K_CMD+=("--log-file=$T/valgrind.%p.log")
fi
W2K_CMD+=("$W2K")
w2k() { "${W2K_CMD[@]}" "$@"; }	# in the foreground only; see start_daemon
# TIME_SCALE multiplies every bounded wait (wait_for, consume, cleanup):
# the daemon runs many times slower under valgrind (librdkafka's tmout_multip).
TIME_SCALE=${W2K_TIME_SCALE:-$((UNDER_VALGRIND ? 4 : 1))}
# Sanitizer builds: a leak at the daemon's clean exit fails its exit status
# (tests check it); UBSan stops at the first finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cleanup() {
	local p verdict=0
	for p in "${PIDS[@]}" $DAEMON_PID; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}" $DAEMON_PID; do
		timeout $((5 * TIME_SCALE)) tail --pid="$p" -f /dev/null 2>/dev/null ||
			{ echo "note - pid $p ignored SIGTERM: killed"; kill -KILL "$p" 2>/dev/null; }
	done
	[ "$UNDER_VALGRIND" = 0 ] || valgrind_verdict || verdict=1
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
	[ "$verdict" = 0 ] || exit 1
}
trap cleanup EXIT

# valgrind_verdict: judge every valgrind log of this test (see W2K_WRAP);
# the logs of bad runs are kept in $B/test-logs/. A run that exited must
# say "ERROR SUMMARY: 0 errors" (leaks included). A run that died of a
# signal (a test's SIGSEGV or SIGABRT, or SIGKILL, which leaves no summary)
# is judged on the errors reported before it died: its leaks mean nothing.
valgrind_verdict() {
	local f bad=0 n=0 keep errs why
	for f in "$T"/valgrind.*.log; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		if ! grep -q 'Process terminating with default action' "$f" &&
		    grep -q 'ERROR SUMMARY: ' "$f"; then
			grep -q 'ERROR SUMMARY: 0 errors' "$f" && continue
			why=$(grep -m1 -o 'ERROR SUMMARY: .*' "$f")
		else
			# Error reports before the death: blocks with a stack,
			# but the death's own block and the leak summary.
			errs=$(awk '/== (HEAP|LEAK) SUMMARY:/ { exit }
			    /^==[0-9]+== *$/ { blk = ""; next }
			    blk == "" { blk = $0 }
			    /^==[0-9]+==    (at|by) 0x/ && blk !~ /Process terminating|Warning:/ &&
			        !seen[blk]++ { e++ }
			    END { print e + 0 }' "$f")
			if [ "$errs" -eq 0 ]; then
				echo "note - ${f##*/}: $(grep -m1 -o 'default action of signal [0-9]* ([A-Z]*)' "$f" ||
				    echo 'killed (SIGKILL)'): no error before that; leaks not judged"
				continue
			fi
			why="$errs errors before it died"
		fi
		bad=$((bad + 1))
		keep=$B/test-logs/$(basename "$0" .sh).${f##*/}
		mkdir -p "${keep%/*}" && cp "$f" "$keep"
		# The first finding, then the verdict (tests/run shows the tail).
		sed '1,/^==[0-9]*== Parent PID/d; /^==[0-9]*== *$/d' "$f" |
		    head -n 30 | sed 's/^/    /'
		echo "FAIL: valgrind: $why (log: $keep)"
	done
	[ "$bad" -eq 0 ] && echo "ok - valgrind: $n runs of the daemon, no error"
	[ "$bad" -eq 0 ]
}

# not_under_valgrind REASON: in a valgrind pass, end this test here (a pass):
# for tests that run no daemon through W2K_WRAP, only at a cost.
not_under_valgrind() {
	[ "$UNDER_VALGRIND" = 1 ] || return 0
	echo "skip - not under valgrind: $*"
	exit 0
}

fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done >&2; exit 1; }
ok() { echo "ok - $*"; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local end=$((SECONDS + $1 * TIME_SCALE)); shift
	until "$@" 2>/dev/null; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}

# Certificates are made once per build directory: by the first test that
# needs them, under a lock (tests run in parallel), in a scratch directory
# renamed into place, so a test sees all of them or none.
certs() {
	CERTS=$(realpath -m "$B/certs")
	[ -f "$CERTS/server.pem" ] && return 0
	mkdir -p "${CERTS%/*}"
	{
		flock -w 120 8 || fail "certs: $CERTS.lock held for 120 s"
		if [ ! -f "$CERTS/server.pem" ]; then
			rm -rf "$CERTS" "$CERTS.new"
			bash tests/lib/mkcerts.sh "$CERTS.new" >/dev/null 2>&1 || fail "mkcerts"
			mv "$CERTS.new" "$CERTS"
		fi
	} 8>"$CERTS.lock"
}

# start_kmock TOPIC...: mock cluster with those topics; sets BOOTSTRAP.
start_kmock() {
	local topics
	topics=$(IFS=,; echo "$*")
	mkfifo "$T/kmock.ctl"
	"$KMOCK" --brokers 3 --partitions 4 --topics "$topics" \
	    --bootstrap-file "$T/bootstrap" --control "$T/kmock.ctl" \
	    >"$T/kmock.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 test -s "$T/bootstrap" || fail "kmock did not start"
	BOOTSTRAP=$(cat "$T/bootstrap")
	exec 9<>"$T/kmock.ctl"
}

# kmock_cmd COMMAND: send it and wait until kmock says it took effect.
kmock_answers() { grep -c -e '^OK' -e '^ERR' "$T/kmock.log"; }
kmock_cmd() {
	local before
	before=$(kmock_answers)
	echo "$*" >&9
	wait_for 10 test_more_answers "$before" || fail "kmock did not answer '$*'"
	tail -n 1 "$T/kmock.log" | grep -q '^OK' || fail "kmock: $(tail -n 1 "$T/kmock.log")"
}
test_more_answers() { [ "$(kmock_answers)" -gt "$1" ]; }

# start_pbxsim ARGS...: the simulator with the test CA's server cert unless
# ARGS choose another; sets PBX_PORT.
start_pbxsim() {
	certs
	rm -f "$T/pbx.port"
	"$PBXSIM" --cert "$CERTS/server.pem" --key "$CERTS/server.key" \
	    --port-file "$T/pbx.port" --log "$T/pbxsim.events" \
	    --user admin --password "s3cret-Pa55" --domain test.io "$@" \
	    >"$T/pbxsim.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 test -s "$T/pbx.port" || fail "pbxsim did not start"
	PBX_PORT=$(cat "$T/pbx.port")
}

# write_conf [EXTRA_PBX_SETTINGS [EXTRA_TOP_LEVEL]]: a config for one PBX.
write_conf() {
	local url=${URL_CONF-} tls=${TLS_CONF-}
	# (quotes inside ${X:-...} in a here-document would be removed)
	[ -n "$url" ] || url="url = \"wss://localhost:$PBX_PORT/wsi\";"
	[ -n "$tls" ] || tls="ca_file = \"$CERTS/ca.pem\";"
	printf 's3cret-Pa55\n' >"$T/hq.secret"
	chmod 600 "$T/hq.secret"
	cat >"$T/w2k.conf" <<CONF
pbx = (
  {
    name = "hq";
    $url
    username = "admin";
    password_file = "$T/hq.secret";
    domain = "test.io";
    tls = { $tls };
    subscriptions = (
      { topics = [ "extension_events" ]; extensions = [ "101", "102" ]; },
      { topics = [ "cdr_events" ]; },
      { topics = [ "queue_events" ]; queues = [ "8001" ]; }
    );
    ping_interval = ${PING_INTERVAL:-5};
    idle_timeout = ${IDLE_TIMEOUT:-15};
    backoff = { initial = 0.2; max = ${BACKOFF_MAX:-1.0}; };
    ${1:-}
  }
);
kafka = {
  brokers = "${BOOTSTRAP:-127.0.0.1:1}";
  properties = { linger_ms = "5"; };
  dead_letter_topic = "portsip.deadletter";
};
spool = { dir = "$T/spool"; };
log = { level = "debug"; };
${2:-}
CONF
}

# start_daemon ARGS...: wsi2kafka with the test config, log in daemon.log.
# Through W2K_WRAP, and DAEMON_PID is the daemon's own pid all the same:
# valgrind runs it inside its own process. (Never `w2k ... &`: a function
# in the background is a subshell, and $! would be the subshell's pid.)
start_daemon() {
	# Emptied here, not only by the background job's redirection: a wait
	# right after this must not read the previous run's lines (a race
	# that made 160-http-limits see "http: listening" too early).
	: >"$T/daemon.log"
	: >"$T/daemon.out"
	"${W2K_CMD[@]}" -c "$T/w2k.conf" "$@" >"$T/daemon.out" 2>"$T/daemon.log" &
	DAEMON_PID=$!
}

stop_daemon() {	# → sets DAEMON_RC
	kill -TERM "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID"; DAEMON_RC=$?
	DAEMON_PID=
}

# consume TOPIC COUNT [FORMAT]: the first COUNT records of TOPIC, from the
# beginning, waiting up to 30 s for them.
consume() {
	timeout $((30 * TIME_SCALE)) kcat -C -q -b "$BOOTSTRAP" -t "$1" -o beginning -c "$2" \
	    -f "${3:-%k\t%s\n}" 2>"$T/kcat.err"
}

# count_topic TOPIC: records in TOPIC now (sum of high watermarks).
count_topic() {
	timeout 20 kcat -C -q -b "$BOOTSTRAP" -t "$1" -o beginning -e -f 'x\n' 2>/dev/null | wc -l
}

# pbx_events PATTERN: how many pbxsim event-log lines match.
pbx_events() { grep -c -- "$1" "$T/pbxsim.events" 2>/dev/null || true; }
