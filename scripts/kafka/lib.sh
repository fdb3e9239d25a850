# shellcheck shell=bash
# Shared by scripts/services and scripts/kafka-tool (sourced, not run): where the Kafka
# jars are cached, how a Kafka class is run from them, and where the running
# services keep their state. Needs REPO_DIR set by the sourcing script.

CACHE_DIR=${FLAMINGOCK_CACHE:-$HOME/.cache/flamingock-es}
SERVICES_DIR=${FLAMINGOCK_SERVICES_DIR:-$REPO_DIR/.services}
KAFKA_VERSION=${FLAMINGOCK_KAFKA_VERSION:-4.4.0}
KAFKA_POM="$REPO_DIR/scripts/kafka/pom.xml"
KAFKA_STATE="$SERVICES_DIR/kafka"
# The client properties of each SCRAM principal of a secure broker (scripts/services up --secure).
KAFKA_SECURE_DIR="$KAFKA_STATE/secure"

# The jars are keyed by version and by the pom that resolved them: a checkout whose
# pom fetches more (kafka-tools) gets a directory of its own, and never replaces the
# jars under a broker that another checkout runs from the same cache.
kafka_home() {
    local digest
    digest=$(sha256sum "$KAFKA_POM" | cut -c1-10)
    echo "$CACHE_DIR/kafka-$KAFKA_VERSION-$digest"
}
KAFKA_HOME=$(kafka_home)

# kafka_java [JVM OPTIONS...] CLASS ARGS...: run a class from the cached jars with a
# quiet log4j configuration (warnings and errors on stderr), as Kafka's bin/*.sh do.
kafka_java() {
    java -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$REPO_DIR/scripts/kafka/tools-log4j2.properties" \
        -cp "$KAFKA_HOME/libs/*" "$@"
}

# The class behind each `kafka-NAME.sh` of the Kafka distribution that scripts/kafka-tool
# offers, and whether it talks to a broker through --bootstrap-server (those get the
# running broker's address and, for --as PRINCIPAL, its client properties).
#   NAME                 CLASS                                                     BROKER CONFIG-FLAG
KAFKA_TOOLS="
acls                 org.apache.kafka.tools.AclCommand                         yes --command-config
broker-api-versions  org.apache.kafka.tools.BrokerApiVersionsCommand           yes --command-config
configs              org.apache.kafka.tools.ConfigCommand                      yes --command-config
console-consumer     org.apache.kafka.tools.consumer.ConsoleConsumer           yes --command-config
console-producer     org.apache.kafka.tools.ConsoleProducer                    yes --command-config
consumer-groups      org.apache.kafka.tools.consumer.group.ConsumerGroupCommand yes --command-config
delete-records       org.apache.kafka.tools.DeleteRecordsCommand               yes --command-config
features             org.apache.kafka.tools.FeatureCommand                     yes --command-config
get-offsets          org.apache.kafka.tools.GetOffsetShell                     yes --command-config
groups               org.apache.kafka.tools.GroupsCommand                      yes --command-config
leader-election      org.apache.kafka.tools.LeaderElectionCommand              yes --admin.config
log-dirs             org.apache.kafka.tools.LogDirsCommand                     yes --command-config
metadata-quorum      org.apache.kafka.tools.MetadataQuorumCommand              yes --command-config
reassign-partitions  org.apache.kafka.tools.reassign.ReassignPartitionsCommand yes --command-config
topics               org.apache.kafka.tools.TopicCommand                       yes --command-config
transactions         org.apache.kafka.tools.TransactionsCommand                yes --command-config
dump-log             kafka.tools.DumpLogSegments                               no  -
storage              kafka.tools.StorageTool                                   no  -
"

# kafka_tool_field NAME N: field N (1 class, 2 broker, 3 config flag) of tool NAME.
kafka_tool_field() {
    awk -v name="$1" -v n="$2" '$1 == name { print $(n + 1); found = 1 } END { exit !found }' \
        <<<"$KAFKA_TOOLS"
}

kafka_tool_names() { awk 'NF { print $1 }' <<<"$KAFKA_TOOLS"; }
