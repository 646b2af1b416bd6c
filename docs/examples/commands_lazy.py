"""Commands: register under a namespace, execute with a timeout, typed errors, lazy activation.

Run: python docs/examples/commands_lazy.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from plughost.core.commands import CommandRegistry
from plughost.errors import CommandError, PluginTimeout


async def main() -> dict[str, Any]:
    commands = CommandRegistry()

    async def greet(name: str) -> str:
        if not name:
            raise CommandError("name is empty", code="hello.bad_name", details={"field": "name"})
        return f"Hello, {name}!"

    async def slow() -> None:
        await asyncio.sleep(10)

    commands.register("hello", "greet", greet)             # served as "hello.greet"
    commands.register("hello", "slow", slow, timeout=0.05)

    out: dict[str, Any] = {"greet": await commands.execute("hello.greet", {"name": "Ada"})}
    try:
        await commands.execute("hello.greet", {"name": ""})
    except CommandError as exc:
        out["error"] = exc.to_dict()
    try:
        await commands.execute("hello.slow")
    except PluginTimeout as exc:
        out["timeout"] = exc.code

    # Lazy activation: the host installs a resolver; here it "activates" a plugin that
    # registers the command the first time somebody asks for it.
    async def activate_for(name: str) -> None:
        if name == "weather.today":
            commands.register("weather", "today", lambda city: f"Sunny in {city}")

    commands.set_lazy_resolver(activate_for)
    out["lazy"] = await commands.execute("weather.today", {"city": "Lyon"})
    return out


if __name__ == "__main__":
    for key, value in asyncio.run(main()).items():
        print(f"{key}: {value}")
