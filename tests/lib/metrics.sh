# tests/lib/metrics.sh — helpers for the HTTP/metrics tests (150-179),
# sourced after tests/integration/lib.sh.
#
# Every scrape is checked whole by promparse (a strict parser of the text
# format 0.0.4, tests/lib/promparse.c) before any value is read; values are
# then looked up by series, labels sorted by name:
#   mval 'wsi2kafka_pbx_up{pbx="hq"}'
PROMPARSE=$B/tests/promparse
[ -x "$PROMPARSE" ] || fail "$PROMPARSE missing: make tests"
command -v curl >/dev/null || fail "curl missing: make deps"
# The listener's bounds, as compiled in (include/http.h).
HTTP_TIMEOUT_S=$(sed -n 's/^#define HTTP_TIMEOUT_S[[:space:]]*\([0-9]*\).*/\1/p' include/http.h)
HTTP_MAX_CONNS=$(sed -n 's/^#define HTTP_MAX_CONNS[[:space:]]*\([0-9]*\).*/\1/p' include/http.h)

# free_port (start_http_daemon retries on a collision)
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

# start_http_daemon ARGS...: the daemon with $T/w2k.conf plus an http group
# on a free port; waits until it listens. Sets HTTP_PORT and URL.
start_http_daemon() {
	local try
	grep -v '^http = ' "$T/w2k.conf" >"$T/w2k.conf.base"
	for try in 1 2 3 4 5; do
		HTTP_PORT=$(free_port) || fail "no free port"
		URL=http://127.0.0.1:$HTTP_PORT
		{ cat "$T/w2k.conf.base"
		  echo "http = { listen = \"127.0.0.1:$HTTP_PORT\"; };"; } >"$T/w2k.conf"
		start_daemon "$@"
		wait_for 20 http_listening && return 0
		if ! kill -0 "$DAEMON_PID" 2>/dev/null &&
		    grep -q 'cannot listen on .*in use' "$T/daemon.log"; then
			wait "$DAEMON_PID"; DAEMON_PID=
			echo "port $HTTP_PORT taken meanwhile (try $try)"
			continue
		fi
		fail "the HTTP listener did not start"
	done
	fail "no free port in 5 tries"
}
http_listening() { grep -q 'http: listening on' "$T/daemon.log"; }

# get PATH [CURL ARGS...]: body in $T/body, headers in $T/headers; prints
# the status code (000 when the connection failed).
get() {
	local path=$1; shift
	curl -sS -m $((10 * TIME_SCALE)) -o "$T/body" -D "$T/headers" -w '%{http_code}' "$@" \
	    "$URL$path" 2>"$T/curl.err" || true
}

# scrape: GET /metrics, must be 200 and a valid exposition; the samples go
# to $T/samples (one "series value" per line), the text to $T/metrics.txt.
scrape() {
	local code
	code=$(get /metrics)
	[ "$code" = 200 ] || fail "/metrics: HTTP $code $(cat "$T/curl.err")"
	cp "$T/body" "$T/metrics.txt"
	"$PROMPARSE" <"$T/metrics.txt" >"$T/samples" 2>"$T/promparse.err" ||
		fail "/metrics is not a valid exposition: $(cat "$T/promparse.err")"
}

# mval SERIES: its value in the last scrape (fails when absent).
mval() {
	awk -v k="$1" 'index($0, k " ") == 1 { print substr($0, length(k) + 2); f = 1 }
	    END { exit !f }' "$T/samples" || fail "no series $1 in /metrics"
}

# num_is A OP B: numeric comparison of two values (floats allowed);
# OP one of == != < <= > >=.
num_is() {
	awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
		a += 0; b += 0; r = 0
		if (op == "==") r = a == b; else if (op == "!=") r = a != b
		else if (op == "<") r = a < b; else if (op == "<=") r = a <= b
		else if (op == ">") r = a > b; else if (op == ">=") r = a >= b
		exit !r }'
}

# expect SERIES OP VALUE: check against the last scrape.
expect() {
	local v
	v=$(mval "$1")
	num_is "$v" "$2" "$3" || fail "$1 is $v, expected $2 $3"
}

# metric_is SERIES OP VALUE: scrape and check (for wait_for).
metric_is() {
	scrape
	num_is "$(awk -v k="$1" 'index($0, k " ") == 1 { print substr($0, length(k) + 2) }' \
	    "$T/samples")" "$2" "$3" && [ -n "$(grep -F -- "$1 " "$T/samples")" ]
}

# wait_metric SECONDS SERIES OP VALUE
wait_metric() {
	local secs=$1; shift
	wait_for "$secs" metric_is "$@" ||
		fail "$1 did not become $2 $3 within $secs s (last: $(awk -v k="$1" \
		    'index($0, k " ") == 1 { print substr($0, length(k) + 2) }' "$T/samples"))"
}

# sum_series PREFIX: the sum of every series starting with PREFIX.
sum_series() {
	awk -v k="$1" 'index($0, k) == 1 { s += $NF } END { print s + 0 }' "$T/samples"
}

# readyz_is CODE: GET /readyz answers CODE (for wait_for).
readyz_is() { [ "$(get /readyz)" = "$1" ]; }
