#!/usr/bin/env bash
# Creates the topics, one SCRAM user per service and the ACLs that let each service write only
# its own topic (and dead letters), read only the topics it consumes, and use only its own
# consumer group. Run once by the `kafka-setup` service of docker-compose.yml, as the broker's
# admin user, against a broker with ALLOW_EVERYONE_IF_NO_ACL_FOUND=false.
# Passwords come from the environment (KAFKA_PASSWORD_<SERVICE>), never from this file.
set -euo pipefail

BOOTSTRAP="${BOOTSTRAP:-kafka:9092}"
ADMIN_CONFIG="${ADMIN_CONFIG:-/etc/kafka/admin.properties}"
BIN=/opt/kafka/bin
PARTITIONS="${PARTITIONS:-6}"

topic() {
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" \
    --create --if-not-exists --topic "$1" --partitions "$PARTITIONS" --replication-factor 1
}

user() {
  local name=$1 password_var="KAFKA_PASSWORD_${1^^}"
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --alter \
    --entity-type users --entity-name "$name" --add-config "SCRAM-SHA-512=[password=${!password_var}]"
}

# allow <user> <operation> <topic|group> <name>
allow() {
  local kind=--topic
  [ "$3" = group ] && kind=--group
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add \
    --allow-principal "User:$1" --operation "$2" "$kind" "$4"
}

for t in obruten.placement obruten.school obruten.health obruten.alerts obruten.deadletter; do topic "$t"; done
for s in placement school health notify; do user "$s"; done

# Each service writes its own topic only (shared/contracts/topics.py TOPIC_OWNERS).
allow placement Write topic obruten.placement
allow school Write topic obruten.school
allow health Write topic obruten.health
allow notify Write topic obruten.alerts
# Consumers park events they cannot apply.
allow school Write topic obruten.deadletter
allow health Write topic obruten.deadletter
allow notify Write topic obruten.deadletter
# What each consumes, with its own consumer group.
allow school Read topic obruten.placement
allow health Read topic obruten.placement
allow notify Read topic obruten.placement
allow notify Read topic obruten.school
allow notify Read topic obruten.health
allow school Read group school
allow health Read group health
allow notify Read group notify
# Every service lists the topics at start (shared/bus/kafka.py ensure_topics).
for s in placement school health notify; do
  for t in obruten.placement obruten.school obruten.health obruten.alerts obruten.deadletter; do
    allow "$s" Describe topic "$t"
  done
done
