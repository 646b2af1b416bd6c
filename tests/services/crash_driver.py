"""Run one PluginService operation in a fresh process (the crash tests set PLUGHOST_CRASH_AT).

    python tests/services/crash_driver.py HOME OPERATION [ARGS...]
"""

from __future__ import annotations

import asyncio
import sys


async def main(home: str, operation: str, *args: str) -> None:
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    async with PluginService(HostSettings(home=home)) as svc:
        if operation == "install":
            await svc.install(args[0])
        elif operation == "update":
            await svc.update(args[0], args[1])
        elif operation == "rollback":
            await svc.rollback(args[0])
        elif operation == "uninstall":
            await svc.uninstall(args[0])
        else:
            raise SystemExit(f"unknown operation {operation!r}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
