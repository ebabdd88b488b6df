"""Starts the five services as processes: ``hotline run`` for people, the same code for tests.

``hotline run`` starts the local infrastructure (hotline_dev.infra) or reuses a compatible one
already running (another checkout's, a test suite's), creates the topics, starts the five
services, waits until each answers /healthz, prints where everything is, and stays in the
foreground until Ctrl-C, which stops the services and the infrastructure this run started.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hotline.settings import SERVICES, PortSettings, Settings, get_settings

console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


@dataclass
class ServiceProcess:
    """One service running as a child process (``python -m cli serve NAME``)."""

    name: str
    settings: Settings
    env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    python: str = ""  # the interpreter (default: this one); bench/compare.py runs another checkout's
    cwd: Path | None = None  # the checkout whose code runs (default: this process's directory)

    @property
    def health_url(self) -> str:
        return f"http://{self.settings.bind_host}:{self.settings.ports.http(self.name)}/healthz"

    @property
    def log_path(self) -> Path:
        return (self.log_dir or self.settings.run_dir / "logs") / f"{self.name}.log"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        root = self.cwd or Path.cwd()
        # a checkout from before the program moved to cli/ (e.g. f6f4739, bench/compare.py's ref) has hotline.cli
        program = "cli" if (root / "cli").is_dir() or not (root / "hotline" / "cli.py").exists() else "hotline.cli"
        self.proc = subprocess.Popen(
            [self.python or sys.executable, "-m", program, "serve", self.name],
            env={**os.environ, **self.env},
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
        )
        log.close()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}; see {self.log_path}")
            if self.healthy():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s ({self.health_url}); see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the crash the platform must survive without losing or doubling anything."""
        self.stop(signal.SIGKILL)


PACKED_BASE = 8100


def isolated_env(tag: str, port_offset: int) -> dict[str, str]:
    """HOTLINE_* variables for a namespace of its own: topics, databases and ports that do not
    touch a platform started with ``hotline run`` (used by the tests and the benchmarks)."""
    env = {
        "HOTLINE_ENV": "development",  # the published development secrets; production refuses to start with them
        "HOTLINE_TOPICS__PREFIX": f"{tag}.",
        "HOTLINE_MONGO__DATABASE_PREFIX": tag.replace("-", "_"),
        # reports of the last week and month are rendered on schedule (seconds of CPU): not in a
        # test or benchmark namespace, whose tests generate the reports they check themselves
        "HOTLINE_METRICS__SCHEDULED_REPORTS": "false",
    }
    # the namespace's ports packed side by side from 8100 + offset (12 ports), so that two suites on one
    # machine need offsets only 100 apart (not the 1,005 the default layout 8100..9105 spans)
    for i, name in enumerate(PortSettings.model_fields):
        env[f"HOTLINE_PORTS__{name.upper()}"] = str(PACKED_BASE + i + port_offset)
    return env


def drop_namespace(settings: Settings) -> None:
    """Delete the topics and databases of an isolated namespace (never the default one)."""
    if not settings.topics.prefix or settings.mongo.database_prefix == "hotline":
        raise ValueError("refusing to drop the default namespace")
    from hotline import kafka, mongo

    async def drop_topics() -> None:
        admin = kafka.admin(settings)
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(settings.topics.prefix)]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()

    from hotline_dev.infra import run_sync

    run_sync(drop_topics)
    with mongo.sync_client(settings) as client:
        for name in client.list_database_names():
            if name.startswith(settings.mongo.database_prefix + "_"):
                client.drop_database(name)


def settings_for(env: Mapping[str, str]) -> Settings:
    """Settings as a child process started with ``env`` will see them."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start_services(
    names: Iterable[str] = SERVICES, settings: Settings | None = None, env: Mapping[str, str] | None = None,
    log_dir: Path | None = None, timeout: float = 90,
) -> dict[str, ServiceProcess]:
    from hotline_dev.infra import port_busy

    settings = settings or get_settings()
    procs = {n: ServiceProcess(n, settings, env or {}, log_dir) for n in names}
    ports = [(n, kind, port) for n in procs for kind, port in
             (("HTTP", settings.ports.http(n)), ("gRPC", grpc_port(settings, n))) if port]
    busy = [f"{port} ({n} {kind})" for n, kind, port in ports if port_busy(settings.bind_host, port)]
    if busy:
        raise RuntimeError(f"port(s) in use: {', '.join(busy)}. Is another `hotline run` running? "
                           "Stop it, or set HOTLINE_PORTS__<SERVICE>_HTTP/_GRPC.")
    for p in procs.values():
        p.start()
    try:
        for p in procs.values():
            p.wait_ready(timeout)
    except Exception:
        stop_services(procs.values())
        raise
    return procs


def grpc_port(settings: Settings, name: str) -> int | None:
    """The service's gRPC port; None for the workbench (a web application only)."""
    return getattr(settings.ports, f"{name}_grpc", None)


WITH_WORKBENCH = (*SERVICES, "workbench")  # what `hotline run` starts


def stop_services(procs: Iterable[ServiceProcess]) -> None:
    for p in procs:
        p.stop()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end `hotline run` cleanly (a background job may start with
    SIGINT ignored, so its default is restored)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def run(args: argparse.Namespace) -> int:
    from hotline_dev import infra

    _stop_on_signals()
    settings = get_settings()
    started = time.monotonic()
    try:
        # A compatible broker, store or Prometheus that this checkout did not start (another
        # checkout's `hotline run`, a test suite's) is reused and left running; at exit only what
        # this run started is stopped (unless --keep-infra).
        with infra.session(infra.COMPONENTS, settings, keep=args.keep_infra,
                           reuse_foreign=not args.no_reuse) as how:
            reused = [name for name, h in how.items() if h != "started"]
            if reused:
                console.print(f"reusing {', '.join(reused)} (already running; left running at exit)")
            return _serve(settings, started)
    except infra.InfraError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1


def _serve(settings: Settings, started: float) -> int:
    try:
        with console.status("starting the five services and the workbench…"):
            procs = start_services(WITH_WORKBENCH, settings=settings)
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    table = Table(title=f"hotline platform ready in {time.monotonic() - started:.1f} s")
    for column in ("service", "HTTP (OpenAPI at /docs)", "gRPC", "log"):
        table.add_column(column)
    for p in procs.values():
        grpc_at = f"{settings.bind_host}:{port}" if (port := grpc_port(settings, p.name)) else "—"
        table.add_row(p.name, f"http://{settings.bind_host}:{settings.ports.http(p.name)}", grpc_at, str(p.log_path))
    console.print(table)
    console.print(f"Kafka {settings.kafka.bootstrap_servers} · store {settings.mongo.url} · "
                  f"Prometheus http://127.0.0.1:{settings.ports.prometheus} · Ctrl-C stops everything")
    try:
        while True:
            for p in procs.values():
                if p.proc and p.proc.poll() is not None:
                    console.print(f"[yellow]{p.name} exited ({p.proc.returncode}); restarting — see {p.log_path}")
                    p.start()
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        stop_services(procs.values())
    return 0


def add_cli(sub: Any) -> None:
    p = sub.add_parser("run", help="start the infrastructure and all five services; Ctrl-C stops everything")
    p.add_argument("--keep-infra", action="store_true", help="leave Kafka, the store and Prometheus running on exit")
    p.add_argument("--no-reuse", action="store_true",
                   help="refuse a broker, store or Prometheus on the ports that this checkout did not start "
                        "(default: reuse a compatible one and leave it running)")
    p.set_defaults(func=run)
