#!/bin/sh
# tests/fuzz/coverage.sh — line and branch coverage of each fuzz target's
# module over its corpus, with clang's source-based coverage:
#
#   B=build/san tests/fuzz/coverage.sh [TARGET...]    (default: every target)
#
# Builds $B/fuzz-cov/<target> (the target and every module but main.c, with
# -fprofile-instr-generate -fcoverage-mapping, no sanitizers), runs it once
# over every input of $B/corpus/<target> (what `make fuzz` grew),
# tests/fuzz/corpus/<target> and tests/fuzz/regress/<target>, and prints
# llvm-cov's summary for the module the target is about (fuzz_norm: norm.c,
# fuzz_cfg: cfg.c, fuzz_spool: spool.c); the full per-line report is left in
# $B/fuzz-cov/<target>.txt. Needs clang and llvm-profdata / llvm-cov (the
# -14 versions Debian 12 ships are used when the plain names are missing).
set -eu
cd "$(dirname "$0")/../.."
B=${B:-build}
CC=${FUZZ_CC:-clang}
PROFDATA=$(command -v llvm-profdata || command -v llvm-profdata-14)
COV=$(command -v llvm-cov || command -v llvm-cov-14)
PKGS="libwebsockets openssl libcjson rdkafka libconfig libsystemd"
out=$B/fuzz-cov
mkdir -p "$out"
src=
for f in src/*.c; do [ "$f" = src/main.c ] || src="$src $f"; done
targets=$*
if [ -z "$targets" ]; then
	for f in tests/fuzz/fuzz_*.c; do
		f=${f##*/}
		targets="$targets ${f%.c}"
	done
fi

for t in $targets; do
	case $t in
	fuzz_norm)	mod=src/norm.c ;;
	fuzz_cfg)	mod=src/cfg.c ;;
	fuzz_spool)	mod=src/spool.c ;;
	*)		mod=src/${t#fuzz_}.c ;;
	esac
	# shellcheck disable=SC2046,SC2086
	$CC -g -O1 -fsanitize=fuzzer -fprofile-instr-generate \
	    -fcoverage-mapping -std=c11 -Iinclude -D_GNU_SOURCE \
	    -DW2K_VERSION=\"cov\" $(pkg-config --cflags $PKGS) \
	    -o "$out/$t" "tests/fuzz/$t.c" $src $(pkg-config --libs $PKGS)
	dirs=
	for d in "$B/corpus/$t" "tests/fuzz/corpus/$t" "tests/fuzz/regress/$t"; do
		[ -d "$d" ] && dirs="$dirs $d"
	done
	rm -f "$out/$t".*.profraw
	# -runs=0: run every input once, mutate nothing.
	# shellcheck disable=SC2086
	LLVM_PROFILE_FILE="$out/$t.%p.profraw" "$out/$t" -runs=0 $dirs \
	    >"$out/$t.run.log" 2>&1 || {
		echo "coverage: $t failed on its corpus (see $out/$t.run.log)" >&2
		exit 1; }
	"$PROFDATA" merge -sparse -o "$out/$t.profdata" "$out/$t".*.profraw
	"$COV" show "$out/$t" -instr-profile="$out/$t.profdata" "$mod" \
	    >"$out/$t.txt"
	# shellcheck disable=SC2086
	echo "== $t ($mod): $(find $dirs -type f | wc -l) inputs in$dirs"
	"$COV" report "$out/$t" -instr-profile="$out/$t.profdata" "$mod" |
	    sed -n '1p;/^TOTAL/p'
done
