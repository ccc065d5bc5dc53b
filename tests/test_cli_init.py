"""``redline init``: a starter config that validates, keeps no credential, and serves."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import httpx
import pytest

from redline import Monitor, load_config
from redline.cli import main


def test_init_writes_a_config_that_loads_and_whose_token_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("starlette")
    from redline.server import RedlineServer, create_app

    path = tmp_path / "monitor.yaml"
    assert main(["init", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    token = out["admin_token"]
    body = path.read_text(encoding="utf-8")
    assert token not in body  # only the digest is kept
    assert hashlib.sha256(token.encode()).hexdigest() in body
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load_config(path)
    assert config.storage.path == str(tmp_path / ".redline" / "events.db")  # beside the file
    assert out["store"] == config.storage.path
    assert [b.name for b in config.section("budgets")] == ["per-agent-daily"]
    monitor = Monitor(config)
    server = RedlineServer(create_app(monitor, config.server, admin_token=""), port=0).start()
    try:
        ok = httpx.get(f"{server.url}/v1/agents", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        bad = httpx.get(f"{server.url}/v1/agents", headers={"Authorization": "Bearer " + "x" * 40})
        assert bad.status_code == 401
    finally:
        server.stop()
        monitor.close()


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("mine\n", encoding="utf-8")
    assert main(["init", str(path)]) == 1
    assert "pass --force" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "mine\n"
    assert main(["init", str(path), "--force"]) == 0
    out = capsys.readouterr().out
    assert "shown once" in out
    assert f"redline -c {path} serve" in out
    load_config(path)


def test_version_names_the_build(capsys: pytest.CaptureFixture[str]) -> None:
    """``--version`` says whether the compiled modules run, and why not when they don't."""
    from redline._compiled import compiled_modules

    assert main(["--version"]) == 0
    line = capsys.readouterr().out
    if compiled_modules():
        assert "compiled:" in line
    else:
        assert "pure Python:" in line


def test_version_says_when_the_compiled_build_failed(tmp_path: Path) -> None:
    """A failed mypyc build is recorded, and ``--version`` says so instead of a bare "pure"."""
    import redline._compiled as compiled

    root = tmp_path / "redline"
    root.mkdir()
    (root / "validation.py").write_text("", encoding="utf-8")
    (root / ".compiled-failed").write_text("error: no C compiler\n", encoding="utf-8")
    original = compiled._ROOT
    compiled._ROOT = root
    try:
        assert "compiling with mypyc failed" in compiled.build_info()
        (root / ".compiled-failed").unlink()
        assert "no compiled modules in this install" in compiled.build_info()
    finally:
        compiled._ROOT = original
