"""Run a real ``plughost serve`` subprocess on an ephemeral port for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

SRC = Path(__file__).resolve().parents[3] / "src"


@contextmanager
def running_server(home: Path, *args: str, timeout: float = 60.0) -> Iterator[ServerProcess]:
    """Start ``plughost serve --port 0 --home HOME``, wait for ``/readyz``; on exit send
    SIGTERM and check it stopped gracefully (exit 0) and left no process behind."""
    server = ServerProcess(home, list(args))
    try:
        server.wait_ready(timeout)
        yield server
    finally:
        server.stop()


class ServerProcess:
    def __init__(self, home: Path, args: list[str],
                 env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "PLUGHOST_HOME": str(home), **(env or {})}
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plughost", "serve", "--port", "0", "--home", str(home),
             *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base_url = ""
        self.returncode: int | None = None

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def records(self) -> list[dict[str, object]]:
        """The JSON log lines so far."""
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.base_url:
            if self.proc.poll() is not None:
                raise AssertionError("plughost serve exited early:\n" + "\n".join(self.lines))
            for record in self.records():
                message = str(record.get("message", ""))
                if message.startswith("listening on "):
                    self.base_url = message.split()[2]
            if time.monotonic() > deadline:
                raise AssertionError("plughost serve did not start:\n" + "\n".join(self.lines))
            time.sleep(0.05)
        while True:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server never became ready")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("plughost serve did not stop within "
                                     f"{timeout}s of SIGTERM") from None
        self._reader.join(5)
        self.returncode = self.proc.returncode
