#!/usr/bin/env bash
# Command line: --check-config, exit codes 0 / 64 / 78, --version, --help.
. "$(dirname "$0")/lib.sh"
certs
PBX_PORT=8887 BOOTSTRAP=127.0.0.1:9092 write_conf
out=$(w2k -c "$T/w2k.conf" -t 2>&1); rc=$?
[ $rc -eq 0 ] || fail "check-config of a good file: exit $rc: $out"
echo "$out" | grep -q 'pbx hq' || fail "summary: $out"
[ -d "$T/spool" ] || fail "--check-config did not check the spool directory"
ok "--check-config on a good file: exit 0 with a summary"

sed 's/ping_interval = 5;/ping_interval = 5; colour = "blue";/' "$T/w2k.conf" >"$T/bad.conf"
out=$(w2k -c "$T/bad.conf" -t 2>&1); rc=$?
[ $rc -eq 78 ] || fail "unknown key: exit $rc"
line=$(grep -n colour "$T/bad.conf" | cut -d: -f1)
echo "$out" | grep -q "bad.conf:$line:.*colour" || fail "no file:line for the unknown key: $out"
ok "unknown key: exit 78 with file:line"

printf 'pbx = ( { name = "x" ' >"$T/syntax.conf"
out=$(w2k -c "$T/syntax.conf" -t 2>&1); rc=$?
[ $rc -eq 78 ] && echo "$out" | grep -q 'syntax.conf:1' || fail "syntax error: $rc $out"
w2k -c "$T/missing.conf" -t >/dev/null 2>&1; [ $? -eq 78 ] || fail "missing file"
ok "syntax error and missing file: exit 78"

w2k --bogus >/dev/null 2>&1; [ $? -eq 64 ] || fail "unknown option"
w2k -t -n -c "$T/w2k.conf" >/dev/null 2>&1; [ $? -eq 64 ] || fail "-t with -n"
w2k -l loud -c "$T/w2k.conf" >/dev/null 2>&1; [ $? -eq 64 ] || fail "bad level"
ok "usage errors: exit 64"

w2k -V | grep -q '^wsi2kafka [0-9]' || fail "--version"
w2k -h | grep -q -- '--check-config' || fail "--help"
ok "--version, --help"
w2k -c "$T/w2k.conf" -t 2>&1 | grep -q 's3cret' && fail "password printed"
ok "no password in --check-config output"
