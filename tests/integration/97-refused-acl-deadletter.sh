#!/usr/bin/env bash
# A first deploy with ACLs missing on a route's topic and on the dead-letter
# topic: nothing is dropped (before, a refused record became a dead letter,
# and a refused dead letter was dropped). Both wait in the spool, both are
# named by /readyz, and everything arrives once the ACLs are in place.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/refusals.sh
refusal_start
for t in portsip.cdr portsip.extensions portsip.queues portsip.events; do
	kmock_cmd leader "$t" $((RANDOM % 2 + 1))
done
kmock_cmd leader portsip.calls 3
kmock_cmd leader portsip.deadletter 3
kmock_cmd broker_errors 3 0 TOPIC_AUTHORIZATION_FAILED 2000
refusal_daemon
refusal_seen portsip.calls topic_authorization_failed
other_topics_flow portsip.calls portsip.deadletter
refusal_seen portsip.deadletter topic_authorization_failed
kmock_cmd leader portsip.calls 1
kmock_cmd leader portsip.deadletter 2
all_delivered
