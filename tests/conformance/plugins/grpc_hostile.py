"""A hostile gRPC plugin for the conformance suite (tests/conformance/test_grpc_hostile.py)."""

from __future__ import annotations

import os
import sys
from typing import Any

from plughost.runtimes.grpc import plughost_pb2 as pb
from plughost.runtimes.grpc.plugin import JsonPlugin, serve


class Hostile(JsonPlugin):
    exports = [{"kind": "command", "name": "hostile.ping", "target": "ping"}]

    def ping(self) -> str:
        return "pong"

    def infinite_loop(self) -> None:
        while True:
            pass

    def memory_bomb(self) -> None:
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))

    def crash_mid_call(self) -> None:
        os._exit(9)

    def output_flood(self, lines: int) -> int:
        for i in range(lines):
            sys.stderr.write(f"flood {i}\n")
        sys.stderr.flush()
        return lines

    def oversized_message(self, size: int) -> str:
        return "x" * size

    def forbidden_file_read(self, path: str) -> Any:
        return self.host_call("host.files.read", {"path": path})

    def forbidden_http_request(self, url: str) -> Any:
        return self.host_call("host.http.request", {"url": url})

    def forbidden_event_emit(self, topic: str) -> Any:
        return self.host_call("host.emit", {"topic": topic, "payload": {"evil": True}})

    def open_directly(self, path: str, mode: str = "r") -> bool:
        """Go around the host: the kernel's confinement must stop it."""
        try:
            with open(path, mode) as f:
                f.read() if mode == "r" else f.write("planted")
        except OSError:
            return False
        return True

    def spawn(self) -> bool:
        try:
            pid = os.fork()
        except OSError:
            return False
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return True

    def Call(self, request: Any, context: Any) -> Any:
        if request.target == "bad_json":  # a reply whose result is not JSON
            return pb.CallResponse(result_json='{"half": ')
        return super().Call(request, context)

    def unknown_host_op(self) -> Any:
        return self.host_call("host.shell.run", {"cmd": "id"})


if __name__ == "__main__":
    if os.environ.get("HOSTILE_HANDSHAKE") == "garbage":
        print("hello, I am not a handshake", flush=True)
        sys.stdin.read()
    elif os.environ.get("HOSTILE_HANDSHAKE") == "version":
        print("1|7|unix|/nowhere.sock|grpc", flush=True)
        sys.stdin.read()
    serve(Hostile())
