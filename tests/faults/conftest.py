"""The fault suite's own infrastructure: a Kafka broker and a store on ports and in a run
directory of their own, so that killing them never touches the broker and store other suites
(and other checkouts) share. Both are stopped at the end of the module.

``make faults`` runs every scenario (HOTLINE_FAULTS=all); ``make test`` runs the short one, which
kills no broker: it uses the session's shared broker (quicker) and only the store is its own.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.settings import SERVICES, Settings
from hotline_dev import infra
from hotline_dev.infra import port_busy
from hotline_dev.launcher import (
    ServiceProcess,
    drop_namespace,
    isolated_env,
    settings_for,
    start_services,
    stop_services,
)
from tests.conftest import PORT_OFFSET

# inside this suite's port range, used by no service and by no other test's own servers
KAFKA_PORT, CONTROLLER_PORT, STORE_PORT = PORT_OFFSET + 8120, PORT_OFFSET + 8121, PORT_OFFSET + 8122


@pytest.fixture(scope="module")
def fault_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              platform_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``platform_env`` (tests/conftest.py; a module overrides it, e.g. with an accelerated clock)
    goes to the services and to the module's settings."""
    own_broker = os.environ.get("HOTLINE_FAULTS", "") == "all"
    run_dir = tmp_path_factory.mktemp("fault-infra")
    kafka_env = {"HOTLINE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_PORT}",
                 "HOTLINE_KAFKA__CONTROLLER_PORT": str(CONTROLLER_PORT)} if own_broker \
        else request.getfixturevalue("infra_env")  # the shared broker, left running
    components = ("kafka", "store") if own_broker else ("store",)
    env = {
        "HOTLINE_RUN_DIR": str(run_dir),
        **kafka_env,
        "HOTLINE_MONGO__PORT": str(STORE_PORT),
        "HOTLINE_MONGO__URL": f"mongodb://127.0.0.1:{STORE_PORT}/?directConnection=true",
        "HOTLINE_MONGO__SYNC_ON_COMMIT": "true",  # without it a SIGKILLed store can lose acknowledged commits
        "HOTLINE_MODEL_DIR": str(tmp_path_factory.mktemp("no-model")),
        **isolated_env(f"faults-{uuid.uuid4().hex[:8]}", PORT_OFFSET),
        **platform_env,
    }
    ports = ((KAFKA_PORT, CONTROLLER_PORT) if own_broker else ()) + (STORE_PORT,)
    deadline = time.monotonic() + 60  # the previous module's broker and store may still be exiting
    while (busy := [p for p in ports if port_busy("127.0.0.1", p)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    if busy:
        pytest.fail(f"port(s) {busy} in use before the fault suite")
    settings = settings_for(env)
    try:
        infra.start(components, settings, quiet=True)
        infra.ensure_topics(settings)
        yield env
    finally:
        infra.stop(components, settings, quiet=True)  # ours alone: own run directory and ports


@pytest.fixture(scope="module")
def fault_settings(fault_env: dict[str, str]) -> Settings:
    return settings_for(fault_env)


@pytest.fixture(scope="module")
def fault_platform(fault_env: dict[str, str], fault_settings: Settings,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    log_dir: Path = tmp_path_factory.mktemp("fault-logs")
    procs = start_services(SERVICES, fault_settings, fault_env, log_dir)
    try:
        yield procs
    finally:
        stop_services(procs.values())
        drop_namespace(fault_settings)
