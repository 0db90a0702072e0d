"""The bus's topics. Kafka key on every topic: the child's pseudonymous id."""

from __future__ import annotations

TOPIC_PLACEMENT = "obruten.placement"
TOPIC_SCHOOL = "obruten.school"
TOPIC_HEALTH = "obruten.health"
TOPIC_ALERTS = "obruten.alerts"
TOPIC_DEADLETTER = "obruten.deadletter"
TOPICS = (TOPIC_PLACEMENT, TOPIC_SCHOOL, TOPIC_HEALTH, TOPIC_ALERTS, TOPIC_DEADLETTER)
# The one producer of each topic, by the CloudEvents `source` it writes. A consumer accepts an
# event only from its topic's owner (shared/bus/inbox.py); the broker's ACLs let each service
# write only its own topic (docker-compose.yml, deploy/kafka-acls.sh).
TOPIC_OWNERS = {
    TOPIC_PLACEMENT: "/obruten/placement",
    TOPIC_SCHOOL: "/obruten/school",
    TOPIC_HEALTH: "/obruten/health",
    TOPIC_ALERTS: "/obruten/notify",
}
