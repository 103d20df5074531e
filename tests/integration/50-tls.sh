#!/usr/bin/env bash
# An untrusted certificate: no session, a clear log line, the daemon stays up.
# Then the same certificate with tls.verify = false connects (with a warning).
. "$(dirname "$0")/lib.sh"
certs
start_kmock portsip.calls portsip.extensions portsip.queues
start_pbxsim --cert "$CERTS/untrusted.pem" --key "$CERTS/untrusted.key"
write_conf
start_daemon
wait_for 20 grep -qi 'connection to .* failed' "$T/daemon.log" || fail "no TLS failure logged"
sleep 2
kill -0 "$DAEMON_PID" || fail "daemon died"
[ "$(pbx_events 'AUTH')" -eq 0 ] || fail "authenticated over an untrusted certificate"
stop_daemon
ok "untrusted certificate refused, daemon stayed up"

TLS_CONF='verify = false;' write_conf
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "verify=false did not connect"
grep -q 'tls.verify = false' "$T/daemon.log" || fail "no warning for verify=false"
stop_daemon
ok "verify = false connects, with a warning"
