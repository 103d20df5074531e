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
# Sanitizer builds: a leak at the daemon's clean exit fails its exit status
# (tests check it); UBSan stops at the first finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cleanup() {
	local p
	for p in "${PIDS[@]}" $DAEMON_PID; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}" $DAEMON_PID; do
		timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null
	done
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done >&2; exit 1; }
ok() { echo "ok - $*"; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local end=$((SECONDS + $1)); shift
	until "$@" 2>/dev/null; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}

# Certificates are made once per build directory.
certs() {
	CERTS=$(realpath -m "$B/certs")
	[ -f "$CERTS/server.pem" ] || bash tests/lib/mkcerts.sh "$CERTS" >/dev/null 2>&1 || fail "mkcerts"
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
start_daemon() {
	"$W2K" -c "$T/w2k.conf" "$@" >"$T/daemon.out" 2>"$T/daemon.log" &
	DAEMON_PID=$!
}

stop_daemon() {	# → sets DAEMON_RC
	kill -TERM "$DAEMON_PID" 2>/dev/null
	local i
	for i in $(seq 150); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
	wait "$DAEMON_PID"; DAEMON_RC=$?
	DAEMON_PID=
}

# consume TOPIC COUNT [FORMAT]: the first COUNT records of TOPIC, from the
# beginning, waiting up to 30 s for them.
consume() {
	timeout 30 kcat -C -q -b "$BOOTSTRAP" -t "$1" -o beginning -c "$2" \
	    -f "${3:-%k\t%s\n}" 2>"$T/kcat.err"
}

# count_topic TOPIC: records in TOPIC now (sum of high watermarks).
count_topic() {
	timeout 20 kcat -C -q -b "$BOOTSTRAP" -t "$1" -o beginning -e -f 'x\n' 2>/dev/null | wc -l
}

# pbx_events PATTERN: how many pbxsim event-log lines match.
pbx_events() { grep -c -- "$1" "$T/pbxsim.events" 2>/dev/null || true; }
