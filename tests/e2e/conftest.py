"""Fixtures of the browser tests (test_workbench, test_workbench_day): the workbench as a process
beside the session's platform, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from hotline.settings import Settings
from hotline_dev.launcher import ServiceProcess


@pytest.fixture(scope="module")
def workbench(platform: dict, settings: Settings, test_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    proc = ServiceProcess("workbench", settings, test_env, log_dir)
    proc.start()
    try:
        proc.wait_ready(60)
        yield f"http://{settings.bind_host}:{settings.ports.workbench_http}"
    finally:
        proc.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: apt-get install -y chromium (scripts/bootstrap.sh)"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        await b.close()
