#!/usr/bin/env bash
# make rpm: Debian's rpmbuild builds packaging/rpm/wsi2kafka.spec; the RPM
# holds the same files as the .deb (each distribution's own documentation
# aside: /usr/share/doc, /usr/share/licenses, RPM's build-id links; man
# pages compressed or not), marks the configuration %config(noreplace) and
# runs the systemd scriptlets.
. "$(dirname "$0")/lib.sh"
not_under_valgrind "it builds packages and runs no daemon under W2K_WRAP (the ASan pass runs it)"
PKG=$T/pkg	# the test's own: see 190-deb
ARCH=$(dpkg --print-architecture)
DEB_VERSION=$(sed -n '1s/^wsi2kafka (\([^)]*\)).*/\1/p' packaging/debian/changelog)
DEB=$PKG/wsi2kafka_${DEB_VERSION}_$ARCH.deb
VERSION=$(sed -n 's/^Version: *//p' packaging/rpm/wsi2kafka.spec)
[ "$VERSION" = "${DEB_VERSION%-*}" ] || fail "spec version $VERSION, changelog $DEB_VERSION"
grep -q "^VERSION *= *$VERSION\$" Makefile || fail "Makefile VERSION is not $VERSION"

make --no-print-directory rpm B="$B" PKGDIR="$PKG" >"$T/make-rpm.log" 2>&1 ||
	fail "make rpm: $(tail -n 20 "$T/make-rpm.log")"
RPM=$(ls "$PKG"/wsi2kafka-"$VERSION"-*.rpm 2>/dev/null | grep -v -e debuginfo -e debugsource | head -n 1)
[ -n "$RPM" ] || fail "no RPM in $PKG: $(ls "$PKG")"
ok "make rpm: $(basename "$RPM")"

# The .deb to compare with, from the same tree (its unit tests ran in
# 190-deb; the RPM's %check ran above).
DEB_BUILD_OPTIONS=nocheck make --no-print-directory deb B="$B" PKGDIR="$PKG" \
    >"$T/make-deb.log" 2>&1 || fail "make deb: $(tail -n 20 "$T/make-deb.log")"
[ -f "$DEB" ] || fail "no $DEB"

normalize() {
	grep -v -e '^/usr/share/doc/' -e '^/usr/share/licenses/' \
	    -e '^/usr/lib/\.build-id/' | sed 's/\.gz$//' | sort
}
rpm -qp --nosignature --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$RPM" 2>/dev/null |
    awk '$1 !~ /^d/ { print $2 }' | normalize >"$T/rpm.files"
dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ { print $6 }' | sed 's,^\.,,' | normalize >"$T/deb.files"
[ -s "$T/rpm.files" ] || fail "empty RPM listing"
diff -u "$T/deb.files" "$T/rpm.files" >"$T/diff" || fail ".deb and RPM differ: $(cat "$T/diff")"
ok "the RPM and the .deb hold the same $(wc -l <"$T/rpm.files") files"

flags=$(rpm -qp --nosignature --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$RPM" 2>/dev/null |
    awk '$1 == "/etc/wsi2kafka/wsi2kafka.conf" { print $2 }')
[[ "$flags" == *c* && "$flags" == *n* ]] || fail "wsi2kafka.conf flags '$flags', want %config(noreplace)"
ok "/etc/wsi2kafka/wsi2kafka.conf is %config(noreplace)"

scripts=$(rpm -qp --nosignature --scripts "$RPM" 2>/dev/null)
for want in 'systemd-sysusers .*wsi2kafka.conf' 'systemd-tmpfiles --create' \
    'disable --now wsi2kafka.service' 'try-restart wsi2kafka.service'; do
	echo "$scripts" | grep -q -- "$want" || fail "scriptlets lack '$want': $scripts"
done
# Installed, not enabled (as the .deb): no preset, which enables the unit
# where the policy is "enable *", and no enable.
echo "$scripts" | grep -v '^ *#' | grep -w -e preset -e enable &&
	fail "a scriptlet may enable the unit: $scripts"
ok "scriptlets: directories, disable / try-restart of the unit; nothing enables it"

# The user exists before the files that belong to its group: made in %pre,
# as systemd/wsi2kafka.sysusers describes it (name, home).
pre=$(echo "$scripts" | awk '/^preinstall scriptlet/ { p = 1; next } /scriptlet/ { p = 0 } p' |
    tr '\n' ' ' | sed 's/\\ */ /g')	# one line, continuations joined
read -r _ user _ _ home < <(grep '^u ' systemd/wsi2kafka.sysusers | sed 's/"[^"]*"/x/')
echo "$pre" | grep -q "useradd .*-d $home .* $user\( \|;\|$\)" ||
	fail "%pre does not create user $user with home $home: $pre"
ok "%pre creates the user $user (home $home) before the files are laid down"

attrs() { rpm -qp --nosignature --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' \
    "$RPM" 2>/dev/null | awk -v f="$1" '$3 == f { print $1, $2 }'; }
[ "$(attrs /etc/wsi2kafka)" = "drwxr-x--- root:wsi2kafka" ] ||
	fail "/etc/wsi2kafka: $(attrs /etc/wsi2kafka)"
[ "$(attrs /etc/wsi2kafka/wsi2kafka.conf)" = "-rw-r----- root:wsi2kafka" ] ||
	fail "wsi2kafka.conf: $(attrs /etc/wsi2kafka/wsi2kafka.conf)"
ok "%files: /etc/wsi2kafka 0750 and wsi2kafka.conf 0640, root:wsi2kafka"

# The packaged binary is the one built from this tree.
mkdir -p "$T/x"
rpm2archive - <"$RPM" | tar -xzf - -C "$T/x" || fail "cannot unpack $RPM"
"$T/x/usr/bin/wsi2kafka" -V | grep -qx "wsi2kafka $VERSION" || fail "packaged binary -V"
ok "the packaged binary runs: wsi2kafka $VERSION"
