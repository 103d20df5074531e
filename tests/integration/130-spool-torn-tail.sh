#!/usr/bin/env bash
# Damaged spool data: the last record cut short (a torn write) and a
# flipped bit inside an earlier one. --check-config reports both and exits
# 0; start-up truncates the torn tail, sets the damaged bytes aside in
# corrupt/, logs both, and delivers every other record.
. "$(dirname "$0")/lib.sh"
. tests/lib/spool.sh
start_kmock portsip.calls portsip.extensions portsip.queues
{
	echo "@sleep 1500"
	for i in $(seq 1 200); do echo "{\"event_type\":\"call_start\",\"session_id\":\"$i\",\"tenant_id\":\"5\"}"; done
} >"$T/script"
start_pbxsim --script "$T/script" --subs 3
write_conf
start_daemon
wait_for 20 grep -q 'subscribed' "$T/daemon.log" || fail "no session"
kmock_cmd downall
wait_for 20 grep -q 'SENT' "$T/pbxsim.events" || fail "script not played"
wait_spool_stable 20 || fail "the spool keeps changing"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
seg=$(ls "$T"/spool/*.seg | tail -n1)
[ -n "$seg" ] || fail "no segment file"
before=$(spool_records)
[ "$before" -ge 200 ] || fail "the spool holds $before records"

# Cut the newest record short; flip a bit inside the record of call 100.
size=$(stat -c %s "$seg")
truncate -s $((size - 7)) "$seg"
off=$(grep -boa '"session_id":"100"' "$seg" | head -n1 | cut -d: -f1)
[ -n "$off" ] || fail "call 100 not found in $seg"
printf "$(printf '\\%03o' $(( $(od -An -tu1 -j "$off" -N1 "$seg") ^ 16 )))" |
    dd of="$seg" bs=1 seek="$off" conv=notrunc status=none

w2k -t -c "$T/w2k.conf" >"$T/check.out" 2>&1 || fail "-t failed: $(cat "$T/check.out")"
grep -q 'torn tail of .* (truncated at the next start)' "$T/check.out" ||
    fail "-t: no torn tail: $(cat "$T/check.out")"
grep -q 'unreadable data of .* (set aside at the next start)' "$T/check.out" ||
    fail "-t: no damaged record: $(cat "$T/check.out")"
[ "$(stat -c %s "$seg")" -eq $((size - 7)) ] || fail "-t changed the spool"
ok "--check-config reports the torn tail and the damaged record, exit 0"

kmock_cmd upall
restart_daemon
wait_for 20 grep -q 'torn tail of .* truncated' "$T/daemon.log" ||
    fail "torn tail not repaired"
grep -q 'unreadable bytes at offset .* set aside in' "$T/daemon.log" ||
    fail "damaged record not set aside"
[ "$(ls "$T"/spool/corrupt/ | wc -l)" -eq 2 ] || fail "corrupt/: $(ls "$T"/spool/corrupt/)"
ok "start-up repaired the spool, set both aside and logged them"

keys() { consume portsip.calls "$1" '%k\n' | sort -u; }
k=$(keys 198) || fail "got $(echo "$k" | wc -l) of 198 calls"
[ "$(echo "$k" | wc -l)" -eq 198 ] || fail "distinct: $(echo "$k" | wc -l)"
echo "$k" | grep -qx '5:100' && fail "the damaged record was delivered"
echo "$k" | grep -qx '5:200' && fail "the torn record was delivered"
ok "every other record delivered (198 of 200 calls)"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
w2k -t -c "$T/w2k.conf" >"$T/check.out" 2>&1 || fail "-t failed"
grep -q 'torn tail\|unreadable' "$T/check.out" && fail "still damaged: $(cat "$T/check.out")"
ok "afterwards --check-config finds nothing to repair"
