#!/usr/bin/env bash
# tests/bench/bench.sh — the end-to-end benchmark of issue #6 (README
# "Performance"). `make bench` builds build/bench (release, -O2) and runs
# this; it is a benchmark, not a test, and not part of `make check`.
#
#   B=build/bench tests/bench/bench.sh
#
# Everything runs on loopback: tests/kmock (librdkafka's mock cluster, 3
# brokers, 4 partitions per topic), tests/pbxsim (the TLS WebSocket PBX
# simulator; --flood makes its realistic mix of call events, extension
# events, queue events and CDRs, one record each) and the daemon with its
# /metrics endpoint. Stages (BENCH_STAGES, in this order):
#
#   spool       tests/bench/spool_bench: the spool alone (make bench-spool)
#   norm        tests/bench/norm_bench: norm_frame() alone (make bench-norm),
#               when it is built
#   throughput  per spool.fsync mode: a flood of BENCH_EVENTS events as fast
#               as they go; events/s from pbxsim's "FLOOD start" (the first
#               frame sent; pbxsim --log-time stamps its log) to the moment
#               the N-th record is acknowledged (wsi2kafka_records_produced_
#               total polled every BENCH_POLL_MS, the crossing interpolated
#               between two polls); CPU seconds (utime+stime of every thread,
#               /proc/PID/stat) over the same run, per million events, also
#               per thread group (event loop, librdkafka's rdk:* threads,
#               the rest); the machine's idle share during the flood; peak
#               RSS (VmHWM, /proc/PID/status)
#   ceiling     the same records (taken from a --dry-run of the same flood)
#               produced by `kcat -P` to the same mock cluster, to a topic
#               with as many partitions as the daemon's four (16), with the
#               same producer settings (acks=all, idempotence, linger.ms,
#               queue.buffering.max.kbytes, message.timeout.ms=0, the six
#               CloudEvents headers); kcat's own start-up (the best of three
#               one-record runs) is subtracted; ratio = daemon / kcat;
#               kcat's CPU seconds per million records
#   latency     per offered rate in BENCH_RATES (pbxsim --rate): the
#               wsi2kafka_delivery_latency_seconds histogram (frame receipt to
#               broker acknowledgement) over a BENCH_RATE_SECONDS window that
#               starts BENCH_WARMUP_SECONDS after the first frame: the
#               difference of two scrapes, p50/p99/p99.9 by linear
#               interpolation inside the bucket (as histogram_quantile does);
#               the bucket each falls in is its resolution. The same of
#               wsi2kafka_kafka_ack_latency_seconds (rd_kafka_producev() to
#               the acknowledgement) shows the part librdkafka and the
#               broker take
#   callgrind   instructions per event, deterministic enough to compare
#               commits on a noisy machine: the daemon (every thread) under
#               valgrind --tool=callgrind, two floods of BENCH_CG_EVENTS and
#               5 x BENCH_CG_EVENTS events (fsync=batch); the difference of
#               the two totals divided by the difference of the event counts
#               (start-up and shut-down cancel out), in all and per module
#               (the daemon's source files, and each library by its shared
#               object), from the exclusive counts in callgrind's output
#   profile     not run unless named (needs perf; kernel samples need root):
#               perf record (cpu-clock, BENCH_PROFILE_HZ) of every thread of
#               the daemon over a flood of BENCH_PROFILE_EVENTS; CPU µs per
#               event by thread group and module, the total without the
#               daemon's own code, and the floor's four parts
#               (docs/performance.md)
#   drain       brokers down (kmock "downall"), BENCH_DRAIN_RECORDS events
#               flooded into the spool, brokers up ("upall"); records/s from
#               the first acknowledgement to an empty spool
#               (wsi2kafka_spool_records = 0), and separately the time
#               librdkafka took to reconnect
#   kafka       the real Apache Kafka broker of the tests (make kafka), over
#               SASL_SSL: the daemon, kcat -P and Kafka's own
#               kafka-producer-perf-test, the same records, the same broker,
#               the same run, taking turns; medians and ratios (see
#               stage_kafka)
#
# Results: a table on stdout and JSON in BENCH_OUT (default
# $B/results.json) with the commit, date, machine, parameters, every number
# and the targets of issue #6 with PASS or MISS. Nothing is counted by
# consuming topics (the mock keeps only ~5 MiB per partition): counts come
# from /metrics and from partition end offsets.
#
# Every wait is bounded (BENCH_TIMEOUT_BASE s + records / BENCH_MIN_EPS s):
# a stage that cannot finish stops the run with "bench: FAILED: ..." and exit
# status 2. Target misses print MISS and exit 0, or 1 with BENCH_STRICT=1.
#
# Knobs (environment):
#   BENCH_EVENTS=200000         events per throughput run (and for kcat)
#   BENCH_FSYNC_MODES="batch never"
#   BENCH_RATES="1000 10000"    offered rates for the latency runs, events/s
#   BENCH_RATE_SECONDS=15       measurement window per rate
#   BENCH_WARMUP_SECONDS=3      excluded from the window
#   BENCH_LAT_FSYNC=batch       spool.fsync of the latency runs
#   BENCH_DRAIN_RECORDS=1000000 records in the spool for the drain
#   BENCH_LINGER_MS=5           linger.ms of the daemon and of kcat
#   BENCH_POLL_MS=200           /metrics polling interval
#   BENCH_MIN_EPS=2000          below this a stage counts as stuck
#   BENCH_TIMEOUT_BASE=60       seconds added to every stage's bound
#   BENCH_SPOOL_RECORDS=200000  spool_bench records
#   BENCH_NORM_SECONDS=1        norm_bench seconds per row
#   BENCH_CG_EVENTS=10000       events of the smaller callgrind flood
#   BENCH_CG_LIMIT=110000       instructions per event above which the
#                               callgrind target is missed
#   BENCH_PROFILE_EVENTS=600000 events of the profile stage's flood
#   BENCH_PROFILE_HZ=999        its perf sampling frequency
#   BENCH_STAGES="spool norm throughput ceiling latency callgrind drain kafka"
#   BENCH_KAFKA_EVENTS=100000   records per producer and run, kafka stage
#   BENCH_KAFKA_JAVA_OPTS=...   the real broker's JVM (default: 1 GiB heap)
#   BENCH_STRICT=0              1: exit 1 when a target is missed
#   BENCH_OUT=$B/results.json
#   BENCH_KEEP=0                1: keep the spools and record files of the run
#   BENCH_REPEAT=3              throughput runs per fsync mode, and kcat runs:
#                               the median counts
set -u -o pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2

B=${B:-build/bench}
W2K=$B/wsi2kafka
PBXSIM=$B/tests/pbxsim
KMOCK=$B/tests/kmock
SPOOL_BENCH=$B/bench/spool_bench
NORM_BENCH=$B/bench/norm_bench

EVENTS=${BENCH_EVENTS:-200000}
FSYNC_MODES=${BENCH_FSYNC_MODES:-batch never}
RATES=${BENCH_RATES:-1000 10000}
RATE_SECONDS=${BENCH_RATE_SECONDS:-15}
WARMUP=${BENCH_WARMUP_SECONDS:-3}
DRAIN=${BENCH_DRAIN_RECORDS:-1000000}
LINGER=${BENCH_LINGER_MS:-5}
POLL_MS=${BENCH_POLL_MS:-200}
MIN_EPS=${BENCH_MIN_EPS:-2000}
TIMEOUT_BASE=${BENCH_TIMEOUT_BASE:-60}
SPOOL_RECORDS=${BENCH_SPOOL_RECORDS:-200000}
NORM_SECONDS=${BENCH_NORM_SECONDS:-1}
CG_EVENTS=${BENCH_CG_EVENTS:-10000}
PROFILE_EVENTS=${BENCH_PROFILE_EVENTS:-600000}
PROFILE_HZ=${BENCH_PROFILE_HZ:-999}
STAGES=" ${BENCH_STAGES:-spool norm throughput ceiling latency callgrind drain kafka} "
STRICT=${BENCH_STRICT:-0}
OUT=${BENCH_OUT:-$B/results.json}
KEEP=${BENCH_KEEP:-0}
REPEAT=${BENCH_REPEAT:-3}

RUN=$B/bench/run
PW=bench-Pa55
TOPICS=portsip.cdr,portsip.calls,portsip.extensions,portsip.queues,portsip.events,portsip.deadletter
KCAT_TOPIC=bench.kcat
KCAT_PARTS=16		# the daemon's four topics of 4 partitions
# The daemon's producer defaults (src/ksink.c) and linger.ms, for kcat too.
KPROPS=(acks=all enable.idempotence=true message.timeout.ms=0
    queue.buffering.max.kbytes=16384 queue.buffering.max.messages=16384 "linger.ms=$LINGER")

PIDS=()
W2K_PREFIX=()		# a command the daemon runs under (the callgrind stage)
CG_PER=''		# instructions per event, from the callgrind stage
# A regression bound, not a goal: 161,600 before issue #15's read path
# (OpenSSL's read-ahead), 92,000 after, with Debian 12's libraries.
CG_LIMIT=${BENCH_CG_LIMIT:-110000}
DPID='' PBX_PID='' KMOCK_PID=''
ROWS=()
MISSES=0
T_BEGIN=$SECONDS

# ------------------------------------------------------------------ helpers

log() { printf 'bench: %s\n' "$*" >&2; }

die() {
	local f
	echo "bench: FAILED: $*" >&2
	for f in "$RUN"/*.log "$RUN"/*.events; do
		[ -s "$f" ] || continue
		echo "--- $f (last lines)" >&2
		tail -n 8 "$f" >&2
	done
	exit 2
}

# stop_pid PID [SECONDS]: TERM, wait that long, then KILL. Prints nothing;
# returns the exit status (137 after KILL; 0 when it was not our child).
stop_pid() {
	local p=$1 secs=${2:-15} i rc=0 keep=() q
	for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
	PIDS=("${keep[@]}")	# never signalled again (its number may be reused)
	kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return $?; }
	kill -TERM "$p" 2>/dev/null
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null; rc=$?
	return $rc
}

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null
	done
	if [ "$KEEP" != 1 ]; then
		rm -rf "$RUN"/*.spool "$RUN"/dry.out "$RUN"/*.input 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS COMMAND...: poll every 0.1 s.
wait_until() {
	local end=$((SECONDS + $1)); shift
	until "$@" 2>/dev/null; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}

# calc EXPR [FORMAT]: awk arithmetic (default format %.6f); comparisons
# give 1 or 0 (the parentheses keep awk from reading ">" as a redirection).
calc() { awk "BEGIN { printf \"${2:-%.6f}\", ($1) }"; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# bound RECORDS: seconds a stage over RECORDS may take before it is stuck.
bound() { echo $((TIMEOUT_BASE + $1 / MIN_EPS)); }

# row SECTION METRIC VALUE [TARGET STATUS]
row() { ROWS+=("$1|$2|$3|${4:-}|${5:-}"); }

# jadd FILTER ARGS...: update the result document with a jq filter.
jadd() {
	local f=$1; shift
	jq "$@" "$f" "$RUN/results.json" >"$RUN/results.tmp" ||
		die "jq: cannot record a result ($f)"
	mv "$RUN/results.tmp" "$RUN/results.json"
}

# stat_ticks FILE: utime+stime (clock ticks) of a /proc/.../stat file.
stat_ticks() {
	local s
	s=$(cat "$1" 2>/dev/null) || { echo 0; return; }
	s=${s##*) }	# after "(comm) "; fields from "state" on
	# shellcheck disable=SC2086 # the fields, one word each
	set -- $s
	echo $(( ${12} + ${13} ))
}

# cpu_ticks PID: utime+stime of every thread, those ended included.
cpu_ticks() { stat_ticks "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# thread_ticks PID: utime+stime per group of threads, in clock ticks:
# "LOOP RDKAFKA OTHER": the event loop (the main thread), librdkafka's
# threads ("rdk:*": broker threads, its main thread) and the rest (the
# spool's sync thread "w2k:spool-sync", the backfill writer). A thread that
# ended between two readings is missing from the later one.
thread_ticks() {
	local pid=$1 t v loop=0 rdk=0 other=0
	for t in /proc/"$pid"/task/*; do
		v=$(stat_ticks "$t/stat")
		if [ "${t##*/}" = "$pid" ]; then loop=$((loop + v))
		elif [[ $(cat "$t/comm" 2>/dev/null) == rdk:* ]]; then rdk=$((rdk + v))
		else other=$((other + v)); fi
	done
	echo "$loop $rdk $other"
}

# idle_ticks: idle + iowait of every core (/proc/stat), in clock ticks.
idle_ticks() { awk '/^cpu / { print $5 + $6; exit }' /proc/stat; }

# hwm_kib PID: peak resident set (VmHWM), KiB.
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# free_port (start_daemon retries on a collision)
. tests/lib/ports.sh

# ------------------------------------------------------------------ peers

start_kmock() {
	rm -f "$RUN/kmock.ctl" "$RUN/bootstrap"
	mkfifo "$RUN/kmock.ctl"
	"$KMOCK" --brokers 3 --partitions 4 --topics "$TOPICS" \
	    --bootstrap-file "$RUN/bootstrap" --control "$RUN/kmock.ctl" \
	    >"$RUN/kmock.log" 2>&1 &
	KMOCK_PID=$!; PIDS+=("$KMOCK_PID")
	wait_until 20 test -s "$RUN/bootstrap" || die "kmock did not start"
	BOOTSTRAP=$(cat "$RUN/bootstrap")
	exec 9<>"$RUN/kmock.ctl"
}

kmock_answers() { grep -c -e '^OK' -e '^ERR' "$RUN/kmock.log"; }
more_answers() { [ "$(kmock_answers)" -gt "$1" ]; }
kmock_cmd() {
	local before
	before=$(kmock_answers)
	echo "$*" >&9
	wait_until 20 more_answers "$before" || die "kmock did not answer '$*'"
	tail -n 1 "$RUN/kmock.log" | grep -q '^OK' ||
		die "kmock: $(tail -n 1 "$RUN/kmock.log")"
}

# start_pbxsim NAME ARGS...: sets PBX_PID, PBX_PORT; log $RUN/NAME.events.
start_pbxsim() {
	local name=$1; shift
	rm -f "$RUN/$name.port" "$RUN/$name.events"
	"$PBXSIM" --cert "$CERTS/server.pem" --key "$CERTS/server.key" \
	    --port-file "$RUN/$name.port" --log "$RUN/$name.events" --log-time \
	    --user admin --password "$PW" --domain bench.io "$@" \
	    >"$RUN/$name.pbxsim.log" 2>&1 &
	PBX_PID=$!; PIDS+=("$PBX_PID")
	wait_until 20 test -s "$RUN/$name.port" || die "$name: pbxsim did not start"
	PBX_PORT=$(cat "$RUN/$name.port")
}

# write_conf NAME FSYNC [SPOOL_EXTRA]: $RUN/NAME.conf for one PBX, with a
# subscription that asks for no snapshot (so every record is a flood event).
write_conf() {
	local name=$1 fsync=$2 extra=${3:-}
	rm -rf "$RUN/$name.spool"
	cat >"$RUN/$name.conf" <<CONF
pbx = (
  {
    name = "hq";
    url = "wss://localhost:$PBX_PORT/wsi";
    username = "admin";
    password_file = "$RUN/secret";
    domain = "bench.io";
    tls = { ca_file = "$CERTS/ca.pem"; };
    subscriptions = (
      { topics = [ "extension_events", "cdr_events", "queue_events" ]; }
    );
  }
);
kafka = {
  brokers = "${W2K_BROKERS:-$BOOTSTRAP}";
  properties = { linger_ms = "$LINGER"; ${W2K_KPROPS:-} };${W2K_KAFKA:-}
  dead_letter_topic = "portsip.deadletter";
};
spool = { dir = "$RUN/$name.spool"; fsync = "$fsync"; $extra };
log = { level = "info"; };
CONF
}

# start_daemon NAME [ARGS...]: the daemon with NAME.conf plus a listener on a
# free port; waits until it listens. Sets DPID, URL.
start_daemon() {
	local name=$1 try port; shift
	cp "$RUN/$name.conf" "$RUN/$name.conf.base"
	for try in 1 2 3 4 5; do
		[ "$try" -eq 1 ] || log "$name: port $port taken meanwhile, another"
		port=$(free_port) || die "no free port"
		{ cat "$RUN/$name.conf.base"
		  echo "http = { listen = \"127.0.0.1:$port\"; };"; } >"$RUN/$name.conf"
		"${W2K_PREFIX[@]}" "$W2K" -c "$RUN/$name.conf" "$@" >"$RUN/$name.out" 2>"$RUN/$name.log" &
		DPID=$!; PIDS+=("$DPID")
		URL=http://127.0.0.1:$port
		wait_until $(( ${#W2K_PREFIX[@]} ? 90 : 20 )) grep -q 'http: listening on' "$RUN/$name.log" && return 0
		if ! kill -0 "$DPID" 2>/dev/null &&
		    grep -q 'cannot listen on .*in use' "$RUN/$name.log"; then
			wait "$DPID"
			continue
		fi
		die "$name: the daemon did not start"
	done
	die "$name: no free port in 5 tries"
}

# stop_daemon NAME: SIGTERM (the daemon flushes for up to 10 s); a non-zero
# exit status is a failure of the run.
stop_daemon() {
	local rc
	stop_pid "$DPID" 20; rc=$?
	[ "$rc" -eq 0 ] || die "$1: the daemon exited with status $rc"
	DPID=
}

stop_pbxsim() { stop_pid "$PBX_PID" 5; PBX_PID=; }

# scrape [FILE]: GET /metrics; sets M_T (wall clock after the answer),
# M_PROD (records acknowledged, every topic), M_SPOOL (spool records),
# M_FRAMES (frames received from the PBX: the flood's events, after the two
# command replies), M_SBYTES, M_DROPPED, M_RETRIED. FILE keeps the text.
scrape() {
	local f=${1:-$RUN/scrape.txt}
	curl -sf -m 5 -o "$f" "$URL/metrics" || return 1
	M_T=$EPOCHREALTIME
	read -r M_PROD M_SPOOL M_FRAMES M_SBYTES M_DROPPED M_RETRIED < <(awk '
	    /^wsi2kafka_records_produced_total\{/ { p += $NF }
	    /^wsi2kafka_spool_records / { s = $NF }
	    /^wsi2kafka_pbx_frames_total\{/ { e += $NF }
	    /^wsi2kafka_spool_bytes / { b = $NF }
	    /^wsi2kafka_spool_dropped_total / { d = $NF }
	    /^wsi2kafka_records_retried_total / { r = $NF }
	    END { printf "%d %d %d %d %d %d\n", p, s, e, b, d, r }' "$f")
}

# flood_time NAME start|done: pbxsim's timestamp of "FLOOD start|done".
flood_time() {
	awk -v w="$2" '$2 == "FLOOD" && $3 == w { print $1; exit }' "$RUN/$1.events"
}
has_flood() { [ -n "$(flood_time "$1" "$2")" ]; }

POLL_S=$(calc "$POLL_MS / 1000" %.3f)

# poll_produced TARGET SECONDS WHAT: poll until M_PROD >= TARGET; sets
# T_REACHED, the crossing interpolated between the last two polls.
poll_produced() {
	local target=$1 end=$((SECONDS + $2)) what=$3 pt pc
	scrape || die "$what: /metrics did not answer"
	pt=$M_T pc=$M_PROD
	while [ "$M_PROD" -lt "$target" ]; do
		[ $SECONDS -lt $end ] || die "$what: only $M_PROD of $target records acknowledged after $2 s (spool $M_SPOOL, frames received $M_FRAMES)"
		kill -0 "$DPID" 2>/dev/null || die "$what: the daemon died"
		pt=$M_T pc=$M_PROD
		sleep "$POLL_S"
		scrape || die "$what: /metrics did not answer"
	done
	if [ "$M_PROD" -gt "$pc" ] && [ "$pc" -lt "$target" ]; then
		T_REACHED=$(calc "$pt + ($M_T - $pt) * ($target - $pc) / ($M_PROD - $pc)")
	else
		T_REACHED=$M_T
	fi
}

# ------------------------------------------------------------------ stages

stage_spool() {
	local line label v
	[ -x "$SPOOL_BENCH" ] || die "spool: $SPOOL_BENCH missing (make B=$B $SPOOL_BENCH)"
	log "spool: spool_bench $SPOOL_RECORDS records"
	timeout $(( $(bound "$SPOOL_RECORDS") + 120 )) "$SPOOL_BENCH" "$RUN/spool-bench" \
	    "$SPOOL_RECORDS" >"$RUN/spool_bench.txt" 2>&1 ||
		die "spool: spool_bench failed: $(tail -n 3 "$RUN/spool_bench.txt")"
	rm -rf "$RUN/spool-bench"
	while IFS= read -r line; do
		[[ $line =~ ^[[:space:]]*(.*[^[:space:]])[[:space:]]+([0-9]+)\ records/s ]] || continue
		label=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]}
		row "spool alone (bench-spool)" "$label" "$v records/s"
		jadd '.spool_bench += [{row: $r, records_per_s: ($v | tonumber)}]' \
		    --arg r "$label" --arg v "$v"
	done <"$RUN/spool_bench.txt"
}

stage_norm() {
	local line label f r
	if [ ! -x "$NORM_BENCH" ]; then
		log "norm: $NORM_BENCH not built, skipped"
		return
	fi
	log "norm: norm_bench $NORM_SECONDS s per row"
	timeout 300 "$NORM_BENCH" "$NORM_SECONDS" >"$RUN/norm_bench.txt" 2>&1 ||
		die "norm: norm_bench failed: $(tail -n 3 "$RUN/norm_bench.txt")"
	while IFS= read -r line; do
		[[ $line =~ ^(.*[^[:space:]])[[:space:]]+[0-9]+\ B[[:space:]]+([0-9]+)\ frames/s[[:space:]]+([0-9]+)\ records/s ]] || continue
		label=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} r=${BASH_REMATCH[3]}
		row "norm_frame alone (bench-norm)" "$label" "$f frames/s"
		jadd '.norm_bench += [{row: $l, frames_per_s: ($f | tonumber), records_per_s: ($r | tonumber)}]' \
		    --arg l "$label" --arg f "$f" --arg r "$r"
	done <"$RUN/norm_bench.txt"
}

# median N...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Throughput: REPEAT floods of EVENTS as fast as they go, per fsync mode;
# the median counts (runs of one commit differ by up to a fifth here).
# flood_up NAME EVENTS FSYNC [PAUSE_MS]: pbxsim playing a pause of PAUSE_MS
# (1000) and then a flood of EVENTS, the daemon with spool.fsync FSYNC,
# until the daemon subscribed (the pause is for the baseline readings).
flood_up() {
	local name=$1
	printf "@sleep %d\n@flood %d\n@end\n" "${4:-1000}" "$2" >"$RUN/$name.script"
	start_pbxsim "$name" --script "$RUN/$name.script"
	write_conf "$name" "$3"
	start_daemon "$name"
	wait_until 30 grep -q ' PLAY ' "$RUN/$name.events" ||
		die "$name: the daemon did not subscribe within 30 s"
}

# flood_down NAME: pbxsim and the daemon stopped, the run's spool removed.
flood_down() {
	stop_pbxsim
	stop_daemon "$1"
	rm -rf "$RUN/$1.spool"
}

declare -A TPUT HWM_RUN TPUT_RUNS
stage_throughput_one() {
	local mode=$1 run=$2 name=tput-$1-$2
	local cpu0 pcpu0 cpu1 pcpu1 base_t prod0 ev0 t0 tdone secs eps cpu cpum hwm
	local th0 th1 idle0 idle1 wall0 wall1 g loopm rdkm otherm idlep
	log "throughput: fsync=$mode, $EVENTS events, run $run of $REPEAT"
	flood_up "$name" "$EVENTS" "$mode"
	# Baseline during pbxsim's 1 s pause before the flood.
	cpu0=$(cpu_ticks "$DPID") pcpu0=$(cpu_ticks "$PBX_PID")
	th0=$(thread_ticks "$DPID") idle0=$(idle_ticks) wall0=$EPOCHREALTIME
	scrape || die "$name: /metrics did not answer"
	base_t=$M_T prod0=$M_PROD ev0=$M_FRAMES
	poll_produced $((prod0 + EVENTS)) "$(bound "$EVENTS")" "$name"
	cpu1=$(cpu_ticks "$DPID") pcpu1=$(cpu_ticks "$PBX_PID")
	th1=$(thread_ticks "$DPID") idle1=$(idle_ticks) wall1=$EPOCHREALTIME
	hwm=$(hwm_kib "$DPID")
	t0=$(flood_time "$name" start) tdone=$(flood_time "$name" 'done')
	[ -n "$t0" ] && [ -n "$tdone" ] || die "$name: no FLOOD start/done in pbxsim's log"
	if calc "$base_t > $t0" %d | grep -q 1; then
		log "$name: warning: the baseline was taken $(calc "($base_t - $t0) * 1000" %.0f) ms after the flood started (busy machine)"
	fi
	[ $((M_FRAMES - ev0)) -eq "$EVENTS" ] &&
	    [ $((M_PROD - prod0)) -eq "$EVENTS" ] ||
		log "$name: warning: $((M_FRAMES - ev0)) frames received and $((M_PROD - prod0)) records acknowledged for $EVENTS events"
	[ "$M_DROPPED" -eq 0 ] || die "$name: the spool dropped $M_DROPPED records"
	secs=$(calc "$T_REACHED - $t0")
	eps=$(calc "$EVENTS / $secs" %.0f)
	cpu=$(calc "($cpu1 - $cpu0) / $CLK_TCK" %.2f)
	cpum=$(calc "$cpu * 1000000 / $EVENTS" %.2f)
	# Per group of threads, and how idle the whole machine was: on two
	# cores a saturated machine bounds the throughput, not one thread.
	# shellcheck disable=SC2206 # three numbers each
	local -a a=($th0) b=($th1)
	loopm=$(calc "(${b[0]} - ${a[0]}) / $CLK_TCK * 1000000 / $EVENTS" %.2f)
	rdkm=$(calc "(${b[1]} - ${a[1]}) / $CLK_TCK * 1000000 / $EVENTS" %.2f)
	otherm=$(calc "(${b[2]} - ${a[2]}) / $CLK_TCK * 1000000 / $EVENTS" %.2f)
	g=$(grep -c '^cpu[0-9]' /proc/stat)	# what /proc/stat's idle counts
	# The readings bracket the flood with idle time: pbxsim's pause before
	# it (from wall0 to t0) and the last poll after it (T_REACHED to
	# wall1), counted as wholly idle and taken off.
	idlep=$(calc "($idle1 - $idle0) / $CLK_TCK - $g * (($t0 > $wall0 ? $t0 - $wall0 : 0) + ($wall1 > $T_REACHED ? $wall1 - $T_REACHED : 0))")
	idlep=$(calc "100 * ($idlep > 0 ? $idlep : 0) / $g / $secs" %.0f)
	TPUT_RUNS[$mode]="${TPUT_RUNS[$mode]:-} $eps" HWM_RUN[$name]=$hwm
	flood_down "$name"
	row "throughput, fsync=$mode, run $run" "events/s ($EVENTS events)" "$eps"
	row "throughput, fsync=$mode, run $run" "seconds (first frame sent -> last ack)" "$(calc "$secs" %.2f)"
	row "throughput, fsync=$mode, run $run" "pbxsim send time, s" "$(calc "$tdone - $t0" %.2f)"
	row "throughput, fsync=$mode, run $run" "daemon CPU s per million events" "$cpum"
	row "throughput, fsync=$mode, run $run" "daemon CPU s (utime+stime)" "$cpu"
	row "throughput, fsync=$mode, run $run" "  event loop / librdkafka threads / other, CPU s per million" "$loopm / $rdkm / $otherm"
	row "throughput, fsync=$mode, run $run" "machine idle during the flood, % of $g cores" "$idlep"
	row "throughput, fsync=$mode, run $run" "pbxsim CPU s (share of the run)" "$(calc "($pcpu1 - $pcpu0) / $CLK_TCK" %.2f) ($(calc "100 * ($pcpu1 - $pcpu0) / $CLK_TCK / $secs" %.0f)%)"
	# A simulator near a full core limits what the daemon is offered.
	if calc "($pcpu1 - $pcpu0) / $CLK_TCK > 0.8 * $secs" %d | grep -q 1; then
		log "$name: warning: pbxsim used over 80% of a core: the simulator may be the limit"
		row "throughput, fsync=$mode, run $run" "WARNING" "pbxsim near a full core: the simulator may be the limit"
	fi
	row "throughput, fsync=$mode, run $run" "daemon peak RSS (VmHWM), MiB" "$(calc "$hwm / 1024" %.1f)"
	row "throughput, fsync=$mode, run $run" "records retried" "$((M_RETRIED))"
	jadd '.throughput += [{fsync: $m, run: ($run|tonumber), events: ($n|tonumber), seconds: ($s|tonumber),
	    events_per_s: ($e|tonumber), pbxsim_send_seconds: ($sd|tonumber),
	    cpu_seconds: ($c|tonumber), cpu_seconds_per_million: ($cm|tonumber),
	    pbxsim_cpu_seconds: ($pc|tonumber), peak_rss_kib: ($h|tonumber),
	    records_retried: ($r|tonumber), frames_received: ($fr|tonumber),
	    records_acknowledged: ($ra|tonumber), loop_cpu_seconds_per_million: ($lm|tonumber),
	    rdkafka_threads_cpu_seconds_per_million: ($rm|tonumber),
	    other_threads_cpu_seconds_per_million: ($om|tonumber), machine_idle_percent: ($ip|tonumber)}]' \
	    --arg m "$mode" --arg run "$run" --arg n "$EVENTS" --arg s "$secs" --arg e "$eps" \
	    --arg sd "$(calc "$tdone - $t0")" --arg c "$cpu" --arg cm "$cpum" \
	    --arg pc "$(calc "($pcpu1 - $pcpu0) / $CLK_TCK" %.2f)" --arg h "$hwm" \
	    --arg r "$M_RETRIED" --arg fr "$((M_FRAMES - ev0))" --arg ra "$((M_PROD - prod0))" \
	    --arg lm "$loopm" --arg rm "$rdkm" --arg om "$otherm" --arg ip "$idlep"
}

stage_throughput() {
	local m r
	for m in $FSYNC_MODES; do
		for ((r = 1; r <= REPEAT; r++)); do stage_throughput_one "$m" "$r"; done
		# shellcheck disable=SC2086 # the runs, one word each
		TPUT[$m]=$(median ${TPUT_RUNS[$m]})
		row "throughput, fsync=$m" "events/s, median of $REPEAT runs (each)" \
		    "${TPUT[$m]} (${TPUT_RUNS[$m]# })"
		jadd '.throughput_median[$m] = ($e|tonumber)' --arg m "$m" --arg e "${TPUT[$m]}"
	done
}

# kcat and the daemon reach the mock cluster by BOOTSTRAP, in plain text;
# the kafka stage points them elsewhere with these (KCAT_SEC: kcat's -X
# security arguments; W2K_*: write_conf's kafka block).
KCAT_B='' KCAT_SEC=() W2K_BROKERS='' W2K_KPROPS='' W2K_KAFKA=''

# kcat_hw: records in KCAT_TOPIC now (sum of the partitions' end offsets,
# read from the last record of each; nothing else is consumed).
kcat_hw() {
	timeout 30 kcat -C -q -b "${KCAT_B:-$BOOTSTRAP}" "${KCAT_SEC[@]}" -t "$KCAT_TOPIC" -o -1 -e \
	    -f '%o\n' 2>>"$RUN/kcat.err" | awk '{ s += $1 + 1 } END { print s + 0 }'
}

# kcat_run FILE: produce FILE with kcat; prints the wall-clock seconds.
kcat_run() {
	local t0 t1 rc
	t0=$EPOCHREALTIME
	timeout "$(bound "$KCAT_N")" kcat -P -q -b "${KCAT_B:-$BOOTSTRAP}" -t "$KCAT_TOPIC" \
	    -K $'\t' "${KCAT_X[@]}" "${KCAT_H[@]}" <"$1" 2>>"$RUN/kcat.err"
	rc=$?
	t1=$EPOCHREALTIME
	[ "$rc" -eq 0 ] || die "ceiling: kcat -P exited with status $rc: $(tail -n 3 "$RUN/kcat.err")"
	# kcat's user + system CPU seconds (this runs in a command
	# substitution: its children are kcat and timeout), to $RUN/kcat.cpu;
	# times itself must not run in a pipeline's subshell (no children).
	times >"$RUN/kcat.times"
	awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%.3f\n", n }' "$RUN/kcat.times" >"$RUN/kcat.cpu"
	calc "$t1 - $t0"
}

# dry_records N: $RUN/kcat.input, N records as the daemon makes them (a
# --dry-run of the flood: "key<TAB>value" lines), once per run of the
# script (the ceiling and kafka stages share it); sets KCAT_H, the six
# CloudEvents headers as the first record has them (kcat -P sets the same
# headers on every record).
dry_records() {
	local name=dry n p
	if [ -s "$RUN/kcat.input" ] && [ "$(wc -l <"$RUN/kcat.input")" -eq "$1" ]; then
		return 0
	fi
	log "$1 records from a --dry-run of the flood"
	KCAT_N=$1
	start_pbxsim "$name" --flood "$KCAT_N"
	write_conf "$name" batch
	start_daemon "$name" -n		# records on stdout: $RUN/dry.out
	local end=$((SECONDS + $(bound "$KCAT_N")))
	while :; do
		n=$(wc -l <"$RUN/$name.out")
		[ "$n" -ge "$KCAT_N" ] && break
		[ $SECONDS -lt $end ] || die "ceiling: the dry run printed $n of $KCAT_N records"
		kill -0 "$DPID" 2>/dev/null || die "ceiling: the dry-run daemon died"
		sleep 0.5
	done
	stop_pbxsim
	stop_daemon "$name"
	jq -r '(.key // "") + "\t" + (.value | tojson)' "$RUN/$name.out" \
	    >"$RUN/kcat.input" || die "ceiling: jq could not read the dry-run records"
	n=$(wc -l <"$RUN/kcat.input")
	[ "$n" -eq "$KCAT_N" ] || die "ceiling: $n records from the dry run, expected $KCAT_N"
	head -n 1 "$RUN/kcat.input" >"$RUN/kcat1.input"
	KCAT_H=()
	while IFS= read -r p; do KCAT_H+=(-H "$p"); done < <(head -n 1 "$RUN/$name.out" |
	    jq -r '.headers | to_entries[] | "\(.key)=\(.value)"')
	rm -f "$RUN/$name.out"
}

# kcat_startup: the best of three one-record kcat -P runs (kcat's own
# start-up, subtracted from every timed run).
kcat_startup() {
	local i s1 best=999
	for i in 1 2 3; do
		s1=$(kcat_run "$RUN/kcat1.input")
		best=$(calc "$s1 < $best ? $s1 : $best")
	done
	echo "$best"
}

stage_ceiling() {
	local n hw0 hw1 best i secs eps ratio p
	log "ceiling: kcat -P of the flood's records"
	dry_records "$EVENTS"
	KCAT_X=()
	for p in "${KPROPS[@]}"; do KCAT_X+=(-X "$p"); done
	kmock_cmd "create $KCAT_TOPIC $KCAT_PARTS"
	best=$(kcat_startup)
	local runs_eps='' runs_secs='' runs_cpum='' cpum
	for ((i = 1; i <= REPEAT; i++)); do
		hw0=$(kcat_hw)
		secs=$(kcat_run "$RUN/kcat.input")
		hw1=$(kcat_hw)
		[ $((hw1 - hw0)) -eq "$KCAT_N" ] ||
			die "ceiling: $((hw1 - hw0)) records landed on $KCAT_TOPIC, expected $KCAT_N"
		runs_eps="$runs_eps $(calc "$KCAT_N / ($secs - $best)" %.0f)"
		runs_secs="$runs_secs $(calc "$secs - $best" %.2f)"
		runs_cpum="$runs_cpum $(calc "$(cat "$RUN/kcat.cpu") * 1000000 / $KCAT_N" %.2f)"
	done
	# shellcheck disable=SC2086 # the runs, one word each
	cpum=$(median $runs_cpum)
	# shellcheck disable=SC2086 # the runs, one word each
	eps=$(median $runs_eps)
	secs=$(calc "$KCAT_N / $eps + $best")
	KCAT_EPS=$eps
	row "ceiling: kcat -P, same records" "records/s ($KCAT_N records), median of $REPEAT (each)" "$eps (${runs_eps# })"
	row "ceiling: kcat -P, same records" "seconds (kcat start-up of $(calc "$best" %.3f) s subtracted)" "${runs_secs# }"
	row "ceiling: kcat -P, same records" "kcat CPU s per million records, median (each; start-up included)" "$cpum (${runs_cpum# })"
	jadd '.ceiling = {tool: "kcat -P", records: ($n|tonumber), topic_partitions: ($pp|tonumber),
	    seconds_wall: ($s|tonumber), startup_seconds: ($b|tonumber),
	    records_per_s: ($e|tonumber), cpu_seconds_per_million: ($cm|tonumber),
	    producer_properties: $props}' \
	    --arg n "$KCAT_N" --arg pp "$KCAT_PARTS" --arg s "$secs" --arg b "$best" --arg cm "$cpum" \
	    --arg e "$eps" --argjson props "$(printf '%s\n' "${KPROPS[@]}" | jq -R . | jq -s .)"
	for p in $FSYNC_MODES; do
		[ -n "${TPUT[$p]:-}" ] || continue
		ratio=$(calc "${TPUT[$p]} / $eps" %.3f)
		row "ceiling: kcat -P, same records" "wsi2kafka/kcat, fsync=$p" "$ratio"
		jadd '.ceiling.ratio[$m] = ($r|tonumber)' --arg m "$p" --arg r "$ratio"
	done
}

# The kafka stage: the real Apache Kafka broker of the tests
# (tests/kafka/broker.sh, fetched by `make kafka`), one KRaft node on
# loopback, every client over its SASL_SSL listener (PLAIN over TLS, as
# the tests; see broker.sh for why not SCRAM with librdkafka 2.0.2).
# Three producers of the same records to the same broker in the same run:
# the daemon (a flood from pbxsim, as in the throughput stage), kcat -P
# (the dry run's records, keys and headers) and Kafka's own
# kafka-producer-perf-test (org.apache.kafka.tools.ProducerPerformance:
# the same values, no keys or headers: it has no way to take them), each
# with acks=all, idempotence and linger.ms=LINGER; the rest of the Java
# producer is at its defaults. REPEAT runs each; the medians and the
# ratios count. Every run is checked on the broker by end offsets.
kafka_shims() {		# what broker.sh needs from tests/integration/lib.sh
	T=$RUN/kafka-stage TIME_SCALE=1
	mkdir -p "$T"
	fail() { die "kafka: $*"; }
	ok() { log "kafka: $*"; }
	certs() { :; }		# CERTS is set (main)
	# A broker that is not the bottleneck: C2, a larger heap.
	KAFKA_JAVA_OPTS=${BENCH_KAFKA_JAVA_OPTS:--Xms512m -Xmx1g -XX:+UseParallelGC
	    -XX:-UsePerfData -Djava.awt.headless=true}
	# shellcheck source=tests/kafka/broker.sh
	. tests/kafka/broker.sh
}

# kafka_hw TOPIC...: the sum of the topics' end offsets (records on them).
kafka_hw() {
	local t s=0 v
	for t in "$@"; do
		v=$(KCAT_TOPIC=$t kcat_hw)
		s=$((s + v))
	done
	echo "$s"
}

# kafka_daemon_run RUN: one flood through the daemon; appends its
# events/s to KW_EPS and its CPU s per million events to KW_CPU.
kafka_daemon_run() {
	local run=$1 name=kafka-w2k-$1 cpu0 cpu1 prod0 t0 hw0 hw1 secs
	hw0=$(kafka_hw "${W2K_TOPICS[@]}")
	flood_up "$name" "$KAFKA_EVENTS" batch
	cpu0=$(cpu_ticks "$DPID")
	scrape || die "$name: /metrics did not answer"
	prod0=$M_PROD
	poll_produced $((prod0 + KAFKA_EVENTS)) "$(bound "$KAFKA_EVENTS")" "$name"
	cpu1=$(cpu_ticks "$DPID")
	t0=$(flood_time "$name" start)
	[ -n "$t0" ] || die "$name: no FLOOD start in pbxsim's log"
	flood_down "$name"
	hw1=$(kafka_hw "${W2K_TOPICS[@]}")
	[ $((hw1 - hw0)) -eq "$KAFKA_EVENTS" ] ||
		die "$name: $((hw1 - hw0)) records landed on the broker, expected $KAFKA_EVENTS"
	secs=$(calc "$T_REACHED - $t0")
	KW_EPS+=" $(calc "$KAFKA_EVENTS / $secs" %.0f)"
	KW_CPU+=" $(calc "($cpu1 - $cpu0) / $CLK_TCK * 1000000 / $KAFKA_EVENTS" %.2f)"
}

# kafka_kcat_run: one kcat -P run; appends its records/s to KK_EPS.
kafka_kcat_run() {
	local hw0 hw1 secs
	hw0=$(kafka_hw "$KCAT_TOPIC")
	secs=$(kcat_run "$RUN/kcat.input")
	hw1=$(kafka_hw "$KCAT_TOPIC")
	[ $((hw1 - hw0)) -eq "$KAFKA_EVENTS" ] ||
		die "kafka: kcat -P: $((hw1 - hw0)) records landed, expected $KAFKA_EVENTS"
	KK_EPS+=" $(calc "$KAFKA_EVENTS / ($secs - $KSTART)" %.0f)"
}

# kafka_perf_run: one kafka-producer-perf-test run; appends its records/s
# (its own measure: first send to last acknowledgement, so the JVM's
# start-up is not in it, as kcat's is subtracted) to KJ_EPS.
kafka_perf_run() {
	local hw0 hw1 out
	hw0=$(kafka_hw bench.perf)
	out=$(timeout "$(bound "$KAFKA_EVENTS")" java -Xmx768m -XX:-UsePerfData \
	    -Dlog4j2.configurationFile="$(realpath tests/kafka/log4j2.properties)" \
	    -Dkafka.logs.dir="$RUN" \
	    -cp "$KAFKA_CP" org.apache.kafka.tools.ProducerPerformance \
	    --topic bench.perf --num-records "$KAFKA_EVENTS" --throughput -1 \
	    --payload-file "$RUN/kafka.values" --producer.config "$RUN/kafka-perf.properties" \
	    2>>"$RUN/kafka-perf.err" | tail -n 1) ||
		die "kafka: kafka-producer-perf-test failed: $(tail -n 3 "$RUN/kafka-perf.err")"
	hw1=$(kafka_hw bench.perf)
	[ $((hw1 - hw0)) -eq "$KAFKA_EVENTS" ] ||
		die "kafka: kafka-producer-perf-test: $((hw1 - hw0)) records landed, expected $KAFKA_EVENTS"
	[[ $out =~ ^$KAFKA_EVENTS\ records\ sent,\ ([0-9.]+)\ records/sec ]] ||
		die "kafka: kafka-producer-perf-test said '$out'"
	KJ_EPS+=" $(calc "${BASH_REMATCH[1]}" %.0f)"
}

stage_kafka() {
	local i p mw mk mj sec="real broker: Apache Kafka, SASL_SSL"
	KAFKA_EVENTS=${BENCH_KAFKA_EVENTS:-100000}
	is_uint "$KAFKA_EVENTS" && [ "$KAFKA_EVENTS" -gt 0 ] ||
		die "BENCH_KAFKA_EVENTS must be a whole number > 0"
	dry_records "$KAFKA_EVENTS"
	kafka_shims
	log "kafka: starting the broker"
	kafka_start "w2k=$PW"
	W2K_TOPICS=(${TOPICS//,/ })
	kafka_create_topics 4 "${W2K_TOPICS[@]}"
	kafka_create_topics "$KCAT_PARTS" "$KCAT_TOPIC" bench.perf
	kafka_grant User:w2k Write Describe Read -- "${W2K_TOPICS[@]}" "$KCAT_TOPIC" bench.perf
	local sasl=(security.protocol=SASL_SSL sasl.mechanisms=PLAIN sasl.username=w2k
	    "sasl.password=$PW" "ssl.ca.location=$CERTS/ca.pem")
	KCAT_B=$BOOTSTRAP_SASL KCAT_SEC=() KCAT_X=()
	for p in "${sasl[@]}"; do KCAT_SEC+=(-X "$p"); done
	for p in "${sasl[@]}" "${KPROPS[@]}"; do KCAT_X+=(-X "$p"); done
	W2K_BROKERS=$BOOTSTRAP_SASL
	W2K_KPROPS="security_protocol = \"SASL_SSL\"; sasl_mechanisms = \"PLAIN\"; sasl_username = \"w2k\"; ssl_ca_location = \"$CERTS/ca.pem\";"
	W2K_KAFKA=" sasl_password_file = \"$RUN/secret\";"
	cut -f 2- "$RUN/kcat.input" >"$RUN/kafka.values"
	cat >"$RUN/kafka-perf.properties" <<EOF
bootstrap.servers=$BOOTSTRAP_SASL
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="w2k" password="$PW";
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.pem
acks=all
enable.idempotence=true
linger.ms=$LINGER
EOF
	KSTART=$(KCAT_TOPIC=$KCAT_TOPIC kcat_startup)
	# The producers take turns, run by run, so a slow phase of the
	# machine or of the broker falls on all three alike.
	KW_EPS='' KW_CPU='' KK_EPS='' KJ_EPS=''
	for ((i = 1; i <= REPEAT; i++)); do
		log "kafka: run $i of $REPEAT: wsi2kafka, kcat -P, kafka-producer-perf-test ($KAFKA_EVENTS records each)"
		kafka_daemon_run "$i"
		kafka_kcat_run
		kafka_perf_run
	done
	KCAT_B='' KCAT_SEC=() W2K_BROKERS='' W2K_KPROPS='' W2K_KAFKA=''
	kafka_stop
	# shellcheck disable=SC2086 # the runs, one word each
	mw=$(median $KW_EPS) mk=$(median $KK_EPS) mj=$(median $KJ_EPS)
	row "$sec" "Apache Kafka version" "$(kafka_version)"
	row "$sec" "wsi2kafka events/s, median of $REPEAT (each)" "$mw (${KW_EPS# })"
	row "$sec" "wsi2kafka CPU s per million events (each)" "${KW_CPU# }"
	row "$sec" "kcat -P records/s, median (each)" "$mk (${KK_EPS# })"
	row "$sec" "kafka-producer-perf-test records/s, median (each)" "$mj (${KJ_EPS# })"
	row "$sec" "wsi2kafka / kcat -P" "$(calc "$mw / $mk" %.3f)"
	row "$sec" "wsi2kafka / kafka-producer-perf-test" "$(calc "$mw / $mj" %.3f)"
	row "$sec" "kcat -P / kafka-producer-perf-test" "$(calc "$mk / $mj" %.3f)"
	jadd '.kafka = {broker: ("Apache Kafka " + $v), listener: "SASL_SSL (PLAIN)", records: ($n|tonumber),
	    wsi2kafka_events_per_s: ($w|ltrimstr(" ")|split(" ")|map(tonumber)),
	    wsi2kafka_cpu_seconds_per_million: ($c|ltrimstr(" ")|split(" ")|map(tonumber)),
	    kcat_records_per_s: ($k|ltrimstr(" ")|split(" ")|map(tonumber)),
	    perf_test_records_per_s: ($j|ltrimstr(" ")|split(" ")|map(tonumber)),
	    median: {wsi2kafka: ($mw|tonumber), kcat: ($mk|tonumber), perf_test: ($mj|tonumber)},
	    ratio: {wsi2kafka_to_kcat: (($mw|tonumber) / ($mk|tonumber)),
	        wsi2kafka_to_perf_test: (($mw|tonumber) / ($mj|tonumber))}}' \
	    --arg v "$(kafka_version)" --arg n "$KAFKA_EVENTS" --arg w "$KW_EPS" \
	    --arg c "$KW_CPU" --arg k "$KK_EPS" --arg j "$KJ_EPS" \
	    --arg mw "$mw" --arg mk "$mk" --arg mj "$mj"
}

# quantiles A B [FAMILY]: from two scrapes, the window's histogram FAMILY
# (default wsi2kafka_delivery_latency_seconds): prints "count mean_s p50 lo
# hi p99 lo hi p999 lo hi" (seconds; a quantile in the +Inf bucket prints
# its lower bound and hi "inf").
quantiles() {
	awk -v fam="${3:-wsi2kafka_delivery_latency_seconds}" '
	FNR == 1 { f++ }
	index($0, fam "_bucket{") == 1 {
		le = $0; sub(/.*le="/, "", le); sub(/".*/, "", le)
		if (f == 1) a[le] = $NF
		else { b[le] = $NF; order[n++] = le }
	}
	index($0, fam "_sum ") == 1 { if (f == 1) sa = $NF; else sb = $NF }
	index($0, fam "_count ") == 1 { if (f == 1) ca = $NF; else cb = $NF }
	function q(p,   rank, i, lo, prev, c, hi) {
		rank = p * total; lo = 0; prev = 0
		for (i = 0; i < n; i++) {
			c = b[order[i]] - a[order[i]]
			if (c >= rank && c > 0) {
				if (order[i] == "+Inf")
					return sprintf("%.9f %.9f inf", lo, lo)
				hi = order[i] + 0
				return sprintf("%.9f %.9f %.9f",
				    lo + (hi - lo) * (rank - prev) / (c - prev), lo, hi)
			}
			prev = c
			if (order[i] != "+Inf") lo = order[i] + 0
		}
		return "nan nan nan"
	}
	END {
		total = cb - ca
		if (total <= 0) { print 0; exit }
		printf "%d %.9f %s %s %s\n", total, (sb - sa) / total,
		    q(0.5), q(0.99), q(0.999)
	}' "$1" "$2"
}

# ms X: seconds to milliseconds for the table (3 significant digits).
ms() { if [ "$1" = inf ]; then echo inf; else calc "$1 * 1000" %.3g; fi; }

declare -A P99
stage_latency_one() {
	local rate=$1 name=lat-$1 n t0 ta tb ea pa hwm
	local cnt mean p50 p50l p50h p99 p99l p99h p999 p999l p999h
	n=$(calc "$rate * ($WARMUP + $RATE_SECONDS + 3)" %.0f)
	log "latency: $rate events/s offered, ${WARMUP} s warm-up, ${RATE_SECONDS} s window"
	# 1 s for the producer to connect before the first frame.
	printf '@sleep 1000\n@flood %d\n@end\n' "$n" >"$RUN/$name.script"
	start_pbxsim "$name" --script "$RUN/$name.script" --rate "$rate"
	write_conf "$name" "${BENCH_LAT_FSYNC:-batch}"
	start_daemon "$name"
	wait_until 30 has_flood "$name" start || die "$name: the flood did not start within 30 s"
	t0=$(flood_time "$name" start)
	sleep "$(calc "$t0 + $WARMUP - $EPOCHREALTIME > 0 ? $t0 + $WARMUP - $EPOCHREALTIME : 0" %.3f)"
	scrape "$RUN/$name.a" || die "$name: /metrics did not answer"
	ta=$M_T ea=$M_FRAMES pa=$M_PROD
	sleep "$RATE_SECONDS"
	scrape "$RUN/$name.b" || die "$name: /metrics did not answer"
	tb=$M_T
	has_flood "$name" 'done' &&
		log "$name: warning: the flood ended inside the window"
	hwm=$(hwm_kib "$DPID")
	HWM_RUN[$name]=$hwm
	stop_pbxsim
	stop_daemon "$name"
	rm -rf "$RUN/$name.spool"
	read -r cnt mean p50 p50l p50h p99 p99l p99h p999 p999l p999h \
	    < <(quantiles "$RUN/$name.a" "$RUN/$name.b")
	[ "${cnt:-0}" -gt 0 ] || die "$name: no delivery in the measurement window"
	local sec="latency at $rate events/s"
	row "$sec" "offered (pbxsim) / received / acked, events/s" \
	    "$rate / $(calc "($M_FRAMES - $ea) / ($tb - $ta)" %.0f) / $(calc "($M_PROD - $pa) / ($tb - $ta)" %.0f)"
	row "$sec" "p50, ms (bucket)" "$(ms "$p50") ($(ms "$p50l")-$(ms "$p50h"))"
	row "$sec" "p99, ms (bucket)" "$(ms "$p99") ($(ms "$p99l")-$(ms "$p99h"))"
	row "$sec" "p99.9, ms (bucket)" "$(ms "$p999") ($(ms "$p999l")-$(ms "$p999h"))"
	row "$sec" "mean, ms; deliveries in $(calc "$tb - $ta" %.1f) s" "$(ms "$mean"); $cnt"
	# The part after the daemon: rd_kafka_producev() to the acknowledgement
	# (linger.ms, librdkafka's queues, the mock broker's round trip).
	local acnt amean a50 a50l a50h a99 a99l a99h a999 a999l a999h
	read -r acnt amean a50 a50l a50h a99 a99l a99h a999 a999l a999h \
	    < <(quantiles "$RUN/$name.a" "$RUN/$name.b" wsi2kafka_kafka_ack_latency_seconds)
	[ "${acnt:-0}" -gt 0 ] || die "$name: no acknowledgement in wsi2kafka_kafka_ack_latency_seconds"
	row "$sec" "of which librdkafka + broker: p50 / p99 / p99.9, ms" \
	    "$(ms "$a50") / $(ms "$a99") / $(ms "$a999")"
	row "$sec" "the daemon's own part: mean delivery - mean ack, ms" \
	    "$(calc "($mean - $amean) * 1000" %.3f)"
	row "$sec" "daemon peak RSS (VmHWM), MiB" "$(calc "$hwm / 1024" %.1f)"
	P99[$rate]=$p99
	jadd '.latency += [{offered_eps: ($r|tonumber),
	    received_eps: ($re|tonumber), acked_eps: ($ra|tonumber),
	    window_seconds: ($w|tonumber), deliveries: ($c|tonumber),
	    mean_ms: ($mean|tonumber * 1000),
	    p50_ms: ($p50|tonumber * 1000), p50_bucket_ms: [($p50l|tonumber * 1000), ($p50h|if . == "inf" then null else tonumber * 1000 end)],
	    p99_ms: ($p99|tonumber * 1000), p99_bucket_ms: [($p99l|tonumber * 1000), ($p99h|if . == "inf" then null else tonumber * 1000 end)],
	    p999_ms: ($p999|tonumber * 1000), p999_bucket_ms: [($p999l|tonumber * 1000), ($p999h|if . == "inf" then null else tonumber * 1000 end)],
	    ack_p50_ms: ($a50|tonumber * 1000), ack_p99_ms: ($a99|tonumber * 1000),
	    ack_p999_ms: ($a999|tonumber * 1000), ack_mean_ms: ($amean|tonumber * 1000),
	    peak_rss_kib: ($h|tonumber)}]' \
	    --arg r "$rate" --arg re "$(calc "($M_FRAMES - $ea) / ($tb - $ta)" %.0f)" \
	    --arg ra "$(calc "($M_PROD - $pa) / ($tb - $ta)" %.0f)" \
	    --arg w "$(calc "$tb - $ta")" --arg c "$cnt" --arg mean "$mean" \
	    --arg p50 "$p50" --arg p50l "$p50l" --arg p50h "$p50h" \
	    --arg p99 "$p99" --arg p99l "$p99l" --arg p99h "$p99h" \
	    --arg p999 "$p999" --arg p999l "$p999l" --arg p999h "$p999h" --arg h "$hwm" \
	    --arg a50 "$a50" --arg a99 "$a99" --arg a999 "$a999" --arg amean "$amean"
}

stage_latency() {
	local r
	for r in $RATES; do stage_latency_one "$r"; done
}

# cg_run NAME EVENTS: one flood with the daemon under callgrind; writes
# $RUN/NAME.cg (callgrind's output, every thread in one file).
cg_run() {
	local name=$1 n=$2
	log "callgrind: $n events"
	printf "@sleep 500\n@flood %d\n@end\n" "$n" >"$RUN/$name.script"
	start_pbxsim "$name" --script "$RUN/$name.script"
	write_conf "$name" batch
	W2K_PREFIX=(valgrind --tool=callgrind --callgrind-out-file="$RUN/$name.cg"
	    --dump-instr=no --collect-jumps=no)
	start_daemon "$name"
	W2K_PREFIX=()
	scrape || die "$name: /metrics did not answer"
	poll_produced "$n" $((TIMEOUT_BASE + n / 200)) "$name"
	flood_down "$name"
	[ -s "$RUN/$name.cg" ] || die "$name: callgrind wrote nothing"
}

# cg_modules FILE: "module Ir" lines, the exclusive instruction counts of
# a callgrind output file (--dump-instr=no) by module: the daemon's own
# code by source file (src/x.c), everything else by shared object
# (libssl.so.3, ...). Read from the file itself (callgrind_annotate names
# the object only on some lines); the cost line after "calls=" is the
# callee's inclusive cost and is skipped.
cg_modules() {
	awk '
	function nm(kind, s,   id, rest) {	# "(id) name" defines, "(id)" refers
		if (match(s, /^\([0-9]+\)/)) {
			id = substr(s, 2, RLENGTH - 2); rest = substr(s, RLENGTH + 1)
			sub(/^ /, "", rest)
			if (rest != "") names[kind, id] = rest
			return names[kind, id]
		}
		return s
	}
	/^ob=/ { ob = nm("ob", substr($0, 4)); next }
	/^fl=/ { fl = nm("fl", substr($0, 4)); file = fl; next }
	/^(fi|fe)=/ { file = nm("fl", substr($0, 4)); next }
	/^fn=/ { nm("fn", substr($0, 4)); file = fl; next }
	/^c(ob|fi|fl)=/ { k = substr($0, 2, 2); if (k == "fi") k = "fl"; nm(k, substr($0, 5)); next }
	/^cfn=/ { nm("fn", substr($0, 5)); next }
	/^calls=/ { skip = 1; next }
	/^[0-9+*-]/ {
		if (skip) { skip = 0; next }
		if (match(file, /src\/[a-z_0-9]+\.c$/)) m = substr(file, RSTART)
		else { m = ob; sub(/.*\//, "", m); if (m == "") m = "other" }
		ir[m] += $2
		next
	}
	END { for (m in ir) print m, ir[m] }' "$1"
}

cg_total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

stage_callgrind() {
	local n1=$CG_EVENTS n2=$((5 * CG_EVENTS)) t1 t2 per m v
	command -v valgrind >/dev/null || die "callgrind: valgrind missing (make deps)"
	cg_run cg-small "$n1"
	cg_run cg-large "$n2"
	t1=$(cg_total "$RUN/cg-small.cg") t2=$(cg_total "$RUN/cg-large.cg")
	[ -n "$t1" ] && [ -n "$t2" ] || die "callgrind: no totals in the output"
	per=$(calc "($t2 - $t1) / ($n2 - $n1)" %.0f)
	CG_PER=$per
	row "instructions per event (callgrind)" "all threads, ${n1} vs ${n2} events" "$per"
	jadd '.callgrind = {events: [($a|tonumber), ($b|tonumber)], instructions_per_event: ($p|tonumber), modules: {}}' \
	    --arg a "$n1" --arg b "$n2" --arg p "$per"
	declare -A M1=()
	while read -r m v; do M1[$m]=$v; done < <(cg_modules "$RUN/cg-small.cg")
	while read -r m v; do
		v=$(calc "($v - ${M1[$m]:-0}) / ($n2 - $n1)" %.0f)
		[ "$v" -ge 50 ] 2>/dev/null || continue
		printf '%s %s\n' "$v" "$m"
	done < <(cg_modules "$RUN/cg-large.cg") | sort -rn >"$RUN/cg-modules.txt"
	while read -r v m; do
		row "instructions per event (callgrind)" "  $m" "$v"
		jadd '.callgrind.modules[$m] = ($v|tonumber)' --arg m "$m" --arg v "$v"
	done <"$RUN/cg-modules.txt"
	[ "$KEEP" = 1 ] || rm -f "$RUN"/cg-*.cg
}

stage_drain() {
	local name=drain t0 tfill tup tfirst tempty pt pp secs eps eps_all hwm sbytes
	log "drain: brokers down, $DRAIN events into the spool, brokers up"
	kmock_cmd downall
	start_pbxsim "$name" --flood "$DRAIN"
	write_conf "$name" batch 'max_bytes = "16G";'
	start_daemon "$name"
	# Fill: every event received and spooled.
	local end=$((SECONDS + $(bound "$DRAIN")))
	scrape || die "drain: /metrics did not answer"
	while [ "$M_SPOOL" -lt "$DRAIN" ]; do
		[ $SECONDS -lt $end ] || die "drain: $M_SPOOL of $DRAIN records spooled after $(bound "$DRAIN") s ($M_FRAMES frames received)"
		kill -0 "$DPID" 2>/dev/null || die "drain: the daemon died"
		sleep 0.5
		scrape || die "drain: /metrics did not answer"
	done
	tfill=$M_T sbytes=$M_SBYTES
	t0=$(flood_time "$name" start)
	[ "$M_PROD" -eq 0 ] || die "drain: $M_PROD records acknowledged while the brokers were down"
	[ "$M_DROPPED" -eq 0 ] || die "drain: the spool dropped $M_DROPPED records"
	kmock_cmd upall
	tup=$EPOCHREALTIME
	# Drain: from the first acknowledgement to an empty spool.
	end=$((SECONDS + $(bound "$DRAIN")))
	tfirst='' pt=$tup pp=0
	while :; do
		scrape || die "drain: /metrics did not answer"
		if [ -z "$tfirst" ] && [ "$M_PROD" -gt 0 ]; then
			tfirst=$(calc "($pt + $M_T) / 2")	# between the two polls
		fi
		[ "$M_SPOOL" -eq 0 ] && break
		[ $SECONDS -lt $end ] || die "drain: $M_SPOOL records still spooled after $(bound "$DRAIN") s ($M_PROD acknowledged)"
		kill -0 "$DPID" 2>/dev/null || die "drain: the daemon died"
		pt=$M_T pp=$M_PROD
		sleep "$POLL_S"
	done
	# The last acknowledgement, interpolated like poll_produced's crossing.
	if [ "$M_PROD" -gt "$pp" ] && [ "$pp" -lt "$DRAIN" ]; then
		tempty=$(calc "$pt + ($M_T - $pt) * ($DRAIN - $pp) / ($M_PROD - $pp)")
	else
		tempty=$M_T
	fi
	[ -n "$tfirst" ] || tfirst=$tup
	[ "$M_PROD" -ge "$DRAIN" ] || die "drain: the spool is empty but only $M_PROD of $DRAIN were acknowledged"
	hwm=$(hwm_kib "$DPID")
	HWM_RUN[$name]=$hwm
	stop_pbxsim
	stop_daemon "$name"
	rm -rf "$RUN/$name.spool"
	secs=$(calc "$tempty - $tfirst")
	eps=$(calc "$DRAIN / $secs" %.0f)
	eps_all=$(calc "$DRAIN / ($tempty - $tup)" %.0f)
	DRAIN_EPS=$eps
	local sec="drain of $DRAIN spooled records"
	row "$sec" "records/s (first ack -> spool empty)" "$eps"
	row "$sec" "seconds (first ack -> spool empty)" "$(calc "$secs" %.2f)"
	row "$sec" "reconnect after upall (librdkafka backoff), s" "$(calc "$tfirst - $tup" %.2f)"
	row "$sec" "records/s including the reconnect" "$eps_all"
	row "$sec" "fill with brokers down, events/s" "$(calc "$DRAIN / ($tfill - $t0)" %.0f)"
	row "$sec" "spool size full, MiB" "$(calc "$sbytes / 1048576" %.0f)"
	row "$sec" "daemon peak RSS (VmHWM), MiB" "$(calc "$hwm / 1024" %.1f)"
	jadd '.drain = {records: ($n|tonumber), seconds: ($s|tonumber),
	    records_per_s: ($e|tonumber), reconnect_seconds: ($rc|tonumber),
	    records_per_s_including_reconnect: ($ea|tonumber),
	    fill_events_per_s: ($f|tonumber), spool_bytes_full: ($sb|tonumber),
	    peak_rss_kib: ($h|tonumber)}' \
	    --arg n "$DRAIN" --arg s "$secs" --arg e "$eps" \
	    --arg rc "$(calc "$tfirst - $tup")" --arg ea "$eps_all" \
	    --arg f "$(calc "$DRAIN / ($tfill - $t0)" %.0f)" --arg sb "$sbytes" \
	    --arg h "$hwm"
}

# target NAME DESCRIPTION VALUE OP LIMIT UNIT: PASS/MISS (SKIP without value).
target() {
	local name=$1 desc=$2 v=$3 op=$4 lim=$5 unit=$6 st
	if [ -z "$v" ]; then
		st=SKIP
	elif calc "$v $op $lim" %d | grep -q 1; then
		st=PASS
	else
		st=MISS; MISSES=$((MISSES + 1))
	fi
	local shown="not measured"
	[ -z "$v" ] || shown="$v $unit"
	row "targets (issue #6)" "$desc" "$shown" "$op $lim $unit" "$st"
	jadd '.targets += [{name: $n, description: $d, value: (if $v == "" then null else ($v|tonumber) end),
	    op: $op, limit: ($l|tonumber), unit: $u, status: $s}]' \
	    --arg n "$name" --arg d "$desc" --arg v "$v" --arg op "$op" --arg l "$lim" \
	    --arg u "$unit" --arg s "$st"
}

# ------------------------------------------------------------------ main

for v in EVENTS CG_EVENTS CG_LIMIT DRAIN RATE_SECONDS WARMUP POLL_MS MIN_EPS TIMEOUT_BASE SPOOL_RECORDS LINGER REPEAT; do
	is_uint "${!v}" || { echo "bench: $v must be a whole number, not '${!v}'" >&2; exit 64; }
done
[ "$REPEAT" -ge 1 ] || { echo "bench: BENCH_REPEAT must be 1 or more" >&2; exit 64; }
for r in $RATES; do is_uint "$r" && [ "$r" -gt 0 ] || { echo "bench: BENCH_RATES: bad rate '$r'" >&2; exit 64; }; done
for m in $FSYNC_MODES; do
	case $m in batch|never|always) ;; *) echo "bench: BENCH_FSYNC_MODES: bad mode '$m'" >&2; exit 64 ;; esac
done
[ "$EVENTS" -gt 0 ] && [ "$DRAIN" -gt 0 ] && [ "$MIN_EPS" -gt 0 ] && [ "$POLL_MS" -gt 0 ] ||
	{ echo "bench: BENCH_EVENTS, BENCH_DRAIN_RECORDS, BENCH_MIN_EPS, BENCH_POLL_MS must be > 0" >&2; exit 64; }
for x in "$W2K" "$PBXSIM" "$KMOCK"; do
	[ -x "$x" ] || { echo "bench: $x missing: make B=$B all tests (or make bench)" >&2; exit 2; }
done
for c in kcat jq curl ss awk; do
	command -v "$c" >/dev/null || { echo "bench: $c missing: make deps" >&2; exit 2; }
done

mkdir -p "$RUN" || exit 2
rm -rf "${RUN:?}"/*
printf '%s\n' "$PW" >"$RUN/secret"
chmod 600 "$RUN/secret"
CERTS=$(realpath -m "$B/certs")
[ -f "$CERTS/server.pem" ] || bash tests/lib/mkcerts.sh "$CERTS" >/dev/null 2>&1 || die "mkcerts"

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=true
jq -n --arg c "$commit" --argjson d "$dirty" --arg date "$(date -u +%FT%TZ)" \
    --arg host "$(hostname)" --arg cores "$(nproc)" \
    --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    --arg mem "$(awk '/^MemTotal:/ { print $2; exit }' /proc/meminfo)" \
    --arg kernel "$(uname -r)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg rdk "$(pkg-config --modversion rdkafka 2>/dev/null || echo unknown)" \
    --arg b "$B" --arg ver "$("$W2K" -V 2>&1 | head -n 1)" \
    --arg ev "$EVENTS" --arg fm "$FSYNC_MODES" --arg rates "$RATES" \
    --arg rs "$RATE_SECONDS" --arg wu "$WARMUP" --arg dr "$DRAIN" \
    --arg lg "$LINGER" --arg poll "$POLL_MS" --arg me "$MIN_EPS" \
    --arg tb "$TIMEOUT_BASE" --arg rp "$REPEAT" --arg st "$STAGES" \
    --argjson bounds "$(sed -n '/^#define HISTO_BOUNDS/,/}/p' include/histo.h |
        tr -d '\\\n\t' | sed 's/.*{\(.*\)}.*/[\1]/')" '{
	benchmark: "wsi2kafka end to end (issue #6): pbxsim -> wsi2kafka -> kmock on loopback",
	commit: $c, dirty: $d, date: $date, version: $ver,
	machine: {host: $host, cores: ($cores|tonumber), cpu: $cpu,
	    mem_kib: ($mem|tonumber), kernel: $kernel, loadavg_at_start: $load,
	    librdkafka: $rdk},
	build: $b,
	parameters: {events: ($ev|tonumber), fsync_modes: ($fm|split(" ")|map(select(. != ""))),
	    rates_eps: ($rates|split(" ")|map(select(. != "")|tonumber)),
	    rate_window_seconds: ($rs|tonumber), warmup_seconds: ($wu|tonumber),
	    drain_records: ($dr|tonumber), linger_ms: ($lg|tonumber),
	    metrics_poll_ms: ($poll|tonumber), stuck_below_eps: ($me|tonumber),
	    timeout_base_seconds: ($tb|tonumber), repeat: ($rp|tonumber),
	    stages: ($st|split(" ")|map(select(. != ""))),
	    latency_bucket_bounds_seconds: $bounds},
	throughput: [], latency: [], spool_bench: [], norm_bench: [], targets: []
    }' >"$RUN/results.json" || die "jq: cannot start the result document"

log "commit $commit$([ "$dirty" = true ] && echo ' (uncommitted changes)'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# Profile: where the CPU of one flood goes natively, per thread group and
# module: perf samples every thread of the daemon (cpu-clock, which counts
# only while a thread runs) from before the flood to its last ack; each
# sample carries its period, the CPU time it stands for. Kernel samples need root (or
# perf_event_paranoid <= 1); without them the kernel's share is missing.
# Not among the default stages: it needs perf (linux-perf).
stage_profile() {
	local name=profile n=$PROFILE_EVENTS hz=$PROFILE_HZ ppid prod0 total dpid
	local pstart t0 c0 c1
	command -v perf >/dev/null || die "profile: perf missing (apt-get install linux-perf)"
	log "profile: perf record of a flood of $n events, $hz Hz"
	flood_up "$name" "$n" batch 2000	# perf attaches well before it
	scrape || die "$name: /metrics did not answer"
	prod0=$M_PROD dpid=$DPID
	perf record -q -F "$hz" -e cpu-clock -p "$dpid" -o "$RUN/$name.data" \
	    >"$RUN/$name.perf.log" 2>&1 &
	ppid=$!; PIDS+=("$ppid")
	sleep 0.5
	pstart=$EPOCHREALTIME c0=$(cpu_ticks "$dpid")
	poll_produced $((prod0 + n)) "$(bound "$n")" "$name"
	c1=$(cpu_ticks "$dpid")
	kill -INT "$ppid" 2>/dev/null
	wait "$ppid" 2>/dev/null
	t0=$(flood_time "$name" start)
	flood_down "$name"
	[ -s "$RUN/$name.data" ] || die "profile: perf wrote nothing: $(tail -n 3 "$RUN/$name.perf.log")"
	[ -n "$t0" ] && calc "$t0 > $pstart" %d | grep -q 1 ||
		die "profile: the flood started before perf was attached (busy machine?)"
	# One line per sample: comm, tid, its period (ns of CPU: cpu-clock
	# counts only while a thread runs, and a throttled sample has a
	# longer one), the object it ran in; grouped as in the throughput
	# stage (event loop = the main thread).
	perf script -i "$RUN/$name.data" -F comm,tid,period,ip,dso 2>/dev/null |
	    awk -v pid="$dpid" -v n="$n" '
		{ d = $NF; gsub(/[()]/, "", d); k = split(d, a, "/"); d = a[k]
		  if (d == "unknown") d = "[unknown]"
		  g = $2 == pid ? "event loop" : ($1 ~ /^rdk:/ ? "librdkafka threads" : "other threads")
		  c[g "\t" d] += $3; t[g] += $3; all += $3 }
		END { for (k in c) printf "%.3f\t%s\n", c[k] / 1e3 / n, k
		      for (g in t) printf "%.3f\t%s\t(all)\n", t[g] / 1e3 / n, g
		      printf "%.3f\tall threads\t(all)\n", all / 1e3 / n }' |
	    sort -t $'\t' -k2,2 -k1,1gr >"$RUN/$name.txt"
	total=$(awk -F'\t' '$2 == "all threads" { print $1 }' "$RUN/$name.txt")
	[ -n "$total" ] || die "profile: no samples of the daemon"
	grep -q 'kernel' "$RUN/$name.txt" ||
		log "profile: warning: no kernel samples (not root, perf_event_paranoid > 1): the kernel's share is missing"
	jadd '.profile = {events: ($n|tonumber), hz: ($h|tonumber), cpu_us_per_event: ($t|tonumber), modules: []}' \
	    --arg n "$n" --arg h "$hz" --arg t "$total"
	local us g m
	while IFS=$'\t' read -r us g m; do
		[ "$g" = "all threads" ] && continue
		# Modules under 0.05 µs per event are left out of the table.
		calc "$us >= 0.05" %d | grep -q 1 || continue
		row "profile (perf, CPU µs per event)" "$g: $m" "$us"
		jadd '.profile.modules += [{threads: $g, module: $m, cpu_us_per_event: ($u|tonumber)}]' \
		    --arg g "$g" --arg m "$m" --arg u "$us"
	done <"$RUN/$name.txt"
	row "profile (perf, CPU µs per event)" "all threads" "$total"
	# The same window by /proc, as a check on the sampling.
	row "profile (perf, CPU µs per event)" "all threads by /proc (utime+stime), the same window" \
	    "$(calc "($c1 - $c0) / $CLK_TCK * 1000000 / $n" %.3f)"
	# What is left with the daemon's own code (the wsi2kafka binary) at
	# zero: the libraries, libc and the kernel, for its threads.
	local lib
	lib=$(awk -F'\t' '$3 != "(all)" && $3 != "wsi2kafka" { s += $1 } END { printf "%.3f", s }' "$RUN/$name.txt")
	row "profile (perf, CPU µs per event)" "all threads, without the daemon's own code" "$lib"
	jadd '.profile.without_own_code_us_per_event = ($l|tonumber)' --arg l "$lib"
	# The parts docs/performance.md calls the floor: librdkafka (its
	# threads whole, and its own code on the loop), libwebsockets,
	# OpenSSL, and the kernel on the loop and the other threads.
	local part v
	while IFS=$'\t' read -r part v; do
		row "profile (perf, CPU µs per event)" "floor part: $part" "$v"
		jadd '.profile.floor[$p] = ($v|tonumber)' --arg p "$part" --arg v "$v"
	done < <(awk -F'\t' '$3 == "(all)" { next }
		{ if ($2 == "librdkafka threads" || $3 ~ /^librdkafka/) k = "librdkafka"
		  else if ($3 ~ /^libwebsockets/) k = "libwebsockets"
		  else if ($3 ~ /^lib(crypto|ssl)/) k = "OpenSSL"
		  else if ($3 ~ /kernel/) k = "kernel"
		  else next
		  v[k] += $1; all += $1 }
		END { for (k in v) printf "%s\t%.3f\n", k, v[k]
		      printf "the four\t%.3f\n", all }' "$RUN/$name.txt" | sort)
	[ "$KEEP" = 1 ] || rm -f "$RUN/$name.data"
}

stage_on() { [[ $STAGES == *" $1 "* ]]; }
stage_on spool && stage_spool
stage_on norm && stage_norm
if stage_on throughput || stage_on ceiling || stage_on latency || stage_on callgrind || stage_on profile || stage_on drain || stage_on kafka; then
	start_kmock
fi
stage_on throughput && stage_throughput
stage_on ceiling && stage_ceiling
stage_on latency && stage_latency
stage_on callgrind && stage_callgrind
stage_on profile && stage_profile
stage_on drain && stage_drain
stage_on kafka && stage_kafka

# Peak RSS "throughout": the largest VmHWM of every daemon run, the drain's
# included (with the brokers down librdkafka may hold up to
# queue.buffering.max.kbytes of records; the brokers-up peak is shown too).
max_hwm='' max_run='' up_hwm=''
for k in "${!HWM_RUN[@]}"; do
	if [ -z "$max_hwm" ] || [ "${HWM_RUN[$k]}" -gt "$max_hwm" ]; then
		max_hwm=${HWM_RUN[$k]} max_run=$k
	fi
	[ "$k" = drain ] && continue
	if [ -z "$up_hwm" ] || [ "${HWM_RUN[$k]}" -gt "$up_hwm" ]; then
		up_hwm=${HWM_RUN[$k]}
	fi
done
[ -n "$up_hwm" ] && row "peak RSS (VmHWM)" "largest with the brokers up, MiB" "$(calc "$up_hwm / 1024" %.1f)"
[ -n "$max_hwm" ] && row "peak RSS (VmHWM)" "largest of every run, MiB (run)" "$(calc "$max_hwm / 1024" %.1f) ($max_run)"
jadd '.peak_rss_kib = {every_run: (if $a == "" then null else ($a|tonumber) end), run: $r,
    brokers_up: (if $u == "" then null else ($u|tonumber) end)}' \
    --arg a "$max_hwm" --arg r "$max_run" --arg u "$up_hwm"
target throughput_fsync_batch "throughput, fsync=batch" "${TPUT[batch]:-}" '>=' 100000 events/s
ratio=
[ -n "${TPUT[batch]:-}" ] && [ -n "${KCAT_EPS:-}" ] && ratio=$(calc "${TPUT[batch]} / $KCAT_EPS" %.3f)
target kcat_ratio "share of the kcat ceiling, fsync=batch" "$ratio" '>=' 0.5 ""
target p99_10k "p99 latency at 10000 events/s" "$([ -n "${P99[10000]:-}" ] && calc "${P99[10000]} * 1000" %.3f)" '<=' 10 ms
target peak_rss "peak RSS, every run (VmHWM)" "$([ -n "$max_hwm" ] && calc "$max_hwm / 1024" %.1f)" '<=' 64 MiB
target drain "drain of the spool" "${DRAIN_EPS:-}" '>=' 100000 records/s
target cg_instructions "instructions per event (callgrind)" "$CG_PER" '<=' "$CG_LIMIT" ""
jadd '.misses = ($m|tonumber) | .duration_seconds = ($d|tonumber) | .machine.loadavg_at_end = $l' \
    --arg m "$MISSES" --arg d "$((SECONDS - T_BEGIN))" --arg l "$(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$(dirname "$OUT")"
cp "$RUN/results.json" "$OUT" || die "cannot write $OUT"

# The table, also in results.txt beside the JSON.
{
echo
echo "wsi2kafka benchmark (issue #6) — commit ${commit:0:12}$([ "$dirty" = true ] && echo '+dirty'), $(date -u +%FT%TZ), $(nproc) cores, load at start $(jq -r .machine.loadavg_at_start "$OUT")"
echo "latency resolution: histogram buckets (ms): $(jq -r '.parameters.latency_bucket_bounds_seconds | map(. * 1000 | tostring) | join(" ")' "$OUT")"
prev=
for r in "${ROWS[@]}"; do
	IFS='|' read -r sec metric value tgt st <<<"$r"
	if [ "$sec" != "$prev" ]; then printf '\n%s\n' "$sec"; prev=$sec; fi
	if [ -n "$st" ]; then
		printf '  %-52s %-22s %-22s %s\n' "$metric" "$value" "$tgt" "$st"
	else
		printf '  %-52s %s\n' "$metric" "$value"
	fi
done
echo
echo "results: $OUT ($((SECONDS - T_BEGIN)) s)"
} | tee "${OUT%.json}.txt"
if [ "$MISSES" -gt 0 ]; then
	echo "MISS: $MISSES target(s) missed$([ "$STRICT" = 1 ] && echo ' (BENCH_STRICT=1: exit 1)')"
	[ "$STRICT" = 1 ] && exit 1
fi
exit 0
