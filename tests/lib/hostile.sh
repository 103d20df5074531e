# tests/lib/hostile.sh — helpers of the TLS, hostile-PBX and secrets tests
# (200-229), sourced after tests/integration/lib.sh and tests/lib/metrics.sh.
#
# One daemon, two PBXs: "good", a pbxsim streaming numbered events at a
# steady rate into the mock Kafka cluster, and "evil", a hostile peer
# (tests/slowpbx/slowpbx.c, or pbxsim with hostile options). attack_check
# then watches the attack for a while and asserts what must hold whatever
# the evil PBX does: the good session stays up and keeps delivering, the
# event loop answers /healthz, the evil session is given up on within its
# bound and retried with backoff, and memory does not grow.
SLOWPBX=$B/tests/slowpbx
[ -x "$SLOWPBX" ] || fail "$SLOWPBX not built (make tests)"
HOSTILE_TOPICS="portsip.calls portsip.extensions portsip.queues portsip.cdr portsip.events portsip.deadletter"
# The evil PBX's bounds, short so that a test sees several rounds.
EVIL_CONNECT_TIMEOUT=3
EVIL_AUTH_TIMEOUT=3
EVIL_PING_INTERVAL=2
EVIL_IDLE_TIMEOUT=4

# start_good: kmock and the good pbxsim (50 events/s); sets GOOD_PORT.
start_good() {
	start_kmock $HOSTILE_TOPICS
	start_pbxsim --flood 1000000 --rate 50 --subs 3
	GOOD_PORT=$PBX_PORT
}

# start_slowpbx MODE [ARGS...]: the hostile peer; its happenings go to
# $T/slow.events. Sets EVIL_PORT.
start_slowpbx() {
	local mode=$1; shift
	certs
	"$SLOWPBX" --mode "$mode" --port-file "$T/slow.port" \
	    --log "$T/slow.events" --cert "$CERTS/server.pem" \
	    --key "$CERTS/server.key" "$@" >"$T/slowpbx.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 test -s "$T/slow.port" || fail "slowpbx did not start"
	EVIL_PORT=$(cat "$T/slow.port")
}

# start_sim NAME [ARGS...]: one more pbxsim (the test CA's server
# certificate unless ARGS choose another), its happenings in
# $T/NAME.events. Sets SIM_PORT.
start_sim() {
	local name=$1; shift
	certs
	"$PBXSIM" --cert "$CERTS/server.pem" --key "$CERTS/server.key" \
	    --port-file "$T/$name.port" --log "$T/$name.events" \
	    --user admin --password "s3cret-Pa55" --domain test.io --subs 3 \
	    "$@" >"$T/$name.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 test -s "$T/$name.port" || fail "pbxsim $name did not start"
	SIM_PORT=$(cat "$T/$name.port")
}

# pbx_block NAME PORT [EXTRA_SETTINGS [TLS_SETTINGS]]: one entry of the pbx
# list, with pbxsim's password; TLS_SETTINGS replace the test CA as ca_file.
pbx_block() {
	local tls=${4-}
	[ -n "$tls" ] || tls="ca_file = \"$CERTS/ca.pem\";"
	cat <<PBX
  {
    name = "$1";
    url = "wss://localhost:$2/wsi";
    username = "admin";
    password_file = "$T/hq.secret";
    domain = "test.io";
    tls = { $tls };
    subscriptions = (
      { topics = [ "extension_events" ]; extensions = [ "101", "102" ]; },
      { topics = [ "cdr_events" ]; },
      { topics = [ "queue_events" ]; queues = [ "8001" ]; }
    );
    backoff = { initial = 0.2; max = 1.0; };
    ${3:-}
  }
PBX
}

# pbx_conf ENTRIES: $T/w2k.conf with these pbx entries (pbx_block output,
# joined with commas), Kafka on $BOOTSTRAP, the spool in $T.
pbx_conf() {
	printf 's3cret-Pa55\n' >"$T/hq.secret"
	chmod 600 "$T/hq.secret"
	cat >"$T/w2k.conf" <<CONF
pbx = (
$1
);
kafka = {
  brokers = "${BOOTSTRAP:-127.0.0.1:1}";
  properties = { linger_ms = "5"; };
  dead_letter_topic = "portsip.deadletter";
};
spool = { dir = "$T/spool"; };
log = { level = "info"; };
CONF
}

# hostile_conf [EXTRA_EVIL_SETTINGS]: "good" on $GOOD_PORT, "evil" on
# $EVIL_PORT with short bounds.
hostile_conf() {
	pbx_conf "$(pbx_block good "$GOOD_PORT" 'ping_interval = 5; idle_timeout = 15;'),
$(pbx_block evil "$EVIL_PORT" "connect_timeout = $EVIL_CONNECT_TIMEOUT;
    auth_timeout = $EVIL_AUTH_TIMEOUT; ping_interval = $EVIL_PING_INTERVAL;
    idle_timeout = $EVIL_IDLE_TIMEOUT; max_frame = \"1M\"; ${1:-}")"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; }

# attack_check SECONDS: sample every 2 s for SECONDS; at each sample the
# good session is up, its frames and the records acknowledged by Kafka
# have grown since the last one, and /healthz answers 200 within 2 s.
# Then the daemon's RSS must not have grown by more than 32 MiB (not
# checked under valgrind). Call once the good PBX delivers.
attack_check() {
	local end=$((SECONDS + $1)) frames prod f p n=0 rss0 rss1 code
	scrape
	frames=$(mval 'wsi2kafka_pbx_frames_total{pbx="good"}')
	prod=$(sum_series 'wsi2kafka_records_produced_total')
	rss0=$(rss_kib)
	while [ $SECONDS -lt $end ]; do
		sleep 2
		code=$(curl -sS -m 2 -o /dev/null -w '%{http_code}' "$URL/healthz" 2>/dev/null)
		[ "$code" = 200 ] || fail "/healthz answered '$code' during the attack"
		scrape
		expect 'wsi2kafka_pbx_up{pbx="good"}' == 1
		f=$(mval 'wsi2kafka_pbx_frames_total{pbx="good"}')
		p=$(sum_series 'wsi2kafka_records_produced_total')
		[ "$f" -gt "$frames" ] || fail "good PBX: no frame in 2 s during the attack ($f)"
		[ "$p" -gt "$prod" ] || fail "no record delivered in 2 s during the attack ($p)"
		frames=$f prod=$p n=$((n + 1))
	done
	if [ "${UNDER_VALGRIND:-0}" = 0 ]; then
		rss1=$(rss_kib)
		[ $((rss1 - rss0)) -lt 32768 ] ||
			fail "RSS grew from $rss0 to $rss1 KiB during the attack"
	fi
	ok "$n samples: good PBX up and delivering ($prod records), /healthz 200, RSS ${rss0:-?} -> ${rss1:-?} KiB"
}

# evil_rounds MIN: slowpbx saw at least MIN connections, every one of them
# closed by the daemon within BOUND seconds (argument 2), and at most MAX
# (argument 3: backoff, not a tight loop). Under valgrind the daemon's
# 1-second ticks run late and each round takes longer: at least one round,
# each within BOUND + 4 s (floor() below does the same for the counts).
evil_rounds() {
	local min=$1 bound=$2 max=$3 n late
	if [ "${UNDER_VALGRIND:-0}" = 1 ]; then
		min=1
		bound=$(echo "$bound + 4" | bc)
	fi
	n=$(grep -c ' CONNECT ' "$T/slow.events")
	[ "$n" -ge "$min" ] || fail "only $n connection attempts to the evil PBX"
	[ "$n" -le "$max" ] || fail "$n connection attempts to the evil PBX: a tight loop"
	late=$(awk -v b="$bound" '$2 == "CLOSED" && $5 + 0 > b + 0' "$T/slow.events")
	[ -z "$late" ] || fail "held longer than $bound s: $late"
	grep -q ' EXPIRED ' "$T/slow.events" && fail "the daemon never gave up on a connection"
	ok "$n attempts on the evil PBX, each closed within $bound s"
}

# floor N: N, or 1 under valgrind (see evil_rounds).
floor() { if [ "${UNDER_VALGRIND:-0}" = 1 ]; then echo 1; else echo "$1"; fi; }
