"""A gRPC plugin in Python: an echo service with a counter, a host operation, a channel and state.

The host starts it (`entry = "python server.py"`), it prints its handshake line and serves
plughost.proto's Plugin service on the Unix socket the host asked for.
"""

from __future__ import annotations

from typing import Any

from plughost.runtimes.grpc.plugin import JsonPlugin, PluginChannel, serve


class Echo(JsonPlugin):
    exports = [
        {"kind": "command", "name": "grpc-python-echo.echo", "target": "echo"},
        {"kind": "command", "name": "grpc-python-echo.count", "target": "count"},
        {"kind": "event", "name": "echo.*", "target": "heard"},
        {"kind": "channel", "name": "grpc-python-echo.shout", "target": "shout"},
    ]

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.events: list[str] = []

    def echo(self, **kwargs: Any) -> Any:
        return kwargs

    def count(self, by: int = 1) -> int:
        self.counter += by
        return self.counter

    def shout(self, channel: PluginChannel) -> None:
        # a channel: every message from the opener comes back in capitals; "bye" ends it
        for message in channel:
            if message == "bye":
                return
            channel.send(str(message).upper())

    def heard(self, event: dict[str, Any]) -> None:
        self.events.append(event["topic"])

    def last_events(self) -> list[str]:
        return self.events

    def announce(self, topic: str) -> Any:
        # host.emit is checked against this plugin's grants (events:emit:<topic>)
        return self.host_call("host.emit", {"topic": topic, "payload": {"from": "grpc"}})

    def crash(self) -> None:
        import os

        os._exit(3)

    def export_state(self) -> Any:
        return {"counter": self.counter}

    def import_state(self, state: Any, from_version: str) -> None:
        self.counter = int((state or {}).get("counter", 0))


if __name__ == "__main__":
    serve(Echo())
