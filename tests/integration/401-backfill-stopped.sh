#!/usr/bin/env bash
# CDR backfill (contract §10), scenario a: the daemon is stopped while the
# PBX goes on making calls, then started: the CDRs of the calls made
# meanwhile are read back over REST, each call is on Kafka exactly once,
# the missed ones with "source":"rest", and the stop is one logged gap.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
start_kmock $BF_TOPICS
start_pbx_rest --calls 60 --calls-every 150 --calls-wait-sub
write_conf "$(backfill_conf)"
w2k -c "$T/w2k.conf" -t >"$T/check.out" 2>&1 || fail "-t: $(cat "$T/check.out")"
grep -q "pbx hq: CDR backfill over https://localhost:$REST_PORT/api as admin" "$T/check.out" ||
	fail "-t does not show the backfill: $(cat "$T/check.out")"
start_daemon
wait_for 30 call_made 15 || fail "calls did not start (made $(calls_made))"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC after SIGTERM"
[ -s "$T/spool/backfill-hq.state" ] || fail "no backfill state beside the spool"
grep -q '"last_live":[1-9]' "$T/spool/backfill-hq.state" || fail "last live time not saved: $(cat "$T/spool/backfill-hq.state")"
ok "a clean stop saves the last live time beside the spool"
wait_for 30 call_made 40 || fail "calls stopped at $(calls_made)"
start_daemon
gap_read_then_check "daemon stopped"
[ "$CDR_MADE" -eq 60 ] || fail "made $CDR_MADE calls, not 60"
[ "$CDR_REST" -ge 20 ] || fail "only $CDR_REST calls from REST"
[ "$CDR_LIVE" -ge 10 ] || fail "only $CDR_LIVE calls live"
ok "60 calls, each on Kafka exactly once; those made while stopped came from REST"
# A REST record as the contract has it: a call_cdr keyed
# <tenant_id>:<session_id>, WSI names and value sets, time = ended_time.
timeout 30 kcat -C -q -b "$BOOTSTRAP" -t portsip.cdr -o beginning -e -f '%k\t%s\n' |
    awk -F'\t' '$2 ~ /"source":"rest"/' | head -n 1 >"$T/rest.rec"
key=$(cut -f1 "$T/rest.rec")
cut -f2- "$T/rest.rec" | jq -e --arg key "$key" '
    .schema == "wsi2kafka.event/1" and .type == "call_cdr" and .class == "cdr" and
    .source == "rest" and ($key == .tenant_id + ":" + .session_id) and
    (.id | test("^[0-9a-f]{32}$")) and .time == .data.ended_time and
    (.data.start_time | type) == "number" and (.data.talk_duration | type) == "number" and
    (.data.direction | IN("internal", "inbound", "outbound")) and
    .data.end_reason == "callee_disconnected" and (.data | has("did") and has("trunk_name")) and
    (.data | has("started_at") or has("did_cid") or has("duration") | not)' >/dev/null ||
	fail "a REST record is not as §10 says: $(cat "$T/rest.rec")"
ok "REST records: call_cdr, key tenant:session, WSI names and value sets"
grep 'backfill: gap ' "$T/daemon.log" | head -n 1 | sed 's/^/# /'
grep -q 'backfill: gap .* rows read, [0-9]* published, [0-9]* skipped as already live' "$T/daemon.log" ||
	fail "no gap summary line"
[ "$(gap_lines)" -eq 1 ] || fail "$(gap_lines) gaps for one stop"
ok "one log line for the gap: span, rows read, published, skipped as live"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC"
! grep -q 's3cret-Pa55' "$T/daemon.log" "$T/spool/backfill-hq.state" || fail "the password is in the log or the state"
grep -qi 'bearer\|access_token' "$T/daemon.log" && fail "a token is in the log"
ok "no password or token in the log or the state file"
