#!/usr/bin/env bash
# tests/demo.sh — what `make demo` runs: the mock Kafka cluster, the PBX
# simulator playing a realistic loop (presence, a call through to its CDR,
# queue events), wsi2kafka with conf/demo.conf, and kcat printing every
# record as it arrives: topic, key, value. Ctrl-C stops it;
# DEMO_SECONDS=N stops it by itself after N seconds.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/w2k-demo.XXXXXX")
PIDS=()
DAEMON=
cleanup() {
	trap - EXIT INT TERM
	# The daemon first, so it closes its sessions and flushes to Kafka
	# while both peers are still there.
	if [ -n "$DAEMON" ]; then kill -TERM "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null; fi
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
	echo "demo stopped"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

wait_file() { local i; for i in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "demo: $2 did not start" >&2; exit 1; }

bash tests/lib/mkcerts.sh "$T/certs" >/dev/null 2>&1 || { echo "demo: mkcerts failed" >&2; exit 1; }
TOPICS="portsip.cdr portsip.calls portsip.extensions portsip.queues portsip.events portsip.deadletter"
mkfifo "$T/kmock.ctl"
"$B/tests/kmock" --topics "$(echo $TOPICS | tr ' ' ,)" --bootstrap-file "$T/bootstrap" \
    --control "$T/kmock.ctl" >"$T/kmock.log" 2>&1 &
PIDS+=($!)
wait_file "$T/bootstrap" kmock
printf 'demo-Pa55\n' >"$T/demo.secret"; chmod 600 "$T/demo.secret"
"$B/tests/pbxsim" --cert "$T/certs/server.pem" --key "$T/certs/server.key" \
    --port-file "$T/pbx.port" --user admin --password demo-Pa55 --domain test.io \
    --script tests/demo/demo.script --loop --subs 4 >"$T/pbxsim.log" 2>&1 &
PIDS+=($!)
wait_file "$T/pbx.port" pbxsim
sed -e "s|@PBX_PORT@|$(cat "$T/pbx.port")|" -e "s|@BOOTSTRAP@|$(cat "$T/bootstrap")|" \
    -e "s|@CA_FILE@|$T/certs/ca.pem|" -e "s|@SECRET_FILE@|$T/demo.secret|" \
    -e "s|@SPOOL_DIR@|$T/spool|" conf/demo.conf >"$T/demo.conf"

echo "== mock Kafka cluster: $(cat "$T/bootstrap")"
echo "== PBX simulator: wss://localhost:$(cat "$T/pbx.port")/wsi"
echo "== wsi2kafka -c $T/demo.conf   (its log on stderr, records below)"
"$B/wsi2kafka" -c "$T/demo.conf" &
DAEMON=$!
for t in $TOPICS; do
	kcat -C -u -q -b "$(cat "$T/bootstrap")" -t "$t" -o beginning \
	    -f '%t  key=%k\n    %s\n' 2>/dev/null &
	PIDS+=($!)
done
if [ "${DEMO_SECONDS:-0}" -gt 0 ]; then
	sleep "$DEMO_SECONDS"
else
	wait
fi
