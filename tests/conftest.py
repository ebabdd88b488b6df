"""Session fixtures: the real infrastructure, an isolated namespace, and the five services.

Infrastructure comes from the project's own scripts (hotline_dev.infra: Apache Kafka in KRaft
mode and the SecantusDB MongoDB-wire server as local processes). A running broker and store are
reused and left running; what the session starts itself it stops at the end, unless
HOTLINE_TEST_KEEP_INFRA=1.
Where a Docker engine exists, ``HOTLINE_TEST_INFRA=testcontainers`` uses testcontainers'
Kafka and MongoDB instead.

Each test session gets its own topic prefix and database prefix, and runs its services on
ports offset from the defaults, so it never disturbs a platform started with `hotline run`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hotline.settings import SERVICES, Settings

# Tests run in development mode (HOTLINE_ENV, issue #19): the published dev secret signs their tokens, in this
# process (Settings() of a test) as in the services they start (hotline_dev.launcher.isolated_env sets it too).
os.environ.setdefault("HOTLINE_ENV", "development")

# 28100..28125: hotline_dev.launcher.isolated_env packs a namespace's ports from 8100 + offset; the
# tests' own brokers take 8120..8125. Below the ephemeral port range (32768+), so no client socket takes
# them. Two suites on one machine (e.g. two checkouts) set HOTLINE_TEST_PORT_OFFSET apart by at least 100.
PORT_OFFSET = int(os.environ.get("HOTLINE_TEST_PORT_OFFSET", "20000"))


def _testcontainers() -> Iterator[dict[str, str]]:
    """Kafka (Confluent's image of Apache Kafka 4, KRaft) and MongoDB as a one-node replica set
    (the platform uses multi-document transactions), in containers. Needs a Docker engine."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    mongo = DockerContainer("mongo:8.0").with_command("--replSet rs0 --bind_ip_all").with_exposed_ports(27017)
    with KafkaContainer("confluentinc/cp-kafka:8.0.0").with_kraft() as kafka, mongo:
        wait_for_logs(mongo, "Waiting for connections", timeout=60)
        mongo.exec(["mongosh", "--quiet", "--eval",
                    "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]})"])
        host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
        yield {
            "HOTLINE_KAFKA__BOOTSTRAP_SERVERS": kafka.get_bootstrap_server(),
            "HOTLINE_MONGO__URL": f"mongodb://{host}:{port}/?directConnection=true",
        }


@pytest.fixture(scope="session")
def infra_env() -> Iterator[dict[str, str]]:
    """Environment naming a running Kafka broker and store (started if needed)."""
    if os.environ.get("HOTLINE_TEST_INFRA") == "testcontainers":
        import docker

        try:
            docker.from_env().ping()
        except docker.errors.DockerException as exc:
            pytest.exit(f"HOTLINE_TEST_INFRA=testcontainers needs a Docker engine, and none answers: {exc}", 2)
        yield from _testcontainers()
        return
    from hotline_dev import infra

    # Stops at the end the broker and store it started (unless HOTLINE_TEST_KEEP_INFRA=1); anything
    # running before - the developer's own, another checkout's or another suite's - is reused and left alone.
    with infra.session(("kafka", "store"), keep=os.environ.get("HOTLINE_TEST_KEEP_INFRA", "") not in ("", "0")):
        yield {}


@pytest.fixture(scope="session")
def test_env(infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """HOTLINE_* variables of this test session: infrastructure, namespace and ports."""
    from hotline_dev.launcher import isolated_env

    return {
        **infra_env,
        **isolated_env(f"test-{uuid.uuid4().hex[:8]}", PORT_OFFSET),
        "HOTLINE_MODEL_DIR": str(tmp_path_factory.mktemp("no-model")),
    }


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> Settings:
    from hotline_dev.launcher import settings_for

    return settings_for(test_env)


@pytest.fixture
async def scratch_db(settings: Settings) -> AsyncIterator[object]:
    """A database of the test's own on the real store, dropped after it."""
    from hotline import mongo

    client = mongo.client(settings)
    db = client[f"{settings.mongo.database_prefix}_scratch_{uuid.uuid4().hex[:8]}"]
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()


@pytest.fixture(scope="session")
def topics(settings: Settings) -> Iterator[list[str]]:
    from hotline_dev import infra
    from hotline_dev.launcher import drop_namespace

    infra.ensure_topics(settings)
    yield settings.topics.all_names()
    drop_namespace(settings)  # leave no test topics or databases behind


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="module")
def platform_env() -> dict[str, str]:
    """Extra HOTLINE_* variables for a module's platform: a module overrides this fixture to run
    the services otherwise (e.g. routing with a trained classifier)."""
    return {}


@pytest.fixture(scope="module")
def platform(settings: Settings, test_env: dict[str, str], topics: list[str], log_dir: Path,
             platform_env: dict[str, str]) -> Iterator[dict]:
    """The five services running as processes against the session's namespace."""
    from hotline_dev.launcher import start_services, stop_services

    procs = start_services(SERVICES, settings, {**test_env, **platform_env}, log_dir)
    yield procs
    stop_services(procs.values())
