# tests/kafka/records.sh — reading back what the daemon produced to the
# real broker (tests/kafka/broker.sh), for the 300-kafka-* tests; sourced
# after broker.sh.
#
# A real broker keeps every record, so the tests count by consuming: each
# record as one JSON object {topic, p, key, h: {header: value}, v: value}.

KTOPICS=(portsip.cdr portsip.calls portsip.extensions portsip.queues portsip.events portsip.deadletter)

# krecords FILE TOPIC...: every record of those topics now, as JSON lines.
krecords() {
	local out=$1 t
	shift
	: >"$out"
	for t in "$@"; do
		# Values are our JSON (no raw tab or newline); keys are ids.
		kafka_all "$t" '%t\t%p\t%k\t%h\t%s\n' >"$T/krec.raw"
		jq -R -c 'split("\t") | {topic: .[0], p: (.[1] | tonumber), key: .[2],
		    h: (.[3] | split(",") | map(capture("^(?<k>[^=]*)=(?<v>.*)$"))
		        | map({(.k): .v}) | add // {}),
		    v: (.[4:] | join("\t") | fromjson)}' "$T/krec.raw" >>"$out" ||
			fail "records of $t are not topic/partition/key/headers/JSON"
	done
}

# krecords_check FILE: every record in FILE is on the topic the default
# routes give its type, with the key and the CloudEvents headers of
# contract §5; prints the bad ones (at most 5) and fails on any.
krecords_check() {
	local bad
	bad=$(jq -c 'def route: if .type == "call_cdr" then "portsip.cdr"
	        elif (.type | test("^(call_|target_|cdr_target_)")) then "portsip.calls"
	        elif (.type | startswith("extension_")) then "portsip.extensions"
	        elif (.type | startswith("queue_")) then "portsip.queues"
	        else "portsip.events" end;
	    def key: if .tenant_id == null then ""
	        elif .session_id != null then .tenant_id + ":" + .session_id
	        elif .data.extension_id != null then .tenant_id + ":" + .data.extension_id
	        elif .data.queue_id != null then .tenant_id + ":" + .data.queue_id
	        elif .data.queue_number != null then .tenant_id + ":" + .data.queue_number
	        else .tenant_id end;
	    select(.v.schema == "wsi2kafka.event/1")
	    | select(.topic != (.v | route) or .key != (.v | key)
	        or .h.ce_specversion != "1.0" or .h.ce_id != .v.id
	        or .h.ce_source != "wsi2kafka://" + .v.pbx
	        or .h.ce_type != "com.portsip.wsi." + .v.type
	        or .h["content-type"] != "application/json"
	        or ((.h | has("ce_time")) != (.v.time != null)))
	    | {topic, key, h, type: .v.type, id: .v.id}' "$1" | head -n 5)
	[ -z "$bad" ] || fail "records off their route, key or headers: $bad"
}

# kids FILE [PBX]: the ids in FILE (of PBX's records), one a line, sorted,
# duplicates kept.
kids() { jq -r --arg p "${2:-}" 'select($p == "" or .v.pbx == $p) | .v.id' "$1" | sort; }

# kseqs FILE [PBX]: the distinct flood seqs in FILE, sorted.
kseqs() { jq -r --arg p "${2:-}" 'select($p == "" or .v.pbx == $p) | .v.data.seq // empty' "$1" | sort -n -u; }

# korder_break FILE: per-key order (contract §5) as the broker stored it,
# within each topic (a call's CDR has a topic of its own). The records of a
# topic are in FILE in partition order (kcat keeps each partition's order),
# and a key has one partition there; the flood's seq rises in the order
# pbxsim sent the events. So, taking the first copy of each event (a later
# copy is a re-send, allowed by at-least-once), the seqs of every key must
# rise. Prints the first break, nothing when there is none.
korder_break() {
	jq -r 'select(.v.data.seq != null and .key != "") | "\(.topic)/\(.key) \(.v.data.seq) \(.v.id)"' "$1" |
	    awk '!seen[$3]++ {
		if (($1 in last) && $2 + 0 < last[$1] + 0) { print $1 ": seq " $2 " after " last[$1]; exit }
		last[$1] = $2
	    }'
}

# korder_check FILE: fails on a break of per-key order in FILE; then proves
# it would have seen one: the same records with the first events of two
# different seqs of one key swapped must show a break.
korder_check() {
	local bad
	jq -c -s '. as $r
	    | [to_entries[] | select(.value.v.data.seq != null and .value.key != "")
	       | {i: .key, k: "\(.value.topic)/\(.value.key)", s: .value.v.data.seq}]
	    | [group_by(.k)[] | . as $g | ($g[0]) as $x
	       | [$g[] | select(.s != $x.s)][0] as $y | select($y != null) | [$x.i, $y.i]][0]
	    | if . == null then empty
	      else . as [$a, $b] | $r | .[$a] = $r[$b] | .[$b] = $r[$a] | .[] end' "$1" >"$1.swapped"
	bad=$(korder_break "$1")
	[ -z "$bad" ] || fail "events of one key out of order on Kafka: $bad"
	[ -s "$1.swapped" ] || fail "no key with two flood events in $1: per-key order untested"
	[ -n "$(korder_break "$1.swapped")" ] ||
		fail "korder_check cannot see a swapped pair in $1.swapped"
	rm -f "$1.swapped"
}
