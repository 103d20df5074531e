# tests/lib/readpath.sh — helpers of the read-path tests (230-239, contract
# §6: a frame is handled as soon as its last byte has left the socket),
# sourced after tests/integration/lib.sh.
TLSPLAY=$B/tests/tlsplay
[ -x "$TLSPLAY" ] || fail "$TLSPLAY not built (make tests)"
# The bound of contract §6 as the tests measure it: from the PBX's write
# (or from the end of the frame before, if the daemon was still busy with
# it) to the record on the daemon's standard output, scaled like every wait;
# plus the CPU time of the frame's own bytes (decrypting, parsing, printing
# 670 KB takes 45 ms in the ASan build, 650 ms under valgrind, and twice
# that when the tests share the cores): that is work, not a wait.
# NS_PER_BYTE is generous for the build; a PBX's pause after a frame must
# outlast its bound for a held frame to show (tlsplay --pause-per-byte).
BOUND_MS=$((100 * TIME_SCALE))
NS_PER_BYTE=$((UNDER_VALGRIND ? 3000 : 300))
# bound_ms BYTES: the bound for a frame of BYTES bytes.
bound_ms() { echo $((BOUND_MS + $1 * NS_PER_BYTE / 1000000)); }
# Pings far away: a ping must not be what wakes the socket.
export PING_INTERVAL=3000 IDLE_TIMEOUT=6000

# big_cdr N SESSION_ID: one call_cdr line (JSON) with N call targets, about
# 450 bytes each: a conference CDR (1,500 targets: about 670 KB).
big_cdr() {
	awk -v n="$1" -v sid="$2" 'BEGIN {
	printf "{\"event_type\":\"call_cdr\",\"session_id\":\"%s\",\"tenant_id\":\"883611252155219968\",\"call_id\":\"conf-%s\",\"direction\":\"inbound\",\"call_status\":\"answered\",\"caller\":\"1888722\",\"callee\":\"5000\",\"start_time\":\"1725845648\",\"ended_time\":\"1725849248\",\"ended_reason\":\"callee_disconnect\",\"talk_duration\":3600,\"call_targets\":[", sid, sid
	for (i = 0; i < n; i++)
		printf "%s{\"answered_time\":\"1725845648\",\"call_type\":\"normal_call\",\"callee\":\"%d\",\"callee_display_name\":\"Conference participant\",\"caller\":\"1888722\",\"destination\":\"sip:%d@192.168.1.93:8922\",\"did\":\"\",\"end_reason\":\"None\",\"ended_time\":\"1725849248\",\"id\":\"%d\",\"outbound_caller_id\":\"\",\"ring_duration\":\"2\",\"ring_time\":\"1725845646\",\"start_time\":\"1725845646\",\"status\":\"answered\",\"status_code\":0,\"talk_duration\":\"3600\",\"trunk_name\":\"122:883631675865563136\"}", (i ? "," : ""), 10000 + i, 10000 + i, 883611252155300000 + i
	printf "]}\n" }'
}

# sized_event BYTES SESSION_ID: a valid call_start of exactly BYTES bytes
# (padded), no newline.
sized_event() {
	awk -v n="$1" -v sid="$2" 'BEGIN {
	h = sprintf("{\"event_type\":\"call_start\",\"session_id\":\"%s\",\"tenant_id\":\"6\",\"call_id\":\"sized-%s\",\"time\":\"1705051422\",\"pad\":\"", sid, n)
	pad = n - length(h) - 2
	if (pad < 0) exit 1
	printf "%s", h
	s = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	while (pad >= 64) { printf "%s", s; pad -= 64 }
	printf "%s\"}", substr(s, 1, pad) }'
}

# small_call SESSION_ID: one small call_start line.
small_call() {
	printf '{"event_type":"call_start","session_id":"%s","tenant_id":"6","call_id":"small-%s","time":"1705051422"}\n' "$1" "$1"
}

# start_daemon_stamped ARGS...: like start_daemon, its standard output
# (the dry run's records) through `tlsplay --stamp` into $T/daemon.ts: each
# line prefixed with the wall-clock time it came out, the clock of pbxsim's
# --log-time and of tlsplay's log.
start_daemon_stamped() {
	rm -f "$T/daemon.fifo"
	mkfifo "$T/daemon.fifo"
	"$TLSPLAY" --stamp <"$T/daemon.fifo" >"$T/daemon.ts" &
	PIDS+=($!)
	"${W2K_CMD[@]}" -c "$T/w2k.conf" "$@" >"$T/daemon.fifo" 2>"$T/daemon.log" &
	DAEMON_PID=$!
}

# stamped_keys: "<time> <key>" of every record printed so far.
stamped_keys() {
	cut -c1-300 "$T/daemon.ts" |
	    sed -n 's/^\([0-9.]*\)\t{"topic":"[^"]*","key":"\([^"]*\)".*/\1 \2/p'
}
