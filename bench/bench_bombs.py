"""Peak memory while plughost refuses decompression bombs (the archive limits, issue 19).

Two attacks, each measured with ``tracemalloc`` (Python allocations: zlib's output buffers are
Python bytes, so an inflated bomb shows up in full):

* upload: ``POST /api/v1/plugins/install`` (the real app, in process) of a 255 KiB zip whose
  ``manifest.json`` inflates to 256 MiB, with Arcade's ``manifest`` form part;
* download: an install URL served with ``Content-Encoding: gzip``, 254 KiB that inflate to
  256 MiB of zeros.

Before the fix: about 560 MiB and 260 MiB. The tests assert a bound of 8 MiB on smaller bombs
(tests/interfaces/http/test_routes_plugins.py, tests/services/test_sources.py).

    python bench/bench_bombs.py
"""

from __future__ import annotations

import asyncio
import http.server
import json
import sys
import tempfile
import threading
import tracemalloc
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

MiB = 1 << 20


async def upload_bomb(tmp: Path) -> str:
    from tests.interfaces.http.conftest import open_api
    from tests.security.zipcraft import Raw, bomb, build

    from plughost.settings import HostSettings

    upload = tmp / "bomb.zip"
    upload.write_bytes(build([bomb("manifest.json", 256 * MiB), Raw("main.py", b"x = 1\n")]))
    manifest = json.dumps({"name": "bomb", "version": "1.0.0", "entryPoint": "main:Main"})
    line = ""
    async for api in open_api(HostSettings(home=tmp / "home", require_signature="never")):
        body = upload.read_bytes()
        tracemalloc.start()
        r = await api.client.post("/api/v1/plugins/install",
                                  data={"source": "local", "manifest": manifest},
                                  files={"file": ("bomb.zip", body, "application/zip")})
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        line = (f"upload   {len(body) / 1024:.0f} KiB zip, 256 MiB manifest.json -> HTTP "
                f"{r.status_code} {r.json()['error']['code']}; peak {peak / MiB:.1f} MiB")
    return line


def download_bomb(tmp: Path) -> str:
    import httpx  # noqa: F401 - imported before measuring: an import is not the download

    from plughost.services.sources import FetchPolicy, fetch

    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    body = b"".join(c.compress(b"\0" * MiB) for _ in range(256)) + c.flush()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/p.zip"
    policy = FetchPolicy(max_size=100 * MiB, allow_private=True, allow_http=True)
    tracemalloc.start()
    try:
        fetch(url, tmp / "x.zip", policy)
        outcome = "accepted"
    except Exception as exc:  # the refusal is the expected outcome
        outcome = f"{type(exc).__name__} {getattr(exc, 'code', '')}"
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    server.shutdown()
    server.server_close()
    thread.join(5)
    return (f"download {len(body) / 1024:.0f} KiB gzip body, 256 MiB inflated -> {outcome}; "
            f"peak {peak / MiB:.1f} MiB")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(asyncio.run(upload_bomb(Path(tmp))))
        print(download_bomb(Path(tmp)))


if __name__ == "__main__":
    main()
