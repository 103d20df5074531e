#!/usr/bin/env bash
# The listener under abuse and misconfiguration: a bind failure is a
# startup error naming the address; host names and IPv6 addresses bind
# where they say; slow, huge and too many requests neither stall the event
# loop nor disturb the PBX session. Dry run: no Kafka needed.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
start_pbxsim --subs 3
BOOTSTRAP=127.0.0.1:1 write_conf

# An address in use (the simulator's port): exit 1 before READY, named.
grep -v '^http = ' "$T/w2k.conf" >"$T/base.conf"
{ cat "$T/base.conf"; echo "http = { listen = \"127.0.0.1:$PBX_PORT\"; };"; } >"$T/w2k.conf"
start_daemon -n
wait "$DAEMON_PID"; rc=$?; DAEMON_PID=
[ "$rc" -eq 1 ] || fail "address in use: exit $rc"
grep -q "http: cannot listen on 127.0.0.1:$PBX_PORT: Address already in use" "$T/daemon.log" ||
	fail "no error naming the address: $(cat "$T/daemon.log")"
grep -q ' started' "$T/daemon.log" && fail "started although the bind failed"
[ "$(pbx_events AUTH)" -eq 0 ] || fail "a PBX session was started"
ok "address in use: exit 1, the address named, no session started"

{ cat "$T/base.conf"; echo 'http = { listen = "192.0.2.1:9464"; };'; } >"$T/w2k.conf"
start_daemon -n
wait "$DAEMON_PID"; rc=$?; DAEMON_PID=
[ "$rc" -eq 1 ] && grep -q 'http: cannot listen on 192.0.2.1:9464: Cannot assign' "$T/daemon.log" ||
	fail "non-local address: exit $rc: $(cat "$T/daemon.log")"
ok "not a local address: exit 1, named"

# A host name is resolved once; IPv6 literals in brackets bind as written.
p=$(free_port) || fail "no free port"
{ cat "$T/base.conf"; echo "http = { listen = \"localhost:$p\"; };"; } >"$T/w2k.conf"
start_daemon -n
wait_for 20 http_listening || fail "localhost:$p: $(cat "$T/daemon.log")"
[ "$(curl -s -m $((5 * TIME_SCALE)) "http://localhost:$p/healthz")" = ok ] || fail "localhost:$p/healthz"
ss -Htln "sport = :$p" | grep -qv -e " 127.0.0.1:$p " -e " \[::1\]:$p " &&
	fail "localhost bound beyond loopback: $(ss -Htln "sport = :$p")"
stop_daemon
ok "localhost:PORT resolved and bound to loopback only"
if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
	p=$(free_port) || fail "no free port"
	{ cat "$T/base.conf"; echo "http = { listen = \"[::1]:$p\"; };"; } >"$T/w2k.conf"
	start_daemon -n
	wait_for 20 http_listening || fail "[::1]:$p: $(cat "$T/daemon.log")"
	[ "$(curl -s -m $((5 * TIME_SCALE)) "http://[::1]:$p/healthz")" = ok ] || fail "[::1]:$p/healthz"
	ss -Htln "sport = :$p" >"$T/ss"
	[ "$(wc -l <"$T/ss")" -eq 1 ] && grep -q " \[::1\]:$p " "$T/ss" ||
		fail "[::1]: $(cat "$T/ss")"
	stop_daemon
	ok "[::1]:PORT bound to ::1 only"
else
	ok "no ::1 on this machine: IPv6 binding not checked"
fi

cp "$T/base.conf" "$T/w2k.conf"
start_http_daemon -n
wait_for 20 readyz_is 200 || fail "dry run never ready: $(cat "$T/body")"
jq -e '.ready == true and .kafka.enabled == false' "$T/body" >/dev/null ||
	fail "dry-run /readyz: $(cat "$T/body")"
ok "dry run: ready with the session alone (Kafka not counted)"

# Slow requests: three clients that never finish their headers.
for i in 1 2 3; do
	exec {fd}<>"/dev/tcp/127.0.0.1/$HTTP_PORT"
	printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&$fd
	slow+=("$fd")
done
t0=$(date +%s%N)
[ "$(get /healthz)" = 200 ] || fail "/healthz beside slow clients"
scrape
t1=$(date +%s%N)
[ $(((t1 - t0) / 1000000)) -lt $((2000 * TIME_SCALE)) ] || fail "answers took $(((t1 - t0) / 1000000)) ms"
for fd in "${slow[@]}"; do
	timeout $((HTTP_TIMEOUT_S + 10 * TIME_SCALE)) cat <&"$fd" >/dev/null ||
		fail "a slow client was not closed within $((HTTP_TIMEOUT_S + 10)) s"
	exec {fd}<&-
done
ok "slow clients: others served at once, the slow ones closed by the timeout"

# Huge request headers: refused, nothing else disturbed.
code=$(get /metrics -H "X-Huge: $(head -c 65536 /dev/zero | tr '\0' a)")
case $code in 000|4*) ;; *) fail "a 64 KiB header got $code" ;; esac
code=$(get "/$(head -c 20000 /dev/zero | tr '\0' a)")
case $code in 000|4*) ;; *) fail "a 20 KB path got $code" ;; esac
c2=$(get /metrics -X BREW)
case $c2 in 000|4*) ;; *) fail "an unknown method got $c2" ;; esac
scrape
ok "huge headers and paths refused ($code), an unknown method too ($c2); still serving"

# Too many connections: beyond HTTP_MAX_CONNS idle ones, refused at once;
# served again when the idle ones time out. The PBX session is untouched.
idle=()
for i in $(seq $((HTTP_MAX_CONNS + 8))); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$HTTP_PORT" || break
	idle+=("$fd")
done
[ "${#idle[@]}" -gt "$HTTP_MAX_CONNS" ] || fail "could open only ${#idle[@]} connections"
code=$(get /healthz)
[ "$code" = 000 ] || fail "a connection beyond the cap was served: $code"
wait_for 5 grep -q 'connections open: refusing more' "$T/daemon.log" ||
	fail "refusals not logged"
wait_for $((HTTP_TIMEOUT_S + 10)) readyz_is 200 || fail "not served again after the idle timeout"
for fd in "${idle[@]}"; do exec {fd}<&-; done
scrape
expect 'wsi2kafka_pbx_up{pbx="hq"}' == 1
expect 'wsi2kafka_pbx_connects_total{pbx="hq",result="ok"}' == 1
ok "over the connection cap: refused, logged, served again after the idle timeout; session untouched"

stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
