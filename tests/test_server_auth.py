"""Specification of the server's security: tokens, roles, rate limits, limits, headers, logs."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from redline import ConfigError, Monitor, parse_config
from redline.server import (
    RedlineServer,
    ServerConfig,
    TokenConfig,
    create_app,
    parse_server_config,
)
from redline.server.auth import TokenBook
from redline.server.ratelimit import RateLimiter

ADMIN = "admin-secret-0123456789abcdef"
READ = "read-secret-0123456789abcdef"
INGEST = "ingest-secret-0123456789abcdef"
HASHED = "hashed-secret-0123456789abcdef"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Any]:
    """``running(**server_config) -> url``: servers on SQLite monitors, stopped afterwards."""
    started: list[tuple[RedlineServer, Monitor]] = []

    def run(admin_token: str = "", **fields: Any) -> str:
        monitor = Monitor(parse_config({"storage": {"path": str(tmp_path / f"{len(started)}.db")}}))
        fields.setdefault(
            "tokens",
            [
                TokenConfig(name="ops", role="admin", token=ADMIN),
                TokenConfig(name="dash", role="read", token=READ),
                TokenConfig(name="agents", role="ingest", token=INGEST),
                TokenConfig(
                    name="hashed",
                    role="read",
                    token_sha256=hashlib.sha256(HASHED.encode()).hexdigest(),
                ),
            ],
        )
        app = create_app(monitor, ServerConfig(port=0, **fields), admin_token=admin_token)
        server = RedlineServer(app, port=0).start()
        started.append((server, monitor))
        return server.url

    yield run
    for server, monitor in started:
        server.stop()
        monitor.close()


def call(url: str, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, url + path, headers=headers, timeout=10.0, **kw)


#: (method, path, body) for one call per permission.
INGEST_CALL = ("POST", "/v1/events", [{"agent": "a"}])
CHECK_CALL = ("GET", "/v1/check?agent=a", None)
READ_CALLS = [
    ("GET", "/v1/events", None),
    ("GET", "/v1/agents", None),
    ("GET", "/v1/metrics/a", None),
    ("GET", "/v1/alerts", None),
    ("GET", "/v1/kills", None),
    ("GET", "/v1/stats", None),
]
ADMIN_CALLS = [
    ("POST", "/v1/kill", {"scope": "agent", "target": "a", "reason": "r"}),
    ("POST", "/v1/revive", {"scope": "agent", "target": "a"}),
    ("POST", "/v1/alerts/al-x/ack", None),
    ("GET", "/v1/verify", None),
    ("GET", "/v1/export?format=json", None),
]


def status(url: str, token: str | None, spec: tuple[str, str, Any]) -> int:
    method, path, body = spec
    return call(url, method, path, token, json=body).status_code


def test_no_token_is_401_with_www_authenticate(running: Any) -> None:
    """Without a valid bearer token every API call is 401 and says how to authenticate."""
    url = running()
    for spec in [INGEST_CALL, CHECK_CALL, *READ_CALLS, *ADMIN_CALLS]:
        r = call(url, spec[0], spec[1], None, json=spec[2])
        assert r.status_code == 401, spec
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    [f"Bearer {ADMIN}x", f"Basic {ADMIN}", ADMIN, "Bearer", f"bearer {ADMIN[:-1]}", "Bearer a b"],
)
def test_wrong_tokens_are_401(running: Any, header: str) -> None:
    """A wrong secret, scheme or an empty token is a 401."""
    url = running()
    r = httpx.get(url + "/v1/agents", headers={"Authorization": header})
    assert r.status_code == 401


def test_scheme_is_case_insensitive(running: Any) -> None:
    """``bearer`` works as well as ``Bearer`` (RFC 6750 schemes are case-insensitive)."""
    url = running()
    assert httpx.get(url + "/v1/agents", headers={"Authorization": f"bearer {READ}"}).is_success


def test_ingest_role(running: Any) -> None:
    """``ingest`` may post events and check kills, nothing else (403)."""
    url = running()
    assert status(url, INGEST, INGEST_CALL) == 200
    assert status(url, INGEST, CHECK_CALL) == 200
    for spec in READ_CALLS + ADMIN_CALLS:
        assert status(url, INGEST, spec) == 403, spec


def test_read_role(running: Any) -> None:
    """``read`` may query, stream and check, but not post events nor act (403)."""
    url = running()
    assert status(url, READ, INGEST_CALL) == 403
    assert status(url, READ, CHECK_CALL) == 200
    for spec in READ_CALLS:
        assert status(url, READ, spec) == 200, spec
    for spec in ADMIN_CALLS:
        assert status(url, READ, spec) == 403, spec
    r = call(url, "POST", "/v1/kill", READ, json=ADMIN_CALLS[0][2])
    assert "'read'" in r.json()["message"]


def test_admin_role_may_do_everything(running: Any) -> None:
    """``admin`` may call every operation."""
    url = running()
    for spec in [INGEST_CALL, CHECK_CALL, *READ_CALLS, *ADMIN_CALLS]:
        assert status(url, ADMIN, spec) in (200, 404), spec  # 404: the made-up alert id


def test_token_sha256_authenticates(running: Any) -> None:
    """A config may hold only the SHA-256 of a token."""
    url = running()
    assert status(url, HASHED, READ_CALLS[0]) == 200
    assert status(url, hashlib.sha256(HASHED.encode()).hexdigest(), READ_CALLS[0]) == 401


def test_env_admin_token(running: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``REDLINE_ADMIN_TOKEN`` adds an admin token, recorded as actor ``env-admin``."""
    monkeypatch.setenv("REDLINE_ADMIN_TOKEN", "from-the-environment-123456")
    url = running(admin_token=None, tokens=[])
    r = call(url, "POST", "/v1/kill", "from-the-environment-123456", json=ADMIN_CALLS[0][2])
    assert r.status_code == 200
    assert r.json()["kill"]["actor"] == "env-admin"


def test_a_short_env_admin_token_is_refused_like_a_short_config_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule for both: ``REDLINE_ADMIN_TOKEN=abc`` is a config error naming the variable,
    without echoing the value, as ``server.tokens[0].token: abc`` is."""
    from redline import ConfigError, Monitor, parse_config
    from redline.server import ServerConfig, create_app

    monkeypatch.setenv("REDLINE_ADMIN_TOKEN", "abc")
    with Monitor(parse_config({})) as monitor, pytest.raises(ConfigError) as info:
        create_app(monitor, ServerConfig())
    assert info.value.errors == [
        "REDLINE_ADMIN_TOKEN: too short: use at least 16 characters (e.g. `openssl rand -hex 32`)"
    ]
    with pytest.raises(ConfigError, match=r"server\.tokens\[0\]\.token: too short"):
        parse_config({"server": {"tokens": [{"name": "x", "role": "admin", "token": "abc"}]}})


def test_token_book_compares_digests() -> None:
    """Lookup goes through SHA-256 digests; unknown and empty tokens find nobody."""
    book = TokenBook([TokenConfig(name="a", role="read", token="t" * 20)], admin_token="u" * 20)
    assert book.lookup("t" * 20) == ("a", "read", None)
    assert book.lookup("u" * 20).name == "env-admin"  # type: ignore[union-attr]
    assert book.lookup("t" * 19) is None
    assert book.authenticate(None) is None
    assert book.authenticate("Token " + "t" * 20) is None


def test_rate_limit_is_429_with_retry_after(running: Any) -> None:
    """Past its per-minute budget a token gets 429 with Retry-After; others are unaffected."""
    url = running(
        tokens=[
            TokenConfig(name="slow", role="read", token=READ, rate_limit_per_minute=3),
            TokenConfig(name="ops", role="admin", token=ADMIN),
        ]
    )
    codes = [status(url, READ, READ_CALLS[0]) for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = call(url, "GET", "/v1/agents", READ)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"] == "rate_limited"
    assert status(url, ADMIN, READ_CALLS[0]) == 200


def test_failed_authentication_is_rate_limited_per_address(running: Any) -> None:
    """Guessing tokens from one address runs into a 429 after 60 failures a minute."""
    url = running()
    with httpx.Client(headers={"Authorization": "Bearer guess-0123456789abcdef"}) as guesser:
        codes = [guesser.get(url + "/v1/agents").status_code for _ in range(70)]
    assert codes[0] == 401
    assert codes[-1] == 429


def test_x_forwarded_for_does_not_defeat_the_per_address_limit(running: Any) -> None:
    """A client naming a new address in ``X-Forwarded-For`` each time still meets the 429:
    proxy headers are believed only from ``server.trusted_proxies`` (none by default)."""
    url = running()
    codes = []
    with httpx.Client(headers={"Authorization": "Bearer guess-0123456789abcdef"}) as guesser:
        for i in range(200):
            spoof = {"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"}
            codes.append(guesser.get(url + "/v1/agents", headers=spoof).status_code)
    assert codes[-1] == 429
    assert codes.count(429) >= 100


def test_rate_limiter_keeps_a_bounded_number_of_buckets() -> None:
    """Spraying addresses cannot grow the limiter without bound: idle buckets are evicted."""
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0], max_keys=1000)
    for i in range(50_000):
        limiter.acquire(f"addr:{i}")
        now[0] += 0.001
    assert len(limiter) <= 1000
    assert limiter.evicted >= 49_000


def test_rate_limiter_refills() -> None:
    """The bucket refills at rate/60 per second."""
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    for _ in range(60):
        assert limiter.acquire("t") == 0.0
    assert limiter.acquire("t") == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.acquire("t") == 0.0


def test_public_routes_need_no_token(running: Any) -> None:
    """The dashboard page, its assets, health, readiness and the API document are public."""
    url = running()
    for path in (
        "/",
        "/assets/app.js",
        "/assets/app.css",
        "/healthz",
        "/readyz",
        "/v1/openapi.json",
    ):
        assert httpx.get(url + path).status_code == 200, path
    assert httpx.get(url + "/assets/secrets.txt").status_code == 404


def test_security_headers(running: Any) -> None:
    """Responses forbid sniffing, framing and referrers; the page has a strict CSP."""
    url = running()
    page = httpx.get(url + "/")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    api = call(url, "GET", "/v1/agents", READ)
    assert api.headers["cache-control"] == "no-store"
    assert api.headers["referrer-policy"] == "no-referrer"
    assert "server" not in api.headers


def test_cors_is_off_by_default(running: Any) -> None:
    """No CORS headers unless ``cors_origins`` lists the origin."""
    url = running()
    r = call(url, "GET", "/v1/agents", READ, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    url = running(cors_origins=["https://ops.example"])
    ok = call(url, "GET", "/v1/agents", READ, headers={"Origin": "https://ops.example"})
    assert ok.headers["access-control-allow-origin"] == "https://ops.example"
    bad = call(url, "GET", "/v1/agents", READ, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in bad.headers


def test_tokens_are_never_logged(running: Any, caplog: pytest.LogCaptureFixture) -> None:
    """No log line, for good or bad calls, contains a token (there is no access log)."""
    caplog.set_level(logging.DEBUG)
    url = running()
    for token in (ADMIN, READ, INGEST, "wrong-token-0123456789"):
        for spec in [INGEST_CALL, *READ_CALLS, *ADMIN_CALLS]:
            status(url, token, spec)
    call(
        url,
        "POST",
        "/v1/events",
        INGEST,
        content=b"{bad",
        headers={"Content-Type": "application/json"},
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    for token in (ADMIN, READ, INGEST, "wrong-token-0123456789"):
        assert token not in text
    assert "Authorization" not in text
    assert not [r for r in caplog.records if r.name == "uvicorn.access"]


def test_binds_loopback_by_default() -> None:
    """The default bind address is 127.0.0.1 on port 8765."""
    config = ServerConfig()
    assert (config.host, config.port) == ("127.0.0.1", 8765)
    assert config.cors_origins == []


def test_server_config_errors_have_key_paths() -> None:
    """Bad ``server:`` sections are reported with the key path and what was expected."""
    with pytest.raises(ConfigError) as info:
        parse_server_config(
            {
                "tokens": [
                    {"name": "a", "role": "reader", "token": "x" * 20},
                    {"name": "a", "role": "read", "token": "short"},
                    {"name": "c", "role": "read"},
                    {"name": "d", "role": "read", "token_sha256": "nothex"},
                ],
                "port": 70000,
            },
            source="m.yaml",
        )
    errors = info.value.errors
    assert "m.yaml: server.port: expected a port number 0..65535, got 70000" in errors
    assert any(e.startswith("m.yaml: server.tokens[0].role:") and "'read'?" in e for e in errors)
    assert any(e.startswith("m.yaml: server.tokens[1].name: duplicate") for e in errors)
    assert any(e.startswith("m.yaml: server.tokens[1].token: too short") for e in errors)
    assert any(e.startswith("m.yaml: server.tokens[2]: give exactly one") for e in errors)
    assert any(e.startswith("m.yaml: server.tokens[3].token_sha256:") for e in errors)
    with pytest.raises(
        ConfigError, match=r"m.yaml: server.tokens\[0\].rol: unknown key; did you mean 'role'"
    ):
        parse_server_config({"tokens": [{"name": "a", "rol": "read"}]}, source="m.yaml")
    with pytest.raises(
        ConfigError, match=r"m.yaml: server.max_batch: expected an integer, got 'lots'"
    ):
        parse_server_config({"max_batch": "lots"}, source="m.yaml")


def test_serve_command_reads_the_server_section(tmp_path: Path) -> None:
    """``redline serve`` refuses a bad ``server:`` section with the key path (exit 2)."""
    from redline.cli import main

    config = tmp_path / "monitor.yaml"
    config.write_text(
        "storage: {path: events.db}\nserver:\n  tokens:\n    - {name: a, role: boss, token: x}\n",
        encoding="utf-8",
    )
    assert main(["-c", str(config), "serve"]) == 2


def test_serve_command_serves(tmp_path: Path) -> None:
    """``redline serve -c`` starts a server on the configured store and stops on SIGTERM."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "monitor.yaml").write_text(
        f"storage: {{path: events.db}}\nserver:\n  port: {port}\n  tokens:\n"
        '    - {name: ops, role: admin, token: "${OPS_TOKEN}"}\n',
        encoding="utf-8",
    )
    env = {**os.environ, "OPS_TOKEN": ADMIN}
    env.pop("REDLINE_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redline.cli",
            "-c",
            "monitor.yaml",
            "serve",
            "--log-level",
            "debug",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/kill",
                    json={"scope": "agent", "target": "a", "reason": "cli"},
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[0].decode()
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.json()["kill"]["actor"] == "ops"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    text = out.decode()
    assert "serving http://127.0.0.1" in text
    assert ADMIN not in text  # not even at debug level
    assert (tmp_path / "events.db").exists()


def test_serve_without_tokens_on_loopback_makes_one_for_the_run(tmp_path: Path) -> None:
    """No token anywhere: a loopback server prints a fresh admin token that works (Jupyter's way)."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "monitor.yaml").write_text(
        f"storage: {{path: events.db}}\nserver:\n  port: {port}\n", encoding="utf-8"
    )
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("REDLINE_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "redline.cli", "-c", "monitor.yaml", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("has its own admin token" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        proc.stdout.readline()  # the blank line before the token
        token = proc.stdout.readline().strip()
        assert len(token) >= 32
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/v1/agents",
                    headers={"Authorization": f"Bearer {token}"},
                )
                break
            except httpx.TransportError:
                assert proc.poll() is None
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        assert r.status_code == 200
        wrong = httpx.get(
            f"http://127.0.0.1:{port}/v1/agents", headers={"Authorization": "Bearer x" * 2}
        )
        assert wrong.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_serve_without_tokens_off_loopback_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Off loopback, a server that would refuse every request is not started (exit 2)."""
    from redline.cli import main

    monkeypatch.delenv("REDLINE_ADMIN_TOKEN", raising=False)
    config = tmp_path / "monitor.yaml"
    config.write_text("storage: {path: events.db}\n", encoding="utf-8")
    assert main(["-c", str(config), "serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "no tokens configured" in err
    assert "redline init" in err
