"""A well-behaved Python plugin used by the process-runtime tests (runs out of process)."""

from __future__ import annotations

import os
import sys
import time

from plughost.sdk import Plugin
from plughost.sdk.decorators import channel, command, hookimpl, on


class Echo(Plugin):
    def activate(self, ctx):
        self.ctx = ctx
        self.seen = []
        self.state = {"activations": 1}

    def deactivate(self):
        sys.stderr.write("deactivating\n")

    @command("echo.say")
    def say(self, text: str = "") -> dict:
        return {"text": text, "pid": os.getpid()}

    @hookimpl("greeting.format")
    def format_greeting(self, name: str) -> str:
        return f"Hello, {name}!"

    @on("user.created")
    def remember(self, event) -> None:
        self.seen.append(event.payload["user"])

    @on("order.*")
    def on_order(self, event) -> None:
        # plugin.event carries {"topic", "payload", ...}; the runner hands over an object.
        self.seen.append(f"{event.topic}:{event['payload']['id']}")

    @channel("echo.chat")
    async def chat(self, ch) -> None:
        # the runner hands over a channel end with the in-process API
        async for text in ch:
            await ch.send(text.upper())

    @command("echo.seen")
    def seen_users(self) -> list:
        return self.seen

    @command("echo.sleep")
    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @command("echo.nap")
    async def nap(self, seconds: float) -> float:
        import asyncio

        await asyncio.sleep(seconds)
        return seconds

    @command("echo.fail")
    def fail(self) -> None:
        raise ValueError("asked to fail")

    @command("echo.emit")
    def emit(self, topic: str, payload=None):
        return self.ctx.bus.emit(topic, payload)

    @command("echo.config")
    def config(self, key: str):
        return self.ctx.config.get(key)

    @command("echo.read")
    def read(self, path: str):
        return self.ctx.files.read_text(path)

    @command("echo.http")
    def http(self, url: str):
        return self.ctx.http.get(url)

    @command("echo.log")
    def log(self, n: int) -> int:
        for i in range(n):
            sys.stderr.write(f"line {i}\n")
        sys.stderr.flush()
        return n

    @command("echo.ignore_term")
    def ignore_term(self) -> None:
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a hung plugin then needs SIGKILL

    @command("echo.exit")
    def exit(self, code: int) -> None:
        os._exit(code)

    @command("echo.async")
    async def async_echo(self, text: str) -> str:
        import asyncio

        await asyncio.sleep(0)
        got = await self.ctx.bus.emit("async.topic", {"text": text})
        return f"async:{text}:{got}"

    def export_state(self):
        return self.state

    def import_state(self, state, from_version):
        self.state = {**state, "from": from_version}
