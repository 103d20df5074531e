#!/usr/bin/env bash
# Contract §6, as a property: whatever the TLS record boundaries, every
# frame is handled exactly once, in order, within the bound of the PBX's
# write. tlsplay (tests/tlsplay/tlsplay.c) plays the normalizer corpus
# (tests/fuzz/corpus/fuzz_norm: the JSON blocks of portsip-wsi.md, the unit
# tests' frames, fuzz seeds; tests/unit/data/norm), but the command replies,
# plus large frames (a 670 KB CDR, 1.5 MB, sizes at the WebSocket length
# encodings, at lws's 64 KiB rx buffer and at a TLS record's 16 KiB), each
# followed by a marker frame, in passes: pass 0 one frame per TLS write,
# then passes with a seed each, frames shuffled, the stream cut into TLS
# records of random sizes (frames split at random offsets, several frames in
# a record, 1-byte records), sent in bursts with random pauses, and pauses
# longer than the bound right after random frame ends (2.5 times BOUND_MS,
# plus twice the frame's CPU allowance: see readpath.sh).
# Checked on the dry run's output: pass p's records are pass 0's, frame by
# frame (received_at aside), each frame's followed by its marker; and each
# record is out within the bound (readpath.sh) of its frame's last byte
# leaving the PBX, or of the record before it.
#   W2K_READ_SEED=S tests/run 232     replays the pass of seed S (after pass 0)
#   W2K_READ_SECONDS=N                plays passes for N s (default 30)
. "$(dirname "$0")/lib.sh"
. tests/lib/readpath.sh
certs

# The frames: the corpus, without the replies (commands: they are session
# state, not records), and the large ones.
mkdir "$T/frames"
for f in tests/fuzz/corpus/fuzz_norm/* tests/unit/data/norm/*; do
	[ -f "$f" ] && ! grep -q '"command"' "$f" && echo "$f"
done >"$T/frames.list"
big_cdr 1500 9300001 | tr -d '\n' >"$T/frames/cdr-1500"
n=1
for size in 125 126 127 16383 16384 16385 65535 65536 65537 1500000; do
	sized_event "$size" "93100$n" >"$T/frames/sized-$size"
	n=$((n + 1))
done
ls "$T"/frames/* >>"$T/frames.list"
NFRAMES=$(wc -l <"$T/frames.list")

seed_args=(--seconds "${W2K_READ_SECONDS:-30}" --min-passes 3)
[ -n "${W2K_READ_SEED:-}" ] && seed_args=(--seed "$W2K_READ_SEED" --max-passes 1 --min-passes 1)
rm -f "$T/play.port"
"$TLSPLAY" --cert "$CERTS/server.pem" --key "$CERTS/server.key" \
    --port-file "$T/play.port" --frames "$T/frames.list" --subs 3 \
    --log "$T/play.events" --long-pause $((BOUND_MS * 5 / 2)) \
    --pause-per-byte "$NS_PER_BYTE" "${seed_args[@]}" \
    >"$T/play.log" 2>&1 &
PIDS+=($!)
wait_for 20 test -s "$T/play.port" || fail "tlsplay did not start"
PBX_PORT=$(cat "$T/play.port")
BOOTSTRAP=127.0.0.1:1 write_conf
start_daemon_stamped -n

wait_for $((60 + ${W2K_READ_SECONDS:-30})) grep -q -e ' DONE ' -e ' ERROR ' "$T/play.events" ||
	fail "tlsplay did not finish its passes"
grep ' ERROR ' "$T/play.events" && fail "tlsplay: $(grep ' ERROR ' "$T/play.events")"
LAST=$(sed -n 's/.* PASSEND \([0-9]*\)$/\1/p' "$T/play.events" | tail -n1)
last_marker() { cut -c1-300 "$T/daemon.ts" | grep -q "\"key\":\"7700770077:$((LAST * 1000000 + NFRAMES - 1))\""; }
# (If it never comes, the check below says what was held, and where.)
wait_for 20 last_marker
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"

# One line per record: time, M and the marker's pass*1000000+pos, or R, the
# frame's bytes and the record without received_at.
jq -R -r 'index("\t") as $k | .[0:$k] as $t | (.[$k+1:] | fromjson) as $r |
    if ($r.key // "" | startswith("7700770077:")) then
	"\($t)\tM\t\($r.key[11:])"
    else "\($t)\tR\t\($r | del(.value.received_at) | tojson)" end' \
    "$T/daemon.ts" >"$T/records" || fail "dry-run output not JSON"
awk -F'\t' -v n="$NFRAMES" -v b="$BOUND_MS" -v nspb="$NS_PER_BYTE" \
    -v last="$LAST" -v list="$T/frames.list" '
	BEGIN {
		p = 0; pos = 0; prev = 0; ns = 0
		for (i = 0; (getline f < list) > 0; i++) {
			name[i] = f
			cmd = "wc -c < \"" f "\""; cmd | getline size[i]; close(cmd)
		}
	}
	FILENAME != ARGV[ARGC - 1] {	# tlsplay events
		if ($0 ~ / PASS [0-9]+ seed /) { split($0, a, " "); seed[a[3]] = a[5] }
		if ($0 ~ / W [0-9]+ [0-9]+ [0-9]+ [fm]$/) {
			split($0, a, " ")
			w[a[3], a[4], a[6]] = a[1]; idx[a[3], a[4]] = a[5]
		}
		next
	}
	function late(t, from, lim, what) {
		ms = (t - from) * 1000
		if (ms > worst) { worst = ms; wwhat = what }
		if (ms <= lim) return 0
		printf "FAIL: pass %d (seed %s): %s out %.1f ms after its write or the record before (bound %d ms)\n", p, seed[p], what, ms, lim
		bad++
		return 1
	}
	{
		if (bad > 5) exit
		i = idx[p, pos]
		wt = w[p, pos, ($2 == "M" ? "m" : "f")]
		from = (prev > wt) ? prev : wt
		if ($2 == "R") {
			seg[++ns] = $3
			late($1, from, b + size[i] * nspb / 1000000, "a record of " name[i])
			prev = $1
			next
		}
		want = p * 1000000 + pos
		if ($3 != want) {
			printf "FAIL: pass %d (seed %s): marker %s where %d was due (after %s): a frame lost, repeated or out of order\n", p, seed[p], $3, want, name[i]
			bad++; exit
		}
		if (p == 0) {
			ref[i] = ns
			for (k = 1; k <= ns; k++) refrec[i, k] = seg[k]
		} else if (ns != ref[i]) {
			printf "FAIL: pass %d (seed %s): %s gave %d records, %d in pass 0\n", p, seed[p], name[i], ns, ref[i]
			bad++
		} else {
			for (k = 1; k <= ns; k++)
				if (seg[k] != refrec[i, k]) {
					printf "FAIL: pass %d (seed %s): %s: record %d differs from pass 0\n", p, seed[p], name[i], k
					bad++; break
				}
		}
		late($1, from, b, "the marker after " name[i])
		records += ns + 1
		ns = 0; prev = $1
		if (++pos == n) { pos = 0; p++ }
	}
	END {
		if (!bad && (p != last + 1 || pos != 0)) {
			printf "FAIL: output ends at pass %d position %d, pass %d played\n", p, pos, last; bad++
		}
		if (bad) exit 1
		seeds = ""
		for (q = 1; q <= last; q++) seeds = seeds (q > 1 ? " " : "") seed[q]
		printf "ok - %d passes of %d frames (+ markers), seeds %s: %d records, each once, in order, as in pass 0; the longest wait %.1f ms (%s; bound %d ms + the frame'"'"'s bytes at %d ns/byte)\n", last + 1, n, seeds, records, worst, wwhat, b, nspb
	}' "$T/play.events" "$T/records" >"$T/verdict"
rc=$?
cat "$T/verdict"
if [ $rc -ne 0 ]; then
	s=$(sed -n 's/^FAIL: pass [0-9]* (seed \([0-9]*\)).*/\1/p' "$T/verdict" | head -n1)
	[ -n "$s" ] && echo "replay: W2K_READ_SEED=$s B=$B tests/run ${0##*/}" >&2
	fail "$(head -n1 "$T/verdict")"
fi
