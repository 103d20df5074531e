#!/usr/bin/env bash
# tests/check-trixie.sh — `make check-trixie` (not part of `make check`):
# the project on Debian 13 ("trixie"), the current stable release, from
# Debian's own packages: gcc 14, libwebsockets 4.3, librdkafka 2.8,
# libconfig 1.7.
#
# 1. A trixie root made with debootstrap in $TRIXIE_ROOT (build/trixie-root),
#    kept between runs: debootstrap runs only when the root is not complete
#    (its stamp file, written last, or a file apt needs is missing); the build dependencies are installed with
#    apt-get inside it, and the package lists refreshed (with an upgrade)
#    when older than a day.
# 2. In it, on a copy of this tree (uncommitted changes included, build/
#    left out): the ASan+UBSan build and the release build, both with
#    -Werror; the unit tests and every integration test but those that
#    need Maven (tests/run, SKIP_TESTS); `make deb`.
# 3. `apt install ./wsi2kafka_*.deb` as an operator would, then: the user,
#    the directories and files with their modes and owners, and
#    `wsi2kafka -t` and a `wsi2kafka -n` dry run as the service user
#    (runuser / setpriv); the package purged again.
#
# Root only (debootstrap, chroot, mount). The chroot shares the host's
# network namespace: loopback tests work as on the host. /proc, /dev,
# /dev/pts and /sys are mounted into the root while it is used, and
# unmounted on every way out (trap); a run killed with SIGKILL leaves them
# mounted, and the next run unmounts them first. The root is never removed
# while anything is mounted under it.
#
#   TRIXIE_ROOT=DIR      the root (default build/trixie-root)
#   TRIXIE_MIRROR=URL    Debian mirror (default http://deb.debian.org/debian)
#   TRIXIE_REFRESH=1     refresh the package lists now, whatever their age
#   JOBS=N               integration tests at a time (tests/run; default 2)
#   tests/check-trixie.sh --run CMD...   CMD in the root, mounted (the last
#                        run's tree is in /w2k): to look into a failure
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(realpath -m "${TRIXIE_ROOT:-build/trixie-root}")
MIRROR=${TRIXIE_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
STAMP=.wsi2kafka-debootstrap-complete
# What the build, the tests and `make deb` need there (DEB_PKGS and
# PKG_TOOLS of the Makefile, without clang and valgrind: no fuzz smoke and
# no valgrind pass here); systemd for systemd-analyze, sysusers and
# tmpfiles; man-db for the unit's Documentation= check.
PKGS="build-essential pkg-config libwebsockets-dev libssl-dev libcjson-dev
      librdkafka-dev libconfig-dev libsystemd-dev libcmocka-dev kcat openssl clang libclang-rt-dev valgrind
      jq curl ca-certificates debhelper dpkg-dev fakeroot lintian rpm elfutils
      systemd man-db iproute2 procps bc netcat-openbsd python3"
t0=$SECONDS
step() { echo "check-trixie: [$((SECONDS - t0)) s] $*"; }
die() { echo "check-trixie: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null ||
	die "cannot install debootstrap"

# ---- mounts ---------------------------------------------------------------
mounted_under() { findmnt -rn -o TARGET | awk -v r="$ROOT/" 'index($0, r) == 1' | sort -r; }
unmount_all() {
	local m
	for m in $(mounted_under); do
		umount "$m" 2>/dev/null || umount -l "$m" ||
			echo "check-trixie: cannot unmount $m" >&2
	done
}
cleanup() {
	local st=$?
	unmount_all
	[ -z "$(mounted_under)" ] || echo "check-trixie: still mounted: $(mounted_under)" >&2
	step "done (exit $st)"
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# /dev is a tmpfs of its own with the few nodes a build and the tests use,
# and a devpts instance of its own, never a bind of the host's /dev: a
# recursive delete of build/ while mounted (rm -rf, git worktree remove)
# then removes nothing of the host's (proc cannot be deleted, sys is
# read-only).
mount_all() {
	local n
	mkdir -p "$ROOT/proc" "$ROOT/dev" "$ROOT/sys"
	mount -t proc proc "$ROOT/proc"
	mount -t tmpfs -o mode=0755,nosuid,size=64m tmpfs "$ROOT/dev"
	for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
		IFS=: read -r name maj min <<<"$n"
		mknod -m 0666 "$ROOT/dev/$name" c "$maj" "$min"
	done
	ln -s /proc/self/fd "$ROOT/dev/fd"
	ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
	ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
	ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
	mkdir -m 1777 "$ROOT/dev/shm"
	mkdir "$ROOT/dev/pts"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$ROOT/dev/pts"
	ln -s pts/ptmx "$ROOT/dev/ptmx"
	mount -t sysfs -o ro sysfs "$ROOT/sys"
}
# in_root CMD...: CMD in the root, with a clean environment (no make or
# test variables of the caller leak in).
in_root() {
	chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive TERM=dumb "$@"
}

# One user of the root at a time: a second would unmount the first's /dev.
mkdir -p "${ROOT%/*}"
exec 9>"$ROOT.lock"
flock -w 3600 9 || die "$ROOT.lock: held for an hour"
unmount_all	# what a killed run left
[ -z "$(mounted_under)" ] || die "still mounted under $ROOT: $(mounted_under)"

# ---- 1. the root -------------------------------------------------------
complete() {	# the stamp, and what apt and the build need of the root
	local f
	for f in "$STAMP" etc/debian_version etc/passwd etc/apt/sources.list \
	    usr/bin/apt-get usr/bin/dpkg; do
		[ -e "$ROOT/$f" ] || return 1
	done
}
if ! complete; then
	step "debootstrap $SUITE from $MIRROR into $ROOT"
	rm -rf "$ROOT"
	mkdir -p "${ROOT%/*}"
	debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" \
	    >"$ROOT.debootstrap.log" 2>&1 ||
		die "debootstrap: $(tail -n 20 "$ROOT.debootstrap.log")"
	cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
	# No documentation filter: the tests read the installed man pages.
	rm -f "$ROOT/etc/dpkg/dpkg.cfg.d/excludes"
	rm -f "$ROOT/var/lib/apt/.w2k-updated"
	touch "$ROOT/$STAMP"
else
	step "reusing $ROOT ($(cat "$ROOT/etc/debian_version"))"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount_all
# tests/check-trixie.sh --run CMD...: CMD in the root (mounted), then out:
# to look into a failure (the last run's tree and logs are in /w2k).
if [ "${1:-}" = --run ]; then
	shift
	in_root "$@"
	exit
fi

# Package lists: refreshed once a day, or when asked; installs are no-ops
# once everything is there.
lists=$ROOT/var/lib/apt/.w2k-updated
if [ "${TRIXIE_REFRESH:-0}" = 1 ] || [ ! -f "$lists" ] ||
    [ -n "$(find "$lists" -mmin +1440)" ]; then
	step "apt-get update, upgrade"
	in_root apt-get update -q >"$ROOT.apt.log" 2>&1 || die "apt-get update: $(tail "$ROOT.apt.log")"
	in_root apt-get -y -q upgrade >>"$ROOT.apt.log" 2>&1 || die "apt-get upgrade: $(tail "$ROOT.apt.log")"
	touch "$lists"
fi
# shellcheck disable=SC2086
in_root apt-get install -y -q --no-install-recommends $PKGS >>"$ROOT.apt.log" 2>&1 ||
	die "apt-get install: $(tail -n 20 "$ROOT.apt.log")"
versions=$(in_root dpkg-query -W -f '${Package} ${Version}\n' gcc-14 \
    libwebsockets-dev librdkafka-dev libconfig-dev libssl-dev | tr '\n' ',' | sed 's/,$//; s/,/, /g')
step "Debian $(cat "$ROOT/etc/debian_version"): $versions"

# ---- 2. build and test ---------------------------------------------------
# A fresh copy of the tree each run: no object of another run or system.
W=/w2k
step "copying the tree to $ROOT$W"
rm -rf "${ROOT:?}$W"
mkdir -p "$ROOT$W"
# (tar's status 1: a file changed while it was read, when edited meanwhile)
tar -cf - --exclude=./build --exclude-vcs . 2>"$ROOT.copy.log" |
    tar -xf - -C "$ROOT$W" || die "copying the tree: $(cat "$ROOT.copy.log")"
# Tests that need Maven's Apache Kafka (they source tests/kafka/broker.sh)
# are left out: trixie's root has no Java.
skip=$(grep -l -F 'tests/kafka/broker.sh' tests/integration/[0-9]*.sh 2>/dev/null |
    xargs -r -n1 basename | sed 's/\.sh$//' | tr '\n' ' ' || true)
[ -z "$skip" ] || step "left out (need Maven): $skip"
J=$(nproc 2>/dev/null || echo 1)
step "build: ASan+UBSan (build/san), release (build) and make bench's tools (build/bench), -Werror"
in_root sh -c "cd $W && make -j$J B=build/san SANITIZE=address,undefined \
    CFLAGS='-O1 -g' CPPFLAGS=-DW2K_TESTING tests && make -j$J all &&
    make -j$J bench-tools" \
    >"$ROOT.build.log" 2>&1 || die "build: $(grep -m 20 -e 'error' -e 'warning' "$ROOT.build.log" || tail -n 30 "$ROOT.build.log")"
step "tests/run unit and integration (JOBS=${JOBS:-2})"
in_root sh -c "cd $W && B=build/san JOBS=${JOBS:-2} SKIP_TESTS='$skip' tests/run unit;
    B=build/san JOBS=${JOBS:-2} SKIP_TESTS='$skip' tests/run integration" \
    2>&1 | tee "$ROOT.tests.log" | grep --line-buffered -v '^PASS ' || true
grep -q '^[0-9]* passed, 0 failed$' "$ROOT.tests.log" &&
    [ "$(grep -c '^[0-9]* passed, 0 failed$' "$ROOT.tests.log")" = 2 ] ||
	die "tests failed (logs in $ROOT$W/build/san/test-logs)"
step "tests: $(grep '^[0-9]* passed' "$ROOT.tests.log" | tr '\n' ';' | sed 's/;$//; s/;/; /')"
step "make deb"
in_root sh -c "cd $W && make deb" >"$ROOT.deb.log" 2>&1 ||
	die "make deb: $(tail -n 30 "$ROOT.deb.log")"

# ---- 3. install it as an operator would ----------------------------------
step "apt install ./wsi2kafka_*.deb"
in_root sh -c "apt-get purge -y -q wsi2kafka; rm -rf /var/lib/wsi2kafka /etc/wsi2kafka" >/dev/null 2>&1 || true
in_root sh -c "cd $W/build/pkg && apt-get install -y -q ./wsi2kafka_*.deb" \
    >"$ROOT.install.log" 2>&1 || die "apt install: $(tail -n 20 "$ROOT.install.log")"
in_root bash -s -- "$W" <"tests/lib/check-installed.sh" >"$ROOT.installed.log" 2>&1 ||
	die "installed package: $(cat "$ROOT.installed.log")"
sed 's/^/  /' "$ROOT.installed.log"
in_root sh -c "apt-get purge -y -q wsi2kafka && rm -rf /var/lib/wsi2kafka &&
    userdel wsi2kafka" >>"$ROOT.install.log" 2>&1 || die "purge: $(tail "$ROOT.install.log")"
step "passed on Debian $(cat "$ROOT/etc/debian_version")"
