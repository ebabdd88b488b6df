"""Identity, policy, personal data and event dispatch: pure logic of the kit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hotline import policy, privacy
from hotline.auth import AuthError, Principal, Verifier, check, issue
from hotline.envelope import EventTypes, PermanentError, Record, Skip, event_id
from hotline.policy import PEOPLE, Role
from hotline.settings import AuthSettings
from hotline.v1 import events_pb2, services_pb2

SECRET = "unit-test-secret-of-thirty-two-bytes"
SETTINGS = AuthSettings(dev_secret=SECRET)


def test_a_dev_token_round_trips_to_its_principal() -> None:
    who = Verifier(SETTINGS).verify(issue(SETTINGS, "unit", unit_id="U7"))
    assert who == Principal("unit:U7", Role.UNIT, unit_id="U7")


@pytest.mark.parametrize("token", [
    "not-a-jwt",
    issue(AuthSettings(dev_secret="another-secret-of-thirty-two-bytes-long"), "office"),  # signed with another key
    issue(SETTINGS, "office", ttl_minutes=-5),  # expired
    jwt.encode({"sub": "x", "iss": "hotline-dev", "aud": "hotline", "exp": int(time.time()) + 60,
                "hotline_role": "superuser"}, SECRET, algorithm="HS256"),  # no known role
    jwt.encode({"sub": "x", "iss": "hotline-dev", "aud": "hotline", "exp": int(time.time()) + 60,
                "hotline_role": "unit"}, SECRET, algorithm="HS256"),  # a unit token naming no unit
    jwt.encode({"sub": "x", "iss": "elsewhere", "aud": "hotline", "exp": int(time.time()) + 60,
                "hotline_role": "office"}, SECRET, algorithm="HS256"),  # another issuer
    jwt.encode({"sub": "x", "iss": "hotline-dev", "aud": "hotline", "exp": int(time.time()) + 60,
                "hotline_role": "system"}, SECRET, algorithm="HS256"),  # system is never a token role
])
def test_bad_tokens_are_unauthenticated(token: str) -> None:
    with pytest.raises(AuthError) as refused:
        Verifier(SETTINGS).verify(token)
    assert refused.value.status == 401


def test_provider_tokens_verify_against_a_jwks_file_and_a_nested_role_claim(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public | {"kid": "k1", "use": "sig", "alg": "RS256"}]}))
    settings = AuthSettings(dev_secret="", jwks_file=tmp_path / "jwks.json", issuer="https://idp/realms/hotline",
                            audience="hotline", role_claim="realm_access.roles")
    claims = {"sub": "u-123", "iss": "https://idp/realms/hotline", "aud": "hotline", "exp": int(time.time()) + 60,
              "realm_access": {"roles": ["offline_access", "office"]}}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    assert Verifier(settings).verify(token) == Principal("u-123", Role.OFFICE)
    with pytest.raises(AuthError):  # with no dev secret configured, HS256 tokens are refused
        Verifier(settings).verify(issue(SETTINGS, "office"))


def test_the_policy_table_refuses_what_it_does_not_name() -> None:
    office, viewer = Principal("o", Role.OFFICE), Principal("v", Role.VIEWER)
    check("supervision", "GetCase", office)
    with pytest.raises(AuthError) as refused:
        check("supervision", "GetCase", viewer)
    assert refused.value.status == 403
    with pytest.raises(AuthError):
        check("supervision", "NoSuchMethod", office)


def test_every_grpc_method_in_the_contracts_has_a_policy() -> None:
    services = {"IntakeService": "intake", "RoutingService": "routing", "SupervisionService": "supervision",
                "DeputyLiaisonService": "deputy_liaison", "MetricsService": "metrics"}
    missing = [f"{svc}.{m.name}" for svc, name in services.items()
               for m in services_pb2.DESCRIPTOR.services_by_name[svc].methods if policy.roles(name, m.name) is None]
    assert not missing
    assert all(Role.SYSTEM not in roles for table in policy.POLICY.values() for roles in table.values())
    assert all(roles <= PEOPLE for table in policy.POLICY.values() for roles in table.values())


def test_personal_data_masks() -> None:
    assert privacy.mask_phone("13812345678") == "138****5678"
    assert privacy.mask_phone("+86 138-1234-5678") == "138****5678"
    assert privacy.mask_phone("") == ""
    assert privacy.mask_name("张三丰") == "张**"
    assert privacy.mask_text("请回电13812345678或010-87654321") == "请回电138****5678或*******4321"
    assert privacy.keyed_hash("k", "13812345678") == privacy.keyed_hash("k", "13812345678")
    assert privacy.keyed_hash("k", "13812345678") != privacy.keyed_hash("other", "13812345678")
    assert "1381234" not in privacy.keyed_hash("k", "13812345678")


def test_the_log_processor_redacts_fields_and_patterns() -> None:
    event = privacy.redact_log(None, "info", {"event": "called 13912345678", "phone": "13912345678",
                                              "detail": {"text": "15012345678"}})
    assert event == {"event": "called 139****5678", "phone": "[redacted]", "detail": "{'text': '150****5678'}"}


def record(event_type: str, value: bytes = b"") -> Record:
    return Record("t", 0, 0, "T1", value, {"event_type": event_type}, 0)


def test_events_dispatch_on_their_protobuf_type_and_unknown_types_are_skipped() -> None:
    types = EventTypes(events_pb2.CaseOpened, events_pb2.TicketAssigned)
    opened = events_pb2.CaseOpened(case=events_pb2.Case(ticket_id="T1"))
    decoded = types.decode(record("hotline.v1.CaseOpened", opened.SerializeToString()))
    assert isinstance(decoded, events_pb2.CaseOpened) and decoded.case.ticket_id == "T1"
    with pytest.raises(Skip):
        types.decode(record("hotline.v1.SomethingNew", b"\x01\x02"))
    with pytest.raises(Skip):
        types.decode(record(""))  # untyped on a shared topic
    with pytest.raises(PermanentError):
        types.decode(record("hotline.v1.CaseOpened", b"\xff\xff\xff"))
    assert event_id("T1", "opened", "2") == "T1/opened/2"


def _jwks_settings(tmp_path: Path) -> tuple[AuthSettings, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public | {"kid": "k1", "use": "sig", "alg": "RS256"}]}))
    return AuthSettings(dev_secret="", jwks_file=tmp_path / "jwks.json", issuer="https://idp/realms/hotline",
                        audience="hotline"), key


@pytest.mark.parametrize("alg", ["HS384", "HS512", "HS256", "RS384", "RS512", "PS256", "ES384", "none", "EdDSA"])
def test_tokens_outside_the_algorithm_allow_list_are_unauthenticated_never_an_error(tmp_path: Path,
                                                                                    alg: str) -> None:
    """Issue #19: the algorithm is the key source's (RS256/ES256 for JWKS, HS256 for the dev secret only),
    not the header's; an HS384 token with a JWKS kid raised TypeError (HTTP 500 / gRPC UNKNOWN) before."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    settings, rsa_key = _jwks_settings(tmp_path)
    claims = {"sub": "u", "iss": settings.issuer, "aud": "hotline", "exp": int(time.time()) + 60,
              "hotline_role": "office"}
    keys: dict[str, object] = {"HS384": "x" * 48, "HS512": "x" * 64, "HS256": "x" * 32, "RS384": rsa_key,
                               "RS512": rsa_key, "PS256": rsa_key, "ES384": ec.generate_private_key(ec.SECP384R1()),
                               "none": None, "EdDSA": ed25519.Ed25519PrivateKey.generate()}
    token = jwt.encode(claims, keys[alg], algorithm=alg, headers={"kid": "k1"})  # type: ignore[arg-type]
    for verifier in (Verifier(settings), Verifier(AuthSettings(dev_secret=SECRET, jwks_file=settings.jwks_file))):
        if alg == "HS256" and verifier.settings.dev_secret:
            continue  # HS256 is the dev secret's algorithm; signed with another key it is refused above
        with pytest.raises(AuthError) as refused:
            verifier.verify(token)
        assert refused.value.status == 401, alg
    # an HS256 token signed with the RSA key's public JWK as HMAC secret (the classic confusion) is refused too
    public_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = jwt.encode(claims, public_pem.decode()[:64] + "padding-of-thirty-two-bytes-at-least", algorithm="HS256")
    with pytest.raises(AuthError) as refused:
        Verifier(settings).verify(forged)
    assert refused.value.status == 401


def test_a_provider_token_signed_with_the_allowed_algorithm_still_verifies(tmp_path: Path) -> None:
    settings, key = _jwks_settings(tmp_path)
    token = jwt.encode({"sub": "u", "iss": settings.issuer, "aud": "hotline", "exp": int(time.time()) + 60,
                        "hotline_role": "viewer"}, key, algorithm="RS256", headers={"kid": "k1"})
    assert Verifier(settings).verify(token).role == Role.VIEWER
