#!/usr/bin/env bash
# A v16 PBX: port path "/" and the v16.0 auth reply {"status":0}.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues
echo '{"event_type":"call_start","session_id":"16","tenant_id":"1"}' >"$T/script"
start_pbxsim --v16 --path / --script "$T/script" --subs 3
URL_CONF="url = \"wss://localhost:$PBX_PORT/\";" write_conf
start_daemon
k=$(consume portsip.calls 1 '%k\n') || fail "nothing delivered"
[ "$k" = "1:16" ] || fail "key $k"
grep -q 'authenticated' "$T/daemon.log" || fail "v16 auth reply not understood"
ok "v16 URL and auth reply form"

# And a v16 rejection ({"error":…,"status":-1}, no "command").
stop_daemon
printf 'wrong\n' >"$T/hq.secret"
start_daemon
wait_for 20 grep -q 'authentication rejected .*name or password error' "$T/daemon.log" ||
	fail "v16 rejection not logged with its text"
ok "v16 rejection logged with the server's text"
