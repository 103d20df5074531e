#!/usr/bin/env bash
# A route names a topic that does not exist on a cluster that does not
# create topics automatically. librdkafka 2.0.2's mock cluster always
# creates them (also when the producer asks it not to, with
# allow.auto.create.topics=false), so the broker's answer is injected:
# UNKNOWN_TOPIC_OR_PART for portsip.queues in every Metadata reply. The
# other topics keep flowing (before, the first record of the missing topic
# stopped every topic: the spool filled and on_full dropped records of
# healthy topics), /readyz names the missing one, and its records arrive
# once the topic exists.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/refusals.sh
refusal_start
kmock_cmd topic_error portsip.queues UNKNOWN_TOPIC_OR_PART
refusal_daemon 'topic_metadata_propagation_max_ms = "1000";'
refusal_seen portsip.queues unknown_topic
other_topics_flow portsip.queues
kmock_cmd topic_error portsip.queues NO_ERROR
all_delivered
