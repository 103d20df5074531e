#!/usr/bin/env bash
# READY=1 does not wait for a large spool (contract §9): with a 1 GiB
# backlog (about 125,000 records of 8 KiB, as after a long Kafka outage),
# READY=1 comes before a tenth of the spool has been read — the read count
# from /proc/PID/io (rchar: bytes the process read(), page cache or not),
# taken with Kafka down so that replay cannot read much past READY=1 — and
# within 2 s. The spool is verified as it is replayed: a torn tail on the
# newest segment is still truncated at start, and a damaged record in a
# middle segment is found during replay, set aside in corrupt/ and logged,
# while every other record is delivered once Kafka is back (counted by
# /metrics, as the mock cluster keeps only a few MB per partition).
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
not_under_valgrind "replaying 1 GiB under memcheck takes many minutes"
LISTEN=$B/tests/notify_listen SPOOLGEN=$B/tests/spoolgen
for x in "$LISTEN" "$SPOOLGEN"; do [ -x "$x" ] || fail "$x not built (make tests)"; done
SIZE=$((1024 * 1024 * 1024))

start_kmock portsip.calls portsip.extensions portsip.queues portsip.cdr \
    portsip.events portsip.deadletter
out=$("$SPOOLGEN" "$T/spool" "$SIZE" 8192) || fail "spoolgen: $out"
N=${out#RECORDS }
mapfile -t segs < <(ls "$T/spool"/*.seg | sort)
[ "${#segs[@]}" -ge 3 ] || fail "only ${#segs[@]} segments"
bytes=$(cat "$T/spool"/*.seg | wc -c)
[ "$bytes" -ge "$SIZE" ] || fail "the spool holds $bytes bytes"
# Damage inside the first record of a middle segment (one record lost),
# and a torn tail on the newest: the start of a record appended half.
mid=${segs[$(( ${#segs[@]} / 2 ))]} last=${segs[-1]}
printf '%0200d' 0 | dd of="$mid" bs=1 seek=4000 conv=notrunc status=none
dd if="$last" bs=1 skip=32 count=3000 status=none >>"$last"
ok "a backlog of $N records, $bytes bytes in ${#segs[@]} segments; a record damaged, a torn tail"

kmock_cmd downall
start_pbxsim --subs 3
write_conf
"$LISTEN" "$T/notify.sock" 300 >"$T/notify.msgs" 2>"$T/notify.err" &
PIDS+=($!)
wait_for 10 test -S "$T/notify.sock" || fail "notify_listen did not start"
t0=$EPOCHREALTIME
export NOTIFY_SOCKET=$T/notify.sock
start_http_daemon
unset NOTIFY_SOCKET
ready() { grep -q 'READY=1' "$T/notify.msgs"; }
wait_for 30 ready || fail "no READY=1"
rchar=$(awk '/^rchar:/ { print $2 }' "/proc/$DAEMON_PID/io")
t1=$EPOCHREALTIME
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "READY=1 after about $secs s, $rchar bytes read of $bytes"
[ "$rchar" -lt $((bytes / 10)) ] || fail "READY=1 only after reading $rchar bytes of $bytes"
awk -v s="$secs" 'BEGIN { exit !(s < 2.0 * '"$TIME_SCALE"') }' || fail "READY=1 took $secs s"
ok "READY=1 after $secs s, having read $rchar of $bytes bytes"
grep -q "torn tail of .* truncated" "$T/daemon.log" || fail "the torn tail was not repaired at start"
ok "the torn tail of the newest segment was truncated at start"

kmock_cmd upall
# (the simulator's snapshots go to other topics)
CALLS='wsi2kafka_records_produced_total{topic="portsip.calls"}'
drained() { scrape; [ "$(mval wsi2kafka_spool_records)" = 0 ] &&
    [ "$(mval "$CALLS")" -ge $((N - 1)) ]; }
wait_for 300 drained || fail "not drained: $(mval wsi2kafka_spool_records) left, $(mval "$CALLS") produced of $((N - 1))"
produced=$(mval "$CALLS")
[ "$produced" -eq $((N - 1)) ] || fail "$produced produced, expected $((N - 1))"
grep -q "unreadable bytes at offset .* set aside in .*/corrupt/" "$T/daemon.log" ||
	fail "the damaged record was not reported"
ls "$T/spool/corrupt/" | grep -q . || fail "nothing set aside in corrupt/"
ok "$produced of $N records delivered, the damaged one set aside and logged; spool empty"
