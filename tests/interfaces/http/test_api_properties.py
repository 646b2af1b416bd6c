"""Property-based tests of the API's request bodies: every route that takes a body, fed JSON,
form fields and uploads drawn by hypothesis (shaped like its schema, or not at all), answers
below 500, and every refusal is the error envelope with a code and a message. Nothing the
request could not have done changes: a body that is refused installs nothing.

A real server behind the ASGI interface (service, SQLite, staging, the lot), one per module.
schemathesis (test_schemathesis.py) runs the whole OpenAPI document against a real process;
this covers the bodies harder, including multipart uploads schemathesis cannot shape.

Profiles: tests/conftest.py ("ci" by default; HYPOTHESIS_PROFILE=night for long runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import zipfile
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from plughost.interfaces.http import create_app
from plughost.security.package import pack
from plughost.services.manager import PluginService
from plughost.settings import HostSettings

PLUGIN = "demo"

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=25)
TEXT = st.one_of(st.text(max_size=40), st.sampled_from([
    "", " ", "\x00", "../../etc/passwd", "a" * 5000, "viewer", "operator", "admin", "demo",
    "https://127.0.0.1:99999/x.zip", "https://[::1", "https://h:abc/x", "https://h:-1/x",
    "https://ex\x00ample.com/p.zip", "http://example.com/p.zip", "file:///etc/passwd",
    "net:example.com:443", "fs:read:/", "storage:kv-other", "1.0.0", "^1", "\udc80"]))
LOOSE = st.one_of(TEXT, JSON_VALUES)

#: Field names each route's body knows (plus a few it does not), so drawn objects are shaped
#: like real requests often enough to get past the first check.
FIELDS: dict[str, list[str]] = {
    "/api/v1/plugins/validate-manifest": ["id", "name", "version", "entry", "runtime",
                                          "pluginType", "entryPoint", "configSchema",
                                          "permissions", "dependencies", "config", "limits"],
    "/api/v1/plugins/install": ["source", "url", "marketId", "sha256", "enable", "activate",
                                "manifest"],
    f"/api/v1/plugins/{PLUGIN}": ["source", "url", "marketId", "sha256"],
    f"/api/v1/plugins/{PLUGIN}/rollback": ["to"],
    "/api/v1/commands/demo.ping": ["args", "timeout"],
    "/api/v1/tokens": ["name", "role", "expires_in_days"],
    f"/api/v1/plugins/{PLUGIN}/config": ["values", "channel", "token"],
    f"/api/v1/plugins/{PLUGIN}/config/restore": ["version"],
    f"/api/v1/plugins/{PLUGIN}/permissions/grant": ["scope", "scopes"],
    f"/api/v1/plugins/{PLUGIN}/permissions/revoke": ["scope", "scopes"],
    "/api/v1/permissions/requests/1/approve": ["note", "reason"],
}
METHOD = {f"/api/v1/plugins/{PLUGIN}": "PUT", f"/api/v1/plugins/{PLUGIN}/config": "PUT"}


@st.composite
def json_bodies(draw: st.DrawFn) -> tuple[str, str, Any]:
    path = draw(st.sampled_from(sorted(FIELDS)))
    keys = draw(st.lists(st.sampled_from([*FIELDS[path], "x", "source"]), max_size=5,
                         unique=True))
    shaped = {k: draw(LOOSE) for k in keys}
    if "source" in shaped and draw(st.booleans()):
        shaped["source"] = draw(st.sampled_from(["url", "market", "local", "nope"]))
    body = draw(st.one_of(st.just(shaped), JSON_VALUES))
    return METHOD.get(path, "POST"), path, body


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


MANIFESTS = st.one_of(
    st.just('{"id": "up", "name": "Up", "version": "1.0.0", "entry": "up:Plugin"}'),
    st.just('{"name": "up", "version": "1.0.0", "pluginType": "notify", '
            '"entryPoint": "up:Plugin"}'),
    st.builds(json.dumps, JSON_VALUES), TEXT)


@st.composite
def uploads(draw: st.DrawFn) -> bytes:
    members = draw(st.dictionaries(
        st.sampled_from(["manifest.json", "plugin.toml", "up.py", "../x", "a/b.txt",
                         "integrity.json"]),
        st.one_of(st.binary(max_size=300), MANIFESTS.map(lambda t: t.encode("utf-8",
                                                                            "surrogatepass"))),
        max_size=4))
    data = bytearray(_zip(members))
    for pos, value in draw(st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 255)),
                                    max_size=3)):
        if data:
            data[pos % len(data)] = value
    return draw(st.one_of(st.just(bytes(data)), st.binary(max_size=200)))


T = TypeVar("T")


class Client:
    """A blocking client over the app's ASGI interface; the app (lifespan entered) lives on
    an event loop in a thread of its own, so hypothesis drives plain functions."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._stack = contextlib.AsyncExitStack()
        self._client: httpx.AsyncClient | None = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(120)

    def __enter__(self) -> Client:
        async def enter() -> httpx.AsyncClient:
            await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
            transport = httpx.ASGITransport(self.app, raise_app_exceptions=False)
            return await self._stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://testserver"))

        self._client = self._run(enter())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(self._stack.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self._client is not None
        return self._run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    tmp = tmp_path_factory.mktemp("api-properties")
    settings = HostSettings(home=tmp / "home", require_signature="never")
    source = tmp / "src" / PLUGIN
    source.mkdir(parents=True)
    (source / "plugin.toml").write_text(
        f'id = "{PLUGIN}"\nname = "Demo"\nversion = "1.0.0"\nentry = "demo:Main"\n'
        '[config.schema]\ntype = "object"\n[config.schema.properties.channel]\n'
        'type = "string"\n')
    (source / "demo.py").write_text(
        "from plughost.sdk import Plugin\n\nclass Main(Plugin):\n"
        "    def activate(self, ctx):\n        pass\n")
    package = pack(source, tmp)
    service = PluginService(settings, start=True)
    app = create_app(service, settings)
    with Client(app) as c:
        with package.open("rb") as fh:
            r = c.post("/api/v1/plugins/install", data={"source": "local"},
                       files={"file": ("demo.zip", fh)})
        assert r.status_code == 201, r.text
        yield c


def _answered_well(r: Any, what: object) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:400])
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error["code"], str) and "." in error["code"], (what, error)
        assert isinstance(error["message"], str) and error["message"], (what, error)
        assert isinstance(error["details"], dict), (what, error)


def _still_one_plugin(client: Client) -> None:
    listed = client.get("/api/v1/plugins").json()
    assert [p["id"] for p in listed["items"]] in ([PLUGIN], [PLUGIN, "up"], ["up", PLUGIN]), listed


@given(json_bodies())
@example(("POST", "/api/v1/plugins/install", {"source": "url", "url": "https://[::1"}))
@example(("PUT", f"/api/v1/plugins/{PLUGIN}/config", {"values": {"channel": 5}}))
@example(("POST", "/api/v1/tokens", {"name": "\udc80", "role": "viewer"}))
@example(("POST", "/api/v1/commands/demo.ping", {"args": [1], "timeout": -1}))
def test_json_bodies_answer_below_500_with_the_envelope(
    client: Client, request_: tuple[str, str, Any]
) -> None:
    method, path, body = request_
    content = json.dumps(body).encode("utf-8", "surrogatepass")
    r = client.request(method, path, content=content,
                       headers={"Content-Type": "application/json"})
    _answered_well(r, (method, path, body))
    if path.endswith("/install") and r.status_code != 201:
        _still_one_plugin(client)


@given(st.dictionaries(st.sampled_from(["source", "url", "marketId", "manifest", "sha256",
                                        "enable", "activate", "other"]), TEXT, max_size=5),
       st.one_of(st.none(), uploads()), st.sampled_from(["/install", f"/{PLUGIN}"]))
@example({"source": "local", "manifest": '{"id": "up", "name": "Up", "version": "1.0.0", '
                                         '"entry": "up:Plugin"}'}, b"PK\x03\x04garbage",
         "/install")
def test_form_uploads_answer_below_500_with_the_envelope(
    client: Client, fields: dict[str, str], upload: bytes | None, target: str
) -> None:
    files = {"file": ("p.zip", upload, "application/zip")} if upload is not None else None
    data = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            for k, v in fields.items()}
    method = "POST" if target == "/install" else "PUT"
    r = client.request(method, f"/api/v1/plugins{target}", data=data, files=files)
    _answered_well(r, (fields, upload[:40] if upload else None))
    if r.status_code in (200, 201):  # a drawn upload was a valid package: put things back
        client.delete("/api/v1/plugins/up")
    uploads_dir = client.app.state.api.settings.staging_dir / "uploads"  # type: ignore[attr-defined]
    assert not uploads_dir.exists() or not any(uploads_dir.iterdir()), "no upload is left"
    _still_one_plugin(client)


@given(st.binary(max_size=500), st.sampled_from(sorted(FIELDS)),
       st.sampled_from(["application/json", "multipart/form-data; boundary=x",
                        "application/x-www-form-urlencoded", "text/plain", ""]))
def test_raw_bytes_answer_below_500_with_the_envelope(
    client: Client, body: bytes, path: str, ctype: str
) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    r = client.request(METHOD.get(path, "POST"), path, content=body, headers=headers)
    _answered_well(r, (path, ctype, body[:60]))
