"""Every Grafana panel expression (all dashboards in deploy/grafana/dashboards) evaluates without
error against a real Prometheus (the Debian binary) scraping the running platform."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from hotline.settings import Settings
from hotline_dev.infra import render_prometheus_config
from tests.unit.test_deploy_files import dashboard_exprs

pytestmark = pytest.mark.e2e
PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
VALUES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$dimension": "category",
          "$stage": "received"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(PROMETHEUS is None, reason="the Debian package `prometheus` is not installed")
def test_every_panel_query_evaluates_against_a_scraping_prometheus(platform: dict, settings: Settings,
                                                                     tmp_path: Path) -> None:
    port = _free_port()
    conf = render_prometheus_config(settings).replace(f"127.0.0.1:{settings.ports.prometheus}", f"127.0.0.1:{port}")
    (tmp_path / "prometheus.yml").write_text(conf, encoding="utf-8")
    assert PROMETHEUS
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v1/query"
    try:
        deadline = time.monotonic() + 90
        while True:  # wait until every service has been scraped once
            try:
                r = httpx.get(base, params={"query": "count(up == 1)"}, timeout=5)
                result = r.json()["data"]["result"] if r.status_code == 200 else []
                if result and int(float(result[0]["value"][1])) >= 6:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not scrape the platform in time"
            time.sleep(1)
        exprs = dashboard_exprs()
        assert any("hotline_warnings_raised_total" in e for _, e in exprs)
        assert any("hotline_cases_overdue" in e for _, e in exprs)  # the SLA dashboard (hotline-sla.json)
        for where, expr in exprs:
            for var, value in VALUES.items():
                expr = expr.replace(var, value)
            r = httpx.get(base, params={"query": expr}, timeout=10)
            assert r.status_code == 200 and r.json()["status"] == "success", f"{where}: {expr}: {r.text}"
        for scraped in ("hotline_warnings_raised_total", "hotline_case_backlog", "hotline_cases_supervised",
                        "hotline_calendar_known_days_ahead"):  # supervision's series are there, not just valid
            r = httpx.get(base, params={"query": f"count({scraped})"}, timeout=10)
            assert r.json()["data"]["result"], f"supervision's {scraped} is not scraped"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
