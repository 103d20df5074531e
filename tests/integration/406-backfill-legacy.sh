#!/usr/bin/env bash
# CDR backfill (contract §10) against an older PBX: no /api/auth/sign_in
# (before v22.2.11: POST /api/login, then GET /api/login with its cookie,
# told apart by the 404) and no /api/calllogs (rows from /api/cdrs carry
# no session_id: matched to live CDRs by cdr_id). Still exactly once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
start_kmock $BF_TOPICS
start_pbx_rest --calls 60 --calls-every 120 --calls-wait-sub \
    --rest-legacy --rest-no-calllogs --rest-token-ttl 3
write_conf "$(backfill_conf)"
gap_by_stop 15 40
gap_read_then_check "pre-22.2.11 login, /api/cdrs"
[ "$(pbx_events '^REST POST /api/auth/sign_in 404')" -ge 1 ] || fail "sign_in not tried"
[ "$(pbx_events '^REST POST /api/login 200')" -ge 1 ] || fail "no legacy login"
[ "$(pbx_events '^REST GET /api/login 200')" -ge 1 ] || fail "no GET /api/login"
[ "$(pbx_events '^REST GET /api/calllogs 404')" -ge 1 ] || fail "calllogs not tried"
[ "$(pbx_events '^REST GET /api/cdrs 200')" -ge 1 ] || fail "no /api/cdrs"
grep -q 'backfill: gap .*/api/cdrs' "$T/daemon.log" || fail "the gap line does not name /api/cdrs"
ok "legacy login detected by the answer, /api/cdrs fallback, no call twice"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC"
