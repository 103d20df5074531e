#!/usr/bin/env bash
# A topic refused for a missing ACL (TOPIC_AUTHORIZATION_FAILED on every
# Produce to it): its records stay in the spool and are produced again with
# backoff, never dead-lettered; /readyz is 503 and names it, the refusal is
# counted and logged; the other topics and dead letters flow meanwhile.
# When the refusal ends, every record is delivered, once by id.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/refusals.sh
refusal_start
# The mock has no ACLs: broker 3 leads portsip.calls alone and refuses
# every Produce request; the other topics live on brokers 1 and 2.
for t in "${TOPICS[@]}"; do
	[ "$t" = portsip.calls ] || kmock_cmd leader "$t" $((RANDOM % 2 + 1))
done
kmock_cmd leader portsip.calls 3
kmock_cmd broker_errors 3 0 TOPIC_AUTHORIZATION_FAILED 2000
refusal_daemon
refusal_seen portsip.calls topic_authorization_failed
other_topics_flow portsip.calls
# The ACL is "fixed": the topic moves to a broker that takes it.
kmock_cmd leader portsip.calls 1
all_delivered
