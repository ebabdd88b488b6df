"""The platform against a broker that requires TLS and SASL/SCRAM, configured only through settings.

A second local broker (hotline_dev.infra, its own ports and run directory) listens with SASL_SSL:
SCRAM-SHA-512 credentials created when its storage is formatted, a certificate from a development
CA of its run directory. The kit's producer, consumer loop (decode, apply, publish, dead-letter,
commit) and admin client reach it with the settings alone, and a client with a wrong password,
without TLS or without trusting the CA is refused. The broker is stopped at the end (this session
started it).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from hotline import kafka
from hotline.envelope import Event, PermanentError, Record
from hotline.kafka import ConsumerLoop, ConsumerSpec
from hotline.settings import KafkaSettings, Settings, TopicSettings
from hotline.v1 import events_pb2
from hotline_dev import dlq, infra
from hotline_dev.infra import port_busy
from tests.conftest import PORT_OFFSET
from tests.support import eventually, group_lag, publish_raw, read_topic

pytestmark = pytest.mark.integration

PORT, CONTROLLER = PORT_OFFSET + 8124, PORT_OFFSET + 8125  # inside this suite's port range, used by no service


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    run_dir = tmp_path_factory.mktemp("secure-kafka")
    settings = Settings(
        run_dir=run_dir,
        kafka=KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{PORT}", controller_port=CONTROLLER, partitions=2,
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
            sasl_username="hotline", sasl_password=f"pw-{uuid.uuid4().hex}",
            ssl_cafile=str(infra.tls_paths(Settings(run_dir=run_dir))[0]),
        ),
        topics=TopicSettings(prefix="secure."),
    )
    if port_busy("127.0.0.1", PORT) or port_busy("127.0.0.1", CONTROLLER):
        pytest.fail(f"port {PORT} or {CONTROLLER} is in use before the test")
    keep = os.environ.get("HOTLINE_TEST_KEEP_INFRA", "") not in ("", "0")
    with infra.session("kafka", settings, quiet=True, keep=keep) as how:  # creates the topics over SASL_SSL
        assert how == {"kafka": "started"}
        yield settings
    if not keep:
        assert not port_busy("127.0.0.1", PORT), "the session stops the broker it started"


def variant(settings: Settings, **changes: str) -> Settings:
    k = settings.kafka.model_copy(update={n: SecretStr(v) if n == "sasl_password" else v for n, v in changes.items()})
    return settings.model_copy(update={"kafka": k})


class Echo:
    """Decodes text, refuses b"bad" as a permanent error, answers each record with one event."""

    def __init__(self, out: str) -> None:
        self.out = out

    def decode(self, record: Record) -> str:
        if record.value == b"bad":
            raise PermanentError("schema", "not a value")
        return record.value.decode()

    async def apply(self, items: list[tuple[Record, str]]) -> list[Event]:
        return [Event(self.out, r.key, events_pb2.Unit(unit_id=v), f"{r.key}/echo") for r, v in items]


async def test_the_kit_publishes_consumes_and_dead_letters_over_sasl_ssl(secure: Settings) -> None:
    source, out = secure.topics.name("city_tickets"), secure.topics.name("ticket_events")
    producer = kafka.producer(secure)
    await producer.start()
    loop = ConsumerLoop(ConsumerSpec([source], "secure-echo", Echo(out)), secure, producer, "secure-test")
    task = asyncio.create_task(loop.run())
    try:
        await publish_raw(secure, source, [(b"k1", b"one"), (b"k2", b"bad"), (b"k3", b"three")])
        events = await eventually(lambda: read_topic(secure, out, expect=2, timeout=2), lambda got: len(got) >= 2)
        assert sorted(events_pb2.Unit.FromString(m.value).unit_id for m in events) == ["one", "three"]
        (dead,) = await eventually(lambda: dlq.read_dead_letters(secure), lambda got: len(got) == 1)
        assert (dead.reason, dead.service, dead.key_text, dead.value) == ("schema", "secure-test", "k2", b"bad")
        await eventually(lambda: group_lag(secure, "secure-echo", [source]), lambda lag: lag == 0)  # committed
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()


@pytest.mark.parametrize("change", [
    {"sasl_password": "wrong"},
    {"security_protocol": "SASL_PLAINTEXT"},  # no TLS
    {"security_protocol": "PLAINTEXT"},  # no TLS, no credentials
    {"ssl_cafile": ""},  # does not trust the broker's CA
], ids=["wrong-password", "no-tls", "plaintext", "untrusted-ca"])
async def test_clients_without_the_right_settings_are_refused(secure: Settings, change: dict[str, str]) -> None:
    client = kafka.admin(variant(secure, **change), request_timeout_ms=3000)
    with pytest.raises(KafkaConnectionError):
        await client.start()
    await client.close()


def test_tls_files_are_the_run_directorys_own(secure: Settings) -> None:
    ca, broker = infra.tls_paths(secure)
    assert Path(secure.kafka.ssl_cafile) == ca and ca.is_file()
    assert broker.stat().st_mode & 0o077 == 0, "the broker's private key is readable by its owner only"
