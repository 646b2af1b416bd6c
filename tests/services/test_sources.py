"""Package sources: local files and the address rules for URLs."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import pytest

from plughost.errors import DownloadError, InstallError
from plughost.services.sources import (
    FetchPolicy,
    fetch,
    is_public_address,
    is_url,
    parse_package_url,
)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
    "::ffff:169.254.169.254", "2002:7f00:1::", "64:ff9b::a9fe:a9fe",
])
def test_non_public_addresses_are_recognised(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_is_url_tells_urls_from_paths(tmp_path: Path) -> None:
    assert is_url("https://example.com/p.zip")
    assert not is_url("plugins/p.zip")
    assert not is_url(tmp_path / "p.zip")


def test_local_file_is_copied_and_hashed(tmp_path: Path) -> None:
    src = tmp_path / "p.zip"
    src.write_bytes(b"x" * 1000)
    fetched = fetch(src, tmp_path / "copy.zip", FetchPolicy(max_size=10_000))
    assert fetched.sha256 == hashlib.sha256(b"x" * 1000).hexdigest()
    assert (fetched.size, fetched.source) == (1000, "local")
    assert (tmp_path / "copy.zip").read_bytes() == src.read_bytes()


def test_local_file_over_the_limit_is_refused_before_copying(tmp_path: Path) -> None:
    src = tmp_path / "p.zip"
    src.write_bytes(b"x" * 1000)
    with pytest.raises(InstallError) as info:
        fetch(src, tmp_path / "copy.zip", FetchPolicy(max_size=999))
    assert info.value.code == "install.too_large"
    assert not (tmp_path / "copy.zip").exists()


def test_metadata_address_literal_is_refused_without_connecting(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        fetch("https://169.254.169.254/latest/meta-data/", tmp_path / "x.zip",
              FetchPolicy(max_size=1000))
    assert info.value.code == "download.address"
    assert "link-local" in info.value.message


def test_allowing_one_address_does_not_allow_others(tmp_path: Path) -> None:
    policy = FetchPolicy(max_size=1000, allowed_addresses=frozenset({"10.0.0.5"}))
    with pytest.raises(DownloadError) as info:
        fetch("https://10.0.0.6/p.zip", tmp_path / "x.zip", policy)
    assert info.value.code == "download.address"


@pytest.mark.parametrize("url", ["ftp://example.com/p.zip", "file:///etc/passwd"])
def test_other_schemes_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(DownloadError) as info:
        fetch(url, tmp_path / "x.zip", FetchPolicy(max_size=1000, allow_http=True))
    assert info.value.code == "download.scheme"


def test_an_allowed_private_address_is_allowed_on_its_port_only(tmp_path: Path) -> None:
    from tests.services.hostapi.conftest import LocalServer

    mirror, other = LocalServer(), LocalServer()
    try:
        mirror.redirect_to = f"http://127.0.0.1:{other.port}/p.zip"
        named = FetchPolicy(max_size=1000, allow_http=True,
                            allowed_addresses=frozenset({f"127.0.0.1:{mirror.port}"}))
        fetched = fetch(f"{mirror.url}/p.zip", tmp_path / "ok.zip", named)
        assert fetched.size == len(b"hello ")
        # A redirect to another port on the same allowed address is refused, as is a first
        # request there; an entry without a port allows only the default port (80 for http).
        bare = FetchPolicy(max_size=1000, allow_http=True,
                           allowed_addresses=frozenset({"127.0.0.1"}))
        for url, policy in [(f"{mirror.url}/redirect", named), (f"{other.url}/p.zip", named),
                            (f"{mirror.url}/p.zip", bare), (f"{mirror.url}/redirect", bare)]:
            with pytest.raises(DownloadError) as info:
                fetch(url, tmp_path / "refused.zip", policy)
            assert info.value.code == "download.address", url
            assert not (tmp_path / "refused.zip").exists()
        assert other.requests == []
    finally:
        mirror.close()
        other.close()


@pytest.mark.parametrize("url", [
    "https://127.0.0.1:99999/x.zip", "https://[::1", "https://h:abc/x", "https://h:-1/x",
    "https://ex\x00ample.com/x", "https:///x", "https://" + "a" * 64 + ".com/x",
    "https://a..b/x", "https://exa mple.com/x", "https://[::1]:0/x",
])
def test_malformed_urls_are_refused_before_any_network_use(tmp_path: Path, url: str) -> None:
    with pytest.raises(DownloadError) as info:
        parse_package_url(url)
    assert info.value.code == "download.url"
    assert "not valid" in info.value.message and "https://" in info.value.message
    with pytest.raises(DownloadError) as info:
        fetch(url, tmp_path / "x.zip", FetchPolicy(max_size=1000))
    assert info.value.code == "download.url"
    assert not (tmp_path / "x.zip").exists()


def test_a_valid_url_is_parsed_into_its_parts() -> None:
    parsed = parse_package_url("https://user:pw@Example.COM:8443/p.zip?x=1")
    assert (parsed.scheme, parsed.host, parsed.port, parsed.netloc) == (
        "https", "example.com", 8443, "Example.COM:8443")
    assert parse_package_url("https://[2606:4700::1111]/p.zip").port == 443
    assert parse_package_url("https://bücher.example/p.zip").host == "bücher.example"
    assert parse_package_url("http://example.com/p.zip", allow_http=True).port == 80
    with pytest.raises(DownloadError) as info:
        parse_package_url("http://example.com/p.zip")
    assert info.value.code == "download.scheme"


# -- compressed downloads go through the archive limits -----------------------------------------

class _Served:
    """A local HTTP server answering every GET with ``body`` and ``headers``."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        import http.server
        import threading

        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.accept_encoding = self.headers.get("Accept-Encoding")
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.accept_encoding: str | None = None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/p.zip"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


LOCAL = FetchPolicy(max_size=100 * 1024 * 1024, allow_private=True, allow_http=True)


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def test_a_gzip_encoded_bomb_download_stops_at_the_ratio_in_bounded_memory(
    tmp_path: Path
) -> None:
    import tracemalloc
    import zlib

    from plughost.errors import ArchiveError

    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    step = b"\0" * (1 << 20)
    body = b"".join(c.compress(step) for _ in range(64)) + c.flush()  # 64 KiB -> 64 MiB
    server = _Served(body, {"Content-Encoding": "gzip"})
    try:
        tracemalloc.start()
        try:
            with pytest.raises(ArchiveError) as info:
                fetch(server.url, tmp_path / "x.zip", LOCAL)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        server.close()
    assert info.value.code == "archive.ratio"
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 64 KiB download"
    assert server.accept_encoding == "identity"


def test_a_gzip_encoded_package_is_decoded(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096
    server = _Served(_gzip(payload), {"Content-Encoding": "gzip"})
    try:
        fetched = fetch(server.url, tmp_path / "x.zip", LOCAL)
    finally:
        server.close()
    assert (tmp_path / "x.zip").read_bytes() == payload
    assert fetched.sha256 == hashlib.sha256(payload).hexdigest()


def test_an_unknown_content_encoding_is_refused_by_name(tmp_path: Path) -> None:
    from plughost.errors import ArchiveError

    server = _Served(b"whatever", {"Content-Encoding": "br"})
    try:
        with pytest.raises(ArchiveError) as info:
            fetch(server.url, tmp_path / "x.zip", LOCAL)
    finally:
        server.close()
    assert info.value.code == "archive.unsupported" and "'br'" in info.value.message


@pytest.mark.parametrize("entry", ["mirror.internal", "10.0.0.5:abc", "10.0.0.5:99999", "",
                                   "::1", "*"])
def test_an_allowed_address_that_is_not_an_address_is_refused_at_once(entry: str) -> None:
    with pytest.raises(DownloadError) as info:
        FetchPolicy(max_size=1000, allowed_addresses=frozenset({entry}))
    assert info.value.code == "download.address" and "10.0.0.5:8443" in info.value.message


def test_allowed_addresses_take_ports_and_ipv6() -> None:
    FetchPolicy(max_size=1, allowed_addresses=frozenset({"10.0.0.5", "10.0.0.5:8443",
                                                          "[fd00::5]:443", "localhost:8080"}))
