#!/usr/bin/env bash
# CDR backfill (contract §10), scenario d: everything the REST API can do
# wrong while a gap is read, at random (seed printed; W2K_TEST_SEED=N
# replays): tokens that expire every 2 s (refreshed before expiry), tokens
# revoked under the client (401: sign in again), a 429 storm (SIGUSR2) and
# 25 % of list requests failing with 429 or 5xx, rows inserted while the
# client pages. It all recovers: every call on Kafka exactly once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
SEED=${W2K_TEST_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
echo "# seed $SEED (W2K_TEST_SEED=$SEED replays)"
start_kmock $BF_TOPICS
start_pbx_rest --calls 150 --calls-every 40 --calls-wait-sub --seed "$SEED" \
    --rest-token-ttl 2 --rest-chaos 25 --rest-revoke-every 9 --rest-shift
HTTP_PORT=$(free_port)
write_conf "$(RPS=20 backfill_conf)" "http = { listen = \"127.0.0.1:$HTTP_PORT\"; };"
gap_by_stop 10
wait_for 60 test_pages 2 || fail "no paging: $(grep backfill "$T/daemon.log" | tail -n 3)"
kill -USR2 "${PIDS[1]}"	# pbxsim: the next 10 list requests get 429
wait_for 240 gap_done 1 || fail "the gap was not finished: $(grep backfill "$T/daemon.log" | tail -n 5)"
wait_for 60 all_calls_on_kafka || true
cdr_check "token expiry, revocation, 429 storm, 5xx, shifting rows"
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$T/metrics.txt"
grep '^wsi2kafka_backfill' "$T/metrics.txt" | grep -v ' 0$' | sed 's/^/# /'
for st in 2xx 401 429 5xx; do
	grep -q "^wsi2kafka_backfill_requests_total{pbx=\"hq\",status=\"$st\"} [1-9]" "$T/metrics.txt" ||
		fail "no $st counted: $(grep requests_total "$T/metrics.txt")"
done
grep -q '^wsi2kafka_backfill_records_total{pbx="hq"} [1-9]' "$T/metrics.txt" || fail "records not counted"
grep -q '^wsi2kafka_backfill_gap_seconds{pbx="hq"} 0$' "$T/metrics.txt" || fail "gap still open in metrics"
[ "$(pbx_events '^STORM')" -eq 1 ] || fail "no storm"
[ "$(pbx_events '^REST POST /api/auth/refresh_token 200')" -ge 1 ] || fail "the token was never refreshed"
[ "$(pbx_events '^REST POST /api/auth/sign_in 200')" -ge 2 ] || fail "never signed in again after a 401"
[ "$(pbx_events '^INSERT')" -ge 1 ] || fail "no row was inserted while paging"
ok "refreshed $(pbx_events 'refresh_token 200')x, signed in $(pbx_events 'sign_in 200')x, $(pbx_events '^INSERT') rows inserted while paging: all recovered"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC"
