#!/usr/bin/env bash
# A subscription the PBX refuses is visible and retried (contract §6, §8,
# §9): of three subscriptions the PBX refuses cdr_events (an account without
# the permission). wsi2kafka_pbx_subscriptions shows it rejected and the
# other two active, /readyz is 503 naming it, STATUS= says "1 of 3
# subscriptions rejected", the rejection is logged once per session; the
# subscribe is sent again within the session (every 5 minutes; 3 s here
# through the test-only W2K_TEST_SUB_RETRY_S) and on the next session. Once
# the PBX grants the permission (SIGUSR1 to pbxsim) the retry is accepted:
# active, /readyz 200, and the CDR the PBX sends is on Kafka.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
LISTEN=$B/tests/notify_listen
[ -x "$LISTEN" ] || fail "$LISTEN not built (make tests)"

start_kmock portsip.calls portsip.extensions portsip.queues portsip.cdr \
    portsip.events portsip.deadletter
# The script plays once the two allowed subscriptions are in: a presence
# event, then (7 s later) a drop, so the next session subscribes again, and
# on the new session a CDR, held back until the permission was granted.
# The first session must see a retry: it is due 3 s after the subscribe
# and sent at the next 1 s tick, so 3-4 s (a drop after 4 s raced it).
cat >"$T/script" <<'S'
{"event_type":"extension_presence","extension":"sip:101@test.io","presence":"AVAILABLE","tenant_id":"1","extension_id":"11","time":"1703690547"}
@sleep 7000
@drop
@sleep 8000
{"event_type":"call_cdr","session_id":"777","tenant_id":"1","cdr_id":"778","ended_time":"1725845669","direction":"in"}
@end
S
start_pbxsim --script "$T/script" --subs 2 --refuse-topic cdr_events
PBXSIM_PID=${PIDS[-1]}
write_conf
"$LISTEN" "$T/notify.sock" 120 >"$T/notify.msgs" 2>"$T/notify.err" &
PIDS+=($!)
wait_for 10 test -S "$T/notify.sock" || fail "notify_listen did not start"
export NOTIFY_SOCKET=$T/notify.sock W2K_TEST_SUB_RETRY_S=3
start_http_daemon
unset NOTIFY_SOCKET

S_CDR='wsi2kafka_pbx_subscriptions{pbx="hq",state="rejected",topics="cdr_events"}'
S_CDR_OK='wsi2kafka_pbx_subscriptions{pbx="hq",state="active",topics="cdr_events"}'
S_EXT_OK='wsi2kafka_pbx_subscriptions{pbx="hq",state="active",topics="extension_events"}'
wait_metric 20 "$S_CDR" == 1
wait_metric 20 "$S_EXT_OK" == 1
expect 'wsi2kafka_pbx_subscriptions{pbx="hq",state="active",topics="queue_events"}' == 1
expect "$S_CDR_OK" == 0
expect 'wsi2kafka_pbx_up{pbx="hq"}' == 1
ok "the refused subscription is rejected in wsi2kafka_pbx_subscriptions, the others active"

[ "$(get /readyz)" = 503 ] || fail "/readyz not 503 with a rejected subscription: $(cat "$T/body")"
jq -e '.ready == false and (.pbx[0].rejected_subscriptions == ["cdr_events"])' "$T/body" >/dev/null ||
	fail "/readyz body does not name it: $(cat "$T/body")"
ok "/readyz 503 naming the rejected subscription"

has_status() { grep -q 'STATUS=.*hq: 1 of 3 subscriptions rejected' "$T/notify.msgs"; }
wait_for 15 has_status || fail "STATUS= does not say it: $(grep -o 'STATUS=[^	]*' "$T/notify.msgs" | tail -n 2)"
ok "STATUS= says 1 of 3 subscriptions rejected"

# Sent again within the session (3 s), and on the next session (the drop).
refusals() { grep -c '^REFUSE ' "$T/pbxsim.events" || true; }
refused_on() { grep -c "^REFUSE $1 " "$T/pbxsim.events" || true; }
two_on_first() { [ "$(refused_on 1)" -ge 2 ]; }
wait_for 20 two_on_first || fail "not sent again within the session: $(grep REFUSE "$T/pbxsim.events")"
on_second() { [ "$(refused_on 2)" -ge 1 ]; }
wait_for 30 on_second || fail "not sent again on the new session: $(grep -e REFUSE -e CONNECT -e DROP "$T/pbxsim.events")"
ok "resent within the session ($(refused_on 1) on the first) and on the next ($(refused_on 2))"

# Logged once per session, with the PBX's text.
logged=$(grep -c 'subscribe to cdr_events rejected by .*no permission to subscribe to cdr_events' "$T/daemon.log" || true)
[ "$logged" -eq 2 ] || fail "rejection logged $logged times for 2 sessions ($(refusals) refusals)"
ok "logged once per session (2 lines for $(refusals) refusals)"

# The PBX grants the permission: the next retry is accepted.
kill -USR1 "$PBXSIM_PID"
wait_metric $((20 * TIME_SCALE)) "$S_CDR_OK" == 1
expect "$S_CDR" == 0
wait_for 10 readyz_is 200 || fail "/readyz still $(get /readyz): $(cat "$T/body")"
grep -q 'subscription to cdr_events accepted by .* now' "$T/daemon.log" || fail "acceptance not logged"
ok "accepted after the grant: active, /readyz 200, logged"

cdr=$(consume portsip.cdr 1 '%k|%s\n') || fail "the CDR was not delivered"
[ "${cdr%%|*}" = "1:777" ] || fail "cdr key: $cdr"
ok "the CDR sent after the grant is on Kafka"
