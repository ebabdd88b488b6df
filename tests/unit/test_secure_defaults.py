"""Secure by default (issue #19): production refuses to start without real secrets, development-only
sign-in, CSRF, browser headers, cookie flags, redirects, body limits and formula-safe cells."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hotline import security
from hotline.runtime import http_app
from hotline.settings import REPO_ROOT, Settings
from services.workbench.app import build
from services.workbench.security import CSRF_COOKIE, relative
from tests.support import browser_client

MIB = 1 << 20
PRODUCTION_KEYS = {"privacy": {"hash_secret": "p" * 40}, "workbench": {"session_secret": "s" * 40}}


def jwks(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public | {"kid": "k1"}]}))
    return tmp_path / "jwks.json"


def production(tmp_path: Path, **extra: object) -> Settings:
    return Settings.model_validate({"env": "production", **PRODUCTION_KEYS, "auth": {
        "jwks_file": str(jwks(tmp_path)), "issuer": "https://idp.example/realms/hotline", "audience": "hotline"},
        **extra})


def bare_env(**extra: str) -> dict[str, str]:
    """No HOTLINE_* at all: what a deployment that forgets every setting gives a process."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **extra}


def test_with_no_environment_a_service_exits_non_zero_naming_the_missing_settings() -> None:
    """It exits at start-up (the check runs before anything connects; no wall-clock limit is asserted:
    the 120 s timeout only guards against a service that would serve instead)."""
    done = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "hotline"), "serve", "intake"], env=bare_env(),
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode != 0, done.returncode
    line = done.stderr.strip().splitlines()[-1]
    for setting in ("HOTLINE_AUTH__JWKS_URL", "HOTLINE_AUTH__ISSUER", "HOTLINE_PRIVACY__HASH_SECRET"):
        assert setting in line, line
    done = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "hotline"), "serve", "workbench"],
                          env=bare_env(HOTLINE_AUTH__DEV_SECRET="x" * 40), capture_output=True, text=True,
                          timeout=60, cwd=REPO_ROOT)
    assert done.returncode != 0
    assert "HOTLINE_AUTH__DEV_SECRET is set" in done.stderr and "HOTLINE_WORKBENCH__SESSION_SECRET" in done.stderr


def test_hotline_token_issue_refuses_in_production_and_works_in_development() -> None:
    command = [str(REPO_ROOT / ".venv" / "bin" / "hotline"), "token", "issue", "--role", "admin"]
    refused = subprocess.run(command, env=bare_env(), capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert refused.returncode != 0 and not refused.stdout and "HOTLINE_ENV=development" in refused.stderr
    issued = subprocess.run(command, env=bare_env(HOTLINE_ENV="development"), capture_output=True, text=True,
                            timeout=60, cwd=REPO_ROOT)
    assert issued.returncode == 0 and issued.stdout.count(".") == 2


def test_production_problems_name_each_unsafe_setting_and_none_when_all_are_real(tmp_path: Path) -> None:
    assert security.production_problems(production(tmp_path), "intake") == []
    assert security.production_problems(production(tmp_path), "workbench") == []
    assert security.production_problems(Settings(env="development"), "intake") == []
    weak = production(tmp_path, privacy={"hash_secret": "hotline-development-only-pii-key-change-me"})
    assert any("HASH_SECRET" in p for p in security.production_problems(weak, "intake"))
    short = production(tmp_path, privacy={"hash_secret": "too-short"})
    assert any("HASH_SECRET" in p for p in security.production_problems(short, "routing"))
    dev = Settings.model_validate({"env": "production", **PRODUCTION_KEYS, "auth": {"dev_secret": "d" * 40}})
    problems = " ".join(security.production_problems(dev, "intake"))
    assert "DEV_SECRET is set" in problems and "JWKS_URL" in problems and "ISSUER" in problems
    # development fills in the published secrets; production never does
    assert Settings(env="development").auth.dev_secret and not Settings(env="production").auth.dev_secret
    assert not Settings(env="production").privacy.hash_secret


def test_in_production_post_login_dev_is_404_and_no_development_banner_shows(tmp_path: Path) -> None:
    client = browser_client(build(production(tmp_path)))
    assert client.post("/login/dev", data={"role": "admin"}, follow_redirects=False).status_code == 404
    page = client.get("/login").text
    assert "development sign-in" not in page and 'action="/login/dev"' not in page


def test_in_development_the_workbench_shows_the_development_sign_in_banner() -> None:
    page = TestClient(build(Settings(env="development"))).get("/login").text
    assert "development sign-in" in page and 'action="/login/dev"' in page


def test_a_workbench_post_without_the_csrf_token_gets_403() -> None:
    app = build(Settings(env="development"))
    bare = TestClient(app)
    for path in ("/login/dev", "/logout", "/office/queue/T1/dispatch", "/deputy/submit"):
        assert bare.post(path, data={"role": "admin"}, follow_redirects=False).status_code == 403, path
    bare.get("/login")  # now the browser holds the cookie, but a foreign page cannot know the token
    assert CSRF_COOKIE in bare.cookies
    assert bare.post("/login/dev", data={"role": "admin"}, follow_redirects=False).status_code == 403
    assert bare.post("/login/dev", data={"role": "admin", "csrf_token": "forged"},
                     follow_redirects=False).status_code == 403
    token = re.search(r'name="csrf_token" value="([^"]+)"', bare.get("/login").text)
    assert token
    ok = bare.post("/login/dev", data={"role": "admin", "csrf_token": token.group(1)}, follow_redirects=False)
    assert ok.status_code == 303  # the form field works, as does the X-CSRF-Token header (browser_client)
    assert browser_client(app).post("/logout", follow_redirects=False).status_code == 303


def test_every_post_form_of_the_workbench_carries_the_csrf_input() -> None:
    templates = REPO_ROOT / "services" / "workbench" / "templates"
    for path in templates.glob("*.html"):
        text = path.read_text("utf-8")
        forms = re.findall(r'<form method="post"[^>]*>\s*(\S+)', text)
        assert all(f.startswith("{{") and "csrf_input()" in text for f in forms), path.name
        assert len(forms) == text.count("{{ csrf_input() }}"), path.name


def test_the_workbench_sends_browser_security_headers() -> None:
    headers = TestClient(build(Settings(env="development"))).get("/login").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize(("public_url", "secure"), [("https://12345.example.gov.cn", True), ("", False)])
def test_cookies_are_secure_whenever_the_public_url_is_https(public_url: str, secure: bool) -> None:
    settings = Settings.model_validate({"env": "development", "workbench": {"public_url": public_url}})
    client = browser_client(build(settings), base_url="https://testserver")
    assert ("; secure" in client.first_page.headers["set-cookie"].lower()) is secure  # the CSRF cookie
    r = client.post("/login/dev", data={"role": "office"}, follow_redirects=False)
    assert r.status_code == 303
    assert ("; secure" in r.headers["set-cookie"].lower()) is secure  # the session cookie


@pytest.mark.parametrize("target", ["https://evil.example/x", "//evil.example", "/\\evil.example", "javascript:x",
                                    "evil", "/\r\nSet-Cookie: x=1", ""])
def test_back_is_only_a_relative_path(target: str) -> None:
    assert relative(target, "/office/queue") == "/office/queue"
    assert relative("/office/decisions?x=1", "/office/queue") == "/office/decisions?x=1"


def service_app() -> FastAPI:
    app = http_app("t")

    @app.post("/echo")
    async def echo(body: dict) -> dict:  # type: ignore[type-arg]
        return {"n": len(body)}

    @app.post("/deputies/import")
    async def imported() -> dict:  # type: ignore[type-arg]
        return {"ok": True}

    security.limit_bodies(app, Settings(env="development"))
    return app


def test_a_20_mib_body_gets_413_from_services_and_the_workbench_imports_allow_10_mib() -> None:
    client = TestClient(service_app())
    big = b"x" * (20 * MIB)
    assert client.post("/echo", content=big, headers={"content-type": "application/json"}).status_code == 413
    assert client.post("/deputies/import", content=big).status_code == 413
    assert client.post("/deputies/import", content=b"x" * (5 * MIB)).status_code == 200  # imports: 10 MiB
    assert client.post("/echo", content=b"x" * (2 * MIB)).status_code == 413  # others: 1 MiB
    assert client.post("/echo", json={"a": 1}).json() == {"n": 1}
    streamed = client.post("/echo", content=iter([b"x" * MIB] * 20))  # chunked, no Content-Length
    assert streamed.status_code == 413
    workbench = browser_client(build(Settings(env="development")))
    assert workbench.post("/deputy/submit", content=big).status_code == 413


@pytest.mark.parametrize("value", ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_like_cells_are_written_as_text(value: str) -> None:
    assert security.cell_text(value) == "'" + value
    assert security.cell_text("正常文本") == "正常文本" and security.cell_text(-3) == -3


def test_the_service_entry_point_refuses_production_without_secrets_before_any_connection() -> None:
    with pytest.raises(SystemExit) as stopped:
        security.check_startup(Settings(env="production"), "metrics")
    assert stopped.value.code == 2
    assert sys.executable  # the same check runs in hotline.runtime.run and `hotline serve`


def _xlsx(rows: int) -> bytes:
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["代表编号", "姓名", "层级", "街道", "社区"])
    for n in range(rows):
        sheet.append([f"D{n}", "代表", "区", "ST01", ""])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_imports_are_bounded_in_rows_and_uncompressed_size() -> None:
    import io
    import zipfile

    from hotline.commands import DomainError
    from services.deputy_liaison import core

    assert len(security.bounded_rows(_xlsx(30), max_rows=30)) == 31
    with pytest.raises(security.SpreadsheetTooLarge, match="rows"):
        security.bounded_rows(_xlsx(30), max_rows=10)
    # a zip bomb: 200 MiB of sheet XML in a small upload; refused from the zip directory, nothing inflated
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b" " * MIB
            for _ in range(200):
                member.write(chunk)
    assert len(bomb.getvalue()) < MIB
    with pytest.raises(DomainError, match="过大"):
        core.rows_of_xlsx(bomb.getvalue())
    assert len(core.rows_of_xlsx(_xlsx(3))) == 3


def test_compose_secrets_are_required_and_the_realm_commits_none() -> None:
    compose = (REPO_ROOT / "docker-compose.yml").read_text("utf-8")
    for var in ("PII_HASH_SECRET", "WORKBENCH_SESSION_SECRET", "WORKBENCH_CLIENT_SECRET", "KEYCLOAK_ADMIN_PASSWORD",
                "GRAFANA_ADMIN_PASSWORD"):
        assert re.search(r"\$\{" + var + r":\?", compose), var
    live = "\n".join(line for line in compose.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\$\{[A-Z_]*(SECRET|PASSWORD)[A-Z_]*:-", live), "a secret with a fallback value"
    realm = json.loads((REPO_ROOT / "deploy" / "keycloak" / "realm-hotline.json").read_text("utf-8"))
    client = realm["clients"][0]
    assert "secret" not in client and client["directAccessGrantsEnabled"] is False
    assert all("credentials" not in u and "attributes" not in u for u in realm["users"])
    role_mapper = next(m for m in client["protocolMappers"] if m["config"].get("claim.name") == "hotline_role")
    assert role_mapper["protocolMapper"] == "oidc-usermodel-client-role-mapper"
    assert all(g.get("clientRoles") for g in realm["groups"])
    readme = (REPO_ROOT / "deploy" / "README.md").read_text("utf-8")
    for words in ("SASL_SSL", "kafka-acls.sh", "one user per service", "retention.ms", "HOTLINE_ENV"):
        assert words in readme, words


def test_a_token_outside_the_allow_list_gets_401_over_http_not_500(tmp_path: Path) -> None:
    """Through the real HTTP guard: an HS384 token naming the JWKS kid raised TypeError (500) before issue #19."""
    from fastapi import APIRouter

    from hotline.auth import Verifier, http_guard
    from hotline.settings import AuthSettings

    settings = AuthSettings(jwks_file=jwks(tmp_path), issuer="https://idp.example/realms/hotline")
    router = APIRouter()

    @router.get("/tickets/{ticket_id}")
    async def ticket(ticket_id: str) -> dict[str, str]:
        return {"ticket_id": ticket_id}

    app = FastAPI()
    app.include_router(router, dependencies=[http_guard("intake", Verifier(settings))])
    claims = {"sub": "x", "iss": settings.issuer, "aud": "hotline", "exp": int(time.time()) + 60,
              "hotline_role": "office"}
    client = TestClient(app, raise_server_exceptions=False)
    for alg, key in (("HS384", "k" * 48), ("HS512", "k" * 64), ("HS256", "k" * 32)):
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": "k1"})
        answer = client.get("/tickets/T1", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, (alg, answer.status_code, answer.text)
