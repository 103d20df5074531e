#!/usr/bin/env bash
# A route's topic and the dead-letter topic unknown to the cluster
# (UNKNOWN_TOPIC_OR_PART in Metadata): librdkafka then fails their records
# at once (_UNKNOWN_TOPIC). They wait in the spool while every other topic
# flows (before, the first such record stopped the whole drain), /readyz
# names both, and all is delivered when the topics exist again.
. "$(dirname "$0")/lib.sh"
. tests/lib/metrics.sh
. tests/lib/refusals.sh
refusal_start
kmock_cmd topic_error portsip.calls UNKNOWN_TOPIC_OR_PART
kmock_cmd topic_error portsip.deadletter UNKNOWN_TOPIC_OR_PART
# (librdkafka waits this long before it believes a topic missing)
refusal_daemon 'topic_metadata_propagation_max_ms = "1000";'
refusal_seen portsip.calls unknown_topic
other_topics_flow portsip.calls portsip.deadletter
refusal_seen portsip.deadletter unknown_topic
kmock_cmd topic_error portsip.calls NO_ERROR
kmock_cmd topic_error portsip.deadletter NO_ERROR
all_delivered
