#!/usr/bin/env bash
# Starts the one-node KRaft broker of docker-compose.yml with SASL_SSL (SCRAM-SHA-512) for
# clients. The broker's properties are its KAFKA_* environment (KAFKA_SOME_NAME -> some.name),
# as the apache/kafka image does; the log directory is formatted once, with the admin user's
# SCRAM credential (only a formatted cluster can hold it before any client can connect).
set -euo pipefail

PROPS=/tmp/server.properties
: > "$PROPS"
while IFS='=' read -r name value; do
  [[ $name == KAFKA_* ]] || continue
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "$key" "$value" >> "$PROPS"
done < <(env)

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" -c "$PROPS" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=${ADMIN_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh "$PROPS"
