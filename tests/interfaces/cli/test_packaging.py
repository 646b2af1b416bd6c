from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from plughost.interfaces.cli import build_app
from tests.security.conftest import make_plugin
from tests.security.zipcraft import rewrite

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    return build_app()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLUGHOST_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def invoke(app: typer.Typer, *args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def packed(app: typer.Typer, tmp_path: Path) -> Path:
    result = invoke(app, "pack", make_plugin(tmp_path / "s"), "--json")
    return Path(json.loads(result.stdout)["path"])


def test_help_lists_the_packaging_commands(app: typer.Typer) -> None:
    out = invoke(app, "--help").output
    for command in ("pack", "keygen", "sign", "verify", "trust"):
        assert command in out
    trust = invoke(app, "trust", "--help").output
    for sub in ("add", "list", "revoke"):
        assert sub in trust


def test_pack_keygen_trust_sign_verify_end_to_end(
    app: typer.Typer, home: Path, tmp_path: Path
) -> None:
    src = make_plugin(tmp_path / "src")
    packed = invoke(app, "pack", src, "--json")
    assert packed.exit_code == 0, packed.output
    pkg = Path(json.loads(packed.stdout)["path"])
    assert pkg == tmp_path / "notify-slack-1.0.0.zip"

    keys = invoke(app, "keygen", "--name", "acme", "--json")
    assert keys.exit_code == 0, keys.output
    k = json.loads(keys.stdout)
    assert Path(k["private_key"]).parent == home / "keys"
    assert stat.S_IMODE(Path(k["private_key"]).stat().st_mode) == 0o600

    unsigned = invoke(app, "verify", pkg)
    assert unsigned.exit_code == 1
    assert "signature.missing" in unsigned.stderr

    signed = invoke(app, "sign", pkg, "--key", k["private_key"])
    assert signed.exit_code == 0, signed.output
    assert k["key_id"] in signed.stdout

    untrusted = invoke(app, "verify", pkg)
    assert untrusted.exit_code == 1 and "signature.untrusted_key" in untrusted.stderr

    added = invoke(app, "trust", "add", k["public_key"], "--name", "Acme")
    assert added.exit_code == 0, added.output
    verified = invoke(app, "verify", pkg, "--json")
    assert verified.exit_code == 0, verified.output
    result = json.loads(verified.stdout)
    assert result["trusted"] and result["key_name"] == "Acme" and result["key_id"] == k["key_id"]

    human = invoke(app, "verify", pkg)
    assert "Acme" in human.stdout and "verified" in human.stdout

    listing = json.loads(invoke(app, "trust", "list", "--json").stdout)
    assert [key["name"] for key in listing["items"]] == ["Acme"]

    revoked = invoke(app, "trust", "revoke", k["key_id"], "--reason", "rotated")
    assert revoked.exit_code == 0, revoked.output
    refused = invoke(app, "verify", pkg)
    assert refused.exit_code == 1 and "signature.revoked_key" in refused.stderr
    assert "revoked" in invoke(app, "trust", "list").stdout


def test_verify_checks_the_expected_sha256(
    app: typer.Typer, home: Path, tmp_path: Path
) -> None:
    pkg = packed(app, tmp_path)
    digest = hashlib.sha256(pkg.read_bytes()).hexdigest()
    ok = invoke(app, "verify", pkg, "--sha256", digest, "--policy", "never")
    assert ok.exit_code == 0, ok.output
    assert "not signed" in ok.stdout
    bad = invoke(app, "verify", pkg, "--sha256", "0" * 64, "--policy", "never", "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["error"]["code"] == "integrity.checksum"


def test_verify_reports_a_tampered_package(
    app: typer.Typer, home: Path, tmp_path: Path
) -> None:
    pkg = packed(app, tmp_path)
    bad = rewrite(pkg, tmp_path / "bad.zip", change={"README.md": b"changed"})
    result = invoke(app, "verify", bad, "--policy", "never")
    assert result.exit_code == 1
    assert "archive.integrity" in result.stderr


def test_unless_allowlisted_policy_from_the_command_line(
    app: typer.Typer, home: Path, tmp_path: Path
) -> None:
    pkg = packed(app, tmp_path)
    assert invoke(app, "verify", pkg, "--policy", "unless-allowlisted").exit_code == 1
    allowed = invoke(app, "verify", pkg, "--policy", "unless-allowlisted", "--allow",
                     "notify-slack")
    assert allowed.exit_code == 0, allowed.output
    bad = invoke(app, "verify", pkg, "--policy", "sometimes")
    assert bad.exit_code == 1 and "settings.invalid" in bad.stderr


def test_verify_applies_the_homes_policy_like_install(
    app: typer.Typer, home: Path, tmp_path: Path
) -> None:
    pkg = packed(app, tmp_path)
    home.mkdir(parents=True, exist_ok=True)
    # The same settings install reads: unsigned packages allowed for this id only.
    (home / "plughost.toml").write_text('require_signature = "unless-allowlisted"\n'
                                        'signature_allowlist = ["notify-slack"]\n')
    ok = invoke(app, "verify", pkg, "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["signature_required"] is False
    (home / "plughost.toml").write_text('require_signature = "always"\n')
    refused = invoke(app, "verify", pkg)
    assert refused.exit_code == 1 and "signature.missing" in refused.stderr
    # an explicit --policy still wins
    assert invoke(app, "verify", pkg, "--policy", "never").exit_code == 0


def test_pack_errors_are_printed_with_their_code(
    app: typer.Typer, home: Path, tmp_path: Path
) -> None:
    src = make_plugin(tmp_path / "src")
    (src / "link").symlink_to(src / "README.md")
    result = invoke(app, "pack", src, "-o", tmp_path / "out.zip")
    assert result.exit_code == 1
    assert "package.symlink" in result.stderr and "link" in result.stderr
    assert not (tmp_path / "out.zip").exists()


def test_keygen_refuses_to_overwrite_and_trust_errors_have_codes(
    app: typer.Typer, home: Path, tmp_path: Path
) -> None:
    assert invoke(app, "keygen", "--out", tmp_path / "k").exit_code == 0
    again = invoke(app, "keygen", "--out", tmp_path / "k")
    assert again.exit_code == 1 and "key.exists" in again.stderr
    private = tmp_path / "k" / "signing.key"
    wrong = invoke(app, "trust", "add", private, "--name", "x")
    assert wrong.exit_code == 1 and "key.invalid" in wrong.stderr
    unknown = invoke(app, "trust", "revoke", "0123456789abcdef")
    assert unknown.exit_code == 1 and "trust.unknown_key" in unknown.stderr
    assert "No trusted keys" in invoke(app, "trust", "list").stdout


def test_error_messages_are_not_eaten_as_markup(app: typer.Typer, home: Path,
                                                tmp_path: Path) -> None:
    result = invoke(app, "verify", packed(app, tmp_path))
    assert result.exit_code == 1
    assert "[notify-slack]" in result.stderr  # the plugin id prefix survives Rich
