#!/usr/bin/env bash
# --check-config warns, without failing, when spool.dir is outside what the
# packaged unit may write (ProtectSystem=strict: StateDirectory= and
# ReadWritePaths= of systemd/wsi2kafka.service, built in), and names the
# drop-in that fixes it; the default spool.dir, inside, gets no such
# warning (tests/unit/test_cfg.c: the paths, drop-ins, links).
. "$(dirname "$0")/lib.sh"
certs
PBX_PORT=1 BOOTSTRAP=127.0.0.1:1 write_conf
out=$(w2k -c "$T/w2k.conf" -t 2>"$T/stderr"); rc=$?
[ $rc -eq 0 ] || fail "-t with spool.dir $T/spool: exit $rc: $(cat "$T/stderr")"
echo "$out" | grep -q "is valid" || fail "no summary: $out"
want="config: $T/w2k.conf: warning: spool.dir $T/spool is outside what wsi2kafka.service may write (/var/lib/wsi2kafka; ProtectSystem=strict)"
grep -qF "$want" "$T/stderr" || fail "no warning '$want': $(cat "$T/stderr")"
grep -qF "ReadWritePaths=$T/spool (systemctl edit wsi2kafka)" "$T/stderr" ||
	fail "the warning does not name the drop-in: $(cat "$T/stderr")"
ok "-t: exit 0, a warning naming the unit's paths and ReadWritePaths=$T/spool"

# The default spool.dir (the unit's StateDirectory=): no warning. -t
# creates spool.dir, so not on this machine: /var/lib/wsi2kafka/spool in
# a mount namespace of its own, over a scratch directory.
if [ "$(id -u)" -eq 0 ] && unshare --mount true 2>/dev/null; then
	mkdir -p "$T/varlib"
	sed "s|dir = \"$T/spool\"|dir = \"/var/lib/wsi2kafka/spool\"|" "$T/w2k.conf" >"$T/default.conf"
	grep -q '/var/lib/wsi2kafka/spool' "$T/default.conf" || fail "could not set spool.dir"
	unshare --mount sh -c 'mount --make-rprivate / && mkdir -p /var/lib &&
	    mount --bind "$1/varlib" /var/lib && shift && exec "$@"' sh "$T" \
	    "${W2K_CMD[@]}" -c "$T/default.conf" -t >/dev/null 2>"$T/stderr2"; rc=$?
	[ $rc -eq 0 ] || fail "-t with the default spool.dir: exit $rc: $(cat "$T/stderr2")"
	grep -q 'outside' "$T/stderr2" && fail "warned about the default spool.dir: $(cat "$T/stderr2")"
	[ -d "$T/varlib/wsi2kafka/spool" ] || fail "-t did not create the spool in the namespace"
	ok "-t with spool.dir /var/lib/wsi2kafka/spool: no warning"
else
	echo "skip - the default spool.dir needs root and a mount namespace"
fi
