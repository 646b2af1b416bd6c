"""Hostile behaviours for the conformance suite, as one Python process plugin class.

Each case's manifest points at this class; the test calls the method named after the case.
"""

from __future__ import annotations

import os
import sys

from plughost.sdk import Plugin
from plughost.sdk.decorators import command


class Hostile(Plugin):
    @command("ping")
    def ping(self) -> str:
        return "pong"

    @command("infinite_loop")
    def infinite_loop(self) -> None:
        while True:
            pass

    @command("memory_bomb")
    def memory_bomb(self) -> None:
        hog = []
        while True:
            hog.append(bytearray(8 << 20))

    @command("crash_mid_call")
    def crash_mid_call(self) -> None:
        os.kill(os.getpid(), 9)

    @command("output_flood")
    def output_flood(self, lines: int = 200_000) -> int:
        line = "flood " * 10 + "\n"
        for _ in range(lines):
            sys.stderr.write(line)
        sys.stderr.flush()
        return lines

    @command("oversized_message")
    def oversized_message(self, size: int) -> str:
        return "x" * size

    @command("forbidden_file_read")
    def forbidden_file_read(self, path: str) -> object:
        return self.ctx.files.read_text(path)

    @command("forbidden_http_request")
    def forbidden_http_request(self, url: str) -> object:
        return self.ctx.http.get(url)

    @command("direct_socket")
    def direct_socket(self, host: str, port: int) -> str:
        import socket

        try:
            with socket.create_connection((host, port), timeout=2):
                return "connected"
        except OSError as exc:
            return f"refused: {exc}"

    @command("forbidden_event_emit")
    def forbidden_event_emit(self, topic: str) -> object:
        return self.ctx.bus.emit(topic, {"evil": True})
