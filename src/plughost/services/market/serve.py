"""``plughost market serve``: a plain static file server for a repository's ``public/`` folder.

The repository is files; any static server (nginx, S3, GitHub Pages) serves it as well. This
one exists so that a publisher needs nothing else: it serves only ``public/`` (never the keys,
which live beside it), no directory listings, GET and HEAD only, and never follows a path out
of the folder.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["RepositoryServer", "serve_repository"]

log = logging.getLogger(__name__)


class _Handler(SimpleHTTPRequestHandler):
    def list_directory(self, path: Any) -> None:
        self.send_error(404, "Not found")
        return None

    def translate_path(self, path: str) -> str:
        resolved = Path(super().translate_path(path)).resolve()
        root = Path(self.directory).resolve()
        if resolved != root and root not in resolved.parents:
            return str(root / "__outside__")  # a 404, whatever the request said
        return str(resolved)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("market serve: " + format, *args)


class RepositoryServer:
    """A running static server (a context manager; :meth:`close` stops it)."""

    def __init__(self, public: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = partial(_Handler, directory=str(public))
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RepositoryServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="plughost-market-serve")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> RepositoryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_repository(repo_path: Path | str, host: str = "127.0.0.1",
                     port: int = 0) -> RepositoryServer:
    """A server for ``REPO/public`` (not started: call ``start()`` or ``serve_forever()``)."""
    from plughost.services.market.repo import MarketRepository

    repo = MarketRepository.open(repo_path)
    return RepositoryServer(repo.public, host, port)
