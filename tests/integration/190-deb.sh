#!/usr/bin/env bash
# make deb: the package builds (debhelper 13, lintian without errors), holds
# exactly the installed files with the configuration as a conffile and only
# generated maintainer scripts; dpkg -i installs it (user, directories),
# the installed binary validates the installed default configuration (as
# root and as the service's user), the installed unit verifies; dpkg --purge
# removes it and the test removes what it created, so the machine is left
# as it was.
. "$(dirname "$0")/lib.sh"
not_under_valgrind "it builds packages and runs no daemon under W2K_WRAP (the ASan pass runs it)"
# Packages in the test's own directory: another run (a developer's make
# check beside CI's) must not build into the same place.
PKG=$T/pkg
ARCH=$(dpkg --print-architecture)
DEB_VERSION=$(sed -n '1s/^wsi2kafka (\([^)]*\)).*/\1/p' packaging/debian/changelog)
DEB=$PKG/wsi2kafka_${DEB_VERSION}_$ARCH.deb

make --no-print-directory deb B="$B" PKGDIR="$PKG" >"$T/make-deb.log" 2>&1 ||
	fail "make deb: $(tail -n 20 "$T/make-deb.log")"
[ -f "$DEB" ] || fail "no $DEB: $(ls "$PKG")"
grep -q '^E: ' "$T/make-deb.log" && fail "lintian errors: $(grep '^E: ' "$T/make-deb.log")"
grep -q '^lintian ' "$T/make-deb.log" || fail "lintian did not run"
ok "make deb: $(basename "$DEB"), lintian: no errors ($(grep -c '^W: ' "$T/make-deb.log") warnings)"

dpkg-deb -c "$DEB" >"$T/contents" || fail "dpkg-deb -c"
awk '$1 !~ /^d/ { print $6 }' "$T/contents" | sed 's,^\.,,' | sort >"$T/got"
UNITDIR=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null | grep . || echo /usr/lib/systemd/system)
sort >"$T/want" <<EOF2
/etc/wsi2kafka/wsi2kafka.conf
$UNITDIR/wsi2kafka.service
/usr/bin/wsi2kafka
/usr/lib/sysusers.d/wsi2kafka.conf
/usr/lib/tmpfiles.d/wsi2kafka.conf
/usr/share/doc/wsi2kafka/changelog.Debian.gz
/usr/share/doc/wsi2kafka/copyright
/usr/share/man/man5/wsi2kafka.conf.5.gz
/usr/share/man/man8/wsi2kafka.8.gz
EOF2
diff -u "$T/want" "$T/got" >"$T/diff" || fail "package contents: $(cat "$T/diff")"
ok "dpkg-deb -c: the $(wc -l <"$T/got") expected files"
# The data carries the modes (the group needs the user: postinst).
perm() { awk -v f="./$1" '$6 == f || $6 == f "/" { print $1, $2 }' "$T/contents"; }
[ "$(perm etc/wsi2kafka)" = "drwxr-x--- root/root" ] ||
	fail "/etc/wsi2kafka in the package: $(perm etc/wsi2kafka)"
[ "$(perm etc/wsi2kafka/wsi2kafka.conf)" = "-rw-r----- root/root" ] ||
	fail "wsi2kafka.conf in the package: $(perm etc/wsi2kafka/wsi2kafka.conf)"
ok "in the package: /etc/wsi2kafka 0750, wsi2kafka.conf 0640"

dpkg-deb -e "$DEB" "$T/control" || fail "dpkg-deb -e"
[ "$(cat "$T/control/conffiles")" = /etc/wsi2kafka/wsi2kafka.conf ] ||
	fail "conffiles: $(cat "$T/control/conffiles")"
for s in postinst prerm postrm; do
	[ -f "$T/control/$s" ] || continue
	# Outside the "Automatically added" sections: only the shebang and set -e.
	extra=$(awk '/^# Automatically added/ { in_s = 1 } !in_s { print }
	    /^# End automatically added/ { in_s = 0 }' "$T/control/$s" |
	    grep -vx -e '#!/bin/sh' -e 'set -e' -e '')
	[ -z "$extra" ] || fail "hand-written lines in $s: $extra"
done
grep -q 'systemd-sysusers .*wsi2kafka.conf' "$T/control/postinst" || fail "postinst: no sysusers"
grep -q 'systemd-tmpfiles .*--create wsi2kafka.conf' "$T/control/postinst" || fail "postinst: no tmpfiles"
grep -q "deb-systemd-helper .*wsi2kafka.service" "$T/control/postinst" || fail "postinst: no unit handling"
dpkg-deb -f "$DEB" Depends | grep -q 'libwebsockets' || fail "Depends: $(dpkg-deb -f "$DEB" Depends)"
ok "conffile /etc/wsi2kafka/wsi2kafka.conf; maintainer scripts all generated (sysusers, tmpfiles, systemd)"

# Installing touches the machine: only as root, only where no wsi2kafka is,
# one test run at a time.
if [ "$(id -u)" -ne 0 ]; then
	echo "skip - dpkg -i needs root"
	exit 0
fi
exec 8>/tmp/wsi2kafka-test-dpkg.lock
flock -w 200 8 || fail "another run holds /tmp/wsi2kafka-test-dpkg.lock"
if dpkg-query -W wsi2kafka >/dev/null 2>&1 || [ -e /etc/wsi2kafka ]; then
	echo "skip - wsi2kafka is installed on this machine; not touching it"
	exit 0
fi
had_user=0; getent passwd wsi2kafka >/dev/null && had_user=1
had_group=0; getent group wsi2kafka >/dev/null && had_group=1
had_state=0; [ -e /var/lib/wsi2kafka ] && had_state=1
undo_install() {
	rm -f /etc/wsi2kafka/hq.secret
	dpkg --purge wsi2kafka >>"$T/dpkg.log" 2>&1
	[ $had_state = 1 ] || rm -rf /var/lib/wsi2kafka
	[ $had_user = 1 ] || userdel wsi2kafka 2>/dev/null
	[ $had_group = 1 ] || groupdel wsi2kafka 2>/dev/null
	cleanup
}
trap undo_install EXIT

dpkg -i "$DEB" >"$T/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$T/dpkg.log")"
[ "$(dpkg-query -W -f '${Status}' wsi2kafka)" = "install ok installed" ] || fail "not installed"
getent passwd wsi2kafka >/dev/null || fail "no wsi2kafka user after install"
[ "$(stat -c '%a %U:%G' /etc/wsi2kafka)" = "750 root:wsi2kafka" ] ||
	fail "/etc/wsi2kafka: $(stat -c '%a %U:%G' /etc/wsi2kafka)"
[ "$(stat -c '%a %U' /var/lib/wsi2kafka/spool)" = "700 wsi2kafka" ] ||
	fail "spool: $(stat -c '%a %U' /var/lib/wsi2kafka/spool 2>&1)"
[ "$(stat -c '%a %U:%G' /etc/wsi2kafka/wsi2kafka.conf)" = "640 root:wsi2kafka" ] ||
	fail "configuration file: $(stat -c '%a %U:%G' /etc/wsi2kafka/wsi2kafka.conf)"
/usr/bin/wsi2kafka -V | grep -q "^wsi2kafka ${DEB_VERSION%-*}$" || fail "installed -V: $(/usr/bin/wsi2kafka -V)"
ok "dpkg -i: installed, user wsi2kafka, /etc/wsi2kafka 0750 and wsi2kafka.conf 0640 root:wsi2kafka, spool 0700"

# The default configuration names /etc/wsi2kafka/hq.secret: the operator's
# first step. As root (0600), then as the service's user (root:wsi2kafka 0640).
printf 'not-a-real-password\n' >/etc/wsi2kafka/hq.secret
chmod 0600 /etc/wsi2kafka/hq.secret
out=$(/usr/bin/wsi2kafka --check-config -c /etc/wsi2kafka/wsi2kafka.conf 2>&1) ||
	fail "--check-config of the installed default configuration: $out"
echo "$out" | grep -q 'pbx hq' || fail "no summary: $out"
ok "installed binary: --check-config of the installed default configuration passes"
chgrp wsi2kafka /etc/wsi2kafka/hq.secret
chmod 0640 /etc/wsi2kafka/hq.secret
out=$(setpriv --reuid=wsi2kafka --regid=wsi2kafka --init-groups \
    /usr/bin/wsi2kafka --check-config 2>&1) ||
	fail "--check-config as the wsi2kafka user: $out"
ok "as the wsi2kafka user (as the service runs it): passes too"

unit=$UNITDIR/wsi2kafka.service
man=--man=yes
command -v man >/dev/null || man=--man=no
systemd-analyze verify $man "$unit" >"$T/verify.log" 2>&1 && [ ! -s "$T/verify.log" ] ||
	fail "systemd-analyze verify $unit: $(cat "$T/verify.log")"
ok "systemd-analyze verify of the installed unit: clean"

rm -f /etc/wsi2kafka/hq.secret
dpkg --purge wsi2kafka >>"$T/dpkg.log" 2>&1 || fail "dpkg --purge: $(tail -n 5 "$T/dpkg.log")"
dpkg-query -W wsi2kafka >/dev/null 2>&1 && fail "still known to dpkg after purge"
for f in /usr/bin/wsi2kafka /etc/wsi2kafka "$unit"; do
	[ -e "$f" ] && fail "$f left after purge"
done
ok "dpkg --purge: binary, unit and /etc/wsi2kafka gone"
