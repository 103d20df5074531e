# tests/kafka/broker.sh — a real Apache Kafka broker for the integration
# tests (sourced after tests/integration/lib.sh; the 300-kafka-* tests).
#
# One KRaft node (broker and controller in one JVM) from the jars that
# `make kafka` copied into build/kafka/libs (tests/kafka/pom.xml pins the
# release), on loopback, on free ports, its data in $T/kafka:
#
#   KAFKA_ADMIN   PLAINTEXT: the tests' admin (User:ANONYMOUS, a super user)
#   KAFKA_SASL    SASL_SSL with SCRAM-SHA-512 (users made when the storage
#                 is formatted: kafka-storage format --add-scram) and PLAIN
#                 (the same users and passwords, in the listener's JAAS)
#   KAFKA_MTLS    SSL with ssl.client.auth=required: the client
#                 certificate's CN is the principal (User:wsi2kafka-test)
#
# Why PLAIN too: librdkafka before 2.6.1 (Debian 12 has 2.0.2) sends a
# SCRAM client-final-message with the client nonce twice; Kafka 4.x checks
# the nonce strictly (RFC 5802, CVE-2024-56128) and refuses it as
# "invalid credentials" (librdkafka PR #4895). The tests' kcat and the
# daemon built on such a librdkafka authenticate with PLAIN over TLS; the
# SCRAM test checks what that librdkafka does (kafka_scram_works).
#
# TLS uses PEM files from the tests' CA (tests/lib/mkcerts.sh; lib.sh's
# certs). StandardAuthorizer: nobody but the admin may do anything without
# an ACL. auto.create.topics.enable=false, as on most production clusters.
#
# kafka_start [USER=PASSWORD...]  format (SCRAM-SHA-512 users) and start
# kafka_stop / kafka_kill         SIGTERM (controlled) / SIGKILL
# kafka_restart                   start again from the same log and ports
# kafka_topics ARGS...            kafka-topics (TopicCommand) as the admin
# kafka_acls ARGS...              kafka-acls (AclCommand) as the admin
# kcat_sasl USER PASSWORD ARGS... kcat over SASL_SSL (PLAIN)
# kafka_all TOPIC FORMAT          every record of TOPIC (to its end), read
#                                 over SASL_SSL as the reader user
#
# The broker's pid is in PIDS (lib.sh's cleanup trap stops it on every exit
# path) and it runs under `setpriv --pdeathsig KILL`, so it dies with the
# test's shell even when that is killed by SIGKILL (the runner's timeout).
# If the jars are missing or the broker does not start, the test fails
# with the reason: these tests are never skipped.

. tests/lib/ports.sh

KAFKA_LIBS=${KAFKA_LIBS:-$(realpath -m build/kafka/libs)}
KAFKA_CP="$KAFKA_LIBS/*"
KAFKA_DIR=$T/kafka
KAFKA_PID=
READER=reader READER_PW=rEad-3r-pw
# A small, quickly started JVM: a single node of a test cluster needs
# little heap; C1 only (TieredStopAtLevel=1) starts several seconds
# sooner and is fast enough for these volumes; the class data sharing
# archive of the JDK is used when present.
KAFKA_JAVA_OPTS=${KAFKA_JAVA_OPTS:--Xms64m -Xmx256m -XX:+UseSerialGC
    -XX:TieredStopAtLevel=1 -Xss512k -XX:MaxMetaspaceSize=160m
    -Xshare:auto -XX:-UsePerfData -Djava.awt.headless=true}
# Start-up bound, in seconds (scaled by lib.sh's TIME_SCALE): a JVM on a
# loaded 2-core machine takes 5-20 s.
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}

kafka_java() {	# CLASS ARGS...: a tool from the same jars, quietly
	java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData \
	    -Dlog4j2.configurationFile="$(realpath tests/kafka/log4j2.properties)" \
	    -Dkafka.logs.dir="$KAFKA_DIR" -cp "$KAFKA_CP" "$@"
}

kafka_jars() {
	ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 ||
		fail "Apache Kafka is not in $KAFKA_LIBS: run 'make kafka' (Maven fetches it; see docs/testing.md)"
	command -v java >/dev/null || fail "java not found: apt-get install openjdk-17-jre-headless"
}

# kafka_config: server.properties for the ports in KAFKA_{ADMIN,SASL,MTLS,CTRL}.
kafka_config() {
	# Kafka's PEM key store: the private key (PKCS#8, unencrypted) and
	# the certificate chain in one file.
	cat "$CERTS/server.key" "$CERTS/server.pem" >"$KAFKA_DIR/server-keystore.pem"
	cat >"$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CTRL
controller.listener.names=CONTROLLER
listeners=ADMIN://127.0.0.1:$KAFKA_ADMIN,SASL_SSL://127.0.0.1:$KAFKA_SASL,MTLS://127.0.0.1:$KAFKA_MTLS,CONTROLLER://127.0.0.1:$KAFKA_CTRL
advertised.listeners=ADMIN://127.0.0.1:$KAFKA_ADMIN,SASL_SSL://127.0.0.1:$KAFKA_SASL,MTLS://127.0.0.1:$KAFKA_MTLS
listener.security.protocol.map=ADMIN:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=ADMIN
log.dirs=$KAFKA_DIR/data
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required $KAFKA_PLAIN_USERS;
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_DIR/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.pem
listener.name.mtls.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]*).*\$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
log.flush.interval.messages=9223372036854775807
EOF
}

# kafka_start [USER=PASSWORD...]: format the storage with those
# SCRAM-SHA-512 users (and the reader, for kafka_all) and start the node.
# Sets KAFKA_ADMIN, KAFKA_SASL, KAFKA_MTLS (ports), BOOTSTRAP_SASL and
# BOOTSTRAP_MTLS (host:port).
kafka_start() {
	local u scram=() try
	kafka_jars
	certs
	mkdir -p "$KAFKA_DIR"
	KAFKA_PLAIN_USERS=
	for u in "$READER=$READER_PW" "$@"; do
		scram+=(--add-scram "SCRAM-SHA-512=[name=${u%%=*},password=${u#*=}]")
		KAFKA_PLAIN_USERS+=" user_${u%%=*}=\"${u#*=}\""
	done
	# A port found free may be taken before the JVM binds it: try again
	# on other ports (the storage is formatted for the node, not them).
	for try in 1 2 3; do
		KAFKA_ADMIN=$(free_port) KAFKA_SASL=$(free_port)
		KAFKA_MTLS=$(free_port) KAFKA_CTRL=$(free_port)
		[ -n "$KAFKA_ADMIN" ] && [ -n "$KAFKA_SASL" ] && [ -n "$KAFKA_MTLS" ] &&
		    [ -n "$KAFKA_CTRL" ] || fail "kafka: no free port"
		[ "$(printf '%s\n' "$KAFKA_ADMIN" "$KAFKA_SASL" "$KAFKA_MTLS" \
		    "$KAFKA_CTRL" | sort -u | wc -l)" -eq 4 ] || continue
		kafka_config
		if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
			rm -rf "$KAFKA_DIR/data"
			kafka_java kafka.tools.StorageTool format \
			    --config "$KAFKA_DIR/server.properties" \
			    --cluster-id "$(head -c 16 /dev/urandom | base64 | tr '+/' 'Ab' | cut -c1-22)" \
			    "${scram[@]}" >"$KAFKA_DIR/format.log" 2>&1 ||
				fail "kafka: kafka-storage format failed: $(tail -n 5 "$KAFKA_DIR/format.log")"
		fi
		kafka_launch && break
		grep -q 'Address already in use' "$T/kafka.log" "$KAFKA_DIR/server.log" 2>/dev/null ||
			kafka_start_failed
		echo "note - kafka: a port was taken, trying others"
	done
	[ -n "$KAFKA_PID" ] || kafka_start_failed
	BOOTSTRAP_SASL=127.0.0.1:$KAFKA_SASL
	BOOTSTRAP_MTLS=127.0.0.1:$KAFKA_MTLS
	ok "kafka $(kafka_version) started (KRaft, 1 node): admin :$KAFKA_ADMIN, SASL_SSL :$KAFKA_SASL, mTLS :$KAFKA_MTLS"
}

kafka_version() {
	local j
	j=$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar 2>/dev/null | head -n 1)
	j=${j##*/kafka_2.13-}
	echo "${j%.jar}"
}

kafka_start_failed() {
	echo "--- $KAFKA_DIR/server.log (tail)" >&2
	tail -n 40 "$KAFKA_DIR/server.log" >&2 2>/dev/null
	fail "kafka: the broker did not start within $((KAFKA_START_TIMEOUT * TIME_SCALE)) s (log above)"
}

# kafka_launch: start the JVM and wait until it answers metadata on the
# admin listener with itself as the controller's broker. 0 when up; else
# the JVM is stopped, KAFKA_PID empty, 1.
kafka_launch() {
	local end
	: >>"$T/kafka.log"
	# shellcheck disable=SC2086
	setpriv --pdeathsig KILL java $KAFKA_JAVA_OPTS \
	    -Dlog4j2.configurationFile="$(realpath tests/kafka/log4j2.properties)" \
	    -Dkafka.logs.dir="$KAFKA_DIR" -cp "$KAFKA_CP" kafka.Kafka \
	    "$KAFKA_DIR/server.properties" >>"$T/kafka.log" 2>&1 &
	KAFKA_PID=$!
	PIDS+=("$KAFKA_PID")
	end=$((SECONDS + KAFKA_START_TIMEOUT * TIME_SCALE))
	while [ $SECONDS -lt $end ]; do
		if ! kill -0 "$KAFKA_PID" 2>/dev/null; then
			wait "$KAFKA_PID" 2>/dev/null
			KAFKA_PID=
			return 1
		fi
		# Up: the admin listener serves metadata naming broker 1.
		timeout 5 kcat -L -b "127.0.0.1:$KAFKA_ADMIN" -m 3 2>/dev/null |
		    grep -q 'broker 1 at 127.0.0.1' && return 0
		sleep 0.3
	done
	kill -KILL "$KAFKA_PID" 2>/dev/null
	wait "$KAFKA_PID" 2>/dev/null
	KAFKA_PID=
	return 1
}

# kafka_kill: SIGKILL, no controlled shutdown (its log may end torn).
kafka_kill() {
	kill -KILL "$KAFKA_PID" 2>/dev/null
	wait "$KAFKA_PID" 2>/dev/null
	KAFKA_PID=
}

# kafka_stop: SIGTERM (controlled shutdown), bounded; SIGKILL after it.
kafka_stop() {
	kill -TERM "$KAFKA_PID" 2>/dev/null
	timeout $((30 * TIME_SCALE)) tail --pid="$KAFKA_PID" -f /dev/null 2>/dev/null ||
		kill -KILL "$KAFKA_PID" 2>/dev/null
	wait "$KAFKA_PID" 2>/dev/null
	KAFKA_PID=
}

# kafka_restart: the same node, log and ports (clients reconnect to them).
kafka_restart() {
	[ -z "$KAFKA_PID" ] || kafka_stop
	kafka_launch || kafka_start_failed
}

kafka_admin_tool() {	# CLASS ARGS...: an admin tool over the admin listener
	local cls=$1
	shift
	kafka_java "$cls" --bootstrap-server "127.0.0.1:$KAFKA_ADMIN" "$@" \
	    2>"$KAFKA_DIR/tool.err" || {
		cat "$KAFKA_DIR/tool.err" >&2
		return 1
	}
}
kafka_topics() { kafka_admin_tool org.apache.kafka.tools.TopicCommand "$@"; }
kafka_acls() { kafka_admin_tool org.apache.kafka.tools.AclCommand "$@"; }

# kafka_create_topics PARTITIONS TOPIC...: topics, made with kafka-topics.
kafka_create_topics() {
	local n=$1 t
	shift
	for t in "$@"; do
		kafka_topics --create --topic "$t" --partitions "$n" \
		    --replication-factor 1 >/dev/null ||
			fail "kafka-topics --create $t failed"
	done
}

# kafka_grant PRINCIPAL OPERATION... -- TOPIC...: allow those operations
# on those topics (literal names).
kafka_grant() {
	local p=$1 ops=() t args=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do ops+=(--operation "$1"); shift; done
	shift
	for t in "$@"; do args+=(--topic "$t"); done
	kafka_acls --add --allow-principal "$p" "${ops[@]}" "${args[@]}" >/dev/null ||
		fail "kafka-acls --add $p ${ops[*]} $*"
}

# kafka_reader TOPIC...: the reader user may read those topics (kcat
# consumes without a group: only READ and DESCRIBE on the topic).
kafka_reader() { kafka_grant "User:$READER" Read Describe -- "$@"; }

kcat_sasl() {	# USER PASSWORD KCAT-ARGS...
	local u=$1 pw=$2
	shift 2
	timeout $((60 * TIME_SCALE)) kcat -b "$BOOTSTRAP_SASL" -X security.protocol=SASL_SSL \
	    -X sasl.mechanisms=PLAIN -X sasl.username="$u" \
	    -X sasl.password="$pw" -X ssl.ca.location="$CERTS/ca.pem" "$@"
}

# kafka_all TOPIC FORMAT: every record of TOPIC from the beginning to its
# end now (kcat -e), as the reader over SASL_SSL. Fails the test on error.
kafka_all() {
	kcat_sasl "$READER" "$READER_PW" -C -q \
	    -t "$1" -o beginning -e -f "$2" 2>"$T/kcat.err" ||
		fail "kcat -C $1: $(tail -n 3 "$T/kcat.err")"
}

# kafka_count TOPIC: records in TOPIC now, by consuming them.
kafka_count() { kafka_all "$1" 'x\n' | wc -l; }

# kafka_conf USER PASSWORD_FILE [MECHANISM [EXTRA_PROPERTIES]]: point the
# daemon's test config (lib.sh's write_conf) at the SASL_SSL listener
# (PLAIN unless MECHANISM says SCRAM-SHA-512).
kafka_conf() {
	sed -i "s|brokers = \"[^\"]*\";|brokers = \"$BOOTSTRAP_SASL\"; sasl_password_file = \"$2\";|; s|properties = { linger_ms = \"5\"; };|properties = { linger_ms = \"5\"; security_protocol = \"SASL_SSL\"; sasl_mechanisms = \"${3:-PLAIN}\"; sasl_username = \"$1\"; ssl_ca_location = \"$CERTS/ca.pem\"; ${4:-} };|" "$T/w2k.conf"
	grep -q "sasl_username = \"$1\"" "$T/w2k.conf" || fail "kafka_conf: config not rewritten"
}

# kafka_conf_mtls: point the daemon's test config at the mTLS listener,
# with the tests' client certificate.
kafka_conf_mtls() {
	sed -i "s|brokers = \"[^\"]*\";|brokers = \"$BOOTSTRAP_MTLS\";|; s|properties = { linger_ms = \"5\"; };|properties = { linger_ms = \"5\"; security_protocol = \"SSL\"; ssl_ca_location = \"$CERTS/ca.pem\"; ssl_certificate_location = \"$CERTS/client.pem\"; ssl_key_location = \"$CERTS/client.key\"; };|" "$T/w2k.conf"
	grep -q "ssl_certificate_location" "$T/w2k.conf" || fail "kafka_conf_mtls: config not rewritten"
}
