#!/bin/sh
# tests/fuzz/seed-corpus.sh — remake the generated seeds of the fuzz corpora
# (tests/fuzz/corpus/<target>/), so that they can be checked and renewed:
#
#   tests/fuzz/seed-corpus.sh [PORTSIP_WSI_MD [CONTRACT_MD]]
#
# fuzz_norm  wsi-md-NN-<event_type|command>.json: every code block of the
#            protocol notes (default ../shared/reference/portsip-wsi.md) that
#            holds JSON, verbatim — the malformed examples are kept, they are
#            the interesting ones;
#            unit-<hash>.json: every frame up to 16 KiB the unit tests feed
#            to norm_frame(), when $B/tests/test_norm is built (B defaults
#            to build; the test writes them, see NORM_CORPUS_DIR there).
# fuzz_cfg   contract-example.conf: the configuration of the contract's §4
#            (default ../shared/spec/contract.md).
#
# Run from anywhere; it works in the repository root. Files of the names
# above are removed first; hand-made seeds (any other name) are left alone,
# and a generated seed equal to one of them is not written.
set -eu
cd "$(dirname "$0")/../.."
md=${1:-../shared/reference/portsip-wsi.md}
contract=${2:-../shared/spec/contract.md}
B=${B:-build}
norm=tests/fuzz/corpus/fuzz_norm
cfg=tests/fuzz/corpus/fuzz_cfg
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rm -f "$norm"/wsi-md-*.json "$norm"/unit-*.json "$cfg"/contract-example.conf

# Keep $1 as $2 unless a file of the directory already has its bytes.
keep() {	# file dest
	for f in "${2%/*}"/*; do
		[ -f "$f" ] && cmp -s "$1" "$f" && return 0
	done
	cp "$1" "$2"
}

# Code blocks: ``` to ```; a block is JSON when its first non-blank
# character is { or [. Named by number and the first event_type or command.
[ -r "$md" ] || { echo "seed-corpus: cannot read $md" >&2; exit 1; }
awk -v dir="$tmp" '
	/^```/ {
		if (inblk) {
			inblk = 0
			if (body ~ /^[ \t\n]*[{[]/) {
				n++
				f = sprintf("%s/%03d", dir, n)
				printf "%s", body > f
				close(f)
			}
			next
		}
		inblk = 1; body = ""; next
	}
	inblk { body = body $0 "\n" }
' "$md"
for f in "$tmp"/[0-9]*; do
	[ -f "$f" ] || continue
	name=$(sed -n \
	    's/.*"\(event_type\|command\)" *: *"\([a-z0-9_]*\)".*/\2/p' \
	    "$f" | head -n 1)
	keep "$f" "$norm/wsi-md-${f##*/}-${name:-other}.json"
done

if [ -x "$B/tests/test_norm" ]; then
	mkdir "$tmp/unit"
	NORM_CORPUS_DIR="$tmp/unit" "$B/tests/test_norm" >/dev/null 2>&1 || {
		echo "seed-corpus: $B/tests/test_norm failed" >&2; exit 1; }
	for f in "$tmp"/unit/*; do
		[ -f "$f" ] && keep "$f" "$norm/${f##*/}"
	done
else
	echo "seed-corpus: no $B/tests/test_norm: unit-test seeds skipped" >&2
fi

# The contract's configuration: the block that starts with "pbx = (".
if [ -r "$contract" ]; then
	awk '/^```/ { if (inblk && keep) exit; inblk = !inblk; next }
	     inblk && /^pbx = \(/ { keep = 1 }
	     inblk && keep { print }' "$contract" >"$tmp/contract.conf"
	[ -s "$tmp/contract.conf" ] &&
	    keep "$tmp/contract.conf" "$cfg/contract-example.conf"
fi
echo "seed-corpus: $(find "$norm" -type f | wc -l) fuzz_norm seeds," \
    "$(find "$cfg" -type f | wc -l) fuzz_cfg seeds"
