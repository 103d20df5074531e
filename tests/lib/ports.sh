# tests/lib/ports.sh — free_port, shared by the integration tests' metrics
# helpers (tests/lib/metrics.sh) and the benchmark (tests/bench/bench.sh).

# free_port: a loopback TCP port nobody listens on. Chosen below the
# kernel's ephemeral range (32768+), where kmock, pbxsim and outgoing
# connections get theirs, so a port found free stays free in practice;
# the callers still retry on a collision.
free_port() {
	local p i
	for i in $(seq 100); do
		p=$((20000 + (RANDOM % 12000)))
		ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}
