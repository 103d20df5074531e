#!/usr/bin/env bash
# CDR backfill (contract §10), scenario b: the PBX drops the session in
# the middle of calls and refuses connections for a while (calls go on):
# live CDRs before and after, the gap's from REST, no call twice — the
# index of live CDRs keeps the calls at the gap's edges from being
# published again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/backfill.sh"
# Where the drop falls and how long the PBX stays away: random (seed
# printed, W2K_TEST_SEED=N replays).
SEED=${W2K_TEST_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
echo "# seed $SEED (W2K_TEST_SEED=$SEED replays)"
DROP_AT=$(( 10 + SEED % 21 ))
DOWN=$(( 20 + (SEED / 21) % 16 ))
echo "# dropped after call $DROP_AT, away for $DOWN calls"
start_kmock $BF_TOPICS
start_pbx_rest --calls 70 --calls-every 120 --calls-wait-sub --seed "$SEED" \
    --drop-at-call "$DROP_AT" --down-calls "$DOWN"
write_conf "$(backfill_conf)"
start_daemon
gap_read_then_check "PBX dropped the session"
[ "$(pbx_events '^DOWN')" -eq 1 ] && [ "$(pbx_events '^UP')" -eq 1 ] || fail "no DOWN/UP"
down=$(grep -c '^CALL .* live=0' "$T/pbxsim.events")
[ "$down" -ge $((DOWN - 1)) ] || fail "only $down calls while the PBX was unreachable"
[ "$CDR_REST" -ge "$down" ] || fail "$CDR_REST from REST, $down made while down"
[ "$CDR_LIVE" -ge 20 ] || fail "only $CDR_LIVE live"
grep -q 'backfill: CDRs are not live' "$T/daemon.log" || fail "the gap's opening was not logged"
sk=$(sed -n 's/.*backfill: gap .* \([0-9]*\) skipped as already live.*/\1/p' "$T/daemon.log" | head -n 1)
[ "${sk:-0}" -ge 1 ] || fail "no row at the gap's edges was skipped as live: the margins test nothing"
ok "live before and after the drop, the $down calls of the gap from REST, $sk edge calls skipped as live"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit status $DAEMON_RC"
