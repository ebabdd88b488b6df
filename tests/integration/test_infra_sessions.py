"""Infrastructure sessions (hotline_dev.infra.session), what `make test` and `hotline run` use:
stop at the end what a session started, and never what was running before it.

Runs real store processes (SecantusDB, the quickest component to start) in run directories and on
a port of their own, so the shared broker and store of the machine are never touched.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.settings import MongoSettings, Settings
from hotline_dev import infra
from hotline_dev.infra import InfraError, port_busy
from tests.conftest import PORT_OFFSET

pytestmark = pytest.mark.integration

PORT = PORT_OFFSET + 8123  # inside this suite's port range, used by no service


def store_settings(run_dir: Path) -> Settings:
    return Settings(run_dir=run_dir, mongo=MongoSettings(port=PORT, url=f"mongodb://127.0.0.1:{PORT}/"))


def state(s: Settings) -> str:
    (row,) = infra.status(s, "store")
    return str(row["state"])


@pytest.fixture
def run_dirs(tmp_path: Path) -> Iterator[tuple[Settings, Settings]]:
    a, b = store_settings(tmp_path / "a"), store_settings(tmp_path / "b")
    if port_busy("127.0.0.1", PORT):
        pytest.fail(f"port {PORT} is in use before the test")
    yield a, b
    infra.stop("store", a, quiet=True)  # whatever a failed test left behind


def test_the_last_session_stops_what_a_session_started_once_nobody_uses_it(run_dirs: tuple[Settings, ...]) -> None:
    a, _ = run_dirs
    with infra.session("store", a, quiet=True) as outer:
        assert outer == {"store": "started"}
        with infra.session("store", a, quiet=True) as inner:  # e.g. a second test suite of the checkout
            assert inner == {"store": "reused"}
        assert state(a) == "running", "the first session still holds a lease"
        client = subprocess.Popen([sys.executable, "-c", "import socket, time; "
                                   f"s = socket.create_connection(('127.0.0.1', {PORT})); time.sleep(120)"])
        try:
            assert _connected(client.pid)
        except BaseException:
            client.kill()
            raise
    try:
        assert state(a) == "running", "another process (not a session) still has a connection"
    finally:
        client.kill()
        client.wait()
    with infra.session("store", a, quiet=True) as last:
        assert last == {"store": "reused"}
    assert state(a) == "stopped", "the last session out stops what a session started"
    assert not port_busy("127.0.0.1", PORT)


def test_what_ran_before_and_foreign_servers_are_never_stopped(run_dirs: tuple[Settings, ...]) -> None:
    a, b = run_dirs
    with infra.session("store", a, quiet=True, keep=True) as kept:  # HOTLINE_TEST_KEEP_INFRA=1
        assert kept == {"store": "started"}
    assert state(a) == "running"
    with infra.session("store", a, quiet=True) as again:  # now it was running before: left alone
        assert again == {"store": "reused"}
    assert state(a) == "running"

    # another checkout (run directory b) finds a compatible store on its port: reused, left running
    assert state(b) == "foreign"
    with infra.session("store", b, quiet=True) as other:
        assert other == {"store": "foreign"}
    assert state(a) == "running"
    with pytest.raises(InfraError, match="in use"), infra.session("store", b, quiet=True, reuse_foreign=False):
        pass
    assert not list((b.run_dir / "leases").glob("*.lease")), "a failed start leaves no lease"

    infra.stop("store", a, quiet=True)
    assert state(a) == "stopped"


def _connected(pid: int, timeout: float = 10) -> bool:
    """Wait until process ``pid`` has its connection to the store open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid in infra.clients(PORT):
            return True
        time.sleep(0.05)
    return False
