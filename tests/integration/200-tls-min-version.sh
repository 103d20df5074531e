#!/usr/bin/env bash
# TLS 1.2 is the floor, whatever the host's OpenSSL policy allows. The
# daemon runs with an OpenSSL configuration that permits TLS 1.0 and 1.1
# (security level 0, as on a host set up for legacy peers; a control
# handshake with `openssl s_client -tls1_1` proves it does), against two
# PBXs in one daemon: "legacy" offers TLS up to 1.1 only and is refused
# with a clear log line and counted failed connects (reason tls), never
# authenticated; "modern" offers up to 1.2 and is subscribed.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
certs
cat >"$T/openssl.cnf" <<'CNF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1
CipherString = DEFAULT@SECLEVEL=0
CNF
start_sim legacy --tls-max 1.1
LEGACY_PORT=$SIM_PORT
start_sim modern --tls-max 1.2
MODERN_PORT=$SIM_PORT
export OPENSSL_CONF=$T/openssl.cnf

# Control: under this configuration a client without a floor of its own
# does get TLS 1.1 from the legacy PBX.
timeout 10 openssl s_client -connect "127.0.0.1:$LEGACY_PORT" -servername localhost \
    -CAfile "$CERTS/ca.pem" -tls1_1 </dev/null >"$T/s_client.out" 2>&1
grep -q 'Protocol *: TLSv1.1' "$T/s_client.out" ||
	fail "control: no TLS 1.1 handshake with the legacy PBX: $(tail -n 5 "$T/s_client.out")"
ok "control: the host's OpenSSL allows TLS 1.1 with the legacy PBX"

pbx_conf "$(pbx_block legacy "$LEGACY_PORT"), $(pbx_block modern "$MODERN_PORT")"
start_http_daemon -n
wait_metric 20 'wsi2kafka_pbx_up{pbx="modern"}' == 1
wait_metric 20 'wsi2kafka_pbx_connect_failures_total{pbx="legacy",reason="tls"}' '>=' 2
expect 'wsi2kafka_pbx_connects_total{pbx="legacy",result="failed"}' '>=' 2
expect 'wsi2kafka_pbx_connects_total{pbx="legacy",result="ok"}' == 0
expect 'wsi2kafka_pbx_up{pbx="legacy"}' == 0
grep -q "pbx legacy: connection to wss://localhost:$LEGACY_PORT/wsi failed: TLS handshake failed: no common protocol version (TLS 1.2 or later required" "$T/daemon.log" ||
	fail "no clear log line for the refused protocol version"
[ "$(grep -c 'AUTH' "$T/legacy.events")" -eq 0 ] || fail "authenticated to the TLS 1.1 PBX"
grep -q 'AUTH .* ok' "$T/modern.events" || fail "not authenticated to the TLS 1.2 PBX"
stop_daemon
ok "TLS 1.1 refused with the reason logged and counted; TLS 1.2 accepted"
