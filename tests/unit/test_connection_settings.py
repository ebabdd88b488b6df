"""Kafka (TLS, SASL) and MongoDB (TLS, credentials) come from settings alone, through one helper
per system that every client of the platform is built with."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest

from hotline import kafka, mongo
from hotline.settings import REPO_ROOT, KafkaSettings, Settings
from hotline_dev import infra


def settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(f"HOTLINE_{key}", value)
    return Settings()


def test_plaintext_by_default() -> None:
    options = kafka.client_options(Settings())
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert set(mongo.client_options(Settings())) == {"host", "tz_aware", "tzinfo", "serverSelectionTimeoutMS"}


async def test_kafka_sasl_ssl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    infra._make_tls_files(Settings(run_dir=tmp_path))  # a real CA file to load
    ca, _ = infra.tls_paths(Settings(run_dir=tmp_path))
    s = settings_from(monkeypatch, KAFKA__SECURITY_PROTOCOL="SASL_SSL", KAFKA__SASL_MECHANISM="SCRAM-SHA-256",
                      KAFKA__SASL_USERNAME="hotline", KAFKA__SASL_PASSWORD="s3cret", KAFKA__SSL_CAFILE=str(ca))
    assert "s3cret" not in repr(s), "the password is a secret: never in reprs or logs"
    options = kafka.client_options(s)
    context = options.pop("ssl_context")
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_SSL",
                       "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "hotline",
                       "sasl_plain_password": "s3cret"}
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED and context.get_ca_certs()[0]["subject"]
    producer, consumer, admin = kafka.producer(s), kafka.consumer(s, "t"), kafka.admin(s)  # accept the options
    assert (producer.client._security_protocol, consumer._client._sasl_mechanism, admin._client._sasl_plain_username
            ) == ("SASL_SSL", "SCRAM-SHA-256", "hotline")
    await producer.stop()
    await consumer.stop()
    await admin.close()


def test_kafka_rejects_an_unknown_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        settings_from(monkeypatch, KAFKA__SECURITY_PROTOCOL="TLS")


def test_mongo_credentials_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_from(monkeypatch, MONGO__URL="mongodb://db.example:27017/?replicaSet=rs0",
                      MONGO__USERNAME="hotline", MONGO__PASSWORD="pw", MONGO__AUTH_SOURCE="hotline_admin",
                      MONGO__TLS="true", MONGO__TLS_CA_FILE="/run/secrets/ca.pem",
                      MONGO__TLS_CERTIFICATE_KEY_FILE="/run/secrets/client.pem")
    assert "'pw'" not in repr(s)
    options = mongo.client_options(s)
    assert {k: options[k] for k in ("host", "username", "password", "authSource", "tls", "tlsCAFile",
                                    "tlsCertificateKeyFile")} == {
        "host": "mongodb://db.example:27017/?replicaSet=rs0", "username": "hotline", "password": "pw",
        "authSource": "hotline_admin", "tls": True, "tlsCAFile": "/run/secrets/ca.pem",
        "tlsCertificateKeyFile": "/run/secrets/client.pem"}


def test_local_broker_properties_follow_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = settings_from(monkeypatch, RUN_DIR=str(tmp_path), KAFKA__SECURITY_PROTOCOL="SASL_SSL",
                      KAFKA__SASL_USERNAME="hotline", KAFKA__SASL_PASSWORD="s3cret")
    props = dict(line.split("=", 1) for line in infra.render_server_properties(s).splitlines()
                 if line and not line.startswith("#"))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert 'username="hotline" password="s3cret"' in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert props["ssl.keystore.location"] == str(infra.tls_paths(s)[1])
    plain = infra.render_server_properties(Settings(run_dir=tmp_path / "plain", kafka=KafkaSettings()))
    assert "sasl" not in plain and "ssl." not in plain


CLIENTS = {
    "hotline/kafka.py": re.compile(r"\b(AIOKafkaProducer|AIOKafkaConsumer|AIOKafkaAdminClient)\("),
    "hotline/mongo.py": re.compile(r"\b(AsyncMongoClient|MongoClient)\("),
}


@pytest.mark.parametrize("helper", CLIENTS)
def test_every_client_is_built_by_the_one_helper(helper: str) -> None:
    """A client built elsewhere would silently ignore the TLS and credential settings."""
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {m.group(0)}"
        for top in ("hotline", "hotline_dev", "services")
        for path in (REPO_ROOT / top).rglob("*.py")
        if str(path.relative_to(REPO_ROOT)) != helper
        for m in CLIENTS[helper].finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
