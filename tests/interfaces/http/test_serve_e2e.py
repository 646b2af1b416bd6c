"""Seed 003's curl flows, run with real curl against a real ``plughost serve`` subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.interfaces.http._server import running_server

pytestmark = pytest.mark.timeout(180)

PLUGIN_CODE = """from plughost.sdk import Plugin


class Notifier(Plugin):
    def activate(self, ctx):
        self.sent = []

    def notify(self, text):
        self.sent.append(text)
        return len(self.sent)
"""


def _manifest(version: str) -> dict[str, Any]:
    return {"name": "my-notify-plugin", "version": version,
            "description": "Custom notification plugin", "author": "Your Name",
            "pluginType": "notify", "entryPoint": "plugin:Notifier",
            "configSchema": {"type": "object", "properties": {"api_key": {"type": "string"}}}}


def _zip(folder: Path, name: str, version: str) -> Path:
    """Seed 003: ``zip my-notify-plugin.zip plugin.so manifest.json`` (ours: plugin.py)."""
    (folder / "plugin.py").write_text(PLUGIN_CODE)
    (folder / "manifest.json").write_text(json.dumps(_manifest(version)))
    out = folder / name
    with zipfile.ZipFile(out, "w") as zf:
        zf.write(folder / "plugin.py", "plugin.py")
        zf.write(folder / "manifest.json", "manifest.json")
    return out


class Curl:
    """Run curl (or, where it is missing, the same request with httpx)."""

    def __init__(self, base: str, cwd: Path) -> None:
        self.base, self.cwd = base, cwd
        self.curl = shutil.which("curl")

    def __call__(self, *args: str) -> tuple[int, Any]:
        argv = [a.replace("http://localhost:8080", self.base) for a in args]
        if self.curl is not None:
            done = subprocess.run([self.curl, "-sS", "-w", "\n%{http_code}", *argv],
                                  cwd=self.cwd, capture_output=True, text=True, timeout=60,
                                  check=True)
            body, _, code = done.stdout.rpartition("\n")
            return int(code), json.loads(body) if body else None
        return self._httpx(argv)

    def _httpx(self, argv: list[str]) -> tuple[int, Any]:
        method, url, data, files = "GET", "", {}, {}
        it = iter(argv)
        for arg in it:
            if arg == "-X":
                method = next(it)
            elif arg == "-F":
                key, _, value = next(it).partition("=")
                if value.startswith("@"):
                    files[key] = (value[1:], (self.cwd / value[1:]).read_bytes())
                else:
                    data[key] = value
                method = method if method != "GET" else "POST"
            else:
                url = arg
        r = httpx.request(method, url, data=data or None, files=files or None, timeout=60)
        return r.status_code, r.json() if r.content else None


def test_seed_003_curl_flows_against_plughost_serve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Seed 003 packages are unsigned zips: this server accepts unsigned packages.
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    work = tmp_path / "work"
    work.mkdir()
    _zip(work, "my-notify-plugin.zip", "1.0.0")
    v2 = tmp_path / "v2"
    v2.mkdir()
    shutil.copy(_zip(v2, "my-notify-plugin-2.0.0.zip", "2.0.0"), work)

    with running_server(home) as server:
        curl = Curl(server.base_url, work)
        base = "http://localhost:8080/api/v1/plugins"

        status, body = curl("-X", "POST", f"{base}/install", "-F", "source=local",
                            "-F", "file=@my-notify-plugin.zip")
        assert status == 201, body
        pid = body["pluginId"]
        assert (pid, body["version"], body["state"]) == ("my-notify-plugin", "1.0.0", "active")

        status, body = curl("-X", "POST", f"{base}/install", "-F", "source=market",
                            "-F", "marketId=plugin-notify-slack",
                            "-F", 'manifest={"name": "slack-notify", "version": "1.0.0", '
                                  '"pluginType": "notify"}')
        assert status == 400
        assert body["error"]["code"] == "marketplace.unavailable"

        status, body = curl(base)
        assert (status, [p["id"] for p in body["items"]]) == (200, [pid])
        status, body = curl(f"{base}?pluginType=notify")
        assert [p["pluginType"] for p in body["items"]] == ["notify"]
        status, body = curl(f"{base}?status=1")
        assert [p["status"] for p in body["items"]] == [1]

        status, body = curl(f"{base}/{pid}")
        assert (status, body["manifest"]["type"]) == (200, "notify")

        status, body = curl("-X", "POST", f"{base}/{pid}/disable")
        assert (status, body["status"], body["state"]) == (200, 0, "disabled")
        status, body = curl("-X", "POST", f"{base}/{pid}/enable")
        assert (status, body["status"], body["state"]) == (200, 1, "active")

        status, body = curl("-X", "PUT", f"{base}/{pid}", "-F", "source=local",
                            "-F", "file=@my-notify-plugin-2.0.0.zip")
        assert (status, body["to_version"]) == (200, "2.0.0"), body

        status, body = curl(f"{base}/metrics")
        assert status == 200
        assert [(m["name"], m["type"], m["version"]) for m in body] == [
            ("my-notify-plugin", "notify", "2.0.0")]
        assert body[0]["path"] and body[0]["description"] == "Custom notification plugin"

        status, body = curl("-X", "DELETE", f"{base}/{pid}")
        assert (status, body["removed"]) == (200, [pid])
        status, body = curl(f"{base}/{pid}")
        assert (status, body["error"]["code"]) == (404, "plugin.not_found")

    assert server.returncode == 0, "\n".join(server.lines)
    messages = [str(r.get("message")) for r in server.records()]
    assert "installing plugin from source: local" in messages
    assert any(m.startswith("saved to local cache: ") for m in messages)
    assert f"uploaded to storage: plugins/{pid}/1.0.0/{pid}_1.0.0.zip" in messages
    assert f"hot reloaded plugin: {pid}" in messages
    assert f"plugin installed successfully: {pid} (v1.0.0)" in messages
    access = [r for r in server.records() if "duration_ms" in r]
    assert {"time", "method", "path", "status", "duration_ms", "client", "request_id"} <= set(
        access[0])
    assert ("POST", "/api/v1/plugins/install", 201) in {
        (r["method"], r["path"], r["status"]) for r in access}
    with pytest.raises(ProcessLookupError):
        os.kill(server.proc.pid, 0)


def test_serve_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")}
    done = subprocess.run(
        [os.sys.executable, "-m", "plughost", "serve", "--host", "0.0.0.0", "--port", "0",
         "--home", str(tmp_path / "h")], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert "serve.insecure" in done.stderr and "--insecure" in done.stderr


def test_sigint_also_stops_gracefully_with_plugins_deactivated(
    tmp_path: Path, make_package: Any
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    marker = tmp_path / "deactivated.txt"
    code = (
        "from plughost.sdk import Plugin\n\n"
        "class Main(Plugin):\n"
        "    def deactivate(self):\n"
        f"        open({str(marker)!r}, 'a').write(self.ctx.plugin_id + '\\n')\n"
    )
    first = make_package("base-svc", code=code)
    package = make_package("sleeper", code=code, dependencies={"base-svc": "^1.0"})
    with running_server(home) as server:
        for pkg in (first, package):
            with pkg.open("rb") as fh:
                r = httpx.post(f"{server.base_url}/api/v1/plugins/install",
                               data={"source": "local"}, files={"file": fh}, timeout=60)
            assert r.status_code == 201, r.text
        server.proc.send_signal(signal.SIGINT)
        server.proc.wait(30)
    assert server.returncode == 0
    messages = [str(r.get("message")) for r in server.records()]
    assert "stopped" in messages
    # reverse dependency order: the dependent first, then what it depends on
    assert marker.read_text().split() == ["sleeper", "base-svc"]


def test_serve_starts_on_a_fresh_home_with_embedded_defaults(tmp_path: Path) -> None:
    home = tmp_path / "fresh"  # does not exist yet: no settings file, no database
    with running_server(home) as server:
        ready = httpx.get(f"{server.base_url}/readyz", timeout=10).json()
        assert ready == {"ready": True, "reason": "", "plugins": 0, "active": 0, "failed": 0}
        assert httpx.get(f"{server.base_url}/api/v1/plugins", timeout=10).json()["total"] == 0
        page = httpx.get(f"{server.base_url}/", timeout=10)
        assert page.status_code == 200 and "/dashboard/app.js" in page.text
    assert server.returncode == 0
    assert (home / "plughost.db").is_file() and (home / "objects").is_dir()
    messages = " ".join(str(r.get("message")) for r in server.records())
    assert "listening on http://127.0.0.1:" in messages


def test_a_local_cli_install_next_to_the_server_shows_up_in_the_api(
    tmp_path: Path, make_package: Any
) -> None:
    import time

    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    package = make_package("side-door")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")}
    with running_server(home, "--refresh-interval", "0.5") as server:
        assert httpx.get(f"{server.base_url}/api/v1/plugins").json()["total"] == 0
        done = subprocess.run([os.sys.executable, "-m", "plughost", "install", str(package),
                               "--home", str(home), "--json"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 20
        while True:  # refreshed from storage, then the cached list expires (TTL 1 s)
            items = httpx.get(f"{server.base_url}/api/v1/plugins").json()["items"]
            if items and items[0]["state"] == "active":
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.1)
        assert items[0]["id"] == "side-door"
    assert server.returncode == 0


def test_sigterm_lets_in_flight_requests_and_operations_finish(
    tmp_path: Path, make_package: Any
) -> None:
    import http.server
    import threading
    import time

    package = make_package("slow-one")
    package2 = make_package("slow-two")
    release = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(30)  # hold the download until the server was told to stop
            data = (package if "one" in self.path else package2).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{origin.server_address[1]}"
    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    results: dict[str, Any] = {}
    try:
        with running_server(home, "--allow-private-urls", "--allow-http-urls") as server:
            api = f"{server.base_url}/api/v1/plugins/install"
            accepted = httpx.post(f"{api}?async=true", timeout=30,
                                  json={"source": "url", "url": f"{base}/one.zip"})
            assert accepted.status_code == 202

            def sync_install() -> None:
                results["sync"] = httpx.post(api, timeout=60,
                                             json={"source": "url", "url": f"{base}/two.zip"})

            caller = threading.Thread(target=sync_install)
            caller.start()
            deadline = time.monotonic() + 20
            def logged(message: str) -> int:
                return sum(r.get("message") == message for r in server.records())

            while logged("installing plugin from source: url") < 2:
                assert time.monotonic() < deadline, "the installs did not start"
                time.sleep(0.05)
            server.proc.send_signal(signal.SIGTERM)
            while not logged("Shutting down"):
                assert time.monotonic() < deadline, "the server did not begin to stop"
                time.sleep(0.05)
            assert server.proc.poll() is None, "it must wait for the two installs in flight"
            release.set()
            caller.join(60)
            server.proc.wait(60)
    finally:
        release.set()
        origin.shutdown()
        origin.server_close()
    assert server.returncode == 0
    assert results["sync"].status_code == 201, results["sync"].text
    with running_server(home) as again:
        ids = [p["id"] for p in httpx.get(f"{again.base_url}/api/v1/plugins").json()["items"]]
        op = httpx.get(f"{again.base_url}/api/v1/operations/{accepted.json()['id']}").json()
    assert ids == ["slow-one", "slow-two"]
    assert op["status"] == "succeeded"


def test_shutdown_is_bounded_when_a_plugin_will_not_stop(
    tmp_path: Path, make_package: Any
) -> None:
    import time

    code = ("import asyncio\nfrom plughost.sdk import Plugin\n\nclass Main(Plugin):\n"
            "    async def deactivate(self):\n        await asyncio.sleep(600)\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    package = make_package("stubborn", code=code)
    with running_server(home, "--shutdown-timeout", "2") as server:
        with package.open("rb") as fh:
            r = httpx.post(f"{server.base_url}/api/v1/plugins/install",
                           data={"source": "local"}, files={"file": fh}, timeout=60)
        assert r.status_code == 201, r.text
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(60)
        elapsed = time.monotonic() - started
    assert server.returncode == 0
    assert elapsed < 30, f"shutdown took {elapsed:.0f} s"
    assert any("did not stop within 2 s" in str(r.get("message")) for r in server.records())


def test_event_stream_is_live_over_a_real_connection(tmp_path: Path, make_package: Any) -> None:
    import threading

    home = tmp_path / "home"
    home.mkdir()
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    package = make_package("live")
    with running_server(home) as server:
        with package.open("rb") as fh:
            r = httpx.post(f"{server.base_url}/api/v1/plugins/install",
                           data={"source": "local"}, files={"file": fh}, timeout=60)
        assert r.status_code == 201
        received: list[str] = []
        connected = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{server.base_url}/api/v1/events?kinds=lifecycle",
                              timeout=30) as stream:
                for line in stream.iter_lines():
                    connected.set()
                    if line.startswith("data: "):
                        received.append(line)
                        if json.loads(line[6:])["new"] == "disabled":
                            return

        listener = threading.Thread(target=listen)
        listener.start()
        assert connected.wait(30), "the stream did not open"
        # the stream stays open (no max_events): events arrive while it is connected
        assert httpx.post(f"{server.base_url}/api/v1/plugins/live/disable",
                          timeout=30).status_code == 200
        listener.join(30)
        assert not listener.is_alive()
    events = [json.loads(line[6:]) for line in received]
    assert events[0]["new"] == "deactivated"
    assert [(e["plugin_id"], e["new"]) for e in events][-1] == ("live", "disabled")
    assert server.returncode == 0
