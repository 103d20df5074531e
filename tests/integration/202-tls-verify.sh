#!/usr/bin/env bash
# Server certificate verification is on by default, host name included, and
# a refusal says why. One daemon, four PBXs:
#  - "wrongca":    a good certificate, but tls.ca_file names another CA
#                  -> "certificate verify failed: unable to get local issuer
#                  certificate";
#  - "selfsigned": a self-signed certificate -> "... self-signed
#                  certificate";
#  - "wronghost":  signed by the right CA, but for other.example while the
#                  URL says localhost -> "... hostname mismatch";
#  - "insecure":   the same wrong-host certificate with tls.verify = false
#                  -> subscribed, and a warning at every start.
# Each refusal is a failed connect counted with reason tls, and nothing is
# ever sent to those PBXs (no auth).
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/hostile.sh
certs
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
newkey "$T/other-ca.key"
openssl req -x509 -new -key "$T/other-ca.key" -subj "/CN=another CA" -days 2 \
    -out "$T/other-ca.pem" 2>/dev/null || fail "other CA"
newkey "$T/wronghost.key"
openssl req -new -key "$T/wronghost.key" -subj "/CN=other.example" \
    -out "$T/wronghost.csr" 2>/dev/null || fail "wronghost csr"
printf 'subjectAltName = DNS:other.example\nextendedKeyUsage = serverAuth\n' >"$T/wronghost.ext"
openssl x509 -req -in "$T/wronghost.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 2 -sha256 \
    -extfile "$T/wronghost.ext" -out "$T/wronghost.pem" 2>/dev/null || fail "wronghost cert"

start_sim wrongca;					P_WRONGCA=$SIM_PORT
start_sim selfsigned --cert "$CERTS/untrusted.pem" --key "$CERTS/untrusted.key"
P_SELF=$SIM_PORT
start_sim wronghost --cert "$T/wronghost.pem" --key "$T/wronghost.key"
P_HOST=$SIM_PORT
start_sim insecure --cert "$T/wronghost.pem" --key "$T/wronghost.key"
P_INSEC=$SIM_PORT
pbx_conf "$(pbx_block wrongca "$P_WRONGCA" '' "ca_file = \"$T/other-ca.pem\";"),
$(pbx_block selfsigned "$P_SELF"),
$(pbx_block wronghost "$P_HOST"),
$(pbx_block insecure "$P_INSEC" '' 'verify = false;')"
start_http_daemon -n
wait_metric 20 'wsi2kafka_pbx_up{pbx="insecure"}' == 1
for p in wrongca selfsigned wronghost; do
	wait_metric 20 "wsi2kafka_pbx_connect_failures_total{pbx=\"$p\",reason=\"tls\"}" '>=' 2
	expect "wsi2kafka_pbx_connects_total{pbx=\"$p\",result=\"failed\"}" '>=' 2
	expect "wsi2kafka_pbx_connects_total{pbx=\"$p\",result=\"ok\"}" == 0
	[ "$(grep -c 'AUTH' "$T/$p.events")" -eq 0 ] || fail "$p: authenticated anyway"
done
reason() {	# PBX PORT TEXT
	grep -q "pbx $1: connection to wss://localhost:$2/wsi failed: certificate verify failed: $3" "$T/daemon.log" ||
		fail "$1: no '$3' in the log: $(grep "pbx $1:" "$T/daemon.log" | tail -n 2)"
}
reason wrongca "$P_WRONGCA" 'unable to get local issuer certificate'
reason selfsigned "$P_SELF" 'self-signed certificate'
reason wronghost "$P_HOST" 'hostname mismatch (the certificate is not for localhost)'
grep -q 'pbx insecure: tls.verify = false' "$T/daemon.log" || fail "no warning for verify = false"
grep -q 'pbx wronghost: tls.verify = false' "$T/daemon.log" && fail "warned for a verifying PBX"
stop_daemon
ok "wrong CA, self-signed and wrong host refused, each with its reason, counted as tls"

# The warning comes with every start, and the check says it too.
w2k -t -c "$T/w2k.conf" >"$T/check.out" 2>&1 || fail "check-config: $(cat "$T/check.out")"
grep -q 'pbx insecure: .*tls verify OFF' "$T/check.out" || fail "check-config does not show verify OFF"
start_daemon -n
wait_for 20 grep -q 'pbx insecure: tls.verify = false' "$T/daemon.log" || fail "no warning at the second start"
stop_daemon
ok "tls.verify = false: a warning at every start, OFF in --check-config"
