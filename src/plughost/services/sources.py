"""Where packages come from: a local file or an https URL, fetched into a staging directory.

Both sources are copied into the operation's private staging directory while their SHA-256 is
computed and their size capped, so what is verified is exactly what is extracted later (the
original file may change meanwhile; the staged copy cannot).

A URL is parsed and checked by one function, :func:`parse_package_url`, before anything else
happens to it — the API calls it when the request arrives, and the download calls it again for
every redirect target. A URL that cannot be a package URL (unparsable, a port that is not
1-65535, no host, a host name that is not a valid DNS name, control characters or spaces,
longer than 2,048 characters) is refused with ``download.url`` naming the problem.

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
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from plughost.errors import DownloadError, ExtraNotInstalled, InstallError, ScopeError
from plughost.security.addresses import IPAddress, allowance_opens, is_public_address, unwrap
from plughost.security.archive import DEFAULT_LIMITS, ArchiveLimits, inflate
from plughost.security.scopes import parse_scope, split_net_target

__all__ = [
    "MAX_URL_LENGTH",
    "FetchPolicy",
    "Fetched",
    "PackageUrl",
    "Progress",
    "fetch",
    "is_public_address",
    "is_url",
    "parse_package_url",
]

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``: stage is ``download``, ``verify``, ``extract`` or
#: ``store``; ``total`` is ``None`` when unknown.
Progress = Callable[[str, int, int | None], None]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 256 * 1024
#: Longest package URL accepted (browsers and proxies commonly stop near 2,000 characters).
MAX_URL_LENGTH = 2048
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Limits and allowances for fetching packages.

    :param max_size: largest accepted package in bytes (settings.max_plugin_size).
    :param timeout: seconds for the whole download (connect + every read).
    :param max_redirects: redirect hops followed before giving up.
    :param allow_private: also allow loopback/private/link-local targets (trusted networks,
        tests against a local server). Off by default.
    :param allow_http: also allow plain ``http://`` (tests, trusted networks). Off by default.
    :param allowed_addresses: individual non-public ``ADDRESS[:PORT]`` allowed even when
        ``allow_private`` is off (an internal mirror at ``10.0.0.5`` or ``10.0.0.5:8443``); an
        entry without a port allows only the scheme's default port (443, or 80 for http). The
        port is honoured on the first request and on every redirect hop; redirects elsewhere
        are refused.
    """

    max_size: int
    timeout: float = 120.0
    max_redirects: int = 5
    allow_private: bool = False
    allow_http: bool = False
    allowed_addresses: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # An entry that is not an address (a name, a bad port) would silently allow nothing.
        for entry in self.allowed_addresses:
            problem = _allowance_problem(entry)
            if problem:
                raise DownloadError(
                    f"the allowed private address {entry!r} {problem}; write an IP address "
                    "with an optional port: 10.0.0.5, 10.0.0.5:8443, [fd00::5]:443",
                    code="download.address", details={"entry": entry})


def _allowance_problem(entry: object) -> str:
    if not isinstance(entry, str) or not entry.strip():
        return "is empty"
    try:
        scope = parse_scope(f"net:{entry.strip()}")
    except ScopeError as exc:
        return f"does not parse ({exc.problems[0].message.split(': ', 1)[-1]})"
    if scope.pattern != "localhost":
        try:
            ipaddress.ip_address(scope.pattern)
        except ValueError:
            return "is a host name, and only an address can be allowed (names resolve anywhere)"
    return ""


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


@dataclass(frozen=True, slots=True)
class PackageUrl:
    """A URL that :func:`parse_package_url` accepted."""

    url: str
    scheme: str
    """``https`` or ``http``, lower case."""
    host: str
    """The host name or address literal (no brackets), as written (case folded by urllib)."""
    port: int
    """The port, or the scheme's default."""
    netloc: str
    """``host[:port]`` as written, without user info (the ``Host`` header)."""


def _bad_url(url: str, problem: str, what_to_do: str = "") -> DownloadError:
    shown = url if len(url) <= 200 else url[:200] + "..."
    return DownloadError(
        f"the package URL {shown!r} is not valid: {problem}. "
        + (what_to_do or "Give the https:// URL of a package, e.g. "
                         "https://example.com/plugins/hello-1.0.0.zip"),
        code="download.url", details={"url": shown, "problem": problem})


def _check_host(url: str, host: str) -> None:
    if not host:
        raise _bad_url(url, "it names no host")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return  # an address literal (IPv6 ones come without their brackets)
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise _bad_url(url, f"the host name {host!r} is not a valid international "
                                "domain name") from None
    if len(name) > 253:
        raise _bad_url(url, "the host name is longer than 253 characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise _bad_url(url, f"the host name {host!r} has an invalid part {label!r} "
                                "(letters, digits and hyphens, 1-63 of them, between dots)")


def parse_package_url(url: str, *, allow_http: bool = False) -> PackageUrl:
    """Parse and check a package URL without touching the network (see the module doc).

    :raises DownloadError: ``download.url`` when it cannot be a package URL, naming why;
        ``download.scheme`` when it is not https (or http with ``allow_http``).
    """
    if len(url) > MAX_URL_LENGTH:
        raise _bad_url(url, f"it is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _bad_url(url, "it contains spaces or control characters",
                       "Percent-encode them (a space is %20) or check where the URL came from.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        problem = str(exc)
        if "Port" in problem:
            problem = "its port is not a number from 1 to 65535"
        elif "IPv6" in problem:
            problem = "its [IPv6 address] is malformed"
        raise _bad_url(url, problem) from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http):
        raise DownloadError(
            f"refusing {url}: packages are fetched over https only",
            code="download.scheme", details={"url": url})
    if port == 0:
        raise _bad_url(url, "its port is not a number from 1 to 65535")
    host = parts.hostname or ""
    _check_host(url, host)
    netloc = parts.netloc.rpartition("@")[2]
    return PackageUrl(url, scheme, host, port or (443 if scheme == "https" else 80), netloc)


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
        scheme = urlsplit(url).scheme
        allowances = [split_net_target(a) for a in policy.allowed_addresses]
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            if not is_public_address(ip) and not any(
                    allowance_opens(h, p, ip, port, scheme=scheme) for h, p in allowances):
                via = f" ({host} resolves to it)" if host != text else ""
                raise DownloadError(
                    f"refusing to fetch {url}: {text} is a {_describe(ip)} address{via}. "
                    "Packages are fetched only from public addresses; an operator can allow "
                    "a private address and port explicitly (allow_private_urls, e.g. "
                    f"{_bracket(str(unwrap(ip)))}:{port}).",
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
            try:
                target = parse_package_url(current, allow_http=policy.allow_http)
            except DownloadError as exc:
                if current == url:
                    raise
                raise DownloadError(f"{url} redirected to a URL that is refused: {exc.message}",
                                    code="download.redirect",
                                    details={"url": url, "redirect": current[:200]}) from None
            scheme, host, port = target.scheme, target.host, target.port
            address = _resolve_checked(host, port, policy, current)
            try:
                pinned = httpx.URL(current).copy_with(host=address)
            except (httpx.InvalidURL, ValueError) as exc:
                raise _bad_url(current, str(exc)) from None
            # A package is a zip: ask for it as it is. A server that compresses it anyway is
            # decoded by the archive module's bounded inflater, never by httpx (which would
            # inflate each network chunk whole: a gzip bomb of a few KiB -> hundreds of MiB).
            headers = {"Host": target.netloc, "User-Agent": "plughost",
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
                    try:
                        current = str(httpx.URL(current).join(location))
                    except (httpx.InvalidURL, ValueError, UnicodeError):
                        raise DownloadError(
                            f"{current} redirected to {location[:200]!r}, which is not a URL",
                            code="download.redirect") from None
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


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _ChunkReader:
    """``read(n)`` over an iterator of byte chunks (what :func:`_copy` expects)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._iter = chunks

    def read(self, _n: int = -1) -> bytes:
        for chunk in self._iter:
            if chunk:
                return chunk
        return b""
