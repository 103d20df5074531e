#!/usr/bin/env bash
# urls: the first PBX is unreachable, the daemon fails over to the second.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues
echo '{"event_type":"call_start","session_id":"1","tenant_id":"4"}' >"$T/script"
start_pbxsim --script "$T/script" --subs 3
# A port nobody listens on: bind one, note it, close it.
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL_CONF="urls = [ \"wss://localhost:$dead/wsi\", \"wss://localhost:$PBX_PORT/wsi\" ];" write_conf
start_daemon
k=$(consume portsip.calls 1 '%k\n') || fail "nothing delivered"
[ "$k" = "4:1" ] || fail "key $k"
grep -q "connection to wss://localhost:$dead/wsi failed\|cannot connect to wss://localhost:$dead" "$T/daemon.log" ||
	fail "first URL not tried"
grep -q "subscribed .* on wss://localhost:$PBX_PORT/wsi" "$T/daemon.log" || fail "not subscribed on the second URL"
ok "failed over from the dead URL to the live one"
