"""`hotline dlq` end to end, as an operator uses it: a ticket is dead-lettered by a misconfigured
intake (a message-size limit too low for it), a fixed intake is deployed, the operator lists and
inspects the dead letter (personal data masked) and replays it: the ticket reaches an opened case
exactly once, and replaying again publishes nothing.

Intake, routing and supervision run as processes in a namespace of this module's own (its own
topics, so nothing else is on its dead-letter topic)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from cli.main import main as hotline_main
from hotline import kafka, mongo
from hotline import settings as settings_module
from hotline.settings import Settings
from hotline_dev import dlq, infra
from hotline_dev.launcher import (
    ServiceProcess,
    drop_namespace,
    isolated_env,
    settings_for,
    start_services,
    stop_services,
)
from hotline_dev.simulator import generate
from tests.conftest import PORT_OFFSET
from tests.support import city_json, eventually, publish_raw, read_topic

pytestmark = pytest.mark.e2e

PHONE = "13812345678"


@pytest.fixture(scope="module")
def ns(infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = {**infra_env, **isolated_env(f"test-dlq-{uuid.uuid4().hex[:8]}", PORT_OFFSET),
           "HOTLINE_MODEL_DIR": str(tmp_path_factory.mktemp("no-model"))}
    settings = settings_for(env)
    infra.ensure_topics(settings)
    yield env
    drop_namespace(settings)


@pytest.fixture
def hotline(ns: dict[str, str], monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., tuple[int, str]]]:
    """Runs the `hotline` command in this process with the namespace's settings: (exit code, stdout)."""
    for k, v in ns.items():
        monkeypatch.setenv(k, v)

    def run(*args: str) -> tuple[int, str]:
        settings_module.get_settings.cache_clear()
        capsys.readouterr()
        try:
            hotline_main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, capsys.readouterr().out

    yield run
    settings_module.get_settings.cache_clear()


def count(settings: Settings, service: str, collection: str, ticket_id: str) -> int:
    with mongo.sync_client(settings) as client:
        return client[f"{settings.mongo.database_prefix}_{service}"][collection].count_documents({"_id": ticket_id})


def test_a_fixed_dead_letter_replayed_reaches_one_case_once(
    ns: dict[str, str], hotline: Callable[..., tuple[int, str]], tmp_path: Path
) -> None:
    settings = settings_for(ns)
    ticket = next(generate(1, seed=4242))
    ticket.caller.name, ticket.caller.phone = "王小明", PHONE
    ticket_id, value = ticket.city_ticket_id, city_json(ticket)
    # the misconfiguration: a limit below this ticket's size (still above the events intake publishes)
    low = {**ns, "HOTLINE_KAFKA__MAX_MESSAGE_BYTES": str(len(value) * 3 // 4)}

    procs = {name: ServiceProcess(name, settings, ns, tmp_path) for name in ("routing", "supervision")}
    procs["intake"] = ServiceProcess("intake", settings_for(low), low, tmp_path)
    try:
        for p in procs.values():  # all three start at once
            p.start()
        for p in procs.values():
            p.wait_ready(90)
        asyncio.run(publish_raw(settings, settings.topics.name("city_tickets"), [(ticket_id.encode(), value)]))

        async def dead_letters() -> list[dlq.DeadLetter]:
            return [d for d in await dlq.read_dead_letters(settings) if d.key_text == ticket_id]

        (dead,) = asyncio.run(eventually(dead_letters, lambda found: len(found) == 1, timeout=60))
        assert (dead.reason, dead.service, dead.value) == ("oversize", "intake", value)

        # the operator looks: listed by reason, service and time; shown with personal data masked
        code, out = hotline("dlq", "list", "--json", "--reason", "oversize", "--since", "1h")
        rows = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and [(r["id"], r["key"], r["service"], r["replayed"]) for r in rows] == [
            (dead.id, ticket_id, "intake", False)]
        code, out = hotline("dlq", "show", dead.id)
        assert code == 0 and "oversize" in out and ticket_id in out
        assert PHONE not in out and "138****5678" in out and "王小明" not in out

        # the fix is deployed: intake with the normal limit
        procs.pop("intake").stop()
        procs |= start_services(["intake"], settings, ns, tmp_path)

        code, out = hotline("dlq", "replay", "--reason", "oversize", "--service", "intake", "--yes")
        assert code == 0 and json.loads(out)["replayed"] == [dead.id]

        asyncio.run(eventually(lambda: asyncio.to_thread(count, settings, "supervision", "cases", ticket_id),
                               lambda n: n == 1, timeout=60))

        code, out = hotline("dlq", "replay", dead.id, "--yes")  # again: nothing is published
        assert code == 0 and json.loads(out) == {"replayed": [], "would_replay": [], "already": [dead.id]}

        city = asyncio.run(read_topic(settings, settings.topics.name("city_tickets"), expect=None, timeout=3))
        replays = [m for m in city if (dlq.REPLAYED_FROM, f"{settings.topics.name('dead_letters')}:{dead.id}"
                                       .encode()) in list(m.headers)]
        assert len(city) == 2 and len(replays) == 1 and replays[0].value == value

        # intake has committed past the replayed record (the transaction's commit marker after it
        # takes an offset too, so "lag 0" is not the test)
        place = TopicPartition(replays[0].topic, replays[0].partition)

        async def intake_position() -> int:
            admin = kafka.admin(settings)
            await admin.start()
            try:
                committed = await admin.list_consumer_group_offsets(f"{settings.topics.prefix}hotline.intake.main")
                return committed[place].offset if place in committed else -1
            finally:
                await admin.close()

        asyncio.run(eventually(intake_position, lambda offset: offset > replays[0].offset, timeout=60))
        assert count(settings, "intake", "tickets", ticket_id) == 1
        assert count(settings, "supervision", "cases", ticket_id) == 1
        code, out = hotline("dlq", "list", "--json", "--key", ticket_id)
        assert [json.loads(line)["replayed"] for line in out.splitlines()] == [True]
    finally:
        stop_services(procs.values())
