"""Run one PluginService operation in a fresh process (the crash tests set PLUGHOST_CRASH_AT).

    python tests/services/crash_driver.py HOME OPERATION [ARGS...]

Settings come from the environment (``PLUGHOST_DATABASE_URL``, ``PLUGHOST_OBJECT_STORE``...) with
HOME as the plughost home, so the same driver runs on every storage backend.
"""

from __future__ import annotations

import asyncio
import os
import sys


async def main(home: str, operation: str, *args: str) -> None:
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    settings = HostSettings.from_env({**os.environ, "PLUGHOST_HOME": home})
    async with PluginService(settings) as svc:
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
