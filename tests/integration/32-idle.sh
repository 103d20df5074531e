#!/usr/bin/env bash
# A PBX that goes silent (answers no ping): the daemon gives up after
# idle_timeout, reconnects, and the events after the stall arrive.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues
cat >"$T/script" <<'S'
{"event_type":"call_start","session_id":"1","tenant_id":"9"}
@sleep 2500
@stall
{"event_type":"call_start","session_id":"2","tenant_id":"9"}
S
start_pbxsim --script "$T/script" --subs 3
PING_INTERVAL=1 IDLE_TIMEOUT=3 write_conf
start_daemon
keys=$(consume portsip.calls 2 '%k\n') || fail "got: $keys"
[ "$(echo "$keys" | sort | tr '\n' ' ')" = "9:1 9:2 " ] || fail "keys: $keys"
grep -q 'nothing received from .* for 3 s' "$T/daemon.log" || fail "idle not logged"
grep -q 'disconnected from .* (idle)' "$T/daemon.log" || fail "reason idle not logged"
[ "$(pbx_events 'PING')" -ge 1 ] || fail "no ping reached the PBX"
ok "idle session detected, reconnected, events after the stall delivered"
