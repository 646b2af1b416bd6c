"""Quickstart for plugin authors: test a plugin with the SDK's test host."""

from __future__ import annotations

import asyncio
from pathlib import Path

from plughost.sdk.testing import make_test_host

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


async def main() -> str:
    async with make_test_host(HELLO, config={"hello": {"greeting": "Bonjour"}}) as host:
        report = await host.start()
        assert report.ok, report
        result: str = await host.call("hello", "greet", name="Ada")
        return result


if __name__ == "__main__":
    print(asyncio.run(main()))
