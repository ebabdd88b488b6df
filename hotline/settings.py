"""One settings object for every service, the infrastructure scripts and the tools.

Every value can be set from the environment with the ``HOTLINE_`` prefix and ``__`` for
nesting, e.g. ``HOTLINE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`` or
``HOTLINE_TOPICS__CITY_TICKETS=city.tickets.v1``. docker-compose.yml uses the same names.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, NonNegativeInt, SecretStr, model_validator
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
    # consumers that keep a view beside a ticket's way to its case (intake's handling units, supervision's early
    # warnings, deputy liaison's facts and follow-ups) gather records this long per batch: at
    # tens of tickets/s, a transaction per ten records instead of per one or two, so the way's own transactions
    # wait less in the store (issue 21). 0: off.
    side_linger_ms: int = 250
    # a consumer commits the offsets of the batches it handled at most this often (and when idle or stopping);
    # a crash replays what was handled since, which the idempotent writes absorb (issue 21). 0: every batch.
    commit_interval_ms: int = 200
    # retention.ms of the topics the platform creates (issue #19: topics hold callers' and citizens' contact; the
    # services keep what they need in their stores). Dead letters keep the raw bad input: shorter.
    topic_retention_hours: int = 168
    dead_letter_retention_hours: int = 72
    # Security, applied by hotline.kafka.client_options to every producer, consumer and admin client.
    # Production: SASL_SSL with SCRAM (docker-compose.yml shows it). `hotline infra` runs the local
    # broker with the same protocol and creates the SCRAM user from sasl_username/sasl_password.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    ssl_cafile: str = ""  # PEM bundle of the CA that signed the broker's certificate (empty: system CAs)
    ssl_certfile: str = ""  # client certificate (PEM), for brokers that require mutual TLS
    ssl_keyfile: str = ""  # its private key (PEM)
    ssl_check_hostname: bool = True


class TopicSettings(BaseModel):
    """Topic names. ``prefix`` is prepended to every name (used to isolate test runs)."""

    prefix: str = ""
    city_tickets: str = "city.tickets.v1"  # 市12345 -> district: dispatched tickets (JSON)
    city_results: str = "city.results.v1"  # district -> 市12345: results reported back (回传)
    city_evaluations: str = "city.evaluations.v1"  # 市12345 -> district: callback evaluations (回访)
    ticket_events: str = "hotline.tickets.v1"  # intake: ticket received
    assignment_events: str = "hotline.assignments.v1"  # routing: assigned / re-dispatched
    case_events: str = "hotline.cases.v1"  # supervision: case opened, deadlines, escalations
    warning_events: str = "hotline.warnings.v1"  # supervision: early warnings (预警)
    deputy_submissions: str = "hotline.deputy-submissions.v1"  # deputy_liaison -> intake
    deputy_events: str = "hotline.deputy.v1"  # deputy_liaison: ratings, escalations (督办), monthly lists, meetings
    notifications: str = "hotline.notifications.v1"  # messages for people on SMS/WeChat (DeputyNotified)
    dead_letters: str = "hotline.dead-letters.v1"  # bad input with the reason in headers
    dead_letter_replays: str = "hotline.dead-letter-replays.v1"  # `hotline dlq replay`: one marker per replay

    def name(self, topic: str) -> str:
        return self.prefix + str(getattr(self, topic))

    def all_names(self) -> list[str]:
        return [self.name(f) for f in type(self).model_fields if f != "prefix"]


class MongoSettings(BaseModel):
    url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    database_prefix: str = "hotline"  # each service owns the database "<prefix>_<service>"
    port: int = 27017  # port of the local dev/test store started by `hotline infra`
    # The local store fsyncs its log at every commit (SecantusDB --sync-on-commit): slower, but a SIGKILL of the
    # store then loses no acknowledged transaction (the fault suite found that without it, it can).
    sync_on_commit: bool = False
    # group commit (hotline/uow.py ``run_one``): concurrent requests' commands share a transaction when
    # the store is busy; at most this many such transactions at once per service, of at most group_max
    command_groups_in_flight: int = 2
    command_group_max: int = 64  # 1: every request's command alone in its own transaction
    # Credentials and TLS (also possible inside the URL), applied by hotline.mongo.client_options.
    username: str = ""
    password: SecretStr = SecretStr("")
    auth_source: str = "admin"  # database that holds the user
    tls: bool = False
    tls_ca_file: str = ""  # PEM bundle of the CA that signed the server's certificate (empty: system CAs)
    tls_certificate_key_file: str = ""  # client certificate and key in one PEM, for mutual TLS


class SlaSettings(BaseModel):
    """Where supervision's deadline data lives and how often its timers are scanned. The limits
    themselves (时限) are the versioned SLA policy file, not settings."""

    # the district's SLA policy and working-day calendar: kit data (hotline/data/), shared by supervision (every
    # clock), routing (the dispatch limit), metrics (case lanes) and the workbench (the policy page)
    policy_file: Path = REPO_ROOT / "hotline" / "data" / "sla_policy.json"
    calendar_file: Path = REPO_ROOT / "hotline" / "data" / "calendar_overrides.json"
    scan_seconds: float = 5  # how often due timers (due-soon, overdue) are looked for
    scan_batch: int = 500  # timers fired per store transaction
    policy_refresh_seconds: float = 5  # how long a replica trusts its copy of the current policy
    calendar_warn_days: int = 60  # warn (loudly) when the working-day calendar is known fewer days ahead
    gauge_seconds: float = 30  # how often the SLA gauges (overdue, due soon, backlog, levels...) are recomputed
    # the SLA gauges count incrementally; a full read of the open cases reconciles them this often (issue 21)
    gauge_reconcile_seconds: float = 3600
    level_gauge_seconds: float = 60  # how often the supervision-record gauges (open, resolution ratio) are recounted


class ClockSettings(BaseModel):
    """The platform clock. Unset: real time. ``start`` (and/or ``speed``): an accelerated
    simulated clock, simulated now = start + speed x (real now - real_start) (hotline/clock.py)."""

    start: datetime | None = None  # simulated time at real_start, e.g. 2026-12-07T09:00:00+08:00
    speed: float = 1.0  # simulated seconds per real second (10080: a week per minute)
    real_start: datetime | None = None  # real instant the simulation began (default: process start);
    # give every process (and a restarted one) the same value so they share one timeline


class LimitSettings(BaseModel):
    """The lifecycle's own limits beyond the SLA policy (sign-off, contact, reply, extension,
    return and dispatch limits are the policy's: hotline/data/sla_policy.json)."""

    redo_working_days: int = 5  # 重办: the new limit when the office gives none
    assist_working_days: int = 3  # no longer read (issue #22): the SLA policy's assist_contribution limit
    park_report_days: int = 30  # 挂账: a progress report at least this often


class AuthSettings(BaseModel):
    """Who may call the APIs: bearer JWTs, verified by every service (hotline/auth.py).

    Production: an OIDC provider's keys (``jwks_url``, e.g. Keycloak's
    ``<issuer>/protocol/openid-connect/certs``, or a ``jwks_file``) with its ``issuer`` and
    ``audience``, and an empty ``dev_secret``. Development and tests: tokens signed with
    ``dev_secret`` (HS256), printed by ``hotline token issue``.
    """

    # empty = accept only the provider's keys; HOTLINE_ENV=development fills in DEV_SECRET when empty,
    # production refuses to start when it is set (hotline/security.py)
    dev_secret: str = ""
    jwks_url: str = ""
    jwks_file: Path | None = None
    issuer: str = "hotline-dev"  # the development issuer; production refuses it (set the provider's)
    audience: str = "hotline"
    role_claim: str = "hotline_role"  # a claim (dotted path, e.g. realm_access.roles) naming the role
    leeway_seconds: int = 30
    default_ttl_minutes: int = 480  # tokens `hotline token issue` prints


class PrivacySettings(BaseModel):
    """Personal data (callers' names and phone numbers)."""

    # HMAC key of repeat-detection keys (caller_key): at least 32 bytes, never a published value; development
    # fills in DEV_PII_KEY when empty, production refuses to start without a real one
    hash_secret: str = ""
    # Callers' names and phone numbers are anonymised this many days after the ticket was received
    # (0: the district's policy, hotline/data/retention.json, 180 days); tickets and figures are kept.
    retention_days: NonNegativeInt = 0
    retention_interval_seconds: float = 3600  # how often intake's retention job looks for tickets past the period
    retention_batch: int = 500  # tickets anonymised per store write (one audit entry each)


class IntakeSettings(BaseModel):
    """What intake accepts beyond the contract's fixed rules (docs/city-format.md)."""

    future_tolerance_seconds: float = 600  # receivedAt/dispatchedAt may lie this far after publication (clock skew)


class MetricsSettings(BaseModel):
    """The KPI engine and the reports (docs/kpis.md)."""

    kpi_policy: Path = REPO_ROOT / "hotline" / "data" / "kpi_policy.json"  # weights, thresholds (hotline/kpi_rates.py)
    gauge_seconds: float = 60  # how often the KPI gauges are recomputed
    reports_scan_seconds: float = 600  # how often the scheduler looks for a finished week or month to report
    scheduled_reports: bool = True  # weekly report each Monday, monthly on the 1st (for the period just ended)


class DeputySettings(BaseModel):
    """Deputy liaison (人大代表联络)."""

    # thresholds of monthly lists (concentrated, repeated, hard), versioned; each list records the version
    # (None: the service's own, services/deputy_liaison/data/monthly_list_policy.json)
    monthly_list_policy: Path | None = None


class WorkbenchSettings(BaseModel):
    """The workbench web application (services/workbench): sign-in and its session cookie.

    Production: an OIDC provider (docker-compose: Keycloak, realm ``hotline``, client
    ``hotline-workbench``) through the authorization-code flow. With ``auth.dev_secret`` set the
    sign-in page also offers development tokens for a chosen role and unit/deputy/officer.
    """

    session_secret: SecretStr = SecretStr("")  # signs the cookie; development: DEV_SESSION_KEY when empty
    secure_cookie: bool = False  # Secure flag on the cookies (also on whenever public_url is https)
    public_url: str = ""  # where browsers reach the workbench, e.g. https://12345.example.gov.cn
    oidc_issuer: str = ""  # e.g. http://keycloak:8080/realms/hotline (shown on the sign-in page)
    oidc_authorize_url: str = ""  # <issuer>/protocol/openid-connect/auth; empty: no provider sign-in
    oidc_token_url: str = ""  # <issuer>/protocol/openid-connect/token
    oidc_client_id: str = "hotline-workbench"
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_redirect_url: str = ""  # this app's /auth/callback as the provider reaches the browser
    oidc_scope: str = "openid"
    # where the services are, by name (e.g. {"intake": "intake"} in docker-compose); default bind_host
    hosts: dict[str, str] = Field(default_factory=dict)


class PortSettings(BaseModel):
    workbench_http: int = 8100
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


class HttpLimitSettings(BaseModel):
    """Sizes every HTTP server accepts (hotline/security.py): larger bodies get 413."""

    max_body_bytes: int = 1 << 20  # 1 MiB
    max_import_bytes: int = 10 << 20  # 10 MiB: the spreadsheet/JSON import routes (paths ending in /import)
    max_import_rows: int = 20_000  # rows of one spreadsheet import
    max_xlsx_uncompressed_bytes: int = 50 << 20  # sum of an XLSX's uncompressed members (zip bombs)


# Published development values: filled in only when HOTLINE_ENV=development; production refuses them.
DEV_SECRET = "hotline-development-only-secret-change-me"
DEV_ISSUER = "hotline-dev"
DEV_PII_KEY = "hotline-development-only-pii-key-change-me"
DEV_SESSION_KEY = "hotline-development-only-session-key-change-me"
KNOWN_DEFAULTS = frozenset({DEV_SECRET, DEV_PII_KEY, DEV_SESSION_KEY, "change-me", "changeme", "secret"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", env_nested_delimiter="__", extra="ignore")

    # development: `make run`, `make test`, the bench and the simulator (published dev secrets filled in,
    # /login/dev and `hotline token issue` on). production (default): a service refuses to start without real
    # secrets and keys (hotline.security.production_problems).
    env: Literal["development", "production"] = "production"
    http: HttpLimitSettings = Field(default_factory=HttpLimitSettings)

    bind_host: str = "127.0.0.1"  # address HTTP and gRPC servers listen on ("0.0.0.0" in containers)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    ports: PortSettings = Field(default_factory=PortSettings)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    clock: ClockSettings = Field(default_factory=ClockSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    deputy: DeputySettings = Field(default_factory=DeputySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    workbench: WorkbenchSettings = Field(default_factory=WorkbenchSettings)
    run_dir: Path = REPO_ROOT / ".run"  # data, logs and pid files of the local infrastructure
    cache_dir: Path = Path.home() / ".cache" / "hotline"  # Kafka jars, outside the repository
    log_level: str = "INFO"
    log_json: bool = False  # JSON log lines (containers) instead of console lines
    model_dir: Path = REPO_ROOT / "models" / "classifier"  # trained ticket classifier, if any
    timezone: str = "Asia/Shanghai"

    @model_validator(mode="after")
    def _development_defaults(self) -> Settings:
        if self.env == "development":
            self.auth.dev_secret = self.auth.dev_secret or DEV_SECRET
            self.privacy.hash_secret = self.privacy.hash_secret or DEV_PII_KEY
            if not self.workbench.session_secret.get_secret_value():
                self.workbench.session_secret = SecretStr(DEV_SESSION_KEY)
        return self

    @property
    def development(self) -> bool:
        return self.env == "development"


@lru_cache
def get_settings() -> Settings:
    return Settings()
