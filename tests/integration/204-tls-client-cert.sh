#!/usr/bin/env bash
# The optional client certificate (tls.cert_file / tls.key_file), against a
# PBX that requires one signed by the test CA (mutual TLS): with the right
# certificate the session is subscribed; without one, or with one the PBX
# does not trust, the PBX refuses the handshake, and the log says so with
# the TLS alert it sent; those are failed connects counted with reason tls.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
certs
start_sim mtls --client-ca "$CERTS/ca.pem"
P=$SIM_PORT
CA="ca_file = \"$CERTS/ca.pem\";"
pbx_conf "$(pbx_block withcert "$P" '' "$CA cert_file = \"$CERTS/client.pem\"; key_file = \"$CERTS/client.key\";"),
$(pbx_block nocert "$P"),
$(pbx_block badcert "$P" '' "$CA cert_file = \"$CERTS/untrusted.pem\"; key_file = \"$CERTS/untrusted.key\";")"
start_http_daemon -n
wait_metric 20 'wsi2kafka_pbx_up{pbx="withcert"}' == 1
for p in nocert badcert; do
	wait_metric 20 "wsi2kafka_pbx_connect_failures_total{pbx=\"$p\",reason=\"tls\"}" '>=' 2
	expect "wsi2kafka_pbx_up{pbx=\"$p\"}" == 0
	grep -q "pbx $p: connection to wss://localhost:$P/wsi failed: TLS .*alert \".*\" from the PBX" "$T/daemon.log" ||
		fail "$p: the PBX's alert is not in the log: $(grep "pbx $p:" "$T/daemon.log" | tail -n 2)"
done
[ "$(grep -c 'AUTH .* ok' "$T/mtls.events")" -eq 1 ] || fail "expected exactly one authenticated session"
stop_daemon
ok "client certificate presented and accepted; missing or untrusted ones refused with the PBX's alert"
