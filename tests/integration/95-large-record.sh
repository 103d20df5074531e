#!/usr/bin/env bash
# A valid 2 MB frame (a CDR of a large conference) is delivered as it is,
# with default settings: the producer's message.max.bytes follows
# pbx.max_frame (4 MiB) rather than librdkafka's 1,000,000-byte default,
# which made such a record a dead letter cut to 512 bytes.
. "$(dirname "$0")/lib.sh"
start_kmock portsip.calls portsip.extensions portsip.queues portsip.deadletter
cat >"$T/script" <<'S'
@big 2000000
{"event_type":"call_start","session_id":"2","tenant_id":"1"}
S
start_pbxsim --script "$T/script" --subs 3
write_conf
start_daemon
timeout $((60 * TIME_SCALE)) kcat -C -q -b "$BOOTSTRAP" -t portsip.calls -o beginning -c 2 \
    -X fetch.message.max.bytes=8000000 -X fetch.max.bytes=8000000 -X receive.message.max.bytes=9000000 \
    -f '%S %k\n' >"$T/got" 2>"$T/kcat.err" || fail "not delivered: $(cat "$T/got" "$T/kcat.err")"
big=$(sort -n "$T/got" | tail -n 1 | cut -d' ' -f1)
[ "$big" -gt 2000000 ] || fail "largest record $big bytes"
[ "$(count_topic portsip.deadletter)" -eq 0 ] || fail "a dead letter was made"
grep -q 'refused record' "$T/daemon.log" && fail "a record was refused"
ok "a 2 MB frame delivered as a $big-byte record, no dead letter"
