"""One settings object for every service, the infrastructure scripts and the tools.

Every value can be set from the environment with the ``HOTLINE_`` prefix and ``__`` for
nesting, e.g. ``HOTLINE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`` or
``HOTLINE_TOPICS__CITY_TICKETS=city.tickets.v1``. docker-compose.yml uses the same names.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("intake", "routing", "supervision", "deputy_liaison", "metrics")
REPO_ROOT = Path(__file__).resolve().parent.parent


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    controller_port: int = 9093  # KRaft controller listener of the local broker
    version: str = "4.4.0"  # the broker `hotline infra` runs (jars from Maven Central): newest served, works
    partitions: int = 4  # partitions of every topic the platform creates
    max_message_bytes: int = 262_144  # larger inbound messages are dead-lettered as oversize
    consumer_batch_max: int = 1000  # records handed to a handler in one batch (bench: 500 -> 1000 = +25%)
    consumer_batch_wait_ms: int = 20  # how long a consumer waits to fill a batch
    rollup_linger_ms: int = 500  # metrics gathers records this long per batch: fewer store transactions


class TopicSettings(BaseModel):
    """Topic names. ``prefix`` is prepended to every name (used to isolate test runs)."""

    prefix: str = ""
    city_tickets: str = "city.tickets.v1"  # 市12345 -> district: dispatched tickets (JSON)
    city_results: str = "city.results.v1"  # district -> 市12345: results reported back (回传)
    city_evaluations: str = "city.evaluations.v1"  # 市12345 -> district: callback evaluations (回访)
    ticket_events: str = "hotline.tickets.v1"  # intake: ticket received
    assignment_events: str = "hotline.assignments.v1"  # routing: assigned / re-dispatched
    case_events: str = "hotline.cases.v1"  # supervision: case opened, deadlines, escalations
    deputy_submissions: str = "hotline.deputy-submissions.v1"  # deputy_liaison -> intake
    dead_letters: str = "hotline.dead-letters.v1"  # bad input with the reason in headers

    def name(self, topic: str) -> str:
        return self.prefix + str(getattr(self, topic))

    def all_names(self) -> list[str]:
        return [self.name(f) for f in type(self).model_fields if f != "prefix"]


class MongoSettings(BaseModel):
    url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    database_prefix: str = "hotline"  # each service owns the database "<prefix>_<service>"
    port: int = 27017  # port of the local dev/test store started by `hotline infra`


class SlaSettings(BaseModel):
    """Where supervision's deadline data lives and how often its timers are scanned. The limits
    themselves (时限) are the versioned SLA policy file, not settings."""

    policy_file: Path = REPO_ROOT / "services" / "supervision" / "data" / "sla_policy.json"
    calendar_file: Path = REPO_ROOT / "services" / "supervision" / "data" / "calendar_overrides.json"
    scan_seconds: float = 5  # how often due timers (due-soon, overdue) are looked for
    scan_batch: int = 500  # timers fired per store transaction
    policy_refresh_seconds: float = 5  # how long a replica trusts its copy of the current policy
    calendar_warn_days: int = 60  # warn (loudly) when the working-day calendar is known fewer days ahead


class ClockSettings(BaseModel):
    """The platform clock. Unset: real time. ``start`` (and/or ``speed``): an accelerated
    simulated clock, simulated now = start + speed x (real now - real_start) (hotline/clock.py)."""

    start: datetime | None = None  # simulated time at real_start, e.g. 2026-12-07T09:00:00+08:00
    speed: float = 1.0  # simulated seconds per real second (10080: a week per minute)
    real_start: datetime | None = None  # real instant the simulation began (default: process start);
    # give every process (and a restarted one) the same value so they share one timeline


class PortSettings(BaseModel):
    intake_http: int = 8101
    intake_grpc: int = 9101
    routing_http: int = 8102
    routing_grpc: int = 9102
    supervision_http: int = 8103
    supervision_grpc: int = 9103
    deputy_liaison_http: int = 8104
    deputy_liaison_grpc: int = 9104
    metrics_http: int = 8105
    metrics_grpc: int = 9105
    prometheus: int = 9090

    def http(self, service: str) -> int:
        return int(getattr(self, f"{service}_http"))

    def grpc(self, service: str) -> int:
        return int(getattr(self, f"{service}_grpc"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", env_nested_delimiter="__", extra="ignore")

    bind_host: str = "127.0.0.1"  # address HTTP and gRPC servers listen on ("0.0.0.0" in containers)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    ports: PortSettings = Field(default_factory=PortSettings)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    clock: ClockSettings = Field(default_factory=ClockSettings)
    run_dir: Path = REPO_ROOT / ".run"  # data, logs and pid files of the local infrastructure
    cache_dir: Path = Path.home() / ".cache" / "hotline"  # Kafka jars, outside the repository
    log_level: str = "INFO"
    log_json: bool = False  # JSON log lines (containers) instead of console lines
    model_dir: Path = REPO_ROOT / "models" / "classifier"  # trained ticket classifier, if any
    timezone: str = "Asia/Shanghai"


@lru_cache
def get_settings() -> Settings:
    return Settings()
