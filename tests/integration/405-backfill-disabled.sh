#!/usr/bin/env bash
# CDR backfill (contract §10), scenario e: disabled (the default, and an
# explicit enabled = false) changes nothing: no REST request, no state
# file, no backfill metrics, only live CDRs; the calls made while the
# daemon was stopped are simply missing, as before backfill existed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
start_kmock $BF_TOPICS
start_pbx_rest --calls 40 --calls-every 150 --calls-wait-sub
HTTP_PORT=$(free_port)
for variant in absent disabled; do
	if [ $variant = absent ]; then
		write_conf "" "http = { listen = \"127.0.0.1:$HTTP_PORT\"; };"
	else
		write_conf "backfill = { enabled = false; url = \"https://localhost:$REST_PORT/api\"; };" \
		    "http = { listen = \"127.0.0.1:$HTTP_PORT\"; };"
	fi
	w2k -c "$T/w2k.conf" -t >"$T/check.out" 2>&1 || fail "$variant: -t refused: $(cat "$T/check.out")"
	if [ $variant = absent ]; then
		start_daemon
		wait_for 30 call_made 10 || fail "calls did not start"
		stop_daemon
		wait_for 30 call_made 25 || fail "calls stopped at $(calls_made)"
	fi
	start_daemon
	wait_for 20 grep -q 'http: listening' "$T/daemon.log" || fail "$variant: no http"
	sleep 1
	curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$T/metrics.txt"
	grep -q '^wsi2kafka_pbx_up' "$T/metrics.txt" || fail "$variant: no metrics"
	! grep -q backfill "$T/metrics.txt" || fail "$variant: backfill metrics without backfill"
	[ $variant = disabled ] && { wait_for 60 calls_done || fail "calls not done"; sleep 3; }
	stop_daemon
	[ "$DAEMON_RC" = 0 ] || fail "$variant: exit status $DAEMON_RC"
	! grep -qi backfill "$T/daemon.log" || fail "$variant: the log speaks of backfill: $(grep -i backfill "$T/daemon.log")"
	ls "$T/spool" | grep -q backfill && fail "$variant: backfill files in the spool dir: $(ls "$T/spool")"
	ok "$variant backfill block: no backfill log line, metric or file"
done
[ "$(pbx_events '^REST [GP]')" -eq 0 ] || fail "$(pbx_events '^REST [GP]') REST requests without backfill"
cdr_fetch
made=$(calls_made)
live=$(cut -f1 "$T/cdr.tsv" | sort -u | wc -l)
down=$(grep -c '^CALL .* live=0' "$T/pbxsim.events")
echo "# disabled: CDRs made by the simulator $made, delivered live $live, delivered by backfill $(grep -c 'rest' "$T/cdr.tsv"), duplicates $(( $(wc -l <"$T/cdr.tsv") - live ))"
grep -q 'rest' "$T/cdr.tsv" && fail "records with source rest"
[ "$down" -ge 5 ] || fail "only $down calls while stopped"
[ "$live" -eq $((made - down)) ] || fail "live $live, made $made, while stopped $down"
ok "no REST request; the $down calls made while stopped are missing, the $live others live once"
