"""Creating the platform's topics: part of the runtime kit, because the deployment's one-shot
``topics`` job (docker-compose.yml) runs it from the service image, and the local tools
(hotline_dev.infra, the tests, the benchmarks) use the same code.

    python -m hotline.topics      # create every missing topic of the settings, print them
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from hotline.settings import Settings, TopicSettings, get_settings


class TopicError(RuntimeError):
    """Topics could not be created or got no leader in time."""


def topic_names(settings: Settings | None = None, names: Iterable[str] | None = None) -> list[str]:
    """Full topic names. Without ``names``: every topic of ``settings.topics`` (prefix applied).

    An entry of ``names`` that is a field of TopicSettings (e.g. ``"city_tickets"``) gets the
    prefix via ``settings.topics.name(field)``; any other entry is taken as a literal topic name.
    """
    s = settings or get_settings()
    if names is None:
        return s.topics.all_names()
    fields = TopicSettings.model_fields
    return [s.topics.name(n) if n in fields and n != "prefix" else n for n in names]


def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    """Retention of a topic (issue #19): every topic is bounded; dead letters (raw input, personal data) shorter."""
    dead = {settings.topics.name("dead_letters"), settings.topics.name("dead_letter_replays")}
    hours = settings.kafka.dead_letter_retention_hours if topic in dead else settings.kafka.topic_retention_hours
    return {"retention.ms": str(hours * 3600 * 1000)}


async def aensure_topics(settings: Settings | None = None, names: list[str] | None = None) -> list[str]:
    """Create missing topics (``settings.kafka.partitions`` partitions, replication 1) and wait
    until every partition has a leader. Idempotent and safe to call concurrently
    (TOPIC_ALREADY_EXISTS is success); returns the names this call created."""
    from aiokafka.admin import NewTopic
    from aiokafka.errors import for_code

    from hotline import kafka

    s = settings or get_settings()
    wanted = list(dict.fromkeys(topic_names(s, names)))
    created: list[str] = []
    admin = kafka.admin(s, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            resp = await admin.create_topics([NewTopic(t, s.kafka.partitions, 1, topic_configs=topic_config(s, t))
                                              for t in missing], timeout_ms=15000)
            failures = []
            for topic, code, *rest in resp.topic_errors:
                if code == 0:
                    created.append(topic)
                elif code != 36:  # TOPIC_ALREADY_EXISTS: created concurrently by someone else
                    failures.append(f"{topic}: {for_code(code).__name__} {rest[0] if rest else ''}".strip())
            if failures:
                raise TopicError("creating topics failed: " + "; ".join(failures))
        # wait until every partition has a leader, so producers/consumers can use them at once
        deadline = time.monotonic() + 30
        while True:
            meta = await admin.describe_topics(wanted)
            pending = [
                t["topic"]
                for t in meta
                if t["error_code"] != 0 or not t["partitions"] or any(p["leader"] < 0 for p in t["partitions"])
            ]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise TopicError(f"topics without leaders after 30 s: {', '.join(pending)}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return created


def main() -> None:
    print("created topics:", asyncio.run(aensure_topics()))


if __name__ == "__main__":
    main()
