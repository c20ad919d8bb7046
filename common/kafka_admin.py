"""Small Kafka admin and producer helpers on confluent-kafka (librdkafka), used outside Spark."""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common.edge import is_verbose
from common.errors import ServiceError
from common.secrets import librdkafka_security

ADMIN_TIMEOUT_S = 15
PROGRESS_EVERY = 1000
# librdkafka's send queue holds up to 100,000 records or 1 GiB by default: against a slow broker a
# long send would fill it, and the sender's memory would grow towards that. Bounded, a full queue makes
# the sender wait for acknowledgements (``_hand_over``).
SEND_QUEUE = {"queue.buffering.max.messages": 20_000, "queue.buffering.max.kbytes": 8 * 1024}
# librdkafka's own log ("%4|…|rdkafka#producer…": reconnects, metadata refreshes) is for --verbose only;
# what matters (a record not acknowledged, a broker not reached) reaches the caller as an error.
LIBRDKAFKA_LOG = logging.getLogger("ledgerlane.librdkafka")
LIBRDKAFKA_LOG.propagate = False


def client_config(bootstrap: str, **extra) -> dict:
    """Configuration for any confluent-kafka client: librdkafka's log goes to stderr only with --verbose."""
    if is_verbose() and not LIBRDKAFKA_LOG.handlers:
        LIBRDKAFKA_LOG.addHandler(logging.StreamHandler())
    LIBRDKAFKA_LOG.setLevel(logging.DEBUG if is_verbose() else logging.CRITICAL + 1)
    return {"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG, **librdkafka_security(), **extra}


def admin(bootstrap: str) -> AdminClient:
    return AdminClient(client_config(bootstrap, **{"socket.timeout.ms": ADMIN_TIMEOUT_S * 1000}))


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create the topic if missing; an existing topic with fewer partitions is an error, not a silent mismatch."""
    client = admin(bootstrap)
    existing = client.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    if topic in existing:
        have = len(existing[topic].partitions)
        if have < partitions:
            raise ServiceError(f"topic {topic} has {have} partitions, expected at least {partitions}")
        return
    futures = client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise ServiceError(f"could not create topic {topic} on {bootstrap}: {exc}") from None


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[str | bytes | None, str | bytes | None]],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send (key, value) records with idempotent producer settings; returns how many were acknowledged.

    ``progress``, if given, is called every PROGRESS_EVERY records with the running count handed over.
    """
    producer = Producer(client_config(bootstrap, **{"enable.idempotence": True, "linger.ms": 5, **SEND_QUEUE}))
    failures: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    sent = 0
    for key, value in records:
        _hand_over(producer, topic, key, value, on_delivery)
        sent += 1
        if progress is not None and sent % PROGRESS_EVERY == 0:
            progress(sent)
    unacknowledged = producer.flush(ADMIN_TIMEOUT_S * 2)
    if progress is not None:
        progress(sent)
    if failures or unacknowledged:
        first = failures[0] if failures else f"flush timed out after {ADMIN_TIMEOUT_S * 2}s"
        raise ServiceError(
            f"{len(failures) + unacknowledged} of {sent} records to {topic} were not acknowledged: {first}"
        )
    return sent


def _hand_over(producer: Producer, topic: str, key, value, on_delivery) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            break
        except BufferError:
            # librdkafka's local queue is full (large batches): serve deliveries until there is room.
            producer.poll(0.1)
    producer.poll(0)


def topic_snapshot(bootstrap: str, topic: str) -> dict:
    """Cluster id, topic id and every partition's earliest and end offset, as one consistent-enough read."""
    from confluent_kafka import TopicCollection, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    client = admin(bootstrap)
    cluster_id = client.describe_cluster(request_timeout=ADMIN_TIMEOUT_S).result().cluster_id
    try:
        description = client.describe_topics(TopicCollection([topic]), request_timeout=ADMIN_TIMEOUT_S)[topic].result()
    except KafkaException as exc:
        raise ServiceError(f"topic {topic} cannot be described on {bootstrap}: {exc}") from None
    partitions = sorted(p.id for p in description.partitions)
    offsets = {}
    for label, spec in (("start_offset", OffsetSpec.earliest()), ("end_offset", OffsetSpec.latest())):
        futures = client.list_offsets({TopicPartition(topic, p): spec for p in partitions}, request_timeout=ADMIN_TIMEOUT_S)
        for tp, future in futures.items():
            offsets.setdefault(tp.partition, {})[label] = future.result().offset
    return {
        "cluster_id": cluster_id,
        "topic": topic,
        "topic_id": str(description.topic_id),
        "partitions": [{"partition": p, **offsets[p]} for p in partitions],
    }


def publish_group_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Record a consumer group's position (next offset to read) so standard lag tooling sees it."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())])
    client = admin(bootstrap)  # keep a reference: a collected client never completes its futures
    futures = client.alter_consumer_group_offsets([request], request_timeout=ADMIN_TIMEOUT_S)
    try:
        futures[group].result(timeout=ADMIN_TIMEOUT_S * 2)
    except (KafkaException, TimeoutError) as exc:
        raise ServiceError(f"could not publish offsets of consumer group {group}: {exc}") from None


def group_offsets(bootstrap: str, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    client = admin(bootstrap)
    future = client.list_consumer_group_offsets([request], request_timeout=ADMIN_TIMEOUT_S)[group]
    result = future.result(timeout=ADMIN_TIMEOUT_S * 2)
    return {tp.partition: tp.offset for tp in result.topic_partitions}
