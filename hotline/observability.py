"""Prometheus series every service exposes (``<app>_<what>_<unit>``, bounded labels only).

Service-specific series live next to the code that counts them; these are the shared ones
the consumer loop, the outbox and the servers update.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter(
    "hotline_consumer_records_total",
    "Kafka records a consumer finished with, by outcome (processed or dead_lettered).",
    ["service", "topic", "outcome"],
)
BATCH_SECONDS = Histogram(
    "hotline_consumer_batch_seconds",
    "Time to handle one consumed batch: decode, store, publish, commit.",
    ["service", "topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DEAD_LETTERS = Counter(
    "hotline_dead_letters_total",
    "Records sent to the dead-letter topic, by reason.",
    ["service", "reason"],
)
HANDLER_RETRIES = Counter(
    "hotline_consumer_retries_total",
    "Batch handling attempts that failed and were retried.",
    ["service", "topic"],
)
PUBLISHED = Counter(
    "hotline_events_published_total",
    "Events published, by topic.",
    ["service", "topic"],
)
SKIPPED = Counter(
    "hotline_consumer_skipped_total",
    "Records of an event type this consumer does not handle, skipped (not dead-lettered).",
    ["service", "topic", "event_type"],
)
OUTBOX_PENDING = Gauge(
    "hotline_outbox_pending",
    "Outbox entries written but not yet published.",
    ["service"],
)
COMMAND_GROUP = Histogram(
    "hotline_command_group_commands",
    "Commands applied together in one store transaction (group commit of concurrent requests, hotline/uow.py).",
    ["service"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
COMMAND_GROUP_SECONDS = Histogram(
    "hotline_command_group_seconds",
    "Time to apply one group of concurrent requests' commands (its transactions, retries included).",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRANSACTION_RUNS = Counter(
    "hotline_transaction_runs_total",
    "Runs of a unit of work's transaction: first (once per transaction) or again (retried whole after a "
    "transient error such as a write conflict, or run again with the stored answers read first).",
    ["service", "run"],
)
CONSUMER_LAG = Gauge(
    "hotline_consumer_lag_records",
    "Records behind the end of the topic for this consumer (summed over its partitions).",
    ["service", "topic"],
)

DEAD_LETTER_REASONS = (
    "malformed_json", "schema", "missing_field", "oversize", "wrong_event_type", "malformed_protobuf", "handler_error",
    "decode_error",
)


def at_zero(metric: Counter | Gauge | Histogram, *label_values: Iterable[str]) -> None:
    """Create every combination of known label values now, at zero, so rate() and increase()
    see the first burst too (a labelled series otherwise appears only at its first change)."""
    for combination in itertools.product(*label_values):
        metric.labels(*combination)


def bounded_event_type(name: str) -> str:
    """An event type as a label value: only names the protobuf schema knows, else "other"."""
    from google.protobuf import descriptor_pool

    try:
        descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        return "other"
    return name
