#!/usr/bin/env bash
# An upgrade of the .deb, as the README says to do it: `apt install
# ./wsi2kafka_NEW.deb` over an installed, configured package. The newer
# version is this tree with a bumped version, built in another directory.
# After the upgrade: the operator's edit of the conffile is there, with its
# mode and owner; the unit is not enabled (the package installs it
# disabled, and an upgrade does not change that); one the operator enabled
# stays enabled; the spool (files, bytes, modes, times) is untouched.
#
# No systemd runs here (CI): the postinst's start/restart branch runs only
# under a running systemd (/run/systemd/system) and is not exercised. What
# is checked is the state the postinst leaves: the enablement symlinks and
# deb-systemd-helper's state (which it consults on upgrades), and that it
# never enables the unit.
. "$(dirname "$0")/lib.sh"
not_under_valgrind "it builds packages and runs no daemon under W2K_WRAP (the ASan pass runs it)"
if [ "$(id -u)" -ne 0 ]; then
	echo "skip - installing packages needs root"
	exit 0
fi
ARCH=$(dpkg --print-architecture)
DEB_VERSION=$(sed -n '1s/^wsi2kafka (\([^)]*\)).*/\1/p' packaging/debian/changelog)
VERSION=${DEB_VERSION%-*}
NEW=$VERSION+upgrade1
# mkdeb SRC PKGDIR: the .deb of the tree SRC (its unit tests ran in 190).
mkdeb() {
	DEB_BUILD_OPTIONS=nocheck make --no-print-directory -C "$1" deb \
	    PKGDIR="$2" >>"$T/make-deb.log" 2>&1 || fail "make deb in $1: $(tail -n 20 "$T/make-deb.log")"
}
mkdeb . "$T/pkg1"
OLD_DEB=$T/pkg1/wsi2kafka_${DEB_VERSION}_$ARCH.deb
# The newer version: the same tree, VERSION bumped in the Makefile, the
# changelog and the spec, in a directory of its own.
make --no-print-directory dist PKGDIR="$T/dist" >>"$T/make-deb.log" 2>&1 || fail "make dist"
tar -xzf "$T/dist/wsi2kafka-$VERSION.tar.gz" -C "$T" || fail "unpack dist"
SRC2=$T/wsi2kafka-$VERSION
sed -i "s/^VERSION *= *$VERSION\$/VERSION    = $NEW/" "$SRC2/Makefile"
sed -i "s/^Version: *$VERSION\$/Version:        $NEW/" "$SRC2/packaging/rpm/wsi2kafka.spec"
{
	printf 'wsi2kafka (%s-1) unstable; urgency=medium\n\n  * Upgrade test.\n\n' "$NEW"
	printf ' -- %s  %s\n\n' "$(sed -n 's/^ -- \(.*>\)  .*/\1/p' packaging/debian/changelog | head -n 1)" \
	    "$(date -R)"
	cat packaging/debian/changelog
} >"$SRC2/packaging/debian/changelog"
grep -q "^VERSION *= *$NEW\$" "$SRC2/Makefile" || fail "could not bump VERSION"
mkdeb "$SRC2" "$T/pkg2"
NEW_DEB=$T/pkg2/wsi2kafka_${NEW}-1_$ARCH.deb
[ -f "$OLD_DEB" ] && [ -f "$NEW_DEB" ] || fail "packages: $(ls "$T"/pkg1 "$T"/pkg2)"
dpkg --compare-versions "$NEW-1" gt "$DEB_VERSION" || fail "$NEW-1 is not newer than $DEB_VERSION"
ok "built $(basename "$OLD_DEB") and, from a copy with VERSION $NEW, $(basename "$NEW_DEB")"

# Installing touches the machine: as 190-deb, one run at a time, only
# where no wsi2kafka is, and the test undoes what it did.
exec 8>/tmp/wsi2kafka-test-dpkg.lock
flock -w 300 8 || fail "another run holds /tmp/wsi2kafka-test-dpkg.lock"
if dpkg-query -W wsi2kafka >/dev/null 2>&1 || [ -e /etc/wsi2kafka ] || [ -e /var/lib/wsi2kafka ]; then
	echo "skip - wsi2kafka is installed on this machine; not touching it"
	exit 0
fi
had_user=0; getent passwd wsi2kafka >/dev/null && had_user=1
had_group=0; getent group wsi2kafka >/dev/null && had_group=1
undo_install() {
	deb-systemd-helper disable wsi2kafka.service >/dev/null 2>&1
	dpkg --purge wsi2kafka >>"$T/dpkg.log" 2>&1
	rm -rf /var/lib/wsi2kafka /etc/wsi2kafka
	[ $had_user = 1 ] || userdel wsi2kafka 2>/dev/null
	[ $had_group = 1 ] || groupdel wsi2kafka 2>/dev/null
	cleanup
}
trap undo_install EXIT
apt_install() {	# what the README says: apt install ./FILE.deb
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" \
	    </dev/null >>"$T/dpkg.log" 2>&1 || fail "apt-get install $1: $(tail -n 20 "$T/dpkg.log")"
}
WANTS=/etc/systemd/system/multi-user.target.wants/wsi2kafka.service
enabled() { [ -L "$WANTS" ] || deb-systemd-helper --quiet was-enabled wsi2kafka.service; }

apt_install "$OLD_DEB"
[ "$(dpkg-query -W -f '${Version}' wsi2kafka)" = "$DEB_VERSION" ] || fail "not installed"
enabled && fail "the install enabled the unit"
ok "apt install $(basename "$OLD_DEB"): installed, the unit not enabled"

# The operator's configuration and secret, and a spool with records.
conf=/etc/wsi2kafka/wsi2kafka.conf
sed -i 's/^\(  *max_bytes = \)"1G";/\1"2G";  # edited by the operator/' "$conf"
grep -q 'edited by the operator' "$conf" || fail "could not edit $conf"
cp "$conf" "$T/conf.edited"
install -m 0640 -g wsi2kafka /dev/null /etc/wsi2kafka/hq.secret
echo not-a-real-password >/etc/wsi2kafka/hq.secret
conf_mode=$(stat -c '%a %U:%G' "$conf")
[ "$conf_mode" = "640 root:wsi2kafka" ] || fail "$conf: $conf_mode"
s=/var/lib/wsi2kafka/spool
setpriv --reuid=wsi2kafka --regid=wsi2kafka --init-groups sh -c "
    head -c 300000 /dev/urandom >$s/00000000000000000001.seg &&
    head -c 4096 /dev/urandom >$s/00000000000000000002.seg &&
    mkdir $s/corrupt && head -c 77 /dev/urandom >$s/corrupt/00000000000000000001.seg.1" ||
	fail "cannot write the spool as wsi2kafka"
touch -d '2026-01-02 03:04:05' "$s"/*.seg
spool_state() {
	(cd /var/lib/wsi2kafka && find . -printf '%p %y %m %u:%g %s %T@\n' | sort &&
	    find . -type f -exec sha256sum {} + | sort -k2)
}
spool_state >"$T/spool.before"
[ "$(grep -c ' f ' "$T/spool.before")" = 3 ] || fail "spool: $(cat "$T/spool.before")"

apt_install "$NEW_DEB"
[ "$(dpkg-query -W -f '${Version}' wsi2kafka)" = "$NEW-1" ] || fail "not upgraded: $(dpkg-query -W wsi2kafka)"
/usr/bin/wsi2kafka -V | grep -qx "wsi2kafka $NEW" || fail "-V after the upgrade: $(/usr/bin/wsi2kafka -V)"
ok "apt install $(basename "$NEW_DEB"): upgraded, wsi2kafka -V says $NEW"

cmp -s "$T/conf.edited" "$conf" || fail "the edit is gone: $(diff "$T/conf.edited" "$conf")"
[ "$(stat -c '%a %U:%G' "$conf")" = "$conf_mode" ] || fail "$conf after the upgrade: $(stat -c '%a %U:%G' "$conf")"
ls /etc/wsi2kafka | grep -q 'dpkg-' && fail "conffile leftovers: $(ls /etc/wsi2kafka)"
[ "$(cat /etc/wsi2kafka/hq.secret)" = not-a-real-password ] || fail "the secret changed"
ok "the edited conffile survived, 0640 root:wsi2kafka, no prompt and no .dpkg-* files"

enabled && fail "the upgrade enabled the unit"
ok "the unit is still not enabled after the upgrade"

spool_state >"$T/spool.after"
diff -u "$T/spool.before" "$T/spool.after" >"$T/spool.diff" || fail "the spool changed: $(cat "$T/spool.diff")"
ok "the spool is untouched: $(grep -c ' f ' "$T/spool.after") files, bytes, modes and times equal"

# An operator who enabled the unit keeps it enabled through an upgrade
# (the postinst re-creates the links of a unit that was enabled). Not
# where systemd runs: there the postinst would restart the service.
if [ -d /run/systemd/system ]; then
	echo "skip - systemd runs here: an upgrade would restart an enabled service"
	exit 0
fi
systemctl enable wsi2kafka.service >>"$T/dpkg.log" 2>&1 ||
	deb-systemd-helper enable wsi2kafka.service >>"$T/dpkg.log" 2>&1 ||
	fail "cannot enable the unit: $(tail -n 5 "$T/dpkg.log")"
[ -L "$WANTS" ] || fail "enabling made no $WANTS"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall "$NEW_DEB" \
    </dev/null >>"$T/dpkg.log" 2>&1 || fail "reinstall: $(tail -n 20 "$T/dpkg.log")"
[ -L "$WANTS" ] || fail "the upgrade disabled the unit the operator enabled"
ok "a unit the operator enabled stays enabled through the upgrade (postinst configure $NEW-1)"
