#!/usr/bin/env bash
# CDR backfill (contract §10): the REST client verifies the PBX's
# certificate as the WSI session does (the PBX's tls settings). A REST
# port with a certificate the CA did not sign is refused: logged with the
# reason, counted as status "error", retried, and nothing is published.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
certs
start_kmock $BF_TOPICS
start_pbx_rest --calls 40 --calls-every 100 --calls-wait-sub \
    --rest-cert "$CERTS/untrusted.pem" --rest-key "$CERTS/untrusted.key"
HTTP_PORT=$(free_port)
write_conf "$(backfill_conf)" "http = { listen = \"127.0.0.1:$HTTP_PORT\"; };"
gap_by_stop 10
wait_for 60 grep -q 'backfill: sign-in: no answer from https://localhost' "$T/daemon.log" ||
	fail "no refusal logged: $(grep backfill "$T/daemon.log" | tail -n 3)"
grep 'backfill: sign-in: no answer' "$T/daemon.log" | head -n 1 | sed 's/^/# /'
grep -q 'backfill: sign-in: no answer .*certificate verify failed' "$T/daemon.log" ||
	fail "the reason is not said"
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$T/metrics.txt"
grep -q '^wsi2kafka_backfill_requests_total{pbx="hq",status="error"} [1-9]' "$T/metrics.txt" ||
	fail "not counted: $(grep backfill_requests "$T/metrics.txt")"
grep -q '^wsi2kafka_backfill_records_total{pbx="hq"} 0$' "$T/metrics.txt" || fail "records published"
[ "$(pbx_events '^REST [GP]')" -eq 0 ] || fail "a request reached the untrusted server"
ok "an untrusted REST certificate is refused, logged, counted, retried"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC"
