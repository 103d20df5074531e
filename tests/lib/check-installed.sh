#!/usr/bin/env bash
# tests/lib/check-installed.sh W — run by tests/check-trixie.sh inside the
# Debian 13 root, as root, right after `apt install ./wsi2kafka_*.deb`; W
# is the source tree there, built (build/san: pbxsim and the test
# certificates for the dry run). Follows the README's steps as an
# operator would and checks what the package promises: the user, the
# directories and files with their modes and owners, the unit installed but
# not enabled, `wsi2kafka -t` and a `wsi2kafka -n` dry run as the service
# user. Prints one "ok - ..." line per check; exits non-zero at the first
# failure. Leaves the secret and the dry-run files behind for the caller's
# purge (dpkg --purge removes /etc/wsi2kafka).
set -u
W=${1:?usage: check-installed.sh SOURCE-TREE}
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok - $*"; }
mode() { stat -c '%a %U:%G' "$1" 2>&1; }

dpkg-query -W -f '${Status} ${Version}\n' wsi2kafka | grep -q '^install ok installed' ||
	fail "not installed: $(dpkg-query -W wsi2kafka 2>&1)"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd wsi2kafka) ||
	fail "no wsi2kafka user"
[ "$uid" -lt 1000 ] || fail "wsi2kafka is not a system user (uid $uid)"
[ "$home" = /var/lib/wsi2kafka ] || fail "home $home"
case $shell in */nologin|*/false) ;; *) fail "login shell $shell" ;; esac
ok "user wsi2kafka: system user (uid $uid), home $home, shell $shell"

while read -r path want; do
	got=$(mode "$path")
	[ "$got" = "$want" ] || fail "$path: $got, want $want"
done <<'EOF'
/etc/wsi2kafka 750 root:wsi2kafka
/etc/wsi2kafka/wsi2kafka.conf 640 root:wsi2kafka
/var/lib/wsi2kafka 700 wsi2kafka:wsi2kafka
/var/lib/wsi2kafka/spool 700 wsi2kafka:wsi2kafka
/usr/bin/wsi2kafka 755 root:root
EOF
ok "modes: /etc/wsi2kafka 0750 root:wsi2kafka, wsi2kafka.conf 0640 root:wsi2kafka, /var/lib/wsi2kafka and spool 0700 wsi2kafka"

unit=$(dpkg -L wsi2kafka | grep '/wsi2kafka\.service$') || fail "no unit in the package"
for d in /etc/systemd/system/*.wants; do
	[ -e "$d/wsi2kafka.service" ] && fail "the package enabled the unit: $d"
done
# (offline: systemctl reads the unit files; deb-systemd-helper answers
# only when dpkg calls it)
st=$(systemctl is-enabled wsi2kafka.service 2>&1)
[ "$st" = disabled ] || fail "systemctl is-enabled wsi2kafka.service: $st"
ok "unit $unit installed, not enabled"
ldd /usr/bin/wsi2kafka | grep -q 'libwebsockets\.so' || fail "ldd: $(ldd /usr/bin/wsi2kafka)"
ok "linked with $(ldd /usr/bin/wsi2kafka | awk '/libwebsockets|librdkafka|libconfig\.so/ { printf "%s%s", s, $1; s = ", " }')"

# README "Configure": a password file root:wsi2kafka 0640.
install -m 0640 -g wsi2kafka /dev/stdin /etc/wsi2kafka/hq.secret <<<'not-a-real-password'
out=$(runuser -u wsi2kafka -- wsi2kafka -t 2>&1) ||
	fail "runuser -u wsi2kafka -- wsi2kafka -t: $out"
echo "$out" | grep -q '^configuration /etc/wsi2kafka/wsi2kafka.conf is valid' ||
	fail "-t summary: $out"
echo "$out" | grep -q 'outside' && fail "-t warns about the default spool.dir: $out"
ok "runuser -u wsi2kafka -- wsi2kafka -t: valid ($(echo "$out" | wc -l) lines)"

# README "Verify": a dry run as the service user, against pbxsim (the
# build's PBX simulator) on loopback, its CA readable by the group.
C=$W/build/san/certs
[ -f "$C/server.pem" ] || (cd "$W" && bash tests/lib/mkcerts.sh "$C" >/dev/null 2>&1) ||
	fail "no test certificates"
install -m 0640 -g wsi2kafka "$C/ca.pem" /etc/wsi2kafka/pbx-ca.pem
d=$(mktemp -d)
printf '%s\n' '{"event_type":"call_start","session_id":"5","tenant_id":"6","time":"1705051422"}' >"$d/script"
"$W/build/san/tests/pbxsim" --cert "$C/server.pem" --key "$C/server.key" \
    --port-file "$d/port" --user bridge --password not-a-real-password \
    --domain tenant.example.com --script "$d/script" --subs 3 >"$d/pbxsim.log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; rm -rf "$d"' EXIT
for _ in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.1; done
[ -s "$d/port" ] || fail "pbxsim did not start: $(cat "$d/pbxsim.log")"
# The shipped file, edited as an operator would: the PBX's URL and CA.
sed -e "s|\"wss://pbx1.example.com:8887/wsi\",|\"wss://localhost:$(cat "$d/port")/wsi\" ];|" \
    -e '/"wss:\/\/pbx2.example.com:8887\/wsi" \];/d' \
    -e 's|verify = true;|verify = true; ca_file = "/etc/wsi2kafka/pbx-ca.pem";|' \
    -e '/^http = {/,/^};/d' \
    /etc/wsi2kafka/wsi2kafka.conf >/etc/wsi2kafka/dry.conf
chgrp wsi2kafka /etc/wsi2kafka/dry.conf && chmod 0640 /etc/wsi2kafka/dry.conf
# setpriv, not runuser: it execs the daemon as the service user, so the
# SIGTERM below reaches the daemon itself (runuser would be a parent that
# dies of it) and `wait` gets the daemon's own exit status.
setpriv --reuid=wsi2kafka --regid=wsi2kafka --init-groups -- \
    wsi2kafka -n -c /etc/wsi2kafka/dry.conf >"$d/out" 2>"$d/dry.log" &
dry=$!
# (the simulator's snapshot of extension states comes first, then the
# script's call)
for _ in $(seq 300); do grep -q '"topic":"portsip.calls"' "$d/out" && break; sleep 0.1; done
kill -TERM $dry
for _ in $(seq 100); do kill -0 $dry 2>/dev/null || break; sleep 0.1; done
kill -0 $dry 2>/dev/null && { kill -KILL $dry; fail "the dry run did not stop on SIGTERM"; }
wait $dry || fail "dry run: exit $?; $(tail -n 5 "$d/dry.log")"
out=$(grep -m 1 '"topic":"portsip.calls"' "$d/out")
echo "$out" | jq -e '.topic == "portsip.calls" and .key == "6:5"' >/dev/null ||
	fail "dry run: '$out'; $(tail -n 5 "$d/dry.log")"
ok "wsi2kafka -n as the service user: a record from the PBX on stdout (type $(echo "$out" | jq -r '.value.type')), exit 0 at SIGTERM"
