#!/usr/bin/env bash
# The strict parser is strict (it must reject what Prometheus rejects, or
# the other tests prove nothing); the Grafana dashboard and the alert rules
# name only metrics the daemon exports; and with promtool installed, the
# exposition passes its linter and every rule and panel query parses.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh

# ---- promparse: good inputs pass, each kind of bad one is refused -------
H='# HELP a_total x\n# TYPE a_total counter\n'
G='# HELP g x\n# TYPE g gauge\n'
Hi='# HELP h x\n# TYPE h histogram\n'
good=(
	"${H}a_total{b=\"c\"} 1\n"
	"${G}g{a=\"x\",} -1.5e3 1700000000000\n"
	"${G}g NaN\n${H}a_total +Inf\n"
	"${G}g{a=\"q\\\\\\\"\\\\n\\\\\\\\\"} 1\n"
	"${Hi}h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"
	"# a comment\n\n${G}g 0\n"
)
bad=(
	"${G}g 1"				# no final newline
	"# TYPE g gauge\ng 1\n"			# no HELP
	"# HELP g x\ng 1\n"			# no TYPE
	"g 1\n"					# neither
	"${G}g{a=\"x\\\\t\"} 1\n"		# bad escape
	"${G}g{a=\"x\",a=\"y\"} 1\n"		# label twice
	"${G}g{__a=\"x\"} 1\n"			# reserved label name
	"${G}g 1\ng 2\n"			# series twice
	"${G}g{a=\"1\"} 1\n${H}a_total 1\ng{a=\"2\"} 1\n"	# not together
	"${G}g 0x1F\n"				# not a float
	"${G}g  1\n"				# two spaces
	"${G}g 1\n# HELP g y\n"			# HELP after samples
	"${G}# TYPE g counter\ng 1\n"		# TYPE twice
	"# HELP c x\n# TYPE c counter\nc 1\n"	# counter not *_total
	"${H}a_total -1\n"			# negative counter
	"${G}g{le=\"1\"} 1\n"			# le outside a histogram
	"${Hi}h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"	# no +Inf
	"${Hi}h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"
	"${Hi}h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n"	# count != +Inf
	"${Hi}h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"
	"${Hi}h 1\n"				# bare histogram sample
	"${G}g{a=\"\xff\"} 1\n"			# not UTF-8
	"${G}g 1\r\n"				# CR
)
for i in "${!good[@]}"; do
	printf "${good[$i]}" | "$PROMPARSE" -q 2>"$T/err" || fail "good[$i] refused: $(cat "$T/err")"
done
for i in "${!bad[@]}"; do
	printf "${bad[$i]}" | "$PROMPARSE" -q 2>"$T/err" && fail "bad[$i] accepted: ${bad[$i]}"
	grep -q '^promparse: line' "$T/err" || fail "bad[$i]: no message"
done
ok "promparse: ${#good[@]} valid expositions pass, ${#bad[@]} invalid ones are refused"

# ---- a real exposition (dry run: no Kafka, the PBX unreachable) ---------
certs
PBX_PORT=1 BOOTSTRAP=127.0.0.1:1 write_conf
start_http_daemon -n
scrape
grep -c '^# TYPE ' "$T/metrics.txt" >"$T/nfam"
[ "$(cat "$T/nfam")" -ge 26 ] || fail "$(cat "$T/nfam") families"
sed -n 's/^# TYPE \([^ ]*\) \([a-z]*\)$/\1 \2/p' "$T/metrics.txt" >"$T/families"
[ "$(get /readyz)" = 503 ] || fail "dry run with no PBX is ready"
jq -e '.ready == false and .not_subscribed == ["hq"] and .kafka.enabled == false' \
    "$T/body" >/dev/null || fail "/readyz: $(cat "$T/body")"
ok "dry run: $(cat "$T/nfam") families; /readyz 503 names the unreachable PBX"

# The backfill's families exist only where it is enabled, and not in a
# dry run: a daemon with it (Kafka and the PBX unreachable) exports them.
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "dry run: exit status $DAEMON_RC"
PBX_PORT=1 BOOTSTRAP=127.0.0.1:1 write_conf 'backfill = { enabled = true; };'
start_http_daemon
scrape
sed -n 's/^# TYPE \(wsi2kafka_backfill_[^ ]*\) \([a-z]*\)$/\1 \2/p' "$T/metrics.txt" >"$T/bf-families"
[ "$(wc -l <"$T/bf-families")" -eq 3 ] || fail "backfill families: $(cat "$T/bf-families")"
cat "$T/bf-families" >>"$T/families"
ok "with backfill enabled: its 3 families"

# Every metric the dashboard and the alerts use is exported (a histogram's
# _bucket/_sum/_count count as its family).
jq -e '.panels | length > 10' conf/grafana-dashboard.json >/dev/null ||
	fail "dashboard is not JSON with panels"
for f in conf/grafana-dashboard.json conf/prometheus-alerts.yml; do
	names=$(grep -o 'wsi2kafka_[a-z_]*' "$f" | sort -u)
	[ -n "$names" ] || fail "$f names no metric"
	for n in $names; do
		base=$(echo "$n" | sed -E 's/_(bucket|sum|count)$//')
		grep -q "^$n \|^$base histogram$" "$T/families" || fail "$f: $n is not exported"
	done
done
ok "the dashboard and the alert rules use only exported metrics"

if command -v promtool >/dev/null; then
	promtool check metrics <"$T/metrics.txt" >"$T/lint" 2>&1 || fail "promtool: $(cat "$T/lint")"
	promtool check rules conf/prometheus-alerts.yml >"$T/lint" 2>&1 ||
		fail "promtool rules: $(cat "$T/lint")"
	# Each dashboard query, as a recording rule, must parse.
	{
		echo 'groups: [ { name: dashboard, rules: ['
		jq -r '.. | objects | select(has("expr")) | .expr' conf/grafana-dashboard.json |
		    sed -e 's/\$__rate_interval/5m/g' -e 's/\$instance/.*/g' |
		    awk '{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "  { record: \"dash:q%d\", expr: \"%s\" },\n", NR, $0 }'
		echo '] } ]'
	} >"$T/dash-rules.yml"
	promtool check rules "$T/dash-rules.yml" >"$T/lint" 2>&1 ||
		fail "dashboard queries: $(cat "$T/lint")"
	ok "promtool: exposition lint clean, alert rules and dashboard queries parse"
else
	ok "promtool not installed: lint and PromQL checks skipped"
fi
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit status $DAEMON_RC"
