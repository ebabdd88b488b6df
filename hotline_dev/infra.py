"""Local infrastructure without Docker: Kafka (KRaft), the MongoDB-wire store, Prometheus.

``hotline infra start|stop|status [component...]`` (or ``python -m hotline_dev.infra ...``) runs

* **kafka** - Apache Kafka ``settings.kafka.version`` as a single KRaft node (broker + controller)
  on the host/port of ``settings.kafka.bootstrap_servers``, controller on
  ``settings.kafka.controller_port``. Jars are resolved from Maven Central with ``mvn`` using
  ``infra/kafka/pom.xml`` into ``<cache_dir>/kafka-<version>/libs`` (once).
* **store** - SecantusDB (a MongoDB-wire server, GPL-2.0) from the separate tools venv ``.tools/``
  on 127.0.0.1:``settings.mongo.port``. It is run as a process and never imported.
* **prometheus** - the Debian ``prometheus`` binary scraping the five services' ``/metrics``
  on 127.0.0.1:``settings.ports.prometheus``.

Everything (configs, data, logs, pid files) lives under ``settings.run_dir``:
``kafka/server.properties``, ``prometheus/prometheus.yml``, ``data/{kafka,store,prometheus}``,
``logs/{kafka,store,prometheus}.log`` and ``pids/<component>.pid``.

``start`` is idempotent: a running component (pid file or a process whose command line names our
run directory) is probed and reused; so is a compatible server this run directory did not start
(a Kafka that answers metadata, a MongoDB-wire server that answers ping: e.g. another checkout's
``hotline run``), which is then never stopped from here. A port held by anything else is an
error that names the port, the component and the setting to change. Processes are started in
their own session so they outlive the caller; ``stop`` sends SIGTERM to the process group, then
SIGKILL. ``session()`` is the bounded form the tests and ``hotline run`` use: it stops at the end
what it started, and nothing that was running before (see its doc).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import importlib.metadata
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil
from rich.console import Console
from rich.table import Table

from hotline.settings import REPO_ROOT, SERVICES, Settings, get_settings
from hotline.topics import aensure_topics, topic_names

__all__ = [
    "COMPONENTS",
    "InfraError",
    "add_cli",
    "aensure_topics",
    "clients",
    "ensure_topics",
    "fetch_kafka",
    "fetch_store",
    "main",
    "print_status",
    "render_prometheus_config",
    "render_server_properties",
    "session",
    "start",
    "status",
    "stop",
    "tls_paths",
    "topic_names",
]

COMPONENTS: tuple[str, ...] = ("kafka", "store", "prometheus")
_ALIASES = {"mongo": "store", "mongodb": "store", "secantus": "store", "prom": "prometheus"}

INFRA_DIR = REPO_ROOT / "infra"
KAFKA_POM = INFRA_DIR / "kafka" / "pom.xml"
KAFKA_LOG4J = INFRA_DIR / "kafka" / "log4j2.yaml"
# the alerting rules docker-compose's Prometheus uses too: one file for both
PROMETHEUS_RULES = INFRA_DIR.parent / "deploy" / "prometheus" / "alerts.yml"
TOOLS_DIR = REPO_ROOT / ".tools"  # separate venv for GPL / non-shipped tools
SECANTUS_PACKAGE = "SecantusDB"
SECANTUS_VERSION = "0.7.0b3"

_READY_TIMEOUT = {"kafka": 90.0, "store": 60.0, "prometheus": 30.0}
_STOP_TIMEOUT = {"kafka": 30.0, "store": 15.0, "prometheus": 15.0}

T = TypeVar("T")
Say = Callable[[str], None]


class InfraError(RuntimeError):
    """A component could not be prepared, started or stopped; the message says why."""


# --------------------------------------------------------------------------------------------
# small helpers


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else get_settings()


def _run_dir(s: Settings) -> Path:
    return Path(s.run_dir).expanduser().resolve()


def _cache_dir(s: Settings) -> Path:
    return Path(s.cache_dir).expanduser().resolve()


def _console(quiet: bool = False) -> Console:
    return Console(stderr=True, highlight=False, quiet=quiet, soft_wrap=True)


def _sayer(console: Console, component: str) -> Say:
    def say(msg: str) -> None:
        console.print(f"[bold cyan]{component}[/]: {msg}")

    return say


def run_sync(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for lg, _ in saved:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def port_busy(host: str, port: int) -> bool:
    """Something listens on, or holds, host:port (used for the infrastructure and the services)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        if sock.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _port_owner(port: int) -> str:
    """'pid 123 (java)' of the process listening on port, if the OS lets us see it."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    name = psutil.Process(conn.pid).name()
                except psutil.Error:
                    name = "?"
                return f" (pid {conn.pid}, {name})"
    except (psutil.Error, OSError):
        pass
    return ""


def _tail(path: Path, lines: int = 25) -> str:
    try:
        data = path.read_bytes()[-16_384:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local URL
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _kafka_host_port(s: Settings) -> tuple[str, int]:
    first = s.kafka.bootstrap_servers.split(",")[0].strip()
    first = first.split("://", 1)[-1]
    host, _, port = first.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        return host, int(port)
    except ValueError as exc:
        raise InfraError(f"cannot parse settings.kafka.bootstrap_servers={s.kafka.bootstrap_servers!r}") from exc


# --------------------------------------------------------------------------------------------
# Kafka jars, store package, rendered configuration


def _kafka_home(s: Settings) -> Path:
    return _cache_dir(s) / f"kafka-{s.kafka.version}"


def _kafka_libs_complete(home: Path, version: str) -> bool:
    marker = home / "COMPLETE"
    if not marker.is_file():
        return False
    names = [n for n in marker.read_text().splitlines() if n.endswith(".jar")]
    libs = home / "libs"
    return bool(names) and f"kafka_2.13-{version}.jar" in names and all((libs / n).is_file() for n in names)


def fetch_kafka(settings: Settings | None = None, *, say: Say | None = None) -> Path:
    """Resolve the broker's jars from Maven Central (once); return the ``libs`` directory.

    Safe to call concurrently (file lock); a partial download (no ``COMPLETE`` marker) is redone.
    """
    s = _settings(settings)
    say = say or _sayer(_console(), "kafka")
    home = _kafka_home(s)
    libs = home / "libs"
    if _kafka_libs_complete(home, s.kafka.version):
        return libs
    with _file_lock(_cache_dir(s) / f".kafka-{s.kafka.version}.lock"):
        if _kafka_libs_complete(home, s.kafka.version):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("kafka: `mvn` not found; install Maven (apt-get install maven) and retry")
        say(f"downloading Apache Kafka {s.kafka.version} jars from Maven Central…")
        t0 = time.monotonic()
        shutil.rmtree(libs, ignore_errors=True)
        (home / "COMPLETE").unlink(missing_ok=True)
        libs.mkdir(parents=True, exist_ok=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}", f"-Dkafka.version={s.kafka.version}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip().splitlines()[-30:]
            raise InfraError("kafka: mvn dependency:copy-dependencies failed:\n" + "\n".join(out))
        jars = sorted(p.name for p in libs.glob("*.jar"))
        if f"kafka_2.13-{s.kafka.version}.jar" not in jars:
            raise InfraError(f"kafka: mvn finished but kafka_2.13-{s.kafka.version}.jar is not in {libs}")
        (home / "COMPLETE").write_text("\n".join(jars) + "\n")
        say(f"{len(jars)} jars in {libs} ({time.monotonic() - t0:.1f} s)")
    return libs


def _installed_store_version() -> str | None:
    for site in sorted(TOOLS_DIR.glob("lib/python*/site-packages")):
        for dist in importlib.metadata.distributions(path=[str(site)]):
            if (dist.metadata["Name"] or "").lower() == SECANTUS_PACKAGE.lower():
                return str(dist.version)
    return None


def _store_bin() -> Path:
    return TOOLS_DIR / "bin" / "secantusd-py"


def fetch_store(*, say: Say | None = None) -> Path:
    """Install SecantusDB==0.7.0b3 into the tools venv ``.tools`` (never the project venv)."""
    say = say or _sayer(_console(), "store")
    exe = _store_bin()
    if exe.is_file() and _installed_store_version() == SECANTUS_VERSION:
        return exe
    with _file_lock(Path(tempfile.gettempdir()) / "hotline-tools-install.lock"):
        if exe.is_file() and _installed_store_version() == SECANTUS_VERSION:
            return exe
        tpy = TOOLS_DIR / "bin" / "python"
        if not tpy.exists():
            say(f"creating the tools venv {TOOLS_DIR}…")
            base = shutil.which("python3") or sys.executable
            subprocess.run([base, "-m", "venv", str(TOOLS_DIR)], check=True)
        uv = TOOLS_DIR / "bin" / "uv"
        if not uv.exists():
            subprocess.run([str(tpy), "-m", "pip", "install", "-q", "uv"], check=True)
        say(f"installing {SECANTUS_PACKAGE}=={SECANTUS_VERSION} into {TOOLS_DIR}…")
        proc = subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(tpy), f"{SECANTUS_PACKAGE}=={SECANTUS_VERSION}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not exe.is_file():
            raise InfraError(f"store: installing {SECANTUS_PACKAGE} failed:\n{proc.stdout}{proc.stderr}")
    return exe


def render_server_properties(settings: Settings | None = None) -> str:
    """server.properties of the single-node KRaft broker, generated from settings."""
    s = _settings(settings)
    host, port = _kafka_host_port(s)
    cport = s.kafka.controller_port
    max_bytes = max(2 * s.kafka.max_message_bytes, 1_048_588)
    data = _run_dir(s) / "data" / "kafka"
    proto = s.kafka.security_protocol  # the clients' listener; the controller's stays local PLAINTEXT
    return "\n".join(
        [
            "# Generated by hotline_dev.infra from hotline.settings; rewritten on every start.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{cport}",
            f"listeners={proto}://{host}:{port},CONTROLLER://127.0.0.1:{cport}",
            f"advertised.listeners={proto}://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={proto}",
            f"listener.security.protocol.map={proto}:{proto},CONTROLLER:PLAINTEXT",
            *_security_properties(s),
            f"log.dirs={data}",
            f"num.partitions={s.kafka.partitions}",
            "default.replication.factor=1",
            "min.insync.replicas=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=10",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # after a crash (kill -9) the restarted broker waits for its old session to expire
            "broker.heartbeat.interval.ms=1000",
            "broker.session.timeout.ms=4000",
            # topics are created by hotline_dev.infra.ensure_topics() with settings.kafka.partitions
            "auto.create.topics.enable=false",
            "delete.topic.enable=true",
            # oversize inbound messages must reach our consumers so they can dead-letter them
            f"message.max.bytes={max_bytes}",
            f"replica.fetch.max.bytes={max_bytes}",
            "log.retention.hours=168",
            "log.segment.bytes=134217728",
            "",
        ]
    )


def _security_properties(s: Settings) -> list[str]:
    """Broker side of settings.kafka.security_protocol: SASL (the SCRAM user is created when the
    storage is formatted) and TLS with a development CA of the run directory (see tls_paths)."""
    k = s.kafka
    lines: list[str] = []
    if k.security_protocol.startswith("SASL"):
        user, password = k.sasl_username, k.sasl_password.get_secret_value()
        if not user or not password:
            raise InfraError("kafka: a SASL listener needs HOTLINE_KAFKA__SASL_USERNAME and _SASL_PASSWORD")
        if k.sasl_mechanism == "PLAIN":
            jaas = (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{user}" '
                    f'password="{password}" user_{user}="{password}";')
        else:
            jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" '
                    f'password="{password}";')
        lines += [
            f"sasl.enabled.mechanisms={k.sasl_mechanism}",
            f"sasl.mechanism.inter.broker.protocol={k.sasl_mechanism}",
            f"listener.name.{k.security_protocol.lower()}.{k.sasl_mechanism.lower()}.sasl.jaas.config={jaas}",
        ]
    if k.security_protocol.endswith("SSL"):
        ca, broker = tls_paths(s)
        lines += [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={broker}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={ca}",
        ]
    return lines


def tls_paths(settings: Settings | None = None) -> tuple[Path, Path]:
    """(CA certificate, broker key + certificate) of the local broker's TLS listener, PEM files in
    the run directory, made on first start. Clients trust it with HOTLINE_KAFKA__SSL_CAFILE=<the first>."""
    tls = _run_dir(_settings(settings)) / "kafka" / "tls"
    return tls / "ca.pem", tls / "broker.pem"


def _make_tls_files(s: Settings) -> None:
    """A development CA and a broker certificate for 127.0.0.1 / localhost (10 years), once."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_path, broker_path = tls_paths(s)
    if ca_path.is_file() and broker_path.is_file():
        return
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
             signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, broker_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("hotline development CA", ca_key, None, ca_key, ca=True)
    broker_cert = cert("127.0.0.1", broker_key, ca_cert.subject, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    key = broker_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    broker_path.write_bytes(key + broker_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    broker_path.chmod(0o600)
    ca_path.write_bytes(ca_cert.public_bytes(pem))


def render_prometheus_config(
    settings: Settings | None = None, *, rule_files: Sequence[str] | None = None, host: str = "127.0.0.1"
) -> str:
    """prometheus.yml scraping Prometheus itself and the five services' /metrics (job per service)."""
    s = _settings(settings)
    rules = list(rule_files) if rule_files is not None else [str(PROMETHEUS_RULES)]
    out = [
        "# Generated by hotline_dev.infra.render_prometheus_config() from hotline.settings.",
        "# `hotline infra start` writes <run_dir>/prometheus/prometheus.yml from the current settings.",
        "global:",
        "  scrape_interval: 5s",
        "  scrape_timeout: 4s",
        "  evaluation_interval: 5s",
        "",
        "rule_files:",
        *[f'  - "{r}"' for r in rules],
        "",
        "scrape_configs:",
        "  - job_name: prometheus",
        "    static_configs:",
        f'      - targets: ["127.0.0.1:{s.ports.prometheus}"]',
    ]
    for svc in SERVICES:
        out += [
            f"  - job_name: {svc}",
            "    metrics_path: /metrics",
            "    honor_labels: true  # keep the series' own service label (no exported_service)",
            "    static_configs:",
            f'      - targets: ["{host}:{s.ports.http(svc)}"]',
            "        labels:",
            f"          service: {svc}",
        ]
    return "\n".join(out) + "\n"


def _write_if_changed(path: Path, text: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text() == text:
        return False
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def _kafka_cluster_id() -> str:
    """Same format as ``kafka.tools.StorageTool random-uuid`` (URL-safe base64, no padding)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


# --------------------------------------------------------------------------------------------
# components


class _Component:
    name = ""
    what = ""  # how messages name it
    exe_marker = ""  # a substring of the command line identifying the program

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.run = _run_dir(s)
        self.pid_file = self.run / "pids" / f"{self.name}.pid"
        # present while the process was started by a session (see session()), which stops it
        self.session_marker = self.run / "pids" / f"{self.name}.session"
        self.log_file = self.run / "logs" / f"{self.name}.log"

    # what makes a process "ours": the program plus an argument naming a path in our run directory
    def marker(self) -> str:
        raise NotImplementedError

    def ports(self) -> list[tuple[str, int, str]]:  # (host, port, setting to change)
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self, say: Say) -> None:
        pass

    def probe(self) -> bool:
        raise NotImplementedError

    def version(self, proc: psutil.Process | None) -> str:
        raise NotImplementedError

    def on_reuse(self, say: Say) -> None:
        pass

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- process bookkeeping
    def _matches(self, cmdline: list[str]) -> bool:
        return self.marker() in cmdline and any(self.exe_marker in arg for arg in cmdline)

    def _alive(self, pid: int) -> psutil.Process | None:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
                return None
            return proc if self._matches(proc.cmdline()) else None
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def find(self) -> psutil.Process | None:
        """Our running process: from the pid file, else by command line (then the pid file is fixed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid:
            proc = self._alive(pid)
            if proc is not None:
                return proc
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                cmd = p.info["cmdline"] or []
                if cmd and self._matches(cmd) and p.status() != psutil.STATUS_ZOMBIE:
                    self._write_pid(p.pid)
                    return p
            except psutil.Error:
                continue
        return None

    def _write_pid(self, pid: int) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{pid}\n")

    def wait_ready(self, proc: psutil.Process, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.probe():
                return
            if not _running(proc):
                raise InfraError(
                    f"{self.name}: the process (pid {proc.pid}) exited while starting; "
                    f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            if time.monotonic() > deadline:
                raise InfraError(
                    f"{self.name}: not ready after {timeout:.0f} s; last lines of {self.log_file}:\n"
                    f"{_tail(self.log_file)}"
                )
            time.sleep(0.2)


class _Kafka(_Component):
    name = "kafka"
    what = "Kafka broker"
    exe_marker = "kafka.Kafka"

    @property
    def conf(self) -> Path:
        return self.run / "kafka" / "server.properties"

    @property
    def data(self) -> Path:
        return self.run / "data" / "kafka"

    def marker(self) -> str:
        return str(self.conf)

    def ports(self) -> list[tuple[str, int, str]]:
        host, port = _kafka_host_port(self.s)
        return [
            (host, port, "HOTLINE_KAFKA__BOOTSTRAP_SERVERS"),
            ("127.0.0.1", self.s.kafka.controller_port, "HOTLINE_KAFKA__CONTROLLER_PORT"),
        ]

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise InfraError("kafka: `java` not found; install a Java 17+ runtime (openjdk-17-jre-headless)")
        return java

    def prepare(self, say: Say) -> None:
        java = self._java()
        libs = fetch_kafka(self.s, say=say)
        k = self.s.kafka
        if k.security_protocol.endswith("SSL"):
            _make_tls_files(self.s)
        _write_if_changed(self.conf, render_server_properties(self.s))
        self.conf.chmod(0o600)  # may hold the SASL password
        scram = []  # the platform's SCRAM user lives in the cluster metadata, written at format time
        if k.security_protocol.startswith("SASL") and k.sasl_mechanism.startswith("SCRAM"):
            scram = ["--add-scram", f"{k.sasl_mechanism}=[name={k.sasl_username},"
                                    f"password={k.sasl_password.get_secret_value()}]"]
        if not (self.data / "meta.properties").is_file():
            say("formatting storage…")
            t0 = time.monotonic()
            self.data.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [
                    java,
                    "-cp",
                    f"{libs}/*",
                    f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
                    "kafka.tools.StorageTool",
                    "format",
                    "--ignore-formatted",
                    "-t",
                    _kafka_cluster_id(),
                    "-c",
                    str(self.conf),
                    *scram,
                ],  # fmt: skip
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise InfraError(f"kafka: formatting storage failed:\n{proc.stdout}{proc.stderr}")
            say(f"storage formatted ({time.monotonic() - t0:.1f} s)")

    def command(self) -> list[str]:
        libs = _kafka_home(self.s) / "libs"
        return [
            self._java(), "-Xmx512m", "-Xms256m", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
            "-cp", f"{libs}/*", "kafka.Kafka", str(self.conf),
        ]  # fmt: skip

    def probe(self) -> bool:
        host, port = _kafka_host_port(self.s)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) != 0:
                return False
        return run_sync(lambda: _kafka_metadata_ok(self.s))

    def version(self, proc: psutil.Process | None) -> str:
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                m = re.search(r"kafka-([^/\s]+)/libs", " ".join(proc.cmdline()))
                if m:
                    return m.group(1)
        return self.s.kafka.version


async def _kafka_metadata_ok(s: Settings) -> bool:
    from hotline import kafka

    with _quiet_loggers("aiokafka"):
        admin = kafka.admin(s, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 5)
            cluster = await asyncio.wait_for(admin.describe_cluster(), 5)
            return bool(cluster.get("brokers"))
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


async def _warm_group_coordinator(s: Settings, wait_s: float = 30.0) -> None:
    """Have the broker create __consumer_offsets now, so the first consumer group joins at once."""
    from hotline import kafka

    with _quiet_loggers("aiokafka"):
        admin = kafka.admin(s, request_timeout_ms=5000)
        try:
            await admin.start()
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    await admin.find_coordinator("hotline-infra-warmup")
                    return
                except Exception:  # noqa: BLE001 - GroupCoordinatorNotAvailable while it is created
                    if time.monotonic() > deadline:
                        return
                    await asyncio.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()


class _Store(_Component):
    name = "store"
    what = "MongoDB-wire store"
    exe_marker = "secantus.cli"

    @property
    def data(self) -> Path:
        return self.run / "data" / "store"

    def marker(self) -> str:
        return str(self.data)

    def ports(self) -> list[tuple[str, int, str]]:
        return [("127.0.0.1", self.s.mongo.port, "HOTLINE_MONGO__PORT (and HOTLINE_MONGO__URL)")]

    def prepare(self, say: Say) -> None:
        fetch_store(say=say)
        self.data.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        # The server's own entry point, run by the tools venv's Python with a GIL switch interval
        # of 0.5 ms instead of 5 ms: it serves each connection on a thread, and with five
        # services talking at once the default interval made every request wait behind others
        # (an insert took 1.4 ms alone and 10+ ms under light load; see bench/README.md).
        launcher = ("import sys; sys.setswitchinterval(0.0005); sys.argv[0] = 'secantusd-py'; "
                    "from secantus.cli import main; sys.exit(main())")
        return [
            str(TOOLS_DIR / "bin" / "python"), "-c", launcher, "--host", "127.0.0.1",
            "--port", str(self.s.mongo.port), "--storage-path", str(self.data),
            # no oplog: the platform reads no change streams, and keeping one cost a third of
            # the store's CPU (multi-document transactions still work)
            "--standalone",
            *(["--sync-on-commit"] if self.s.mongo.sync_on_commit else []),
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(var, None)
        return env

    def probe(self) -> bool:
        from hotline import mongo

        url = f"mongodb://127.0.0.1:{self.s.mongo.port}/?directConnection=true"
        client = mongo.sync_client(self.s, host=url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000,
                                   socketTimeoutMS=3000)
        try:
            client.admin.command("ping")
            return True
        except Exception:  # noqa: BLE001
            return False
        finally:
            client.close()

    def version(self, proc: psutil.Process | None) -> str:
        return _installed_store_version() or "not installed"


class _Prometheus(_Component):
    name = "prometheus"
    what = "Prometheus"
    exe_marker = "prometheus"

    @property
    def conf(self) -> Path:
        return self.run / "prometheus" / "prometheus.yml"

    @property
    def data(self) -> Path:
        return self.run / "data" / "prometheus"

    def marker(self) -> str:
        return f"--config.file={self.conf}"

    def ports(self) -> list[tuple[str, int, str]]:
        return [("127.0.0.1", self.s.ports.prometheus, "HOTLINE_PORTS__PROMETHEUS")]

    def _bin(self) -> str:
        exe = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
        if exe is None:
            raise InfraError("prometheus: binary not found; install the Debian package `prometheus`")
        return exe

    def prepare(self, say: Say) -> None:
        self._bin()
        _write_if_changed(self.conf, render_prometheus_config(self.s))
        self.data.mkdir(parents=True, exist_ok=True)

    def on_reuse(self, say: Say) -> None:
        if _write_if_changed(self.conf, render_prometheus_config(self.s)):
            req = urllib.request.Request(f"http://127.0.0.1:{self.s.ports.prometheus}/-/reload", method="POST")
            with contextlib.suppress(OSError), urllib.request.urlopen(req, timeout=5):  # noqa: S310
                say("configuration changed, reloaded")

    def command(self) -> list[str]:
        return [
            self._bin(),
            f"--config.file={self.conf}",
            f"--storage.tsdb.path={self.data}",
            "--storage.tsdb.retention.time=15d",
            f"--web.listen-address=127.0.0.1:{self.s.ports.prometheus}",
            "--web.enable-lifecycle",
        ]

    def probe(self) -> bool:
        return _http_ok(f"http://127.0.0.1:{self.s.ports.prometheus}/-/ready")

    def version(self, proc: psutil.Process | None) -> str:
        try:
            return _prometheus_version(self._bin())
        except InfraError:
            return "not installed"


_PROM_VERSIONS: dict[str, str] = {}


def _prometheus_version(exe: str) -> str:
    if exe not in _PROM_VERSIONS:
        try:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
            m = re.search(r"version\s+(\S+)", out)
            _PROM_VERSIONS[exe] = m.group(1) if m else "?"
        except (OSError, subprocess.SubprocessError):
            _PROM_VERSIONS[exe] = "?"
    return _PROM_VERSIONS[exe]


_CLASSES: dict[str, type[_Component]] = {"kafka": _Kafka, "store": _Store, "prometheus": _Prometheus}

# `sh` starts the program in the background in a new session and exits at once, so the program is
# re-parented to init: it outlives the caller, and no zombie is left if it dies while we run.
_SPAWN_SH = 'cd "$1" || exit 97; log=$2; shift 2; "$@" </dev/null >>"$log" 2>&1 & echo $!'


def _spawn_detached(cmd: list[str], cwd: Path, env: dict[str, str], log_file: Path) -> int:
    out = subprocess.run(
        ["/bin/sh", "-c", _SPAWN_SH, "sh", str(cwd), str(log_file), *cmd],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=30,
        check=False,
    )
    try:
        return int(out.stdout.strip())
    except ValueError as exc:
        raise InfraError(f"could not start {cmd[0]}: {out.stderr.strip() or out.stdout.strip()}") from exc


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _normalize(components: str | Iterable[str] | None) -> list[str]:
    if components is None:
        return list(COMPONENTS)
    if isinstance(components, str):
        components = [components]
    wanted = [_ALIASES.get(c.lower(), c.lower()) for c in components]
    unknown = [c for c in wanted if c not in COMPONENTS]
    if unknown:
        raise InfraError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    if not wanted:
        return list(COMPONENTS)
    return [c for c in COMPONENTS if c in wanted]


# --------------------------------------------------------------------------------------------
# start / stop / status


def _start_one(comp: _Component, say: Say, reuse_foreign: bool = True) -> str:
    """Make the component available; return how: ``started`` (spawned now), ``reused`` (our
    process from this run directory was running) or ``foreign`` (a compatible server that this
    run directory did not start answers on the port: used, never stopped)."""
    t0 = time.monotonic()
    timeout = _READY_TIMEOUT[comp.name]
    proc = comp.find()
    if proc is not None:
        comp.wait_ready(proc, timeout)
        comp.on_reuse(say)
        say(f"already running (pid {proc.pid}), reused")
        return "reused"
    comp.pid_file.unlink(missing_ok=True)
    for i, (host, port, setting) in enumerate(comp.ports()):
        if port_busy(host, port):
            if i == 0 and reuse_foreign and comp.probe():
                say(f"reusing the {comp.what} already answering on {host}:{port}{_port_owner(port)}: "
                    "not started here, so it is left running")
                return "foreign"
            raise InfraError(
                f"port {port} ({comp.name}) is in use by another process{_port_owner(port)}"
                f"{' that does not answer as ' + comp.what if i == 0 and reuse_foreign else ''}; "
                f"stop it or set {setting}"
            )
    comp.prepare(say)
    cmd = comp.command()
    comp.log_file.parent.mkdir(parents=True, exist_ok=True)
    say("starting…")
    with open(comp.log_file, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} hotline_dev.infra: {' '.join(cmd)}\n".encode())
    t1 = time.monotonic()
    pid = _spawn_detached(cmd, comp.run, comp.env(), comp.log_file)
    comp._write_pid(pid)
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        comp.pid_file.unlink(missing_ok=True)
        tail = _tail(comp.log_file)
        raise InfraError(f"{comp.name}: exited at once; last lines of {comp.log_file}:\n{tail}") from None
    try:
        comp.wait_ready(proc, timeout)
    except InfraError:
        _terminate(comp, proc if _running(proc) else None)
        comp.pid_file.unlink(missing_ok=True)
        raise
    now = time.monotonic()
    say(f"ready in {now - t0:.1f} s (process up in {now - t1:.1f} s, pid {pid}, log {comp.log_file})")
    return "started"


def _terminate(comp: _Component, proc: psutil.Process | None) -> bool:
    """SIGTERM the process (group), SIGKILL after the timeout. True if it had to be killed."""
    if proc is None:
        return False
    try:
        procs = [proc, *proc.children(recursive=True)]
        pgid = os.getpgid(proc.pid)
        # the group made by our new session (never the caller's own group)
        own_group = pgid == os.getsid(proc.pid) and pgid != os.getpgrp()
    except (psutil.Error, ProcessLookupError):
        return False

    def send(sig: int) -> None:
        if own_group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)

    send(signal.SIGTERM)
    alive = _wait_gone(procs, _STOP_TIMEOUT[comp.name])
    killed = False
    if alive:
        killed = True
        send(signal.SIGKILL)
        _wait_gone(alive, 5)
    return killed


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until the processes are gone; return those still alive after ``timeout``. (Polls every
    50 ms: psutil.wait_procs waits in steps of a second for processes that are not our children.)"""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _running(p)]
    return alive


def _stop_one(comp: _Component, say: Say) -> None:
    proc = comp.find()
    if proc is None:
        comp.pid_file.unlink(missing_ok=True)
        say("not running")
        return
    t0 = time.monotonic()
    pid = proc.pid
    say(f"stopping (pid {pid})…")
    killed = _terminate(comp, proc)
    comp.pid_file.unlink(missing_ok=True)
    comp.session_marker.unlink(missing_ok=True)
    how = "killed after SIGTERM timeout" if killed else "stopped"
    say(f"{how} in {time.monotonic() - t0:.1f} s")


def _parallel(names: list[str], fn: Callable[[str], None]) -> None:
    errors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        futures = {pool.submit(fn, n): n for n in names}
        for fut in concurrent.futures.as_completed(futures):
            exc = fut.exception()
            if isinstance(exc, InfraError):
                errors.append(str(exc))
            elif exc is not None:
                errors.append(f"{futures[fut]}: {type(exc).__name__}: {exc}")
    if errors:
        raise InfraError("\n".join(errors))


def _start_locked(
    s: Settings, names: list[str], console: Console, topics: bool, reuse_foreign: bool
) -> dict[str, str]:
    outcome: dict[str, str] = {}

    def one(name: str) -> None:
        say = _sayer(console, name)
        outcome[name] = _start_one(_CLASSES[name](s), say, reuse_foreign)
        if name == "kafka" and topics:
            created = ensure_topics(s)
            n = len(topic_names(s))
            say(f"topics ok ({n} topics, {len(created)} created)")
        if name == "kafka":
            run_sync(lambda: _warm_group_coordinator(s))

    _parallel(names, one)
    return outcome


def start(
    components: str | Iterable[str] = COMPONENTS,
    settings: Settings | None = None,
    *,
    quiet: bool = False,
    topics: bool = True,
    reuse_foreign: bool = True,
) -> dict[str, str]:
    """Start (or reuse) the components; return when every one is ready, with how each became
    available: ``started``, ``reused`` (ours, already running) or ``foreign`` (a compatible server
    this run directory did not start answers on the port; with ``reuse_foreign=False`` that is
    an error).

    What this starts stays up until ``stop`` (``hotline infra start`` means "keep it running"; a
    component a :func:`session` started is made permanent too). With ``topics`` (default) and
    kafka among the components, the topics of ``settings.topics`` are created if missing. Raises
    :class:`InfraError` (e.g. a port held by a process that is not a compatible server).
    """
    s = _settings(settings)
    names = _normalize(components)
    console = _console(quiet)
    run = _prepare_run_dir(s)
    with _file_lock(run / "pids" / ".lock"):
        outcome = _start_locked(s, names, console, topics, reuse_foreign)
        for name in names:
            _CLASSES[name](s).session_marker.unlink(missing_ok=True)
    return outcome


def _prepare_run_dir(s: Settings) -> Path:
    run = _run_dir(s)
    for sub in ("pids", "logs", "data", "leases"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    return run


def stop(
    components: str | Iterable[str] = COMPONENTS, settings: Settings | None = None, *, quiet: bool = False
) -> None:
    """Stop the components started by this module (SIGTERM, then SIGKILL); remove their pid files."""
    s = _settings(settings)
    names = _normalize(components)
    console = _console(quiet)
    run = _run_dir(s)
    with _file_lock(run / "pids" / ".lock"):
        _parallel(names, lambda name: _stop_one(_CLASSES[name](s), _sayer(console, name)))



def kill(component: str, settings: Settings | None = None) -> int:
    """SIGKILL the component this run directory started (the fault suite's crash); return its pid.
    Only the process found by this run directory's marker is touched, never a foreign server."""
    s = _settings(settings)
    comp = _CLASSES[component](s)
    proc = comp.find()
    if proc is None:
        raise InfraError(f"{component}: not running from {_run_dir(s)}")
    proc.kill()
    proc.wait(10)
    return int(proc.pid)

# --------------------------------------------------------------------------------------------
# sessions: bounded uses (a test session, `hotline run`) that stop what they started


def _live_leases(run: Path, own: Path | None = None) -> list[Path]:
    """Lease files of sessions whose process is still alive (stale ones are removed)."""
    live = []
    for lease in sorted((run / "leases").glob("*.lease")):
        if lease == own:
            continue
        try:
            pid, created = lease.read_text().split()
            proc = psutil.Process(int(pid))
            alive = abs(proc.create_time() - float(created)) < 1 and proc.status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, psutil.Error):
            alive = False
        if alive:
            live.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return live


def clients(port: int, exclude: Iterable[int] = ()) -> set[int]:
    """Pids of processes with an open TCP connection to ``port`` on this machine, except ``exclude``
    and this process (0 stands for a connection whose process the OS does not show us)."""
    skip = {os.getpid(), *exclude}
    found: set[int] = set()
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return found
    for c in conns:
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port and c.pid not in skip:
            found.add(c.pid or 0)
    return found


def _release(s: Settings, names: list[str], console: Console, own: Path) -> None:
    """At the end of a session: stop the components a session started, unless another live
    session holds a lease on this run directory or other processes still talk to them."""
    run = _run_dir(s)
    others = _live_leases(run, own)
    for name in names:
        comp = _CLASSES[name](s)
        say = _sayer(console, name)
        if not comp.session_marker.exists():
            continue  # started by `hotline infra start`, by a kept session, or not ours at all
        proc = comp.find()
        if proc is None:
            comp.session_marker.unlink(missing_ok=True)
            continue
        if others:
            say(f"left running: {len(others)} other session(s) still use it (the last one stops it)")
            continue
        with contextlib.suppress(psutil.Error):
            server = {proc.pid, *(c.pid for c in proc.children(recursive=True))}
            users = clients(comp.ports()[0][1], server)
            if users:
                shown = ", ".join(str(p) if p else "?" for p in sorted(users)[:5])
                say(f"left running: still in use by other processes (pid {shown})")
                continue
        _stop_one(comp, say)
        comp.session_marker.unlink(missing_ok=True)


@contextlib.contextmanager
def session(
    components: str | Iterable[str] = ("kafka", "store"),
    settings: Settings | None = None,
    *,
    keep: bool = False,
    quiet: bool = False,
    topics: bool = True,
    reuse_foreign: bool = True,
) -> Iterator[dict[str, str]]:
    """Infrastructure for a bounded use: start or reuse the components, yield how each became
    available (see :func:`start`), and at the end stop what a session started.

    Rules that make it safe on a machine where several checkouts, test suites and ``hotline run``
    share one broker and store:

    * anything already running before is left alone: a component started by
      ``hotline infra start`` (or a kept session), and a compatible server this run directory did
      not start at all (``foreign``), are never stopped;
    * a component a session started is stopped by the *last* session of the run directory to end
      (each holds a lease file while it runs), and only when no other process still has a
      connection to it;
    * ``keep=True`` (tests: ``HOTLINE_TEST_KEEP_INFRA=1``; ``hotline run --keep-infra``) leaves
      everything running and makes it permanent, as if ``hotline infra start`` had started it.
    """
    s = _settings(settings)
    names = _normalize(components)
    console = _console(quiet)
    run = _prepare_run_dir(s)
    own = run / "leases" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.lease"
    with _file_lock(run / "pids" / ".lock"):
        own.write_text(f"{os.getpid()} {psutil.Process().create_time()}\n")
        try:
            outcome = _start_locked(s, names, console, topics, reuse_foreign)
        except BaseException:
            own.unlink(missing_ok=True)
            raise
        for name, how in outcome.items():
            if how == "started":
                _CLASSES[name](s).session_marker.write_text(f"{os.getpid()}\n")
    try:
        yield outcome
    finally:
        with _file_lock(run / "pids" / ".lock"):
            own.unlink(missing_ok=True)
            if keep:
                for name in names:
                    comp = _CLASSES[name](s)
                    if comp.session_marker.exists():
                        comp.session_marker.unlink()
                        _sayer(console, name)("kept running (stop it with `hotline infra stop`)")
            else:
                _release(s, names, console, own)


def status(settings: Settings | None = None, components: str | Iterable[str] = COMPONENTS) -> list[dict[str, Any]]:
    """One dict per component: component, pid, port, state, version, log.

    state is ``running`` (process alive and probe ok), ``unready`` (alive, probe fails),
    ``stopped``, ``foreign`` (not started from this run directory, but a compatible server answers
    on the port: start and session reuse it) or ``port in use`` (something else holds a port).
    """
    s = _settings(settings)
    rows: list[dict[str, Any]] = []
    for name in _normalize(components):
        comp = _CLASSES[name](s)
        proc = comp.find()
        ports = comp.ports()
        if proc is not None:
            state = "running" if comp.probe() else "unready"
        elif any(port_busy(h, p) for h, p, _ in ports):
            state = "foreign" if comp.probe() else "port in use"  # foreign: compatible, reusable
        else:
            state = "stopped"
        rows.append(
            {
                "component": name,
                "pid": proc.pid if proc is not None else None,
                "port": ",".join(str(p) for _, p, _ in ports),
                "state": state,
                "version": comp.version(proc),
                "log": str(comp.log_file),
            }
        )
    return rows


def print_status(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    table = Table(title="hotline infra")
    for col in ("component", "pid", "port", "state", "version"):
        table.add_column(col)
    colors = {"running": "green", "unready": "yellow", "stopped": "dim", "port in use": "red", "foreign": "cyan"}
    for r in rows:
        st = r["state"]
        table.add_row(
            r["component"],
            str(r["pid"] or "-"),
            r["port"],
            f"[{colors.get(st, 'white')}]{st}[/]",
            r["version"],
        )
    console.print(table)


# --------------------------------------------------------------------------------------------
# topics


def ensure_topics(settings: Settings | None = None, names: list[str] | None = None) -> list[str]:
    """Create missing topics (``settings.kafka.partitions`` partitions, replication 1).

    Idempotent and safe to call concurrently (TOPIC_ALREADY_EXISTS is success); returns the
    names this call created. See :func:`topic_names` for how ``names`` is interpreted.
    """
    return run_sync(lambda: aensure_topics(settings, names))


# --------------------------------------------------------------------------------------------
# CLI


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``infra start|stop|status [component...]`` on an argparse subparsers object.

    The handler is stored as ``func`` (``args.func(args)`` returns the exit code).
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "infra",
        help="start/stop/status of the local Kafka, store (MongoDB-wire) and Prometheus",
        description=(
            "Local infrastructure without Docker; data, logs and pid files under settings.run_dir. "
            "start is idempotent (running components are reused)."
        ),
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument(
        "components",
        nargs="*",
        metavar="component",
        help=f"any of: {', '.join(COMPONENTS)} (default: all)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=_cli)
    return parser


def _cli(args: argparse.Namespace) -> int:
    console = _console()
    try:
        comps = _normalize(args.components)
        if args.action == "start":
            start(comps, quiet=args.quiet)
        elif args.action == "stop":
            stop(comps, quiet=args.quiet)
        if args.action in ("start", "status") and not (args.quiet and args.action == "start"):
            rows = status(components=comps)
            print_status(rows)
    except InfraError as exc:
        console.print(f"[bold red]error[/]: {exc}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hotline_dev.infra start|stop|status [component...]``."""
    parser = argparse.ArgumentParser(prog="python -m hotline_dev.infra")
    sub = parser.add_subparsers(dest="command", required=True)
    add_cli(sub)
    args = parser.parse_args(["infra", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
