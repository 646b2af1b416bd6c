"""Where packages come from: a local file or an https URL, fetched into a staging directory.

Both sources are copied into the operation's private staging directory while their SHA-256 is
computed and their size capped, so what is verified is exactly what is extracted later (the
original file may change meanwhile; the staged copy cannot).

URLs are fetched with httpx, streaming, under a size cap and an overall deadline. Every hop —
the first request and each redirect — is checked before connecting: the scheme must be
``https`` (``http`` only when the operator allows it), and **every** address the host name
resolves to must be publicly routable: loopback, private, link-local (``169.254.169.254``
cloud metadata), shared, reserved, multicast and unspecified addresses are refused, also when
written as IPv4-mapped IPv6, 6to4 or NAT64, unless the operator allows private targets. The
connection then goes to the address that was checked (the URL host is pinned to it, with the
original ``Host`` header and TLS SNI), so DNS cannot answer differently between check and use.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from plughost.errors import DownloadError, ExtraNotInstalled, InstallError
from plughost.security.addresses import IPAddress, is_public_address, unwrap
from plughost.security.archive import DEFAULT_LIMITS, ArchiveLimits, inflate

__all__ = [
    "FetchPolicy",
    "Fetched",
    "Progress",
    "fetch",
    "is_public_address",
    "is_url",
]

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``: stage is ``download``, ``verify``, ``extract`` or
#: ``store``; ``total`` is ``None`` when unknown.
Progress = Callable[[str, int, int | None], None]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Limits and allowances for fetching packages.

    :param max_size: largest accepted package in bytes (settings.max_plugin_size).
    :param timeout: seconds for the whole download (connect + every read).
    :param max_redirects: redirect hops followed before giving up.
    :param allow_private: also allow loopback/private/link-local targets (trusted networks,
        tests against a local server). Off by default.
    :param allow_http: also allow plain ``http://`` (tests, trusted networks). Off by default.
    :param allowed_addresses: individual non-public addresses allowed even when
        ``allow_private`` is off (an internal mirror at ``10.0.0.5``); redirects elsewhere are
        still refused.
    """

    max_size: int
    timeout: float = 120.0
    max_redirects: int = 5
    allow_private: bool = False
    allow_http: bool = False
    allowed_addresses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Fetched:
    """A package copied into staging."""

    path: Path
    sha256: str
    size: int
    source: str
    """``local`` or ``url``."""
    source_uri: str


def is_url(source: str | Path) -> bool:
    """True when ``source`` looks like a URL (has a ``scheme://``) rather than a file path."""
    return isinstance(source, str) and "://" in source


def _describe(ip: IPAddress) -> str:
    inner = unwrap(ip)
    for attr, name in (("is_loopback", "loopback"), ("is_link_local", "link-local (metadata)"),
                       ("is_private", "private"), ("is_multicast", "multicast"),
                       ("is_unspecified", "unspecified"), ("is_reserved", "reserved")):
        if getattr(inner, attr):
            return name
    return "non-public"


def fetch(source: str | Path, dest: Path, policy: FetchPolicy,
          progress: Progress | None = None, *,
          limits: ArchiveLimits = DEFAULT_LIMITS) -> Fetched:
    """Copy ``source`` (a file path or an https URL) to ``dest``, hashing and capping its size.

    A download the server sends compressed (``Content-Encoding: gzip``) is decoded under
    ``limits`` (size and ratio, see :func:`~plughost.security.archive.inflate`).

    :raises InstallError: ``install.source`` (no such file), ``install.too_large``.
    :raises DownloadError: for URLs refused or failed (see the module doc).
    """
    if is_url(source):
        return _download(str(source), dest, policy, progress, limits)
    path = Path(source).expanduser()
    if not path.is_file():
        raise InstallError(
            f"{path} is not a package file; give the path of a .zip built by `plughost pack` "
            "or an https:// URL",
            code="install.source", details={"source": str(path)})
    size = path.stat().st_size
    if size > policy.max_size:
        raise _too_large(str(path), size, policy.max_size, "install.too_large")
    with path.open("rb") as src:
        digest, copied = _copy(src, dest, policy.max_size, size, progress, str(path),
                               "install.too_large")
    return Fetched(dest, digest, copied, "local", str(path.resolve()))


def _too_large(what: str, size: int | None, limit: int, code: str) -> InstallError:
    cls = DownloadError if code.startswith("download.") else InstallError
    shown = f"{size} bytes" if size is not None else "more than that"
    return cls(
        f"{what} is {shown}; the limit (max_plugin_size) is {limit} bytes. Nothing was "
        "installed; raise max_plugin_size if the package is legitimate.",
        code=code, details={"size": size, "max_size": limit})


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def _copy(src: _Readable, dest: Path, limit: int, total: int | None,
          progress: Progress | None, what: str, code: str,
          deadline: float | None = None) -> tuple[str, int]:
    h = hashlib.sha256()
    done = 0
    with dest.open("xb") as out:
        while chunk := src.read(_CHUNK):
            done += len(chunk)
            if done > limit:
                raise _too_large(what, None, limit, code)
            h.update(chunk)
            out.write(chunk)
            if progress is not None:
                progress("download", done, total)
            if deadline is not None and time.monotonic() > deadline:
                raise DownloadError(f"downloading {what} took too long; nothing was installed",
                                    code="download.timeout")
    return h.hexdigest(), done


def _resolve_checked(host: str, port: int, policy: FetchPolicy, url: str) -> str:
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise DownloadError(f"cannot resolve {host!r} ({exc}); check the URL {url}",
                                code="download.failed", details={"host": host}) from None
        addresses = list(dict.fromkeys(str(i[4][0]) for i in infos))
    if not addresses:
        raise DownloadError(f"{host!r} resolves to no address", code="download.failed")
    if not policy.allow_private:
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            if not is_public_address(ip) and str(ip) not in policy.allowed_addresses \
                    and str(unwrap(ip)) not in policy.allowed_addresses:
                via = f" ({host} resolves to it)" if host != text else ""
                raise DownloadError(
                    f"refusing to fetch {url}: {text} is a {_describe(ip)} address{via}. "
                    "Packages are fetched only from public addresses; an operator can allow "
                    "private targets explicitly (allow_private_urls).",
                    code="download.address", details={"host": host, "address": text})
    return addresses[0]


def _download(url: str, dest: Path, policy: FetchPolicy, progress: Progress | None,
              limits: ArchiveLimits = DEFAULT_LIMITS) -> Fetched:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ExtraNotInstalled("Installing from a URL", "http", "httpx") from exc

    deadline = time.monotonic() + policy.timeout
    current = url
    with httpx.Client(timeout=httpx.Timeout(min(policy.timeout, 30.0)),
                      follow_redirects=False, trust_env=False) as client:
        for _hop in range(policy.max_redirects + 1):
            parts = urlsplit(current)
            scheme = parts.scheme.lower()
            if scheme != "https" and not (scheme == "http" and policy.allow_http):
                raise DownloadError(
                    f"refusing {current}: packages are fetched over https only"
                    + (" (the first URL or a redirect named another scheme)" if scheme else ""),
                    code="download.scheme" if current == url else "download.redirect",
                    details={"url": current})
            host = parts.hostname or ""
            port = parts.port or (443 if scheme == "https" else 80)
            address = _resolve_checked(host, port, policy, current)
            pinned = httpx.URL(current).copy_with(host=address)
            # A package is a zip: ask for it as it is. A server that compresses it anyway is
            # decoded by the archive module's bounded inflater, never by httpx (which would
            # inflate each network chunk whole: a gzip bomb of a few KiB -> hundreds of MiB).
            headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": "plughost",
                       "Accept-Encoding": "identity"}
            extensions: dict[str, Any] = {"sni_hostname": host} if scheme == "https" else {}
            request = client.build_request("GET", pinned, headers=headers,
                                           extensions=extensions)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise DownloadError(f"{current} did not answer in time; nothing was installed",
                                    code="download.timeout") from None
            except httpx.HTTPError as exc:
                raise DownloadError(f"cannot fetch {current}: {exc}", code="download.failed",
                                    details={"url": current}) from None
            try:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise DownloadError(f"{current} redirected without a Location",
                                            code="download.redirect")
                    current = str(httpx.URL(current).join(location))
                    continue
                if response.status_code != 200:
                    raise DownloadError(
                        f"{current} answered HTTP {response.status_code}; check the URL",
                        code="download.status", details={"status": response.status_code})
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                if total is not None and total > policy.max_size:
                    raise _too_large(url, total, policy.max_size, "download.too_large")
                try:
                    body = inflate(response.iter_raw(_CHUNK),
                                   response.headers.get("content-encoding", "identity"),
                                   limits, max_size=policy.max_size + 1, what=url)
                    digest, size = _copy(_ChunkReader(body), dest, policy.max_size,
                                         total, progress, url, "download.too_large", deadline)
                except httpx.TimeoutException:
                    raise DownloadError(f"{current} stopped sending; nothing was installed",
                                        code="download.timeout") from None
                except httpx.HTTPError as exc:
                    raise DownloadError(f"downloading {current} failed: {exc}",
                                        code="download.failed") from None
                return Fetched(dest, digest, size, "url", url)
            finally:
                response.close()
    raise DownloadError(f"{url} redirected more than {policy.max_redirects} times",
                        code="download.redirect")


class _ChunkReader:
    """``read(n)`` over an iterator of byte chunks (what :func:`_copy` expects)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._iter = chunks

    def read(self, _n: int = -1) -> bytes:
        for chunk in self._iter:
            if chunk:
                return chunk
        return b""
