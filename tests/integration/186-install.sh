#!/usr/bin/env bash
# make install DESTDIR=... PREFIX=/usr: exactly the files of the contract
# (§2) and the issue, man pages with the version, the unit naming the
# installed binary; a second install keeps an edited configuration;
# PREFIX=/usr/local moves the binary and the unit follows; make uninstall
# removes everything but an edited configuration.
. "$(dirname "$0")/lib.sh"
R=$T/root
VERSION=$(w2k -V | awk '{ print $2 }')
pc() { pkg-config --variable="$1" systemd 2>/dev/null | grep . || echo "$2"; }
UNITDIR=$(pc systemdsystemunitdir /usr/lib/systemd/system)
SYSUSERSDIR=$(pc sysusersdir /usr/lib/sysusers.d)
TMPFILESDIR=$(pc tmpfilesdir /usr/lib/tmpfiles.d)
# mk TARGET VAR=...: make quietly into the log, fail loudly. -o: install
# the binary under test as it is, never rebuild it here (with other flags
# than the ones it was built with).
mk() {
	make -s --no-print-directory -o "$W2K" "$@" B="$B" >>"$T/make.log" 2>&1 ||
		fail "make $*: $(tail -n 5 "$T/make.log")"
}
listing() { (cd "$1" && find . ! -type d | sed 's,^\.,,' | sort); }

mk install DESTDIR="$R" PREFIX=/usr
sort >"$T/want" <<EOF2
/etc/wsi2kafka/wsi2kafka.conf
$UNITDIR/wsi2kafka.service
$SYSUSERSDIR/wsi2kafka.conf
$TMPFILESDIR/wsi2kafka.conf
/usr/bin/wsi2kafka
/usr/share/man/man5/wsi2kafka.conf.5
/usr/share/man/man8/wsi2kafka.8
EOF2
listing "$R" >"$T/got"
diff -u "$T/want" "$T/got" >"$T/diff" || fail "installed files: $(cat "$T/diff")"
ok "make install DESTDIR PREFIX=/usr: $(wc -l <"$T/got") files, as listed"

[ "$(stat -c %a "$R/usr/bin/wsi2kafka")" = 755 ] || fail "binary mode"
[ "$(stat -c %a "$R/etc/wsi2kafka/wsi2kafka.conf")" = 640 ] || fail "config mode"
[ "$(stat -c %a "$R/etc/wsi2kafka")" = 750 ] || fail "/etc/wsi2kafka mode $(stat -c %a "$R/etc/wsi2kafka")"
cmp -s conf/wsi2kafka.conf "$R/etc/wsi2kafka/wsi2kafka.conf" || fail "config differs"
for m in man5/wsi2kafka.conf.5 man8/wsi2kafka.8; do
	grep -q '@VERSION@' "$R/usr/share/man/$m" && fail "$m: @VERSION@ left"
	grep -q "^\.TH .*\"wsi2kafka $VERSION\"" "$R/usr/share/man/$m" || fail "$m: no version $VERSION"
done
grep -qx 'ExecStart=/usr/bin/wsi2kafka' "$R$UNITDIR/wsi2kafka.service" || fail "unit ExecStart"
"$R/usr/bin/wsi2kafka" -V | grep -qx "wsi2kafka $VERSION" || fail "installed binary -V"
ok "modes, man pages carry version $VERSION, unit runs /usr/bin/wsi2kafka"

# The README's steps after make install: systemd-sysusers makes the user,
# systemd-tmpfiles gives /etc/wsi2kafka and the configuration its group
# (root only: chown). In a copy, with --root: the names resolve in the
# copy's /etc/group, this machine is not touched.
if [ "$(id -u)" -eq 0 ]; then
	cp -a "$R" "$T/root2"
	systemd-sysusers --root="$T/root2" >"$T/sysusers.log" 2>&1 ||
		fail "systemd-sysusers --root: $(cat "$T/sysusers.log")"
	systemd-tmpfiles --root="$T/root2" --create wsi2kafka.conf >"$T/tmpfiles.log" 2>&1 ||
		fail "systemd-tmpfiles --root: $(cat "$T/tmpfiles.log")"
	gid=$(awk -F: '$1 == "wsi2kafka" { print $3 }' "$T/root2/etc/group")
	[ -n "$gid" ] || fail "no group wsi2kafka in the copy: $(cat "$T/root2/etc/group")"
	for f in etc/wsi2kafka:750 etc/wsi2kafka/wsi2kafka.conf:640; do
		got=$(stat -c '%a %u:%g' "$T/root2/${f%:*}")
		[ "$got" = "${f#*:} 0:$gid" ] || fail "/${f%:*} after sysusers and tmpfiles: $got, want ${f#*:} 0:$gid"
	done
	ok "after systemd-sysusers and systemd-tmpfiles: /etc/wsi2kafka 0750 and wsi2kafka.conf 0640 root:wsi2kafka"
else
	echo "skip - systemd-tmpfiles sets owners as root only"
fi

# An operator's edit survives a second install (a package upgrade, make
# install of a new version).
echo '# edited by the operator' >>"$R/etc/wsi2kafka/wsi2kafka.conf"
cp "$R/etc/wsi2kafka/wsi2kafka.conf" "$T/edited"
mk install DESTDIR="$R" PREFIX=/usr
cmp -s "$T/edited" "$R/etc/wsi2kafka/wsi2kafka.conf" || fail "second install overwrote the configuration"
grep -q 'keeping the existing' "$T/make.log" || fail "second install did not say it kept the configuration"
ok "second install keeps the edited configuration"

mk uninstall DESTDIR="$R" PREFIX=/usr
[ "$(listing "$R")" = /etc/wsi2kafka/wsi2kafka.conf ] ||
	fail "after uninstall: $(listing "$R")"
rm "$R/etc/wsi2kafka/wsi2kafka.conf"
mk install DESTDIR="$R" PREFIX=/usr
mk uninstall DESTDIR="$R" PREFIX=/usr
[ -z "$(listing "$R")" ] || fail "uninstall left: $(listing "$R")"
[ -d "$R/etc/wsi2kafka" ] && fail "uninstall left /etc/wsi2kafka"
ok "uninstall removes every file, keeps only an edited configuration"

# The default PREFIX is /usr/local; the unit follows the binary.
rm -rf "$R"
mk install DESTDIR="$R"
[ -x "$R/usr/local/bin/wsi2kafka" ] || fail "PREFIX=/usr/local: no binary"
[ -f "$R/usr/local/share/man/man8/wsi2kafka.8" ] || fail "PREFIX=/usr/local: no man page"
grep -qx 'ExecStart=/usr/local/bin/wsi2kafka' "$R$UNITDIR/wsi2kafka.service" ||
	fail "unit does not run /usr/local/bin/wsi2kafka"
ok "default PREFIX=/usr/local: binary and man pages there, the unit follows"
