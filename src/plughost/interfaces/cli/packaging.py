"""``plughost pack | keygen | sign | verify | trust add|list|revoke``: packages and signatures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plughost.interfaces.cli._common import (
    HomeOption,
    JsonOption,
    console,
    default_home,
    handle_errors,
)
from plughost.interfaces.cli._output import (
    OutputLongOption,
    OutputOption,
    emit,
    emit_page,
    output_format,
)

if TYPE_CHECKING:
    from plughost.security.signing import TrustStore
    from plughost.settings import HostSettings

__all__ = ["register"]

trust_app = typer.Typer(
    name="trust",
    help="The publisher keys whose signatures this host trusts: add, list, revoke.",
    no_args_is_help=True,
)


def _store(home: Path | None) -> TrustStore:
    from plughost.security.signing import TrustStore

    return TrustStore.for_home(home or default_home())


def _settings(home: Path | None) -> HostSettings:
    from plughost.settings import HostSettings

    env = dict(os.environ)
    if home is not None:
        env["PLUGHOST_HOME"] = str(home)
    return HostSettings.from_env(env)


def pack_cmd(
    directory: Annotated[Path, typer.Argument(help="The plugin folder (with plugin.toml or "
                                                   "manifest.json at its root).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file, or a folder for "
                                             "<id>-<version>.zip (default: current folder).",
                                             show_default=False)] = None,
    output: OutputLongOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build a reproducible plugin package (same files, same bytes)."""
    from rich.markup import escape

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        from plughost.security.package import open_package, pack

        path = pack(directory, out)
        with open_package(path) as pkg:
            info = pkg.info
        data = {"path": str(path), "plugin_id": info.plugin_id, "version": info.version,
                "files": len(info.integrity), "size": info.size, "sha256": info.sha256}
        if fmt != "table":
            emit("package", data, fmt)
            return
        console.print(f"[green]packed[/] {escape(info.plugin_id)} {escape(info.version)} → "
                      f"[bold]{escape(str(path))}[/]")
        console.print(f"  {data['files']} files, {info.size} bytes, sha256 {info.sha256}")


def keygen_cmd(
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the key pair "
                                             "(default: <home>/keys).", show_default=False)] = None,
    name: Annotated[str, typer.Option("--name", help="Base name of the key files.")] = "signing",
    home: HomeOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an Ed25519 signing key pair: NAME.key (private, mode 600) and NAME.pub."""
    from rich.markup import escape

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        from plughost.security.signing import key_id, keygen, load_public_key

        folder = out or (home or default_home()) / "keys"
        private, public = keygen(folder, name)
        kid = key_id(load_public_key(public))
        if fmt != "table":
            emit("key", {"key_id": kid, "private_key": str(private), "public_key": str(public),
                         "public_key_file": str(public)}, fmt)
            return
        console.print(f"[green]created[/] key [bold]{kid}[/]")
        console.print(f"  private: {escape(str(private))}  (keep it secret)")
        console.print(f"  public:  {escape(str(public))}  (share it; hosts run "
                      f"`plughost trust add {escape(str(public))} --name NAME`)")


def sign_cmd(
    package: Annotated[Path, typer.Argument(help="The package to sign.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Ed25519 private key (PEM).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the signed package here "
                                             "(default: sign in place).",
                                             show_default=False)] = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign a package: adds PLUGHOST-SIGNATURE.json binding its id, version and files."""
    from rich.markup import escape

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        from plughost.security.package import open_package
        from plughost.security.signing import key_id, load_private_key, sign

        private = load_private_key(key)
        path = sign(package, private, out=out)
        with open_package(path) as pkg:
            info = pkg.info
        kid = key_id(private.public_key())
        if fmt != "table":
            emit("package", {"path": str(path), "plugin_id": info.plugin_id,
                             "version": info.version, "key_id": kid, "sha256": info.sha256,
                             "signed": True}, fmt)
            return
        console.print(f"[green]signed[/] {escape(info.plugin_id)} {escape(info.version)} with "
                      f"key [bold]{kid}[/] → {escape(str(path))}")
        console.print(f"  sha256 {info.sha256}")


def verify_cmd(
    package: Annotated[Path, typer.Argument(help="The package to verify.")],
    sha256: Annotated[str | None, typer.Option("--sha256", help="Expected SHA-256 of the "
                                               "package file.", show_default=False)] = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="require_signature: always, never or unless-allowlisted (default: "
        "the home's setting, the policy install applies).", show_default=False)] = None,
    allow: Annotated[list[str] | None, typer.Option("--allow", help="Plugin id that may be "
                                                    "unsigned under unless-allowlisted; "
                                                    "repeatable.", show_default=False)] = None,
    home: HomeOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a package: checksum, archive safety, every file, and the signature."""
    from rich.markup import escape

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        from plughost.security.signing import SignaturePolicy, verify

        if policy is None:
            # The policy install and update apply: the home's settings (plughost.toml, env).
            pol = SignaturePolicy.from_settings(_settings(home))
            if allow:
                pol = SignaturePolicy(pol.require_signature, pol.allowlist | set(allow))
        else:
            pol = SignaturePolicy(policy, frozenset(allow or ()))  # type: ignore[arg-type]
        result = verify(package, _store(home), pol, expected_sha256=sha256)
        if fmt != "table":
            emit("package", {**result.to_dict(), "path": str(package)}, fmt)
            return
        console.print(f"[green]verified[/] {escape(result.plugin_id)} "
                      f"{escape(result.version)}: archive safe, every file matches its "
                      "integrity entry")
        if result.trusted:
            console.print(f"  signed by [bold]{escape(result.key_name or '')}[/] "
                          f"(key {result.key_id})")
        elif result.signed:
            console.print(f"  [yellow]signed by key {result.key_id}, which is not in the trust "
                          "store[/] (accepted: the policy does not require a signature)")
        else:
            console.print("  [yellow]not signed[/] (accepted: the policy does not require a "
                          "signature)")
        console.print(f"  sha256 {result.package_sha256}")


@trust_app.command("add")
def trust_add(
    keyfile: Annotated[Path, typer.Argument(help="The publisher's public key (PEM, .pub).")],
    name: Annotated[str, typer.Option("--name", "-n", help="A name for this publisher.")],
    home: HomeOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trust a publisher's public key."""
    from rich.markup import escape

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        key = _store(home).add(keyfile, name)
        if fmt != "table":
            emit("key", key.to_dict(), fmt)
            return
        console.print(f"[green]trusted[/] key [bold]{key.key_id}[/] as {escape(key.name)}")


@trust_app.command("list")
def trust_list(home: HomeOption = None, output: OutputOption = None,
               as_json: JsonOption = False) -> None:
    """List trusted keys, revoked ones included."""
    from rich.markup import escape
    from rich.table import Table

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        keys = _store(home).list_keys()
        if fmt != "table":
            emit_page("key", [k.to_dict() for k in keys], fmt, total=len(keys))
            return
        if not keys:
            console.print("No trusted keys. Add one with `plughost trust add KEYFILE --name N`.")
            return
        table = Table("key id", "name", "added", "status")
        for k in keys:
            status = (f"[red]revoked {k.revoked_at}[/]"
                      + (f" ({escape(k.revocation_reason)})" if k.revocation_reason else "")
                      if k.revoked else "[green]trusted[/]")
            table.add_row(k.key_id, escape(k.name), k.added_at, status)
        console.print(table)


@trust_app.command("revoke")
def trust_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (16 hex digits, see `trust list`).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).",
                                               show_default=False)] = None,
    home: HomeOption = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: it stays recorded and its signatures are refused from now on."""
    from rich.markup import escape

    fmt = output_format(output, as_json)
    with handle_errors(as_json=fmt == "json"):
        key = _store(home).revoke(key_id, reason)
        if fmt != "table":
            emit("key", key.to_dict(), fmt)
            return
        console.print(f"[red]revoked[/] key [bold]{key.key_id}[/] ({escape(key.name)}) at "
                      f"{key.revoked_at}")


def register(app: typer.Typer) -> None:
    """Add the packaging and signing commands to ``app``."""
    app.command("pack")(pack_cmd)
    app.command("keygen")(keygen_cmd)
    app.command("sign")(sign_cmd)
    app.command("verify")(verify_cmd)
    app.add_typer(trust_app, name="trust")
