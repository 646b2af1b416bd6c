"""The client side: the marketplaces a host reads, each fetched through TUF's client workflow.

Every byte read from a marketplace — metadata, the index, packages — goes through
``tuf.ngclient.Updater``: roots are walked version by version from the root the operator gave
(``plughost market add NAME URL --root root.json``), then ``timestamp``, ``snapshot`` and
``targets`` are checked for signatures against each role's threshold, for versions that never
go back, for expiry, and for lengths and hashes that match what the signing role listed. A
refused check raises :class:`~plughost.errors.MarketError` with its own code (see the error
tree) and leaves the local copy exactly as it was: each refresh works on a copy of the trusted
metadata and swaps it in (one atomic symlink replace) only when every check passed.

On disk, per marketplace::

    <home>/market/sources.json                 names, URLs, priorities
    <home>/market/<name>/trusted_root.json     the root the operator gave (the trust anchor)
    <home>/market/<name>/metadata -> meta-XXXX  the last good metadata (ngclient's layout)
    <home>/market/<name>/targets/<sha256>.<file>   verified targets (index, packages): a cache

Offline: when the repository cannot be reached, the last good metadata is used as long as
none of it has expired (it is checked again, signatures and all); past its expiry the
marketplace is refused with ``market.expired``.

Several marketplaces: each has a priority (lower first). A plugin id is taken from the first
marketplace that lists it and never from a later one, so a second repository cannot shadow a
plugin of the first (dependency confusion).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plughost.errors import MarketError
from plughost.services.market._files import atomic_write, locked
from plughost.services.market.index import (
    INDEX_TARGET,
    Index,
    IndexVersion,
    iso,
    parse_index,
)

__all__ = ["MarketClient", "MarketSource", "RefreshResult", "tuf_error"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_SOURCES = "sources.json"
#: The index of a large marketplace is bigger than ngclient's default targets limit.
_TARGETS_MAX = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MarketSource:
    """A marketplace this host reads."""

    name: str
    url: str
    priority: int = 100
    enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "priority": self.priority,
                "enabled": self.enabled}


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh of one marketplace found."""

    name: str
    offline: bool
    timestamp_version: int
    targets_version: int
    changed: bool
    expires: str
    error: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "offline": self.offline,
                "timestamp_version": self.timestamp_version,
                "targets_version": self.targets_version, "changed": self.changed,
                "expires": self.expires, "error": self.error}


def tuf_error(exc: BaseException, source: str, *, target: str = "") -> MarketError:
    """The :class:`MarketError` for an exception raised by python-tuf (one mapping for all)."""
    from tuf.api import exceptions as tx

    text = str(exc) or type(exc).__name__
    unchanged = "Nothing was changed locally; the last good metadata is kept."
    details: dict[str, Any] = {"source": source, "reason": text[:300]}
    if isinstance(exc, tx.ExpiredMetadataError):
        return MarketError(
            f"marketplace {source!r}: {text}. Either the repository is frozen (an attacker "
            "replays old metadata) or its publisher has not re-signed it (`plughost market "
            f"timestamp REPO`). {unchanged}", code="market.expired", details=details)
    if isinstance(exc, tx.UnsignedMetadataError):
        return MarketError(
            f"marketplace {source!r}: {text} — the metadata does not carry enough valid "
            "signatures from the keys the trusted root names (threshold not met). "
            f"{unchanged}", code="market.signature", details=details)
    if isinstance(exc, tx.BadVersionNumberError):
        mixed = text.startswith("Expected snapshot version") or re.match(
            r"Expected \S+ v\d", text)
        if mixed:
            return MarketError(
                f"marketplace {source!r}: {text} — the metadata files do not belong to one "
                f"repository state (mix-and-match). {unchanged}",
                code="market.mix_and_match", details=details)
        if text.startswith("Expected root version"):
            return MarketError(f"marketplace {source!r}: {text}. {unchanged}",
                               code="market.invalid", details=details)
        return MarketError(
            f"marketplace {source!r}: {text} — a version older than one already trusted "
            f"(rollback). {unchanged}", code="market.rollback", details=details)
    if isinstance(exc, tx.LengthOrHashMismatchError):
        if target:
            return MarketError(
                f"marketplace {source!r}: the file {target} does not match the length and "
                "hash its signed metadata lists (tampered or damaged); it was discarded.",
                code="market.tampered", details={**details, "target": target})
        return MarketError(
            f"marketplace {source!r}: {text} — a metadata file differs from the one the "
            f"signing role listed (mix-and-match or tampering). {unchanged}",
            code="market.mix_and_match", details=details)
    if isinstance(exc, tx.DownloadError):
        return MarketError(
            f"marketplace {source!r} cannot be reached or answered wrongly ({text}); check "
            "its URL and that it is served.", code="market.unreachable", details=details)
    return MarketError(f"marketplace {source!r}: invalid metadata ({text}). {unchanged}",
                       code="market.invalid", details=details)


class MarketClient:
    """The marketplaces of one home (see the module doc).

    :param home: the plughost home; state lives in ``<home>/market``.
    :param fetcher: a ``tuf.ngclient.FetcherInterface`` (default: urllib3).
    :param max_package_size: packages larger than this are refused before download.
    """

    def __init__(self, home: Path, *, fetcher: Any = None,
                 max_package_size: int | None = None) -> None:
        self.dir = Path(home) / "market"
        self._fetcher = fetcher
        self._max_package = max_package_size
        self._indexes: dict[str, tuple[str, Index]] = {}

    # ------------------------------------------------------------------ sources

    def sources(self) -> list[MarketSource]:
        """Configured marketplaces, by priority then name."""
        try:
            raw = json.loads((self.dir / _SOURCES).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise MarketError(f"{self.dir / _SOURCES} is unreadable ({exc}); fix or remove it",
                              code="market.source") from None
        out = [MarketSource(str(s["name"]), str(s["url"]), int(s.get("priority", 100)),
                            bool(s.get("enabled", True))) for s in raw.get("sources", [])]
        return sorted(out, key=lambda s: (s.priority, s.name))

    def source(self, name: str) -> MarketSource:
        for s in self.sources():
            if s.name == name:
                return s
        raise MarketError(f"no marketplace named {name!r}; `plughost market list` shows them",
                          code="market.not_found", details={"source": name})

    def _save(self, sources: Sequence[MarketSource]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / _SOURCES, (json.dumps(
            {"sources": [s.to_dict() for s in sources]}, indent=2) + "\n").encode())

    def add(self, name: str, url: str, root: bytes, *, priority: int = 100) -> MarketSource:
        """Add a marketplace: ``root`` is its ``root.json``, obtained out of band (it is the
        trust anchor: every later metadata must chain to it).

        :raises MarketError: ``market.source`` (bad name, URL or root, name taken).
        """
        if not _NAME.match(name):
            raise MarketError(f"{name!r} is not a valid marketplace name: 1-40 lower-case "
                              "letters, digits, - and _", code="market.source")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise MarketError(f"{url!r} is not an http(s) URL of a marketplace (the folder "
                              "that holds metadata/ and targets/)", code="market.source")
        from tuf.api.exceptions import RepositoryError
        from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet
        from tuf.ngclient.config import EnvelopeType

        try:
            TrustedMetadataSet(root, EnvelopeType.METADATA)
        except (RepositoryError, ValueError, TypeError) as exc:
            raise MarketError(f"the root metadata given for {name!r} is not a valid, "
                              f"self-signed TUF root ({exc}); use the root.json the "
                              "publisher's `plughost market init` wrote",
                              code="market.source") from None
        with self._locked_sources():
            existing = self.sources()
            if any(s.name == name for s in existing):
                raise MarketError(f"a marketplace named {name!r} exists; remove it first",
                                  code="market.source")
            folder = self.dir / name
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            (folder / "trusted_root.json").write_bytes(root)
            source = MarketSource(name, url.rstrip("/"), priority)
            self._save([*existing, source])
        return source

    def remove(self, name: str) -> None:
        with self._locked_sources():
            existing = self.sources()
            if not any(s.name == name for s in existing):
                raise MarketError(f"no marketplace named {name!r}", code="market.not_found")
            self._save([s for s in existing if s.name != name])
            shutil.rmtree(self.dir / name, ignore_errors=True)
        self._indexes.pop(name, None)

    @contextlib.contextmanager
    def _locked_sources(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with locked(self.dir / ".lock"):
            yield

    # ------------------------------------------------------------------ TUF

    def _updater(self, source: MarketSource, metadata_dir: Path) -> Any:
        from tuf.ngclient.config import UpdaterConfig
        from tuf.ngclient.updater import Updater

        folder = self.dir / source.name
        return Updater(
            str(metadata_dir), f"{source.url}/metadata/", str(folder / "targets"),
            f"{source.url}/targets/", fetcher=self._fetcher,
            config=UpdaterConfig(targets_max_length=_TARGETS_MAX,
                                 app_user_agent="plughost"),
            bootstrap=(folder / "trusted_root.json").read_bytes())

    def refresh(self, name: str, *, allow_offline: bool = True) -> RefreshResult:
        """Fetch new metadata of one marketplace through TUF (see the module doc).

        :raises MarketError: a refused check (its code says which); ``market.unreachable``
            when offline with no usable last good metadata.
        """
        source = self.source(name)
        folder = self.dir / name
        from tuf.api import exceptions as tx

        with locked(folder / ".lock"):
            link = folder / "metadata"
            current = link.resolve() if link.is_symlink() else None
            work = folder / f"meta-{secrets.token_hex(6)}"
            if current is not None and current.is_dir():
                shutil.copytree(current, work, symlinks=True)
            else:
                work.mkdir()
            try:
                updater = self._updater(source, work)
                updater.refresh()
                trusted = updater._trusted_set
                index_path = self._fetch_target(updater, source.name, INDEX_TARGET)
            except BaseException as exc:
                shutil.rmtree(work, ignore_errors=True)
                if not isinstance(exc, (tx.RepositoryError, tx.DownloadError, OSError)):
                    raise
                if isinstance(exc, OSError):
                    raise MarketError(f"marketplace {name!r}: cannot write its local copy "
                                      f"({exc})", code="market.source") from None
                error = tuf_error(exc, name)
                if error.code == "market.unreachable" and allow_offline and current:
                    return self._offline(source, error)
                raise error from None
            changed = current is None or _differs(current, work)
            if changed:
                _swap_symlink(link, work)
                if current is not None:
                    shutil.rmtree(current, ignore_errors=True)
            else:
                shutil.rmtree(work, ignore_errors=True)
            self._remember_index(name, index_path)
            return RefreshResult(name, False, int(trusted.timestamp.version),
                                 int(trusted.targets.version), changed,
                                 iso(trusted.timestamp.expires))

    def _offline(self, source: MarketSource, error: MarketError) -> RefreshResult:
        trusted = self._trusted_offline(source)
        log.warning("marketplace %s is unreachable; using its last good metadata (valid "
                    "until %s)", source.name, iso(trusted.timestamp.expires))
        return RefreshResult(source.name, True, int(trusted.timestamp.version),
                             int(trusted.targets.version), False,
                             iso(trusted.timestamp.expires), error.to_dict())

    def _trusted_offline(self, source: MarketSource) -> Any:
        """The last good metadata, verified again from disk (chain, signatures, expiry)."""
        from tuf.api import exceptions as tx
        from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet
        from tuf.ngclient.config import EnvelopeType

        folder = self.dir / source.name
        meta = folder / "metadata"
        try:
            trusted = TrustedMetadataSet((folder / "trusted_root.json").read_bytes(),
                                         EnvelopeType.METADATA)
            n = trusted.root.version + 1
            while (meta / "root_history" / f"{n}.root.json").is_file():
                trusted.update_root((meta / "root_history" / f"{n}.root.json").read_bytes())
                n += 1
            trusted.update_timestamp((meta / "timestamp.json").read_bytes())
            trusted.update_snapshot((meta / "snapshot.json").read_bytes(), trusted=True)
            trusted.update_targets((meta / "targets.json").read_bytes())
        except FileNotFoundError:
            raise MarketError(f"marketplace {source.name!r} cannot be reached and was never "
                              "read successfully; check its URL and that it is served",
                              code="market.unreachable",
                              details={"source": source.name}) from None
        except (tx.RepositoryError, OSError, ValueError) as exc:
            if isinstance(exc, tx.ExpiredMetadataError):
                raise MarketError(
                    f"marketplace {source.name!r} cannot be reached and its last good "
                    f"metadata has expired ({exc}); reconnect to refresh it",
                    code="market.expired", details={"source": source.name}) from None
            raise tuf_error(exc, source.name) from None
        return trusted

    def _fetch_target(self, updater: Any, source: str, target: str,
                      dest: Path | None = None) -> Path:
        from tuf.api import exceptions as tx

        info = updater.get_targetinfo(target)
        if info is None:
            raise MarketError(f"marketplace {source!r} has no file {target}",
                              code="market.not_found", details={"target": target})
        if self._max_package is not None and target != INDEX_TARGET \
                and info.length > self._max_package:
            raise MarketError(
                f"{target} from {source!r} is {info.length} bytes; the limit "
                f"(max_plugin_size) is {self._max_package}", code="market.invalid",
                details={"target": target, "size": info.length})
        folder = self.dir / source / "targets"
        folder.mkdir(parents=True, exist_ok=True)
        path = dest or folder / f"{info.hashes['sha256']}.{target.rsplit('/', 1)[-1]}"
        cached = updater.find_cached_target(info, str(path))
        if cached:
            return Path(cached)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            updater.download_target(info, str(tmp))
            os.replace(tmp, path)
        except tx.LengthOrHashMismatchError as exc:
            raise tuf_error(exc, source, target=target) from None
        except tx.DownloadError as exc:
            if isinstance(exc, tx.DownloadLengthMismatchError):
                raise tuf_error(tx.LengthOrHashMismatchError(str(exc)), source,
                                target=target) from None
            raise tuf_error(exc, source) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return path

    # ------------------------------------------------------------------ reading

    def _remember_index(self, name: str, path: Path) -> None:
        digest = path.name.split(".", 1)[0]
        cached = self._indexes.get(name)
        if cached is None or cached[0] != digest:
            self._indexes[name] = (digest, parse_index(path.read_bytes()))

    def index(self, name: str, *, refresh: bool = False) -> Index:
        """The index of one marketplace: from memory, else the last good metadata on disk
        (verified), else refreshed from the network."""
        if refresh or name not in self._indexes:
            if refresh or not (self.dir / name / "metadata").is_symlink():
                self.refresh(name)
            else:
                self._load_local_index(name)
        return self._indexes[name][1]

    def _load_local_index(self, name: str) -> None:
        source = self.source(name)
        try:
            trusted = self._trusted_offline(source)
        except MarketError as exc:
            if exc.code == "market.expired":
                self.refresh(name)  # the local copy is stale: fetch (or refuse) anew
                return
            raise
        info = trusted.targets.targets.get(INDEX_TARGET)
        if info is None:
            raise MarketError(f"marketplace {name!r} lists no index", code="market.invalid")
        path = self.dir / name / "targets" / f"{info.hashes['sha256']}.{INDEX_TARGET}"
        try:
            with path.open("rb") as f:
                info.verify_length_and_hashes(f)
        except Exception:
            self.refresh(name)
            return
        self._remember_index(name, path)

    def indexes(self, *, refresh: bool = False) -> list[tuple[str, Index]]:
        """``(name, index)`` of every enabled marketplace, by priority."""
        return [(s.name, self.index(s.name, refresh=refresh))
                for s in self.sources() if s.enabled]

    def download(self, source: str, version: IndexVersion, dest: Path | None = None) -> Path:
        """Fetch one package through TUF (cached by hash); return its local path."""
        src = self.source(source)
        folder = self.dir / source
        from tuf.api import exceptions as tx

        with locked(folder / ".lock"):
            meta = (folder / "metadata").resolve()
            try:
                updater = self._updater(src, meta)
                # Load the last good metadata without the network: the package must be
                # listed by the same targets metadata the index came from.
                trusted = self._trusted_offline(src)
                updater._trusted_set = trusted
                info = trusted.targets.targets.get(version.target)
                if info is None or info.hashes.get("sha256") != version.sha256:
                    raise MarketError(
                        f"{version.target} is not listed with that hash by {source!r}'s "
                        "signed metadata; refresh the marketplace and try again",
                        code="market.tampered", details={"target": version.target})
                return self._fetch_target(updater, source, version.target, dest)
            except tx.RepositoryError as exc:
                raise tuf_error(exc, source) from None




def _differs(a: Path, b: Path) -> bool:
    for name in ("timestamp.json", "snapshot.json", "targets.json"):
        pa, pb = a / name, b / name
        if pa.is_file() != pb.is_file():
            return True
        if pa.is_file() and pa.read_bytes() != pb.read_bytes():
            return True
    ra = {p.name for p in (a / "root_history").glob("*.json")}
    rb = {p.name for p in (b / "root_history").glob("*.json")}
    return ra != rb


def _swap_symlink(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}")
    os.symlink(target.name, tmp)
    os.replace(tmp, link)
